//! Targets for the endpoint tests' own tests: the real proxy router (from the function
//! crate) served on a local port in front of a canned OpenAI-like upstream, and ways to
//! break it. Shared by tests/endpoint_*.rs.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use openai_proxy_deployer::endpoint::{self, Plan, Results};
use openai_proxy_deployer::report::Report;
use openai_proxy_deployer::ui::Ui;
use openai_proxy_function::app::{AppState, Settings};
use openai_proxy_function::breaker::CircuitBreaker;
use openai_proxy_function::config::{ConfigSource, ConfigStore, ProxyConfig};
use openai_proxy_function::observe::Sink;
use openai_proxy_function::upstream::{RetryPolicy, Upstream};
use serde_json::{Value, json};
use sha2::Digest;

pub const MODELS: [&str; 2] = ["amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0"];
pub const CLIENT_KEY: &str = "client-key-for-the-endpoint-tests";
pub const ANSWER: &str = "ok from the canned upstream";
/// Between two events of the canned upstream's streams.
pub const PACE: Duration = Duration::from_millis(30);

/// Serves `router` on a free local port until the test's runtime ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// An OpenAI-like chat completions endpoint: a JSON answer, or SSE chunks and `[DONE]`,
/// always naming the upstream's own model (the proxy must put the requested id back).
pub async fn upstream() -> String {
    upstream_with(false).await
}

/// `truncated`: streams end without `[DONE]`, as when the upstream connection drops.
pub async fn upstream_with(truncated: bool) -> String {
    let chat = move |body: axum::Json<Value>| async move { chat(body, truncated) };
    let address = serve(Router::new().route("/v1/chat/completions", post(chat))).await;
    format!("http://{address}/v1")
}

fn chat(body: axum::Json<Value>, truncated: bool) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": 1,
               "model": "gpt-4o-mini-2024-07-18",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    if body["stream"] == true {
        let mut events: Vec<String> = [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": ANSWER}), Value::Null),
            chunk(json!({}), json!("stop")),
        ]
        .iter()
        .map(|c| format!("data: {c}\n\n"))
        .collect();
        if !truncated {
            events.push("data: [DONE]\n\n".into());
        }
        // Paced like a model generating tokens: the first event at once, then one every
        // PACE. An answer that arrives whole cannot pass as streamed.
        let paced =
            futures_util::stream::iter(events.into_iter().enumerate()).then(|(i, event)| async move {
                if i > 0 {
                    tokio::time::sleep(PACE).await;
                }
                Ok::<_, std::convert::Infallible>(event)
            });
        (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(paced),
        )
            .into_response()
    } else {
        axum::Json(json!({
            "id": "chatcmpl-canned", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        }))
        .into_response()
    }
}

pub struct Proxy {
    pub models: Vec<&'static str>,
    /// The models are mapped to Bedrock too (the local AWS's, at AWS_ENDPOINT_URL).
    pub bedrock: bool,
    pub auth: bool,
    /// CORS_ALLOWED_ORIGINS as a list; `None` is `*`.
    pub cors: Option<Vec<String>>,
}

impl Default for Proxy {
    fn default() -> Self {
        Self {
            models: MODELS.to_vec(),
            bedrock: false,
            auth: false,
            cors: None,
        }
    }
}

impl Proxy {
    /// The proxy's router with this configuration, in front of `upstream`.
    pub fn router(&self, upstream: &str) -> Router {
        self.router_logged(upstream).0
    }

    /// The router, and the JSON log lines it writes.
    pub fn router_logged(&self, upstream: &str) -> (Router, Arc<Mutex<Vec<String>>>) {
        let digest: String = sha2::Sha256::digest(CLIENT_KEY.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mappings: serde_json::Map<String, Value> = self
            .models
            .iter()
            .map(|m| match self.bedrock {
                true => ((*m).to_owned(), json!({"openai": "gpt-4o-mini", "bedrock": m})),
                false => ((*m).to_owned(), json!("gpt-4o-mini")),
            })
            .collect();
        let config = json!({
            "openai_api_key": "sk-endpoint-tests-0123456789abcdef",
            "model_mappings": mappings,
            "timeout_settings": {"openai_api_timeout": 5, "secrets_manager_timeout": 2, "lambda_timeout": 30},
            "openai_base_url": upstream,
            "client_api_keys": [digest],
        });
        let config = ProxyConfig::from_json(&config.to_string(), "http://unused/v1").unwrap();
        let store = ConfigStore::new(
            ConfigSource::Fixed(Arc::new(config)),
            "http://unused/v1",
            Duration::from_secs(300),
        );
        let policy = RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            retry_after_cap: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
        };
        let upstream = Upstream::new(policy, CircuitBreaker::new(5, Duration::from_secs(30)), 1).unwrap();
        let settings = Settings {
            auth_enabled: self.auth,
            cors_origins: self.cors.clone(),
            ..Settings::default()
        };
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut app = AppState::new(settings, store, upstream, Sink::Memory(logs.clone()), false);
        if self.bedrock {
            let emulator = std::env::var("AWS_ENDPOINT_URL")
                .expect("Bedrock is the local AWS's: run under scripts/local-aws.sh");
            let sdk = aws_config::SdkConfig::builder()
                .endpoint_url(emulator)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_bedrockruntime::config::SharedCredentialsProvider::new(
                    aws_sdk_bedrockruntime::config::Credentials::for_tests(),
                ))
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build();
            app.bedrock = openai_proxy_function::bedrock::Bedrock::with_client(
                aws_sdk_bedrockruntime::Client::new(&sdk),
            );
        }
        // The proxy's service, as an axum router the tests can wrap in breaking layers.
        let proxy = openai_proxy_function::Proxy::new(Arc::new(app));
        (Router::new().fallback_service(proxy), logs)
    }

    /// Serves the proxy in front of a fresh upstream; returns its base URL.
    pub async fn start(&self) -> String {
        let upstream = upstream().await;
        format!("http://{}", serve(self.router(&upstream)).await)
    }
}

/// What a deploy would test: every mapped model, chat included, a short warm-up.
pub fn plan(base_url: &str) -> Plan {
    let mut plan = Plan::new(base_url);
    plan.expected_models = MODELS.iter().map(|m| (*m).to_owned()).collect();
    plan.perf_requests = 5;
    plan.warmup = Duration::from_millis(600);
    plan.timeout = Duration::from_secs(10);
    plan
}

pub async fn run(plan: &Plan) -> Results {
    endpoint::run(plan, &Ui::plain()).await
}

/// The names of the checks with `verdict`, in order.
pub fn names(results: &Results, verdict: endpoint::Verdict) -> Vec<&'static str> {
    results
        .checks
        .iter()
        .filter(|c| c.verdict == verdict)
        .map(|c| c.name)
        .collect()
}

/// Asserts that exactly the checks `failed` failed, in this order; the first one's detail.
pub fn failed_only<'a>(results: &'a Results, failed: &[&str]) -> &'a str {
    assert_eq!(names(results, endpoint::Verdict::Failed), failed, "{results:#?}");
    detail(results, failed[0])
}

pub fn detail<'a>(results: &'a Results, name: &str) -> &'a str {
    &results
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {results:#?}"))
        .detail
}

/// The report's endpoint section as a test report shows it.
pub fn section(results: Results) -> String {
    let report = Report {
        command: "test".into(),
        stack: "openai-lambda-proxy".into(),
        endpoint: Some(results),
        ..Report::default()
    };
    let md = report.markdown();
    let start = md.find("### Endpoint tests").expect("an endpoint section");
    let end = md[start..].find("### Use it").map_or(md.len(), |i| start + i);
    md[start..end].to_owned()
}

/// Latencies, ports and the OS's wording vary from run to run.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d+(\.\d+)? ms", "[ms] ms"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (
            r"deployer-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-\d+",
            "[request id]",
        ),
        (r"\(after \d+ attempts\)", "(after [n] attempts)"),
        (r"after \d+ attempts", "after [n] attempts"),
    ]
}

/// Routes every request through `intercept` first; `None` lets it through to `inner`.
pub fn broken(
    inner: Router,
    intercept: fn(&axum::http::Method, &str, &[u8]) -> Option<Response>,
    strip_cors: bool,
) -> Router {
    use axum::middleware::{self, Next};
    let layer = move |request: Request<Body>, next: Next| async move {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        if let Some(answer) = intercept(&parts.method, parts.uri.path(), &bytes) {
            return answer;
        }
        let mut response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
        if strip_cors {
            let names: Vec<_> = response
                .headers()
                .keys()
                .filter(|k| k.as_str().starts_with("access-control-"))
                .cloned()
                .collect();
            for name in names {
                response.headers_mut().remove(name);
            }
        }
        response
    };
    inner.layer(middleware::from_fn(layer))
}

/// Buffers every SSE answer of `inner` whole before passing it on, as API Gateway does in
/// `BUFFERED` mode. `head_first`: the status and headers go at once and the body follows
/// in one piece when complete (a streaming gateway in front of a function that buffers);
/// otherwise the answer waits whole, with a content-length.
pub fn buffering(inner: Router, head_first: bool) -> Router {
    use axum::middleware::{self, Next};
    let layer = move |request: Request<Body>, next: Next| async move {
        let response = next.run(request).await;
        let sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !sse {
            return response;
        }
        let (parts, body) = response.into_parts();
        let whole = async move { axum::body::to_bytes(body, 1 << 20).await };
        if head_first {
            let once = futures_util::stream::once(whole);
            Response::from_parts(parts, Body::from_stream(once))
        } else {
            Response::from_parts(parts, Body::from(whole.await.unwrap_or_default()))
        }
    };
    inner.layer(middleware::from_fn(layer))
}

/// A 500 in OpenAI's shape for every chat completion of a mapped model; the proxy still
/// answers malformed bodies and unknown models itself.
pub fn fail_chat(method: &axum::http::Method, path: &str, body: &[u8]) -> Option<Response> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let mapped = request["model"].as_str().is_some_and(|m| MODELS.contains(&m));
    (method == axum::http::Method::POST && path == "/v1/chat/completions" && mapped).then(|| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                json!({"error": {"message": "The server had an error while processing your request.",
                                        "type": "server_error", "param": null, "code": null}}),
            ),
        )
            .into_response()
    })
}

pub fn pass_through(_: &axum::http::Method, _: &str, _: &[u8]) -> Option<Response> {
    None
}

/// Runs the deployer binary with `vars` (and a scratch report and outputs file) while
/// the test's runtime keeps serving; returns (exit code, stdout, report, outputs).
pub async fn deployer(vars: Vec<(&'static str, String)>) -> (i32, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let outputs = dir.path().join("outputs");
    let (r, o) = (report.clone(), outputs.clone());
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = assert_cmd::Command::cargo_bin("openai-proxy-deployer").unwrap();
        cmd.env_clear().env("GITHUB_OUTPUT", &o);
        let base = [
            ("DEPLOYER_COMMAND", "test".to_owned()),
            // The proxies here take no client key unless a test turns authentication on.
            ("ENABLE_AUTHENTICATION", "false".to_owned()),
            ("PERF_REQUESTS", "3".to_owned()),
            ("REPORT_FILE", r.display().to_string()),
        ];
        // Under Actions the deployer reads inputs only: each setting as the runner passes
        // it, `INPUT_<ID>`.
        let actions = vars.iter().any(|(k, v)| *k == "GITHUB_ACTIONS" && v == "true");
        for (key, value) in base.into_iter().chain(vars) {
            match openai_proxy_deployer::config::VARIABLES
                .iter()
                .find(|v| v.name == key)
            {
                Some(var) if actions => cmd.env(var.input_env(), value),
                _ => cmd.env(key, value),
            };
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        std::fs::read_to_string(report).unwrap_or_default(),
        std::fs::read_to_string(outputs).unwrap_or_default(),
    )
}

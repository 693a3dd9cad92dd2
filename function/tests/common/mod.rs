#![allow(dead_code)] // each test binary uses its own subset

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use openai_proxy_function::app::{AppState, Settings};
use openai_proxy_function::breaker::CircuitBreaker;
use openai_proxy_function::config::{ConfigSource, ConfigStore, ProxyConfig};
use openai_proxy_function::observe::Sink;
use openai_proxy_function::upstream::{RetryPolicy, Upstream};
use sha2::Digest;
use tower::ServiceExt;

pub const OPENAI_KEY: &str = "sk-test-upstream-key-0123456789";
pub const CLIENT_KEY: &str = "client-key-abcdef";

pub fn config_json(base_url: &str) -> serde_json::Value {
    let digest = hex(&sha2::Sha256::digest(CLIENT_KEY.as_bytes()));
    serde_json::json!({
        "openai_api_key": OPENAI_KEY,
        "model_mappings": {"amazon.nova-lite-v1:0": "gpt-4o-mini", "amazon.nova-pro-v1:0": "gpt-4o",
                           "amazon.titan-embed-text-v2:0": "text-embedding-3-small"},
        "timeout_settings": {"openai_api_timeout": 2, "secrets_manager_timeout": 2, "lambda_timeout": 30},
        "openai_base_url": base_url,
        "client_api_keys": [digest],
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Harness {
    pub proxy: openai_proxy_function::Proxy,
    pub app: openai_proxy_function::app::App,
    pub logs: Arc<Mutex<Vec<String>>>,
}

pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        retry_after_cap: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(300),
    }
}

pub fn harness(base_url: &str, settings: Settings) -> Harness {
    harness_with(
        base_url,
        settings,
        fast_policy(),
        CircuitBreaker::new(5, Duration::from_secs(30)),
    )
}

/// One attempt per request: for tests of what happens when an attempt fails.
pub fn harness_without_retries(base_url: &str, breaker: CircuitBreaker) -> Harness {
    let policy = RetryPolicy {
        max_attempts: 1,
        ..fast_policy()
    };
    harness_with(base_url, Settings::default(), policy, breaker)
}

pub fn harness_with(
    base_url: &str,
    settings: Settings,
    policy: RetryPolicy,
    breaker: CircuitBreaker,
) -> Harness {
    harness_with_config(config_json(base_url), settings, policy, breaker)
}

/// A harness whose configuration document is `config` (e.g. [`config_json`], changed).
pub fn harness_with_config(
    config: serde_json::Value,
    settings: Settings,
    policy: RetryPolicy,
    breaker: CircuitBreaker,
) -> Harness {
    let (app, logs) = app_with_config(config, settings, policy, breaker);
    Harness::over(app, logs)
}

/// The process state [`harness_with_config`] serves, to change before serving it; the
/// log lines go to the second value.
pub fn app_with_config(
    config: serde_json::Value,
    settings: Settings,
    policy: RetryPolicy,
    breaker: CircuitBreaker,
) -> (AppState, Arc<Mutex<Vec<String>>>) {
    let config = ProxyConfig::from_json(&config.to_string(), "http://unused/v1").unwrap();
    let store = ConfigStore::new(
        ConfigSource::Fixed(Arc::new(config)),
        "http://unused/v1",
        Duration::from_secs(300),
    );
    let logs = Arc::new(Mutex::new(Vec::new()));
    let upstream = Upstream::new(policy, breaker, 1).unwrap();
    let app = AppState::new(settings, store, upstream, Sink::Memory(logs.clone()), true);
    (app, logs)
}

/// The local AWS emulator's address (`AWS_ENDPOINT_URL`).
pub fn emulator() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at the local emulator: run through `make test` or scripts/local-aws.sh run")
}

/// The SDK configuration for an AWS at `endpoint`: region us-east-1, test credentials.
pub async fn aws_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::for_tests())
        .load()
        .await
}

impl Harness {
    /// The proxy of `app`, whose log lines go to `logs`.
    pub fn over(app: AppState, logs: Arc<Mutex<Vec<String>>>) -> Self {
        let app = Arc::new(app);
        Harness {
            proxy: openai_proxy_function::Proxy::new(app.clone()),
            app,
            logs,
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The ids of a model list (`GET /v1/models`).
    pub fn model_ids(&self) -> Vec<String> {
        self.json()["data"]
            .as_array()
            .unwrap_or_else(|| panic!("not a model list: {}", self.text()))
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Asserts an answer in OpenAI's error shape with this status and `code`; returns the
    /// `error` object.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text());
        let error = self.error();
        assert_eq!(error["code"], code, "{error}");
        error
    }

    /// Asserts OpenAI's error shape and returns the `error` object.
    pub fn error(&self) -> serde_json::Value {
        let body = self.json();
        let error = body["error"].clone();
        for key in ["message", "type", "param", "code"] {
            assert!(error.get(key).is_some(), "error lacks `{key}`: {body}");
        }
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        error
    }
}

impl Harness {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.proxy.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method path` without a body.
    pub async fn empty(&self, method: axum::http::Method, path: &str) -> Reply {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    /// GETs `path` with one header set.
    pub async fn get_with(&self, path: &str, name: &str, value: &str) -> Reply {
        self.send(
            Request::get(path)
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// POSTs `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send_json(path, body.to_string()).await
    }

    /// POSTs `body`, JSON text as written, to `path`.
    pub async fn send_json(&self, path: &str, body: String) -> Reply {
        self.post_with(path, &[], body).await
    }

    /// `POST path` of a JSON `body` (any body: a stream, bytes that are not JSON), with
    /// `headers` besides its content type.
    pub async fn post_with(&self, path: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
        let mut request = Request::post(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(body.into()).unwrap()).await
    }

    pub async fn chat(&self, body: serde_json::Value) -> Reply {
        self.post("/v1/chat/completions", body).await
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The request log lines (not the EMF ones).
    pub fn request_logs(&self) -> Vec<serde_json::Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.get("_aws").is_none())
            .collect()
    }
}

pub fn completion(model: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    })
}

pub fn chat_request(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 5})
}

/// [`chat_request`] with `"stream": true`.
pub fn streamed(model: &str) -> serde_json::Value {
    let mut request = chat_request(model);
    request["stream"] = true.into();
    request
}

/// The events of an SSE body, blank separators dropped.
pub fn sse_events(text: &str) -> Vec<&str> {
    text.split("\n\n").filter(|e| !e.is_empty()).collect()
}

/// A wiremock upstream, each test its own, and its base URL (`…/v1`).
pub async fn upstream() -> (wiremock::MockServer, String) {
    let server = wiremock::MockServer::start().await;
    let base = format!("{}/v1", server.uri());
    (server, base)
}

/// An upstream that answers POSTs to `at` whose JSON body includes `partial` with
/// `answer`, exactly `times` of them, behind a proxy with the default settings.
pub async fn proxy_answering(
    at: &str,
    partial: serde_json::Value,
    answer: wiremock::ResponseTemplate,
    times: u64,
) -> (wiremock::MockServer, Harness) {
    use wiremock::matchers::{body_partial_json, method, path};
    let (server, base) = upstream().await;
    wiremock::Mock::given(method("POST"))
        .and(path(at))
        .and(body_partial_json(partial))
        .respond_with(answer)
        .expect(times)
        .mount(&server)
        .await;
    (server, harness(&base, Settings::default()))
}

/// An upstream that answers every POST with `answer`, and exactly `times` of them (the
/// mock checks the count when dropped), behind a proxy with the default settings.
pub async fn proxy_answered_by(
    answer: wiremock::ResponseTemplate,
    times: u64,
) -> (wiremock::MockServer, Harness) {
    let (server, base) = upstream().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(answer)
        .expect(times)
        .mount(&server)
        .await;
    (server, harness(&base, Settings::default()))
}

/// What a [`sse_upstream`] saw of its one request.
#[derive(Debug)]
pub struct StreamReport {
    /// The request as received (head and body).
    pub request: String,
    /// Events written, `[DONE]` not counted.
    pub sent: usize,
    /// The proxy hung up before the stream was complete.
    pub peer_closed: bool,
}

/// A raw-socket upstream for one request, for answers wiremock cannot give (a length it
/// does not keep, a stream held open): it reads the request, then `answer` writes to the
/// socket. Its base URL.
pub async fn raw_answer<F, Fut>(answer: F) -> String
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.set_nodelay(true).unwrap();
        let mut request = vec![0u8; 65536];
        let _ = socket.read(&mut request).await;
        answer(socket).await;
    });
    format!("http://{address}/v1")
}

/// A raw-socket upstream: for each connection, reads the whole request, writes `answer`
/// (nothing, a head alone, a head and part of a body), then holds the connection for
/// `hold` and closes it. Returns its base URL and how many connections it accepted.
pub async fn raw_upstream(
    answer: &'static str,
    hold: Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut reader, mut writer) = socket.into_split();
                read_request(&mut reader).await;
                let _ = writer.write_all(answer.as_bytes()).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    (base, accepted)
}

/// A raw-socket SSE upstream for one request. It answers with the head and the first
/// event at once, waits for `go`, then writes the other `events - 1` events `interval`
/// apart and `[DONE]`, watching the socket all the while: when the proxy hangs up, it
/// stops and says so in its report. Every event's `model` is `gpt-4o-mini` and its
/// content `tok<n>`.
pub async fn sse_upstream(
    events: usize,
    interval: Duration,
    go: impl std::future::Future<Output = ()> + Send + 'static,
) -> (String, tokio::sync::oneshot::Receiver<StreamReport>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (report_tx, report_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (mut reader, mut writer) = socket.into_split();
        let request = read_request(&mut reader).await;
        let event = |n: usize| {
            let chunk = serde_json::json!({
                "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": format!("tok{n}")}, "finish_reason": null}],
            });
            chunked(&format!("data: {chunk}\n\n"))
        };
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let mut report = StreamReport {
            request,
            sent: 0,
            peer_closed: false,
        };
        if writer
            .write_all(format!("{head}{}", event(0)).as_bytes())
            .await
            .is_ok()
        {
            report.sent = 1;
        }
        go.await;
        let mut buf = [0u8; 1024];
        while report.sent < events && !report.peer_closed {
            tokio::select! {
                read = reader.read(&mut buf) => report.peer_closed = !matches!(read, Ok(n) if n > 0),
                () = tokio::time::sleep(interval) => {
                    match writer.write_all(event(report.sent).as_bytes()).await {
                        Ok(()) => report.sent += 1,
                        Err(_) => report.peer_closed = true,
                    }
                }
            }
        }
        if !report.peer_closed {
            let end = format!("{}0\r\n\r\n", chunked("data: [DONE]\n\n"));
            report.peer_closed = writer.write_all(end.as_bytes()).await.is_err();
        }
        let _ = report_tx.send(report);
    });
    (base_url, report_rx)
}

pub fn chunked(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

/// Reads one HTTP/1.1 request with a `content-length` body.
pub async fn read_request(reader: &mut tokio::net::tcp::OwnedReadHalf) -> String {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return text;
            }
        }
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&data).into_owned(),
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// Serves the proxy on a free local port, as the binary's local mode does (two workers).
pub async fn serve_proxy(proxy: openai_proxy_function::Proxy) -> std::net::SocketAddr {
    serve_proxy_with(proxy, openai_proxy_function::server::Limits::default()).await
}

/// [`serve_proxy`] with these limits.
pub async fn serve_proxy_with(
    proxy: openai_proxy_function::Proxy,
    limits: openai_proxy_function::server::Limits,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(openai_proxy_function::server::serve_http(
        listener,
        proxy,
        2,
        limits,
        std::future::pending(),
    ));
    address
}

/// The function binary a test runs: the host build cargo made for this test, unless
/// `OPENAI_PROXY_FUNCTION_BINARY` names another one (scripts/test-arm64.sh: the release
/// arm64 `bootstrap`), started through `OPENAI_PROXY_FUNCTION_WRAPPER` when that is set
/// (`qemu-aarch64-static -L /usr/aarch64-linux-gnu`).
pub fn function_command() -> tokio::process::Command {
    let binary = match std::env::var_os("OPENAI_PROXY_FUNCTION_BINARY") {
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            assert!(
                path.is_file(),
                "OPENAI_PROXY_FUNCTION_BINARY={} is not a file",
                path.display()
            );
            path
        }
        None => env!("CARGO_BIN_EXE_openai-proxy-function").into(),
    };
    let wrapper = std::env::var("OPENAI_PROXY_FUNCTION_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = tokio::process::Command::new(program);
            command.args(words).arg(binary);
            command
        }
        None => tokio::process::Command::new(binary),
    }
}

/// The usage table on the local AWS (DynamoDB), as the template makes it.
pub async fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&aws_at(endpoint).await)
}

/// A new table of the template's shape; its name.
pub async fn usage_table(db: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = format!("usage-{}", uuid::Uuid::new_v4());
    let pk = AttributeDefinition::builder().attribute_name("pk");
    let hash = KeySchemaElement::builder().attribute_name("pk");
    db.create_table()
        .table_name(&name)
        .attribute_definitions(pk.attribute_type(ScalarAttributeType::S).build().unwrap())
        .key_schema(hash.key_type(KeyType::Hash).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}

/// The number attributes of the usage table's item `pk`, read consistently.
pub async fn numbers(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> std::collections::HashMap<String, i64> {
    let read = db
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = read.item().unwrap_or_else(|| panic!("no item {pk}"));
    item.iter()
        .filter_map(|(name, value)| Some((name.clone(), value.as_n().ok()?.parse().ok()?)))
        .collect()
}

/// The counters of `client`'s item this month.
pub async fn counters(db: &aws_sdk_dynamodb::Client, table: &str, client: &str) -> (u64, u64, u64) {
    let month = openai_proxy_function::spend::ledger::Windows::now().month;
    let n = numbers(db, table, &format!("{client}#{month}")).await;
    let get = |name: &str| u64::try_from(n[name]).unwrap();
    (get("requests"), get("tokens"), get("month_usd"))
}

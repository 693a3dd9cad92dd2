//! Endpoint tests: what an OpenAI client sees of the deployed proxy. Health, the model
//! list, a chat completion and a streamed one, a browser's CORS preflight, the error
//! shapes, authentication when it is on, and a small latency probe. Each check records
//! its verdict, latency and, on failure, what was expected and what came back, in one
//! line. The client key is sent, never printed.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::aws::Aws;
use crate::ui::Ui;

/// The browser origin of the CORS preflight when the proxy allows any origin.
pub const ORIGIN: &str = "https://app.example.com";
/// What the OpenAI SDKs ask for in a browser (the `x-stainless-*` family included).
pub const PREFLIGHT_HEADERS: &str = "authorization, content-type, x-stainless-os";
/// A model id no mapping should list.
pub const UNKNOWN_MODEL: &str = "openai-proxy-deployer-no-such-model";
const UNKNOWN_PATH: &str = "/v1/openai-proxy-deployer-no-such-path";
/// Requests in flight at once in the concurrent probe: API Gateway's default burst
/// (ThrottlingBurstLimit 100) is far above it, so a large PERF_REQUESTS is not throttled.
pub const CONCURRENCY: usize = 20;
/// The longest detail kept for one check: the report is a table, one line per check.
const DETAIL_LIMIT: usize = 300;

/// What to test, and where. Its `Debug` never shows the client key.
#[derive(Clone)]
pub struct Plan {
    /// The API's base URL with its stage, without `/v1` (the stack's `ApiUrl`).
    pub base_url: String,
    /// Model ids the list must contain; empty: any non-empty list will do.
    pub expected_models: Vec<String>,
    /// Run the chat completions (they cost a few tokens).
    pub chat: bool,
    /// Authentication is on: without a key the proxy must answer 401.
    pub auth: bool,
    /// The client key sent with every request but the one testing its absence.
    pub client_key: Option<String>,
    /// Requests per performance probe (sequential, then concurrent); 0 skips it.
    pub perf_requests: usize,
    /// The browser origin of the CORS preflight: one the proxy allows.
    pub origin: String,
    /// How long the first request is retried (a fresh API Gateway deployment may need
    /// seconds before it answers).
    pub warmup: Duration,
    /// Limit of one request; chat completions get three times as long.
    pub timeout: Duration,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("base_url", &self.base_url)
            .field("expected_models", &self.expected_models)
            .field("chat", &self.chat)
            .field("auth", &self.auth)
            .field("client_key", &self.client_key.as_ref().map(|_| "***"))
            .field("perf_requests", &self.perf_requests)
            .field("origin", &self.origin)
            .field("warmup", &self.warmup)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Plan {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim().trim_end_matches('/').to_owned(),
            expected_models: Vec::new(),
            chat: true,
            auth: false,
            client_key: None,
            perf_requests: 20,
            origin: ORIGIN.to_owned(),
            warmup: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// Of the request that decided the verdict; none for a skipped check.
    pub millis: Option<f64>,
    /// Failed: expected vs actual; skipped: why; passed: a short note (may be empty).
    pub detail: String,
}

/// Latencies of one performance probe, in milliseconds.
#[derive(Debug, Clone)]
pub struct Probe {
    pub mode: &'static str,
    pub requests: usize,
    pub errors: usize,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Results {
    pub base_url: String,
    /// Every request carries `x-request-id: <run_id>-<n>`: the proxy logs it, so the
    /// tests' log lines are found by this prefix.
    pub run_id: String,
    /// The model id the chat tests used.
    pub model: Option<String>,
    pub auth: bool,
    pub checks: Vec<Check>,
    pub probes: Vec<Probe>,
}

impl Results {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }

    pub fn passed(&self) -> bool {
        self.count(Verdict::Failed) == 0 && !self.checks.is_empty()
    }

    /// "11 passed, 1 failed, 2 skipped".
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} passed", self.count(Verdict::Passed))];
        for (verdict, word) in [(Verdict::Failed, "failed"), (Verdict::Skipped, "skipped")] {
            let n = self.count(verdict);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        parts.join(", ")
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Failed)
    }
}

/// One answer, read whole.
struct Reply {
    request_id: String,
    status: u16,
    headers: HeaderMap,
    body: String,
    millis: f64,
}

impl Reply {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// "HTTP 500 (x-request-id …): {body}" in one line, for the actual side of a failure.
    fn said(&self) -> String {
        let body = self.body.trim();
        let status = format!("HTTP {} (x-request-id {})", self.status, self.request_id);
        if body.is_empty() {
            format!("{status} with an empty body")
        } else {
            format!("{status}: {}", excerpt(body, 160))
        }
    }

    /// The `error` object when the body is in OpenAI's error shape.
    fn openai_error(&self) -> Option<Value> {
        let error = self.json()?.get("error")?.clone();
        (error.get("message").is_some_and(Value::is_string)
            && error.get("type").is_some_and(Value::is_string))
        .then_some(error)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One check's outcome before it is recorded: Ok(note) or Err(expected vs actual).
type Outcome = Result<String, String>;

struct Tester<'a> {
    plan: &'a Plan,
    ui: &'a Ui,
    client: reqwest::Client,
    results: Results,
    /// Requests sent so far: the last part of the next request id.
    sent: std::cell::Cell<u32>,
}

/// Runs every check of `plan` against its target. Never fails as a whole: each problem
/// is a failed check in the results.
pub async fn run(plan: &Plan, ui: &Ui) -> Results {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(plan.timeout)
        .user_agent(concat!(
            "openai-proxy-deployer/",
            env!("CARGO_PKG_VERSION"),
            " endpoint-tests"
        ))
        .build();
    let mut tester = Tester {
        plan,
        ui,
        client: client.unwrap_or_default(),
        results: Results {
            base_url: plan.base_url.clone(),
            run_id: run_id(),
            auth: plan.auth,
            ..Results::default()
        },
        sent: std::cell::Cell::new(0),
    };
    tester.all().await;
    tester.results
}

impl Tester<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.plan.base_url)
    }

    fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.plan.client_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, String> {
        self.sent.set(self.sent.get() + 1);
        let request_id = format!("{}-{}", self.results.run_id, self.sent.get());
        let request = request.header("x-request-id", &request_id);
        let started = Instant::now();
        let response = request.send().await.map_err(|e| transport(&e, self.plan))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| transport(&e, self.plan))?;
        Ok(Reply {
            request_id,
            status,
            headers,
            body,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn record(&mut self, name: &'static str, ms: Option<f64>, outcome: Outcome) {
        let (verdict, detail) = match outcome {
            Ok(note) => (Verdict::Passed, note),
            Err(problem) => (Verdict::Failed, problem),
        };
        let detail = self.clean(&detail);
        let latency = ms.map(|ms| format!(" ({})", millis(ms))).unwrap_or_default();
        match verdict {
            Verdict::Failed => self.ui.step(&format!("❌ {name}{latency}: {detail}")),
            _ if detail.is_empty() => self.ui.step(&format!("✅ {name}{latency}")),
            _ => self.ui.step(&format!("✅ {name}{latency}: {detail}")),
        }
        self.results.checks.push(Check {
            name,
            verdict,
            millis: ms,
            detail,
        });
    }

    fn skip(&mut self, name: &'static str, reason: &str) {
        self.ui.step(&format!("⏭️ {name}: skipped, {reason}"));
        self.results.checks.push(Check {
            name,
            verdict: Verdict::Skipped,
            millis: None,
            detail: reason.to_owned(),
        });
    }

    /// One line, bounded, and never the client key (should a server ever echo it).
    fn clean(&self, text: &str) -> String {
        let mut text = text.replace(['\n', '\r'], " ");
        if let Some(key) = self.plan.client_key.as_deref().filter(|k| !k.is_empty()) {
            text = text.replace(key, "***");
        }
        excerpt(&text, DETAIL_LIMIT)
    }

    async fn all(&mut self) {
        if !self.health().await {
            let reason = "the target did not answer /health";
            for name in [
                "models list",
                "chat completion",
                "streaming chat",
                "CORS preflight",
                "malformed JSON → 400",
                "unknown model → 404",
                "unknown path → 404",
            ] {
                self.skip(name, reason);
            }
            return;
        }
        // Without the key it needs, a check would only meet the 401 tested below.
        let keyless = self.plan.auth && self.plan.client_key.is_none();
        let needs_key = "needs TEST_CLIENT_API_KEY (authentication is on)";
        let model = if keyless {
            self.skip("models list", needs_key);
            self.plan.expected_models.first().cloned()
        } else {
            self.models().await
        };
        self.results.model.clone_from(&model);
        match (&model, self.plan.chat, keyless) {
            (_, false, _) => {
                self.skip("chat completion", "TEST_CHAT_COMPLETION=false");
                self.skip("streaming chat", "TEST_CHAT_COMPLETION=false");
            }
            (_, true, true) => {
                self.skip("chat completion", needs_key);
                self.skip("streaming chat", needs_key);
            }
            (None, true, false) => {
                let problem = "expected a model id to chat with; the model list gave none";
                self.record("chat completion", None, Err(problem.into()));
                self.record("streaming chat", None, Err(problem.into()));
            }
            (Some(model), true, false) => {
                let model = model.clone();
                self.chat(&model).await;
                self.stream(&model).await;
            }
        }
        self.preflight().await;
        if keyless {
            for name in [
                "malformed JSON → 400",
                "unknown model → 404",
                "unknown path → 404",
            ] {
                self.skip(name, needs_key);
            }
        } else {
            self.malformed().await;
            self.unknown_model().await;
            self.unknown_path().await;
        }
        if self.plan.auth {
            self.auth().await;
        }
        if self.plan.perf_requests > 0 {
            self.performance().await;
        }
    }

    /// The first request: retried until the warm-up time is spent. False when the target
    /// never answered at all (the other checks would only repeat that).
    async fn health(&mut self) -> bool {
        let deadline = Instant::now() + self.plan.warmup;
        let mut delay = Duration::from_millis(250);
        let mut attempts = 0;
        let last = loop {
            attempts += 1;
            let reply = self.send(self.client.get(self.url("/health"))).await;
            let healthy = matches!(&reply, Ok(r) if r.status == 200);
            if healthy || Instant::now() + delay > deadline {
                break reply;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        };
        let retried = if attempts > 1 {
            format!(" (after {attempts} attempts)")
        } else {
            String::new()
        };
        let expected = "expected HTTP 200 with {\"status\":\"ok\"} from GET /health";
        match last {
            Err(problem) => {
                self.record(
                    "health",
                    None,
                    Err(format!("{expected}; got no answer{retried}: {problem}")),
                );
                false
            }
            Ok(reply) => {
                let ok = reply.status == 200 && reply.json().is_some_and(|b| b["status"] == "ok");
                let outcome = if ok {
                    Ok(retried.trim().trim_matches(['(', ')']).to_owned())
                } else {
                    Err(format!("{expected}; got {}{retried}", reply.said()))
                };
                self.record("health", Some(reply.millis), outcome);
                true
            }
        }
    }

    /// Returns the model id to chat with: the first expected one, else the first listed.
    async fn models(&mut self) -> Option<String> {
        let name = "models list";
        let reply = match self
            .send(self.with_key(self.client.get(self.url("/v1/models"))))
            .await
        {
            Ok(reply) => reply,
            Err(problem) => {
                self.record(
                    name,
                    None,
                    Err(format!(
                        "expected HTTP 200 from GET /v1/models; got no answer: {problem}"
                    )),
                );
                return self.plan.expected_models.first().cloned();
            }
        };
        let listed: Option<Vec<String>> = reply.json().and_then(|body| {
            (body["object"] == "list").then_some(())?;
            body["data"]
                .as_array()?
                .iter()
                .map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        });
        let expected = &self.plan.expected_models;
        let outcome = match (&listed, reply.status) {
            (Some(ids), 200) => {
                let missing: Vec<&str> = expected
                    .iter()
                    .filter(|id| !ids.contains(id))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    Err(format!(
                        "expected the list to contain {}; missing {} (listed: {})",
                        expected.join(", "),
                        missing.join(", "),
                        if ids.is_empty() {
                            "none".to_owned()
                        } else {
                            ids.join(", ")
                        }
                    ))
                } else if ids.is_empty() {
                    Err("expected at least one model; got an empty list".into())
                } else {
                    Ok(format!("{} listed", ids.len()))
                }
            }
            _ => Err(format!(
                "expected HTTP 200 with an OpenAI model list; got {}",
                reply.said()
            )),
        };
        self.record(name, Some(reply.millis), outcome);
        expected
            .first()
            .cloned()
            .or_else(|| listed.and_then(|ids| ids.into_iter().next()))
    }

    fn chat_body(model: &str, stream: bool) -> Value {
        let mut body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "Reply with the single word: ok"}],
            "max_tokens": 8,
        });
        if stream {
            body["stream"] = true.into();
        }
        body
    }

    fn post_chat(&self, body: String) -> reqwest::RequestBuilder {
        self.with_key(
            self.client
                .post(self.url("/v1/chat/completions"))
                .header(header::CONTENT_TYPE, "application/json")
                .timeout(self.plan.timeout * 3)
                .body(body),
        )
    }

    async fn chat(&mut self, model: &str) {
        let name = "chat completion";
        let expected = format!("expected HTTP 200 with a chat.completion for model {model}");
        let reply = match self
            .send(self.post_chat(Self::chat_body(model, false).to_string()))
            .await
        {
            Ok(reply) => reply,
            Err(problem) => {
                return self.record(name, None, Err(format!("{expected}; got no answer: {problem}")));
            }
        };
        let outcome = match reply.json() {
            Some(body) if reply.status == 200 && body["object"] == "chat.completion" => {
                let message = &body["choices"][0]["message"];
                if body["model"] != model {
                    Err(format!("{expected}; got model {}", body["model"]))
                } else if message["role"] != "assistant" {
                    Err(format!(
                        "{expected} and an assistant message; got choices {}",
                        excerpt(&body["choices"].to_string(), 120)
                    ))
                } else {
                    let answer = message["content"].as_str().unwrap_or_default();
                    Ok(format!("answer: \"{}\"", excerpt(answer.trim(), 80)))
                }
            }
            _ => Err(format!("{expected}; got {}", reply.said())),
        };
        self.record(name, Some(reply.millis), outcome);
    }

    async fn stream(&mut self, model: &str) {
        let name = "streaming chat";
        let expected = format!("expected HTTP 200, SSE chunks for model {model}, then data: [DONE]");
        let reply = match self
            .send(self.post_chat(Self::chat_body(model, true).to_string()))
            .await
        {
            Ok(reply) => reply,
            Err(problem) => {
                return self.record(name, None, Err(format!("{expected}; got no answer: {problem}")));
            }
        };
        let content_type = reply.header("content-type").unwrap_or_default().to_owned();
        let outcome = if reply.status != 200 || !content_type.starts_with("text/event-stream") {
            Err(format!(
                "{expected}; got {} ({})",
                reply.said(),
                if content_type.is_empty() {
                    "no content-type".to_owned()
                } else {
                    content_type
                }
            ))
        } else {
            let events: Vec<&str> = reply
                .body
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            let chunks: Vec<Value> = events
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                .filter(|c| c["object"] == "chat.completion.chunk")
                .collect();
            let done = events.last() == Some(&"[DONE]");
            let other_model = chunks.iter().find(|c| c["model"] != model);
            // The proxy reports a failure mid-stream as an error event (then [DONE]).
            let error_event = events
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                .find(|e| e.get("error").is_some());
            match (chunks.len(), done, other_model) {
                _ if let Some(error) = error_event => Err(format!(
                    "{expected}; got an error event after {} chunks: {}",
                    chunks.len(),
                    excerpt(&error.to_string(), 160)
                )),
                (0, _, _) => Err(format!(
                    "{expected}; got no chat.completion.chunk in {} events",
                    events.len()
                )),
                (n, false, _) => Err(format!("{expected}; got {n} chunks and no [DONE] at the end")),
                (_, true, Some(c)) => Err(format!("{expected}; got a chunk for model {}", c["model"])),
                (n, true, None) => Ok(format!("{n} chunks, then [DONE]")),
            }
        };
        self.record(name, Some(reply.millis), outcome);
    }

    async fn preflight(&mut self) {
        let name = "CORS preflight";
        let request = self
            .client
            .request(reqwest::Method::OPTIONS, self.url("/v1/chat/completions"))
            .header(header::ORIGIN, &self.plan.origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, PREFLIGHT_HEADERS);
        let expected = format!(
            "expected a 2xx allowing origin {}, method POST and headers {PREFLIGHT_HEADERS}",
            self.plan.origin
        );
        let reply = match self.send(request).await {
            Ok(reply) => reply,
            Err(problem) => {
                return self.record(name, None, Err(format!("{expected}; got no answer: {problem}")));
            }
        };
        let origin = reply.header("access-control-allow-origin").unwrap_or_default();
        let methods = reply.header("access-control-allow-methods").unwrap_or_default();
        let headers = reply.header("access-control-allow-headers").unwrap_or_default();
        let allows = |list: &str, wanted: &str| {
            list.split(',')
                .map(|item| item.trim())
                .any(|item| item == "*" || item.eq_ignore_ascii_case(wanted))
        };
        let ok = (200..300).contains(&reply.status)
            && (origin == "*" || origin == self.plan.origin)
            && allows(methods, "POST")
            && PREFLIGHT_HEADERS.split(", ").all(|h| allows(headers, h));
        let shown = |v: &str| {
            if v.is_empty() {
                "(none)".to_owned()
            } else {
                v.to_owned()
            }
        };
        let outcome = if ok {
            Ok(String::new())
        } else {
            Err(format!(
                "{expected}; got HTTP {} with allow-origin {}, allow-methods {}, allow-headers {}",
                reply.status,
                shown(origin),
                shown(methods),
                shown(headers)
            ))
        };
        self.record(name, Some(reply.millis), outcome);
    }

    /// An error answer: `status` with OpenAI's error shape and, when given, that `code`.
    async fn error_check(
        &mut self,
        name: &'static str,
        request: reqwest::RequestBuilder,
        status: u16,
        code: Option<&str>,
    ) {
        let expected = match code {
            Some(code) => format!("expected HTTP {status} with an OpenAI error, code {code}"),
            None => format!("expected HTTP {status} with an OpenAI error"),
        };
        let reply = match self.send(request).await {
            Ok(reply) => reply,
            Err(problem) => {
                return self.record(name, None, Err(format!("{expected}; got no answer: {problem}")));
            }
        };
        let error = reply.openai_error();
        let ok = reply.status == status
            && error
                .as_ref()
                .is_some_and(|e| code.is_none_or(|code| e["code"] == code));
        let outcome = if ok {
            Ok(String::new())
        } else {
            Err(format!("{expected}; got {}", reply.said()))
        };
        self.record(name, Some(reply.millis), outcome);
    }

    async fn malformed(&mut self) {
        let request = self.post_chat("{\"model\": \"x\", \"messages\": [".into());
        self.error_check("malformed JSON → 400", request, 400, None).await;
    }

    async fn unknown_model(&mut self) {
        let body = Self::chat_body(UNKNOWN_MODEL, false).to_string();
        let request = self.post_chat(body);
        self.error_check("unknown model → 404", request, 404, Some("model_not_found"))
            .await;
    }

    async fn unknown_path(&mut self) {
        let request = self.with_key(self.client.get(self.url(UNKNOWN_PATH)));
        self.error_check("unknown path → 404", request, 404, None).await;
    }

    async fn auth(&mut self) {
        let request = self.client.get(self.url("/v1/models"));
        self.error_check("auth: no key → 401", request, 401, None).await;
        let name = "auth: valid key → 200";
        if self.plan.client_key.is_none() {
            return self.record(name, None, Err("expected a client key to test with; TEST_CLIENT_API_KEY is not set (set it to a key whose SHA-256 hex is in the secret's client_api_keys, or RUN_ENDPOINT_TESTS=false)".into()));
        }
        let expected = "expected HTTP 200 from GET /v1/models with the client key";
        let outcome = match self
            .send(self.with_key(self.client.get(self.url("/v1/models"))))
            .await
        {
            Ok(reply) if reply.status == 200 => (Some(reply.millis), Ok(String::new())),
            Ok(reply) => (
                Some(reply.millis),
                Err(format!("{expected}; got {}", reply.said())),
            ),
            Err(problem) => (None, Err(format!("{expected}; got no answer: {problem}"))),
        };
        self.record(name, outcome.0, outcome.1);
    }

    async fn performance(&mut self) {
        let n = self.plan.perf_requests;
        let health = || self.send(self.client.get(self.url("/health")));
        let mut sequential = Vec::with_capacity(n);
        for _ in 0..n {
            sequential.push(health().await);
        }
        let concurrent: Vec<_> = futures_util::stream::iter((0..n).map(|_| health()))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (mode, replies) in [("sequential", sequential), ("concurrent", concurrent)] {
            let (probe, first_error) = probe(mode, &replies);
            let name = match mode {
                "sequential" => "performance: sequential /health",
                _ => "performance: concurrent /health",
            };
            let at_once = match mode {
                "sequential" => String::new(),
                _ => format!(", {} at a time", n.min(CONCURRENCY)),
            };
            let figures = format!(
                "{n} requests{at_once}: p50 {}, p95 {}, max {}",
                millis(probe.p50),
                millis(probe.p95),
                millis(probe.max)
            );
            let outcome = match first_error {
                None => Ok(figures),
                Some(first) => Err(format!(
                    "expected {n} × HTTP 200; got {} errors (first: {first}){}",
                    probe.errors,
                    if first.starts_with("HTTP 429") {
                        "; API Gateway throttled the probe: lower PERF_REQUESTS or raise ThrottlingRateLimit/ThrottlingBurstLimit"
                    } else {
                        ""
                    }
                )),
            };
            self.record(name, Some(probe.p50), outcome);
            self.results.probes.push(probe);
        }
    }
}

/// `deployer-` and eight hex digits, different for every run (a request id the proxy
/// accepts: letters, digits and `-`).
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    format!("deployer-{:08x}", (mixed ^ (mixed >> 29)) as u32)
}

/// Percentiles by nearest rank over the answered requests.
fn probe(mode: &'static str, replies: &[Result<Reply, String>]) -> (Probe, Option<String>) {
    let mut millis: Vec<f64> = replies.iter().flatten().map(|r| r.millis).collect();
    millis.sort_by(f64::total_cmp);
    let rank = |p: f64| -> f64 {
        if millis.is_empty() {
            return 0.0;
        }
        let index = ((p * millis.len() as f64).ceil() as usize).clamp(1, millis.len()) - 1;
        millis[index]
    };
    let errors: Vec<String> = replies
        .iter()
        .filter_map(|r| match r {
            Ok(reply) if reply.status == 200 => None,
            Ok(reply) => Some(reply.said()),
            Err(problem) => Some(problem.clone()),
        })
        .collect();
    (
        Probe {
            mode,
            requests: replies.len(),
            errors: errors.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            max: millis.last().copied().unwrap_or(0.0),
        },
        errors.into_iter().next(),
    )
}

/// The origin a browser would send: the first of the template's `CorsAllowedOrigins`
/// when it lists origins, else [`ORIGIN`] (any origin is allowed).
pub fn browser_origin(cors_allowed_origins: Option<&str>) -> String {
    cors_allowed_origins
        .and_then(|list| list.split(',').map(str::trim).find(|o| !o.is_empty()))
        .filter(|first| *first != "*")
        .map_or_else(
            || ORIGIN.to_owned(),
            |first| first.trim_end_matches('/').to_owned(),
        )
}

/// A template parameter's value in a PARAMETER_OVERRIDES object (strings and numbers).
pub fn parameter_override(overrides: Option<&str>, name: &str) -> Option<String> {
    let map: serde_json::Map<String, Value> = serde_json::from_str(overrides?).ok()?;
    match map.get(name)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The model ids a MODEL_MAPPINGS value maps, when it is set.
pub fn mapped_ids(model_mappings: Option<&str>) -> Option<Vec<String>> {
    let map: serde_json::Map<String, Value> = serde_json::from_str(model_mappings?).ok()?;
    Some(map.keys().cloned().collect())
}

/// The model ids the deployed secret maps; empty when it cannot be read (the tests then
/// only ask for a non-empty list).
pub async fn secret_model_ids(aws: &Aws, secret_arn: &str) -> Vec<String> {
    let Ok(out) = aws.secrets.get_secret_value().secret_id(secret_arn).send().await else {
        return Vec::new();
    };
    out.secret_string()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| Some(v.get("model_mappings")?.as_object()?.keys().cloned().collect()))
        .unwrap_or_default()
}

/// A transport failure in a few words: refused, timed out, or the innermost cause.
fn transport(err: &reqwest::Error, plan: &Plan) -> String {
    if err.is_timeout() {
        return format!("no answer within {} s", plan.timeout.as_secs());
    }
    let mut innermost: &dyn std::error::Error = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let cause = innermost.to_string();
    if err.is_connect() {
        format!("could not connect ({cause})")
    } else if err.is_body() || err.is_decode() {
        format!("the answer broke off ({cause})")
    } else {
        format!("the request failed ({cause})")
    }
}

/// A latency: tenths below 10 ms (a local target), whole milliseconds above.
pub fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// At most `limit` characters, cut at a character boundary, marked when cut.
pub fn excerpt(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, millis: f64) -> Result<Reply, String> {
        Ok(Reply {
            request_id: "deployer-0000000a-1".into(),
            status,
            headers: HeaderMap::new(),
            body: String::new(),
            millis,
        })
    }

    #[test]
    fn percentiles_are_nearest_rank_and_errors_are_counted() {
        let mut replies: Vec<_> = (1..=20).map(|ms| reply(200, f64::from(ms))).collect();
        replies.push(Err("could not connect (refused)".into()));
        replies.push(reply(502, 99.0));
        let (probe, first) = probe("sequential", &replies);
        assert_eq!(probe.requests, 22);
        assert_eq!(probe.errors, 2);
        // 21 answered latencies: 1..=20 and 99.
        assert_eq!((probe.p50, probe.p95, probe.max), (11.0, 20.0, 99.0));
        assert_eq!(first.as_deref(), Some("could not connect (refused)"));
        let (empty, none) = probe_of_nothing();
        assert_eq!((empty.p50, empty.max, none), (0.0, 0.0, None));
    }

    fn probe_of_nothing() -> (Probe, Option<String>) {
        probe("concurrent", &[])
    }

    #[test]
    fn the_preflight_origin_is_one_the_proxy_allows() {
        assert_eq!(browser_origin(None), ORIGIN);
        assert_eq!(browser_origin(Some("*")), ORIGIN);
        assert_eq!(
            browser_origin(Some("https://a.example/, http://localhost:3000")),
            "https://a.example"
        );
        let overrides = Some(r#"{"CorsAllowedOrigins":"https://b.example","MemorySize":1024}"#);
        assert_eq!(
            parameter_override(overrides, "CorsAllowedOrigins").as_deref(),
            Some("https://b.example")
        );
        assert_eq!(
            parameter_override(overrides, "MemorySize").as_deref(),
            Some("1024")
        );
        assert_eq!(parameter_override(overrides, "Stage"), None);
    }

    #[test]
    fn excerpts_cut_at_characters_and_say_so() {
        assert_eq!(excerpt("héllo", 10), "héllo");
        assert_eq!(excerpt("héllo", 2), "hé…");
    }

    #[test]
    fn a_plan_has_no_trailing_slash_and_hides_its_key() {
        let mut plan = Plan::new(" http://h:1/prod/ ");
        assert_eq!(plan.base_url, "http://h:1/prod");
        plan.client_key = Some("client-secret-key".into());
        let shown = format!("{plan:?}");
        assert!(
            shown.contains("client_key: Some(\"***\")") && !shown.contains("client-secret"),
            "{shown}"
        );
    }
}

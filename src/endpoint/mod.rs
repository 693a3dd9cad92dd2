//! Endpoint tests: what an OpenAI client sees of the deployed proxy. Health, the model
//! list, a chat completion and a streamed one, a browser's CORS preflight, the error
//! shapes, authentication when it is on, and a small latency probe. Each check records
//! its verdict, latency and, on failure, what was expected and what came back, in one
//! line. The client key is sent, never printed.
//!
//! `run` decides what runs and records it; `client` sends the requests (request ids, the
//! key, timing, transport errors); `checks/` holds one file per family of checks.

mod checks;
mod client;

use std::time::Duration;

use crate::ui::Ui;
use checks::{Outcome, auth, chat, cors, errors, health, models, perf, stream};
use client::Client;

/// The browser origin of the CORS preflight when the proxy allows any origin.
pub const ORIGIN: &str = "https://app.example.com";
/// What the OpenAI SDKs ask for in a browser (the `x-stainless-*` family included).
pub const PREFLIGHT_HEADERS: &str = "authorization, content-type, x-stainless-os";
/// A model id no mapping should list.
pub const UNKNOWN_MODEL: &str = "openai-proxy-deployer-no-such-model";
/// Requests in flight at once in the concurrent probe: API Gateway's default burst
/// (ThrottlingBurstLimit 100) is far above it, so a large PERF_REQUESTS is not throttled.
pub const CONCURRENCY: usize = 20;
/// The longest detail kept for one check: the report is a table, one line per check.
/// Room for the longest expected-and-got (a 160-character body excerpt, the request id
/// with its 36-character run UUID, the content-type) uncut.
const DETAIL_LIMIT: usize = 360;

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
    /// The API streams its answers (ResponseTransferMode STREAM, the default): the
    /// streaming chat must arrive as it is generated. False for a BUFFERED API, whose
    /// answers come whole by design; see [`streams`].
    pub streaming: bool,
    /// The provider the chats ask for first (`x-proxy-provider`), and must be answered
    /// by; None: whoever the mapping says.
    pub provider: Option<&'static str>,
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
            .field("streaming", &self.streaming)
            .field("provider", &self.provider)
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
            streaming: true,
            provider: None,
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

/// Runs every check of `plan` against its target. Never fails as a whole: each problem
/// is a failed check in the results.
pub async fn run(plan: &Plan, ui: &Ui) -> Results {
    let client = Client::new(plan, run_id());
    let mut recorder = Recorder {
        plan,
        ui,
        results: Results {
            base_url: plan.base_url.clone(),
            run_id: client.run_id().to_owned(),
            auth: plan.auth,
            ..Results::default()
        },
    };
    all(plan, &client, &mut recorder).await;
    recorder.results
}

/// What runs, in the report's order, and what is skipped and why.
async fn all(plan: &Plan, client: &Client, recorder: &mut Recorder<'_>) {
    let (outcome, answered) = health::check(client, plan.warmup).await;
    recorder.record(health::NAME, outcome);
    if !answered {
        let reason = "the target did not answer /health";
        for name in [models::NAME, chat::NAME, stream::NAME, cors::NAME]
            .into_iter()
            .chain(errors::NAMES)
        {
            recorder.skip(name, reason);
        }
        return;
    }
    // Without the key it needs, a check would only meet the 401 tested below.
    let keyless = plan.auth && plan.client_key.is_none();
    let needs_key = "needs TEST_CLIENT_API_KEY (authentication is on)";
    let model = if keyless {
        recorder.skip(models::NAME, needs_key);
        plan.expected_models.first().cloned()
    } else {
        let (outcome, listed) = models::check(client, &plan.expected_models).await;
        recorder.record(models::NAME, outcome);
        // The first expected id, else the first listed.
        plan.expected_models
            .first()
            .cloned()
            .or_else(|| listed.and_then(|ids| ids.into_iter().next()))
    };
    recorder.results.model.clone_from(&model);
    match (&model, plan.chat, keyless) {
        (_, false, _) => {
            recorder.skip(chat::NAME, "TEST_CHAT_COMPLETION=false");
            recorder.skip(stream::NAME, "TEST_CHAT_COMPLETION=false");
        }
        (_, true, true) => {
            recorder.skip(chat::NAME, needs_key);
            recorder.skip(stream::NAME, needs_key);
        }
        (None, true, false) => {
            let problem = "expected a model id to chat with; the model list gave none";
            recorder.record(chat::NAME, Outcome::failed(problem.into()));
            recorder.record(stream::NAME, Outcome::failed(problem.into()));
        }
        (Some(model), true, false) => {
            recorder.record(chat::NAME, chat::check(client, model).await);
            let outcome = stream::check(client, model, plan.streaming).await;
            recorder.record(stream::NAME, outcome);
        }
    }
    recorder.record(cors::NAME, cors::check(client, &plan.origin).await);
    if keyless {
        for name in errors::NAMES {
            recorder.skip(name, needs_key);
        }
    } else {
        recorder.record(errors::MALFORMED, errors::malformed(client).await);
        recorder.record(errors::UNKNOWN_MODEL_NAME, errors::unknown_model(client).await);
        recorder.record(errors::UNKNOWN_PATH, errors::unknown_path(client).await);
    }
    if plan.auth {
        recorder.record(auth::NO_KEY, auth::no_key(client).await);
        let has_key = plan.client_key.is_some();
        recorder.record(auth::VALID_KEY, auth::valid_key(client, has_key).await);
    }
    if plan.perf_requests > 0 {
        for (name, outcome, probe) in perf::run(client, plan.perf_requests).await {
            recorder.record(name, outcome);
            recorder.results.probes.push(probe);
        }
    }
}

/// Collects the checks' outcomes into the results and prints each as it is decided.
struct Recorder<'a> {
    plan: &'a Plan,
    ui: &'a Ui,
    results: Results,
}

impl Recorder<'_> {
    fn record(&mut self, name: &'static str, outcome: Outcome) {
        let (verdict, detail) = match outcome.result {
            Ok(note) => (Verdict::Passed, note),
            Err(problem) => (Verdict::Failed, problem),
        };
        let detail = self.clean(&detail);
        let latency = outcome
            .millis
            .map(|ms| format!(" ({})", millis(ms)))
            .unwrap_or_default();
        match verdict {
            Verdict::Failed => self.ui.step(&format!("❌ {name}{latency}: {detail}")),
            _ if detail.is_empty() => self.ui.step(&format!("✅ {name}{latency}")),
            _ => self.ui.step(&format!("✅ {name}{latency}: {detail}")),
        }
        self.results.checks.push(Check {
            name,
            verdict,
            millis: outcome.millis,
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
}

/// `deployer-` and a random (v4) UUID: unique to the run, so its requests' log lines are
/// found by this prefix. `<run_id>-<n>` stays within what the proxy keeps as the caller's
/// request id (at most 128 letters, digits and `-_.:/+=`); it would replace anything else.
fn run_id() -> String {
    format!("deployer-{}", uuid::Uuid::new_v4())
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

/// Whether an API with this `ResponseTransferMode` (the stack's parameter or output)
/// streams its answers: unless it is BUFFERED (STREAM is the template's default).
pub fn streams(response_transfer_mode: Option<&str>) -> bool {
    !response_transfer_mode.is_some_and(|mode| mode.trim().eq_ignore_ascii_case("BUFFERED"))
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

    #[test]
    fn the_preflight_origin_is_one_the_proxy_allows() {
        assert_eq!(browser_origin(None), ORIGIN);
        assert_eq!(browser_origin(Some("*")), ORIGIN);
        assert_eq!(
            browser_origin(Some("https://a.example/, http://localhost:3000")),
            "https://a.example"
        );
    }

    #[test]
    fn only_a_buffered_api_is_not_expected_to_stream() {
        assert!(streams(None) && streams(Some("STREAM")));
        assert!(!streams(Some("BUFFERED")) && !streams(Some(" buffered")));
    }

    #[test]
    fn every_run_has_its_own_uuid() {
        let (a, b) = (run_id(), run_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let uuid = id.strip_prefix("deployer-").expect("the deployer's prefix");
            let uuid = uuid::Uuid::parse_str(uuid).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(uuid.get_version(), Some(uuid::Version::Random), "{id}");
        }
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

//! The HTTP client of the endpoint tests: every request carries `x-request-id:
//! <run_id>-<n>` (the proxy logs it, so a run's log lines are found by its prefix), the
//! client key goes only where a check asks for it, and every answer is timed from the
//! moment the request left.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use tokio::time::Instant;

use super::{Plan, excerpt};

/// Why a request got no (complete) answer, in a few words for the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Transport {
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("could not connect ({0})")]
    Connect(String),
    #[error("the answer broke off ({0})")]
    BrokeOff(String),
    #[error("the request failed ({0})")]
    Failed(String),
}

pub(super) struct Client {
    http: reqwest::Client,
    base_url: String,
    key: Option<String>,
    /// `TEST_PROVIDER`: the provider the chats ask for first.
    provider: Option<&'static str>,
    /// Of one request, unless the request sets its own (chat completions do).
    timeout: Duration,
    run_id: String,
    /// Requests sent so far: the last part of the next request id.
    sent: AtomicU32,
}

/// The proxy's answer header naming who served a chat, and the request header that
/// asks for a provider first.
pub const PROVIDER_HEADER: &str = "x-proxy-provider";

impl Client {
    pub fn new(plan: &Plan, run_id: String) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(plan.timeout)
            .user_agent(concat!(
                "openai-proxy-deployer/",
                env!("CARGO_PKG_VERSION"),
                " endpoint-tests"
            ))
            .build();
        Self {
            http: http.unwrap_or_default(),
            base_url: plan.base_url.clone(),
            key: plan.client_key.clone(),
            provider: plan.provider,
            timeout: plan.timeout,
            run_id,
            sent: AtomicU32::new(0),
        }
    }

    /// The prefix of every request id of this run.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// `method path` without the client key: for checks that test what anyone may do.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base_url))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// `GET path` as a client of the proxy sends it: with the key, when there is one.
    pub fn get_keyed(&self, path: &str) -> RequestBuilder {
        self.keyed(self.get(path))
    }

    /// A chat completion with the key. It may take as long as the upstream's answer: three
    /// times the limit of one request.
    pub fn post_chat(&self, body: String) -> RequestBuilder {
        let request = self
            .request(Method::POST, "/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .timeout(self.timeout * 3)
            .body(body);
        self.keyed(match self.provider {
            Some(provider) => request.header(PROVIDER_HEADER, provider),
            None => request,
        })
    }

    /// Who answered a chat (`x-proxy-provider`), checked against the provider asked
    /// for: `Ok("served by bedrock")`, or what went wrong.
    pub fn served_by(&self, headers: &HeaderMap) -> Result<String, String> {
        let served = headers.get(PROVIDER_HEADER).and_then(|v| v.to_str().ok());
        match (self.provider, served) {
            (Some(asked), Some(served)) if asked != served => Err(format!(
                "served by {served}, not by {asked} as TEST_PROVIDER asked: {asked} failed (the proxy's log says why) or the model's mapping does not name it"
            )),
            (Some(asked), None) => Err(format!(
                "no {PROVIDER_HEADER} header: the proxy predates failover, so TEST_PROVIDER={asked} cannot be tested"
            )),
            (_, Some(served)) => Ok(format!("served by {served}")),
            (None, None) => Ok(String::new()),
        }
    }

    fn keyed(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends `request` and reads its answer whole.
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, Transport> {
        self.open(request).await?.read().await
    }

    /// Sends `request` and returns once the answer's head is in; its body is left to read.
    pub async fn open(&self, request: RequestBuilder) -> Result<Opened, Transport> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let request_id = format!("{}-{n}", self.run_id);
        let mut request = request.build().map_err(|e| transport(&e, self.timeout))?;
        let timeout = request.timeout().copied().unwrap_or(self.timeout);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            request.headers_mut().insert("x-request-id", value);
        }
        let started = Instant::now();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| transport(&e, timeout))?;
        Ok(Opened {
            request_id,
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            started,
            timeout,
            response,
        })
    }
}

/// An answer whose head is in and whose body is still to come.
pub(super) struct Opened {
    pub request_id: String,
    pub status: u16,
    pub headers: HeaderMap,
    /// When the request left: latencies count from here.
    pub started: Instant,
    /// The request's limit, for the words of a timeout.
    pub timeout: Duration,
    pub response: reqwest::Response,
}

impl Opened {
    pub async fn read(self) -> Result<Reply, Transport> {
        let body = self
            .response
            .text()
            .await
            .map_err(|e| transport(&e, self.timeout))?;
        Ok(Reply {
            request_id: self.request_id,
            status: self.status,
            headers: self.headers,
            body,
            millis: elapsed_ms(self.started),
        })
    }
}

/// One answer, read whole.
pub(super) struct Reply {
    pub request_id: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// From the request leaving to the body's end.
    pub millis: f64,
}

impl Reply {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// "HTTP 500 (x-request-id …): {body}" in one line, for the actual side of a failure.
    pub fn said(&self) -> String {
        let body = self.body.trim();
        let status = format!("HTTP {} (x-request-id {})", self.status, self.request_id);
        if body.is_empty() {
            format!("{status} with an empty body")
        } else {
            format!("{status}: {}", excerpt(body, 160))
        }
    }

    /// The `error` object when the body is in OpenAI's error shape.
    pub fn openai_error(&self) -> Option<Value> {
        let error = self.json()?.get("error")?.clone();
        (error.get("message").is_some_and(Value::is_string)
            && error.get("type").is_some_and(Value::is_string))
        .then_some(error)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Milliseconds since `started`, fractions kept (a local target answers in well under one).
pub(super) fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// A transport failure in a few words: refused, timed out, or the innermost cause.
pub(super) fn transport(err: &reqwest::Error, timeout: Duration) -> Transport {
    if err.is_timeout() {
        return Transport::Timeout(timeout);
    }
    let mut innermost: &dyn std::error::Error = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let cause = innermost.to_string();
    if err.is_connect() {
        Transport::Connect(cause)
    } else if err.is_body() || err.is_decode() {
        Transport::BrokeOff(cause)
    } else {
        Transport::Failed(cause)
    }
}

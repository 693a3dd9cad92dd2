//! Errors in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
//! Every error the proxy answers goes through [`ApiError`], so clients written for
//! OpenAI parse ours without special cases.

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::body::{self, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: the proxy's own, or the upstream's as it came.
    pub kind: Cow<'static, str>,
    pub param: Option<Box<str>>,
    pub code: Option<Cow<'static, str>>,
    /// For 429 and 503 answers: how long to wait (the default is one second).
    pub retry_after: Option<Duration>,
    /// Upstream headers relayed with the error (rate limits, OpenAI's request id).
    pub headers: Box<HeaderMap>,
    /// A retry could bill twice (the request may have reached OpenAI): `x-should-retry:
    /// false` whatever the status.
    pub no_retry: bool,
}

/// How long a client should wait before retrying a 429 or 503 that names no delay.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    pub fn new(status: StatusCode, kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: kind.into(),
            param: None,
            code: None,
            retry_after: None,
            headers: Box::default(),
            no_retry: false,
        }
    }

    /// Marks the error as one the client must not retry on its own (`x-should-retry: false`).
    pub fn not_retryable(mut self) -> Self {
        self.no_retry = true;
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn server(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, "server_error", message).with_code(code)
    }

    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into().into_boxed_str());
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "Unknown request URL: {path}. Supported: GET /health, GET /v1/models, \
                 GET /v1/models/{{model}}, POST /v1/chat/completions, POST /v1/embeddings, \
                 POST /v1/responses, GET and DELETE /v1/responses/{{id}}, POST /v1/responses/{{id}}/cancel, \
                 GET /v1/responses/{{id}}/input_items."
            ),
        )
        .with_code("unknown_url")
    }

    /// `allow`: the methods the path answers, for the `Allow` header (RFC 9110 requires
    /// it on a 405), e.g. `GET, HEAD`.
    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        let mut error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("Method {method} is not allowed on {path}."),
        )
        .with_code("method_not_allowed");
        error
            .headers
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        error
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it. GET /v1/models lists the models this proxy serves."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!(
                "Request body is larger than {} MB, the AWS Lambda payload limit.",
                limit / 1_000_000
            ),
        )
        .with_code("request_too_large")
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message).with_code("invalid_api_key")
    }

    /// The OpenAI-shaped JSON document, for SSE error events.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.envelope()).unwrap_or_default()
    }

    /// True when no retry can change the answer: the SDKs read `x-should-retry: false`
    /// and give up at once instead of retrying (and multiplying upstream calls).
    pub fn is_final(&self) -> bool {
        let status = self.status.as_u16();
        let retryable_status = matches!(status, 408 | 409 | 429) || status >= 500;
        self.no_retry
            || !retryable_status
            || matches!(
                self.code.as_deref(),
                Some("upstream_auth_failed" | "model_not_found")
            )
    }

    fn envelope(&self) -> Envelope<'_> {
        Envelope {
            error: Body {
                message: &self.message,
                kind: &self.kind,
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

pub const SHOULD_RETRY: &str = "x-should-retry";
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

impl ApiError {
    /// What the request's log line names as its `error_type`: the code, or the type.
    pub fn log_kind(&self) -> &str {
        self.code.as_deref().unwrap_or(&self.kind)
    }

    /// The answer: the envelope as JSON, the relayed headers, and the retry advice.
    pub fn into_response(self) -> Response {
        let json = serde_json::to_vec(&self.envelope()).unwrap_or_default();
        let is_final = self.is_final();
        let mut response = body::with_type(self.status, "application/json", json);
        let headers = response.headers_mut();
        headers.extend(*self.headers);
        let waits = matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        if let Some(after) = self.retry_after.or(waits.then_some(DEFAULT_RETRY_AFTER)) {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            headers.insert(RETRY_AFTER_MS, HeaderValue::from(millis.max(1)));
        }
        if is_final {
            headers.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_a_retry_can_fix_leave_retrying_to_the_client() {
        let final_ = |e: ApiError| e.into_response().headers().get(SHOULD_RETRY).cloned();
        assert_eq!(final_(ApiError::invalid_request("bad")).unwrap(), "false");
        assert_eq!(final_(ApiError::model_not_found("m")).unwrap(), "false");
        assert_eq!(
            final_(ApiError::server(
                StatusCode::BAD_GATEWAY,
                "upstream_auth_failed",
                "k"
            ))
            .unwrap(),
            "false"
        );
        for status in [408, 409, 429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(final_(ApiError::new(status, "t", "m")), None, "{status}");
        }
    }

    #[test]
    fn rate_limits_and_unavailability_say_how_long_to_wait_in_both_units() {
        let response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "m").into_response();
        assert_eq!(
            (
                &response.headers()["retry-after"],
                &response.headers()["retry-after-ms"]
            ),
            (&HeaderValue::from(1), &HeaderValue::from(1000))
        );
        let response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "m")
            .with_retry_after(Duration::from_millis(1500))
            .into_response();
        assert_eq!(
            (
                &response.headers()["retry-after"],
                &response.headers()["retry-after-ms"]
            ),
            (&HeaderValue::from(2), &HeaderValue::from(1500))
        );
        let response = ApiError::invalid_request("m").into_response();
        assert!(!response.headers().contains_key("retry-after"));
    }
}

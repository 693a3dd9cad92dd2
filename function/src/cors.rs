//! Cross-origin access for browser apps: the proxy answers CORS preflights itself and
//! marks every answer with the origins, headers and methods it allows. Written for the
//! proxy's one policy (origins: any or a list; methods GET, POST, OPTIONS; request
//! headers mirrored, since browser SDKs send their own `x-stainless-*`; a fixed list of
//! exposed headers) so that it costs a few header inserts per request: a general CORS
//! layer built its own header map on every request and was cloned with the route on
//! every request, a tenth of the proxy's time (docs/benchmarks.md).

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method};

/// The response headers browser scripts may read: ids, retry advice, OpenAI's limits.
const EXPOSED_HEADERS: [&str; 14] = [
    "x-request-id",
    "retry-after",
    crate::error::RETRY_AFTER_MS,
    crate::error::SHOULD_RETRY,
    "x-upstream-request-id",
    "openai-processing-ms",
    "openai-version",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-reset",
];

/// Answers vary with these request headers: caches must keep them apart.
const VARY_VALUE: HeaderValue =
    HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers");
const METHODS: HeaderValue = HeaderValue::from_static("GET,POST,OPTIONS");
/// Browsers may reuse a preflight's answer for ten minutes.
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
const ANY: HeaderValue = HeaderValue::from_static("*");

#[derive(Debug, Clone)]
pub struct Cors {
    /// `None`: any origin (`*`).
    origins: Option<Vec<HeaderValue>>,
    exposed: HeaderValue,
}

impl Cors {
    /// `origins`: `None` for any origin, or the allowed origins (`https://app.example.com`).
    pub fn new(origins: Option<&[String]>) -> Self {
        Self {
            origins: origins.map(|list| list.iter().filter_map(|o| o.parse().ok()).collect()),
            exposed: HeaderValue::from_str(&EXPOSED_HEADERS.join(","))
                .unwrap_or_else(|_| HeaderValue::from_static("x-request-id")),
        }
    }

    /// Every `OPTIONS` request is a preflight, answered here, before authentication:
    /// browsers send no credentials with it.
    pub fn is_preflight(method: &Method) -> bool {
        method == Method::OPTIONS
    }

    /// The headers of a preflight's answer to a request with these headers.
    pub fn preflight(&self, request: &HeaderMap, response: &mut HeaderMap) {
        self.mark(request.get(ORIGIN), response);
        response.insert(ACCESS_CONTROL_ALLOW_METHODS, METHODS);
        if let Some(asked) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            response.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        response.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    }

    /// The headers every other answer carries; `origin` is the request's `Origin`.
    pub fn answer(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        self.mark(origin, response);
        response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, self.exposed.clone());
    }

    fn mark(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        response.append(VARY, VARY_VALUE);
        let allowed = match &self.origins {
            None => Some(ANY),
            Some(list) => origin.filter(|o| list.contains(o)).cloned(),
        };
        if let Some(origin) = allowed {
            response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
    }
}

//! Cross-origin access for browser apps: the proxy answers CORS preflights itself and
//! marks every answer with the origins, headers and methods it allows. Written for the
//! proxy's one policy (origins: any or a list; methods GET, POST, DELETE, OPTIONS; request
//! headers mirrored, since browser SDKs send their own `x-stainless-*`; a fixed list of
//! exposed headers) so that it costs a few header inserts per request: a general CORS
//! layer built its own header map on every request and was cloned with the route on
//! every request, a tenth of the proxy's time (docs/benchmarks.md).

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN, VARY,
};
use std::net::{IpAddr, SocketAddr};

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
const METHODS: HeaderValue = HeaderValue::from_static("GET,POST,DELETE,OPTIONS");
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

/// Whether `host` (a request's `Host` header) names the local server listening on
/// `listen`: its port, and `localhost` or an address it listens on. A web page that
/// rebinds its own domain name to 127.0.0.1 sends its domain name here, and is refused.
pub fn names_local_server(host: &str, listen: SocketAddr) -> bool {
    let host = host.trim();
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]:8080` or `127.0.0.1:8080`; a bare IPv6 address has no brackets.
        Some((name, port)) if !name.contains(':') || name.ends_with(']') => (name, port.parse().ok()),
        _ => (host, Some(80)),
    };
    if port != Some(listen.port()) {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return listen.ip().is_loopback() || listen.ip().is_unspecified();
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    match name.parse::<IpAddr>() {
        Ok(ip) => ip == listen.ip() || listen.ip().is_unspecified(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hosts_that_name_the_listen_address_are_the_local_server() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for host in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080"] {
            assert!(names_local_server(host, loopback), "{host}");
        }
        for host in [
            "evil.example:8080",
            "127.0.0.1:9090",
            "127.0.0.1",
            "10.0.0.1:8080",
            "",
            "[::1]:8080",
        ] {
            assert!(!names_local_server(host, loopback), "{host}");
        }
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert!(names_local_server("192.168.1.5", any));
        assert!(names_local_server("[::1]:80", "[::]:80".parse().unwrap()));
        assert!(!names_local_server("rebound.example", any));
    }
}

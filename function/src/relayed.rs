//! What OpenAI said, as the client receives it: its errors (status, `type`, `code`,
//! `param` and `message`, unchanged but for anything shaped like an API key) and the
//! headers clients and operators read (rate limits, processing time, API version, and
//! OpenAI's own request id as `x-upstream-request-id`).
//!
//! The one exception: OpenAI refusing the proxy's own key is the operator's problem, not
//! the client's, and OpenAI's message quotes part of that key, so it becomes a 502
//! `upstream_auth_failed` without OpenAI's text.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use crate::error::ApiError;
use crate::observe;

/// OpenAI's request id, under the name the proxy relays it with (the proxy's own id
/// stays `x-request-id`).
pub const UPSTREAM_REQUEST_ID: &str = "x-upstream-request-id";

/// Relayed by name; every `x-ratelimit-*` header is relayed too.
const RELAYED: [&str; 2] = ["openai-processing-ms", "openai-version"];

/// The upstream headers the client gets, OpenAI's `x-request-id` renamed.
pub fn headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in upstream {
        let name_str = name.as_str();
        if name_str.starts_with("x-ratelimit-") || RELAYED.contains(&name_str) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Some(id) = request_id(upstream)
        && let Ok(value) = HeaderValue::from_str(&id)
    {
        out.insert(HeaderName::from_static(UPSTREAM_REQUEST_ID), value);
    }
    out
}

/// OpenAI's request id (`x-request-id`), when it is sane to log and echo.
pub fn request_id(upstream: &HeaderMap) -> Option<String> {
    observe::sane_id(upstream.get("x-request-id")?.to_str().ok()?, b"-_.:")
}

/// An upstream error answer, for the client. `secret` is the proxy's OpenAI key, which
/// must never be echoed whatever its shape; `attempts` goes into the message only when
/// the upstream gave none of its own.
pub fn error(
    status: StatusCode,
    upstream_headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    attempts: u32,
) -> ApiError {
    if status == StatusCode::UNAUTHORIZED {
        return auth_failed(status);
    }
    if status.is_redirection() {
        // OpenAI never redirects an API call; a base URL that does is the operator's to
        // correct (a POST cannot follow it safely), and a 3xx would mean nothing to SDKs.
        return ApiError::server(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!(
                "The upstream answered with a redirect (HTTP {}), which the proxy does not follow: the operator must set openai_base_url to the address it redirects to.",
                status.as_u16()
            ),
        );
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    let text = |key: &str| error.and_then(|e| e.get(key)).and_then(Value::as_str);
    let mut api = match (text("message"), text("type")) {
        (Some(message), kind) => ApiError::new(
            status,
            kind.map_or_else(|| default_kind(status).to_owned(), |k| redact(k, secret)),
            redact(message, secret),
        ),
        (None, _) => {
            let tries = if attempts > 1 {
                format!(" after {attempts} attempts")
            } else {
                String::new()
            };
            ApiError::new(
                status,
                default_kind(status),
                format!(
                    "The upstream OpenAI API answered HTTP {}{tries} without an OpenAI error body.",
                    status.as_u16()
                ),
            )
            .with_code("upstream_error")
        }
    };
    if let Some(code) = error.and_then(|e| e.get("code")) {
        // OpenAI's codes are strings; a few compatible servers send numbers.
        match code {
            Value::String(code) => api.code = Some(redact(code, secret).into()),
            Value::Number(code) => api.code = Some(code.to_string().into()),
            _ => {}
        }
    }
    if let Some(param) = text("param") {
        api.param = Some(redact(param, secret).into());
    }
    api.headers = Box::new(headers(upstream_headers));
    api
}

fn default_kind(status: StatusCode) -> &'static str {
    if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    }
}

fn auth_failed(status: StatusCode) -> ApiError {
    ApiError::server(
        StatusCode::BAD_GATEWAY,
        "upstream_auth_failed",
        format!(
            "The upstream OpenAI API refused the proxy's API key (HTTP {}): the operator must update openai_api_key in the proxy's secret.",
            status.as_u16()
        ),
    )
}

/// `text` with every API-key-shaped token (`sk-…`, including OpenAI's masked
/// `sk-proj-****abcd`) and the proxy's own key replaced by `sk-***`, and OpenAI's
/// organization and project ids (`org-…`, `proj_…`) by `org-***` and `proj_***`: they
/// name the operator's OpenAI account, which clients have no business learning.
pub fn redact(text: &str, secret: &str) -> String {
    let text = if secret.len() >= 8 {
        text.replace(secret, "sk-***")
    } else {
        text.to_owned()
    };
    let text = redact_tokens(&text, "sk-", |token| {
        token.len() >= 8 || (token.len() >= 4 && token.contains('*'))
    });
    let text = redact_tokens(&text, "org-", |token| token.len() >= 8);
    redact_tokens(&text, "proj_", |token| token.len() >= 8)
}

/// `text` with each token that starts with `prefix` (not inside a longer word) and
/// whose rest passes `shaped` replaced by `{prefix}***`.
fn redact_tokens(text: &str, prefix: &str, shaped: impl Fn(&str) -> bool) -> String {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let starts_token = !rest[..at].chars().next_back().is_some_and(is_token_char);
        let tail = &rest[at + prefix.len()..];
        let length = tail.find(|c: char| !is_token_char(c)).unwrap_or(tail.len());
        out.push_str(&rest[..at]);
        if starts_token && shaped(&tail[..length]) {
            out.push_str(prefix);
            out.push_str("***");
        } else {
            out.push_str(&rest[at..at + prefix.len() + length]);
        }
        rest = &tail[length..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk-proxy-secret-0123456789";

    #[test]
    fn unknown_types_and_codes_pass_through_unchanged() {
        let error = error(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            br#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded","param":null}}"#,
            SECRET,
            3,
        );
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            (error.kind.as_ref(), error.code.as_deref()),
            ("requests", Some("rate_limit_exceeded"))
        );
        assert_eq!(error.message, "Rate limit reached for requests");
        let error = super::error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":{"message":"m","type":"weird","code":"zz","param":"p"}}"#,
            SECRET,
            1,
        );
        assert_eq!(
            (error.kind.as_ref(), error.code.as_deref(), error.param.as_deref()),
            ("weird", Some("zz"), Some("p"))
        );
    }

    #[test]
    fn a_body_without_an_openai_error_says_so_with_the_status() {
        let error = error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
            SECRET,
            3,
        );
        assert_eq!(error.status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            (error.kind.as_ref(), error.code.as_deref()),
            ("server_error", Some("upstream_error"))
        );
        assert_eq!(
            error.message,
            "The upstream OpenAI API answered HTTP 502 after 3 attempts without an OpenAI error body."
        );
    }

    #[test]
    fn only_a_refused_proxy_key_is_rewritten() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-proj-****abcd.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let refused = error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body, SECRET, 1);
        assert_eq!(
            (refused.status, refused.code.as_deref()),
            (StatusCode::BAD_GATEWAY, Some("upstream_auth_failed"))
        );
        assert!(!refused.message.contains("sk-"));
        let body = br#"{"error":{"message":"Project proj_1 does not have access to model gpt-5","type":"invalid_request_error","code":"model_not_found"}}"#;
        let forbidden = error(StatusCode::FORBIDDEN, &HeaderMap::new(), body, SECRET, 1);
        assert_eq!(
            (forbidden.status, forbidden.code.as_deref()),
            (StatusCode::FORBIDDEN, Some("model_not_found"))
        );
    }

    #[test]
    fn a_redirect_is_a_502_that_names_the_setting_to_correct() {
        let error = error(StatusCode::MOVED_PERMANENTLY, &HeaderMap::new(), b"", SECRET, 1);
        assert_eq!(
            (error.status, error.code.as_deref()),
            (StatusCode::BAD_GATEWAY, Some("upstream_error"))
        );
        assert!(error.message.contains("openai_base_url"), "{}", error.message);
    }

    #[test]
    fn key_shaped_strings_are_redacted_and_other_text_kept() {
        assert_eq!(
            redact(
                "Incorrect API key provided: sk-proj-****abcd. See https://x/sk-docs",
                SECRET
            ),
            "Incorrect API key provided: sk-***. See https://x/sk-docs"
        );
        assert_eq!(
            redact("key sk-abcdefgh and task-sk-1", SECRET),
            "key sk-*** and task-sk-1"
        );
        assert_eq!(redact(&format!("yours: {SECRET}!"), SECRET), "yours: sk-***!");
        assert_eq!(redact("plain text, no keys", SECRET), "plain text, no keys");
        assert_eq!(
            redact(
                "You exceeded your quota on org-AbCdEf0123456789xyz in project proj_Zz9876543210abc.",
                SECRET
            ),
            "You exceeded your quota on org-*** in project proj_***."
        );
        assert_eq!(redact("an org-chart, proj_x", SECRET), "an org-chart, proj_x");
    }

    #[test]
    fn rate_limit_headers_and_the_upstream_request_id_are_relayed() {
        let mut upstream = HeaderMap::new();
        for (name, value) in [
            ("x-ratelimit-remaining-requests", "99"),
            ("x-ratelimit-reset-tokens", "6ms"),
            ("openai-processing-ms", "321"),
            ("openai-version", "2020-10-01"),
            ("openai-organization", "org-secret"),
            ("x-request-id", "req_abc123"),
            ("set-cookie", "__cf_bm=1"),
        ] {
            upstream.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let relayed = headers(&upstream);
        let mut names: Vec<&str> = relayed.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "openai-processing-ms",
                "openai-version",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-tokens",
                "x-upstream-request-id"
            ]
        );
        assert_eq!(relayed[UPSTREAM_REQUEST_ID], "req_abc123");
    }
}

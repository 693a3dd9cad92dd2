//! `OPTIONS /v1/chat/completions` as a browser sends it before an OpenAI SDK's request.

use reqwest::Method;
use reqwest::header;

use super::Outcome;
use crate::endpoint::PREFLIGHT_HEADERS;
use crate::endpoint::client::Client;

pub(in crate::endpoint) const NAME: &str = "CORS preflight";

/// Passes when the answer allows `origin`, POST and every header of [`PREFLIGHT_HEADERS`]
/// (`*` included). Sent without the key: browsers never send credentials in a preflight.
pub(in crate::endpoint) async fn check(client: &Client, origin: &str) -> Outcome {
    let request = client
        .request(Method::OPTIONS, "/v1/chat/completions")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, PREFLIGHT_HEADERS);
    let expected =
        format!("expected a 2xx allowing origin {origin}, method POST and headers {PREFLIGHT_HEADERS}");
    let reply = match client.send(request).await {
        Ok(reply) => reply,
        Err(problem) => return Outcome::unanswered(&expected, &problem),
    };
    let allowed_origin = reply.header("access-control-allow-origin").unwrap_or_default();
    let methods = reply.header("access-control-allow-methods").unwrap_or_default();
    let headers = reply.header("access-control-allow-headers").unwrap_or_default();
    let allows = |list: &str, wanted: &str| {
        list.split(',')
            .map(|item| item.trim())
            .any(|item| item == "*" || item.eq_ignore_ascii_case(wanted))
    };
    let ok = (200..300).contains(&reply.status)
        && (allowed_origin == "*" || allowed_origin == origin)
        && allows(methods, "POST")
        && PREFLIGHT_HEADERS.split(", ").all(|h| allows(headers, h));
    let shown = |v: &str| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.to_owned()
        }
    };
    let result = if ok {
        Ok(String::new())
    } else {
        Err(format!(
            "{expected}; got HTTP {} with allow-origin {}, allow-methods {}, allow-headers {}",
            reply.status,
            shown(allowed_origin),
            shown(methods),
            shown(headers)
        ))
    };
    Outcome::of(&reply, result)
}

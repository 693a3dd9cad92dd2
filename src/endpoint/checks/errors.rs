//! Bad requests a client can make, each refused with OpenAI's error shape: a malformed
//! body, a model no mapping lists, a path the proxy does not serve.

use reqwest::RequestBuilder;

use super::{Outcome, chat};
use crate::endpoint::UNKNOWN_MODEL;
use crate::endpoint::client::Client;

pub(in crate::endpoint) const MALFORMED: &str = "malformed JSON → 400";
pub(in crate::endpoint) const UNKNOWN_MODEL_NAME: &str = "unknown model → 404";
pub(in crate::endpoint) const UNKNOWN_PATH: &str = "unknown path → 404";
/// All of them, in the order they run.
pub(in crate::endpoint) const NAMES: [&str; 3] = [MALFORMED, UNKNOWN_MODEL_NAME, UNKNOWN_PATH];

const NO_SUCH_PATH: &str = "/v1/openai-proxy-deployer-no-such-path";

pub(in crate::endpoint) async fn malformed(client: &Client) -> Outcome {
    let request = client.post_chat("{\"model\": \"x\", \"messages\": [".into());
    refused(client, request, 400, None).await
}

pub(in crate::endpoint) async fn unknown_model(client: &Client) -> Outcome {
    let request = client.post_chat(chat::body(UNKNOWN_MODEL).to_string());
    refused(client, request, 404, Some("model_not_found")).await
}

pub(in crate::endpoint) async fn unknown_path(client: &Client) -> Outcome {
    refused(client, client.get_keyed(NO_SUCH_PATH), 404, None).await
}

/// An error answer: `status` with OpenAI's error shape and, when given, that `code`.
pub(in crate::endpoint) async fn refused(
    client: &Client,
    request: RequestBuilder,
    status: u16,
    code: Option<&str>,
) -> Outcome {
    let expected = match code {
        Some(code) => format!("expected HTTP {status} with an OpenAI error, code {code}"),
        None => format!("expected HTTP {status} with an OpenAI error"),
    };
    let reply = match client.send(request).await {
        Ok(reply) => reply,
        Err(problem) => return Outcome::unanswered(&expected, &problem),
    };
    let error = reply.openai_error();
    let ok = reply.status == status
        && error
            .as_ref()
            .is_some_and(|e| code.is_none_or(|code| e["code"] == code));
    let result = if ok {
        Ok(String::new())
    } else {
        Err(format!("{expected}; got {}", reply.said()))
    };
    Outcome::of(&reply, result)
}

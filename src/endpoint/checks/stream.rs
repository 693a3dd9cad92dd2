//! `POST /v1/chat/completions` with `stream: true`: SSE chunks for the model asked for,
//! then `data: [DONE]`.

use serde_json::Value;

use super::{Outcome, chat};
use crate::endpoint::client::Client;
use crate::endpoint::excerpt;

pub(in crate::endpoint) const NAME: &str = "streaming chat";

pub(in crate::endpoint) async fn check(client: &Client, model: &str) -> Outcome {
    let expected = format!("expected HTTP 200, SSE chunks for model {model}, then data: [DONE]");
    let mut body = chat::body(model);
    body["stream"] = true.into();
    let reply = match client.send(client.post_chat(body.to_string())).await {
        Ok(reply) => reply,
        Err(problem) => return Outcome::unanswered(&expected, &problem),
    };
    let content_type = reply.header("content-type").unwrap_or_default().to_owned();
    let result = if reply.status != 200 || !content_type.starts_with("text/event-stream") {
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
    Outcome::of(&reply, result)
}

//! `POST /v1/chat/completions`: a real completion (a few tokens), answered for the model
//! id that was asked for.

use serde_json::{Value, json};

use super::Outcome;
use crate::endpoint::client::Client;
use crate::endpoint::excerpt;

pub(in crate::endpoint) const NAME: &str = "chat completion";

/// The cheapest request a model answers: one word.
pub(in crate::endpoint) fn body(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Reply with the single word: ok"}],
        "max_tokens": 8,
    })
}

pub(in crate::endpoint) async fn check(client: &Client, model: &str) -> Outcome {
    let expected = format!("expected HTTP 200 with a chat.completion for model {model}");
    let reply = match client.send(client.post_chat(body(model).to_string())).await {
        Ok(reply) => reply,
        Err(problem) => return Outcome::unanswered(&expected, &problem),
    };
    let result = match reply.json() {
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
                client
                    .served_by(&reply.headers)
                    .map(|served| {
                        let answer = format!("answer: \"{}\"", excerpt(answer.trim(), 80));
                        if served.is_empty() {
                            answer
                        } else {
                            format!("{answer}, {served}")
                        }
                    })
                    .map_err(|problem| format!("{expected}; {problem}"))
            }
        }
        _ => Err(format!("{expected}; got {}", reply.said())),
    };
    Outcome::of(&reply, result)
}

//! `GET /v1/models`: the list holds every expected id (or, expecting none, at least one).

use super::Outcome;
use crate::endpoint::client::Client;

pub(in crate::endpoint) const NAME: &str = "models list";

/// The outcome, and the ids listed when the answer was a model list.
pub(in crate::endpoint) async fn check(
    client: &Client,
    expected: &[String],
) -> (Outcome, Option<Vec<String>>) {
    let reply = match client.send(client.get_keyed("/v1/models")).await {
        Ok(reply) => reply,
        Err(problem) => {
            let outcome = Outcome::unanswered("expected HTTP 200 from GET /v1/models", &problem);
            return (outcome, None);
        }
    };
    let listed: Option<Vec<String>> = reply.json().and_then(|body| {
        (body["object"] == "list").then_some(())?;
        body["data"]
            .as_array()?
            .iter()
            .map(|m| m["id"].as_str().map(str::to_owned))
            .collect()
    });
    let result = match (&listed, reply.status) {
        (Some(ids), 200) => {
            let missing: Vec<&str> = expected
                .iter()
                .filter(|id| !ids.contains(id))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                Err(format!(
                    "expected the list to contain {}; missing {} (listed: {})",
                    expected.join(", "),
                    missing.join(", "),
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ))
            } else if ids.is_empty() {
                Err("expected at least one model; got an empty list".into())
            } else {
                Ok(format!("{} listed", ids.len()))
            }
        }
        _ => Err(format!(
            "expected HTTP 200 with an OpenAI model list; got {}",
            reply.said()
        )),
    };
    (Outcome::of(&reply, result), listed)
}

//! With authentication on: no key is refused, the test key is let in.

use super::{Outcome, errors};
use crate::endpoint::client::Client;

pub(in crate::endpoint) const NO_KEY: &str = "auth: no key → 401";
pub(in crate::endpoint) const VALID_KEY: &str = "auth: valid key → 200";

pub(in crate::endpoint) async fn no_key(client: &Client) -> Outcome {
    errors::refused(client, client.get("/v1/models"), 401, None).await
}

/// `has_key`: the plan has a client key (the client sends it).
pub(in crate::endpoint) async fn valid_key(client: &Client, has_key: bool) -> Outcome {
    if !has_key {
        return Outcome::failed("expected a client key to test with; TEST_CLIENT_API_KEY is not set (set it to a key whose SHA-256 hex is in the secret's client_api_keys, or RUN_ENDPOINT_TESTS=false)".into());
    }
    let expected = "expected HTTP 200 from GET /v1/models with the client key";
    match client.send(client.get_keyed("/v1/models")).await {
        Ok(reply) if reply.status == 200 => Outcome::of(&reply, Ok(String::new())),
        Ok(reply) => {
            let result = Err(format!("{expected}; got {}", reply.said()));
            Outcome::of(&reply, result)
        }
        Err(problem) => Outcome::unanswered(expected, &problem),
    }
}

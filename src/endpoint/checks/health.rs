//! `GET /health`: the first request of a run, retried while a fresh deployment warms up.

use std::time::Duration;

use tokio::time::Instant;

use super::Outcome;
use crate::endpoint::client::Client;

pub(in crate::endpoint) const NAME: &str = "health";

/// The outcome, and whether the target answered at all (when it never did, the other
/// checks would only repeat that). Retried until `warmup` is spent: a fresh API Gateway
/// deployment may need seconds before it answers.
pub(in crate::endpoint) async fn check(client: &Client, warmup: Duration) -> (Outcome, bool) {
    let deadline = Instant::now() + warmup;
    let mut delay = Duration::from_millis(250);
    let mut attempts = 0;
    let last = loop {
        attempts += 1;
        let reply = client.send(client.get("/health")).await;
        let healthy = matches!(&reply, Ok(r) if r.status == 200);
        if healthy || Instant::now() + delay > deadline {
            break reply;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    };
    let retried = if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    };
    let expected = "expected HTTP 200 with {\"status\":\"ok\"} from GET /health";
    match last {
        Err(problem) => (
            Outcome::failed(format!("{expected}; got no answer{retried}: {problem}")),
            false,
        ),
        Ok(reply) => {
            let ok = reply.status == 200 && reply.json().is_some_and(|b| b["status"] == "ok");
            let result = if ok {
                Ok(retried.trim().trim_matches(['(', ')']).to_owned())
            } else {
                Err(format!("{expected}; got {}{retried}", reply.said()))
            };
            (Outcome::of(&reply, result), true)
        }
    }
}

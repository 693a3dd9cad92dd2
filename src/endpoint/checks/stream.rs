//! `POST /v1/chat/completions` with `stream: true`: SSE chunks for the model asked for,
//! then `data: [DONE]`, arriving as they are generated. The body is read as a stream and
//! parsed with the same SSE parser as the proxy's relay (eventsource-stream); each event
//! is timed when it reaches the client, so the detail gives the time to the first event.
//!
//! Why time and not the body's pieces: API Gateway in `BUFFERED` mode (or a function in
//! `RESPONSE_MODE=buffered`, or any proxy that collects bodies) sends nothing until the
//! answer is complete, then all of it, and how TCP and TLS happen to cut that one burst
//! into reads says nothing. What only a stream can do is hand over its first event while
//! the model is still generating the last one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::Outcome;
use crate::endpoint::client::{Client, elapsed_ms, transport};
use crate::endpoint::{excerpt, millis};

pub(in crate::endpoint) const NAME: &str = "streaming chat";

/// The least time between the first and the last event of a streamed answer. A buffered
/// answer arrives in one burst: its few kilobytes fit in the sender's first TCP window, so
/// its events arrive within a millisecond or so of each other, even when the body comes
/// in several reads. A model generating [`PROMPT`]'s 20-odd tokens takes 100 ms or more
/// (OpenAI's small models stream some 50 to 200 tokens a second): a real stream clears
/// this with room to spare.
const MIN_SPREAD: Duration = Duration::from_millis(20);

/// Long enough to take measurable time to generate, short enough to cost a few tokens.
const PROMPT: &str = "Count from 1 to 20, separated by spaces.";

/// One SSE event's data, and when it reached the client (ms after the request left).
#[derive(Debug, Clone, PartialEq)]
struct Timed {
    at: f64,
    data: String,
}

/// `streamed`: the API streams (ResponseTransferMode STREAM); when it buffers by design,
/// an answer that arrives whole passes.
pub(in crate::endpoint) async fn check(client: &Client, model: &str, streamed: bool) -> Outcome {
    let expected = format!("expected HTTP 200, SSE chunks for model {model}, then data: [DONE]");
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
        "stream": true,
    });
    let opened = match client.open(client.post_chat(body.to_string())).await {
        Ok(opened) => opened,
        Err(problem) => return Outcome::unanswered(&expected, &problem),
    };
    let content_type = opened
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if opened.status != 200 || !content_type.starts_with("text/event-stream") {
        // Not a stream: the whole answer says why.
        let reply = match opened.read().await {
            Ok(reply) => reply,
            Err(problem) => return Outcome::unanswered(&expected, &problem),
        };
        let content_type = if content_type.is_empty() {
            "no content-type".to_owned()
        } else {
            content_type
        };
        let result = Err(format!("{expected}; got {} ({content_type})", reply.said()));
        return Outcome::of(&reply, result);
    }
    let served = client.served_by(&opened.headers);
    let (started, timeout) = (opened.started, opened.timeout);
    // When the latest piece of the body was read (µs after the request left). The parser
    // hands out every event a piece completes before it reads the next, so an event is
    // timed by the read that brought its end, not by when this loop got to it.
    let last_read = Arc::new(AtomicU64::new(0));
    let reads = last_read.clone();
    let body = opened.response.bytes_stream().inspect(move |_| {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        reads.store(micros, Ordering::Relaxed);
    });
    let mut events = body.eventsource();
    let mut timed = Vec::new();
    while let Some(event) = events.next().await {
        let problem = match event {
            Ok(event) => {
                timed.push(Timed {
                    at: last_read.load(Ordering::Relaxed) as f64 / 1000.0,
                    data: event.data,
                });
                continue;
            }
            Err(EventStreamError::Transport(e)) => transport(&e, timeout).to_string(),
            Err(EventStreamError::Utf8(e)) => format!("a body that is not UTF-8 ({e})"),
            Err(EventStreamError::Parser(e)) => format!("a body that is not SSE ({e})"),
        };
        return Outcome {
            millis: Some(elapsed_ms(started)),
            result: Err(format!("{expected}; got {} events, then {problem}", timed.len())),
        };
    }
    let result = judge(&expected, model, &timed, streamed).and_then(|verdict| match served {
        Ok(served) if served.is_empty() => Ok(verdict),
        Ok(served) => Ok(format!("{verdict}, {served}")),
        Err(problem) => Err(format!("{expected}; {problem}")),
    });
    Outcome {
        millis: Some(elapsed_ms(started)),
        result,
    }
}

/// The verdict on a complete answer's events. What it says comes first, how it came last:
/// a wrong answer is reported as such whether or not it was streamed.
fn judge(expected: &str, model: &str, events: &[Timed], streamed: bool) -> Result<String, String> {
    let json: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .collect();
    let chunks: Vec<&Value> = json
        .iter()
        .filter(|c| c["object"] == "chat.completion.chunk")
        .collect();
    let done = events.last().is_some_and(|e| e.data.trim() == "[DONE]");
    // The proxy reports a failure mid-stream as an error event (then [DONE]).
    if let Some(error) = json.iter().find(|e| e.get("error").is_some()) {
        return Err(format!(
            "{expected}; got an error event after {} chunks: {}",
            chunks.len(),
            excerpt(&error.to_string(), 160)
        ));
    }
    let n = chunks.len();
    if n == 0 {
        return Err(format!(
            "{expected}; got no chat.completion.chunk in {} events",
            events.len()
        ));
    }
    if !done {
        return Err(format!("{expected}; got {n} chunks and no [DONE] at the end"));
    }
    if let Some(c) = chunks.iter().find(|c| c["model"] != model) {
        return Err(format!("{expected}; got a chunk for model {}", c["model"]));
    }
    // Both exist: there is at least one chunk and [DONE].
    let (first, last) = (events[0].at, events[events.len() - 1].at);
    let spread = last - first;
    if !streamed {
        return Ok(format!(
            "{n} chunks, then [DONE]; first event after {} (the API buffers: ResponseTransferMode BUFFERED)",
            millis(first)
        ));
    }
    if spread < MIN_SPREAD.as_secs_f64() * 1000.0 {
        return Err(format!(
            "{expected}; got all {} events at once, the first after {}: the answer was buffered on its way, not streamed (ResponseTransferMode or RESPONSE_MODE buffered, a proxy that collects bodies, or an upstream that sends whole answers)",
            events.len(),
            millis(first)
        ));
    }
    Ok(format!(
        "{n} chunks, then [DONE]; first event after {}, the last {} later",
        millis(first),
        millis(spread)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "amazon.nova-lite-v1:0";

    /// The proxy's answer: a role chunk, `words`, a stop chunk and [DONE], at `times` ms.
    fn answer(times: [f64; 4]) -> Vec<Timed> {
        let chunk = |delta: Value| {
            json!({"object": "chat.completion.chunk", "model": MODEL,
                   "choices": [{"index": 0, "delta": delta}]})
            .to_string()
        };
        let data = [
            chunk(json!({"role": "assistant"})),
            chunk(json!({"content": "1 2 3"})),
            chunk(json!({})),
            "[DONE]".to_owned(),
        ];
        times
            .into_iter()
            .zip(data)
            .map(|(at, data)| Timed { at, data })
            .collect()
    }

    fn judged(events: &[Timed], streamed: bool) -> Result<String, String> {
        judge("expected …", MODEL, events, streamed)
    }

    #[test]
    fn events_that_arrive_while_the_model_generates_pass_with_the_time_to_the_first() {
        assert_eq!(
            judged(&answer([412.0, 431.0, 470.0, 471.0]), true),
            Ok("3 chunks, then [DONE]; first event after 412 ms, the last 59 ms later".into())
        );
    }

    #[test]
    fn events_that_arrive_in_one_burst_fail_as_buffered_however_late() {
        let problem = judged(&answer([1503.0, 1503.1, 1503.2, 1503.4]), true).unwrap_err();
        assert!(
            problem.starts_with(
                "expected …; got all 4 events at once, the first after 1503 ms: the answer was buffered on its way, not streamed"
            ),
            "{problem}"
        );
        // When the API buffers by design, the same answer passes and says so.
        assert_eq!(
            judged(&answer([1503.0, 1503.1, 1503.2, 1503.4]), false),
            Ok("3 chunks, then [DONE]; first event after 1503 ms (the API buffers: ResponseTransferMode BUFFERED)".into())
        );
    }

    #[test]
    fn a_wrong_answer_is_reported_before_how_it_arrived() {
        let mut events = answer([5.0, 5.0, 5.0, 5.0]);
        events.pop();
        assert_eq!(
            judged(&events, true),
            Err("expected …; got 3 chunks and no [DONE] at the end".into())
        );
        events.insert(
            1,
            Timed {
                at: 5.0,
                data: r#"{"error":{"message":"upstream broke","type":"server_error"}}"#.into(),
            },
        );
        assert!(
            judged(&events, true)
                .unwrap_err()
                .starts_with("expected …; got an error event after 3 chunks: {\"error\""),
        );
    }
}

//! Relays the upstream's server-sent events as they arrive, one event at a time, with
//! `model` rewritten to the id the client asked for. Nothing is buffered beyond the event
//! being relayed. Dropping the stream (client gone) drops the upstream response, which
//! stops reading it.
//!
//! Two dialects: chat completion streams end with `data: [DONE]`, and a failure mid-
//! stream becomes an OpenAI-shaped error event followed by `[DONE]`, so SDKs end the
//! stream cleanly. Responses API streams have no `[DONE]`: they end with the
//! `response.completed`, `response.failed` or `response.incomplete` event, and a failure
//! becomes the API's own `error` event.
//!
//! Slow models think for minutes between events: the relay waits up to the stream idle
//! timeout, and meanwhile sends an SSE comment (`: keep-alive`) every keep-alive interval
//! so that nothing between it and the client closes the quiet connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::observe::LogHandle;
use crate::observe::Usage;
use crate::rewrite::Fields;
use crate::spend::Hold;
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use http::StatusCode;

type Events = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

use crate::body::KEEP_ALIVE;

/// How the relay treats the stream.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model id the client asked for, written into every event that names one.
    pub model: String,
    /// Longest silence from the upstream before the stream is cut off.
    pub idle_timeout: Duration,
    /// Silence after which a keep-alive comment goes to the client.
    pub keep_alive: Duration,
    /// The proxy asked for usage on the client's behalf: the usage-only chunk is
    /// recorded but not relayed, and the other chunks' `"usage": null` is dropped.
    pub hide_usage: bool,
    pub dialect: Dialect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Chat completion chunks, ended by `[DONE]`.
    Chat,
    /// Responses API events, ended by the response's final event.
    Responses,
}

/// The Responses API events after which nothing more comes.
const FINAL_RESPONSE_EVENTS: [&str; 3] = ["response.completed", "response.failed", "response.incomplete"];

struct Relay {
    events: Events,
    options: Options,
    log: LogHandle,
    last_event: Instant,
    /// The reservation of a key with limits, settled to the stream's usage at its end.
    hold: Option<Hold>,
    /// The usage the stream reported (chat: the usage chunk the proxy asks for;
    /// Responses: the final event's).
    usage: Option<Usage>,
    /// Events relayed so far: about one output token each, as OpenAI streams.
    relayed: u64,
}

impl Drop for Relay {
    /// The client went away before the end: it pays for what was produced, as the
    /// usage says when it had arrived, else one output token per event relayed.
    fn drop(&mut self) {
        match (self.hold.take(), self.usage) {
            (Some(hold), Some(usage)) => hold.settle_later(usage),
            (Some(hold), None) => hold.settle_produced_later(self.relayed),
            (None, _) => {}
        }
    }
}

enum Step {
    /// Bytes for the client; the relay goes on.
    Send(Bytes),
    /// Nothing for the client (a dropped usage chunk); the relay goes on.
    Skip,
    /// The last bytes for the client.
    End(Bytes),
}

pub fn sse(
    response: crate::upstream::Response,
    options: Options,
    log: LogHandle,
    hold: Option<Hold>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let events: Events = Box::pin(
        http_body_util::BodyDataStream::new(response.into_body())
            .eventsource()
            .map(|r| r.map_err(|e| e.to_string())),
    );
    let relay = Relay {
        events,
        options,
        log,
        last_event: Instant::now(),
        hold,
        usage: None,
        relayed: 0,
    };
    futures_util::stream::unfold(Some(relay), |relay| async move {
        let mut relay = relay?;
        loop {
            match relay.step().await {
                Step::Send(bytes) => return Some((bytes, Some(relay))),
                Step::Skip => continue,
                Step::End(bytes) => {
                    // Settled before the last bytes go out: inside Lambda, nothing runs
                    // once the answer is complete.
                    if let Some(hold) = relay.hold.take() {
                        hold.settle(relay.usage.as_ref()).await;
                    }
                    return Some((bytes, None));
                }
            }
        }
    })
    .map(Ok)
}

impl Relay {
    async fn step(&mut self) -> Step {
        let idle_left = self
            .options
            .idle_timeout
            .saturating_sub(self.last_event.elapsed());
        if idle_left.is_zero() {
            return Step::End(self.fail("The upstream stream stalled and was cut off."));
        }
        let wait = self.options.keep_alive.min(idle_left);
        let next = match tokio::time::timeout(wait, self.events.next()).await {
            Err(_) if wait < idle_left => return Step::Send(Bytes::from_static(KEEP_ALIVE)),
            Err(_) => return Step::End(self.fail("The upstream stream stalled and was cut off.")),
            Ok(next) => next,
        };
        self.last_event = Instant::now();
        match next {
            // A complete answer ends with [DONE] (or a final response event); a clean
            // close before it is a truncated answer the client must hear about.
            None => Step::End(self.fail("The upstream stream ended before the answer was complete.")),
            Some(Ok(event)) if event.data.trim() == "[DONE]" => {
                Step::End(Bytes::from_static(b"data: [DONE]\n\n"))
            }
            Some(Ok(event)) => match self.rewrite(&event) {
                Some((frame, false)) => {
                    self.relayed += 1;
                    Step::Send(frame)
                }
                Some((frame, true)) => Step::End(frame),
                None => Step::Skip,
            },
            Some(Err(reason)) => {
                tracing::warn!(reason = %reason, "upstream stream failed");
                Step::End(self.fail("The upstream stream broke before the answer was complete."))
            }
        }
    }

    /// The event for the client, or `None` when it is not relayed; whether it is the
    /// last one.
    fn rewrite(&mut self, event: &eventsource_stream::Event) -> Option<(Bytes, bool)> {
        let mut out = String::with_capacity(event.data.len() + 16);
        if !event.event.is_empty() && event.event != "message" {
            out.push_str("event: ");
            out.push_str(&event.event);
            out.push('\n');
        }
        let mut last = false;
        let data = match Fields::parse(&event.data) {
            Ok(mut chunk) => {
                if let Some(usage) = chunk.usage() {
                    self.usage = Some(usage);
                    self.log
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record_usage(&usage);
                    let usage_only = chunk.raw("choices") == Some("[]");
                    if self.options.hide_usage && usage_only {
                        return None;
                    }
                }
                if self.options.hide_usage && chunk.raw("usage") == Some("null") {
                    chunk.remove("usage");
                }
                if chunk.get("error").is_some() {
                    self.note_error("upstream_stream_error");
                }
                if self.options.dialect == Dialect::Responses {
                    let kind = chunk
                        .raw("type")
                        .and_then(|t| serde_json::from_str::<String>(t).ok());
                    last = kind.is_some_and(|k| FINAL_RESPONSE_EVENTS.contains(&k.as_str()));
                }
                let mut data = String::with_capacity(event.data.len() + self.options.model.len());
                chunk.write_with_model(&self.options.model, &mut data);
                data
            }
            // Not a JSON object: relay as it came.
            Err(_) => event.data.clone(),
        };
        for line in data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Some((Bytes::from(out), last))
    }

    fn note_error(&self, kind: &str) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).error_type = Some(kind.to_owned());
    }

    fn fail(&self, message: &str) -> Bytes {
        self.note_error("upstream_stream_error");
        match self.options.dialect {
            Dialect::Chat => {
                let error = ApiError::server(StatusCode::BAD_GATEWAY, "upstream_stream_error", message);
                Bytes::from(format!("data: {}\n\ndata: [DONE]\n\n", error.to_json()))
            }
            Dialect::Responses => {
                let error = serde_json::json!({
                    "type": "error", "code": "upstream_stream_error", "message": message, "param": null,
                });
                Bytes::from(format!("event: error\ndata: {error}\n\n"))
            }
        }
    }
}

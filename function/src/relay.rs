//! Relays the upstream's server-sent events as they arrive, one event at a time, with
//! `model` rewritten to the id the client asked for. Nothing is buffered beyond the event
//! being relayed. A failure mid-stream becomes an OpenAI-shaped error event followed by
//! `[DONE]`, so SDKs end the stream cleanly. Dropping the stream (client gone) drops
//! the upstream response, which stops reading it.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::error::ApiError;
use crate::observe::LogHandle;

type Events = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

struct Relay {
    events: Events,
    model: String,
    idle_timeout: Duration,
    log: LogHandle,
}

pub fn sse(
    response: reqwest::Response,
    model: String,
    idle_timeout: Duration,
    log: LogHandle,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let events: Events = Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|r| r.map_err(|e| e.to_string())),
    );
    let relay = Relay {
        events,
        model,
        idle_timeout,
        log,
    };
    futures_util::stream::unfold(Some(relay), |relay| async move {
        let mut relay = relay?;
        match tokio::time::timeout(relay.idle_timeout, relay.events.next()).await {
            // A complete answer ends with [DONE] (which ends the relay above); a clean
            // close before it is a truncated answer the client must hear about.
            Ok(None) => Some((
                relay.fail("The upstream stream ended before the answer was complete."),
                None,
            )),
            Ok(Some(Ok(event))) if event.data.trim() == "[DONE]" => {
                Some((Bytes::from_static(b"data: [DONE]\n\n"), None))
            }
            Ok(Some(Ok(event))) => {
                let frame = relay.rewrite(&event);
                Some((frame, Some(relay)))
            }
            Ok(Some(Err(reason))) => {
                tracing::warn!(reason = %reason, "upstream stream failed");
                Some((
                    relay.fail("The upstream stream broke before the answer was complete."),
                    None,
                ))
            }
            Err(_) => Some((relay.fail("The upstream stream stalled and was cut off."), None)),
        }
    })
    .map(Ok)
}

impl Relay {
    fn rewrite(&mut self, event: &eventsource_stream::Event) -> Bytes {
        let mut out = String::with_capacity(event.data.len() + 16);
        if !event.event.is_empty() && event.event != "message" {
            out.push_str("event: ");
            out.push_str(&event.event);
            out.push('\n');
        }
        let data = match serde_json::from_str::<Value>(&event.data) {
            Ok(Value::Object(mut chunk)) => {
                if chunk.contains_key("model") {
                    chunk.insert("model".into(), Value::String(self.model.clone()));
                }
                if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
                    self.log
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record_usage(usage);
                }
                if chunk.contains_key("error") {
                    self.note_error("upstream_stream_error");
                }
                Value::Object(chunk).to_string()
            }
            // Not JSON: relay as it came.
            _ => event.data.clone(),
        };
        for line in data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }

    fn note_error(&self, kind: &str) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).error_type = Some(kind.to_owned());
    }

    fn fail(&self, message: &str) -> Bytes {
        self.note_error("upstream_stream_error");
        let error = ApiError::server(StatusCode::BAD_GATEWAY, "upstream_stream_error", message);
        Bytes::from(format!("data: {}\n\ndata: [DONE]\n\n", error.to_json()))
    }
}

//! A ConverseStream answer relayed as OpenAI's chat completion stream, event by event as
//! Bedrock sends them: nothing is buffered beyond the event in hand. It ends with
//! `data: [DONE]`; a failure or a stall mid-stream becomes an OpenAI-shaped error event
//! before it, as the OpenAI relay ends a broken stream.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::ConverseStreamOutput;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use bytes::Bytes;
use futures_util::Stream;
use http::StatusCode;

use super::Failure;
use super::answer::Chunks;
use crate::body::KEEP_ALIVE;
use crate::error::ApiError;
use crate::observe::LogHandle;
use crate::spend::Hold;

type Events = EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>;

/// The failure of a stream's event, classified as any Bedrock error.
pub fn event_failure(
    error: aws_sdk_bedrockruntime::error::SdkError<
        ConverseStreamOutputError,
        aws_smithy_types::event_stream::RawMessage,
    >,
) -> Failure {
    super::classify(&error)
}

/// A stream whose first event has arrived: from here on its bytes go to the client.
pub struct Opened {
    events: Events,
    first: Option<ConverseStreamOutput>,
    chunks: Chunks,
}

impl Opened {
    pub(super) fn new(
        events: Events,
        first: Option<ConverseStreamOutput>,
        client_model: &str,
        include_usage: bool,
    ) -> Self {
        Self {
            events,
            first,
            chunks: Chunks::new(client_model, include_usage),
        }
    }

    /// The answer's SSE bytes. The usage goes into the request's log line and settles
    /// `hold` at the end; a client gone before it pays for what was relayed, at most
    /// ([`tokens_at_most`]).
    pub fn sse(
        self,
        log: LogHandle,
        hold: Option<Hold>,
        idle_timeout: Duration,
        keep_alive: Duration,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        let relay = Relay {
            opened: self,
            log,
            hold,
            relayed: 0,
            done: false,
            last_event: Instant::now(),
        };
        futures_util::stream::unfold(relay, move |mut relay| async move {
            if relay.done {
                return None;
            }
            let bytes = relay.next(idle_timeout, keep_alive).await;
            Some((Ok(bytes), relay))
        })
    }
}

struct Relay {
    opened: Opened,
    log: LogHandle,
    hold: Option<Hold>,
    /// Output tokens relayed, at most.
    relayed: u64,
    done: bool,
    last_event: Instant,
}

/// The most output tokens a stream event can hold: a Bedrock delta carries several
/// tokens, and a token is at least one byte of its text (or of a tool call's input);
/// any other event, one.
fn tokens_at_most(event: &ConverseStreamOutput) -> u64 {
    use aws_sdk_bedrockruntime::types::ContentBlockDelta;
    let bytes = match event {
        ConverseStreamOutput::ContentBlockDelta(block) => match block.delta() {
            Some(ContentBlockDelta::Text(text)) => text.len(),
            Some(ContentBlockDelta::ToolUse(tool)) => tool.input().len(),
            _ => 1,
        },
        _ => 1,
    };
    u64::try_from(bytes).unwrap_or(u64::MAX).max(1)
}

impl Relay {
    async fn next(&mut self, idle_timeout: Duration, keep_alive: Duration) -> Bytes {
        loop {
            let idle_left = idle_timeout.saturating_sub(self.last_event.elapsed());
            let wait = keep_alive.min(idle_left);
            let event = match self.opened.first.take() {
                Some(event) => Ok(Some(event)),
                None => match tokio::time::timeout(wait, self.opened.events.recv()).await {
                    Ok(received) => {
                        self.last_event = Instant::now();
                        received.map_err(event_failure)
                    }
                    Err(_) if wait < idle_left => return Bytes::from_static(KEEP_ALIVE),
                    Err(_) => {
                        return self
                            .end_with_error("Amazon Bedrock's stream stalled and was cut off.")
                            .await;
                    }
                },
            };
            match event {
                Ok(Some(event)) => {
                    let cost = tokens_at_most(&event);
                    let out = self.opened.chunks.event(&event);
                    if self.opened.chunks.finished() {
                        let mut out = out;
                        out.push_str("data: [DONE]\n\n");
                        self.finish().await;
                        return Bytes::from(out);
                    }
                    if !out.is_empty() {
                        self.relayed += cost;
                        return Bytes::from(out);
                    }
                }
                Ok(None) => {
                    return self
                        .end_with_error("Amazon Bedrock's stream ended before the answer was complete.")
                        .await;
                }
                Err(failure) => {
                    let message = failure.into_error().message;
                    return self
                        .end_with_error(&format!("Amazon Bedrock's stream broke: {message}"))
                        .await;
                }
            }
        }
    }

    /// The usage into the log line and the reservation settled to it.
    async fn finish(&mut self) {
        self.done = true;
        let usage = self.opened.chunks.usage;
        if let Some(usage) = &usage {
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record_usage(usage);
        }
        if let Some(hold) = self.hold.take() {
            hold.settle(usage.as_ref()).await;
        }
    }

    async fn end_with_error(&mut self, message: &str) -> Bytes {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).error_type = Some("upstream_stream_error".into());
        self.finish().await;
        let error = ApiError::server(StatusCode::BAD_GATEWAY, "upstream_stream_error", message);
        Bytes::from(format!("data: {}\n\ndata: [DONE]\n\n", error.to_json()))
    }
}

impl Drop for Relay {
    /// The client went away before the end: it pays for what was relayed.
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            hold.settle_produced_later(self.relayed);
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_bedrockruntime::types::{
        ContentBlockDelta, ContentBlockDeltaEvent, MessageStartEvent, ToolUseBlockDelta,
    };

    use super::*;

    /// A client gone mid-stream pays for what it was sent: Bedrock's deltas hold several
    /// tokens each, so each counts its bytes, never fewer tokens than it may hold.
    #[test]
    fn a_delta_counts_as_many_tokens_as_its_bytes_and_other_events_as_one() {
        let delta = |d: ContentBlockDelta| {
            ConverseStreamOutput::ContentBlockDelta(
                ContentBlockDeltaEvent::builder()
                    .content_block_index(0)
                    .delta(d)
                    .build()
                    .unwrap(),
            )
        };
        let text = delta(ContentBlockDelta::Text("Hello there".into()));
        let tool = delta(ContentBlockDelta::ToolUse(
            ToolUseBlockDelta::builder().input("{\"city\":").build().unwrap(),
        ));
        let start = ConverseStreamOutput::MessageStart(
            MessageStartEvent::builder()
                .role(aws_sdk_bedrockruntime::types::ConversationRole::Assistant)
                .build()
                .unwrap(),
        );
        assert_eq!(
            [
                tokens_at_most(&text),
                tokens_at_most(&tool),
                tokens_at_most(&start)
            ],
            [11, 8, 1]
        );
    }
}

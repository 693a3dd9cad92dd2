//! Converse's answer as OpenAI's: a `chat.completion`, or `chat.completion.chunk` events
//! for a stream, with the model id the client asked for.

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConverseStreamOutput, StopReason, TokenUsage,
};
use serde_json::{Value, json};

use super::document;
use crate::observe::Usage;

/// OpenAI's `finish_reason` for Converse's `stopReason`.
pub fn finish_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::ToolUse => "tool_calls",
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => "length",
        StopReason::ContentFiltered | StopReason::GuardrailIntervened => "content_filter",
        _ => "stop",
    }
}

pub fn usage(tokens: Option<&TokenUsage>) -> Option<Usage> {
    let tokens = tokens?;
    let count = |n: i32| Some(u64::try_from(n).unwrap_or(0));
    Some(Usage {
        prompt_tokens: count(tokens.input_tokens()),
        completion_tokens: count(tokens.output_tokens()),
        total_tokens: count(tokens.total_tokens()),
        ..Usage::default()
    })
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens.unwrap_or(0),
        "completion_tokens": usage.completion_tokens.unwrap_or(0),
        "total_tokens": usage.total_tokens.unwrap_or(0),
    })
}

fn completion_id() -> String {
    format!(
        "chatcmpl-{}",
        uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
            .into_uuid()
            .simple()
    )
}

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A whole answer: the message's text and tool calls (0-based, in order), why it
/// stopped, and the usage.
pub fn completion(model: &str, content: &[ContentBlock], stop: &StopReason, usage: Option<&Usage>) -> Value {
    let text: String = content
        .iter()
        .filter_map(|b| b.as_text().ok())
        .map(String::as_str)
        .collect();
    let calls: Vec<Value> = content
        .iter()
        .filter_map(|b| b.as_tool_use().ok())
        .map(|call| {
            json!({"id": call.tool_use_id(), "type": "function", "function": {
                "name": call.name(), "arguments": document::to_json(call.input()).to_string()}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": created(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(stop)}],
        "usage": usage.map_or(Value::Null, usage_json),
    })
}

/// ConverseStream's events, one by one, as `chat.completion.chunk` events. Tool calls
/// get dense 0-based indexes in the order their blocks start, whatever Converse's
/// `contentBlockIndex` (text blocks take indexes there too: deriving OpenAI's index
/// from it gives gaps, or -1).
pub struct Chunks {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Converse block index -> the tool call's OpenAI index.
    calls: Vec<(i32, usize)>,
    started: bool,
    finish: Option<&'static str>,
    pub usage: Option<Usage>,
}

impl Chunks {
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            id: completion_id(),
            created: created(),
            model: model.to_owned(),
            include_usage,
            calls: Vec::new(),
            started: false,
            finish: None,
            usage: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        format!("data: {chunk}\n\n")
    }

    /// The SSE bytes for one event (often none).
    pub fn event(&mut self, event: &ConverseStreamOutput) -> String {
        let mut out = String::new();
        if !self.started {
            self.started = true;
            out.push_str(&self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        match event {
            ConverseStreamOutput::ContentBlockStart(start) => {
                if let Some(ContentBlockStart::ToolUse(call)) = start.start() {
                    let index = self.calls.len();
                    self.calls.push((start.content_block_index(), index));
                    out.push_str(&self.chunk(
                        json!({"tool_calls": [{"index": index, "id": call.tool_use_id(), "type": "function",
                                               "function": {"name": call.name(), "arguments": ""}}]}),
                        None,
                    ));
                }
            }
            ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta() {
                Some(ContentBlockDelta::Text(text)) if !text.is_empty() => {
                    out.push_str(&self.chunk(json!({"content": text}), None));
                }
                Some(ContentBlockDelta::ToolUse(input)) => {
                    let block = delta.content_block_index();
                    if let Some(&(_, index)) = self.calls.iter().find(|(b, _)| *b == block) {
                        out.push_str(&self.chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": input.input()}}]}),
                            None,
                        ));
                    }
                }
                _ => {}
            },
            ConverseStreamOutput::MessageStop(stop) => {
                let finish = finish_reason(stop.stop_reason());
                self.finish = Some(finish);
                out.push_str(&self.chunk(json!({}), Some(finish)));
            }
            ConverseStreamOutput::Metadata(metadata) => {
                self.usage = usage(metadata.usage());
                if self.include_usage
                    && let Some(usage) = &self.usage
                {
                    let chunk = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage_json(usage),
                    });
                    out.push_str(&format!("data: {chunk}\n\n"));
                }
            }
            _ => {}
        }
        out
    }

    /// Whether the answer is complete (its stop and metadata arrived).
    pub fn finished(&self) -> bool {
        self.finish.is_some() && self.usage.is_some()
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_bedrockruntime::types::{
        ContentBlockDeltaEvent, ContentBlockStartEvent, ConverseStreamMetadataEvent, MessageStopEvent,
        ToolUseBlock, ToolUseBlockDelta, ToolUseBlockStart,
    };

    use super::*;

    fn data(sse: &str) -> Vec<Value> {
        sse.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    fn tool_start(block: i32, id: &str) -> ConverseStreamOutput {
        ConverseStreamOutput::ContentBlockStart(
            ContentBlockStartEvent::builder()
                .content_block_index(block)
                .start(ContentBlockStart::ToolUse(
                    ToolUseBlockStart::builder()
                        .tool_use_id(id)
                        .name("weather")
                        .build()
                        .unwrap(),
                ))
                .build()
                .unwrap(),
        )
    }

    fn delta(block: i32, delta: ContentBlockDelta) -> ConverseStreamOutput {
        ConverseStreamOutput::ContentBlockDelta(
            ContentBlockDeltaEvent::builder()
                .content_block_index(block)
                .delta(delta)
                .build()
                .unwrap(),
        )
    }

    fn tokens() -> TokenUsage {
        TokenUsage::builder()
            .input_tokens(12)
            .output_tokens(7)
            .total_tokens(19)
            .build()
            .unwrap()
    }

    #[test]
    fn stop_reasons_become_openais_finish_reasons() {
        assert_eq!(finish_reason(&StopReason::EndTurn), "stop");
        assert_eq!(finish_reason(&StopReason::StopSequence), "stop");
        assert_eq!(finish_reason(&StopReason::ToolUse), "tool_calls");
        assert_eq!(finish_reason(&StopReason::MaxTokens), "length");
        assert_eq!(finish_reason(&StopReason::ContentFiltered), "content_filter");
        assert_eq!(finish_reason(&StopReason::GuardrailIntervened), "content_filter");
    }

    #[test]
    fn a_whole_answer_carries_the_clients_model_its_tool_calls_and_usage() {
        let content = [
            ContentBlock::Text("Let me look.".into()),
            ContentBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id("t1")
                    .name("weather")
                    .input(document::from_json(&json!({"city": "Paris"})))
                    .build()
                    .unwrap(),
            ),
        ];
        let answer = completion(
            "amazon.nova-lite-v1:0",
            &content,
            &StopReason::ToolUse,
            usage(Some(&tokens())).as_ref(),
        );
        assert_eq!(answer["model"], "amazon.nova-lite-v1:0");
        assert_eq!(answer["object"], "chat.completion");
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me look.");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19})
        );
    }

    /// bedrock-access-gateway's #203 and #134: a text block before two tool blocks gave
    /// the calls indexes off by one (or -1). Here they are 0 and 1.
    #[test]
    fn tool_calls_after_text_get_dense_zero_based_indexes() {
        let mut chunks = Chunks::new("m", false);
        let mut sse = String::new();
        for event in [
            delta(0, ContentBlockDelta::Text("Checking".into())),
            tool_start(1, "t1"),
            delta(
                1,
                ContentBlockDelta::ToolUse(ToolUseBlockDelta::builder().input("{\"city\":").build().unwrap()),
            ),
            delta(
                1,
                ContentBlockDelta::ToolUse(ToolUseBlockDelta::builder().input("\"Paris\"}").build().unwrap()),
            ),
            tool_start(2, "t2"),
            delta(
                2,
                ContentBlockDelta::ToolUse(ToolUseBlockDelta::builder().input("{}").build().unwrap()),
            ),
            ConverseStreamOutput::MessageStop(
                MessageStopEvent::builder()
                    .stop_reason(StopReason::ToolUse)
                    .build()
                    .unwrap(),
            ),
        ] {
            sse.push_str(&chunks.event(&event));
        }
        let events = data(&sse);
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        let indexes: Vec<u64> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0]["index"].as_u64())
            .collect();
        assert_eq!(indexes, [0, 0, 0, 1, 1]);
        let arguments: String = events
            .iter()
            .filter(|e| e["choices"][0]["delta"]["tool_calls"][0]["index"] == 0)
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(arguments, "{\"city\":\"Paris\"}");
        assert_eq!(
            events.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert!(events.iter().all(|e| e["model"] == "m"));
    }

    #[test]
    fn usage_closes_the_stream_only_when_the_client_asked_but_is_always_kept() {
        let metadata =
            ConverseStreamOutput::Metadata(ConverseStreamMetadataEvent::builder().usage(tokens()).build());
        let mut quiet = Chunks::new("m", false);
        assert!(!quiet.event(&metadata).contains("usage"));
        assert_eq!(quiet.usage.unwrap().total_tokens, Some(19));
        let mut asked = Chunks::new("m", true);
        let events = data(&asked.event(&metadata));
        let last = events.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["completion_tokens"], 7);
    }
}

//! An OpenAI chat completion request as a Bedrock Converse conversation.
//!
//! - `system` and `developer` messages become the `system` blocks, in order.
//! - Converse needs a conversation that starts with the user and alternates: messages of
//!   one role in a row are merged into one turn, and a conversation that would start
//!   with the assistant is refused (there is no honest turn to invent before it).
//! - An assistant's `tool_calls` become `toolUse` blocks (`arguments` parsed as JSON), a
//!   `tool` message a `toolResult` block in the user's turn.
//! - `tools` and `tool_choice` become `toolConfig`: `auto` → auto, `required` → any, a
//!   named function → that tool. `none` has no Converse counterpart: the tools are left
//!   out, and so the model cannot call one. Converse takes tool blocks only with tools
//!   offered, so a request offering none tells its earlier calls and results as text.
//! - `max_tokens`/`max_completion_tokens` (the smaller), `temperature`, `top_p` and `stop`
//!   become `inferenceConfig`.
//! - Image parts are accepted as `data:` URLs only: the proxy never fetches a URL.
//!
//! Refused, naming the parameter (Bedrock has nothing that does it): `n` above 1,
//! `logprobs`, audio and file parts, `response_format` other than `text`. Accepted and
//! not passed on (no Converse counterpart, no effect on what is allowed): `seed`,
//! `frequency_penalty`, `presence_penalty`, `logit_bias`, `user`, `store`, `metadata`,
//! `parallel_tool_calls`, `service_tier`.

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, AutoToolChoice, ContentBlock, ConversationRole, ImageBlock, ImageFormat, ImageSource,
    InferenceConfiguration, Message, SpecificToolChoice, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolSpecification,
    ToolUseBlock,
};
use base64::Engine;
use serde_json::Value;

use super::document;
use crate::error::ApiError;

/// What Converse is sent for one chat request.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub messages: Vec<Message>,
    pub system: Vec<SystemContentBlock>,
    pub inference: InferenceConfiguration,
    pub tools: Option<ToolConfiguration>,
    /// `stream_options.include_usage`: the stream ends with a usage chunk.
    pub include_usage: bool,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    let param = param.into();
    ApiError::invalid_request(message.into()).with_param(param)
}

/// A built SDK value: the builders only fail on a missing required field, which the
/// code sets every time; said as a 400 rather than a panic all the same.
fn built<T, E: std::fmt::Display>(result: Result<T, E>, param: &str) -> Result<T, ApiError> {
    result.map_err(|e| invalid(param, format!("`{param}` cannot be sent to Amazon Bedrock: {e}")))
}

pub fn conversation(body: &Value) -> Result<Conversation, ApiError> {
    refuse_unsupported(body)?;
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(invalid("messages", "`messages` must be a list of messages."));
    };
    let mut system = Vec::new();
    let mut turns: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                for text in texts(message.get("content"), &format!("{at}.content"))? {
                    system.push(SystemContentBlock::Text(text));
                }
                continue;
            }
            "user" => (ConversationRole::User, user_content(message.get("content"), &at)?),
            "assistant" => (ConversationRole::Assistant, assistant_content(message, &at)?),
            "tool" => (ConversationRole::User, vec![tool_result(message, &at)?]),
            _ => {
                return Err(invalid(
                    format!("{at}.role"),
                    format!("`{at}.role` must be system, developer, user, assistant or tool."),
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    match turns.first() {
        None => return Err(invalid("messages", "`messages` holds no user message to answer.")),
        Some((ConversationRole::Assistant, _)) => {
            return Err(invalid(
                "messages",
                "The conversation starts with an assistant message; Amazon Bedrock needs it to start with the user's.",
            ));
        }
        Some(_) => {}
    }
    let messages = turns
        .into_iter()
        .map(|(role, content)| {
            built(
                Message::builder().role(role).set_content(Some(content)).build(),
                "messages",
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tools = tool_config(body)?;
    // Converse takes tool blocks only with a toolConfig; a request that offers no tools
    // now (none given, or `tool_choice` none) may still hold earlier calls.
    let messages = if tools.is_none() {
        messages.into_iter().map(told_as_text).collect::<Result<_, _>>()?
    } else {
        messages
    };
    Ok(Conversation {
        tools,
        inference: inference(body)?,
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        messages,
        system,
    })
}

fn refuse_unsupported(body: &Value) -> Result<(), ApiError> {
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(invalid(
            "n",
            "`n` above 1 cannot be served by Amazon Bedrock: ask for one choice.",
        ));
    }
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(invalid(
            "logprobs",
            "`logprobs` cannot be served by Amazon Bedrock: leave it out.",
        ));
    }
    match body.pointer("/response_format/type").and_then(Value::as_str) {
        None | Some("text") => Ok(()),
        Some(kind) => Err(invalid(
            "response_format",
            format!(
                "`response_format` {kind} cannot be served by Amazon Bedrock: ask for JSON in the prompt instead."
            ),
        )),
    }
}

/// The text of a system, developer or tool message: a string, or text parts.
fn texts(content: Option<&Value>, at: &str) -> Result<Vec<String>, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        // Converse refuses a blank text block, whitespace included; OpenAI takes one.
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(
                |(j, part)| match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(text))) => Ok(text.clone()),
                    _ => Err(invalid(
                        format!("{at}[{j}]"),
                        format!("`{at}[{j}]` must be a text part."),
                    )),
                },
            )
            .filter(|t| t.as_ref().map_or(true, |t| !t.trim().is_empty()))
            .collect(),
        Some(_) => Err(invalid(
            at,
            format!("`{at}` must be a string or a list of parts."),
        )),
    }
}

fn user_content(content: Option<&Value>, at: &str) -> Result<Vec<ContentBlock>, ApiError> {
    let at = format!("{at}.content");
    let Some(Value::Array(parts)) = content else {
        return Ok(texts(content, &at)?.into_iter().map(ContentBlock::Text).collect());
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text") {
                Some(Value::String(text)) if text.trim().is_empty() => {}
                Some(Value::String(text)) => blocks.push(ContentBlock::Text(text.clone())),
                _ => {
                    return Err(invalid(
                        format!("{at}.text"),
                        format!("`{at}.text` must be a string."),
                    ));
                }
            },
            Some("image_url") => {
                let url = part
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                blocks.push(ContentBlock::Image(image(url, &format!("{at}.image_url.url"))?));
            }
            Some(kind) => {
                return Err(invalid(
                    at.clone(),
                    format!(
                        "`{at}` is a {kind} part, which Amazon Bedrock failover does not take: send text or images."
                    ),
                ));
            }
            None => return Err(invalid(format!("{at}.type"), format!("`{at}.type` is missing."))),
        }
    }
    Ok(blocks)
}

/// An image given as a `data:` URL; any other URL is refused, never fetched.
fn image(url: &str, at: &str) -> Result<ImageBlock, ApiError> {
    let refuse = |why: &str| invalid(at, format!("`{at}` {why}"));
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(refuse(
            "must be a data: URL (data:image/png;base64,...) when Amazon Bedrock serves the request: the proxy never fetches URLs.",
        ));
    };
    let (media, data) = rest
        .split_once(";base64,")
        .ok_or_else(|| refuse("must be a base64 data: URL (data:image/png;base64,...)."))?;
    let format = match media {
        "image/png" => ImageFormat::Png,
        "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::Webp,
        _ => return Err(refuse("must be a PNG, JPEG, GIF or WebP image.")),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| refuse("holds data that is not valid base64."))?;
    built(
        ImageBlock::builder()
            .format(format)
            .source(ImageSource::Bytes(Blob::new(bytes)))
            .build(),
        at,
    )
}

fn assistant_content(message: &Value, at: &str) -> Result<Vec<ContentBlock>, ApiError> {
    let mut blocks: Vec<ContentBlock> = texts(message.get("content"), &format!("{at}.content"))?
        .into_iter()
        .map(ContentBlock::Text)
        .collect();
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(invalid(
                format!("{at}.tool_calls"),
                format!("`{at}.tool_calls` must be a list."),
            ));
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        let field = |pointer: &str| call.pointer(pointer).and_then(Value::as_str);
        let (Some(id), Some(name)) = (field("/id"), field("/function/name")) else {
            return Err(invalid(
                at.clone(),
                format!("`{at}` needs an `id` and a `function.name`."),
            ));
        };
        let arguments = field("/function/arguments").unwrap_or("{}");
        let input: Value = serde_json::from_str(if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        })
        .map_err(|_| {
            invalid(
                format!("{at}.function.arguments"),
                format!("`{at}.function.arguments` must be a JSON string."),
            )
        })?;
        blocks.push(ContentBlock::ToolUse(built(
            ToolUseBlock::builder()
                .tool_use_id(id)
                .name(name)
                .input(document::from_json(&input))
                .build(),
            &at,
        )?));
    }
    Ok(blocks)
}

/// What a tool result with no text says to the model.
const EMPTY_TOOL_RESULT: &str = "(no output)";

fn tool_result(message: &Value, at: &str) -> Result<ContentBlock, ApiError> {
    let Some(id) = message.get("tool_call_id").and_then(Value::as_str) else {
        return Err(invalid(
            format!("{at}.tool_call_id"),
            format!("`{at}.tool_call_id` is missing."),
        ));
    };
    let mut content: Vec<_> = texts(message.get("content"), &format!("{at}.content"))?
        .into_iter()
        .map(ToolResultContentBlock::Text)
        .collect();
    // A tool that printed nothing: Converse needs a result with content, and no blank text.
    if content.is_empty() {
        content.push(ToolResultContentBlock::Text(EMPTY_TOOL_RESULT.to_owned()));
    }
    Ok(ContentBlock::ToolResult(built(
        ToolResultBlock::builder()
            .tool_use_id(id)
            .set_content(Some(content))
            .build(),
        at,
    )?))
}

/// `message` with its tool calls and results told as text, for a request that offers no
/// tools (Converse refuses tool blocks without a toolConfig): the model still reads what
/// was called and what came back, and cannot call anything.
fn told_as_text(message: Message) -> Result<Message, ApiError> {
    let content = message
        .content()
        .iter()
        .map(|block| match block {
            ContentBlock::ToolUse(call) => ContentBlock::Text(format!(
                "[called the tool {} with {}]",
                call.name(),
                document::to_json(call.input())
            )),
            ContentBlock::ToolResult(result) => {
                let texts: Vec<&str> = result
                    .content()
                    .iter()
                    .filter_map(|c| c.as_text().ok().map(String::as_str))
                    .collect();
                ContentBlock::Text(format!("[the tool answered: {}]", texts.join(" ")))
            }
            other => other.clone(),
        })
        .collect();
    built(
        Message::builder()
            .role(message.role().clone())
            .set_content(Some(content))
            .build(),
        "messages",
    )
}

fn tool_config(body: &Value) -> Result<Option<ToolConfiguration>, ApiError> {
    let tools = match body.get("tools") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(tools)) if tools.is_empty() => return Ok(None),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("tools", "`tools` must be a list.")),
    };
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => Some(ToolChoice::Auto(AutoToolChoice::builder().build())),
        Some(Value::String(s)) if s == "required" => Some(ToolChoice::Any(AnyToolChoice::builder().build())),
        // The tools are left out; earlier calls are then told as text (`told_as_text`).
        Some(Value::String(s)) if s == "none" => return Ok(None),
        Some(choice) => match choice.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Some(ToolChoice::Tool(built(
                SpecificToolChoice::builder().name(name).build(),
                "tool_choice",
            )?)),
            None => {
                return Err(invalid(
                    "tool_choice",
                    "`tool_choice` must be auto, required, none or {\"type\": \"function\", \"function\": {\"name\": ...}}.",
                ));
            }
        },
    };
    let mut specs = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Some(name) = tool.pointer("/function/name").and_then(Value::as_str) else {
            return Err(invalid(
                format!("{at}.function.name"),
                format!("`{at}.function.name` is missing."),
            ));
        };
        let schema = tool
            .pointer("/function/parameters")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        let spec = ToolSpecification::builder()
            .name(name)
            .set_description(
                tool.pointer("/function/description")
                    .and_then(Value::as_str)
                    // Converse refuses an empty description; OpenAI takes one.
                    .filter(|d| !d.trim().is_empty())
                    .map(str::to_owned),
            )
            .input_schema(ToolInputSchema::Json(document::from_json(&schema)))
            .build();
        specs.push(Tool::ToolSpec(built(spec, &at)?));
    }
    Ok(Some(built(
        ToolConfiguration::builder()
            .set_tools(Some(specs))
            .set_tool_choice(choice)
            .build(),
        "tools",
    )?))
}

fn inference(body: &Value) -> Result<InferenceConfiguration, ApiError> {
    let mut config = InferenceConfiguration::builder();
    let asked = ["max_completion_tokens", "max_tokens"]
        .iter()
        .filter_map(|p| body.get(*p).and_then(Value::as_u64))
        .min();
    if let Some(max) = asked {
        config = config.max_tokens(i32::try_from(max).unwrap_or(i32::MAX));
    }
    let number = |param: &str| body.get(param).and_then(Value::as_f64).map(|v| v as f32);
    // OpenAI's temperature goes to 2, Converse's to 1: above 1 is as random as it gets.
    config = config
        .set_temperature(number("temperature").map(|t| t.min(1.0)))
        .set_top_p(number("top_p"));
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("stop", "`stop` must be a string or a list of strings."))?,
        Some(_) => return Err(invalid("stop", "`stop` must be a string or a list of strings.")),
    };
    // An empty stop sequence stops nothing; Converse refuses one (its minimum length is 1).
    let stop: Vec<String> = stop.into_iter().filter(|s| !s.is_empty()).collect();
    if !stop.is_empty() {
        config = config.set_stop_sequences(Some(stop));
    }
    Ok(config.build())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn roles(conversation: &Conversation) -> Vec<&str> {
        conversation.messages.iter().map(|m| m.role().as_str()).collect()
    }

    #[test]
    fn system_and_developer_become_system_and_turns_of_one_role_are_merged() {
        let conversation = conversation(&json!({"model": "m", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": [{"type": "text", "text": "again"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "assistant", "content": "!"},
            {"role": "user", "content": "Thanks"},
        ]}))
        .unwrap();
        assert_eq!(conversation.system.len(), 2);
        assert_eq!(roles(&conversation), ["user", "assistant", "user"]);
        assert_eq!(
            conversation.messages[0].content().len(),
            2,
            "Hi and again in one turn"
        );
        assert_eq!(conversation.messages[1].content().len(), 2);
    }

    /// Converse refuses a blank text block ("The text field in the ContentBlock object at
    /// messages.0.content.1 is blank"), whitespace included; OpenAI takes them.
    #[test]
    fn blank_texts_are_left_out_and_a_turn_of_nothing_else_with_them() {
        let conversation = conversation(&json!({"model": "m", "messages": [
            {"role": "system", "content": " "},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " \n"}]},
            {"role": "assistant", "content": "\t"},
            {"role": "user", "content": "again"},
        ]}))
        .unwrap();
        assert!(conversation.system.is_empty());
        assert_eq!(roles(&conversation), ["user"]);
        let texts: Vec<_> = conversation.messages[0]
            .content()
            .iter()
            .map(|b| b.as_text().unwrap().as_str())
            .collect();
        assert_eq!(texts, ["Hi", "again"]);
    }

    #[test]
    fn tool_calls_become_tool_use_and_tool_messages_results_in_the_users_turn() {
        let conversation = conversation(&json!({"model": "m",
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "20C"},
            ]}))
        .unwrap();
        assert_eq!(roles(&conversation), ["user", "assistant", "user"]);
        let ContentBlock::ToolUse(call) = &conversation.messages[1].content()[0] else {
            panic!("{:?}", conversation.messages[1]);
        };
        assert_eq!((call.tool_use_id(), call.name()), ("call_1", "weather"));
        assert_eq!(document::to_json(call.input()), json!({"city": "Paris"}));
        let results: Vec<_> = conversation.messages[2]
            .content()
            .iter()
            .filter_map(|b| b.as_tool_result().ok())
            .map(|r| r.tool_use_id())
            .collect();
        assert_eq!(results, ["call_1", "call_2"]);
        let tools = conversation.tools.unwrap();
        assert!(matches!(tools.tool_choice(), Some(ToolChoice::Tool(t)) if t.name() == "weather"));
    }

    #[test]
    fn inference_settings_take_the_smaller_token_cap_and_every_stop() {
        let conversation = conversation(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 300, "max_completion_tokens": 200, "temperature": 0.5, "top_p": 0.9, "stop": ["END", "STOP"],
            "stream_options": {"include_usage": true}}))
        .unwrap();
        let inference = conversation.inference;
        assert_eq!(inference.max_tokens(), Some(200));
        assert_eq!(inference.temperature(), Some(0.5));
        assert_eq!(inference.stop_sequences(), ["END", "STOP"]);
        assert!(conversation.include_usage);
    }

    /// Converse refuses tool blocks without a toolConfig ("The toolConfig field must be
    /// defined when using toolUse and toolResult content blocks"); OpenAI takes a history
    /// of calls in a request that offers no tools now.
    #[test]
    fn earlier_tool_calls_are_told_as_text_when_no_tools_are_offered() {
        let history = json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},
            {"role": "user", "content": "thanks"},
        ]);
        for extra in [
            json!({}),
            json!({"tool_choice": "none", "tools": [{"type": "function", "function": {"name": "weather"}}]}),
        ] {
            let mut body = json!({"model": "m", "messages": history});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let conversation = conversation(&body).unwrap();
            assert!(conversation.tools.is_none());
            let texts: Vec<_> = conversation
                .messages
                .iter()
                .flat_map(|m| m.content())
                .map(|b| b.as_text().expect("only text blocks").as_str())
                .collect();
            assert_eq!(
                texts,
                [
                    "weather?",
                    "[called the tool weather with {\"city\":\"Paris\"}]",
                    "[the tool answered: 18C]",
                    "thanks"
                ],
                "{body}"
            );
        }
    }

    /// What OpenAI takes and Converse refuses: a temperature above 1 ("failed to satisfy
    /// constraint"), an empty stop sequence or tool description (minimum length 1), and a
    /// tool result without content.
    #[test]
    fn what_openai_takes_and_converse_would_refuse_is_sent_in_converses_bounds() {
        let conversation = conversation(&json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": ""},
        ], "temperature": 1.5, "stop": ["", "END"],
           "tools": [{"type": "function", "function": {"name": "f", "description": ""}}]}))
        .unwrap();
        assert_eq!(conversation.inference.temperature(), Some(1.0));
        assert_eq!(conversation.inference.stop_sequences(), ["END"]);
        let Some(Tool::ToolSpec(spec)) = conversation.tools.as_ref().map(|t| &t.tools()[0]) else {
            panic!("no tool spec");
        };
        assert_eq!(spec.description(), None);
        let Some(ContentBlock::ToolResult(result)) = conversation.messages[2].content().first() else {
            panic!("{:?}", conversation.messages[2]);
        };
        assert_eq!(
            result
                .content()
                .first()
                .and_then(|c| c.as_text().ok())
                .map(String::as_str),
            Some(EMPTY_TOOL_RESULT)
        );
    }

    #[test]
    fn images_are_taken_from_data_urls_and_never_fetched() {
        let with = |url: &str| {
            conversation(&json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]}))
        };
        let ok = with("data:image/png;base64,iVBORw0KGgo=").unwrap();
        let ContentBlock::Image(image) = &ok.messages[0].content()[1] else {
            panic!("{:?}", ok.messages[0]);
        };
        assert_eq!(image.format(), &ImageFormat::Png);
        let refused = with("https://example.com/cat.png").unwrap_err();
        assert_eq!(
            refused.param.as_deref(),
            Some("messages[0].content[1].image_url.url")
        );
        assert!(refused.message.contains("never fetches"), "{}", refused.message);
    }

    #[test]
    fn what_bedrock_cannot_do_is_refused_naming_the_parameter() {
        for (body, param) in [
            (json!({"n": 2}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (json!({"stop": [1]}), "stop"),
            (
                json!({"messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
                    {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}),
                "messages[1].tool_calls[0].function.arguments",
            ),
        ] {
            let mut body = body;
            if body.get("messages").is_none() {
                body["messages"] = json!([{"role": "user", "content": "x"}]);
            }
            let error = conversation(&body).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param), "{body}: {}", error.message);
            assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
        }
    }
}

//! The OpenAI endpoints the proxy forwards, and what it checks of their requests before
//! anything goes upstream: a JSON object, a non-empty `model`, a boolean `stream`, and
//! for chat completions a non-empty list of `messages`. Everything else is OpenAI's to
//! judge, so every other field is forwarded untouched.

use serde_json::{Map, Value};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
    Responses,
}

impl Endpoint {
    /// The path under the upstream's base URL.
    pub fn upstream_path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat/completions",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
        }
    }

    /// Whether `"stream": true` asks for server-sent events.
    pub fn streams(self) -> bool {
        !matches!(self, Self::Embeddings)
    }

    /// What a request body must name, for the message on malformed JSON.
    fn required(self) -> &'static str {
        match self {
            Self::ChatCompletions => "`model` and `messages`",
            Self::Embeddings => "`model` and `input`",
            Self::Responses => "`model` and `input`",
        }
    }

    /// The request as a JSON object whose checked fields have the right types.
    pub fn parse(self, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
        let map = parse_object(body, self.required())?;
        if self == Self::ChatCompletions {
            check_messages(&map)?;
        }
        Ok(map)
    }
}

fn parse_object(body: &[u8], required: &str) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_request(format!(
            "We could not parse the JSON body of your request ({}). Send a JSON object with {required}.",
            json_problem(&e)
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::invalid_request(
            "The request body must be a JSON object.",
        ));
    };
    match map.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_request("You must provide a model parameter.").with_param("model"));
        }
        Some(_) => {
            return Err(ApiError::invalid_request("`model` must be a non-empty string.").with_param("model"));
        }
    }
    if map.get("stream").is_some_and(|s| !s.is_boolean() && !s.is_null()) {
        return Err(ApiError::invalid_request("`stream` must be a boolean.").with_param("stream"));
    }
    Ok(map)
}

fn check_messages(map: &Map<String, Value>) -> Result<(), ApiError> {
    match map.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => {
            if list.iter().any(|m| !m.is_object()) {
                return Err(
                    ApiError::invalid_request("Each entry of `messages` must be an object.")
                        .with_param("messages"),
                );
            }
        }
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_request("`messages` must not be empty.").with_param("messages"));
        }
        None | Some(Value::Null) => {
            return Err(
                ApiError::invalid_request("Missing required parameter: 'messages'.").with_param("messages"),
            );
        }
        Some(_) => {
            return Err(ApiError::invalid_request("`messages` must be an array.").with_param("messages"));
        }
    }
    Ok(())
}

fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong data type",
        serde_json::error::Category::Io => "read error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn parse(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
        Endpoint::ChatCompletions.parse(body)
    }

    #[test]
    fn parse_names_the_bad_parameter() {
        let cases: &[(&str, Option<&str>)] = &[
            ("{", None),
            ("[]", None),
            (r#"{"messages":[{"role":"user","content":"hi"}]}"#, Some("model")),
            (r#"{"model":5,"messages":[]}"#, Some("model")),
            (r#"{"model":"m"}"#, Some("messages")),
            (r#"{"model":"m","messages":"hi"}"#, Some("messages")),
            (r#"{"model":"m","messages":[]}"#, Some("messages")),
            (r#"{"model":"m","messages":[1]}"#, Some("messages")),
            (r#"{"model":"m","messages":[{}],"stream":"yes"}"#, Some("stream")),
        ];
        for (body, param) in cases {
            let error = parse(body.as_bytes()).expect_err(body);
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(error.param.as_deref(), *param, "{body}");
        }
        assert!(parse(br#"{"model":"m","messages":[{"role":"user"}],"stream":true,"x":1}"#).is_ok());
    }

    #[test]
    fn embeddings_and_responses_leave_their_input_to_openai() {
        for endpoint in [Endpoint::Embeddings, Endpoint::Responses] {
            assert!(endpoint.parse(br#"{"model":"m","input":[1,2]}"#).is_ok());
            assert!(endpoint.parse(br#"{"model":"m"}"#).is_ok());
            let error = endpoint.parse(br#"{"input":"x"}"#).unwrap_err();
            assert_eq!(error.param.as_deref(), Some("model"));
        }
    }
}

//! The OpenAI endpoints the proxy forwards, and what it checks of their requests before
//! anything goes upstream: a JSON object, a non-empty `model`, a boolean `stream`, and
//! for chat completions a non-empty list of `messages`. Everything else is OpenAI's to
//! judge, so every other field is forwarded untouched, as the client wrote it: the body
//! is never parsed into a tree (`rewrite::Fields`).

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::rewrite::{Fields, json_string};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
    Responses,
}

/// What a request does with a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAction {
    Retrieve,
    Delete,
    Cancel,
    InputItems,
}

impl StoredAction {
    pub fn method(self) -> http::Method {
        match self {
            Self::Retrieve | Self::InputItems => http::Method::GET,
            Self::Delete => http::Method::DELETE,
            Self::Cancel => http::Method::POST,
        }
    }

    /// The upstream path of this action on the response `id`.
    pub fn upstream_path(self, id: &str) -> String {
        match self {
            Self::Retrieve | Self::Delete => format!("responses/{id}"),
            Self::Cancel => format!("responses/{id}/cancel"),
            Self::InputItems => format!("responses/{id}/input_items"),
        }
    }
}

/// A checked request body.
#[derive(Debug)]
pub struct Request<'a> {
    fields: Fields<'a>,
    /// The body's length, to size the upstream's.
    len: usize,
    /// The model id the client asked for.
    pub model: String,
    /// `"stream": true` on an endpoint that streams.
    pub stream: bool,
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

    /// The fields that cap a request's output tokens on this endpoint.
    pub fn token_caps(self) -> &'static [&'static str] {
        match self {
            Self::ChatCompletions => &["max_tokens", "max_completion_tokens"],
            Self::Responses => &["max_output_tokens"],
            Self::Embeddings => &[],
        }
    }

    /// What a request body must name, for the message on malformed JSON.
    fn required(self) -> &'static str {
        match self {
            Self::ChatCompletions => "`model` and `messages`",
            Self::Embeddings => "`model` and `input`",
            Self::Responses => "`model` and `input`",
        }
    }

    /// The request, its checked fields of the right types.
    pub fn parse(self, body: &[u8]) -> Result<Request<'_>, ApiError> {
        let fields = parse_object(body, self.required())?;
        let model = match fields.raw("model") {
            None | Some("null") => {
                return Err(
                    ApiError::invalid_request("You must provide a model parameter.").with_param("model")
                );
            }
            Some(raw) => serde_json::from_str::<String>(raw)
                .ok()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid_request("`model` must be a non-empty string.").with_param("model")
                })?,
        };
        let stream = match fields.raw("stream") {
            None | Some("null") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ApiError::invalid_request("`stream` must be a boolean.").with_param("stream"));
            }
        };
        if self == Self::ChatCompletions {
            check_messages(fields.raw("messages"))?;
        }
        Ok(Request {
            fields,
            len: body.len(),
            model,
            stream: stream && self.streams(),
        })
    }
}

impl Request<'_> {
    /// The whole number in `key`, if the body has one there; `Err` for a field that is
    /// present and something else.
    pub fn count(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.fields.raw(key) {
            None | Some("null") => Ok(None),
            Some(raw) => raw.parse::<u64>().map(Some).map_err(|_| {
                ApiError::invalid_request(format!("`{key}` must be a whole number.")).with_param(key)
            }),
        }
    }

    /// Whether the client asked for usage in its stream (`stream_options.include_usage`).
    pub fn asks_for_usage(&self) -> bool {
        self.stream_options()
            .and_then(|options| options.get("include_usage").and_then(Value::as_bool))
            .unwrap_or(false)
    }

    /// The body for the upstream: `model` set to `upstream_model` and, with
    /// `include_usage`, `stream_options.include_usage` set to true (the client's other
    /// stream options kept). Every other field keeps the client's bytes.
    pub fn upstream_body(&self, upstream_model: &str, include_usage: bool) -> String {
        let model = json_string(upstream_model);
        let options;
        let mut set = vec![("model", model.as_str())];
        if include_usage {
            let mut map = self.stream_options().unwrap_or_default();
            map.insert("include_usage".into(), Value::Bool(true));
            options = Value::Object(map).to_string();
            set.push(("stream_options", options.as_str()));
        }
        let mut out = String::with_capacity(self.len + model.len() + 40);
        self.fields.write_with(&set, &mut out);
        out
    }

    /// `stream_options` when it is an object (anything else is replaced when usage is
    /// forced).
    fn stream_options(&self) -> Option<Map<String, Value>> {
        self.fields
            .raw("stream_options")
            .filter(|raw| raw.starts_with('{'))
            .and_then(|raw| serde_json::from_str(raw).ok())
    }
}

/// Whether the request says its body is JSON (`application/json`, any parameters, any
/// case). A browser sends a cross-origin `text/plain` or form POST without a CORS
/// preflight; requiring JSON makes every such request one the browser must ask first.
pub fn declares_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The 415 for a body that does not say it is JSON.
pub fn not_json() -> ApiError {
    ApiError::new(
        http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        "The request body must be JSON, sent with `Content-Type: application/json` (curl: -H 'Content-Type: application/json').",
    )
    .with_code("unsupported_media_type")
}

fn parse_object<'a>(body: &'a [u8], required: &str) -> Result<Fields<'a>, ApiError> {
    let unparsable = |problem: &str| {
        ApiError::invalid_request(format!(
            "We could not parse the JSON body of your request ({problem}). Send a JSON object with {required}."
        ))
    };
    let text = std::str::from_utf8(body).map_err(|_| unparsable("invalid UTF-8"))?;
    Fields::parse(text).map_err(|e| match e.classify() {
        // Valid JSON of another type: an array, a string, a number.
        serde_json::error::Category::Data => {
            ApiError::invalid_request("The request body must be a JSON object.")
        }
        _ => unparsable(json_problem(&e)),
    })
}

fn check_messages(raw: Option<&str>) -> Result<(), ApiError> {
    let invalid = |message: &str| ApiError::invalid_request(message).with_param("messages");
    match raw {
        None | Some("null") => Err(invalid("Missing required parameter: 'messages'.")),
        Some(raw) if raw.starts_with('[') => {
            let list: Vec<&RawValue> =
                serde_json::from_str(raw).map_err(|_| invalid("`messages` must be an array."))?;
            if list.is_empty() {
                Err(invalid("`messages` must not be empty."))
            } else if list.iter().any(|m| !m.get().trim_start().starts_with('{')) {
                Err(invalid("Each entry of `messages` must be an object."))
            } else {
                Ok(())
            }
        }
        Some(_) => Err(invalid("`messages` must be an array.")),
    }
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
    use http::StatusCode;

    fn parse(body: &[u8]) -> Result<Request<'_>, ApiError> {
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

    #[test]
    fn the_upstream_body_keeps_the_clients_bytes_but_the_model() {
        let body = r#"{"model":"client-model", "messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00"}],"temperature":0.1000000000000000055511151231257827,"seed":12345678901234567890,"x\"y":{"a":[1e400]}}"#;
        let request = parse(body.as_bytes()).unwrap();
        assert_eq!(request.model, "client-model");
        assert_eq!(
            request.upstream_body("gpt-4o-mini", false),
            body.replace(r#""client-model", "#, r#""gpt-4o-mini","#)
        );
    }

    #[test]
    fn a_model_given_twice_is_checked_and_sent_as_its_last_value() {
        let request = parse(br#"{"model":"allowed","messages":[{}],"model":"other"}"#).unwrap();
        assert_eq!(request.model, "other");
        assert_eq!(
            request.upstream_body("mapped", false),
            r#"{"model":"mapped","messages":[{}]}"#
        );
    }
}

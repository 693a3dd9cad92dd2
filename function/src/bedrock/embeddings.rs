//! OpenAI embeddings from Amazon Titan text embeddings (`amazon.titan-embed-text-*`),
//! through InvokeModel: Titan takes one text per call, so a list of inputs is one call
//! each, in order. `dimensions` passes through (Titan v2 takes 256, 512 or 1024);
//! `encoding_format` must be `float`, Titan's only one.

use std::time::Instant;

use aws_sdk_bedrockruntime::primitives::Blob;
use serde_json::{Value, json};

use super::{Bedrock, Failure, within};
use crate::error::ApiError;
use crate::observe::Usage;

fn invalid(param: &str, message: &str) -> Failure {
    Failure::Client(ApiError::invalid_request(message.to_owned()).with_param(param))
}

/// The inputs of an embeddings request, and its Titan options.
fn inputs(body: &Value) -> Result<(Vec<String>, Value), Failure> {
    let inputs = match body.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(
                    "input",
                    "`input` must be text or a list of texts when Amazon Bedrock serves embeddings (token arrays are OpenAI's only).",
                )
            })?,
        _ => return Err(invalid("input", "`input` must be a non-empty text or list of texts.")),
    };
    match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => {}
        Some(_) => {
            return Err(invalid(
                "encoding_format",
                "`encoding_format` must be float when Amazon Bedrock serves embeddings.",
            ));
        }
    }
    let mut options = json!({"normalize": true});
    if let Some(dimensions) = body.get("dimensions").and_then(Value::as_u64) {
        options["dimensions"] = dimensions.into();
    }
    Ok((inputs, options))
}

impl Bedrock {
    /// OpenAI's embeddings `list` for `client_model`, from Titan `model`.
    pub async fn embeddings(
        &self,
        body: &Value,
        model: &str,
        client_model: &str,
        deadline: Instant,
    ) -> Result<(Value, Option<Usage>), Failure> {
        let (inputs, options) = inputs(body)?;
        let permit = self.breaker.try_acquire().map_err(super::open)?;
        let client = self.client().await;
        let mut data = Vec::with_capacity(inputs.len());
        let mut tokens = 0u64;
        for (index, text) in inputs.iter().enumerate() {
            let mut request = options.clone();
            request["inputText"] = text.as_str().into();
            let call = client
                .invoke_model()
                .model_id(model)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(request.to_string()))
                .send();
            let output = match within(deadline, call).await {
                Ok(output) => output,
                Err(failure) => {
                    super::report(permit, &failure);
                    return Err(failure);
                }
            };
            let answer: Value = serde_json::from_slice(output.body().as_ref()).unwrap_or_default();
            let Some(embedding) = answer.get("embedding").filter(|e| e.is_array()) else {
                drop(permit);
                return Err(Failure::Unavailable(
                    ApiError::server(
                        http::StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        "Amazon Bedrock answered the embeddings request without an embedding.",
                    )
                    .not_retryable(),
                ));
            };
            tokens += answer
                .get("inputTextTokenCount")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            data.push(json!({"object": "embedding", "index": index, "embedding": embedding}));
        }
        permit.succeeded();
        let usage = Usage {
            prompt_tokens: Some(tokens),
            total_tokens: Some(tokens),
            ..Usage::default()
        };
        Ok((
            json!({"object": "list", "data": data, "model": client_model,
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
            Some(usage),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_pass_and_token_arrays_or_base64_are_refused_naming_the_parameter() {
        let (texts, options) = inputs(&json!({"input": ["a", "b"], "dimensions": 256})).unwrap();
        assert_eq!(texts, ["a", "b"]);
        assert_eq!(options, json!({"normalize": true, "dimensions": 256}));
        for (body, param) in [
            (json!({"input": [[1, 2]]}), "input"),
            (json!({"input": []}), "input"),
            (
                json!({"input": "a", "encoding_format": "base64"}),
                "encoding_format",
            ),
        ] {
            let Err(Failure::Client(error)) = inputs(&body) else {
                panic!("{body} accepted");
            };
            assert_eq!(error.param.as_deref(), Some(param));
        }
    }
}

//! OpenAI embeddings from Amazon Titan text embeddings (`amazon.titan-embed-text-*`),
//! through InvokeModel: Titan takes one text per call, so a list of inputs is one call
//! each, in order. Titan v2 takes `dimensions` (256, 512 or 1024) and `normalize`; v1
//! (G1) takes the text alone and always answers 1536 dimensions. Titan answers floats;
//! `encoding_format: base64` (what OpenAI's SDKs ask for by default) is OpenAI's
//! encoding of them: little-endian 32-bit floats, base64.

use std::time::Instant;

use aws_sdk_bedrockruntime::primitives::Blob;
use base64::Engine;
use serde_json::{Value, json};

use super::{Bedrock, Failure, within};
use crate::config::titan_version;
use crate::error::ApiError;
use crate::observe::Usage;

/// The most texts one request may embed, as OpenAI has it.
const MAX_INPUTS: usize = 2048;

/// Titan v1's only size.
const V1_DIMENSIONS: u64 = 1536;

fn invalid(param: &str, message: &str) -> Failure {
    Failure::Client(ApiError::invalid_request(message.to_owned()).with_param(param))
}

/// What an embeddings request asks of Titan `model`.
#[derive(Debug, PartialEq)]
struct Asked {
    inputs: Vec<String>,
    /// Titan's request body but for `inputText`.
    options: Value,
    base64: bool,
}

/// The inputs of an embeddings request, and its Titan options.
fn asked(body: &Value, model: &str) -> Result<Asked, Failure> {
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
    // OpenAI's own bound; Titan takes one text per call, so this also bounds the calls.
    if inputs.len() > MAX_INPUTS {
        return Err(invalid(
            "input",
            "`input` may hold at most 2048 texts: send them in several requests.",
        ));
    }
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(invalid(
                "encoding_format",
                "`encoding_format` must be float or base64.",
            ));
        }
    };
    let dimensions = body.get("dimensions").and_then(Value::as_u64);
    let options = if titan_version(model) == Some(1) {
        if dimensions.is_some_and(|d| d != V1_DIMENSIONS) {
            return Err(invalid(
                "dimensions",
                "Amazon Titan text embeddings v1 always have 1536 dimensions: leave out `dimensions`, or map the model to amazon.titan-embed-text-v2:0 (256, 512 or 1024).",
            ));
        }
        json!({})
    } else {
        let mut options = json!({"normalize": true});
        if let Some(dimensions) = dimensions {
            options["dimensions"] = dimensions.into();
        }
        options
    };
    Ok(Asked {
        inputs,
        options,
        base64,
    })
}

/// One embedding as OpenAI encodes it: Titan's floats, or their little-endian 32-bit
/// bytes in base64.
fn encoded(embedding: &Value, base64: bool) -> Value {
    if !base64 {
        return embedding.clone();
    }
    let bytes: Vec<u8> = embedding
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .flat_map(|x| (x as f32).to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes).into()
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
        let Asked {
            inputs,
            options,
            base64,
        } = asked(body, model)?;
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
                    // The texts before were embedded, and billed: what the request may
                    // have cost stays counted, whatever the failure.
                    return Err(match failure {
                        Failure::Client(error) | Failure::Unavailable(error) if index > 0 => {
                            Failure::Unanswered(error)
                        }
                        failure => failure,
                    });
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
            data.push(
                json!({"object": "embedding", "index": index, "embedding": encoded(embedding, base64)}),
            );
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

    const V2: &str = "amazon.titan-embed-text-v2:0";

    #[test]
    fn texts_pass_and_token_arrays_or_other_encodings_are_refused_naming_the_parameter() {
        let asked = asked(&json!({"input": ["a", "b"], "dimensions": 256}), V2).unwrap();
        assert_eq!(asked.inputs, ["a", "b"]);
        assert_eq!(asked.options, json!({"normalize": true, "dimensions": 256}));
        for (body, param) in [
            (json!({"input": [[1, 2]]}), "input"),
            (json!({"input": []}), "input"),
            (json!({"input": vec!["a"; 2049]}), "input"),
            (
                json!({"input": "a", "encoding_format": "int8"}),
                "encoding_format",
            ),
        ] {
            let Err(Failure::Client(error)) = super::asked(&body, V2) else {
                panic!("{body} accepted");
            };
            assert_eq!(error.param.as_deref(), Some(param));
        }
    }

    /// Titan v1 refuses any key but `inputText` ("extraneous key [normalize] is not
    /// permitted"), so nothing else is sent; a size other than its own is the client's.
    #[test]
    fn titan_v1_is_sent_the_text_alone_and_other_dimensions_are_refused() {
        for model in [
            "amazon.titan-embed-text-v1",
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v1",
        ] {
            let plain = asked(&json!({"input": "a", "dimensions": 1536}), model).unwrap();
            assert_eq!(plain.options, json!({}), "{model}");
            let Err(Failure::Client(error)) = asked(&json!({"input": "a", "dimensions": 256}), model) else {
                panic!("{model}: 256 dimensions accepted");
            };
            assert_eq!(error.param.as_deref(), Some("dimensions"));
        }
    }

    /// What OpenAI's SDKs decode: `numpy.frombuffer(base64.b64decode(e), dtype="float32")`.
    #[test]
    fn base64_is_the_floats_little_endian_32_bit_bytes() {
        let asked = asked(&json!({"input": "a", "encoding_format": "base64"}), V2).unwrap();
        assert!(asked.base64);
        let text = encoded(&json!([1.0, -0.5]), true);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat());
        assert_eq!(encoded(&json!([0.25]), false), json!([0.25]));
    }
}

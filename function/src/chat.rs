//! `POST /v1/chat/completions`: validate, map the model, call the upstream, and answer
//! with the model id the client asked for.

use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::app::App;
use crate::config::ProxyConfig;
use crate::error::ApiError;
use crate::middleware::MAX_BODY_BYTES;
use crate::observe::LogHandle;
use crate::relay;
use crate::routes::config_unavailable;
use crate::upstream::Failure;

/// Time kept back from the Lambda timeout so the answer (or the error) still gets out.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

pub async fn completions(
    State(app): State<App>,
    Extension(log): Extension<LogHandle>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(MAX_BODY_BYTES)
        } else {
            ApiError::invalid_request("The request body could not be read.")
        }
    })?;
    let mut request = parse(&body)?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    {
        let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
        record.model = Some(model.clone());
        record.stream = stream;
    }

    let config = app.config.get().await.map_err(|e| config_unavailable(&app, &e))?;
    let upstream_model = config
        .model_mappings
        .get(&model)
        .ok_or_else(|| ApiError::model_not_found(&model))?
        .clone();
    log.lock().unwrap_or_else(|p| p.into_inner()).upstream_model = Some(upstream_model.clone());
    request.insert("model".into(), Value::String(upstream_model));
    let upstream_body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());

    let deadline = started + config.timeouts.lambda.saturating_sub(DEADLINE_MARGIN);
    let result = app
        .upstream
        .chat_completions(&config, upstream_body, deadline)
        .await;
    let answer = match result {
        Ok(answer) => answer,
        Err(failure) => {
            let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
            record.attempts = failure.attempts();
            if let Failure::Status { status, .. } = &failure {
                record.upstream_status = Some(status.as_u16());
            }
            return Err(failure_to_error(failure));
        }
    };
    let status = answer.response.status();
    {
        let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
        record.attempts = answer.attempts;
        record.upstream_status = Some(status.as_u16());
        record.upstream_ms = Some(answer.elapsed.as_secs_f64() * 1000.0);
    }
    if !status.is_success() {
        return Err(passthrough(status, answer.response).await);
    }
    let is_sse = answer
        .response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && is_sse {
        let body = relay::sse(answer.response, model, config.timeouts.openai_api, log);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(body),
        )
            .into_response());
    }
    complete(answer.response, &model, &config, deadline, &log).await
}

/// The request as a JSON object whose required fields have the right types. Unknown
/// fields are kept and forwarded untouched.
fn parse(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_request(format!(
            "We could not parse the JSON body of your request ({}). Send a JSON object with `model` and `messages`.",
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
    if map.get("stream").is_some_and(|s| !s.is_boolean() && !s.is_null()) {
        return Err(ApiError::invalid_request("`stream` must be a boolean.").with_param("stream"));
    }
    Ok(map)
}

fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong data type",
        serde_json::error::Category::Io => "read error",
    }
}

/// A non-streamed answer: read it (within the deadline), put the requested model id
/// back, note the token usage.
async fn complete(
    response: reqwest::Response,
    model: &str,
    config: &ProxyConfig,
    deadline: Instant,
    log: &LogHandle,
) -> Result<Response, ApiError> {
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .min(config.timeouts.openai_api);
    let bytes = match tokio::time::timeout(remaining, response.bytes()).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(upstream_broken(
                "The upstream connection broke while sending the answer.",
            ));
        }
        Err(_) => return Err(upstream_timeout()),
    };
    let mut answer: Value = serde_json::from_slice(&bytes)
        .map_err(|_| upstream_broken("The upstream answered with invalid JSON."))?;
    if let Some(map) = answer.as_object_mut() {
        if map.contains_key("model") {
            map.insert("model".into(), Value::String(model.to_owned()));
        }
        if let Some(usage) = map.get("usage") {
            log.lock().unwrap_or_else(|p| p.into_inner()).record_usage(usage);
        }
    }
    Ok(axum::Json(answer).into_response())
}

/// An upstream 4xx (other than 408/429): the client's problem, relayed with its status
/// in OpenAI's shape.
async fn passthrough(status: StatusCode, response: reqwest::Response) -> ApiError {
    let body = response.bytes().await.unwrap_or_default();
    upstream_error(status, &body)
}

fn upstream_error(status: StatusCode, body: &[u8]) -> ApiError {
    // OpenAI refusing the proxy's own key is the operator's problem, not the client's,
    // and its message quotes part of that key: never relay it.
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return ApiError::server(
            StatusCode::BAD_GATEWAY,
            "upstream_auth_failed",
            format!(
                "The upstream OpenAI API refused the proxy's API key (HTTP {}): the operator must update openai_api_key in the proxy's secret.",
                status.as_u16()
            ),
        );
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("The upstream OpenAI API answered HTTP {}.", status.as_u16()));
    let mut api = ApiError::new(status, kind_of(error), message);
    api.param = error
        .and_then(|e| e.get("param"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    api.code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .and_then(known_code);
    api
}

/// Upstream error types and codes become `'static` only when we know them; anything
/// else is reported generically rather than echoed.
fn kind_of(error: Option<&Value>) -> &'static str {
    match error.and_then(|e| e.get("type")).and_then(Value::as_str) {
        Some("invalid_request_error") => "invalid_request_error",
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("not_found_error") => "not_found_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("insufficient_quota") => "insufficient_quota",
        Some("server_error") => "server_error",
        _ => "upstream_error",
    }
}

fn known_code(code: &str) -> Option<&'static str> {
    const CODES: &[&str] = &[
        "invalid_api_key",
        "model_not_found",
        "context_length_exceeded",
        "rate_limit_exceeded",
        "insufficient_quota",
        "invalid_value",
        "invalid_type",
        "missing_required_parameter",
        "unsupported_parameter",
        "content_filter",
    ];
    CODES.iter().find(|c| **c == code).copied()
}

fn upstream_broken(message: &str) -> ApiError {
    ApiError::server(StatusCode::BAD_GATEWAY, "upstream_error", message)
}

fn upstream_timeout() -> ApiError {
    ApiError::server(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "The upstream OpenAI API did not answer in time. Retry, or ask the operator to raise timeout_settings.openai_api_timeout.",
    )
}

fn failure_to_error(failure: Failure) -> ApiError {
    match failure {
        Failure::CircuitOpen { retry_after } => ApiError::server(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            "The upstream OpenAI API is failing; the proxy is not sending requests to it for a short while. Retry after the indicated delay.",
        )
        .with_retry_after(retry_after),
        Failure::Status { status, retry_after, body, attempts } if status == StatusCode::TOO_MANY_REQUESTS => {
            let mut error = upstream_error(status, &body);
            if error.kind == "upstream_error" {
                error.kind = "rate_limit_error";
            }
            error.message = format!("{} (after {attempts} attempts)", error.message);
            error.with_retry_after(retry_after.unwrap_or(Duration::from_secs(1)))
        }
        Failure::Status { status, attempts, .. } => ApiError::server(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("The upstream OpenAI API failed with HTTP {} after {attempts} attempts. Retry shortly.", status.as_u16()),
        ),
        Failure::Timeout { .. } => upstream_timeout(),
        Failure::Connect { attempts } => ApiError::server(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            format!("The upstream OpenAI API could not be reached after {attempts} attempts. Retry shortly."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_upstream_codes_are_not_echoed() {
        let error = upstream_error(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"message":"m","type":"weird","code":"zz"}}"#,
        );
        assert_eq!((error.kind, error.code), ("upstream_error", None));
        let error = upstream_error(StatusCode::UNPROCESSABLE_ENTITY, b"not json");
        assert_eq!(error.message, "The upstream OpenAI API answered HTTP 422.");
    }
}

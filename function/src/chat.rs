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
use crate::relayed;
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
    // Usage is asked for on every stream, so token metrics count all traffic; the
    // relay drops the usage chunk again when the client did not ask for it.
    let hide_usage = stream && !force_usage(&mut request);
    let upstream_body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());

    let deadline = started + config.timeouts.lambda.saturating_sub(DEADLINE_MARGIN);
    let result = app
        .upstream
        .post(&config, "chat/completions", upstream_body, stream, deadline)
        .await;
    let secret = config.openai_api_key.expose();
    let answer = match result {
        Ok(answer) => answer,
        Err(failure) => {
            let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
            record.attempts = failure.attempts();
            if let Failure::Status { status, headers, .. } = &failure {
                record.upstream_status = Some(status.as_u16());
                record.upstream_request_id = relayed::request_id(headers);
            }
            return Err(failure_to_error(failure, secret));
        }
    };
    let status = answer.response.status();
    let headers = relayed::headers(answer.response.headers());
    {
        let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
        record.attempts = answer.attempts;
        record.upstream_status = Some(status.as_u16());
        record.upstream_ms = Some(answer.elapsed.as_secs_f64() * 1000.0);
        record.upstream_request_id = relayed::request_id(answer.response.headers());
    }
    if !status.is_success() {
        let upstream_headers = answer.response.headers().clone();
        let body = answer.response.bytes().await.unwrap_or_default();
        return Err(relayed::error(
            status,
            &upstream_headers,
            &body,
            secret,
            answer.attempts,
        ));
    }
    let is_sse = answer
        .response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut response = if stream && is_sse {
        let options = relay::Options {
            model,
            idle_timeout: config.timeouts.stream_idle,
            keep_alive: app.settings.stream_keep_alive,
            hide_usage,
        };
        let body = relay::sse(answer.response, options, log);
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(body),
        )
            .into_response()
    } else {
        complete(answer.response, &model, &config, deadline, &log).await?
    };
    response.headers_mut().extend(headers);
    Ok(response)
}

/// Sets `stream_options.include_usage`; true when the client had asked for it.
fn force_usage(request: &mut Map<String, Value>) -> bool {
    let options = request
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    let Value::Object(options) = options else {
        return false;
    };
    let asked = options
        .get("include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    options.insert("include_usage".into(), Value::Bool(true));
    asked
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

fn failure_to_error(failure: Failure, secret: &str) -> ApiError {
    match failure {
        Failure::CircuitOpen { retry_after } => ApiError::server(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            "The upstream OpenAI API is failing; the proxy is not sending requests to it for a short while. Retry after the indicated delay.",
        )
        .with_retry_after(retry_after),
        Failure::Status {
            status,
            retry_after,
            headers,
            body,
            attempts,
        } => {
            let mut error = relayed::error(status, &headers, &body, secret, attempts);
            error.retry_after = retry_after;
            error
        }
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
    fn usage_is_forced_and_the_clients_own_choice_remembered() {
        let mut request = parse(br#"{"model":"m","messages":[{}],"stream":true}"#).unwrap();
        assert!(!force_usage(&mut request));
        assert_eq!(
            request["stream_options"],
            serde_json::json!({"include_usage": true})
        );
        let mut request =
            parse(br#"{"model":"m","messages":[{}],"stream_options":{"include_usage":true,"x":1}}"#).unwrap();
        assert!(force_usage(&mut request));
        assert_eq!(
            request["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
    }
}

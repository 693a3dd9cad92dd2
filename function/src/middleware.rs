//! What every request passes before its handler: request id, CORS, admission (body
//! size, client key), and the request's log line.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::app::{App, MAX_BODY_BYTES};
use crate::auth;
use crate::cors::Cors;
use crate::error::{ApiError, ErrorKind};
use crate::observe::{LogHandle, RequestLog};

pub const REQUEST_ID: &str = "x-request-id";

/// The caller's id when it is safe to echo into headers and logs.
fn sane_id(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
    ok.then(|| value.to_owned())
}

/// A version 4 UUID. Its random bits come from a per-thread generator seeded at random:
/// ids must be unique, not unguessable, and the operating system's generator would cost
/// a system call per request.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// The one layer every request passes (one, because each layer costs time on every
/// request): assigns the request id, answers CORS preflights (before authentication:
/// browsers send no credentials with them), admits the request (`admit`), marks every
/// answer for browsers (`cors`), and emits the request's log line when the response
/// body is finished (or dropped: a client that disconnects mid-stream).
pub async fn front(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let correlation_id = sane_id(request.headers(), "x-correlation-id");
    let request_id = sane_id(request.headers(), REQUEST_ID)
        .or_else(|| correlation_id.clone())
        .unwrap_or_else(new_request_id);
    let apigw_request_id = match request.extensions().get::<lambda_http::request::RequestContext>() {
        Some(lambda_http::request::RequestContext::ApiGatewayV1(context)) => context.request_id.clone(),
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    let log: LogHandle = Arc::new(Mutex::new(RequestLog {
        request_id: request_id.clone(),
        correlation_id,
        apigw_request_id,
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        ..Default::default()
    }));
    request.extensions_mut().insert(log.clone());

    let mut response = if Cors::is_preflight(request.method()) {
        let mut response = StatusCode::OK.into_response();
        app.cors.preflight(request.headers(), response.headers_mut());
        response
    } else {
        let origin = request.headers().get(ORIGIN).cloned();
        let mut response = match admit(&app, &mut request, &log).await {
            Ok(()) => next.run(request).await,
            Err(refused) => refused.into_response(),
        };
        app.cors.answer(origin.as_ref(), response.headers_mut());
        response
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    {
        let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
        record.status = response.status().as_u16();
        if let Some(ErrorKind(kind)) = response.extensions().get::<ErrorKind>() {
            record.error_type.get_or_insert_with(|| kind.to_string());
        }
    }
    let (parts, inner) = response.into_parts();
    let body = LoggedBody {
        inner,
        _emit: EmitOnDrop { app, log, started },
    };
    Response::from_parts(parts, Body::new(body))
}

/// The response body, unchanged (size hint included, so `Content-Length` survives),
/// carrying the log line until hyper drops it.
struct LoggedBody {
    inner: Body,
    _emit: EmitOnDrop,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

struct EmitOnDrop {
    app: App,
    log: LogHandle,
    started: Instant,
}

impl Drop for EmitOnDrop {
    fn drop(&mut self) {
        let mut record = self.log.lock().unwrap_or_else(|p| p.into_inner());
        record.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.app.logger.request(&record);
    }
}

/// What a request must pass to reach a handler: a declared oversized body is refused
/// before any of it is read (bodies without a length are cut off at the limit by the
/// extractor, `DefaultBodyLimit`); then client keys, when authentication is enabled
/// (`/health` stays open). The client found goes into the request (handlers check its
/// models) and its name into the log line.
async fn admit(app: &App, request: &mut Request, log: &LogHandle) -> Result<(), ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    if !app.settings.auth_enabled || request.uri().path() == "/health" {
        return Ok(());
    }
    let config = app.load_config().await?;
    let Some(key) = auth::presented_key(request.headers()) else {
        return Err(ApiError::unauthorized(
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
        ));
    };
    if config.client_api_keys.is_empty() {
        tracing::error!("ENABLE_AUTHENTICATION=true but the configuration lists no client_api_keys");
        return Err(ApiError::unauthorized(
            "Incorrect API key provided: this proxy has no client keys configured yet.",
        ));
    }
    let Some(client) = auth::client(key, &config) else {
        return Err(ApiError::unauthorized("Incorrect API key provided."));
    };
    if let Some(name) = &client.key().name {
        log.lock().unwrap_or_else(|p| p.into_inner()).client = Some(name.clone());
    }
    request.extensions_mut().insert(client);
    Ok(())
}

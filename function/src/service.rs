//! The proxy as a service, the same in both runtimes: what every request passes
//! (request id, CORS, admission: body size and client key; the request's log line),
//! then its route's handler.
//!
//! Written by hand rather than as framework middleware and extractors: one function,
//! no boxed layers, no per-request extension maps; each of those cost time on every
//! request (docs/benchmarks.md).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::ORIGIN;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::app::{App, MAX_BODY_BYTES};
use crate::auth::{self, Client};
use crate::body::{Body, Response};
use crate::cors::{self, Cors};
use crate::endpoint;
use crate::error::ApiError;
use crate::forward;
use crate::observe::{self, LogHandle, RequestLog};
use crate::routes::{self, Route};

pub const REQUEST_ID: &str = "x-request-id";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The proxy, over any request body: [`Proxy::handle`] is what the local server runs,
/// its `tower::Service` what lambda_http runs and tests call in-process.
#[derive(Clone)]
pub struct Proxy {
    app: App,
}

impl Proxy {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Answers one request: never fails, every error is an answer in OpenAI's shape.
    pub fn handle<B>(&self, request: Request<B>) -> impl Future<Output = Response> + Send + use<B>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        front(self.app.clone(), request)
    }
}

impl<B> tower::Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let answer = self.handle(request);
        Box::pin(async move { Ok(answer.await) })
    }
}

/// The caller's id when it is safe to echo into headers and logs.
fn sane_id(headers: &HeaderMap, name: &str) -> Option<String> {
    observe::sane_id(headers.get(name)?.to_str().ok()?, b"-_.:/+=")
}

/// A version 4 UUID. Its random bits come from a per-thread generator seeded at random:
/// ids must be unique, not unguessable, and the operating system's generator would cost
/// a system call per request.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// Assigns the request id, answers CORS preflights (before authentication: browsers
/// send no credentials with them), admits the request (`admit`) and routes it, marks
/// every answer for browsers, and emits the request's log line when the response body
/// is finished (or dropped: a client that disconnects mid-stream).
async fn front<B>(app: App, request: Request<B>) -> Response
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    // The proxy's own id, always: a client's id is logged beside it, never in its place,
    // so no client can make its request look like another's in the logs.
    let request_id = new_request_id();
    let client_request_id = sane_id(&parts.headers, REQUEST_ID);
    let correlation_id = sane_id(&parts.headers, "x-correlation-id");
    let apigw_request_id = match parts.extensions.get::<lambda_http::request::RequestContext>() {
        Some(lambda_http::request::RequestContext::ApiGatewayV1(context)) => context.request_id.clone(),
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    let log: LogHandle = Arc::new(Mutex::new(RequestLog {
        request_id: request_id.clone(),
        client_request_id,
        correlation_id,
        apigw_request_id,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        ..Default::default()
    }));

    let mut response = if Cors::is_preflight(&parts.method) {
        let mut response = http::Response::new(Body::empty());
        app.cors.preflight(&parts.headers, response.headers_mut());
        response
    } else {
        let answer = match admit(&app, &parts, &log).await {
            Ok(client) => dispatch(&app, &parts, body, &log, client).await,
            Err(refused) => Err(refused),
        };
        let mut response = answer.unwrap_or_else(|error| {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .error_type
                .get_or_insert_with(|| error.log_kind().to_owned());
            error.into_response()
        });
        app.cors.answer(parts.headers.get(ORIGIN), response.headers_mut());
        response
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    log.lock().unwrap_or_else(|p| p.into_inner()).status = response.status().as_u16();
    let (parts_out, body) = response.into_parts();
    // A HEAD request is answered as GET, without the body.
    let body = if parts.method == Method::HEAD {
        Body::empty()
    } else {
        body
    };
    let body = body.with_guard(EmitOnDrop { app, log, started });
    http::Response::from_parts(parts_out, body)
}

/// Routes the admitted request to its handler; a forwarded request's body is read here,
/// up to the limit.
async fn dispatch<B>(
    app: &App,
    parts: &http::request::Parts,
    body: B,
    log: &LogHandle,
    client: Option<Client>,
) -> Result<Response, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match routes::route(&parts.method, parts.uri.path())? {
        Route::Health => Ok(routes::health()),
        Route::ListModels => routes::list_models(app, client.as_ref()).await,
        Route::GetModel(model) => routes::get_model(app, log, client.as_ref(), model).await,
        Route::Stored(action, id) => forward::stored(action, &id, parts.uri.query(), app, log).await,
        Route::Forward(endpoint) => {
            if !endpoint::declares_json(&parts.headers) {
                return Err(endpoint::not_json());
            }
            let body = read_body(body, app.settings.body_read_timeout).await?;
            let prefer = forward::preferred_provider(&parts.headers);
            forward::forward(endpoint, app, log, client.as_ref(), body, prefer).await
        }
    }
}

/// The whole request body, within `timeout`: a body without a declared length is cut
/// off at the limit.
async fn read_body<B>(body: B, timeout: Duration) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let read = tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect());
    let Ok(read) = read.await else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "The request body did not arrive within {} s. Send the whole body at once.",
                timeout.as_secs()
            ),
        )
        .with_code("request_timeout"));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::payload_too_large(MAX_BODY_BYTES)),
        Err(_) => Err(ApiError::invalid_request("The request body could not be read.")),
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
/// before any of it is read; then client keys, when authentication is enabled
/// (`/health` stays open). The client found is returned (handlers check its models) and
/// its name goes into the log line.
async fn admit(app: &App, parts: &http::request::Parts, log: &LogHandle) -> Result<Option<Client>, ApiError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    if !app.settings.auth_enabled {
        // Anyone who can reach the local server may use it: at least make sure it was
        // addressed by its own name, not by a web page's rebound domain.
        if let Some(&listen) = app.local_listen.get()
            && !parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|host| cors::names_local_server(host, listen))
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                format!(
                    "The Host header does not name this proxy ({listen} or localhost): with authentication off, the \
                     local proxy answers only requests addressed to it, a guard against DNS rebinding. Call it as \
                     http://{listen}, or set ENABLE_AUTHENTICATION=true."
                ),
            )
            .with_code("host_not_allowed"));
        }
        return Ok(None);
    }
    if parts.uri.path() == "/health" {
        return Ok(None);
    }
    // Checked before the configuration is loaded: a request without a key is refused
    // at once, even while Secrets Manager is unreachable.
    let Some(key) = auth::presented_key(&parts.headers) else {
        return Err(ApiError::unauthorized(
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
        ));
    };
    let config = app.load_config().await?;
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
    Ok(Some(client))
}

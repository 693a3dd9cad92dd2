//! The Lambda Runtime API loop for `RESPONSE_MODE=stream`, with every write sent at once.
//!
//! lambda_runtime builds its Runtime API client itself, with Nagle's algorithm on: each
//! small write after the first (an SSE event, the chunked body's end) waited for the
//! Runtime API to acknowledge the previous one, which a delayed ACK holds back by up to
//! 40 ms. This loop speaks the same protocol through lambda_runtime_api_client's public
//! client, given a connector with `TCP_NODELAY`, and reuses lambda_http's public event
//! conversion (`StreamAdapter`: API Gateway event → `http::Request`, response →
//! `MetadataPrelude` and body), so only the wire is ours:
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming>
//!
//! - `GET  /2018-06-01/runtime/invocation/next` → the event and its context headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` with
//!   `Lambda-Runtime-Function-Response-Mode: streaming`, `Transfer-Encoding: chunked`,
//!   content type `application/vnd.awslambda.http-integration-response`: the prelude's
//!   JSON, 8 NUL bytes, then the body chunk by chunk; an error after the body started
//!   ends it with the `Lambda-Runtime-Function-Error-Type`/`-Body` trailers;
//! - `POST /2018-06-01/runtime/invocation/{id}/error` when there is no response to
//!   stream: an event that is not an API Gateway request, or a panicking handler.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt, stream};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::client::legacy::connect::HttpConnector;
use lambda_http::http::{HeaderMap, HeaderValue, Method, header};
use lambda_http::lambda_runtime::{Config, Context, Diagnostic, LambdaEvent, MetadataPrelude};
use lambda_http::request::LambdaRequest;
use lambda_http::{Service, StreamAdapter};
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{BoxError, PooledClient, build_request};
use tracing::Instrument;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
const ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
const ERROR_BODY: &str = "Lambda-Runtime-Function-Error-Body";
const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

/// Connections to the Runtime API send each write at once (`TCP_NODELAY`).
pub fn runtime_api_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector
}

/// The Runtime API client: one pooled keep-alive connection whose writes leave at once.
pub fn runtime_api_client(endpoint: lambda_http::http::Uri) -> PooledClient {
    PooledClient::builder()
        .with_connector(runtime_api_connector())
        .with_endpoint(endpoint)
        .with_pool_size(1)
        .build()
}

/// Serves `service` (the proxy) one invocation at a time until the Runtime API cannot
/// be reached. `function` is the function's identity for the invocation context
/// (`env::Environment::lambda_config`).
pub async fn run<S, B>(service: S, endpoint: lambda_http::http::Uri, function: Config) -> Result<(), BoxError>
where
    S: Service<lambda_http::Request, Response = lambda_http::Response<B>, Error = Infallible> + Clone,
    S::Future: Send + 'static,
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Into<Bytes> + Send,
    B::Error: Into<BoxError> + Send + std::fmt::Debug,
{
    let client = runtime_api_client(endpoint);
    let config = Arc::new(function);
    loop {
        let invocation = next_invocation(&client, &config).await?;
        // The span lambda_runtime opens per invocation, so log lines keep their request id.
        let span = tracing::info_span!(
            "Lambda runtime invoke",
            requestId = %invocation.request_id,
            xrayTraceId = invocation.context.xray_trace_id.as_deref().unwrap_or_default(),
        );
        // Runs the invocation through the service and posts its answer.
        async {
            let Invocation {
                request_id,
                context,
                event,
            } = invocation;
            let outcome = match event {
                Ok(event) => {
                    // The adapter lives for the call only: it is not `Send` across an await (it
                    // marks the body type as borrowed). The proxy and the tests' routers are always ready.
                    let call = StreamAdapter::from(service.clone()).call(LambdaEvent::new(event, context));
                    AssertUnwindSafe(call)
                        .catch_unwind()
                        .await
                        .map_err(panic_diagnostic)
                }
                Err(e) => Err(Diagnostic {
                    error_type: "Runtime.UnsupportedEvent".to_owned(),
                    error_message: format!(
                        "the event is not an API Gateway proxy request ({e}): invoke the function through its API Gateway stage"
                    ),
                }),
            };
            let posted = match outcome {
                Ok(Ok(response)) => {
                    post_stream(&client, &request_id, response.metadata_prelude, response.stream).await
                }
                Ok(Err(never)) => match never {},
                Err(diagnostic) => post_error(&client, &request_id, &diagnostic).await,
            };
            // A response the Runtime API refused ends this invocation, not the function.
            if let Err(e) = posted {
                tracing::error!(error = %e, "the Runtime API did not take the invocation's answer");
            }
        }
        .instrument(span)
        .await;
    }
}

struct Invocation {
    request_id: String,
    context: Context,
    event: Result<LambdaRequest, serde_json::Error>,
}

async fn next_invocation(client: &PooledClient, config: &Arc<Config>) -> Result<Invocation, BoxError> {
    let request = build_request()
        .method(Method::GET)
        .uri(NEXT)
        .body(Body::empty())?;
    let (parts, body) = client.call(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    if !parts.status.is_success() {
        return Err(format!(
            "the Runtime API answered {} to the next-invocation request: {}",
            parts.status,
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    let request_id = parts
        .headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .ok_or("the Runtime API sent an invocation without a Lambda-Runtime-Aws-Request-Id header")?
        .to_owned();
    let context = Context::new(&request_id, config.clone(), &parts.headers)?;
    let event = serde_json::from_slice(&body);
    Ok(Invocation {
        request_id,
        context,
        event,
    })
}

/// Streams the response: prelude and delimiter in the first chunk, then each body chunk as
/// the service yields it.
async fn post_stream<S, D, E>(
    client: &PooledClient,
    request_id: &str,
    mut prelude: MetadataPrelude,
    body: S,
) -> Result<(), BoxError>
where
    S: Stream<Item = Result<D, E>> + Send + 'static,
    D: Into<Bytes> + 'static,
    E: Into<BoxError> + 'static,
{
    prelude
        .headers
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/octet-stream"));
    let mut head = serde_json::to_vec(&prelude)?;
    head.extend_from_slice(&PRELUDE_DELIMITER);
    let frames = stream::once(async move { Ok::<_, Infallible>(Frame::data(Bytes::from(head))) })
        .chain(body_frames(body).map(Ok));
    let request = build_request()
        .method(Method::POST)
        .uri(format!("/2018-06-01/runtime/invocation/{request_id}/response"))
        .header("Lambda-Runtime-Function-Response-Mode", "streaming")
        .header(header::TRANSFER_ENCODING, "chunked")
        .header(header::TRAILER, ERROR_TYPE)
        .header(header::TRAILER, ERROR_BODY)
        .header(
            header::CONTENT_TYPE,
            "application/vnd.awslambda.http-integration-response",
        )
        .body(Body::new(StreamBody::new(frames)))?;
    accepted(client.call(request).await?).await
}

/// The body's chunks as data frames; an error, or a panic while producing a chunk, ends the
/// body with the error trailers, so the Runtime API reports a failed invocation instead of
/// a truncated success.
fn body_frames<S, D, E>(body: S) -> impl Stream<Item = Frame<Bytes>> + Send
where
    S: Stream<Item = Result<D, E>> + Send + 'static,
    D: Into<Bytes> + 'static,
    E: Into<BoxError> + 'static,
{
    let body = AssertUnwindSafe(body).catch_unwind();
    stream::unfold(Some(Box::pin(body)), |body| async move {
        let mut body = body?;
        let message = match body.next().await? {
            Ok(Ok(chunk)) => return Some((Frame::data(chunk.into()), Some(body))),
            Ok(Err(e)) => e.into().to_string(),
            Err(panic) => panic_diagnostic(panic).error_message,
        };
        tracing::error!(error = %message, "the response body failed after it started streaming");
        Some((Frame::trailers(error_trailers(&message)), None))
    })
}

fn error_trailers(message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert(ERROR_TYPE, HeaderValue::from_static("Runtime.StreamError"));
    let body = base64::engine::general_purpose::STANDARD.encode(message);
    if let Ok(body) = HeaderValue::from_str(&body) {
        trailers.insert(ERROR_BODY, body);
    }
    trailers
}

async fn post_error(
    client: &PooledClient,
    request_id: &str,
    diagnostic: &Diagnostic,
) -> Result<(), BoxError> {
    tracing::error!(error_type = %diagnostic.error_type, error = %diagnostic.error_message, "invocation failed");
    let request = build_request()
        .method(Method::POST)
        .uri(format!("/2018-06-01/runtime/invocation/{request_id}/error"))
        .header(ERROR_TYPE, diagnostic.error_type.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(diagnostic)?))?;
    accepted(client.call(request).await?).await
}

async fn accepted<B>(response: lambda_http::http::Response<B>) -> Result<(), BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    // Read to the end so the connection goes back to the pool for the next invocation.
    let body = body.collect().await.map_err(Into::into)?.to_bytes();
    if parts.status.is_success() {
        return Ok(());
    }
    Err(format!("{}: {}", parts.status, String::from_utf8_lossy(&body)).into())
}

/// A panicking handler fails its invocation, as lambda_runtime reports it, and the
/// function lives on for the next one.
fn panic_diagnostic(panic: Box<dyn std::any::Any + Send>) -> Diagnostic {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned());
    Diagnostic {
        error_type: "Runtime.HandlerPanic".to_owned(),
        error_message: match message {
            Some(message) => format!("Lambda panicked: {message}"),
            None => "Lambda panicked".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_trailers_carry_the_message_base64_encoded() {
        let trailers = error_trailers("upstream went away");
        assert_eq!(trailers[ERROR_TYPE], "Runtime.StreamError");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(trailers[ERROR_BODY].as_bytes())
            .unwrap();
        assert_eq!(decoded, b"upstream went away");
    }
}

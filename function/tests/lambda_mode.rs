//! The built binary in Lambda mode, against a small Lambda Runtime API server: it takes
//! one API Gateway REST (v1) event, and the response it posts back is checked, in both
//! response modes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

#[derive(Debug)]
struct Posted {
    kind: &'static str,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct RuntimeApi {
    event: Arc<Mutex<Option<String>>>,
    posted: mpsc::UnboundedSender<Posted>,
    /// The response body as received so far: tests can watch a stream arrive.
    seen: watch::Sender<Vec<u8>>,
}

async fn next(State(api): State<RuntimeApi>) -> axum::response::Response {
    let event = api.event.lock().unwrap().take();
    let Some(event) = event else {
        // One invocation per test: later polls wait forever, as the real API does when idle.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(60);
    axum::response::Response::builder()
        .header("lambda-runtime-aws-request-id", "inv-1")
        .header("lambda-runtime-deadline-ms", deadline.as_millis().to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:proxy",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
        )
        .body(axum::body::Body::from(event))
        .unwrap()
}

async fn record(api: &RuntimeApi, kind: &'static str, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _ = api.posted.send(Posted { kind, headers, body });
    StatusCode::ACCEPTED
}

/// Reads a (possibly streamed) response body chunk by chunk, publishing what has arrived.
async fn receive(api: &RuntimeApi, body: Body) -> Bytes {
    let mut stream = body.into_data_stream();
    let mut received = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        received.extend_from_slice(&chunk);
        api.seen.send_replace(received.clone());
    }
    Bytes::from(received)
}

async fn invoke(event: &str, mode: &str) -> Posted {
    invoke_with(event, mode, "http://127.0.0.1:9/v1", watch::channel(Vec::new()).0).await
}

/// Runs the binary for one invocation of `event` with the upstream at `base_url`;
/// `seen` follows the response body as it arrives.
async fn invoke_with(event: &str, mode: &str, base_url: &str, seen: watch::Sender<Vec<u8>>) -> Posted {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        event: Arc::new(Mutex::new(Some(event.to_owned()))),
        posted: tx,
        seen,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(
                |State(api): State<RuntimeApi>, Path(_id): Path<String>, h: HeaderMap, b: Body| async move {
                    let body = receive(&api, b).await;
                    record(&api, "response", h, body).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(
                |State(api): State<RuntimeApi>, Path(_id): Path<String>, h: HeaderMap, b: Bytes| async move {
                    record(&api, "error", h, b).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            post(
                |State(api): State<RuntimeApi>, h: HeaderMap, b: Bytes| async move {
                    record(&api, "init-error", h, b).await
                },
            ),
        )
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = std::env::temp_dir().join(format!("proxy-config-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&config, common::config_json(base_url).to_string()).unwrap();
    let mut child = common::function_command()
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "proxy")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "group")
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .env("RESPONSE_MODE", mode)
        .env("PROXY_CONFIG_FILE", &config)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let posted = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
    let _ = child.start_kill();
    let output = child.wait_with_output().await.unwrap();
    let _ = std::fs::remove_file(&config);
    posted.ok().flatten().unwrap_or_else(|| {
        panic!(
            "no response posted; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Splits a streamed HTTP integration response into its JSON prelude and the body.
fn split_stream(posted: &Posted) -> (serde_json::Value, Vec<u8>) {
    assert_eq!(
        posted.headers["content-type"],
        "application/vnd.awslambda.http-integration-response"
    );
    let body = &posted.body;
    let nul = body
        .windows(8)
        .position(|w| w == [0u8; 8])
        .expect("8 NUL bytes after the prelude");
    (
        serde_json::from_slice(&body[..nul]).unwrap(),
        body[nul + 8..].to_vec(),
    )
}

const GET_MODELS: &str = include_str!("data/apigw_rest_get_models.json");
const POST_CHAT_BASE64: &str = include_str!("data/apigw_rest_post_chat_base64.json");
const POST_CHAT_STREAM: &str = include_str!("data/apigw_rest_post_chat_stream.json");

#[tokio::test]
async fn stream_mode_posts_prelude_nul_separator_and_a_non_empty_body() {
    let posted = invoke(GET_MODELS, "stream").await;
    assert_eq!(
        posted.kind,
        "response",
        "{:?}",
        String::from_utf8_lossy(&posted.body)
    );
    let (prelude, body) = split_stream(&posted);
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(prelude["headers"]["x-request-id"], "rid-lambda-1");
    // The stage was stripped from the path, and the body was not lost in stream mode.
    let models: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(models["data"][0]["id"], "amazon.nova-lite-v1:0");
}

#[tokio::test]
async fn stream_mode_decodes_base64_bodies_and_answers_errors_in_openai_shape() {
    let posted = invoke(POST_CHAT_BASE64, "stream").await;
    let (prelude, body) = split_stream(&posted);
    assert_eq!(prelude["statusCode"], 400);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("JSON"),
        "{error}"
    );
}

#[tokio::test]
async fn buffered_mode_posts_an_api_gateway_proxy_response() {
    let posted = invoke(GET_MODELS, "buffered").await;
    assert_eq!(posted.kind, "response");
    let response: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(response["statusCode"], 200);
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["object"], "list");
}

#[tokio::test]
async fn stream_mode_relays_sse_event_by_event_after_the_prelude() {
    // The upstream sends its first event, and the rest only once that first event has
    // reached the Runtime API: a proxy that buffered the answer would never get them.
    let (seen, mut watching) = watch::channel(Vec::new());
    let streamed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first_event_arrived = {
        let streamed = streamed.clone();
        async move {
            let arrived = watching.wait_for(|body| String::from_utf8_lossy(body).contains("tok0"));
            let arrived = tokio::time::timeout(Duration::from_secs(10), arrived).await;
            streamed.store(matches!(arrived, Ok(Ok(_))), std::sync::atomic::Ordering::SeqCst);
        }
    };
    let (base_url, report) = common::sse_upstream(3, Duration::ZERO, first_event_arrived).await;
    let posted = invoke_with(POST_CHAT_STREAM, "stream", &base_url, seen).await;
    assert_eq!(
        posted.kind,
        "response",
        "{:?}",
        String::from_utf8_lossy(&posted.body)
    );
    assert_eq!(
        posted.headers["lambda-runtime-function-response-mode"],
        "streaming"
    );
    let (prelude, body) = split_stream(&posted);
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(prelude["headers"]["content-type"], "text/event-stream");
    assert_eq!(prelude["headers"]["cache-control"], "no-cache");
    assert!(prelude["headers"]["x-request-id"].is_string(), "{prelude}");

    let report = report.await.unwrap();
    assert!(
        streamed.load(std::sync::atomic::Ordering::SeqCst),
        "the first event did not reach the Runtime API before the upstream sent the rest"
    );
    assert!(
        report.request.contains("\"model\":\"gpt-4o-mini\""),
        "{}",
        report.request
    );
    assert_eq!((report.sent, report.peer_closed), (3, false));
    let text = String::from_utf8(body).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 4, "{text}");
    for (n, event) in events[..3].iter().enumerate() {
        let chunk: serde_json::Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(chunk["model"], "amazon.nova-lite-v1:0", "{event}");
        assert_eq!(chunk["choices"][0]["delta"]["content"], format!("tok{n}"));
    }
    assert_eq!(events[3], "data: [DONE]");
}

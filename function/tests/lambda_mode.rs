//! The built binary in Lambda mode, against a small Lambda Runtime API server: it takes
//! one API Gateway REST (v1) event, and the response it posts back is checked, in both
//! response modes. Stream mode's Runtime API loop also runs in-process here, with routers
//! that fail in ways the proxy's own routes do not.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use openai_proxy_function::stream_runtime;
use tokio::sync::{mpsc, watch};

#[derive(Debug)]
struct Posted {
    kind: &'static str,
    headers: HeaderMap,
    body: Bytes,
    /// The trailers that ended a streamed body, if any.
    trailers: Option<HeaderMap>,
}

#[derive(Clone)]
struct RuntimeApi {
    /// The events to hand out, one per next-invocation request.
    events: Arc<Mutex<VecDeque<String>>>,
    posted: mpsc::UnboundedSender<Posted>,
    /// The response body as received so far: tests can watch a stream arrive.
    seen: watch::Sender<Vec<u8>>,
}

async fn next(State(api): State<RuntimeApi>) -> axum::response::Response {
    let event = api.events.lock().unwrap().pop_front();
    let Some(event) = event else {
        // Once the events are served, polls wait forever, as the real API does when idle.
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

async fn record(
    api: &RuntimeApi,
    kind: &'static str,
    headers: HeaderMap,
    (body, trailers): (Bytes, Option<HeaderMap>),
) -> StatusCode {
    let _ = api.posted.send(Posted {
        kind,
        headers,
        body,
        trailers,
    });
    StatusCode::ACCEPTED
}

/// Reads a (possibly streamed) request body frame by frame, publishing what has arrived.
async fn receive(api: &RuntimeApi, mut body: Body) -> (Bytes, Option<HeaderMap>) {
    let mut received = Vec::new();
    let mut trailers = None;
    while let Some(Ok(frame)) = body.frame().await {
        match frame.into_data() {
            Ok(chunk) => {
                received.extend_from_slice(&chunk);
                api.seen.send_replace(received.clone());
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    (Bytes::from(received), trailers)
}

async fn invoke(event: &str, mode: &str) -> Posted {
    invoke_with(event, mode, "http://127.0.0.1:9/v1", watch::channel(Vec::new()).0).await
}

/// Starts a Runtime API that hands out `events` in turn; it reports what the function
/// posts back, and `seen` follows a response body as it arrives.
async fn runtime_api(
    events: &[&str],
    seen: watch::Sender<Vec<u8>>,
) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Posted>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        events: Arc::new(Mutex::new(events.iter().map(|e| (*e).to_owned()).collect())),
        posted: tx,
        seen,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(
                |State(api): State<RuntimeApi>, Path(_id): Path<String>, h: HeaderMap, b: Body| async move {
                    let received = receive(&api, b).await;
                    record(&api, "response", h, received).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(
                |State(api): State<RuntimeApi>, Path(_id): Path<String>, h: HeaderMap, b: Bytes| async move {
                    record(&api, "error", h, (b, None)).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            post(
                |State(api): State<RuntimeApi>, h: HeaderMap, b: Bytes| async move {
                    record(&api, "init-error", h, (b, None)).await
                },
            ),
        )
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, rx)
}

/// Runs the binary for one invocation of `event` with the upstream at `base_url`;
/// `seen` follows the response body as it arrives.
async fn invoke_with(event: &str, mode: &str, base_url: &str, seen: watch::Sender<Vec<u8>>) -> Posted {
    let (address, mut rx) = runtime_api(&[event], seen).await;
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
    // The proxy's own id, not the caller's `rid-lambda-1` (which is logged beside it).
    let request_id = prelude["headers"]["x-request-id"].as_str().unwrap();
    assert_eq!(request_id.len(), 36, "{request_id}");
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

/// How the lockstep upstream ends its stream.
#[derive(Clone, Copy)]
enum Ending {
    Done,
    /// Hangs up mid-stream, without `[DONE]` or the chunked body's end.
    HangUp,
}

/// An upstream that sends `events` SSE events, each only once the one before it has
/// reached the Runtime API (`seen`): a function that held an event back until more
/// followed would never receive the next one.
async fn lockstep_upstream(events: usize, mut seen: watch::Receiver<Vec<u8>>, ending: Ending) -> String {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (mut reader, mut writer) = socket.into_split();
        common::read_request(&mut reader).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        writer.write_all(head.as_bytes()).await.unwrap();
        for n in 0..events {
            let chunk = serde_json::json!({
                "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": format!("tok{n}")}, "finish_reason": null}],
            });
            let event = common::chunked(&format!("data: {chunk}\n\n"));
            writer.write_all(event.as_bytes()).await.unwrap();
            let arrived = seen.wait_for(|body| String::from_utf8_lossy(body).contains(&format!("tok{n}\"")));
            if !matches!(
                tokio::time::timeout(Duration::from_secs(10), arrived).await,
                Ok(Ok(_))
            ) {
                return; // held back: the test sees fewer events than it expects
            }
        }
        match ending {
            Ending::Done => {
                let end = format!("{}0\r\n\r\n", common::chunked("data: [DONE]\n\n"));
                let _ = writer.write_all(end.as_bytes()).await;
            }
            Ending::HangUp => drop((reader, writer)),
        }
    });
    base_url
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: Vec<u8>) -> Vec<String> {
    String::from_utf8(body)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn stream_mode_relays_every_event_before_the_upstream_sends_the_next() {
    let (seen, watching) = watch::channel(Vec::new());
    let base_url = lockstep_upstream(20, watching, Ending::Done).await;
    let posted = invoke_with(POST_CHAT_STREAM, "stream", &base_url, seen).await;
    let (prelude, body) = split_stream(&posted);
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(posted.trailers, None);
    let data = sse_data(body);
    assert_eq!(data.len(), 21, "{data:?}");
    for (n, event) in data[..20].iter().enumerate() {
        let chunk: serde_json::Value = serde_json::from_str(event).unwrap();
        assert_eq!(chunk["choices"][0]["delta"]["content"], format!("tok{n}"));
        assert_eq!(chunk["model"], "amazon.nova-lite-v1:0", "{event}");
    }
    assert_eq!(data[20], "[DONE]");
}

#[tokio::test]
async fn stream_mode_ends_a_stream_the_upstream_broke_with_an_openai_error_event() {
    let (seen, watching) = watch::channel(Vec::new());
    let base_url = lockstep_upstream(2, watching, Ending::HangUp).await;
    let posted = invoke_with(POST_CHAT_STREAM, "stream", &base_url, seen).await;
    assert_eq!(posted.kind, "response");
    let (prelude, body) = split_stream(&posted);
    // The status went out with the first event; the failure is told in the stream.
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    let data = sse_data(body);
    assert_eq!(data.len(), 4, "{data:?}");
    let error: serde_json::Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_stream_error", "{error}");
    assert_eq!(data[3], "[DONE]");
}

#[tokio::test]
async fn the_runtime_api_connection_sends_each_write_at_once() {
    // The stream-mode loop connects through this connector; with Nagle's algorithm on, a
    // write after the first waited for a delayed ACK (up to 40 ms, docs/benchmarks.md).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let connector = stream_runtime::runtime_api_connector();
    let connection = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
    assert!(connection.inner().nodelay().unwrap());
}

/// The message of the error trailers that end a streamed answer's body.
fn stream_error(posted: &Posted) -> String {
    use base64::Engine as _;
    let trailers = posted.trailers.as_ref().expect("error trailers after the body");
    assert_eq!(
        trailers["lambda-runtime-function-error-type"],
        "Runtime.StreamError"
    );
    let message = base64::engine::general_purpose::STANDARD
        .decode(trailers["lambda-runtime-function-error-body"].as_bytes())
        .unwrap();
    String::from_utf8(message).unwrap()
}

/// Asserts that `posted` failed its invocation with a diagnostic of `error_type` whose
/// message mentions `mentions`.
fn assert_failed_invocation(posted: &Posted, error_type: &str, mentions: &str) {
    assert_eq!(posted.kind, "error");
    let diagnostic: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(diagnostic["errorType"], error_type);
    let message = diagnostic["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "{diagnostic}");
}

/// Serves `router` in-process through stream mode's Runtime API loop for `events`, and
/// returns the first `answers` things it posted.
async fn serve_in_process(router: Router, events: &[&str], answers: usize) -> Vec<Posted> {
    let (address, mut rx) = runtime_api(events, watch::channel(Vec::new()).0).await;
    let endpoint = format!("http://{address}").parse().unwrap();
    let function = tokio::spawn(stream_runtime::run(router, endpoint, Default::default()));
    let mut posted = Vec::new();
    while posted.len() < answers {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        posted.push(next.ok().flatten().expect("the function posted an answer"));
    }
    function.abort();
    posted
}

#[tokio::test]
async fn a_body_failing_mid_stream_ends_with_the_runtime_api_error_trailers() {
    let router = Router::new().fallback(|| async {
        let chunks: [Result<Bytes, std::io::Error>; 2] = [
            Ok(Bytes::from_static(b"data: one\n\n")),
            Err(std::io::Error::other("the upstream went away")),
        ];
        Body::from_stream(futures_util::stream::iter(chunks))
    });
    let posted = serve_in_process(router, &[GET_MODELS], 1).await.remove(0);
    assert_eq!(posted.kind, "response");
    let (prelude, body) = split_stream(&posted);
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(body, b"data: one\n\n");
    let message = stream_error(&posted);
    assert!(message.contains("the upstream went away"), "{message}");
}

#[tokio::test]
async fn a_panicking_handler_fails_its_invocation_and_the_next_one_is_served() {
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let router = Router::new().fallback(move || {
        let first = !panicked.swap(true, std::sync::atomic::Ordering::SeqCst);
        async move {
            assert!(!first, "handler bug");
            "fine"
        }
    });
    let posted = serve_in_process(router, &[GET_MODELS, GET_MODELS], 2).await;
    assert_eq!(
        posted[0].headers["lambda-runtime-function-error-type"],
        "Runtime.HandlerPanic"
    );
    assert_failed_invocation(&posted[0], "Runtime.HandlerPanic", "handler bug");
    assert_eq!(posted[1].kind, "response");
    assert_eq!(split_stream(&posted[1]).1, b"fine");
}

#[tokio::test]
async fn an_event_that_is_not_an_api_gateway_request_fails_its_invocation_by_name() {
    let router = Router::new().fallback(|| async { "unreachable" });
    let posted = serve_in_process(router, &[r#"{"detail-type": "Scheduled Event"}"#], 1).await;
    assert_failed_invocation(&posted[0], "Runtime.UnsupportedEvent", "API Gateway");
}

#[tokio::test]
async fn a_body_panicking_mid_stream_ends_with_the_error_trailers_naming_the_panic() {
    let router = Router::new().fallback(|| async {
        let chunks = futures_util::StreamExt::map(futures_util::stream::iter(0..2), |n| {
            assert!(n == 0, "body bug");
            Ok::<_, std::io::Error>(Bytes::from_static(b"data: one\n\n"))
        });
        Body::from_stream(chunks)
    });
    let posted = serve_in_process(router, &[GET_MODELS], 1).await.remove(0);
    assert_eq!(split_stream(&posted).1, b"data: one\n\n");
    let message = stream_error(&posted);
    assert!(message.contains("Lambda panicked: body bug"), "{message}");
}

//! The proxy against hostile clients and a misbehaving upstream (issue 21): bodies built
//! to burn CPU, names built to mint metrics, headers built to break logs, and an upstream
//! that stalls. Each test pins what the proxy answers, never how fast: the figures are in
//! docs/benchmarks.md.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use openai_proxy_function::app::Settings;

/// A chat request with `keys` extra top-level fields `k0`, `k1`, … before its model.
fn many_keys(model: &str, keys: usize) -> String {
    let mut body = String::with_capacity(keys * 12 + 100);
    body.push('{');
    for i in 0..keys {
        body.push_str(&format!("\"k{i}\":{i},"));
    }
    body.push_str(&format!(
        "\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
    ));
    body
}

#[tokio::test]
async fn a_body_of_150000_keys_is_answered_and_forwarded_whole() {
    let (server, base) = upstream().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")))
        .expect(1)
        .mount(&server)
        .await;
    let h = harness(&base, Settings::default());
    // An unmapped model: refused after the body is read, nothing sent upstream.
    let refused = h
        .send_json("/v1/chat/completions", many_keys("no-such-model", 150_000))
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(refused.error()["code"], "model_not_found");
    // A mapped one: every key reaches OpenAI, in order, the model mapped.
    let reply = h
        .send_json(
            "/v1/chat/completions",
            many_keys("amazon.nova-lite-v1:0", 150_000),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let received = server.received_requests().await.unwrap();
    let sent: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(sent.len(), 150_002);
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["k149999"], 149_999);
}

#[tokio::test]
async fn a_key_given_many_times_is_checked_as_its_last_value() {
    let (_server, h) = proxy_answered_by(wiremock::ResponseTemplate::new(500), 0).await;
    // Past any small-object fast path: the duplicate comes after thousands of keys.
    let mut body = many_keys("amazon.nova-lite-v1:0", 5_000);
    body.insert_str(body.len() - 1, ",\"model\":\"no-such-model\"");
    let reply = h.send_json("/v1/chat/completions", body).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert!(
        reply.error()["message"]
            .as_str()
            .unwrap()
            .contains("no-such-model")
    );
}

/// A raw-socket upstream: for each connection, reads the whole request, writes `answer`
/// (nothing, a head alone, a head and part of a body), then holds the connection for
/// `hold` and closes it. Returns its base URL and how many connections it accepted.
async fn raw_upstream(answer: &'static str, hold: Duration) -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut reader, mut writer) = socket.into_split();
                read_request(&mut reader).await;
                let _ = writer.write_all(answer.as_bytes()).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    (base, accepted)
}

#[tokio::test]
async fn a_connection_that_breaks_after_the_request_was_written_is_not_retried() {
    // Reads the request and hangs up without a word: OpenAI may be generating.
    let (base, accepted) = raw_upstream("", Duration::ZERO).await;
    let h = harness(&base, Settings::default());
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(reply.error()["code"], "upstream_error");
    assert_eq!(reply.headers["x-should-retry"], "false");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "sent once, never again");
    assert_eq!(h.request_logs()[0]["attempts"], 1);
}

#[tokio::test]
async fn a_server_error_head_followed_by_silence_ends_within_the_attempts_time() {
    // The head of a 500 promising a body that never comes (openai_api_timeout is 2 s;
    // the upstream holds on for 10 s).
    let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
    let (base, accepted) = raw_upstream(head, Duration::from_secs(10)).await;
    let h = harness(&base, Settings::default());
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.text());
    assert_eq!(reply.error()["code"], "upstream_timeout");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_client_error_head_followed_by_silence_ends_within_the_openai_timeout() {
    let head = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
    let (base, _accepted) = raw_upstream(head, Duration::from_secs(10)).await;
    let h = harness(&base, Settings::default());
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.text());
    assert_eq!(reply.error()["code"], "upstream_timeout");
}

#[tokio::test]
async fn the_proxys_own_504_tells_the_sdks_not_to_retry() {
    // A head that never comes: the model may be generating, and billing.
    let (base, accepted) = raw_upstream("", Duration::from_secs(10)).await;
    let h = harness(&base, Settings::default());
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.text());
    assert_eq!(reply.error()["code"], "upstream_timeout");
    assert_eq!(reply.headers["x-should-retry"], "false");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stream_whose_head_never_comes_is_not_sent_twice() {
    let (base, accepted) = raw_upstream("", Duration::from_secs(10)).await;
    let h = harness(&base, Settings::default());
    let reply = h.chat(streamed("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.text());
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

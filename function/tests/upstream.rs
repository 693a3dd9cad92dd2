//! The proxy against a real HTTP upstream (wiremock): mapping, retries, Retry-After,
//! the circuit breaker, timeouts, pass-through and streaming.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use openai_proxy_function::app::Settings;
use openai_proxy_function::breaker::CircuitBreaker;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sse(events: &[&str]) -> ResponseTemplate {
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

#[tokio::test]
async fn chat_maps_the_model_upstream_and_answers_with_the_requested_id() {
    let (server, base) = upstream().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .and(body_partial_json(
            serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 5}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini-2024-07-18")))
        .expect(1)
        .mount(&server)
        .await;
    let (h, reply) = chat_through(&base).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["model"], "amazon.nova-lite-v1:0");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello!");

    let line = &h.request_logs()[0];
    assert_eq!(line["model"], "amazon.nova-lite-v1:0");
    assert_eq!(line["upstream_model"], "gpt-4o-mini");
    assert_eq!(line["upstream_status"], 200);
    assert_eq!(
        (line["attempts"].as_u64(), line["total_tokens"].as_u64()),
        (Some(1), Some(7))
    );
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_attempt_limit() {
    let (server, base) = upstream().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")))
        .expect(1)
        .mount(&server)
        .await;
    let (h, reply) = chat_through(&base).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(h.request_logs()[0]["attempts"], 3);
}

#[tokio::test]
async fn persistent_server_errors_are_relayed_with_openais_status_after_exactly_three_attempts() {
    let failing = ResponseTemplate::new(500).set_body_json(serde_json::json!({
        "error": {"message": "The server had an error while processing your request.", "type": "server_error",
                  "param": null, "code": null}}));
    let (h, reply) = answered(failing, 3).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let error = reply.error();
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("server_error"), None)
    );
    assert_eq!(
        error["message"],
        "The server had an error while processing your request."
    );
    assert!(!reply.headers.contains_key("x-should-retry"));
    assert_eq!(h.request_logs()[0]["attempts"], 3);
}

#[tokio::test]
async fn rate_limits_honour_retry_after_ms_then_pass_through_with_both_retry_headers() {
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after-ms", "300")
        .insert_header("x-ratelimit-remaining-requests", "0")
        .set_body_json(serde_json::json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}));
    let (_server, h) = proxy_answered_by(limited, 3).await;
    let started = std::time::Instant::now();
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    // Two waits of at least the 300 ms asked for (the backoff alone is 5-20 ms).
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (&reply.headers["retry-after"], &reply.headers["retry-after-ms"]),
        (&"1".parse().unwrap(), &"300".parse().unwrap())
    );
    assert_eq!(reply.headers["x-ratelimit-remaining-requests"], "0");
    let error = reply.error();
    assert_eq!(error["code"], "rate_limit_exceeded");
    // OpenAI's own type for a request-count limit, unchanged.
    assert_eq!(error["type"], "requests");
    assert_eq!(error["message"], "Rate limit reached");
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_not_waited_for() {
    let (_, reply) = answered(ResponseTemplate::new(429).insert_header("retry-after", "60"), 1).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers["retry-after"], "60");
}

#[tokio::test]
async fn client_errors_pass_through_once_with_their_status_and_shape() {
    let bad = ResponseTemplate::new(400).set_body_json(serde_json::json!({
        "error": {"message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error",
                  "param": "messages", "code": "context_length_exceeded"}}));
    let (_, reply) = answered(bad, 1).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let error = reply.error();
    assert_eq!(
        (error["code"].as_str(), error["param"].as_str()),
        (Some("context_length_exceeded"), Some("messages"))
    );
}

#[tokio::test]
async fn openai_refusing_the_proxys_key_is_a_502_that_never_quotes_the_key() {
    let refused = ResponseTemplate::new(401).set_body_json(serde_json::json!({
        "error": {"message": "Incorrect API key provided: sk-test-****cdef. You can find your API key at https://platform.openai.com/account/api-keys.",
                  "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}));
    let (_, reply) = answered(refused, 1).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let error = reply.error();
    assert_eq!(error["code"], "upstream_auth_failed");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("refused the proxy's API key"), "{message}");
    assert!(!message.contains("sk-"), "{message}");
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_then_probes_and_closes() {
    let (server, base) = upstream().await;
    let h = harness_without_retries(&base, CircuitBreaker::new(2, Duration::from_millis(300)));
    let failing = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(2)
        .mount_as_scoped(&server)
        .await;
    for _ in 0..2 {
        assert_eq!(
            h.chat(chat_request("amazon.nova-lite-v1:0")).await.status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    // Open: no upstream call (the mock expects exactly 2), a 503 that says how long
    // the breaker stays open (300 ms).
    let fast = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    fast.assert_error(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
    assert_eq!(fast.headers["retry-after"], "1");
    let wait_ms: u64 = fast.headers["retry-after-ms"].to_str().unwrap().parse().unwrap();
    assert!((200..=300).contains(&wait_ms), "{wait_ms}");
    drop(failing);

    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")))
        .expect(2)
        .mount(&server)
        .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        h.chat(chat_request("amazon.nova-lite-v1:0")).await.status,
        StatusCode::OK,
        "half-open probe"
    );
    assert_eq!(
        h.chat(chat_request("amazon.nova-lite-v1:0")).await.status,
        StatusCode::OK,
        "closed again"
    );
}

#[tokio::test]
async fn a_non_streamed_request_that_timed_out_is_not_retried_and_never_opens_the_breaker() {
    let (server, base) = upstream().await;
    // openai_api_timeout is 2 s in the test configuration.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_json(completion("x")),
        )
        .expect(2)
        .mount(&server)
        .await;
    // Three attempts allowed, and a breaker that opens on the first failure.
    let h = harness_with(
        &base,
        Settings::default(),
        fast_policy(),
        CircuitBreaker::new(1, Duration::from_secs(30)),
    );
    for _ in 0..2 {
        let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
        assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
        let error = reply.error();
        assert_eq!(error["code"], "upstream_timeout");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("timeout_settings.openai_api_timeout"),
            "{error}"
        );
    }
    // One upstream call per client call (the mock expects exactly 2), the second not
    // refused by the breaker.
    assert_eq!(h.request_logs()[1]["attempts"], 1);
}

#[tokio::test]
async fn connect_errors_are_retried_and_answer_502_unreachable() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let (h, reply) = chat_through(&base).await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unreachable");
    assert_eq!(h.request_logs()[0]["attempts"], 3);
}

#[tokio::test]
async fn upstream_errors_reach_the_client_unchanged_but_for_key_shaped_text() {
    let refused = ResponseTemplate::new(403)
        .insert_header("x-request-id", "req_upstream_403")
        .set_body_json(serde_json::json!({
            "error": {"message": "Project `proj_1` has no access to model `gpt-4o-mini` with key sk-proj-abcdefghijklmnop.",
                      "type": "model_access_error", "param": "model", "code": "unsupported_country_region_territory"}}));
    let (h, reply) = answered(refused, 1).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let error = reply.error();
    assert_eq!(
        (
            error["type"].as_str(),
            error["code"].as_str(),
            error["param"].as_str()
        ),
        (
            Some("model_access_error"),
            Some("unsupported_country_region_territory"),
            Some("model")
        )
    );
    assert_eq!(
        error["message"],
        "Project `proj_1` has no access to model `gpt-4o-mini` with key sk-***."
    );
    assert_eq!(reply.headers["x-should-retry"], "false");
    assert_eq!(reply.headers["x-upstream-request-id"], "req_upstream_403");
    assert_eq!(h.request_logs()[0]["upstream_request_id"], "req_upstream_403");
}

#[tokio::test]
async fn openais_rate_limit_processing_and_request_id_headers_pass_through() {
    let answer = ResponseTemplate::new(200)
        .insert_header("x-ratelimit-limit-tokens", "150000")
        .insert_header("x-ratelimit-remaining-tokens", "149990")
        .insert_header("openai-processing-ms", "412")
        .insert_header("openai-version", "2020-10-01")
        .insert_header("openai-organization", "org-private")
        .insert_header("x-request-id", "req_0123abcd")
        .set_body_json(completion("gpt-4o-mini"));
    let (_server, h) = proxy_answered_by(answer, 1).await;
    let request = axum::http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-request-id", "client-chosen-id")
        .body(axum::body::Body::from(
            chat_request("amazon.nova-lite-v1:0").to_string(),
        ))
        .unwrap();
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    for (name, value) in [
        ("x-ratelimit-limit-tokens", "150000"),
        ("x-ratelimit-remaining-tokens", "149990"),
        ("openai-processing-ms", "412"),
        ("openai-version", "2020-10-01"),
        ("x-upstream-request-id", "req_0123abcd"),
    ] {
        assert_eq!(reply.headers[name], value, "{name}");
    }
    assert!(!reply.headers.contains_key("openai-organization"));
    assert_eq!(h.request_logs()[0]["upstream_request_id"], "req_0123abcd");
    assert_eq!(h.request_logs()[0]["client_request_id"], "client-chosen-id");
}

/// A stream's content chunk as OpenAI writes it when usage was asked for (`usage: null`).
fn content_chunk(content: &str) -> String {
    serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "delta": {"content": content}}], "usage": null})
    .to_string()
}

/// The last chunk of a stream that asked for usage: no choices, the counts.
fn usage_chunk(prompt: u64, completion: u64) -> String {
    serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}})
    .to_string()
}

/// OpenAI answering one request, which must ask for usage, with `chunks` then `[DONE]`.
async fn streams_with_usage(server: &MockServer, chunks: &[&str]) {
    let events: Vec<&str> = chunks.iter().copied().chain(["[DONE]"]).collect();
    Mock::given(method("POST"))
        .and(body_partial_json(
            serde_json::json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .respond_with(sse(&events))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn streaming_relays_each_event_with_the_requested_model_and_usage() {
    let (server, base) = upstream().await;
    streams_with_usage(
        &server,
        &[&content_chunk("Hel"), &content_chunk("lo"), &usage_chunk(4, 2)],
    )
    .await;
    let h = harness(&base, Settings::default());
    let mut request = chat_request("amazon.nova-lite-v1:0");
    request["stream"] = true.into();
    request["stream_options"] = serde_json::json!({"include_usage": true});
    let reply = h.chat(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    let text = reply.text();
    let events = sse_events(&text);
    assert_eq!(events.len(), 4, "{text}");
    assert_eq!(events[3], "data: [DONE]");
    for event in &events[..3] {
        let json: serde_json::Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(json["model"], "amazon.nova-lite-v1:0");
    }
    assert!(events[0].contains("Hel") && events[1].contains("lo"));
    let line = &h.request_logs()[0];
    assert_eq!(
        (line["stream"].as_bool(), line["total_tokens"].as_u64()),
        (Some(true), Some(6))
    );
}

/// An upstream that sends the head and one event of an SSE answer, promises more, and
/// hangs up: what a dropped connection looks like mid-stream. (wiremock cannot lie about
/// its Content-Length, so this is a raw socket.)
async fn breaking_upstream() -> String {
    use tokio::io::AsyncWriteExt;
    raw_answer(|mut socket| async move {
        let first = serde_json::json!({"model": "gpt-4o-mini", "choices": [{"delta": {"content": "Hi"}}]});
        let event = format!("data: {first}\n\n");
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 4096\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(event.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Dropping the socket closes it 4 KB short.
    })
    .await
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_with_an_error_event_and_done() {
    let base = breaking_upstream().await;
    let h = harness(&base, Settings::default());
    let reply = h.chat(streamed("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    let events = sse_events(&text);
    assert_eq!(events.len(), 3, "{text}");
    assert!(
        events[0].contains("\"Hi\"") && events[0].contains("amazon.nova-lite-v1:0"),
        "{text}"
    );
    let error: serde_json::Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "upstream_stream_error");
    assert_eq!(events[2], "data: [DONE]");
    assert_eq!(h.request_logs()[0]["error_type"], "upstream_stream_error");
}

#[tokio::test]
async fn a_stream_closed_cleanly_without_done_ends_with_an_error_event_and_done() {
    let chunk =
        serde_json::json!({"model": "gpt-4o-mini", "choices": [{"delta": {"content": "Hi"}}]}).to_string();
    let (_server, h) = proxy_answered_by(sse(&[&chunk]), 1).await;
    let text = h.chat(streamed("amazon.nova-lite-v1:0")).await.text();
    let events = sse_events(&text);
    assert_eq!(events.len(), 3, "{text}");
    let error: serde_json::Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "upstream_stream_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before the answer was complete")
    );
    assert_eq!(events[2], "data: [DONE]");
}

#[tokio::test]
async fn logs_of_a_full_cycle_hold_neither_the_openai_key_nor_a_client_key() {
    let (server, base) = upstream().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")))
        .mount(&server)
        .await;
    let h = harness(
        &base,
        Settings {
            auth_enabled: true,
            ..Settings::default()
        },
    );
    for key in [CLIENT_KEY, "wrong-client-key"] {
        let request = axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(axum::body::Body::from(
                chat_request("amazon.nova-lite-v1:0").to_string(),
            ))
            .unwrap();
        h.send(request).await;
    }
    let lines = h.logs.lock().unwrap().join("\n");
    assert!(
        lines.contains("\"status\":200") && lines.contains("\"status\":401"),
        "{lines}"
    );
    for secret in [OPENAI_KEY, CLIENT_KEY, "wrong-client-key", "Say hello", "Hello!"] {
        assert!(!lines.contains(secret), "logs leak {secret:?}: {lines}");
    }
}

#[tokio::test]
async fn usage_is_asked_for_on_every_stream_and_its_chunk_dropped_when_the_client_did_not_ask() {
    let (server, base) = upstream().await;
    streams_with_usage(&server, &[&content_chunk("Hi"), &usage_chunk(4, 1)]).await;
    let h = harness(&base, Settings::default());
    let text = h.chat(streamed("amazon.nova-lite-v1:0")).await.text();
    let events = sse_events(&text);
    assert_eq!(events.len(), 2, "{text}");
    assert!(
        events[0].contains("\"Hi\"") && !events[0].contains("usage"),
        "{text}"
    );
    assert_eq!(events[1], "data: [DONE]");
    // The metrics count the tokens all the same.
    assert_eq!(h.request_logs()[0]["total_tokens"], 5);
}

#[tokio::test]
async fn a_silent_stream_gets_keep_alive_comments_and_is_not_cut_off_by_the_openai_timeout() {
    // Events 2.5 s apart: longer than openai_api_timeout (2 s), within the stream idle
    // timeout (default 300 s).
    let (base, report) = sse_upstream(2, Duration::from_millis(2500), async {}).await;
    let settings = Settings {
        stream_keep_alive: Duration::from_millis(400),
        ..Settings::default()
    };
    let h = harness(&base, settings);
    let text = h.chat(streamed("amazon.nova-lite-v1:0")).await.text();
    let events = sse_events(&text);
    assert!(events[0].contains("tok0"), "{text}");
    let comments = events.iter().filter(|e| **e == ": keep-alive").count();
    assert!((4..=7).contains(&comments), "{comments} keep-alives: {text}");
    assert!(events[events.len() - 2].contains("tok1"), "{text}");
    assert_eq!(events[events.len() - 1], "data: [DONE]");
    assert_eq!(report.await.unwrap().sent, 2);
}

#[tokio::test]
async fn a_stream_silent_for_longer_than_stream_idle_timeout_is_cut_off_with_an_error_event() {
    let (base, _report) = sse_upstream(2, Duration::from_secs(5), async {}).await;
    let mut config = config_json(&base);
    config["timeout_settings"]["stream_idle_timeout"] = serde_json::json!(0.5);
    let h = harness_with_config(
        config,
        Settings::default(),
        fast_policy(),
        CircuitBreaker::new(5, Duration::from_secs(30)),
    );
    let started = std::time::Instant::now();
    let text = h.chat(streamed("amazon.nova-lite-v1:0")).await.text();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let events = sse_events(&text);
    assert_eq!(events.len(), 3, "{text}");
    assert!(
        events[1].contains("stalled") && events[1].contains("upstream_stream_error"),
        "{text}"
    );
    assert_eq!(events[2], "data: [DONE]");
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_is_a_connect_error_and_retried() {
    // Accepts TCP connections and never answers the TLS handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        }
    });
    // The configuration's openai_api_timeout is 2 s, fast_policy's connect timeout 300 ms.
    let h = harness(&format!("https://{address}/v1"), Settings::default());
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unreachable");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one connection per attempt"
    );
    assert_eq!(h.request_logs()[0]["attempts"], 3);
}

/// A proxy in front of `base`, and its answer to a plain chat request.
async fn chat_through(base: &str) -> (Harness, Reply) {
    let h = harness(base, Settings::default());
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    (h, reply)
}

/// The answer to a plain chat through a proxy whose upstream answers `template`,
/// `calls` times.
async fn answered(template: ResponseTemplate, calls: u64) -> (Harness, Reply) {
    let (_server, h) = proxy_answered_by(template, calls).await;
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    (h, reply)
}

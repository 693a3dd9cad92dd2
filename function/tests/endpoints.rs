//! `POST /v1/embeddings` and `POST /v1/responses` against a real HTTP upstream: the model
//! mapped on the way in and put back on the way out (in every streamed event that names
//! one), the rest of the answer untouched, tokens counted, and Responses streams ended
//! by their final event.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use openai_proxy_function::app::Settings;
use serde_json::json;
use wiremock::ResponseTemplate;

const EMBED_MODEL: &str = "amazon.titan-embed-text-v2:0";

#[tokio::test]
async fn embeddings_map_the_model_and_keep_every_vector_byte_for_byte() {
    // Floats written as OpenAI writes them, digits a JSON round trip would change.
    let answer = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,1.0000000000000002e-7]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    let (_server, h) = proxy_answering(
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "hello", "dimensions": 3}),
        ResponseTemplate::new(200).set_body_raw(answer, "application/json"),
        1,
    )
    .await;
    let reply = h
        .post(
            "/v1/embeddings",
            json!({"model": EMBED_MODEL, "input": "hello", "dimensions": 3}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.text(),
        answer.replace("text-embedding-3-small", EMBED_MODEL)
    );
    let line = &h.request_logs()[0];
    assert_eq!(
        (line["model"].as_str(), line["upstream_model"].as_str()),
        (Some(EMBED_MODEL), Some("text-embedding-3-small"))
    );
    assert_eq!(
        (line["prompt_tokens"].as_u64(), line["total_tokens"].as_u64()),
        (Some(8), Some(8))
    );
}

#[tokio::test]
async fn base64_embeddings_pass_through_untouched() {
    let answer = json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": "AAAAPwAAgD8="}],
                        "model": "text-embedding-3-small", "usage": {"prompt_tokens": 1, "total_tokens": 1}});
    let (_server, h) = proxy_answering(
        "/v1/embeddings",
        json!({"encoding_format": "base64"}),
        ResponseTemplate::new(200).set_body_json(&answer),
        1,
    )
    .await;
    let reply = h
        .post(
            "/v1/embeddings",
            json!({"model": EMBED_MODEL, "input": ["a"], "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["data"][0]["embedding"], "AAAAPwAAgD8=");
    assert_eq!(body["model"], EMBED_MODEL);
}

#[tokio::test]
async fn an_unmapped_embedding_model_is_not_found_and_never_sent_upstream() {
    let (_server, h) = proxy_answered_by(ResponseTemplate::new(500), 0).await;
    let reply = h
        .post(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-large", "input": "x"}),
        )
        .await;
    reply.assert_error(StatusCode::NOT_FOUND, "model_not_found");
    assert_eq!(reply.headers["x-should-retry"], "false");
}

fn response_object(model: &str, status: &str) -> serde_json::Value {
    json!({"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": model,
           "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}],
           "usage": {"input_tokens": 6, "output_tokens": 2, "total_tokens": 8}})
}

#[tokio::test]
async fn responses_map_the_model_and_answer_with_the_requested_id_and_usage() {
    let (_server, h) = proxy_answering(
        "/v1/responses",
        json!({"model": "gpt-4o-mini", "input": "Say hello"}),
        ResponseTemplate::new(200).set_body_json(response_object("gpt-4o-mini-2024-07-18", "completed")),
        1,
    )
    .await;
    let reply = h
        .post(
            "/v1/responses",
            json!({"model": "amazon.nova-lite-v1:0", "input": "Say hello"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["model"], "amazon.nova-lite-v1:0");
    assert_eq!(body["output"][0]["content"][0]["text"], "Hello!");
    let line = &h.request_logs()[0];
    assert_eq!(
        (
            line["prompt_tokens"].as_u64(),
            line["completion_tokens"].as_u64(),
            line["total_tokens"].as_u64()
        ),
        (Some(6), Some(2), Some(8))
    );
}

/// A Responses API event stream as OpenAI writes it: `event:` names and typed data.
fn response_events(model: &str) -> Vec<(String, serde_json::Value)> {
    let mut created = response_object(model, "in_progress");
    created["output"] = json!([]);
    created["usage"] = json!(null);
    vec![
        (
            "response.created".into(),
            json!({"type": "response.created", "sequence_number": 0, "response": created}),
        ),
        (
            "response.output_text.delta".into(),
            json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0,
                   "content_index": 0, "delta": "Hello!"}),
        ),
        (
            "response.completed".into(),
            json!({"type": "response.completed", "sequence_number": 2, "response": response_object(model, "completed")}),
        ),
    ]
}

/// A raw-socket upstream that writes `events` as one SSE answer and then, when `hold`
/// is set, keeps the connection open without a word (a Responses stream has no
/// `[DONE]`: only the final event says it is over).
async fn responses_upstream(events: Vec<(String, serde_json::Value)>, hold: bool) -> String {
    use tokio::io::AsyncWriteExt;
    raw_answer(move |mut socket| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        for (name, data) in events {
            let event = format!("event: {name}\ndata: {data}\n\n");
            let chunk = format!("{:x}\r\n{event}\r\n", event.len());
            socket.write_all(chunk.as_bytes()).await.unwrap();
        }
        if hold {
            tokio::time::sleep(Duration::from_secs(30)).await;
        } else {
            socket.write_all(b"0\r\n\r\n").await.unwrap();
        }
    })
    .await
}

fn parse_events(text: &str) -> Vec<(String, serde_json::Value)> {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (
                name,
                serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {e}")),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_responses_stream_ends_on_its_final_event_with_the_model_rewritten_in_every_event() {
    let base = responses_upstream(response_events("gpt-4o-mini"), true).await;
    let h = harness(&base, Settings::default());
    let started = Instant::now();
    let reply = h
        .post(
            "/v1/responses",
            json!({"model": "amazon.nova-lite-v1:0", "input": "Say hello", "stream": true}),
        )
        .await;
    // The upstream holds its connection open: only the final event can have ended it.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    let text = reply.text();
    assert!(!text.contains("[DONE]"), "{text}");
    let events = parse_events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.output_text.delta",
            "response.completed"
        ]
    );
    assert_eq!(events[0].1["response"]["model"], "amazon.nova-lite-v1:0");
    assert_eq!(events[2].1["response"]["model"], "amazon.nova-lite-v1:0");
    assert!(!text.contains("gpt-4o-mini"), "{text}");
    let line = &h.request_logs()[0];
    assert_eq!(
        (line["stream"].as_bool(), line["total_tokens"].as_u64()),
        (Some(true), Some(8))
    );
}

#[tokio::test]
async fn a_responses_stream_closed_before_its_final_event_ends_with_an_error_event() {
    let mut events = response_events("gpt-4o-mini");
    events.pop();
    let base = responses_upstream(events, false).await;
    let h = harness(&base, Settings::default());
    let reply = h
        .post(
            "/v1/responses",
            json!({"model": "amazon.nova-lite-v1:0", "input": "Say hello", "stream": true}),
        )
        .await;
    let events = parse_events(&reply.text());
    assert_eq!(events.len(), 3, "{}", reply.text());
    let (name, error) = &events[2];
    assert_eq!(name, "error");
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("upstream_stream_error"))
    );
    assert_eq!(h.request_logs()[0]["error_type"], "upstream_stream_error");
}

#[tokio::test]
async fn stored_responses_are_retrieved_deleted_cancelled_and_listed_through_openai() {
    use wiremock::matchers::{method, path, query_param};
    let (server, base) = upstream().await;
    let stored = response_object("gpt-4o-mini", "completed");
    for (verb, at, answer) in [
        ("GET", "/v1/responses/resp_abc123", stored.clone()),
        (
            "DELETE",
            "/v1/responses/resp_abc123",
            json!({"id": "resp_abc123", "object": "response", "deleted": true}),
        ),
        (
            "POST",
            "/v1/responses/resp_abc123/cancel",
            response_object("gpt-4o-mini", "cancelled"),
        ),
    ] {
        wiremock::Mock::given(method(verb))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .expect(1)
            .mount(&server)
            .await;
    }
    wiremock::Mock::given(method("GET"))
        .and(path("/v1/responses/resp_abc123/input_items"))
        .and(query_param("limit", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "data": [], "has_more": false})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let h = harness(&base, Settings::default());
    let retrieved = h.get("/v1/responses/resp_abc123").await;
    assert_eq!(retrieved.status, StatusCode::OK, "{}", retrieved.text());
    assert_eq!(retrieved.json()["output"][0]["content"][0]["text"], "Hello!");
    let deleted = h
        .empty(axum::http::Method::DELETE, "/v1/responses/resp_abc123")
        .await;
    assert_eq!(deleted.json()["deleted"], true);
    let cancelled = h
        .empty(axum::http::Method::POST, "/v1/responses/resp_abc123/cancel")
        .await;
    assert_eq!(cancelled.json()["status"], "cancelled");
    let items = h.get("/v1/responses/resp_abc123/input_items?limit=2").await;
    assert_eq!(items.json()["object"], "list");
    // OpenAI's 404 for an unknown id is relayed as it came.
    let missing = h.get("/v1/responses/resp_unknown").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Nothing but an id's characters reaches the upstream path.
    let steered = h.get("/v1/responses/..%2F..%2Fmodels").await;
    assert_eq!(steered.status, StatusCode::BAD_REQUEST);
    assert_eq!(steered.error()["param"], "response_id");
}

//! The proxy against hostile clients and a misbehaving upstream (issue 21): bodies built
//! to burn CPU, names built to mint metrics, headers built to break logs, and an upstream
//! that stalls. Each test pins what the proxy answers, never how fast: the figures are in
//! docs/benchmarks.md.

mod common;

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

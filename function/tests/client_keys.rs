//! Named client keys (`{"name", "sha256", "models"}` beside plain digests): the name in
//! the log line and the metrics, and a key's model list as its whole world.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use openai_proxy_function::app::Settings;
use openai_proxy_function::breaker::CircuitBreaker;
use serde_json::json;
use sha2::Digest;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WEB_KEY: &str = "web-app-key-0123456789";

fn harness_with_named_key(base: &str) -> Harness {
    harness_with_key(
        base,
        WEB_KEY,
        json!({"name": "web-app", "models": ["amazon.nova-lite-v1:0"]}),
    )
}

/// Authentication on, and besides [`CLIENT_KEY`] the key `key` as the named entry
/// `entry` (its `sha256` added).
fn harness_with_key(base: &str, key: &str, mut entry: serde_json::Value) -> Harness {
    let mut config = config_json(base);
    entry["sha256"] = hex(&sha2::Sha256::digest(key.as_bytes())).into();
    config["client_api_keys"].as_array_mut().unwrap().push(entry);
    harness_with_config(
        config,
        Settings {
            auth_enabled: true,
            ..Settings::default()
        },
        fast_policy(),
        CircuitBreaker::new(5, Duration::from_secs(30)),
    )
}

async fn as_client(
    h: &Harness,
    key: &str,
    request: axum::http::request::Builder,
    body: Option<serde_json::Value>,
) -> Reply {
    let request = request.header("authorization", format!("Bearer {key}"));
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    h.send(request.body(body).unwrap()).await
}

#[tokio::test]
async fn a_named_key_sees_only_its_models_and_any_other_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "gpt-4o-mini"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")))
        .expect(1)
        .mount(&server)
        .await;
    let h = harness_with_named_key(&format!("{}/v1", server.uri()));

    let listed = as_client(&h, WEB_KEY, Request::get("/v1/models"), None).await;
    assert_eq!(listed.model_ids(), ["amazon.nova-lite-v1:0"]);
    // A plain digest's key still sees every mapped model.
    let all = as_client(&h, CLIENT_KEY, Request::get("/v1/models"), None).await;
    assert_eq!(all.model_ids().len(), 3);

    let hidden = as_client(&h, WEB_KEY, Request::get("/v1/models/amazon.nova-pro-v1:0"), None).await;
    hidden.assert_error(StatusCode::NOT_FOUND, "model_not_found");
    // The same answer as for a model that does not exist at all.
    let missing = as_client(&h, WEB_KEY, Request::get("/v1/models/no-such-model"), None).await;
    assert_eq!(
        hidden.json()["error"]["message"]
            .as_str()
            .unwrap()
            .replace("amazon.nova-pro-v1:0", "X"),
        missing.json()["error"]["message"]
            .as_str()
            .unwrap()
            .replace("no-such-model", "X")
    );

    let post = || Request::post("/v1/chat/completions").header("content-type", "application/json");
    let refused = as_client(&h, WEB_KEY, post(), Some(chat_request("amazon.nova-pro-v1:0"))).await;
    refused.assert_error(StatusCode::NOT_FOUND, "model_not_found");
    let served = as_client(&h, WEB_KEY, post(), Some(chat_request("amazon.nova-lite-v1:0"))).await;
    assert_eq!(served.status, StatusCode::OK);
    // Only the allowed model reached the upstream (the mock expects exactly one call).
}

#[tokio::test]
async fn the_keys_name_is_in_the_log_line_and_a_metrics_dimension_never_the_key() {
    let h = harness_with_named_key("http://127.0.0.1:9/v1");
    as_client(&h, WEB_KEY, Request::get("/v1/models"), None).await;
    as_client(&h, CLIENT_KEY, Request::get("/v1/models"), None).await;
    let lines = h.log_lines();
    let requests: Vec<_> = lines.iter().filter(|l| l.get("_aws").is_none()).collect();
    assert_eq!(requests[0]["client"], "web-app");
    assert!(requests[1].get("client").is_none(), "{}", requests[1]);
    let metrics: Vec<_> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert_eq!(metrics[0]["Client"], "web-app");
    let dimensions = &metrics[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
    assert!(
        dimensions
            .as_array()
            .unwrap()
            .contains(&json!(["FunctionName", "Client"]))
    );
    let all = h.logs.lock().unwrap().join("\n");
    assert!(!all.contains(WEB_KEY) && !all.contains(CLIENT_KEY));
}

const CAPPED_KEY: &str = "capped-key-0123456789";

#[tokio::test]
async fn a_capped_key_is_refused_more_choices_or_tokens_than_its_caps_naming_the_parameter() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")))
        .expect(2)
        .mount(&server)
        .await;
    let h = harness_with_key(
        &format!("{}/v1", server.uri()),
        CAPPED_KEY,
        json!({"name": "capped", "max_n": 2, "max_tokens": 100}),
    );
    let post = || Request::post("/v1/chat/completions").header("content-type", "application/json");
    let ask = |extra: serde_json::Value| {
        let mut body =
            json!({"model": "amazon.nova-lite-v1:0", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        Some(body)
    };
    for (extra, param) in [
        (json!({"n": 3, "max_tokens": 10}), "n"),
        (json!({"max_tokens": 101}), "max_tokens"),
        (json!({"max_completion_tokens": 5000}), "max_completion_tokens"),
        (json!({}), "max_tokens"),
    ] {
        let reply = as_client(&h, CAPPED_KEY, post(), ask(extra.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{extra}");
        let error = reply.error();
        assert_eq!(
            (error["param"].as_str(), error["code"].as_str()),
            (Some(param), Some("key_limit_exceeded")),
            "{extra}"
        );
    }
    // Within the caps: forwarded (the mock expects exactly these two).
    let within = as_client(&h, CAPPED_KEY, post(), ask(json!({"n": 2, "max_tokens": 100}))).await;
    assert_eq!(within.status, StatusCode::OK, "{}", within.text());
    // Another key has no caps.
    let uncapped = as_client(&h, CLIENT_KEY, post(), ask(json!({"n": 8}))).await;
    assert_eq!(uncapped.status, StatusCode::OK);
}

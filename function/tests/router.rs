//! The router in-process: routes, errors, CORS, request ids, auth and limits.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use openai_proxy_function::app::Settings;

const NO_UPSTREAM: &str = "http://127.0.0.1:9/v1";

fn auth_on() -> Settings {
    Settings {
        auth_enabled: true,
        ..Settings::default()
    }
}

#[tokio::test]
async fn health_answers_without_configuration_or_auth() {
    let h = harness(NO_UPSTREAM, auth_on());
    let reply = h.get("/health").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "ok");
}

#[tokio::test]
async fn models_lists_exactly_the_mapped_ids() {
    let h = harness(NO_UPSTREAM, Settings::default());
    let reply = h.get("/v1/models").await;
    let body = reply.json();
    assert_eq!(body["object"], "list");
    assert_eq!(
        reply.model_ids(),
        [
            "amazon.nova-lite-v1:0",
            "amazon.nova-pro-v1:0",
            "amazon.titan-embed-text-v2:0"
        ]
    );
    assert_eq!(body["data"][0]["object"], "model");

    let one = h.get("/v1/models/amazon.nova-pro-v1:0").await;
    assert_eq!(
        (one.status, one.json()["id"].as_str()),
        (StatusCode::OK, Some("amazon.nova-pro-v1:0"))
    );
    let missing = h.get("/v1/models/gpt-4o").await;
    missing.assert_error(StatusCode::NOT_FOUND, "model_not_found");
}

#[tokio::test]
async fn unknown_path_and_wrong_method_answer_in_openai_shape() {
    let h = harness(NO_UPSTREAM, Settings::default());
    let reply = h.get("/v2/nothing").await;
    reply.assert_error(StatusCode::NOT_FOUND, "unknown_url");

    let reply = h
        .send(
            Request::delete("/v1/chat/completions")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let reply = h.get("/v1/chat/completions").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn bad_chat_bodies_are_400s_naming_the_parameter_and_never_reach_upstream() {
    let h = harness(NO_UPSTREAM, Settings::default());
    let malformed = h.post_with("/v1/chat/completions", &[], "{\"model\": ").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error()["type"], "invalid_request_error");

    let missing_model = h
        .chat(serde_json::json!({"messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(
        (missing_model.status, missing_model.error()["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("model"))
    );
    let wrong_type = h
        .chat(serde_json::json!({"model": "amazon.nova-lite-v1:0", "messages": "x"}))
        .await;
    assert_eq!(wrong_type.error()["param"], "messages");

    let unmapped = h.chat(chat_request("gpt-4o")).await;
    unmapped.assert_error(StatusCode::NOT_FOUND, "model_not_found");
    assert_eq!(unmapped.error()["param"], "model");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_declared_or_not() {
    let h = harness(NO_UPSTREAM, Settings::default());
    let declared = h
        .post_with("/v1/chat/completions", &[("content-length", "6000001")], "{}")
        .await;
    declared.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large");

    // No length header: the body is cut off at the limit while being read.
    let chunks = futures_util::stream::iter(
        (0..7).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1_000_000]))),
    );
    let streamed = h
        .post_with("/v1/chat/completions", &[], Body::from_stream(chunks))
        .await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn preflight_answers_without_auth_and_echoes_requested_headers() {
    let h = harness(NO_UPSTREAM, auth_on());
    let reply = h
        .send(
            Request::options("/v1/chat/completions")
                .header("origin", "https://app.example.com")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type, x-stainless-os",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    let allowed = reply.headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed.contains("x-stainless-os") && allowed.contains("authorization"),
        "{allowed}"
    );
    assert!(
        reply.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(reply.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn cors_origins_list_only_allows_listed_origins() {
    let settings = Settings {
        cors_origins: Some(vec!["https://app.example.com".into()]),
        ..Settings::default()
    };
    let h = harness(NO_UPSTREAM, settings);
    let allowed = h.get_with("/health", "origin", "https://app.example.com").await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = h.get_with("/health", "origin", "https://evil.example").await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn every_response_carries_the_proxys_own_request_id_and_logs_the_callers_beside_it() {
    let h = harness(NO_UPSTREAM, Settings::default());
    let sent = h.get_with("/health", "x-request-id", "abc-123").await;
    let ours = sent.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(ours.len(), 36, "a generated UUID, not the caller's value: {ours}");
    let correlated = h.get_with("/nope", "x-correlation-id", "corr.9").await;
    assert_ne!(correlated.headers["x-request-id"], "corr.9");
    h.get_with("/health", "x-request-id", "a b\"<script>").await;
    let lines = h.request_logs();
    assert_eq!(
        (
            lines[0]["request_id"].as_str(),
            lines[0]["client_request_id"].as_str()
        ),
        (Some(ours.as_str()), Some("abc-123"))
    );
    assert_eq!(lines[1]["correlation_id"], "corr.9");
    assert!(
        lines[2].get("client_request_id").is_none(),
        "an insane id is not logged"
    );
}

#[tokio::test]
async fn auth_refuses_missing_and_wrong_keys_and_accepts_both_header_forms() {
    let h = harness(NO_UPSTREAM, auth_on());
    let none = h.get("/v1/models").await;
    none.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    let wrong = h.get_with("/v1/models", "authorization", "Bearer nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let bearer = h
        .get_with("/v1/models", "authorization", &format!("Bearer {CLIENT_KEY}"))
        .await;
    assert_eq!(bearer.status, StatusCode::OK);
    let x_api_key = h.get_with("/v1/models", "x-api-key", CLIENT_KEY).await;
    assert_eq!(x_api_key.status, StatusCode::OK);
    // Errors from unauthenticated callers still carry CORS headers for browsers.
    let browser = h.get_with("/v1/models", "origin", "https://a.example").await;
    assert_eq!(browser.status, StatusCode::UNAUTHORIZED);
    assert!(browser.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn each_request_logs_one_json_line_with_its_outcome() {
    let h = harness(NO_UPSTREAM, Settings::default());
    h.get_with("/v1/models/unknown", "x-request-id", "rid-1").await;
    let lines = h.request_logs();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["client_request_id"], "rid-1");
    assert_eq!(line["status"], 404);
    assert_eq!(line["path"], "/v1/models/unknown");
    assert_eq!(line["error_type"], "model_not_found");
    assert!(line["duration_ms"].as_f64().is_some());
}

#[tokio::test]
async fn logged_responses_keep_their_exact_length_so_content_length_is_sent() {
    use http_body::Body as _;
    use tower::ServiceExt;
    let h = harness(NO_UPSTREAM, Settings::default());
    let response = h
        .proxy
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(
        response.body().size_hint().exact().is_some(),
        "a buffered answer must not turn into a chunked one"
    );
}

#[tokio::test]
async fn log_lines_carry_api_gateways_request_id_to_join_its_access_log() {
    let event = lambda_http::request::from_str(include_str!("data/apigw_rest_get_models.json")).unwrap();
    let (parts, body) = event.into_parts();
    let request = Request::from_parts(parts, Body::from(body.to_vec()));
    let h = harness("http://127.0.0.1:9/v1", Settings::default());
    h.send(request).await;
    let line = &h.request_logs()[0];
    assert_eq!(line["apigw_request_id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    // Outside API Gateway there is none, and the field is left out.
    h.get("/health").await;
    assert!(h.request_logs()[1].get("apigw_request_id").is_none());
}

#[tokio::test]
async fn every_answer_lets_browser_scripts_read_ids_retry_advice_and_rate_limits() {
    let h = harness(NO_UPSTREAM, Settings::default());
    for request in [
        Request::get("/health").header("origin", "https://app.example.com"),
        Request::get("/nope").header("origin", "https://app.example.com"),
    ] {
        let reply = h.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(reply.headers["access-control-allow-origin"], "*");
        assert!(reply.headers["vary"].to_str().unwrap().contains("origin"));
        let exposed = reply.headers["access-control-expose-headers"].to_str().unwrap();
        for name in [
            "x-request-id",
            "x-upstream-request-id",
            "retry-after",
            "retry-after-ms",
            "x-should-retry",
            "openai-processing-ms",
            "x-ratelimit-remaining-tokens",
        ] {
            assert!(exposed.split(',').any(|n| n == name), "{name} not in {exposed}");
        }
    }
}

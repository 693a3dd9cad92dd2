//! Limits of client keys, held in the usage table on the local AWS emulator (moto's
//! DynamoDB; `make test` runs this under scripts/local-aws.sh, which sets
//! AWS_ENDPOINT_URL): caps under concurrency, per-minute limits, streamed answers
//! charged their usage, and failing closed when the table cannot be reached.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use openai_proxy_function::app::Settings;
use openai_proxy_function::breaker::CircuitBreaker;
use openai_proxy_function::spend::Spend;
use openai_proxy_function::spend::ledger::{Ledger, Reservation, Reserved, Thresholds, Windows};
use serde_json::json;
use sha2::Digest;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const LIMITED_KEY: &str = "limited-key-0123456789";

/// Authentication on; [`CLIENT_KEY`] unlimited, [`LIMITED_KEY`] named `limited` with
/// `limits`; gpt-4o-mini at `price`; the usage table behind `spend`.
fn proxy(base: &str, limits: serde_json::Value, price: serde_json::Value, spend: Spend) -> Harness {
    let mut config = config_json(base);
    config["client_api_keys"].as_array_mut().unwrap().push(json!({
        "name": "limited",
        "sha256": hex(&sha2::Sha256::digest(LIMITED_KEY.as_bytes())),
        "models": ["amazon.nova-lite-v1:0"],
        "limits": limits,
    }));
    config["prices"] = json!({ "gpt-4o-mini": price });
    let settings = Settings {
        auth_enabled: true,
        ..Settings::default()
    };
    let breaker = CircuitBreaker::new(5, Duration::from_secs(30));
    let (mut app, logs) = app_with_config(config, settings, fast_policy(), breaker);
    app.spend = spend;
    Harness::over(app, logs)
}

async fn chat_as(h: &Harness, key: &str, body: &serde_json::Value) -> Reply {
    h.send(
        Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// Waits out the end of the minute when little of it is left, so a test's requests
/// fall in one per-minute window.
async fn early_in_a_minute() {
    let left = Windows::now().minute_left;
    if left < 10 {
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}

fn answering(usage: serde_json::Value) -> ResponseTemplate {
    let mut answer = completion("gpt-4o-mini");
    answer["usage"] = usage;
    ResponseTemplate::new(200).set_body_json(answer)
}

#[tokio::test]
async fn forty_concurrent_requests_against_a_budget_for_ten_never_pass_the_cap() {
    let db = dynamodb(&emulator()).await;
    let table = usage_table(&db).await;
    let upstream = MockServer::start().await;
    // Every request costs exactly its worst case (10 output tokens at $100 per million,
    // input free), so the budget of $0.01 holds ten and the estimate error is nil.
    Mock::given(method("POST"))
        .respond_with(answering(
            json!({"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19}),
        ))
        .mount(&upstream)
        .await;
    let h = proxy(
        &format!("{}/v1", upstream.uri()),
        json!({"usd_per_day": 0.01}),
        json!({"input_per_million": 0, "output_per_million": 100}),
        Spend::with_ledger(Ledger::new(db.clone(), &table)),
    );
    let request = json!({"model": "amazon.nova-lite-v1:0", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10});
    let replies = futures_util::future::join_all((0..40).map(|_| chat_as(&h, LIMITED_KEY, &request))).await;

    let served = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status != StatusCode::OK).collect();
    assert_eq!(served, 10, "the budget holds ten requests");
    for reply in &refused {
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text());
        let error = reply.error();
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("insufficient_quota"), Some("insufficient_quota"))
        );
        assert_eq!(reply.headers["x-should-retry"], "false");
    }
    let forwarded = upstream.received_requests().await.unwrap().len();
    assert_eq!(forwarded, 10, "refused requests never reach the upstream");
    let (requests, _, spent) = counters(&db, &table, "limited").await;
    assert_eq!(
        (requests, spent),
        (10, 10_000),
        "ten requests, $0.01 in micro-dollars"
    );
}

#[tokio::test]
async fn a_per_minute_request_limit_answers_429_with_retry_after_and_openais_headers() {
    let db = dynamodb(&emulator()).await;
    let table = usage_table(&db).await;
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answering(
            json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        ))
        .expect(3)
        .mount(&upstream)
        .await;
    let h = proxy(
        &format!("{}/v1", upstream.uri()),
        json!({"requests_per_minute": 2, "tokens_per_minute": 100000}),
        json!({"input_per_million": 0.15, "output_per_million": 0.6}),
        Spend::with_ledger(Ledger::new(db.clone(), &table)),
    );
    early_in_a_minute().await;
    let request = chat_request("amazon.nova-lite-v1:0");
    for _ in 0..2 {
        let reply = chat_as(&h, LIMITED_KEY, &request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let reply = chat_as(&h, LIMITED_KEY, &request).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text());
    let error = reply.error();
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("requests"), Some("rate_limit_exceeded"))
    );
    let retry_after: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(reply.headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(reply.headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(
        reply.headers["x-ratelimit-reset-requests"],
        format!("{retry_after}s").as_str()
    );
    assert_eq!(reply.headers["x-ratelimit-limit-tokens"], "100000");
    let (requests, tokens, _) = counters(&db, &table, "limited").await;
    assert_eq!(
        (requests, tokens),
        (2, 14),
        "settled to the usage: 2 × (5 + 2) tokens"
    );
    // Another key is not held to this key's limits (nor counted: it has none).
    assert_eq!(chat_as(&h, CLIENT_KEY, &request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_streamed_answer_is_charged_the_usage_it_reports() {
    let db = dynamodb(&emulator()).await;
    let table = usage_table(&db).await;
    let upstream = MockServer::start().await;
    let chunk = |delta: serde_json::Value, usage: serde_json::Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": delta, "usage": usage})
    };
    let events = [
        chunk(
            json!([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]),
            json!(null),
        ),
        chunk(
            json!([{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]),
            json!(null),
        ),
        chunk(
            json!([]),
            json!({"prompt_tokens": 1000, "completion_tokens": 2000, "total_tokens": 3000}),
        ),
    ];
    let body: String = events
        .iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect::<String>()
        + "data: [DONE]\n\n";
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .expect(1)
        .mount(&upstream)
        .await;
    let h = proxy(
        &format!("{}/v1", upstream.uri()),
        json!({"usd_per_month": 1}),
        json!({"input_per_million": 1, "output_per_million": 2}),
        Spend::with_ledger(Ledger::new(db.clone(), &table)),
    );
    let mut request = streamed("amazon.nova-lite-v1:0");
    request["max_tokens"] = 4000.into();
    let reply = chat_as(&h, LIMITED_KEY, &request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.text().ends_with("data: [DONE]\n\n"), "{}", reply.text());
    assert!(
        !reply.text().contains("prompt_tokens"),
        "usage the client did not ask for stays hidden"
    );
    let (requests, tokens, spent) = counters(&db, &table, "limited").await;
    // $1 per million in, $2 per million out: 1000 × 1 + 2000 × 2 micro-dollars.
    assert_eq!(
        (requests, tokens, spent),
        (1, 3000, 5000),
        "the usage, not the worst case (4000 out)"
    );
}

/// A client gone mid-stream, before the usage came, pays for what was produced: the
/// proxy hangs up on the upstream (which stops generating), and the reservation's output
/// is corrected to the events relayed, one token each, not left at the worst case.
#[tokio::test]
async fn a_client_that_disconnects_mid_stream_pays_for_what_was_produced() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let db = dynamodb(&emulator()).await;
    let table = usage_table(&db).await;
    let (base, report) = sse_upstream(50, Duration::from_millis(20), async {}).await;
    let h = proxy(
        &base,
        json!({"usd_per_month": 1}),
        json!({"input_per_million": 1, "output_per_million": 1}),
        Spend::with_ledger(Ledger::new(db.clone(), &table)),
    );
    let mut request = streamed("amazon.nova-lite-v1:0");
    request["max_tokens"] = 4000.into();
    let body = request.to_string();
    let response = h
        .proxy
        .clone()
        .oneshot(
            Request::post("/v1/chat/completions")
                .header("authorization", format!("Bearer {LIMITED_KEY}"))
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut answer = response.into_body();
    for _ in 0..3 {
        answer.frame().await.unwrap().unwrap();
    }
    drop(answer);
    let report = report.await.unwrap();
    assert!(report.peer_closed && report.sent < 50, "{report:?}");
    // The correction is written by a task of its own once the answer is dropped.
    let worst = body.len() as u64 + 4000;
    let mut charged = (0, worst, 0);
    for _ in 0..50 {
        charged = counters(&db, &table, "limited").await;
        if charged.1 < worst {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (requests, tokens, spent) = charged;
    let output = tokens - body.len() as u64;
    assert_eq!(requests, 1);
    assert!(
        (3..=4).contains(&output),
        "three events reached the client: {tokens} tokens"
    );
    // $1 per million tokens either way: a micro-dollar a token.
    assert_eq!(spent, tokens, "charged what was counted, not the worst case");
}

#[tokio::test]
async fn an_unreachable_table_refuses_limited_clients_with_503_and_still_serves_unlimited_ones() {
    // A port nothing listens on: connections are refused, as with an unreachable table.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let db = dynamodb(&format!("http://{closed}")).await;
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answering(
            json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        ))
        .expect(1)
        .mount(&upstream)
        .await;
    let h = proxy(
        &format!("{}/v1", upstream.uri()),
        json!({"requests_per_minute": 100}),
        json!({"input_per_million": 0.15, "output_per_million": 0.6}),
        Spend::with_ledger(Ledger::new(db, "usage")),
    );
    let request = chat_request("amazon.nova-lite-v1:0");
    let refused = chat_as(&h, LIMITED_KEY, &request).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    let error = refused.error();
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("server_error"), Some("usage_unavailable"))
    );
    assert!(refused.headers.contains_key("retry-after"));
    let served = chat_as(&h, CLIENT_KEY, &request).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text());
    // The mock's expect(1): only the unlimited client's request went upstream.
}

#[tokio::test]
async fn without_a_usage_table_limited_clients_are_refused_and_told_why() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answering(
            json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        ))
        .expect(0)
        .mount(&upstream)
        .await;
    let h = proxy(
        &format!("{}/v1", upstream.uri()),
        json!({"usd_per_day": 1}),
        json!({"input_per_million": 0.15, "output_per_million": 0.6}),
        Spend::none(),
    );
    let reply = chat_as(&h, LIMITED_KEY, &chat_request("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        reply.error()["message"]
            .as_str()
            .unwrap()
            .contains("USAGE_TABLE is not set")
    );
}

#[tokio::test]
async fn the_month_counts_requests_and_tokens_across_minutes_and_days_and_settling_corrects_them() {
    let db = dynamodb(&emulator()).await;
    let table = usage_table(&db).await;
    let ledger = Ledger::new(db.clone(), &table);
    // 2024-03-01T00:00:00Z, then a minute later, then the next day: every kind of write
    // (a new item, a new minute, a new day, the same windows) adds to the month.
    let start = 1_709_251_200;
    let writes = [
        (start, 100),
        (start + 60, 50),
        (start + 86_400, 30),
        (start + 86_400, 20),
    ];
    for (at, tokens) in writes {
        let reserved = ledger
            .reserve(
                "monthly",
                &Windows::at(at),
                Reservation {
                    requests: 1,
                    tokens,
                    usd: 10,
                },
                &Thresholds::default(),
            )
            .await
            .unwrap();
        assert!(matches!(reserved, Reserved::Counted(_)), "{reserved:?}");
    }
    // Settling the last request to 5 tokens fewer than reserved.
    ledger
        .adjust("monthly", &Windows::at(start + 86_400), -5, -1)
        .await
        .unwrap();
    let numbers = numbers(&db, &table, "monthly#2024-03").await;
    let n = |name: &str| numbers[name];
    assert_eq!(
        (n("month_requests"), n("month_tokens"), n("month_usd")),
        (4, 195, 39)
    );
    // The minute's and the day's counters started again as before.
    assert_eq!((n("requests"), n("tokens"), n("day_usd")), (2, 45, 19));
}

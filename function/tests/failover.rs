//! Same-model failover between OpenAI and Amazon Bedrock, end to end: OpenAI is a test
//! upstream, Bedrock the local AWS emulator's Bedrock Runtime (Converse and
//! ConverseStream in event-stream frames; `make test` runs this under
//! scripts/local-aws.sh, which sets AWS_ENDPOINT_URL). The emulator's model echoes the
//! last user message and takes `[[bedrock:...]]` directives (localaws/moto_ext/bedrock_runtime.py).

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use openai_proxy_function::app::Settings;
use openai_proxy_function::bedrock::Bedrock;
use openai_proxy_function::breaker::CircuitBreaker;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const MODEL: &str = "amazon.nova-lite-v1:0";

/// The proxy with `MODEL` mapped to both providers (`primary` first), OpenAI at
/// `openai`, Bedrock at the emulator.
async fn proxy(openai: &MockServer, primary: &str) -> Harness {
    proxy_at(&format!("{}/v1", openai.uri()), primary).await
}

async fn proxy_at(openai_base: &str, primary: &str) -> Harness {
    proxy_with(openai_base, primary, Settings::default()).await
}

async fn proxy_with(openai_base: &str, primary: &str, settings: Settings) -> Harness {
    let mut config = config_json(openai_base);
    config["model_mappings"][MODEL] =
        json!({"openai": "gpt-4o-mini", "bedrock": format!("us.{MODEL}"), "primary": primary});
    config["model_mappings"]["amazon.titan-embed-text-v2:0"] =
        json!({"bedrock": "amazon.titan-embed-text-v2:0"});
    let (app, logs) = bedrock_app(config, settings).await;
    Harness::over(app, logs)
}

/// The proxy's state for `config`, its Bedrock the local AWS's.
async fn bedrock_app(
    config: Value,
    settings: Settings,
) -> (
    openai_proxy_function::app::AppState,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let breaker = CircuitBreaker::new(5, Duration::from_secs(30));
    let (mut app, logs) = app_with_config(config, settings, fast_policy(), breaker);
    app.bedrock = Bedrock::with_client(aws_sdk_bedrockruntime::Client::new(&aws_at(&emulator()).await));
    (app, logs)
}

async fn openai_answering(template: ResponseTemplate, calls: impl Into<wiremock::Times>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(template)
        .expect(calls)
        .mount(&server)
        .await;
    server
}

/// OpenAI answering every chat, expecting `calls` of them.
async fn healthy_openai(calls: u64) -> MockServer {
    openai_answering(
        ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")),
        calls,
    )
    .await
}

/// The proxy with Bedrock asked first, OpenAI healthy behind it expecting `openai_calls`
/// (the server lives as long as the returned handle).
async fn bedrock_first(openai_calls: u64) -> (MockServer, Harness) {
    let openai = healthy_openai(openai_calls).await;
    let h = proxy(&openai, "bedrock").await;
    (openai, h)
}

/// The reply is a success that `by` served.
#[track_caller]
fn served(reply: &Reply, by: &str) {
    assert_eq!(
        (reply.status, provider(reply)),
        (StatusCode::OK, by),
        "{}",
        reply.text()
    );
}

fn chat(text: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]})
}

/// The `data:` of each event.
fn data(text: &str) -> Vec<&str> {
    sse_events(text)
        .into_iter()
        .filter_map(|e| e.strip_prefix("data: "))
        .collect()
}

fn provider(reply: &Reply) -> &str {
    reply
        .headers
        .get("x-proxy-provider")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
}

#[tokio::test]
async fn openai_failing_after_its_retries_is_answered_by_bedrock_as_the_same_model() {
    let openai = openai_answering(
        ResponseTemplate::new(500)
            .set_body_json(json!({"error": {"message": "boom", "type": "server_error"}})),
        3,
    )
    .await;
    let h = proxy(&openai, "openai").await;
    let reply = h.chat(chat("Hello from a failover")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(provider(&reply), "bedrock");
    let answer = reply.json();
    assert_eq!(answer["model"], MODEL);
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Echo: Hello from a failover"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let line = h.request_logs().pop().unwrap();
    assert_eq!(
        (line["provider"].as_str(), line["failed_over_from"].as_str()),
        (Some("bedrock"), Some("openai"))
    );
    assert_eq!(line["upstream_model"], format!("us.{MODEL}"));
}

#[tokio::test]
async fn openais_quota_refusal_of_the_proxys_key_fails_over_but_a_clients_error_does_not() {
    let quota = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}});
    let openai = openai_answering(ResponseTemplate::new(429).set_body_json(quota), 1..=3).await;
    let reply = proxy(&openai, "openai").await.chat(chat("quota")).await;
    served(&reply, "bedrock");

    let bad = json!({"error": {"message": "Invalid 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": null}});
    let openai = openai_answering(ResponseTemplate::new(400).set_body_json(bad), 1).await;
    let h = proxy(&openai, "openai").await;
    let reply = h.chat(chat("never to bedrock")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error()["param"], "temperature");
    assert!(h.request_logs().pop().unwrap().get("failed_over_from").is_none());
}

#[tokio::test]
async fn an_unreachable_openai_fails_over_and_a_streamed_answer_carries_tool_calls_and_usage() {
    // A port nothing listens on: OpenAI cannot be reached.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = proxy_at(&format!("http://127.0.0.1:{port}/v1"), "openai").await;
    let request = json!({"model": MODEL, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Weather in Paris and Lyon? [[bedrock:tool2]]"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]});
    let reply = h.chat(request).await;
    served(&reply, "bedrock");
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    let text = reply.text();
    let events = data(&text);
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["model"] == MODEL && c["object"] == "chat.completion.chunk")
    );
    let mut arguments = ["".to_owned(), "".to_owned()];
    for call in chunks.iter().flat_map(|c| {
        c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }) {
        let index = call["index"].as_u64().unwrap() as usize;
        arguments[index].push_str(call["function"]["arguments"].as_str().unwrap_or_default());
    }
    assert_eq!(
        arguments.map(|a| serde_json::from_str::<Value>(&a).unwrap()),
        [json!({"city": "Paris"}), json!({"city": "Paris"})]
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{text}");
    let line = h.request_logs().pop().unwrap();
    assert_eq!(line["total_tokens"], usage["total_tokens"]);
}

#[tokio::test]
async fn bedrock_as_primary_serves_natively_and_its_throttling_fails_over_to_openai() {
    let (_openai, h) = bedrock_first(1).await;
    let native = h.chat(chat("native")).await;
    served(&native, "bedrock");
    let throttled = h.chat(chat("busy [[bedrock:error=ThrottlingException]]")).await;
    served(&throttled, "openai");
    assert_eq!(throttled.json()["model"], MODEL);
}

/// OpenAI's API is the one the client speaks: what Bedrock cannot take as asked (its
/// ValidationException, or what the proxy cannot translate) goes to OpenAI when OpenAI is
/// next, and after OpenAI failed, OpenAI's failure is the answer, not a 400 for a request
/// OpenAI accepts. With Bedrock alone, Bedrock's refusal is the answer.
#[tokio::test]
async fn what_bedrock_cannot_take_goes_to_openai_and_never_hides_openais_outage() {
    let (_openai, h) = bedrock_first(2).await;
    let refused = h.chat(chat("bad [[bedrock:error=ValidationException]]")).await;
    served(&refused, "openai");
    let mut asks_two = chat("two please");
    asks_two["n"] = 2.into();
    served(&h.chat(asks_two.clone()).await, "openai");

    let down = openai_answering(
        ResponseTemplate::new(503)
            .set_body_json(json!({"error": {"message": "overloaded", "type": "server_error"}})),
        3,
    )
    .await;
    let reply = proxy(&down, "openai").await.chat(asks_two.clone()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    assert_eq!(reply.error()["message"], "overloaded", "OpenAI's own error");

    let mut config = config_json("http://127.0.0.1:9/v1");
    config["model_mappings"][MODEL] = json!({"bedrock": format!("us.{MODEL}")});
    let (app, logs) = bedrock_app(config, Settings::default()).await;
    let alone = Harness::over(app, logs).chat(asks_two).await;
    assert_eq!(
        (alone.status, alone.error()["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("n"))
    );
}

/// Bedrock's word that the model is not set up (not enabled, not granted, an id it
/// cannot invoke on demand) is the operator's, fails over, and leaves Bedrock's breaker
/// closed for the models that are set up.
#[tokio::test]
async fn a_model_bedrock_cannot_serve_fails_over_without_opening_bedrocks_breaker() {
    let (_openai, h) = bedrock_first(6).await;
    for error in [
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ValidationException:Invocation of model ID amazon.nova-lite-v1:0 with on-demand throughput isn't supported.",
    ] {
        for _ in 0..2 {
            let reply = h.chat(chat(&format!("x [[bedrock:error={error}]]"))).await;
            served(&reply, "openai");
        }
    }
    assert!(
        h.app.bedrock.breaker().try_acquire().is_ok(),
        "Bedrock's breaker opened"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_bytes_ends_with_an_error_and_is_not_served_twice() {
    let (_openai, h) = bedrock_first(0).await;
    let mut request = chat("break [[bedrock:stream-error=modelStreamErrorException]]");
    request["stream"] = true.into();
    let reply = h.chat(request).await;
    served(&reply, "bedrock");
    let text = reply.text();
    let events = data(&text);
    assert!(events.iter().any(|e| e.contains("Echo")), "{text}");
    assert!(
        events[events.len() - 2].contains("\"upstream_stream_error\""),
        "{text}"
    );
    assert_eq!(*events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn embeddings_of_a_model_mapped_to_titan_are_titans() {
    let openai = healthy_openai(0).await;
    let h = proxy(&openai, "openai").await;
    let reply = h
        .post(
            "/v1/embeddings",
            json!({"model": "amazon.titan-embed-text-v2:0", "input": ["one", "two"], "dimensions": 256}),
        )
        .await;
    served(&reply, "bedrock");
    let answer = reply.json();
    assert_eq!(answer["model"], "amazon.titan-embed-text-v2:0");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["data"][1]["embedding"].as_array().unwrap().len(), 256);
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

/// One chat (or, without `messages`, embeddings) `body` from the client key `name` with
/// `limits`, through the proxy with
/// `MODEL` mapped to OpenAI at `openai_base` then Bedrock (the configuration then as
/// `tweak` leaves it), counted in a fresh usage table: the reply, and the usage table's
/// client and name.
async fn limited_request(
    openai_base: &str,
    name: &str,
    limits: Value,
    tweak: impl FnOnce(&mut Value),
    body: Value,
) -> (Reply, aws_sdk_dynamodb::Client, String) {
    use openai_proxy_function::spend::Spend;
    use openai_proxy_function::spend::ledger::Ledger;
    use sha2::Digest;
    let db = dynamodb(&emulator()).await;
    let table = usage_table(&db).await;
    let mut config = config_json(openai_base);
    config["model_mappings"][MODEL] = json!({"openai": "gpt-4o-mini", "bedrock": format!("us.{MODEL}")});
    config["client_api_keys"] = json!([{"name": name, "sha256": hex(&sha2::Sha256::digest(CLIENT_KEY.as_bytes())),
                                        "models": [MODEL], "limits": limits}]);
    tweak(&mut config);
    let settings = Settings {
        auth_enabled: true,
        ..Settings::default()
    };
    let (mut app, logs) = bedrock_app(config, settings).await;
    app.spend = Spend::with_ledger(Ledger::new(db.clone(), &table));
    let h = Harness::over(app, logs);
    let bearer = format!("Bearer {CLIENT_KEY}");
    let reply = h
        .post_with(
            if body.get("messages").is_some() {
                "/v1/chat/completions"
            } else {
                "/v1/embeddings"
            },
            &[("authorization", &bearer)],
            body.to_string(),
        )
        .await;
    (reply, db, table)
}

/// Caps count what Bedrock serves, at Bedrock's price: the reservation is made at the
/// dearer of the two providers and settled at the one that answered.
#[tokio::test]
async fn a_limited_keys_spend_counts_bedrocks_usage_at_bedrocks_price() {
    let openai = openai_answering(ResponseTemplate::new(500), 3).await;
    let prices = json!({"gpt-4o-mini": {"input_per_million": 1, "output_per_million": 1},
                        MODEL: {"input_per_million": 2, "output_per_million": 2}});
    let body =
        json!({"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "counted"}]});
    let (reply, db, table) = limited_request(
        &format!("{}/v1", openai.uri()),
        "capped",
        json!({"usd_per_month": 5}),
        |config| config["prices"] = prices,
        body,
    )
    .await;
    served(&reply, "bedrock");
    let total = reply.json()["usage"]["total_tokens"].as_u64().unwrap();
    let (requests, tokens, spent) = counters(&db, &table, "capped").await;
    // $2 per million tokens, Bedrock's: two micro-dollars a token, Bedrock's count.
    assert_eq!((requests, tokens, spent), (1, total, 2 * total));
}

/// An OpenAI attempt that may have been billed (the connection broke after the request
/// was written) keeps its worst case counted; the failover reserves its own, but the
/// client made one request, so a key allowed one request a minute is still served.
#[tokio::test]
async fn a_failover_after_a_possibly_billed_attempt_counts_one_request() {
    let (openai, accepted) = raw_upstream("", Duration::ZERO).await;
    let limits = json!({"requests_per_minute": 1});
    let (reply, db, table) = limited_request(&openai, "one-a-minute", limits, |_| {}, chat("once")).await;
    served(&reply, "bedrock");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    let month = openai_proxy_function::spend::ledger::Windows::now().month;
    let item = numbers(&db, &table, &format!("one-a-minute#{month}")).await;
    assert_eq!(item["month_requests"], 1, "{item:?}");
}

/// A Bedrock that does not answer within the upstream timeout (2 s here) leaves OpenAI
/// the time to serve, and what it may have billed stays counted.
#[tokio::test]
async fn a_bedrock_that_does_not_answer_in_time_fails_over_and_its_worst_case_stays_counted() {
    let openai = healthy_openai(1).await;
    let body = json!({"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "[[bedrock:slow=4]]"}]});
    let (reply, db, table) = limited_request(
        &format!("{}/v1", openai.uri()),
        "patient",
        json!({"tokens_per_minute": 100000}),
        |config| config["model_mappings"][MODEL]["primary"] = "bedrock".into(),
        body,
    )
    .await;
    served(&reply, "openai");
    // The month's counts: the minute may have turned while Bedrock was waited for.
    let month = openai_proxy_function::spend::ledger::Windows::now().month;
    let item = numbers(&db, &table, &format!("patient#{month}")).await;
    // OpenAI's 7 tokens, and Bedrock's worst case: at least its 50 output tokens.
    assert_eq!(item["month_requests"], 1, "{item:?}");
    assert!(item["month_tokens"] >= 7 + 50, "{item:?}");
}

/// Titan embeds one text per call: when a later text fails, the earlier ones were billed,
/// so the request's worst case stays counted rather than being given back.
#[tokio::test]
async fn embeddings_that_fail_after_a_text_was_embedded_keep_their_cost_counted() {
    let openai = healthy_openai(0).await;
    let body = json!({"model": "amazon.titan-embed-text-v2:0", "input": ["embedded first", ""]});
    let (reply, db, table) = limited_request(
        &format!("{}/v1", openai.uri()),
        "embedder",
        json!({"tokens_per_minute": 100000}),
        |config| {
            config["model_mappings"]["amazon.titan-embed-text-v2:0"] =
                json!({"bedrock": "amazon.titan-embed-text-v2:0"});
            config["client_api_keys"][0]["models"] = json!(["amazon.titan-embed-text-v2:0"]);
        },
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let month = openai_proxy_function::spend::ledger::Windows::now().month;
    let item = numbers(&db, &table, &format!("embedder#{month}")).await;
    assert!(item["month_tokens"] > 0, "{item:?}");
}

/// The deployer's endpoint tests exercise each provider by asking for it first; a
/// provider the mapping does not name cannot be asked for.
#[tokio::test]
async fn a_request_may_ask_for_a_mapped_provider_first() {
    let openai = healthy_openai(1).await;
    let h = proxy(&openai, "openai").await;
    let asked = |provider: &'static str, model: &'static str| {
        let h = &h;
        async move {
            let body = json!({"model": model, "messages": [{"role": "user", "content": "which?"}]});
            h.post_with(
                "/v1/chat/completions",
                &[("x-proxy-provider", provider)],
                body.to_string(),
            )
            .await
        }
    };
    let bedrock = asked("bedrock", MODEL).await;
    served(&bedrock, "bedrock");
    // nova-pro maps to OpenAI alone: asking for Bedrock changes nothing.
    let only_openai = asked("bedrock", "amazon.nova-pro-v1:0").await;
    served(&only_openai, "openai");
}

/// A quiet Bedrock stream gets keep-alive comments, as OpenAI's streams do: the
/// emulator writes its frames 20 ms apart, longer than this proxy's keep-alive.
#[tokio::test]
async fn a_quiet_bedrock_stream_is_kept_alive_with_sse_comments() {
    let settings = Settings {
        stream_keep_alive: Duration::from_millis(5),
        ..Settings::default()
    };
    let openai = healthy_openai(0).await;
    let h = proxy_with(&format!("{}/v1", openai.uri()), "bedrock", settings).await;
    let mut request = chat("slowly");
    request["stream"] = true.into();
    let reply = h.chat(request).await;
    served(&reply, "bedrock");
    let text = reply.text();
    assert!(text.contains(": keep-alive\n\n"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

//! The proxy against hostile clients and a misbehaving upstream (issue 21): bodies built
//! to burn CPU, names built to mint metrics, headers built to break logs, and an upstream
//! that stalls. Each test pins what the proxy answers, never how fast: the figures are in
//! docs/benchmarks.md.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use openai_proxy_function::app::Settings;
use openai_proxy_function::server::Limits;

/// No upstream listens here: tests of what is refused before anything goes upstream.
const NO_UPSTREAM_URL: &str = "http://127.0.0.1:9/v1";

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
    refused.assert_error(StatusCode::NOT_FOUND, "model_not_found");
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

/// Heads promising a body that never comes.
const SERVER_ERROR_HEAD: &str =
    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
const CLIENT_ERROR_HEAD: &str =
    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
/// How long a silent upstream holds on: past `openai_api_timeout` (2 s in these tests).
const HELD: Duration = Duration::from_secs(10);
const NOVA: &str = "amazon.nova-lite-v1:0";

/// One chat `request` through a proxy whose OpenAI is `raw_upstream(answer, hold)`: the
/// proxy, its reply, and how many connections reached the upstream by then.
async fn chat_through_raw(
    answer: &'static str,
    hold: Duration,
    request: serde_json::Value,
) -> (Harness, Reply, usize) {
    let (base, accepted) = raw_upstream(answer, hold).await;
    let h = harness(&base, Settings::default());
    let reply = h.chat(request).await;
    (h, reply, accepted.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_connection_that_breaks_after_the_request_was_written_is_not_retried() {
    // Reads the request and hangs up without a word: OpenAI may be generating.
    let (h, reply, accepted) = chat_through_raw("", Duration::ZERO, chat_request(NOVA)).await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_error");
    assert_eq!(reply.headers["x-should-retry"], "false");
    assert_eq!(accepted, 1, "sent once, never again");
    assert_eq!(h.request_logs()[0]["attempts"], 1);
}

#[tokio::test]
async fn a_server_error_head_followed_by_silence_ends_within_the_attempts_time() {
    let (_, reply, accepted) = chat_through_raw(SERVER_ERROR_HEAD, HELD, chat_request(NOVA)).await;
    reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn a_client_error_head_followed_by_silence_ends_within_the_openai_timeout() {
    let (_, reply, _) = chat_through_raw(CLIENT_ERROR_HEAD, HELD, chat_request(NOVA)).await;
    reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
}

#[tokio::test]
async fn the_proxys_own_504_tells_the_sdks_not_to_retry() {
    // A head that never comes: the model may be generating, and billing.
    let (_, reply, accepted) = chat_through_raw("", HELD, chat_request(NOVA)).await;
    reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    assert_eq!(reply.headers["x-should-retry"], "false");
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn a_stream_whose_head_never_comes_is_not_sent_twice() {
    let (_, reply, accepted) = chat_through_raw("", HELD, streamed(NOVA)).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.text());
    assert_eq!(accepted, 1);
}

/// A proxy served with a short header timeout (so a test waits for it briefly), and a raw
/// connection to it that has sent `bytes`.
async fn connection_that_sent(bytes: &[u8]) -> (std::net::SocketAddr, tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let h = harness(NO_UPSTREAM_URL, Settings::default());
    let limits = Limits {
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let address = serve_proxy_with(h.proxy.clone(), limits).await;
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    (address, socket)
}

/// Reads until the server closes the connection; what it sent. The guard only stops a
/// broken server from hanging the test run.
async fn until_closed(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = socket.read_to_end(&mut got);
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_slowloris_head_is_cut_off_and_others_are_still_served() {
    let (address, mut slow) =
        connection_that_sent(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-a: ").await;
    // The head never ends: the server closes the connection.
    until_closed(&mut slow).await;
    let health = reqwest::get(format!("http://{address}/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (_, mut idle) = connection_that_sent(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    // One answer, then silence from the client: the server closes the connection.
    let got = until_closed(&mut idle).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    use tokio::io::AsyncWriteExt;
    let h = harness(NO_UPSTREAM_URL, Settings::default());
    let limits = Limits {
        max_connections: 1,
        header_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let address = serve_proxy_with(h.proxy.clone(), limits).await;
    let holder = tokio::net::TcpStream::connect(address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = tokio::net::TcpStream::connect(address).await.unwrap();
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::spawn(async move { until_closed(&mut waiting).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!answer.is_finished(), "served beyond the cap of one connection");
    drop(holder);
    let got = answer.await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

#[tokio::test]
async fn oversized_headers_and_too_many_headers_are_refused_with_431() {
    let h = harness(NO_UPSTREAM_URL, Settings::default());
    let address = serve_proxy_with(h.proxy.clone(), Limits::default()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{address}/health");
    let big = client
        .get(&url)
        .header("x-big", "a".repeat(100 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut many = client.get(&url);
    for i in 0..200 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let many = many.send().await.unwrap();
    assert_eq!(many.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn a_body_that_trickles_is_answered_408_in_openais_shape() {
    let settings = Settings {
        body_read_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let h = harness(NO_UPSTREAM_URL, settings);
    // The first bytes, then nothing more.
    let first =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"model\":"))]);
    let body = futures_util::StreamExt::chain(first, futures_util::stream::pending());
    let reply = h
        .post_with("/v1/chat/completions", &[], axum::body::Body::from_stream(body))
        .await;
    reply.assert_error(StatusCode::REQUEST_TIMEOUT, "request_timeout");
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_refused_with_415_and_never_sent_upstream() {
    let (_server, h) = proxy_answered_by(wiremock::ResponseTemplate::new(500), 0).await;
    // What a web page can send cross-origin without a CORS preflight.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let reply = h
            .send(
                axum::http::Request::post("/v1/chat/completions")
                    .header("content-type", content_type)
                    .body(axum::body::Body::from(
                        chat_request("amazon.nova-lite-v1:0").to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_eq!(reply.error()["code"], "unsupported_media_type");
    }
    let charset = h
        .send(
            axum::http::Request::post("/v1/embeddings")
                .header("content-type", "Application/JSON; charset=utf-8")
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        charset.status,
        StatusCode::BAD_REQUEST,
        "JSON with parameters passes"
    );
}

#[tokio::test]
async fn with_authentication_off_the_local_server_answers_only_requests_addressed_to_it() {
    let h = harness(NO_UPSTREAM_URL, Settings::default());
    h.app.local_listen.set("127.0.0.1:8080".parse().unwrap()).unwrap();
    // A page whose domain was rebound to 127.0.0.1 sends its own name.
    let rebound = h.get_with("/v1/models", "host", "evil.example:8080").await;
    rebound.assert_error(StatusCode::FORBIDDEN, "host_not_allowed");
    for host in ["127.0.0.1:8080", "localhost:8080"] {
        let own = h.get_with("/v1/models", "host", host).await;
        assert_eq!(own.status, StatusCode::OK, "{host}");
    }
    // Under Lambda (no listen address) API Gateway's host is the API's.
    let lambda = harness(NO_UPSTREAM_URL, Settings::default());
    let reply = lambda
        .get_with("/v1/models", "host", "abc.execute-api.us-east-1.amazonaws.com")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn random_model_names_mint_no_metric_dimensions_and_huge_ones_are_cut_in_the_log() {
    let h = harness(NO_UPSTREAM_URL, Settings::default());
    for i in 0..20 {
        let reply = h.chat(chat_request(&format!("random-model-{i}"))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    let huge = "m".repeat(1_000_000);
    assert_eq!(h.chat(chat_request(&huge)).await.status, StatusCode::NOT_FOUND);
    let found = h.get("/v1/models/another-random-name").await;
    assert_eq!(found.status, StatusCode::NOT_FOUND);
    let lines = h.log_lines();
    let models: std::collections::BTreeSet<String> = lines
        .iter()
        .filter(|l| l.get("_aws").is_some())
        .map(|l| l["Model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models.into_iter().collect::<Vec<_>>(), ["unknown"]);
    for line in h.logs.lock().unwrap().iter() {
        assert!(line.len() < 4096, "a log line of {} bytes", line.len());
    }
    // A mapped id stays its own dimension value.
    let (_server, h) = proxy_answered_by(
        wiremock::ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")),
        1,
    )
    .await;
    h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    let emf = h
        .log_lines()
        .into_iter()
        .find(|l| l.get("_aws").is_some())
        .unwrap();
    assert_eq!(emf["Model"], "amazon.nova-lite-v1:0");
}

#[tokio::test]
async fn openais_errors_reach_the_client_without_the_organization_and_project_ids() {
    let quota = wiremock::ResponseTemplate::new(429).set_body_json(serde_json::json!({
        "error": {"message": "Rate limit reached for gpt-4o-mini in organization org-AbCdEf0123456789xyz on requests per min (RPM): Limit 3. Project proj_Zz9876543210abc.",
                  "type": "requests", "param": null, "code": "rate_limit_exceeded"}}));
    let (_server, h) = proxy_answered_by(quota.insert_header("retry-after", "60"), 1).await;
    let reply = h.chat(chat_request("amazon.nova-lite-v1:0")).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let message = reply.error()["message"].as_str().unwrap().to_owned();
    assert!(
        !message.contains("AbCdEf0123456789xyz") && !message.contains("Zz9876543210abc"),
        "{message}"
    );
    assert!(
        message.contains("org-***") && message.contains("proj_***"),
        "{message}"
    );
}

#[tokio::test]
async fn a_request_without_a_key_is_refused_before_the_configuration_is_loaded() {
    // A configuration source that is never reachable: a file that does not exist.
    let store = openai_proxy_function::config::ConfigStore::new(
        openai_proxy_function::config::ConfigSource::File("/nonexistent/proxy-config.json".into()),
        "http://unused/v1",
        Duration::from_secs(300),
    );
    let settings = Settings {
        auth_enabled: true,
        ..Settings::default()
    };
    let logs = Arc::default();
    let app = openai_proxy_function::app::AppState::new(
        settings,
        store,
        openai_proxy_function::app::default_upstream(1).unwrap(),
        openai_proxy_function::observe::Sink::Memory(Arc::clone(&logs)),
        false,
    );
    let h = Harness::over(app, logs);
    let reply = h.get("/v1/models").await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    // With a key, the outage shows.
    let keyed = h
        .get_with("/v1/models", "authorization", "BEARER some-client-key")
        .await;
    assert_eq!(keyed.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn crlf_and_oversized_request_ids_never_reach_the_log() {
    let h = harness(NO_UPSTREAM_URL, Settings::default());
    // hyper refuses CR and LF in a header value before the proxy sees it; through the
    // Lambda runtime a value arrives decoded, so the proxy's own check must hold.
    for hostile in ["a\tb", "x\u{7f}y", &"r".repeat(200)] {
        let Ok(value) = axum::http::HeaderValue::from_str(hostile) else {
            continue;
        };
        let request = axum::http::Request::get("/health")
            .header("x-request-id", value.clone())
            .header("x-correlation-id", value)
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(h.send(request).await.status, StatusCode::OK);
    }
    for line in h.request_logs() {
        assert!(line.get("client_request_id").is_none(), "{line}");
        assert!(line.get("correlation_id").is_none(), "{line}");
    }
    // CRLF itself cannot even be sent: the header value is refused.
    assert!(axum::http::HeaderValue::from_str("id\r\nx-injected: 1").is_err());
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let h = harness(
        NO_UPSTREAM_URL,
        Settings {
            auth_enabled: true,
            ..Settings::default()
        },
    );
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = h
            .get_with("/v1/models", "authorization", &format!("{scheme} {CLIENT_KEY}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn deeply_nested_bodies_are_refused_or_forwarded_without_recursing_to_a_crash() {
    let (server, base) = upstream().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(completion("gpt-4o-mini")))
        .mount(&server)
        .await;
    let h = harness(&base, Settings::default());
    for depth in [100, 10_000, 1_000_000] {
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let body = format!(
            "{{\"model\":\"amazon.nova-lite-v1:0\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],\"x\":{nested}}}"
        );
        let reply = h.send_json("/v1/chat/completions", body).await;
        // The proxy never walks into a field it does not read (it keeps it as raw text,
        // scanned without recursion): forwarded for OpenAI to judge, or a 400 in OpenAI's
        // shape, and never a crash of the process serving other requests.
        match reply.status {
            StatusCode::OK => {}
            StatusCode::BAD_REQUEST => {
                reply.error();
            }
            other => panic!("{depth}: {other} {}", reply.text()),
        }
    }
    assert_eq!(h.get("/health").await.status, StatusCode::OK);
}

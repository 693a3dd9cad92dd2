//! Configuration from Secrets Manager, against the local AWS emulator (`make test` runs
//! this under scripts/local-aws.sh, which sets AWS_ENDPOINT_URL).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use openai_proxy_function::app::{AppState, Settings, default_upstream};
use openai_proxy_function::config::{ConfigSource, ConfigStore, FAILURE_RETRY};
use openai_proxy_function::observe::Sink;

async fn client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_at(endpoint).await)
}

/// A new secret holding `text`; its ARN.
async fn stored(sm: &aws_sdk_secretsmanager::Client, text: &str) -> String {
    let created = sm
        .create_secret()
        .name(format!("proxy-config-{}", uuid::Uuid::new_v4()))
        .secret_string(text)
        .send()
        .await
        .unwrap();
    created.arn().unwrap().to_owned()
}

fn secret(models: &[(&str, &str)]) -> String {
    let mut doc = config_json("http://127.0.0.1:9/v1");
    doc["model_mappings"] = models
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
        .collect();
    doc.to_string()
}

/// The proxy over the secret `secret_id` read through `client`, its configuration cached
/// for five minutes.
fn proxy_over(secret_id: String, client: aws_sdk_secretsmanager::Client) -> Harness {
    router(ConfigStore::new(
        ConfigSource::SecretsManager { secret_id, client },
        "http://unused/v1",
        Duration::from_secs(300),
    ))
}

fn router(store: ConfigStore) -> Harness {
    let logs = Default::default();
    let upstream = default_upstream(1).unwrap();
    let app = AppState::new(
        Settings::default(),
        store,
        upstream,
        Sink::Memory(Arc::clone(&logs)),
        false,
    );
    Harness::over(app, logs)
}

async fn model_ids(h: &Harness) -> Vec<String> {
    let reply = h.get("/v1/models").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.model_ids()
}

#[tokio::test]
async fn a_rotated_secret_is_served_once_the_ttl_has_passed() {
    let sm = client(&emulator()).await;
    let arn = stored(&sm, &secret(&[("model-a", "gpt-4o-mini")])).await;

    let source = ConfigSource::SecretsManager {
        secret_id: arn.clone(),
        client: sm.clone(),
    };
    // Long enough that the rotation below (one emulator call) happens within it even on
    // a loaded machine; the wait after it counts from the end of the first load.
    let ttl = Duration::from_secs(2);
    let h = router(ConfigStore::new(source, "http://unused/v1", ttl));
    assert_eq!(model_ids(&h).await, ["model-a"]);
    // The cached value expires at most `ttl` after this.
    let loaded = tokio::time::Instant::now();

    sm.put_secret_value()
        .secret_id(&arn)
        .secret_string(secret(&[("model-b", "gpt-4o")]))
        .send()
        .await
        .unwrap();
    assert_eq!(model_ids(&h).await, ["model-a"], "still cached within the TTL");
    tokio::time::sleep_until(loaded + ttl + Duration::from_millis(100)).await;
    assert_eq!(
        model_ids(&h).await,
        ["model-b"],
        "the rotated value after the TTL"
    );
}

#[tokio::test]
async fn an_invalid_secret_answers_503_without_revealing_it() {
    let sm = client(&emulator()).await;
    let arn = stored(&sm, r#"{"openai_api_key": 42, "x": "sk-leak"}"#).await;
    let h = proxy_over(arn, sm);
    let reply = h.get("/v1/models").await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "configuration_unavailable");
    assert!(!reply.text().contains("sk-leak"));
}

/// Forwards connections on `listener` to `target` (the emulator), as if it came back.
fn forward(listener: tokio::net::TcpListener, target: String) {
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn secrets_manager_down_answers_503_and_the_next_request_recovers() {
    let real = emulator();
    let sm = client(&real).await;
    let arn = stored(&sm, &secret(&[("model-c", "gpt-4o-mini")])).await;

    // A port where nothing listens yet: Secrets Manager is "down".
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let down = client(&format!("http://127.0.0.1:{port}")).await;
    let h = proxy_over(arn, down);

    let reply = h.get("/v1/models").await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "configuration_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(
        h.get("/health").await.status,
        StatusCode::OK,
        "health needs no configuration"
    );

    // It comes back: the failure is answered from memory for a moment (requests do not
    // each wait for an unreachable Secrets Manager), then Secrets Manager is asked again.
    let failed = tokio::time::Instant::now();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    forward(
        listener,
        real.trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
    );
    let remembered = h.get("/v1/models").await;
    assert_eq!(
        remembered.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        remembered.text()
    );
    tokio::time::sleep_until(failed + FAILURE_RETRY + Duration::from_millis(100)).await;
    assert_eq!(model_ids(&h).await, ["model-c"]);
}

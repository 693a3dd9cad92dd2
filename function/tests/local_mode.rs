//! Local HTTP mode over real sockets: a client that disconnects mid-stream stops the
//! upstream read; the built binary's worker threads each send over upstream connections
//! of their own, and it shuts down gracefully on SIGTERM (the in-flight request
//! completes, new connections are refused, the exit code is 0).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::routing::post;
use common::*;
use openai_proxy_function::app::Settings;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, mpsc};

/// Serves a test upstream on a free local port.
async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

#[tokio::test]
async fn a_client_disconnect_mid_stream_stops_the_upstream_read() {
    // 500 events 20 ms apart: ten seconds of answer, unless the proxy hangs up.
    let (base_url, report) = sse_upstream(500, Duration::from_millis(20), async {}).await;
    let h = harness(&base_url, Settings::default());
    let address = serve_proxy(h.proxy.clone()).await;

    let client = reqwest::Client::new();
    let mut request = chat_request("amazon.nova-lite-v1:0");
    request["stream"] = true.into();
    let mut response = client
        .post(format!("http://{address}/v1/chat/completions"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("a first event");
    let first = String::from_utf8_lossy(&first);
    assert!(
        first.contains("tok0") && first.contains("amazon.nova-lite-v1:0"),
        "{first}"
    );
    // The client goes away after the first event.
    drop(response);
    drop(client);

    let report = tokio::time::timeout(Duration::from_secs(30), report)
        .await
        .expect("the upstream finished or saw the hang-up")
        .unwrap();
    assert!(
        report.peer_closed && report.sent < 500,
        "the proxy kept reading the upstream after the client left: {report:?}"
    );
    // The request's log line was written when its body was dropped.
    let logs = h.request_logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(
        (logs[0]["status"].as_u64(), logs[0]["stream"].as_bool()),
        (Some(200), Some(true))
    );
}

/// An upstream that answers a chat completion only when released.
#[derive(Clone, Default)]
struct Held {
    arrived: Arc<Notify>,
    release: Arc<Notify>,
}

async fn held_completion(State(held): State<Held>) -> axum::Json<serde_json::Value> {
    held.arrived.notify_one();
    held.release.notified().await;
    axum::Json(completion("gpt-4o-mini"))
}

/// The next stderr line of the binary for which `wanted` holds (JSON log lines).
async fn wait_for_line(
    lines: &mut mpsc::UnboundedReceiver<String>,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.recv().await {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && wanted(&json)
            {
                return Some(json);
            }
        }
        None
    })
    .await;
    found.ok().flatten().expect("the expected log line on stderr")
}

/// The built binary in local mode with `config` and `workers` worker threads: the
/// process, its stderr lines, and the address it serves.
async fn start_binary(
    config: &std::path::Path,
    workers: &str,
) -> (tokio::process::Child, mpsc::UnboundedReceiver<String>, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_openai-proxy-function"))
        .env_clear()
        .env("PROXY_LISTEN_ADDR", "127.0.0.1:0")
        .env("PROXY_CONFIG_FILE", config)
        .env("PROXY_WORKER_THREADS", workers)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, mut lines) = mpsc::unbounded_channel();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            let _ = tx.send(line);
        }
    });
    let serving = wait_for_line(&mut lines, |l| l["fields"]["message"] == "serving plain HTTP").await;
    assert_eq!(serving["fields"]["workers"].to_string(), workers, "{serving}");
    let address = serving["fields"]["address"].as_str().unwrap().to_owned();
    (child, lines, address)
}

/// Writes `config` where the binary can read it; removed when dropped.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn new(config: &serde_json::Value) -> Self {
        let path = std::env::temp_dir().join(format!("proxy-config-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, config.to_string()).unwrap();
        Self(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn record_peer(
    State(peers): State<Arc<std::sync::Mutex<HashSet<SocketAddr>>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> axum::Json<serde_json::Value> {
    peers.lock().unwrap().insert(peer);
    axum::Json(completion("gpt-4o-mini"))
}

#[tokio::test]
async fn each_worker_thread_sends_over_upstream_connections_of_its_own() {
    let peers = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let upstream = axum::Router::new()
        .route("/v1/chat/completions", post(record_peer))
        .with_state(peers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let service = upstream.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service).await.unwrap()
    });
    let config = ConfigFile::new(&config_json(&format!("http://{upstream_address}/v1")));
    let (_child, _lines, address) = start_binary(&config.0, "2").await;

    // Two clients on a keep-alive connection each, taking turns: the connections go to
    // the two workers in turn. One pool shared by the workers would serve every request
    // over the one upstream connection that is idle at the time.
    let clients = [reqwest::Client::new(), reqwest::Client::new()];
    for _ in 0..3 {
        for client in &clients {
            let response = client
                .post(format!("http://{address}/v1/chat/completions"))
                .json(&chat_request("amazon.nova-lite-v1:0"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["model"], "amazon.nova-lite-v1:0");
        }
    }
    let peers = peers.lock().unwrap().clone();
    assert_eq!(peers.len(), 2, "upstream connections: {peers:?}");
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let held = Held::default();
    let upstream = axum::Router::new()
        .route("/v1/chat/completions", post(held_completion))
        .with_state(held.clone());
    let upstream_address = serve(upstream).await;

    let config = ConfigFile::new(&config_json(&format!("http://{upstream_address}/v1")));
    // Two workers: the held request is served by a worker thread of its own (the first
    // connection goes to worker 1), whose requests in flight must finish too.
    let (mut child, mut lines, address) = start_binary(&config.0, "2").await;

    let in_flight = tokio::spawn({
        let url = format!("http://{address}/v1/chat/completions");
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&chat_request("amazon.nova-lite-v1:0"))
                .send()
                .await?;
            let status = response.status();
            response.text().await.map(|body| (status, body))
        }
    });
    held.arrived.notified().await;

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for_line(&mut lines, |l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutdown signal received"))
    })
    .await;
    // Shutting down: new connections are refused (the listener closes right after the
    // signal is handled), while the held request is still in flight.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&address).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the listener still accepts connections after SIGTERM");
    assert!(
        !in_flight.is_finished(),
        "the in-flight request ended before the upstream answered"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    held.release.notify_one();
    let (status, body) = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["model"], "amazon.nova-lite-v1:0");

    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the process exits once the request is done")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}

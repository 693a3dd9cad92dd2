//! The upstream over HTTPS, as OpenAI is reached: the built binary in local mode talks
//! TLS to an upstream whose certificate a test CA signed. The CA is trusted through
//! `SSL_CERT_FILE`, which the platform verifier reads on Linux as it reads the system's
//! store; with another CA the same upstream is refused and nothing is relayed.
//! Needs `openssl` (certificates) and `python3` (the TLS upstream), as CI has.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A TLS upstream answering chat completions with `gpt-4o-mini`, and the address it
/// listens on. Python's own TLS, so the proxy's client meets a peer it does not share
/// code with.
const TLS_UPSTREAM: &str = r#"
import http.server, json, ssl, sys
cert, key = sys.argv[1], sys.argv[2]
body = json.dumps({"id": "chatcmpl-tls", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "over TLS"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs (Debian: apt-get install openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA (`<name>-ca.pem`) and a certificate for `localhost` it signed (`<name>.pem`,
/// `<name>.key`).
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    let (cert, key, csr) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// Runs the proxy binary in local mode with `SSL_CERT_FILE=trusted` in front of
/// `base_url`, sends one chat completion, and returns the status and body.
async fn one_request(base_url: &str, trusted: &Path, dir: &Path) -> (u16, serde_json::Value) {
    let config = dir.join(format!("config-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&config, config_json(base_url).to_string()).unwrap();
    let mut proxy = tokio::process::Command::new(env!("CARGO_BIN_EXE_openai-proxy-function"))
        .env_clear()
        .env("PROXY_LISTEN_ADDR", "127.0.0.1:0")
        .env("PROXY_CONFIG_FILE", &config)
        .env("SSL_CERT_FILE", trusted)
        .kill_on_drop(true)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(proxy.stderr.take().unwrap()).lines();
    let address = loop {
        let line = stderr
            .next_line()
            .await
            .unwrap()
            .expect("the proxy says where it serves");
        let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(address) = line["fields"]["address"].as_str() {
            break address.to_owned();
        }
    };
    let response = reqwest::Client::new()
        .post(format!("http://{address}/v1/chat/completions"))
        .json(&chat_request("amazon.nova-lite-v1:0"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_upstream_is_reached_over_tls_and_an_untrusted_certificate_is_refused() {
    let dir = std::env::temp_dir().join(format!("proxy-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir, "upstream");
    let (other_ca, _, _) = certificates(&dir, "other");

    let mut upstream = tokio::process::Command::new("python3")
        .args(["-c", TLS_UPSTREAM])
        .arg(&cert)
        .arg(&key)
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut port = String::new();
    BufReader::new(upstream.stdout.take().unwrap())
        .read_line(&mut port)
        .await
        .unwrap();
    let base_url = format!("https://localhost:{}/v1", port.trim());

    let (status, body) = one_request(&base_url, &ca, &dir).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["model"].as_str(),
            body["choices"][0]["message"]["content"].as_str()
        ),
        (Some("amazon.nova-lite-v1:0"), Some("over TLS"))
    );

    let (status, body) = one_request(&base_url, &other_ca, &dir).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unreachable", "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Chooses how the proxy is served: under the Lambda runtime when
//! `AWS_LAMBDA_RUNTIME_API` is set, as a plain HTTP server otherwise.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::service::Proxy;

pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Stream,
    Buffered,
}

impl ResponseMode {
    pub fn from_env_value(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::Stream),
            Some(v) if v.eq_ignore_ascii_case("stream") => Ok(Self::Stream),
            Some(v) if v.eq_ignore_ascii_case("buffered") => Ok(Self::Buffered),
            Some(other) => Err(format!(
                "RESPONSE_MODE={other:?} is not valid: use `stream` (API Gateway ResponseTransferMode STREAM) or `buffered`"
            )),
        }
    }
}

pub enum Runtime {
    Lambda(ResponseMode),
    Local(SocketAddr),
}

impl Runtime {
    pub fn from_env() -> Result<Self, String> {
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            let mode = std::env::var("RESPONSE_MODE").ok();
            return ResponseMode::from_env_value(mode.as_deref()).map(Self::Lambda);
        }
        let raw = std::env::var("PROXY_LISTEN_ADDR").unwrap_or_else(|_| DEFAULT_LISTEN_ADDR.to_owned());
        raw.parse().map(Self::Local).map_err(|_| {
            format!(
                "PROXY_LISTEN_ADDR={raw:?} is not a socket address: use host:port, e.g. {DEFAULT_LISTEN_ADDR}"
            )
        })
    }

    pub async fn serve(self, proxy: Proxy) -> Result<(), lambda_http::Error> {
        match self {
            Self::Lambda(ResponseMode::Stream) => {
                let endpoint = runtime_api_endpoint()?;
                crate::stream_runtime::run(proxy, endpoint).await
            }
            Self::Lambda(ResponseMode::Buffered) => lambda_http::run(proxy).await,
            Self::Local(addr) => {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    format!("cannot listen on {addr}: {e}; set PROXY_LISTEN_ADDR to a free host:port")
                })?;
                tracing::info!(address = %listener.local_addr()?, "serving plain HTTP");
                serve_http(listener, proxy, shutdown_signal()).await;
                Ok(())
            }
        }
    }
}

/// The Runtime API's address, `host:port` in `AWS_LAMBDA_RUNTIME_API`.
fn runtime_api_endpoint() -> Result<lambda_http::http::Uri, lambda_http::Error> {
    let raw = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    format!("http://{raw}").parse().map_err(|_| {
        format!("AWS_LAMBDA_RUNTIME_API={raw:?} is not host:port: the Lambda service sets it; unset it to run locally")
            .into()
    })
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes; then accepts no more
/// connections and returns once the requests in flight are answered.
pub async fn serve_http(listener: TcpListener, proxy: Proxy, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = accept(&listener) => match accepted {
                Ok(tcp) => tcp,
                Err(e) => {
                    pause_after(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let proxy = proxy.clone();
        let service = hyper::service::service_fn(move |request| {
            let answer = proxy.handle(request);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let connection =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection, sending each write at once. With Nagle's algorithm on, a
/// streamed event written after the response head waits for the client to acknowledge
/// the head, which a delayed ACK holds back by up to 40 ms.
pub async fn accept(listener: &TcpListener) -> std::io::Result<TcpStream> {
    let (tcp, _) = listener.accept().await?;
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
    }
    Ok(tcp)
}

/// A connection that failed while being accepted is the client's problem: go on. Any
/// other error (out of file descriptors) would repeat at once: wait a second first.
async fn pause_after(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::error!(error = %error, "cannot accept connections; retrying in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received: no new connections, finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, _client) = tokio::join!(accept(&listener), client);
        assert!(accepted.unwrap().nodelay().unwrap());
    }

    #[test]
    fn response_mode_defaults_to_stream_and_rejects_typos_by_name() {
        assert_eq!(ResponseMode::from_env_value(None), Ok(ResponseMode::Stream));
        assert_eq!(
            ResponseMode::from_env_value(Some("BUFFERED")),
            Ok(ResponseMode::Buffered)
        );
        let err = ResponseMode::from_env_value(Some("buffer")).unwrap_err();
        assert!(err.contains("RESPONSE_MODE") && err.contains("buffered"), "{err}");
    }
}

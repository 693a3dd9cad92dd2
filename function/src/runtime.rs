//! Chooses how the router is served: under the Lambda runtime when
//! `AWS_LAMBDA_RUNTIME_API` is set, as a plain HTTP server otherwise.

use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt;

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

    pub async fn serve(self, router: Router) -> Result<(), lambda_http::Error> {
        match self {
            Self::Lambda(ResponseMode::Stream) => {
                let endpoint = runtime_api_endpoint()?;
                crate::stream_runtime::run(router, endpoint).await
            }
            Self::Lambda(ResponseMode::Buffered) => lambda_http::run(router).await,
            Self::Local(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    format!("cannot listen on {addr}: {e}; set PROXY_LISTEN_ADDR to a free host:port")
                })?;
                tracing::info!(address = %listener.local_addr()?, "serving plain HTTP");
                axum::serve(without_nagle(listener), router)
                    .with_graceful_shutdown(shutdown_signal())
                    .await?;
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

/// Accepted connections send each write at once. With Nagle's algorithm on, a streamed
/// event written after the response head waits for the client to acknowledge the head,
/// which a delayed ACK holds back by up to 40 ms.
pub fn without_nagle(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
    })
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
        use axum::serve::Listener;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(address);
        let mut listener = without_nagle(listener);
        let ((accepted, _), _client) = tokio::join!(listener.accept(), client);
        assert!(accepted.nodelay().unwrap());
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

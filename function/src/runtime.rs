//! Chooses how the proxy is served: under the Lambda runtime when
//! `AWS_LAMBDA_RUNTIME_API` is set, as a plain HTTP server otherwise.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::app::App;
use crate::env::Environment;
use crate::server::{Limits, serve_http};
use crate::service::Proxy;
use crate::worker;

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
    Lambda {
        mode: ResponseMode,
        /// The Runtime API's address (`AWS_LAMBDA_RUNTIME_API`).
        endpoint: lambda_http::http::Uri,
        /// The function's identity for the invocation context.
        function: lambda_http::lambda_runtime::Config,
    },
    Local {
        addr: SocketAddr,
        /// Worker threads (`worker`): `PROXY_WORKER_THREADS`, by default one per core.
        workers: usize,
    },
}

impl Runtime {
    /// Parses the environment; every invalid variable is named, with an example.
    pub fn from_env(env: &Environment) -> Result<Self, Vec<String>> {
        if let Some(api) = env.get("AWS_LAMBDA_RUNTIME_API") {
            let mode = ResponseMode::from_env_value(env.get("RESPONSE_MODE"));
            let endpoint = runtime_api_endpoint(api);
            return match (mode, endpoint) {
                (Ok(mode), Ok(endpoint)) => Ok(Self::Lambda {
                    mode,
                    endpoint,
                    function: env.lambda_config(),
                }),
                (mode, endpoint) => Err(mode.err().into_iter().chain(endpoint.err()).collect()),
            };
        }
        let raw = env.get("PROXY_LISTEN_ADDR").unwrap_or(DEFAULT_LISTEN_ADDR);
        let addr = raw.trim().parse().map_err(|_| {
            format!(
                "PROXY_LISTEN_ADDR={raw:?} is not a socket address: use host:port, e.g. {DEFAULT_LISTEN_ADDR}"
            )
        });
        let workers = workers_from_env_value(env.get("PROXY_WORKER_THREADS"));
        match (addr, workers) {
            (Ok(addr), Ok(workers)) => Ok(Self::Local { addr, workers }),
            (addr, workers) => Err(addr.err().into_iter().chain(workers.err()).collect()),
        }
    }

    /// How many upstream connection pools the proxy needs: one per worker.
    pub fn workers(&self) -> usize {
        match self {
            Self::Lambda { .. } => 1,
            Self::Local { workers, .. } => *workers,
        }
    }

    pub async fn serve(self, app: App) -> Result<(), lambda_http::Error> {
        match self {
            Self::Lambda {
                mode: ResponseMode::Stream,
                endpoint,
                function,
            } => crate::stream_runtime::run(Proxy::new(app), endpoint, function).await,
            Self::Lambda {
                mode: ResponseMode::Buffered,
                ..
            } => lambda_http::run(Proxy::new(app)).await,
            Self::Local { addr, workers } => {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    format!("cannot listen on {addr}: {e}; set PROXY_LISTEN_ADDR to a free host:port")
                })?;
                let address = listener.local_addr()?;
                let _ = app.local_listen.set(address);
                tracing::info!(address = %address, workers, "serving plain HTTP");
                serve_http(
                    listener,
                    Proxy::new(app),
                    workers,
                    Limits::default(),
                    shutdown_signal(),
                )
                .await;
                Ok(())
            }
        }
    }
}

fn workers_from_env_value(value: Option<&str>) -> Result<usize, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(worker::default_count()),
        Some(v) => v.parse().ok().filter(|n| (1..=1024).contains(n)).ok_or_else(|| {
            format!(
                "PROXY_WORKER_THREADS={v:?} is not a number of threads from 1 to 1024: \
                 e.g. PROXY_WORKER_THREADS=2, or leave it unset for one per core"
            )
        }),
    }
}

/// The Runtime API's address, `host:port` in `AWS_LAMBDA_RUNTIME_API`.
fn runtime_api_endpoint(raw: &str) -> Result<lambda_http::http::Uri, String> {
    format!("http://{}", raw.trim()).parse().map_err(|_| {
        format!("AWS_LAMBDA_RUNTIME_API={raw:?} is not host:port: the Lambda service sets it; unset it to run locally")
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

    #[test]
    fn worker_threads_default_to_one_per_core_and_refuse_what_is_not_a_count() {
        assert_eq!(workers_from_env_value(None), Ok(worker::default_count()));
        assert_eq!(workers_from_env_value(Some(" 3 ")), Ok(3));
        for wrong in ["0", "-1", "two", "4096"] {
            let err = workers_from_env_value(Some(wrong)).unwrap_err();
            assert!(
                err.contains("PROXY_WORKER_THREADS") && err.contains("e.g."),
                "{err}"
            );
        }
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

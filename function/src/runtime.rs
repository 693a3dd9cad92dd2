//! Chooses how the proxy is served: under the Lambda runtime when
//! `AWS_LAMBDA_RUNTIME_API` is set, as a plain HTTP server otherwise.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use tokio::sync::{mpsc, oneshot};

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
    Lambda(ResponseMode),
    Local {
        addr: SocketAddr,
        /// Worker threads (`worker`): `PROXY_WORKER_THREADS`, by default one per core.
        workers: usize,
    },
}

impl Runtime {
    /// Reads the environment; every invalid variable is named, with an example.
    pub fn from_env() -> Result<Self, Vec<String>> {
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            let mode = std::env::var("RESPONSE_MODE").ok();
            return ResponseMode::from_env_value(mode.as_deref())
                .map(Self::Lambda)
                .map_err(|e| vec![e]);
        }
        let raw = std::env::var("PROXY_LISTEN_ADDR").unwrap_or_else(|_| DEFAULT_LISTEN_ADDR.to_owned());
        let addr = raw.parse().map_err(|_| {
            format!(
                "PROXY_LISTEN_ADDR={raw:?} is not a socket address: use host:port, e.g. {DEFAULT_LISTEN_ADDR}"
            )
        });
        let workers = workers_from_env_value(std::env::var("PROXY_WORKER_THREADS").ok().as_deref());
        match (addr, workers) {
            (Ok(addr), Ok(workers)) => Ok(Self::Local { addr, workers }),
            (addr, workers) => Err(addr.err().into_iter().chain(workers.err()).collect()),
        }
    }

    /// How many upstream connection pools the proxy needs: one per worker.
    pub fn workers(&self) -> usize {
        match self {
            Self::Lambda(_) => 1,
            Self::Local { workers, .. } => *workers,
        }
    }

    pub async fn serve(self, proxy: Proxy) -> Result<(), lambda_http::Error> {
        match self {
            Self::Lambda(ResponseMode::Stream) => {
                let endpoint = runtime_api_endpoint()?;
                crate::stream_runtime::run(proxy, endpoint).await
            }
            Self::Lambda(ResponseMode::Buffered) => lambda_http::run(proxy).await,
            Self::Local { addr, workers } => {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    format!("cannot listen on {addr}: {e}; set PROXY_LISTEN_ADDR to a free host:port")
                })?;
                tracing::info!(address = %listener.local_addr()?, workers, "serving plain HTTP");
                serve_http(listener, proxy, workers, shutdown_signal()).await;
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
fn runtime_api_endpoint() -> Result<lambda_http::http::Uri, lambda_http::Error> {
    let raw = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    format!("http://{raw}").parse().map_err(|_| {
        format!("AWS_LAMBDA_RUNTIME_API={raw:?} is not host:port: the Lambda service sets it; unset it to run locally")
            .into()
    })
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes; then accepts no more
/// connections and returns once the requests in flight are answered.
///
/// Connections are handed out in turn to `workers` workers (`worker`): this thread is
/// worker 0, the others run on threads of their own; a connection stays with its worker.
pub async fn serve_http(
    listener: TcpListener,
    proxy: Proxy,
    workers: usize,
    shutdown: impl Future<Output = ()>,
) {
    let others: Vec<Worker> = (1..workers)
        .filter_map(|index| Worker::start(index, proxy.clone()))
        .collect();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut turn = 0;
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
        turn = (turn + 1) % (others.len() + 1);
        let tcp = match turn.checked_sub(1).and_then(|other| others.get(other)) {
            Some(other) => match other.hand_over(tcp) {
                Some(returned) => returned,
                None => continue,
            },
            None => tcp,
        };
        serve_connection(&graceful, &proxy, tcp);
    }
    drop(listener);
    let finished: Vec<_> = others.into_iter().map(Worker::stop).collect();
    graceful.shutdown().await;
    for worker in finished {
        let _ = worker.await;
    }
}

fn serve_connection(graceful: &GracefulShutdown, proxy: &Proxy, tcp: TcpStream) {
    let proxy = proxy.clone();
    let service = hyper::service::service_fn(move |request| {
        let answer = proxy.handle(request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
    });
}

/// A worker thread: it serves the connections sent to it until the sender is dropped,
/// then finishes their requests in flight.
struct Worker {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    finished: oneshot::Receiver<()>,
}

impl Worker {
    /// `None` when the thread or its runtime cannot be created: the other workers serve.
    fn start(index: usize, proxy: Proxy) -> Option<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .inspect_err(|e| tracing::error!(error = %e, "cannot start a worker's runtime; serving with fewer workers"))
            .ok()?;
        let (connections, mut incoming) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("proxy-worker-{index}"))
            .spawn(move || {
                worker::enter(index);
                runtime.block_on(async {
                    let graceful = GracefulShutdown::new();
                    while let Some(tcp) = incoming.recv().await {
                        if let Ok(tcp) = TcpStream::from_std(tcp) {
                            serve_connection(&graceful, &proxy, tcp);
                        }
                    }
                    graceful.shutdown().await;
                });
                let _ = done.send(());
            })
            .inspect_err(
                |e| tracing::error!(error = %e, "cannot start a worker thread; serving with fewer workers"),
            )
            .ok()?;
        Some(Self {
            connections,
            finished,
        })
    }

    /// Hands `tcp` over to this worker; gives it back if the worker is gone (it cannot
    /// be, short of a bug), so that the caller serves it.
    fn hand_over(&self, tcp: TcpStream) -> Option<TcpStream> {
        let tcp = tcp.into_std().ok()?;
        let returned = self.connections.send(tcp).err()?;
        TcpStream::from_std(returned.0).ok()
    }

    /// Sends no more connections; the receiver completes when the worker is done.
    fn stop(self) -> oneshot::Receiver<()> {
        self.finished
    }
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

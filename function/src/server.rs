//! The local HTTP/1.1 server: hyper's own, one worker thread per core (`worker`), with
//! hyper's limits against clients that hold sockets: a timer for the header read timeout
//! (which also closes idle keep-alive connections: hyper starts it whenever it waits
//! for a request head), caps on header size and count, and a cap on open connections
//! (a semaphore permit per connection; at the cap, new connections wait in the
//! listen backlog). The body read timeout is the service's (`Settings`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::service::Proxy;
use crate::worker;

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request's head, from its first byte or from the end of the
    /// previous answer on a keep-alive connection (so also the idle timeout).
    pub header_read_timeout: Duration,
    /// Open connections at most, all workers together.
    pub max_connections: usize,
    /// Request header lines at most (more: 431).
    pub max_headers: usize,
    /// Bytes of request line and headers at most (more: 431).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(20),
            max_connections: 4096,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
        }
    }
}

/// A connection and its place under [`Limits::max_connections`], freed when it ends.
type Admitted = (TcpStream, OwnedSemaphorePermit);

/// Serves HTTP/1.1 on `listener` until `shutdown` completes; then accepts no more
/// connections and returns once the requests in flight are answered.
///
/// Connections are handed out in turn to `workers` workers (`worker`): this thread is
/// worker 0, the others run on threads of their own; a connection stays with its worker.
pub async fn serve_http(
    listener: TcpListener,
    proxy: Proxy,
    workers: usize,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let others: Vec<Worker> = (1..workers)
        .filter_map(|index| Worker::start(index, proxy.clone(), limits))
        .collect();
    let graceful = GracefulShutdown::new();
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut turn = 0;
    loop {
        let admitted = tokio::select! {
            accepted = admit(&listener, &places) => match accepted {
                Ok(admitted) => admitted,
                Err(e) => {
                    pause_after(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        turn = (turn + 1) % (others.len() + 1);
        let admitted = match turn.checked_sub(1).and_then(|other| others.get(other)) {
            Some(other) => match other.hand_over(admitted) {
                Some(returned) => returned,
                None => continue,
            },
            None => admitted,
        };
        serve_connection(&graceful, &proxy, limits, admitted);
    }
    drop(listener);
    let finished: Vec<_> = others.into_iter().map(Worker::stop).collect();
    graceful.shutdown().await;
    for worker in finished {
        let _ = worker.await;
    }
}

/// A place under the connection cap (waiting while the cap is reached), then the next
/// connection.
async fn admit(listener: &TcpListener, places: &Arc<Semaphore>) -> std::io::Result<Admitted> {
    // The semaphore is never closed.
    let place = places
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("connection cap closed"))?;
    Ok((accept(listener).await?, place))
}

fn serve_connection(graceful: &GracefulShutdown, proxy: &Proxy, limits: Limits, (tcp, place): Admitted) {
    let proxy = proxy.clone();
    let service = hyper::service::service_fn(move |request| {
        let answer = proxy.handle(request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(tcp), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
        drop(place);
    });
}

/// A worker thread: it serves the connections sent to it until the sender is dropped,
/// then finishes their requests in flight.
struct Worker {
    connections: mpsc::UnboundedSender<(std::net::TcpStream, OwnedSemaphorePermit)>,
    finished: oneshot::Receiver<()>,
}

impl Worker {
    /// `None` when the thread or its runtime cannot be created: the other workers serve.
    fn start(index: usize, proxy: Proxy, limits: Limits) -> Option<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .inspect_err(|e| tracing::error!(error = %e, "cannot start a worker's runtime; serving with fewer workers"))
            .ok()?;
        let (connections, mut incoming) =
            mpsc::unbounded_channel::<(std::net::TcpStream, OwnedSemaphorePermit)>();
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("proxy-worker-{index}"))
            .spawn(move || {
                worker::enter(index);
                runtime.block_on(async {
                    let graceful = GracefulShutdown::new();
                    while let Some((tcp, place)) = incoming.recv().await {
                        if let Ok(tcp) = TcpStream::from_std(tcp) {
                            serve_connection(&graceful, &proxy, limits, (tcp, place));
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

    /// Hands `tcp` over to this worker (`None`), or gives it back if the worker is gone
    /// (it cannot be, short of a bug) for the caller to serve.
    fn hand_over(&self, (tcp, place): Admitted) -> Option<Admitted> {
        let tcp = tcp.into_std().ok()?;
        let (tcp, place) = self.connections.send((tcp, place)).err()?.0;
        Some((TcpStream::from_std(tcp).ok()?, place))
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
}

//! The upstream OpenAI API: one pooled client per process, retries with exponential
//! backoff and jitter (honouring `retry-after`/`retry-after-ms`), and a circuit breaker.
//!
//! Retries never bill twice. Only what provably never reached OpenAI is sent again: a
//! connection that could not be set up (nothing was written), and 408/429/5xx answers
//! (OpenAI said it did not do the work), all within one deadline below the Lambda's. A
//! request whose connection broke after it was written, or that timed out waiting for
//! the answer, is not: the model may be generating, and billing. A slow answer says
//! nothing about OpenAI's health, so timeouts never count against the circuit breaker;
//! connect errors, broken connections and 5xx do.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::breaker::{CircuitBreaker, Permit};
use crate::config::ProxyConfig;
use crate::worker;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// A `retry-after` longer than this is not waited for: the 429 goes to the client.
    pub retry_after_cap: Duration,
    /// Longest connection setup, TCP and TLS together. A setup that takes longer is a
    /// connect error: nothing was sent, so it is retried.
    pub connect_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(4),
            retry_after_cap: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// An upstream answer: its head, and its body as it arrives.
pub type Response = http::Response<hyper::body::Incoming>;

/// HTTP/1.1 over pooled keep-alive connections, TLS by rustls with the platform's
/// certificate verifier. hyper's client itself, not a convenience layer over it: the
/// proxy adds its own retries, timeouts and headers, and each layer it does not need
/// costs time on every request (docs/benchmarks.md).
type HttpClient = Client<ConnectTimeout<HttpsConnector<HttpConnector>>, Full<Bytes>>;

const USER_AGENT_VALUE: &str = concat!("openai-lambda-proxy/", env!("CARGO_PKG_VERSION"));

pub struct Upstream {
    /// One pool per worker thread (`worker`): a connection serves requests of the thread
    /// whose runtime drives it.
    http: Box<[HttpClient]>,
    breaker: CircuitBreaker,
    policy: RetryPolicy,
    /// `{base}/{endpoint}` parsed, by base and endpoint: parsing a URL (its host through
    /// IDNA) costs more than building the rest of the request.
    urls: Mutex<Vec<(String, String, Uri)>>,
}

/// What the upstream said: a response to relay (2xx, or a 4xx to pass through).
pub struct Answer {
    pub response: Response,
    pub attempts: u32,
    pub elapsed: Duration,
}

/// Why no answer can be relayed; each maps to one OpenAI-shaped error.
#[derive(Debug)]
pub enum Failure {
    /// The breaker is open: fail fast.
    CircuitOpen {
        retry_after: Duration,
    },
    /// Still failing after the retries: 408, 429 or 5xx from upstream.
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        headers: HeaderMap,
        body: Bytes,
        attempts: u32,
    },
    Timeout {
        attempts: u32,
    },
    /// No connection could be set up: nothing was sent.
    Connect {
        attempts: u32,
    },
    /// The connection broke after the request was (or may have been) written, before an
    /// answer's head: OpenAI may have it, so it is not sent again.
    Broken {
        attempts: u32,
    },
}

impl Failure {
    pub fn attempts(&self) -> u32 {
        match self {
            Self::CircuitOpen { .. } => 0,
            Self::Status { attempts, .. }
            | Self::Timeout { attempts }
            | Self::Connect { attempts }
            | Self::Broken { attempts } => *attempts,
        }
    }
}

enum Attempt {
    Done(Response),
    Retryable {
        failure: Failure,
        retry_after: Option<Duration>,
    },
    /// Not retried: the request may have reached OpenAI.
    Final(Failure),
}

impl Upstream {
    /// `pools`: one connection pool per worker thread that sends requests (`worker`).
    pub fn new(policy: RetryPolicy, breaker: CircuitBreaker, pools: usize) -> Result<Self, String> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(30)));
        let https = HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| format!("cannot load the platform's TLS certificate verifier: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let connector = ConnectTimeout {
            inner: https,
            limit: policy.connect_timeout,
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new());
        let http = (0..pools.max(1))
            .map(|_| builder.build(connector.clone()))
            .collect();
        Ok(Self {
            http,
            breaker,
            policy,
            urls: Mutex::new(Vec::new()),
        })
    }

    /// `{base}/{endpoint}`, parsed once. `base` is a checked http(s) URL (the
    /// configuration's `openai_base_url`); a rotated configuration with another base
    /// starts the cache afresh.
    fn url(&self, base: &str, endpoint: &str) -> Option<Uri> {
        let mut urls = self.urls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, url)) = urls.iter().find(|(b, e, _)| b == base && e == endpoint) {
            return Some(url.clone());
        }
        let url: Uri = format!("{base}/{endpoint}").parse().ok()?;
        if urls.iter().any(|(b, _, _)| b != base) {
            urls.clear();
        }
        urls.push((base.to_owned(), endpoint.to_owned(), url.clone()));
        Some(url)
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// POSTs `body` to `{base}/{endpoint}` (`chat/completions`, `embeddings`,
    /// `responses`). Each attempt waits at most the configured OpenAI timeout for the
    /// response head (and a retryable error's body); none starts after `deadline`.
    pub async fn post(
        &self,
        config: &ProxyConfig,
        endpoint: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let url = self.url(&config.openai_base_url, endpoint);
        self.send(config, Method::POST, url, body, deadline).await
    }

    /// Sends `method` to `{base}/{path_and_query}` (a stored response's path, parsed on
    /// every call: ids are not worth caching), with the retries and timeouts of [`post`].
    ///
    /// [`post`]: Self::post
    pub async fn call(
        &self,
        config: &ProxyConfig,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let url = format!("{}/{path_and_query}", config.openai_base_url)
            .parse()
            .ok();
        self.send(config, method, url, body, deadline).await
    }

    async fn send(
        &self,
        config: &ProxyConfig,
        method: Method,
        url: Option<Uri>,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|retry_after| Failure::CircuitOpen { retry_after })?;
        // The configuration refuses a base URL that does not parse.
        let (Some(url), Ok(mut authorization)) = (
            url,
            HeaderValue::try_from(format!("Bearer {}", config.openai_api_key.expose())),
        ) else {
            return Err(settle(permit, Failure::Connect { attempts: 0 }));
        };
        authorization.set_sensitive(true);
        let started = Instant::now();
        // Built at the first retry: most requests need none.
        let mut delays = None;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let per_attempt = config.timeouts.openai_api.min(remaining);
            let mut request = Request::builder()
                .method(method.clone())
                .uri(url.clone())
                .body(Full::new(body.clone()));
            if let Ok(request) = &mut request {
                let headers = request.headers_mut();
                headers.insert(AUTHORIZATION, authorization.clone());
                if method == Method::POST {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            }
            let Ok(request) = request else {
                return Err(settle(permit, Failure::Connect { attempts }));
            };
            let request = self.http[worker::index() % self.http.len()].request(request);
            let started_attempt = Instant::now();
            let outcome = match tokio::time::timeout(per_attempt, request).await {
                Err(_) => Attempt::Final(Failure::Timeout { attempts }),
                // Never connected (the connect timeout included): nothing was sent.
                Ok(Err(e)) if e.is_connect() => Attempt::Retryable {
                    failure: Failure::Connect { attempts },
                    retry_after: None,
                },
                // A connection that broke once the request was on its way.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the upstream connection broke before an answer");
                    Attempt::Final(Failure::Broken { attempts })
                }
                // The error body is read within what is left of the attempt's time.
                Ok(Ok(response)) => {
                    let left = per_attempt.saturating_sub(started_attempt.elapsed());
                    classify(response, attempts, left).await
                }
            };
            let (failure, retry_after) = match outcome {
                Attempt::Done(response) => {
                    permit.succeeded();
                    return Ok(Answer {
                        response,
                        attempts,
                        elapsed: started.elapsed(),
                    });
                }
                Attempt::Final(failure) => return Err(settle(permit, failure)),
                Attempt::Retryable { failure, retry_after } => (failure, retry_after),
            };
            let delays = delays.get_or_insert_with(|| {
                backon::ExponentialBuilder::default()
                    .with_min_delay(self.policy.min_delay)
                    .with_max_delay(self.policy.max_delay)
                    .with_jitter()
                    .with_max_times(self.policy.max_attempts.saturating_sub(1))
                    .build()
            });
            let next = match (delays.next(), retry_after) {
                (None, _) => None,
                (Some(_), Some(after)) if after > self.policy.retry_after_cap => None,
                (Some(backoff), Some(after)) => Some(backoff.max(after)),
                (Some(backoff), None) => Some(backoff),
            };
            match next {
                Some(delay) if Instant::now() + delay < deadline => tokio::time::sleep(delay).await,
                _ => return Err(settle(permit, failure)),
            }
        }
    }
}

/// Tells the breaker what a request that failed says about the upstream's health: a
/// connect error or a 5xx is a failure; a rate limit, a 408 or a slow answer is not.
fn settle(permit: Permit<'_>, failure: Failure) -> Failure {
    let unhealthy = match &failure {
        Failure::Connect { .. } | Failure::Broken { .. } => true,
        Failure::Status { status, .. } => status.is_server_error(),
        Failure::Timeout { .. } | Failure::CircuitOpen { .. } => false,
    };
    if unhealthy {
        permit.failed();
    } else {
        // Undecided: a half-open probe's slot is freed, a closed breaker's count kept.
        drop(permit);
    }
    failure
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `left`: what remains of the attempt's time, for reading a retryable error's body.
async fn classify(response: Response, attempts: u32, left: Duration) -> Attempt {
    let status = response.status();
    if !retryable(status) {
        return Attempt::Done(response);
    }
    let retry_after = retry_after(response.headers());
    let headers = response.headers().clone();
    // Read the (small) error body so the connection goes back to the pool; an upstream
    // that sends the head and stalls is given no more than the attempt's time.
    let body = match tokio::time::timeout(left, read_error_body(response)).await {
        Ok(body) => body,
        Err(_) => return Attempt::Final(Failure::Timeout { attempts }),
    };
    Attempt::Retryable {
        failure: Failure::Status {
            status,
            retry_after,
            headers,
            body,
            attempts,
        },
        retry_after,
    }
}

/// `retry-after-ms` (OpenAI's, milliseconds) wins over `retry-after` (seconds).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let valid = |v: f64| v.is_finite() && v >= 0.0;
    if let Some(ms) = number("retry-after-ms").filter(|v| valid(*v)) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    number("retry-after")
        .filter(|v| valid(*v))
        .map(Duration::from_secs_f64)
}

/// A whole answer body.
pub async fn read_body(response: Response) -> Result<Bytes, hyper::Error> {
    Ok(response.into_body().collect().await?.to_bytes())
}

/// Upstream error bodies are small (OpenAI's are under 1 KB): more is cut off, so an
/// upstream cannot fill the proxy's memory with an error.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An error answer's body, up to [`MAX_ERROR_BODY`]; empty when it cannot be read.
pub async fn read_error_body(response: Response) -> Bytes {
    http_body_util::Limited::new(response.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default()
}

/// A connector whose whole setup, TCP connect and TLS handshake, is bounded: the client
/// reports a setup that takes longer as a connect error. (hyper's `HttpConnector` bounds
/// the TCP connect only; a TLS handshake that stalls would otherwise run into the
/// request's own timeout and be taken for an upstream that got the request.)
#[derive(Clone)]
struct ConnectTimeout<C> {
    inner: C,
    limit: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower::Service<Uri> for ConnectTimeout<C>
where
    C: tower::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (setup, limit) = (self.inner.call(uri), self.limit);
        Box::pin(async move {
            match tokio::time::timeout(limit, setup).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {limit:?}"),
                )
                .into()),
            }
        })
    }
}

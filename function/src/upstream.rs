//! The upstream OpenAI API: one pooled client per process, retries with exponential
//! backoff and jitter (honouring `retry-after`/`retry-after-ms`), and a circuit breaker.
//!
//! Retries never bill twice: connect errors and 408/429/5xx answers are retried (nothing
//! is generating), all within one deadline below the Lambda's; a non-streamed request
//! that reached OpenAI and then timed out is not (the model may still be generating, and
//! billing). A slow answer says nothing about OpenAI's health, so timeouts never count
//! against the circuit breaker; connect errors and 5xx do.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use backon::BackoffBuilder;
use bytes::Bytes;

use crate::breaker::{CircuitBreaker, Permit};
use crate::config::ProxyConfig;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// A `retry-after` longer than this is not waited for: the 429 goes to the client.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(4),
            retry_after_cap: Duration::from_secs(20),
        }
    }
}

pub struct Upstream {
    http: reqwest::Client,
    breaker: CircuitBreaker,
    policy: RetryPolicy,
}

/// What the upstream said: a response to relay (2xx, or a 4xx to pass through).
pub struct Answer {
    pub response: reqwest::Response,
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
    Connect {
        attempts: u32,
    },
}

impl Failure {
    pub fn attempts(&self) -> u32 {
        match self {
            Self::CircuitOpen { .. } => 0,
            Self::Status { attempts, .. } | Self::Timeout { attempts } | Self::Connect { attempts } => {
                *attempts
            }
        }
    }
}

enum Attempt {
    Done(reqwest::Response),
    Retryable {
        failure: Failure,
        retry_after: Option<Duration>,
    },
    /// Not retried: a non-streamed request timed out after it reached OpenAI.
    Final(Failure),
}

impl Upstream {
    pub fn new(policy: RetryPolicy, breaker: CircuitBreaker) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("openai-lambda-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            breaker,
            policy,
        })
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// POSTs `body` to `{base}/{endpoint}` (`chat/completions`, `embeddings`,
    /// `responses`). Each attempt waits at most the configured OpenAI timeout for the
    /// response head; none starts after `deadline`. `stream` says whether the answer is
    /// streamed: a streamed request's head arrives before generation, so only a
    /// streamed request that timed out is tried again.
    pub async fn post(
        &self,
        config: &ProxyConfig,
        endpoint: &str,
        body: Bytes,
        stream: bool,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|retry_after| Failure::CircuitOpen { retry_after })?;
        let url = format!("{}/{endpoint}", config.openai_base_url);
        let started = Instant::now();
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_jitter()
            .with_max_times(self.policy.max_attempts.saturating_sub(1))
            .build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let per_attempt = config.timeouts.openai_api.min(remaining);
            let request = self
                .http
                .post(&url)
                .bearer_auth(config.openai_api_key.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send();
            let timed_out = || {
                let failure = Failure::Timeout { attempts };
                if stream {
                    Attempt::Retryable {
                        failure,
                        retry_after: None,
                    }
                } else {
                    Attempt::Final(failure)
                }
            };
            let outcome = match tokio::time::timeout(per_attempt, request).await {
                Err(_) => timed_out(),
                // Never connected (reqwest's connect timeout included): nothing was sent.
                Ok(Err(e)) if e.is_connect() => Attempt::Retryable {
                    failure: Failure::Connect { attempts },
                    retry_after: None,
                },
                Ok(Err(e)) if e.is_timeout() => timed_out(),
                Ok(Err(_)) => Attempt::Retryable {
                    failure: Failure::Connect { attempts },
                    retry_after: None,
                },
                Ok(Ok(response)) => classify(response, attempts).await,
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
        Failure::Connect { .. } => true,
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

async fn classify(response: reqwest::Response, attempts: u32) -> Attempt {
    let status = response.status();
    if !retryable(status) {
        return Attempt::Done(response);
    }
    let retry_after = retry_after(response.headers());
    let headers = response.headers().clone();
    // Read the (small) error body so the connection goes back to the pool.
    let body = response.bytes().await.unwrap_or_default();
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
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let valid = |v: f64| v.is_finite() && v >= 0.0;
    if let Some(ms) = number("retry-after-ms").filter(|v| valid(*v)) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    number("retry-after")
        .filter(|v| valid(*v))
        .map(Duration::from_secs_f64)
}

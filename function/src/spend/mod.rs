//! Limits of client keys (`client_api_keys[].limits`), held across every Lambda
//! instance by the usage table. A request of a key with limits reads
//! admission → reserve → forward → settle:
//!
//! - [`Spend::reserve`] counts the request's worst case ([`prices::worst_case`]) with
//!   one conditional write ([`ledger::Ledger::reserve`]) before anything goes upstream,
//!   or answers as OpenAI does when a limit is reached ([`limits`]);
//! - [`Hold::settle`] corrects the counters to the usage the upstream reported, and
//!   [`Hold::release`] gives the tokens and spend back when the upstream certainly did
//!   not bill (an error answer, or no connection);
//! - a [`Hold`] dropped unsettled leaves the worst case counted (a client gone mid-stream
//!   before the usage arrived, a timeout that may have been billed).
//!
//! Keys without limits never reach the table. When the table cannot be written, keys
//! with limits are refused with 503 and nothing goes upstream (fail closed).

pub mod ledger;
pub mod limits;
pub mod prices;

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::config::{ClientKey, Price};
use crate::env::Environment;
use crate::error::ApiError;
use crate::observe::{LogHandle, Usage};
use ledger::{Ledger, Reservation, Reserved, Windows};
use prices::Amount;

/// The usage table, when the proxy has one (`USAGE_TABLE`).
#[derive(Clone, Debug, Default)]
pub struct Spend {
    ledger: Option<Ledger>,
}

/// What a request of a key with limits will use at most, before it is counted.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub body_len: usize,
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, as asked.
    pub output_tokens: Option<u64>,
    /// `n`, as asked.
    pub choices: Option<u64>,
    pub upstream_model: &'a str,
    /// A further attempt of a request already counted (a failover after an attempt that
    /// may have been billed): its tokens and spend are reserved again, but it is still
    /// one request against `requests_per_minute`.
    pub again: bool,
}

impl Spend {
    /// No usage table: keys with limits are refused (local runs without one).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn with_ledger(ledger: Ledger) -> Self {
        Self { ledger: Some(ledger) }
    }

    /// The table named by `USAGE_TABLE`, reached through the SDK's standard chain
    /// (region, credentials, `AWS_ENDPOINT_URL`), as Secrets Manager is.
    pub async fn from_env(env: &Environment) -> Self {
        let Some(table) = env.get("USAGE_TABLE").map(str::trim) else {
            return Self::none();
        };
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::with_ledger(Ledger::new(aws_sdk_dynamodb::Client::new(&shared), table))
    }

    /// Admission and reservation: `None` for a key without limits (the table is not
    /// asked), a [`Hold`] on the counted worst case, or the answer that refuses it.
    pub async fn reserve(
        &self,
        client: Option<&ClientKey>,
        price: Option<&Price>,
        request: Request<'_>,
        log: &LogHandle,
    ) -> Result<Option<Hold>, ApiError> {
        let Some((key, limits)) = client.and_then(|k| Some((k, k.limits?))) else {
            return Ok(None);
        };
        // Limits are only accepted on named keys.
        let name = key.name.clone().unwrap_or_default();
        let worst = prices::worst_case(
            request.body_len,
            request.output_tokens,
            request.choices,
            request.upstream_model,
            price,
        );
        let add = Reservation {
            requests: u64::from(!request.again),
            tokens: worst.tokens(),
            usd: worst.usd,
        };
        let at = Windows::now();
        let thresholds = limits::thresholds(&limits, add, &at)?;
        let Some(ledger) = &self.ledger else {
            tracing::error!(client = %name, "client key has limits but USAGE_TABLE is not set");
            return Err(unavailable(
                "This API key has limits, and this proxy has no usage table to count them (USAGE_TABLE is not set), \
                 so the request was not sent upstream: the operator must deploy the stack's usage table or remove the key's limits.",
            ));
        };
        let started = Instant::now();
        let reserved = ledger.reserve(&name, &at, add, &thresholds).await;
        waited(log, started);
        match reserved {
            Ok(Reserved::Counted(counters)) => Ok(Some(Hold {
                ledger: ledger.clone(),
                log: log.clone(),
                client: name,
                at,
                worst,
                price: price.copied(),
                budget_used_percent: limits
                    .usd_per_month
                    .filter(|limit| *limit > 0)
                    .map(|limit| counters.month_usd as f64 * 100.0 / limit as f64),
                done: false,
            })),
            Ok(Reserved::Refused(used)) => Err(limits::refusal(&limits, &used, add, &at, false)),
            Err(error) => {
                tracing::error!(client = %name, error = %error, "usage table unavailable; request refused");
                Err(unavailable(
                    "The proxy could not reach its usage table to count this API key's limits, so the request was not \
                     sent upstream. Retry shortly; if this persists, the operator should check the proxy's logs.",
                ))
            }
        }
    }
}

/// Time spent waiting for the usage table goes into the request's log line
/// (`usage_ms`): what limits cost a request, apart from the proxy's own work.
fn waited(log: &LogHandle, started: Instant) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
    record.usage_ms = Some(record.usage_ms.unwrap_or(0.0) + ms);
}

fn unavailable(message: &str) -> ApiError {
    ApiError::server(StatusCode::SERVICE_UNAVAILABLE, "usage_unavailable", message)
        .with_retry_after(Duration::from_secs(1))
}

/// A counted worst case, until it is settled or released. Dropped unsettled, it stands.
#[derive(Debug)]
pub struct Hold {
    ledger: Ledger,
    log: LogHandle,
    client: String,
    at: Windows,
    worst: Amount,
    price: Option<Price>,
    budget_used_percent: Option<f64>,
    done: bool,
}

impl Hold {
    /// The reservation, to be settled at `price`: the provider that serves the request
    /// is known only after its reservation (made at the dearest one's price).
    pub fn priced(mut self, price: Option<&Price>) -> Self {
        self.price = price.copied();
        self
    }

    /// The share of its monthly budget the key has used, this request's worst case
    /// counted (`None`: no `usd_per_month`).
    pub fn budget_used_percent(&self) -> Option<f64> {
        self.budget_used_percent
    }

    /// Corrects the counters to what `usage` says was used; without usage (none
    /// reported), the worst case stands.
    pub async fn settle(mut self, usage: Option<&Usage>) {
        let Some(used) = usage.and_then(|u| prices::used(u, self.price.as_ref())) else {
            return;
        };
        self.done = true;
        self.correct(used).await;
    }

    /// The upstream did not bill: the tokens and spend go back (the request still
    /// counts against `requests_per_minute`).
    pub async fn release(mut self) {
        self.done = true;
        self.correct(Amount::default()).await;
    }

    /// Settles in a task of its own when the answer is gone before it could be
    /// awaited (a client that disconnected after the usage arrived).
    pub fn settle_later(self, usage: Usage) {
        if let Some(used) = prices::used(&usage, self.price.as_ref()) {
            self.correct_later(used);
        }
    }

    /// A client that disconnected before the usage arrived pays for what was produced:
    /// the upstream stops when the proxy drops the connection, so the output is about
    /// what was relayed, `output_tokens` (never more than the worst case); the input
    /// stays at its reserved estimate.
    pub fn settle_produced_later(self, output_tokens: u64) {
        let used = Amount::new(
            self.worst.input_tokens,
            output_tokens.min(self.worst.output_tokens),
            self.price.as_ref(),
        );
        self.correct_later(used);
    }

    fn correct_later(mut self, used: Amount) {
        self.done = true;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { self.correct(used).await });
        }
    }

    async fn correct(&self, used: Amount) {
        let delta = |now: u64, then: u64| {
            i64::try_from(now).unwrap_or(i64::MAX) - i64::try_from(then).unwrap_or(i64::MAX)
        };
        let tokens = delta(used.tokens(), self.worst.tokens());
        let usd = delta(used.usd, self.worst.usd);
        let started = Instant::now();
        let adjusted = self.ledger.adjust(&self.client, &self.at, tokens, usd).await;
        waited(&self.log, started);
        if let Err(error) = adjusted {
            // The answer is out; the worst case stays counted, which errs on the safe side.
            tracing::warn!(client = %self.client, error = %error, "usage could not be settled; the reservation stands");
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            tracing::debug!(client = %self.client, "reservation stands: no usage reported");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_config::retry::RetryConfig;
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::config::Limits;

    /// DynamoDB's answer when a table is throttled (awsJson1.0, as AWS documents it).
    fn throttled() -> aws_smithy_runtime_api::http::Response {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}"#,
            ),
        )
    }

    #[tokio::test]
    async fn a_throttled_table_refuses_a_limited_key_with_503_after_the_sdks_retries() {
        let rule = mock!(Client::update_item).then_http_response(throttled);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1))
                    .with_max_backoff(Duration::from_millis(2))
            )
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new()));
        let spend = Spend::with_ledger(Ledger::new(client, "usage"));
        let key = ClientKey {
            name: Some("web-app".into()),
            digest: [0; 32],
            models: None,
            max_n: None,
            max_tokens: None,
            limits: Some(Limits {
                requests_per_minute: Some(60),
                ..Limits::default()
            }),
        };
        let request = Request {
            body_len: 100,
            output_tokens: Some(10),
            choices: None,
            upstream_model: "gpt-4o-mini",
            again: false,
        };
        let log = LogHandle::default();
        let refused = spend.reserve(Some(&key), None, request, &log).await.unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.code.as_deref(), Some("usage_unavailable"));
        assert_eq!(rule.num_calls(), 3, "the SDK retried the throttled write");
        // A key without limits never asks the table.
        let unlimited = ClientKey { limits: None, ..key };
        let log_unlimited = LogHandle::default();
        let passed = spend
            .reserve(Some(&unlimited), None, request, &log_unlimited)
            .await;
        assert!(passed.unwrap().is_none());
        assert_eq!(rule.num_calls(), 3);
        assert!(
            log.lock().unwrap().usage_ms.is_some(),
            "the throttled wait is in the log line"
        );
        assert!(log_unlimited.lock().unwrap().usage_ms.is_none());
    }
}

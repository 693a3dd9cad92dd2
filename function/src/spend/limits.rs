//! A client key's limits against what a request may use: the thresholds the ledger's
//! conditional write checks, and the answers OpenAI gives when a limit is reached (429
//! `insufficient_quota` for a spent budget, 429 `rate_limit_exceeded` with
//! `retry-after` and the `x-ratelimit-*` headers for a rate limit).

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use super::ledger::{Counters, Reservation, Thresholds, Windows};
use crate::config::Limits;
use crate::error::ApiError;

/// The thresholds for `add` under `limits`; `Err` with the answer when `add` alone is
/// over a limit (no window could ever hold it, so the table is not asked).
pub fn thresholds(limits: &Limits, add: Reservation, at: &Windows) -> Result<Thresholds, ApiError> {
    let room = |limit: Option<u64>, amount: u64| limit.map(|l| l.checked_sub(amount));
    let thresholds = Thresholds {
        requests: room(limits.requests_per_minute, add.requests).flatten(),
        tokens: room(limits.tokens_per_minute, add.tokens).flatten(),
        day_usd: room(limits.usd_per_day, add.usd).flatten(),
        month_usd: room(limits.usd_per_month, add.usd).flatten(),
    };
    for (limit, threshold) in [
        (limits.usd_per_day, thresholds.day_usd),
        (limits.usd_per_month, thresholds.month_usd),
        (limits.tokens_per_minute, thresholds.tokens),
    ] {
        if limit.is_some() && threshold.is_none() {
            return Err(refusal(limits, &Counters::default(), add, at, true));
        }
    }
    Ok(thresholds)
}

/// The answer to a request the counters refuse: a spent budget first (no wait helps
/// within the window), then the minute's requests, then its tokens. `alone`: the
/// request by itself is over a limit, whatever the counters.
pub fn refusal(limits: &Limits, used: &Counters, add: Reservation, at: &Windows, alone: bool) -> ApiError {
    let over =
        |limit: Option<u64>, used: u64, amount: u64| limit.is_some_and(|l| used.saturating_add(amount) > l);
    let budget = [
        (
            "usd_per_day",
            limits.usd_per_day,
            used.day_usd,
            at.day_left,
            "00:00 UTC",
        ),
        (
            "usd_per_month",
            limits.usd_per_month,
            used.month_usd,
            at.month_left,
            "the 1st of the month, 00:00 UTC",
        ),
    ];
    for (field, limit, spent, left, renews) in budget {
        if over(limit, spent, add.usd) {
            let limit = limit.unwrap_or_default();
            let message = if alone {
                format!(
                    "This request may cost up to ${}, more than this API key's whole budget ({field}, ${}): \
                     ask for fewer output tokens (max_tokens), or ask the operator to raise {field}.",
                    usd(add.usd),
                    usd(limit)
                )
            } else {
                format!(
                    "This API key has used its budget ({field}, ${} of ${}); it renews at {renews}. \
                     Ask the operator to raise {field} in the proxy's secret for more.",
                    usd(spent),
                    usd(limit)
                )
            };
            return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", message)
                .with_code("insufficient_quota")
                .with_retry_after(Duration::from_secs(left))
                .not_retryable();
        }
    }
    let requests_over = over(limits.requests_per_minute, used.requests, add.requests);
    let (kind, limit) = if requests_over {
        ("requests", limits.requests_per_minute.unwrap_or_default())
    } else {
        ("tokens", limits.tokens_per_minute.unwrap_or_default())
    };
    let message = if alone {
        format!(
            "This request may use up to {} tokens, more than this API key's tokens_per_minute ({limit}): \
             ask for fewer output tokens (max_tokens) or send less input.",
            add.tokens
        )
    } else {
        format!(
            "Rate limit reached for {kind} per minute on this API key (limit {limit}): retry after {} s.",
            at.minute_left
        )
    };
    let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, kind, message)
        .with_code("rate_limit_exceeded")
        .with_retry_after(Duration::from_secs(at.minute_left));
    if alone {
        error = error.not_retryable();
    }
    rate_headers(&mut error, limits, used, at);
    error
}

/// OpenAI's `x-ratelimit-*` headers for the key's per-minute limits.
fn rate_headers(error: &mut ApiError, limits: &Limits, used: &Counters, at: &Windows) {
    let reset = format!("{}s", at.minute_left);
    for (kind, limit, used) in [
        ("requests", limits.requests_per_minute, used.requests),
        ("tokens", limits.tokens_per_minute, used.tokens),
    ] {
        let Some(limit) = limit else { continue };
        for (name, value) in [
            ("limit", limit.to_string()),
            ("remaining", limit.saturating_sub(used).to_string()),
            ("reset", reset.clone()),
        ] {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(format!("x-ratelimit-{name}-{kind}")),
                HeaderValue::try_from(value),
            ) {
                error.headers.insert(name, value);
            }
        }
    }
}

/// Micro-dollars as dollars, to the cent when whole cents, else to the micro-dollar.
fn usd(micros: u64) -> String {
    if micros.is_multiple_of(10_000) {
        format!("{}.{:02}", micros / 1_000_000, micros % 1_000_000 / 10_000)
    } else {
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            requests_per_minute: Some(2),
            tokens_per_minute: Some(1000),
            usd_per_day: Some(5_000_000),
            usd_per_month: None,
        }
    }

    const ADD: Reservation = Reservation {
        requests: 1,
        tokens: 100,
        usd: 1_000,
    };

    #[test]
    fn thresholds_are_the_limit_minus_the_request() {
        let at = Windows::at(0);
        let t = thresholds(&limits(), ADD, &at).unwrap();
        assert_eq!(
            t,
            Thresholds {
                requests: Some(1),
                tokens: Some(900),
                day_usd: Some(4_999_000),
                month_usd: None
            }
        );
    }

    #[test]
    fn a_request_over_a_limit_by_itself_is_refused_without_the_table() {
        let at = Windows::at(0);
        let big = Reservation {
            requests: 1,
            tokens: 2000,
            usd: 1_000,
        };
        let error = thresholds(&limits(), big, &at).unwrap_err();
        assert_eq!(
            (error.status.as_u16(), error.code.as_deref()),
            (429, Some("rate_limit_exceeded"))
        );
        assert!(
            error
                .message
                .contains("more than this API key's tokens_per_minute (1000)"),
            "{}",
            error.message
        );
        let dear = Reservation {
            requests: 1,
            tokens: 1,
            usd: 6_000_000,
        };
        let error = thresholds(&limits(), dear, &at).unwrap_err();
        assert_eq!(error.code.as_deref(), Some("insufficient_quota"));
        assert!(
            error
                .message
                .contains("up to $6.00, more than this API key's whole budget (usd_per_day, $5.00)")
        );
    }

    #[test]
    fn a_spent_budget_is_insufficient_quota_and_final() {
        let at = Windows::at(30);
        let used = Counters {
            requests: 0,
            tokens: 0,
            day_usd: 4_999_500,
            month_usd: 0,
        };
        let error = refusal(&limits(), &used, ADD, &at, false);
        assert_eq!(
            (error.kind.as_ref(), error.code.as_deref()),
            ("insufficient_quota", Some("insufficient_quota"))
        );
        assert!(error.no_retry);
        assert_eq!(error.retry_after, Some(Duration::from_secs(86_370)));
        assert!(
            error.message.contains("(usd_per_day, $4.999500 of $5.00)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_rate_limit_names_its_kind_and_carries_openais_headers() {
        let at = Windows::at(37);
        let used = Counters {
            requests: 2,
            tokens: 300,
            ..Counters::default()
        };
        let response = refusal(&limits(), &used, ADD, &at, false).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = response.headers();
        assert_eq!(h["retry-after"], "23");
        assert_eq!(h["x-ratelimit-limit-requests"], "2");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["x-ratelimit-reset-requests"], "23s");
        assert_eq!(h["x-ratelimit-limit-tokens"], "1000");
        assert_eq!(h["x-ratelimit-remaining-tokens"], "700");
        assert!(
            h.get("x-should-retry").is_none_or(|v| v != "false"),
            "a wait helps"
        );
    }
}

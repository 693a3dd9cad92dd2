//! One file per family of checks. A check sends its requests through the
//! [`Client`](super::client::Client) and returns its [`Outcome`]; recording, printing and
//! deciding what runs are the caller's.

pub(super) mod auth;
pub(super) mod chat;
pub(super) mod cors;
pub(super) mod errors;
pub(super) mod health;
pub(super) mod models;
pub(super) mod perf;
pub(super) mod stream;

use super::client::{Reply, Transport};

/// One check's outcome before it is recorded.
#[derive(Debug)]
pub(super) struct Outcome {
    /// Of the request that decided it; none when that request got no answer.
    pub millis: Option<f64>,
    /// Passed with a short note (may be empty), or failed with expected vs actual.
    pub result: Result<String, String>,
}

impl Outcome {
    pub fn of(reply: &Reply, result: Result<String, String>) -> Self {
        Self {
            millis: Some(reply.millis),
            result,
        }
    }

    /// `expected`; got no answer: why.
    pub fn unanswered(expected: &str, problem: &Transport) -> Self {
        Self::failed(format!("{expected}; got no answer: {problem}"))
    }

    /// Failed before any request could decide it.
    pub fn failed(problem: String) -> Self {
        Self {
            millis: None,
            result: Err(problem),
        }
    }
}

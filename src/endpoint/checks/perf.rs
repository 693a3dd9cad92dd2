//! A small latency probe of `GET /health`: `n` requests one after another, then `n` with
//! [`CONCURRENCY`] in flight. Its figures are the report's performance table.

use futures_util::StreamExt;

use super::Outcome;
use crate::endpoint::client::{Client, Reply, Transport};
use crate::endpoint::{CONCURRENCY, Probe, millis};

pub(in crate::endpoint) const SEQUENTIAL: &str = "performance: sequential /health";
pub(in crate::endpoint) const CONCURRENT: &str = "performance: concurrent /health";

/// Both probes: each with its check's name and outcome (decided by its p50).
pub(in crate::endpoint) async fn run(client: &Client, n: usize) -> Vec<(&'static str, Outcome, Probe)> {
    let health = || client.send(client.get("/health"));
    let mut sequential = Vec::with_capacity(n);
    for _ in 0..n {
        sequential.push(health().await);
    }
    let concurrent: Vec<_> = futures_util::stream::iter((0..n).map(|_| health()))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    [("sequential", sequential), ("concurrent", concurrent)]
        .into_iter()
        .map(|(mode, replies)| {
            let (probe, first_error) = probe(mode, &replies);
            let (name, at_once) = match mode {
                "sequential" => (SEQUENTIAL, String::new()),
                _ => (CONCURRENT, format!(", {} at a time", n.min(CONCURRENCY))),
            };
            let figures = format!(
                "{n} requests{at_once}: p50 {}, p95 {}, max {}",
                millis(probe.p50),
                millis(probe.p95),
                millis(probe.max)
            );
            let result = match first_error {
                None => Ok(figures),
                Some(first) => Err(format!(
                    "expected {n} × HTTP 200; got {} errors (first: {first}){}",
                    probe.errors,
                    if first.starts_with("HTTP 429") {
                        "; API Gateway throttled the probe: lower PERF_REQUESTS or raise ThrottlingRateLimit/ThrottlingBurstLimit"
                    } else {
                        ""
                    }
                )),
            };
            let outcome = Outcome {
                millis: Some(probe.p50),
                result,
            };
            (name, outcome, probe)
        })
        .collect()
}

/// Percentiles by nearest rank over the answered requests, and the first error.
fn probe(mode: &'static str, replies: &[Result<Reply, Transport>]) -> (Probe, Option<String>) {
    let mut millis: Vec<f64> = replies.iter().flatten().map(|r| r.millis).collect();
    millis.sort_by(f64::total_cmp);
    let rank = |p: f64| -> f64 {
        if millis.is_empty() {
            return 0.0;
        }
        let index = ((p * millis.len() as f64).ceil() as usize).clamp(1, millis.len()) - 1;
        millis[index]
    };
    let errors: Vec<String> = replies
        .iter()
        .filter_map(|r| match r {
            Ok(reply) if reply.status == 200 => None,
            Ok(reply) => Some(reply.said()),
            Err(problem) => Some(problem.to_string()),
        })
        .collect();
    (
        Probe {
            mode,
            requests: replies.len(),
            errors: errors.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            max: millis.last().copied().unwrap_or(0.0),
        },
        errors.into_iter().next(),
    )
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderMap;

    use super::*;

    fn reply(status: u16, millis: f64) -> Result<Reply, Transport> {
        Ok(Reply {
            request_id: "deployer-0000000a-1".into(),
            status,
            headers: HeaderMap::new(),
            body: String::new(),
            millis,
        })
    }

    #[test]
    fn percentiles_are_nearest_rank_and_errors_are_counted() {
        let mut replies: Vec<_> = (1..=20).map(|ms| reply(200, f64::from(ms))).collect();
        replies.push(Err(Transport::Connect("refused".into())));
        replies.push(reply(502, 99.0));
        let (probe, first) = probe("sequential", &replies);
        assert_eq!(probe.requests, 22);
        assert_eq!(probe.errors, 2);
        // 21 answered latencies: 1..=20 and 99.
        assert_eq!((probe.p50, probe.p95, probe.max), (11.0, 20.0, 99.0));
        assert_eq!(first.as_deref(), Some("could not connect (refused)"));
        let (empty, none) = super::probe("concurrent", &[]);
        assert_eq!((empty.p50, empty.max, none), (0.0, 0.0, None));
    }
}

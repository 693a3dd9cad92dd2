//! A circuit breaker for the upstream: after `threshold` consecutive failed requests it
//! opens and fails fast for `open_for`; then one probe request goes through (half-open)
//! and its outcome closes or reopens it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

/// Permission to call the upstream; report the outcome with [`Permit::succeeded`] or
/// [`Permit::failed`]. Dropping it unreported (the client went away) frees a probe slot
/// without deciding anything.
#[must_use]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            open_for,
        }
    }

    pub fn state(&self) -> State {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit, or how long until the breaker lets a request through again.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => return Err(Duration::from_secs(1)),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }
}

impl Permit<'_> {
    pub fn succeeded(mut self) {
        self.reported = true;
        *self.breaker.lock() = State::Closed { failures: 0 };
    }

    pub fn failed(mut self) {
        self.reported = true;
        let breaker = self.breaker;
        let mut state = breaker.lock();
        let failures = match *state {
            State::Closed { failures } if !self.probe => failures + 1,
            _ => breaker.threshold,
        };
        *state = if failures >= breaker.threshold {
            State::Open {
                until: Instant::now() + breaker.open_for,
            }
        } else {
            State::Closed { failures }
        };
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut state = self.breaker.lock();
            if *state == (State::HalfOpen { probing: true }) {
                *state = State::HalfOpen { probing: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_and_success_resets_the_count() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        breaker.try_acquire().unwrap().failed();
        breaker.try_acquire().unwrap().failed();
        breaker.try_acquire().unwrap().succeeded();
        breaker.try_acquire().unwrap().failed();
        breaker.try_acquire().unwrap().failed();
        assert_eq!(breaker.state(), State::Closed { failures: 2 });
        breaker.try_acquire().unwrap().failed();
        let wait = breaker.try_acquire().err().expect("open breaker must refuse");
        assert!(wait > Duration::from_secs(50));
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.try_acquire().unwrap().failed();
        let probe = breaker
            .try_acquire()
            .expect("open period over: a probe goes through");
        assert!(breaker.try_acquire().is_err(), "only one probe at a time");
        probe.failed();
        assert!(matches!(breaker.state(), State::Open { .. }));

        let probe = breaker.try_acquire().unwrap();
        probe.succeeded();
        assert_eq!(breaker.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.try_acquire().unwrap().failed();
        drop(breaker.try_acquire().unwrap());
        assert_eq!(breaker.state(), State::HalfOpen { probing: false });
        assert!(breaker.try_acquire().is_ok());
    }
}

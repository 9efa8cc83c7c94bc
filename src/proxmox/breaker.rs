//! A circuit breaker per endpoint: after repeated connect failures, fail fast for a while and
//! say so, then let one trial call through.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive connect failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call is let through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

/// The breaker of one endpoint.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                consecutive_failures: 0,
                open_until: None,
                trial_in_flight: false,
            }),
        }
    }

    /// `Ok` when a call may go out now; otherwise the time left until the next trial.
    pub fn admit(&self, now: Instant) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.open_until {
            None => Ok(()),
            Some(until) if now < until => Err(until - now),
            Some(_) if s.trial_in_flight => Err(Duration::from_secs(1)),
            Some(_) => {
                s.trial_in_flight = true;
                Ok(())
            }
        }
    }

    /// Records that the endpoint answered (any HTTP status): the breaker closes.
    pub fn record_success(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = State {
            consecutive_failures: 0,
            open_until: None,
            trial_in_flight: false,
        };
    }

    /// Records a connect failure; returns true when this opened (or re-opened) the breaker.
    pub fn record_failure(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.consecutive_failures += 1;
        let reopen = s.trial_in_flight;
        s.trial_in_flight = false;
        if reopen || s.consecutive_failures >= self.config.failure_threshold {
            s.open_until = Some(now + self.config.open_for);
            return true;
        }
        false
    }

    /// Whether the breaker is open at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.open_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_lets_one_trial_through_later() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0));
        assert!(b.admit(t0).is_ok(), "still closed below the threshold");
        assert!(b.record_failure(t0), "the third failure opens it");
        assert_eq!(b.admit(t0 + Duration::from_secs(4)), Err(Duration::from_secs(6)));
        let later = t0 + Duration::from_secs(11);
        assert!(b.admit(later).is_ok(), "one trial after the open period");
        assert!(b.admit(later).is_err(), "only one trial at a time");
        assert!(b.record_failure(later), "a failed trial re-opens at once");
        assert!(b.is_open(later));
        let much_later = later + Duration::from_secs(11);
        assert!(b.admit(much_later).is_ok());
        b.record_success();
        assert!(!b.is_open(much_later));
        assert!(
            b.admit(much_later).is_ok() && b.admit(much_later).is_ok(),
            "closed again"
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_secs(10),
        });
        let t = Instant::now();
        b.record_failure(t);
        b.record_success();
        assert!(!b.record_failure(t), "the count restarted after the success");
    }
}

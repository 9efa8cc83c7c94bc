//! A circuit breaker per endpoint: after repeated connect failures, fail fast for a while and
//! say so, then let one trial call through. The trial's slot is held by its [`Admission`], so a
//! trial that is cancelled (its future dropped) frees the slot instead of keeping the breaker
//! open for good.

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
    /// The trial call in flight, by number (an old trial's admission must not free a newer one).
    trial_in_flight: Option<u64>,
    trials: u64,
}

/// Leave for one call to go out; for a trial call it holds the trial slot until an outcome is
/// recorded or it is dropped, whichever comes first.
#[derive(Debug)]
#[must_use = "dropping the admission ends a trial call"]
pub struct Admission<'a> {
    breaker: &'a Breaker,
    trial: Option<u64>,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let Some(trial) = self.trial else { return };
        let mut s = self.breaker.lock();
        // Still in flight: the trial ended without an outcome (cancelled); the next call may try.
        if s.trial_in_flight == Some(trial) {
            s.trial_in_flight = None;
        }
    }
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
                trial_in_flight: None,
                trials: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An admission when a call may go out now (keep it until the call has ended); otherwise
    /// the time left until the next trial.
    pub fn admit(&self, now: Instant) -> Result<Admission<'_>, Duration> {
        let mut s = self.lock();
        let trial = match s.open_until {
            None => None,
            Some(until) if now < until => return Err(until - now),
            Some(_) if s.trial_in_flight.is_some() => return Err(Duration::from_secs(1)),
            Some(_) => {
                s.trials += 1;
                s.trial_in_flight = Some(s.trials);
                s.trial_in_flight
            }
        };
        Ok(Admission { breaker: self, trial })
    }

    /// Records that the endpoint answered (any HTTP status): the breaker closes.
    pub fn record_success(&self) {
        let mut s = self.lock();
        s.consecutive_failures = 0;
        s.open_until = None;
        s.trial_in_flight = None;
    }

    /// Records a connect failure; returns true when this opened (or re-opened) the breaker.
    pub fn record_failure(&self, now: Instant) -> bool {
        let mut s = self.lock();
        s.consecutive_failures += 1;
        let reopen = s.trial_in_flight.take().is_some();
        if reopen || s.consecutive_failures >= self.config.failure_threshold {
            s.open_until = Some(now + self.config.open_for);
            return true;
        }
        false
    }

    /// Whether the breaker is open at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        let s = self.lock();
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
        assert_eq!(
            b.admit(t0 + Duration::from_secs(4)).err(),
            Some(Duration::from_secs(6))
        );
        let later = t0 + Duration::from_secs(11);
        let trial = b.admit(later);
        assert!(trial.is_ok(), "one trial after the open period");
        assert!(b.admit(later).is_err(), "only one trial at a time");
        assert!(b.record_failure(later), "a failed trial re-opens at once");
        drop(trial);
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

    #[test]
    fn a_cancelled_trial_frees_the_trial_slot() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert!(b.record_failure(t0));
        let later = t0 + Duration::from_secs(11);
        let trial = b.admit(later).expect("the trial is let through");
        assert_eq!(
            b.admit(later).err(),
            Some(Duration::from_secs(1)),
            "one trial at a time"
        );
        // The trial call's future is dropped (a timeout, a cancelled reconcile): no outcome.
        drop(trial);
        assert!(b.admit(later).is_ok(), "the next call is the new trial");
    }

    #[test]
    fn an_old_trial_ending_late_does_not_free_a_newer_one() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        b.record_failure(t0);
        let t1 = t0 + Duration::from_secs(11);
        let first = b.admit(t1).expect("first trial");
        assert!(b.record_failure(t1), "the first trial failed: open again");
        let t2 = t1 + Duration::from_secs(11);
        let second = b.admit(t2).expect("second trial");
        drop(first);
        assert!(b.admit(t2).is_err(), "the second trial still holds the slot");
        drop(second);
        assert!(b.admit(t2).is_ok());
    }

    #[test]
    fn a_call_admitted_while_closed_holds_no_trial_slot() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        let ordinary = b.admit(t0).expect("closed");
        assert!(b.record_failure(t0));
        let later = t0 + Duration::from_secs(11);
        let trial = b.admit(later).expect("trial");
        drop(ordinary);
        assert!(b.admit(later).is_err(), "an ordinary call ending frees nothing");
        drop(trial);
    }
}

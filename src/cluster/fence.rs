//! Fencing: a mutation (Proxmox call, SSH command) happens only while this replica leads and
//! holds the object's lock, both checked right before the call. Leadership is judged by the
//! local monotonic clock — the time since our own last successful renewal — never by comparing
//! another replica's `renewTime` with the local wall clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::coordination::LockGuard;

/// Whether this replica may act, as the election last proved it.
#[derive(Clone, Debug)]
pub struct Leadership(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// A process without election (tests, one-shot tools) always leads.
    always: bool,
    /// Until when the last renewal proves leadership.
    valid_until: Mutex<Option<Instant>>,
}

impl Leadership {
    /// Leads for as long as the process runs (no election).
    pub fn always() -> Self {
        Self(Arc::new(Inner {
            always: true,
            valid_until: Mutex::new(None),
        }))
    }

    /// Not leading until [`renewed`](Self::renewed) says so.
    pub fn elected() -> Self {
        Self(Arc::new(Inner {
            always: false,
            valid_until: Mutex::new(None),
        }))
    }

    /// A renewal that was sent at `sent` succeeded: leadership holds for `valid_for` from the
    /// moment the request left (not from when the answer came back).
    pub fn renewed(&self, sent: Instant, valid_for: Duration) {
        *self.0.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(sent + valid_for);
    }

    /// Leadership is gone (another holder, or the process gives up).
    pub fn revoke(&self) {
        *self.0.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether this replica leads right now.
    pub fn is_leading(&self) -> bool {
        self.0.always
            || self
                .0
                .valid_until
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|until| Instant::now() < until)
    }
}

/// Why a mutation was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    #[error("this replica no longer leads; not acting")]
    NotLeading,
    #[error("the lock on this object was lost; not acting")]
    LockLost,
}

/// Checks both fences right before a mutation.
pub fn check(leadership: &Leadership, lock: Option<&LockGuard>) -> Result<(), Fenced> {
    if !leadership.is_leading() {
        return Err(Fenced::NotLeading);
    }
    if lock.is_some_and(|l| l.lost()) {
        return Err(Fenced::LockLost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leadership_lapses_by_the_local_clock() {
        let l = Leadership::elected();
        assert!(!l.is_leading(), "not leading before the first renewal");
        l.renewed(Instant::now(), Duration::from_millis(100));
        assert!(l.is_leading());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!l.is_leading(), "a renewal not repeated lapses");
        l.renewed(Instant::now(), Duration::from_secs(10));
        l.revoke();
        assert_eq!(check(&l, None), Err(Fenced::NotLeading));
        assert_eq!(check(&Leadership::always(), None), Ok(()));
    }
}

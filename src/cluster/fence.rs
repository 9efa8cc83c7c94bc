//! Fencing: a mutation (Proxmox call, SSH command) happens only while this replica leads and
//! holds the object's lock, both checked right before the call. Leadership is judged by the
//! local monotonic clock — the time since our own last successful renewal — never by comparing
//! another replica's `renewTime` with the local wall clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
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
    /// Wakes [`Leadership::lapsed`] waiters when `valid_until` changes.
    changed: Notify,
}

impl Leadership {
    /// Leads for as long as the process runs (no election).
    pub fn always() -> Self {
        Self(Arc::new(Inner {
            always: true,
            valid_until: Mutex::new(None),
            changed: Notify::new(),
        }))
    }

    /// Not leading until [`renewed`](Self::renewed) says so.
    pub fn elected() -> Self {
        Self(Arc::new(Inner {
            always: false,
            valid_until: Mutex::new(None),
            changed: Notify::new(),
        }))
    }

    /// A renewal that was sent at `sent` succeeded: leadership holds for `valid_for` from the
    /// moment the request left (not from when the answer came back).
    pub fn renewed(&self, sent: Instant, valid_for: Duration) {
        *self.0.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(sent + valid_for);
        self.0.changed.notify_waiters();
    }

    /// Leadership is gone (another holder, or the process gives up).
    pub fn revoke(&self) {
        *self.0.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.0.changed.notify_waiters();
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

    /// Until when the last renewal proves leadership (`None`: not leading, or `always`).
    pub fn valid_until(&self) -> Option<Instant> {
        *self.0.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves as soon as this replica no longer leads: when the proven validity runs out by
    /// the local clock (so a stalled election loop cannot keep work alive) or on `revoke()`.
    /// A renewal in the meantime pushes it further. Never resolves for [`always`](Self::always).
    ///
    /// Every poll reads the clock itself: a process woken from a freeze can be polled (its I/O
    /// is ready) before its runtime has fired the timers that ran out meanwhile, so a caller
    /// that polls this first (`select!` with `biased;`) never runs work past the lapse.
    pub async fn lapsed(&self) {
        if self.0.always {
            return std::future::pending().await;
        }
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            // Registered before reading, so a change between the read and the wait is not missed.
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let until = match self.valid_until() {
                Some(until) if Instant::now() < until => until,
                _ => return,
            };
            sleep.as_mut().reset(until);
            std::future::poll_fn(|cx| {
                if Instant::now() >= until
                    || changed.as_mut().poll(cx).is_ready()
                    || sleep.as_mut().poll(cx).is_ready()
                {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
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

    #[tokio::test]
    async fn lapsed_follows_renewals_and_revocation() {
        let ms = Duration::from_millis;
        let l = Leadership::elected();
        let start = Instant::now();
        l.renewed(start, ms(300));
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.lapsed().await }
        });
        tokio::time::sleep(ms(150)).await;
        // A renewal at 150 ms pushes the lapse from 300 ms to 450 ms.
        l.renewed(Instant::now(), ms(300));
        waiter.await.unwrap();
        let lapsed_after = start.elapsed();
        assert!(
            lapsed_after >= ms(450) && lapsed_after < ms(1000),
            "lapses when the last renewal runs out, not the first: {lapsed_after:?}"
        );
        assert!(!l.is_leading());

        l.renewed(Instant::now(), Duration::from_secs(60));
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.lapsed().await }
        });
        tokio::time::sleep(ms(20)).await;
        let revoked_at = Instant::now();
        l.revoke();
        waiter.await.unwrap();
        assert!(revoked_at.elapsed() < ms(500), "a revocation ends it at once");

        let always = Leadership::always();
        let never = tokio::time::timeout(ms(100), always.lapsed()).await;
        assert!(never.is_err(), "`always` never lapses");
    }
}

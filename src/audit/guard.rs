//! The write-ahead rule: [`AuditStore::guarded`] writes the intent, makes the call only when
//! that worked, then records the outcome — or, when the database went away meanwhile, keeps
//! the outcome in a small queue that is flushed once the database answers again.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::error::{AuditError, Guarded};
use super::model::{Intent, IntentId, Outcome};
use super::{AuditStore, redact, sql};
use crate::proxmox::{self, Upid};

/// At most this many outcomes wait in memory. New calls need an intent row, so while the
/// database is away only the calls already in flight add to the queue; the cap is a backstop.
const PENDING_CAP: usize = 4096;

/// What a successful call reports to the trail.
pub trait AuditedValue {
    /// The UPID of the task the call started, if any.
    fn audit_upid(&self) -> Option<String> {
        None
    }
}

impl AuditedValue for () {}

impl AuditedValue for Upid {
    fn audit_upid(&self) -> Option<String> {
        Some(self.as_str().to_string())
    }
}

impl AuditedValue for Option<Upid> {
    fn audit_upid(&self) -> Option<String> {
        self.as_ref().map(|u| u.as_str().to_string())
    }
}

/// What a failed call reports to the trail (its `Display` is the stored error text).
pub trait AuditedError: std::fmt::Display {
    /// The error class label (as metrics and Events use it).
    fn audit_class(&self) -> String;
    /// The UPID of the task that failed, if the call got that far.
    fn audit_upid(&self) -> Option<String> {
        None
    }
}

impl AuditedError for proxmox::Error {
    fn audit_class(&self) -> String {
        self.class().label().to_string()
    }

    fn audit_upid(&self) -> Option<String> {
        match self {
            Self::TaskFailed { upid, .. } => Some(upid.clone()),
            _ => None,
        }
    }
}

/// An outcome that could not be written yet.
struct PendingOutcome {
    id: IntentId,
    at: DateTime<Utc>,
    outcome: Outcome,
    duration_ms: i64,
}

/// The outcomes waiting for the database, oldest first.
#[derive(Default)]
pub(super) struct PendingOutcomes(Mutex<VecDeque<PendingOutcome>>);

impl PendingOutcomes {
    fn lock(&self) -> MutexGuard<'_, VecDeque<PendingOutcome>> {
        // A panic elsewhere while holding the lock leaves a consistent queue; keep using it.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, outcome: PendingOutcome) {
        let mut queue = self.lock();
        if queue.len() >= PENDING_CAP
            && let Some(dropped) = queue.pop_front()
        {
            tracing::error!(intent_id = %dropped.id, "audit outcome queue full: dropping the oldest outcome");
        }
        queue.push_back(outcome);
    }
}

impl AuditStore {
    /// Makes a mutating Proxmox call under the write-ahead rule: the intent is written first
    /// and `call` is not even started when that fails ([`Guarded::AuditUnavailable`]); after
    /// the call its outcome is written (secret parameter values scrubbed from the error text),
    /// or queued for [`flush_pending`](Self::flush_pending) when the database is away. The
    /// call's own result is returned either way.
    pub async fn guarded<T, E, F, Fut>(&self, intent: &Intent, call: F) -> Result<T, Guarded<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: AuditedValue,
        E: AuditedError,
    {
        let id = match self.record_intent(intent).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(
                    operation = %intent.operation,
                    object_uid = %intent.object_uid,
                    error = %e,
                    "audit store unavailable: not calling Proxmox"
                );
                return Err(Guarded::AuditUnavailable(e));
            }
        };
        let started = Instant::now();
        let result = call().await;
        let outcome = match &result {
            Ok(value) => Outcome::Succeeded {
                upid: value.audit_upid(),
            },
            Err(e) => Outcome::Failed {
                error: redact::scrub(&e.to_string(), &redact::secret_values(&intent.params)),
                class: e.audit_class(),
                upid: e.audit_upid(),
            },
        };
        let pending = PendingOutcome {
            id,
            at: super::now(),
            outcome,
            duration_ms: sql::millis(started.elapsed()),
        };
        match self
            .write_outcome(id, pending.at, &pending.outcome, pending.duration_ms)
            .await
        {
            Ok(()) => {
                // The database answers: a good moment to write what an outage left behind.
                if self.pending_outcomes() > 0 {
                    let _ = self.flush_pending().await;
                }
            }
            Err(e) => {
                tracing::warn!(
                    intent_id = %id,
                    operation = %intent.operation,
                    error = %e,
                    "audit outcome not written; queued until the audit store is back"
                );
                self.pending.push(pending);
            }
        }
        result.map_err(Guarded::Call)
    }

    /// Writes the queued outcomes, oldest first, and returns how many were written. Stops at
    /// the first that fails while the store is unavailable (they stay queued); an outcome the
    /// database refuses (its intent was pruned meanwhile) is logged and dropped.
    pub async fn flush_pending(&self) -> Result<usize, AuditError> {
        let batch: Vec<PendingOutcome> = self.pending.lock().drain(..).collect();
        let mut written = 0;
        let mut rest = batch.into_iter();
        while let Some(item) = rest.next() {
            match self
                .write_outcome(item.id, item.at, &item.outcome, item.duration_ms)
                .await
            {
                Ok(()) => written += 1,
                Err(e) if e.is_unavailable() => {
                    let mut queue = self.pending.lock();
                    for item in std::iter::once(item).chain(rest).rev() {
                        queue.push_front(item);
                    }
                    return Err(e);
                }
                Err(e) => {
                    tracing::error!(intent_id = %item.id, error = %e, "audit outcome refused; dropping it");
                }
            }
        }
        Ok(written)
    }

    /// How many outcomes wait for the database.
    pub fn pending_outcomes(&self) -> usize {
        self.pending.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: i64) -> PendingOutcome {
        PendingOutcome {
            id: IntentId(id),
            at: Utc::now(),
            outcome: Outcome::Succeeded { upid: None },
            duration_ms: 1,
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_outcome() {
        let queue = PendingOutcomes::default();
        for id in 0..=i64::try_from(PENDING_CAP).unwrap() {
            queue.push(pending(id));
        }
        let queue = queue.lock();
        assert_eq!(queue.len(), PENDING_CAP);
        assert_eq!(queue.front().map(|p| p.id), Some(IntentId(1)));
    }

    #[test]
    fn proxmox_errors_report_their_class_and_task() {
        let failed = proxmox::Error::TaskFailed {
            operation: "start container".into(),
            upid: "UPID:pve1:000A1B2D:0000ABCE:65A1B2C4:vzstart:120:root@pam:".into(),
            exit_status: "command failed".into(),
            log_tail: vec![],
        };
        assert_eq!(failed.audit_class(), "task_failed");
        assert_eq!(
            failed.audit_upid().as_deref(),
            Some("UPID:pve1:000A1B2D:0000ABCE:65A1B2C4:vzstart:120:root@pam:")
        );
    }
}

//! How a reconcile stops short, for every kind: [`Halt`] names the condition that goes false,
//! with its reason and message, and [`HaltKind`] says how the object goes on — which also
//! decides the requeue ([`Halt::requeue`]) with per-object jittered backoff.

use std::time::Duration;

use kube::runtime::controller::Action;

use super::act::ActError;
use crate::audit::AUDIT_UNAVAILABLE_REASON;
use crate::proxmox::{self, ErrorClass};

/// How a halted reconcile goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaltKind {
    /// Work is under way (a task runs, a lock is held): look again after the delay.
    Wait(Duration),
    /// Something else must change first (a node, a template); watches bring it back.
    Blocked,
    /// Only a change of the spec (or a person) helps.
    Stalled,
    /// Worth retrying: per-object backoff with jitter.
    Transient,
    /// Anything else: retried with a capped delay.
    Failed,
    /// This replica may no longer act (leadership or the object's lock is gone): stop at once
    /// and write nothing.
    Fenced,
}

/// Why a reconcile stopped at a phase: the phase's condition goes false with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    pub condition: &'static str,
    pub reason: String,
    pub message: String,
    pub kind: HaltKind,
}

impl Halt {
    pub fn new(condition: &'static str, reason: &str, message: impl Into<String>, kind: HaltKind) -> Self {
        Self {
            condition,
            reason: reason.to_string(),
            message: message.into(),
            kind,
        }
    }

    pub fn wait(condition: &'static str, reason: &str, message: impl Into<String>, after: Duration) -> Self {
        Self::new(condition, reason, message, HaltKind::Wait(after))
    }

    /// A Proxmox failure, sorted by its class.
    pub fn proxmox(condition: &'static str, error: &proxmox::Error) -> Self {
        let (reason, kind) = match error.class() {
            ErrorClass::Connect => ("ProxmoxUnreachable", HaltKind::Transient),
            ErrorClass::CircuitOpen => ("CircuitOpen", HaltKind::Transient),
            ErrorClass::Server => ("ProxmoxError", HaltKind::Transient),
            ErrorClass::Locked => ("Locked", HaltKind::Wait(Duration::from_secs(2))),
            // The next reconcile reads the config again and plans from it, at once.
            ErrorClass::ConfigChanged => ("ConfigChanged", HaltKind::Wait(Duration::ZERO)),
            ErrorClass::Tls => ("TLSError", HaltKind::Failed),
            ErrorClass::Unauthorized => ("AuthenticationFailed", HaltKind::Failed),
            ErrorClass::Forbidden => ("PermissionDenied", HaltKind::Failed),
            ErrorClass::NotFound => ("NotFound", HaltKind::Failed),
            ErrorClass::AlreadyExists => ("Conflict", HaltKind::Stalled),
            ErrorClass::InvalidParameters => ("InvalidParameters", HaltKind::Stalled),
            ErrorClass::TaskFailed => ("TaskFailed", HaltKind::Transient),
        };
        let mut message = error.to_string();
        if !error.log_tail().is_empty() {
            message = format!("{message}; task log: {}", error.log_tail().join(" | "));
        }
        Self::new(condition, reason, message, kind)
    }

    /// An audited call that failed, or was not made (fenced, or no audit trail).
    pub fn acted(condition: &'static str, error: &ActError<proxmox::Error>) -> Self {
        match error {
            ActError::Call(e) => Self::proxmox(condition, e),
            other => Self::not_acted(condition, other).unwrap_or_else(|| unreachable!("handled above")),
        }
    }

    /// The halt of a call that was not made; `None` for a call that failed.
    pub fn not_acted<E>(condition: &'static str, error: &ActError<E>) -> Option<Self> {
        match error {
            ActError::Fenced(f) => Some(Self::new(condition, "Fenced", f.to_string(), HaltKind::Fenced)),
            ActError::AuditUnavailable(e) => Some(Self::new(
                condition,
                AUDIT_UNAVAILABLE_REASON,
                format!("audit store unavailable, nothing changed: {e}"),
                HaltKind::Transient,
            )),
            ActError::Call(_) => None,
        }
    }

    pub fn kube(condition: &'static str, error: &kube::Error) -> Self {
        Self::new(
            condition,
            "KubernetesError",
            error.to_string(),
            HaltKind::Transient,
        )
    }

    /// Whether the object waits for a person (or a spec change): kstatus `Stalled`.
    pub fn is_stalled(&self) -> bool {
        matches!(self.kind, HaltKind::Stalled | HaltKind::Failed)
    }

    /// Whether this halt counts as one more failure in a row (for backoff).
    pub fn is_failure(&self) -> bool {
        matches!(self.kind, HaltKind::Transient | HaltKind::Failed)
    }

    /// The next look, after `failures` failures in a row (this one included).
    pub fn requeue(&self, failures: u32) -> Action {
        match self.kind {
            HaltKind::Wait(d) => Action::requeue(d),
            // Watches bring the change that unblocks; the short look again is a backstop for a
            // wake-up kube's shared streams can miss (an object gone before it was polled).
            HaltKind::Blocked => Action::requeue(Duration::from_secs(10)),
            HaltKind::Stalled => Action::requeue(Duration::from_secs(600)),
            HaltKind::Transient => Action::requeue(backoff(failures)),
            HaltKind::Failed => Action::requeue(Duration::from_secs((30 * u64::from(failures)).min(300))),
            HaltKind::Fenced => Action::requeue(Duration::from_secs(5)),
        }
    }

    /// The bounded label metrics use for this halt's kind.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            HaltKind::Wait(_) => "wait",
            HaltKind::Blocked => "blocked",
            HaltKind::Stalled => "stalled",
            HaltKind::Transient => "transient",
            HaltKind::Failed => "failed",
            HaltKind::Fenced => "fenced",
        }
    }
}

/// The delay before the next attempt after `failures` failures in a row (1 s doubling to 5 min,
/// ±20 % jitter).
pub fn backoff(failures: u32) -> Duration {
    let base = 2f64.powi(failures.saturating_sub(1).min(9) as i32).min(300.0);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    Duration::from_secs_f64(base * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let secs = |n| backoff(n).as_secs_f64();
        assert!((0.8..=1.2).contains(&secs(1)));
        assert!((3.2..=4.8).contains(&secs(3)));
        assert!(secs(30) <= 360.0 && secs(30) >= 240.0);
    }

    #[test]
    fn a_call_not_made_is_not_a_proxmox_failure() {
        let fenced: ActError<proxmox::Error> = ActError::Fenced(crate::cluster::fence::Fenced::NotLeading);
        let h = Halt::acted("Created", &fenced);
        assert_eq!((h.reason.as_str(), &h.kind), ("Fenced", &HaltKind::Fenced));
        assert!(!h.is_failure() && !h.is_stalled());
    }
}

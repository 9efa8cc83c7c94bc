//! Conditions as Kubernetes expects them: one per `type`, `lastTransitionTime` changed only
//! when the status flips, `observedGeneration` on each, and the kstatus trio (`Ready`,
//! `Reconciling`, `Stalled`) that `kubectl wait`, Flux and Argo CD read.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition types.
pub mod types {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const REACHABLE: &str = "Reachable";
    pub const AUTHENTICATED: &str = "Authenticated";
}

/// A condition to set (the time and generation are filled in by [`set`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
}

/// Sets one condition in `conditions`; returns true when anything changed. The transition
/// time moves only when the status flips, so a re-applied status is byte-for-byte the same.
pub fn set(
    conditions: &mut Vec<Condition>,
    desired: Desired<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let status = if desired.status { "True" } else { "False" }.to_string();
    let existing = conditions.iter_mut().find(|c| c.type_ == desired.type_);
    match existing {
        Some(c) => {
            let flipped = c.status != status;
            let changed = flipped
                || c.reason != desired.reason
                || c.message != desired.message
                || c.observed_generation != generation;
            if flipped {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = desired.reason.to_string();
            c.message = desired.message;
            c.observed_generation = generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: desired.type_.to_string(),
                status,
                reason: desired.reason.to_string(),
                message: desired.message,
                observed_generation: generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// Whether `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// Sets the kstatus trio from the overall outcome: ready, still working, or stuck.
pub fn set_kstatus(
    conditions: &mut Vec<Condition>,
    outcome: Outcome<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let (ready, reconciling, stalled) = match &outcome {
        Outcome::Ready => (true, false, false),
        Outcome::Progressing { .. } => (false, true, false),
        Outcome::Stalled { .. } => (false, false, true),
    };
    let (reason, message) = match outcome {
        Outcome::Ready => ("Ready", String::new()),
        Outcome::Progressing { reason, message } | Outcome::Stalled { reason, message } => (reason, message),
    };
    let mut changed = set(
        conditions,
        Desired {
            type_: types::READY,
            status: ready,
            reason,
            message: message.clone(),
        },
        generation,
        now,
    );
    for (type_, on) in [(types::RECONCILING, reconciling), (types::STALLED, stalled)] {
        // kstatus: abnormal-true conditions are removed when they no longer hold.
        if on {
            changed |= set(
                conditions,
                Desired {
                    type_,
                    status: true,
                    reason,
                    message: message.clone(),
                },
                generation,
                now,
            );
        } else if let Some(i) = conditions.iter().position(|c| c.type_ == type_) {
            conditions.remove(i);
            changed = true;
        }
    }
    changed
}

/// The overall state of an object after a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    Ready,
    Progressing { reason: &'a str, message: String },
    Stalled { reason: &'a str, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut c = Vec::new();
        let d = |status, reason: &'static str| Desired {
            type_: "Reachable",
            status,
            reason,
            message: String::new(),
        };
        assert!(set(&mut c, d(true, "Connected"), Some(1), at(0)));
        assert!(
            !set(&mut c, d(true, "Connected"), Some(1), at(10)),
            "nothing changed"
        );
        assert_eq!(c[0].last_transition_time.0, at(0));
        assert!(
            set(&mut c, d(true, "Connected"), Some(2), at(20)),
            "generation changed"
        );
        assert_eq!(c[0].last_transition_time.0, at(0), "but the status did not flip");
        assert!(set(&mut c, d(false, "Unreachable"), Some(2), at(30)));
        assert_eq!(c[0].last_transition_time.0, at(30));
        assert_eq!(
            (c[0].status.as_str(), c[0].reason.as_str()),
            ("False", "Unreachable")
        );
        assert_eq!(c.len(), 1, "one condition per type");
    }

    #[test]
    fn kstatus_trio_follows_the_outcome() {
        let mut c = Vec::new();
        set_kstatus(
            &mut c,
            Outcome::Progressing {
                reason: "Creating",
                message: "task running".into(),
            },
            Some(1),
            at(0),
        );
        assert!(is_true(&c, types::RECONCILING) && !is_true(&c, types::READY));
        assert!(!c.iter().any(|x| x.type_ == types::STALLED));
        set_kstatus(
            &mut c,
            Outcome::Stalled {
                reason: "Conflict",
                message: "VMID taken".into(),
            },
            Some(1),
            at(5),
        );
        assert!(is_true(&c, types::STALLED) && !c.iter().any(|x| x.type_ == types::RECONCILING));
        assert!(set_kstatus(&mut c, Outcome::Ready, Some(2), at(9)));
        assert!(is_true(&c, types::READY));
        assert_eq!(c.len(), 1, "only Ready remains");
        assert!(
            !set_kstatus(&mut c, Outcome::Ready, Some(2), at(12)),
            "idempotent"
        );
    }
}

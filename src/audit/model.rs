//! What the audit trail holds: the intent written before a Proxmox call, the outcome written
//! after it, and the records and queries that read them back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the operator is about to do, written before the mutating Proxmox call is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Who acts: the operator's identity, e.g. `lxc-operator/lxc-operator-7d9f-abcde`.
    pub actor: String,
    /// The Kubernetes kind of the object the call is made for, e.g. `LxcContainer`.
    pub object_kind: String,
    /// Its namespace (`None` for cluster-scoped kinds).
    pub object_namespace: Option<String>,
    /// Its name.
    pub object_name: String,
    /// Its uid: the key the trail is read by.
    pub object_uid: String,
    /// The `metadata.generation` being reconciled.
    pub generation: i64,
    /// The pipeline phase making the call, e.g. `create`.
    pub phase: String,
    /// The Proxmox operation, e.g. `create container`.
    pub operation: String,
    /// The Proxmox node the call goes to.
    pub node: Option<String>,
    /// The container's VMID, when it has one.
    pub vmid: Option<i64>,
    /// The call's parameters; secrets are redacted before they are stored.
    pub params: serde_json::Value,
}

/// The id of a written intent; its outcome refers to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntentId(pub i64);

impl std::fmt::Display for IntentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The call succeeded; `upid` names the task it started, if any.
    Succeeded { upid: Option<String> },
    /// The call failed; `class` is the error class label (e.g. `locked`).
    Failed {
        error: String,
        class: String,
        upid: Option<String>,
    },
}

impl Outcome {
    /// The stored label of this outcome.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Succeeded { .. } => OutcomeKind::Succeeded,
            Self::Failed { .. } => OutcomeKind::Failed,
        }
    }

    /// The task's UPID, if the call started one.
    pub fn upid(&self) -> Option<&str> {
        match self {
            Self::Succeeded { upid } | Self::Failed { upid, .. } => upid.as_deref(),
        }
    }
}

/// The outcome of a call as queried: `Pending` is an intent without an outcome (the call is
/// running, or the operator stopped before it could record how the call ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Pending,
    Succeeded,
    Failed,
}

impl OutcomeKind {
    /// The label stored in the `outcome` column (`pending` is never stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// One audited call as read back: its intent and, once recorded, its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: IntentId,
    /// When the intent was written (just before the call).
    pub at: DateTime<Utc>,
    pub intent: Intent,
    /// `None` while the outcome is pending.
    pub outcome: Option<RecordedOutcome>,
}

impl AuditRecord {
    /// Pending, succeeded or failed.
    pub fn outcome_kind(&self) -> OutcomeKind {
        self.outcome
            .as_ref()
            .map_or(OutcomeKind::Pending, |o| o.outcome.kind())
    }
}

/// An outcome as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedOutcome {
    /// When the call ended.
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long the call took, in milliseconds.
    pub duration_ms: u64,
}

/// The questions the trail answers, each backed by an index. `Since` reads oldest first (to
/// page forward through time); the others read newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditQuery {
    /// The calls made for one object (index on `object_uid, at`).
    ByObject { uid: String, limit: u32 },
    /// The calls made at or after a time (index on `at`).
    Since { since: DateTime<Utc>, limit: u32 },
    /// The calls that ended a given way at or after a time (index on `outcome, at`; pending
    /// calls are found through the index on `at`).
    ByOutcome {
        outcome: OutcomeKind,
        since: DateTime<Utc>,
        limit: u32,
    },
    /// The latest calls, for the status page.
    Recent { limit: u32 },
    /// One page of the trail, newest first, filtered, after a keyset cursor (index on the
    /// primary key, walked backwards: as fast on page 1000 as on page 1).
    Page(AuditPage),
}

/// A filtered page of the trail (every field optional but the limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// Calls for this object uid only.
    pub uid: Option<String>,
    /// Calls for objects of this name only.
    pub name: Option<String>,
    /// Calls of this operation (e.g. `create container`) only.
    pub operation: Option<String>,
    /// Calls that ended this way (or are pending) only.
    pub outcome: Option<OutcomeKind>,
    /// Calls begun at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Calls begun before this time.
    pub to: Option<DateTime<Utc>>,
    /// The keyset cursor: calls older than this one (the last id of the previous page).
    pub before: Option<IntentId>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_recorded_outcome_reads_flat_for_the_status_page() {
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let outcome = RecordedOutcome {
            at,
            outcome: Outcome::Failed {
                error: "CT 120 is locked".into(),
                class: "locked".into(),
                upid: None,
            },
            duration_ms: 42,
        };
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            json!({"at": "2025-01-02T03:04:05Z", "outcome": "failed", "error": "CT 120 is locked",
                   "class": "locked", "upid": null, "duration_ms": 42})
        );
    }
}

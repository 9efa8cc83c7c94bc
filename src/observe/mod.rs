//! What the operator's lower parts report for metrics: the locks, the audit trail, SSH
//! sessions and provisioning steps each call an [`Observer`] (the metrics registry implements
//! it). A leaf module, so every part can report without knowing who listens.

use std::sync::Arc;
use std::time::Duration;

/// Receives what the lower parts did. Every label is a bounded set of constants: never an
/// object's name, namespace or VMID.
pub trait Observer: Send + Sync {
    /// A coordination lock of `kind` (`container` or `allocation`) was taken after `waited`
    /// (from the first refused try of that key, or the acquiring call alone).
    fn lock_acquired(&self, kind: &'static str, waited: Duration);
    /// A lock of `kind` taken before was let go (released or dropped).
    fn lock_released(&self, kind: &'static str);
    /// An audit row of `record` (`intent` or `outcome`) was written (`written`) or not (`failed`).
    fn audit_write(&self, record: &'static str, outcome: &'static str);
    /// An SSH session (one command's channel) opened (`true`) or closed (`false`).
    fn ssh_session(&self, open: bool);
    /// A provisioning step of `kind` (`file`, `packages`, `script`) `ran`, was `skipped` or `failed`.
    fn provision_step(&self, kind: &'static str, outcome: &'static str);
}

/// An optional observer, as the parts hold it.
pub type Observed = Option<Arc<dyn Observer>>;

pub mod latency;

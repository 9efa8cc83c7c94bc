//! The pipeline's own families: phase durations, time to first Ready, Proxmox tasks, locks,
//! audit writes, SSH sessions, provisioning steps and build info; and the [`Observer`] the
//! lower parts report through.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Metrics;
use crate::observe::Observer;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task_type: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LockLabels {
    lock: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    record: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// The pipeline's own families.
#[derive(Clone)]
pub(super) struct Pipeline {
    phase_seconds: Family<PhaseLabels, Histogram>,
    first_ready: Histogram,
    task_seconds: Family<TaskLabels, Histogram>,
    locks_held: Family<LockLabels, Gauge>,
    lock_wait: Family<LockLabels, Histogram>,
    audit_writes: Family<AuditLabels, Counter>,
    ssh_open: Gauge,
    ssh_opened: Counter,
    steps: Family<StepLabels, Counter>,
}

impl Pipeline {
    pub(super) fn new() -> Self {
        Self {
            // 100 ms doubling to about 55 min.
            phase_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.1, 2.0, 16))),
            first_ready: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            // Proxmox reports task times in whole seconds.
            task_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 13))),
            locks_held: Family::default(),
            lock_wait: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 20))),
            audit_writes: Family::default(),
            ssh_open: Gauge::default(),
            ssh_opened: Counter::default(),
            steps: Family::default(),
        }
    }

    /// A task of `kind` stopped with `outcome` after `seconds`.
    pub(super) fn task_finished(&self, kind: &str, outcome: &str, seconds: f64) {
        let labels = TaskLabels {
            task_type: kind.into(),
            outcome: outcome.into(),
        };
        self.task_seconds.get_or_create(&labels).observe(seconds);
    }

    /// A container left `phase` after `seconds`.
    pub(super) fn phase_left(&self, phase: &str, seconds: f64) {
        let labels = PhaseLabels { phase: phase.into() };
        self.phase_seconds.get_or_create(&labels).observe(seconds);
    }

    pub(super) fn first_ready(&self, seconds: f64) {
        self.first_ready.observe(seconds);
    }

    /// Registers every family, and the build info (always 1).
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "container_phase_seconds",
            "Time containers spent in each status.phase before leaving it",
            self.phase_seconds.clone(),
        );
        registry.register(
            "container_first_ready_seconds",
            "Time from a container's creation to its first Ready",
            self.first_ready.clone(),
        );
        registry.register(
            "proxmox_task_seconds",
            "Proxmox task durations by task type and outcome",
            self.task_seconds.clone(),
        );
        registry.register(
            "locks_held",
            "Coordination locks this replica holds now, by lock kind",
            self.locks_held.clone(),
        );
        registry.register(
            "lock_wait_seconds",
            "Time from the first refused try of a lock to its acquisition, by lock kind",
            self.lock_wait.clone(),
        );
        registry.register(
            "audit_writes",
            "Audit trail writes by record (intent, outcome) and outcome (written, failed)",
            self.audit_writes.clone(),
        );
        registry.register(
            "ssh_sessions_open",
            "SSH sessions (one per command) open now",
            self.ssh_open.clone(),
        );
        registry.register(
            "ssh_sessions_opened",
            "SSH sessions (one per command) opened",
            self.ssh_opened.clone(),
        );
        registry.register(
            "provision_steps",
            "Provisioning steps by kind (file, packages, script) and outcome (ran, skipped, failed)",
            self.steps.clone(),
        );
        let build = Family::<VersionLabels, Gauge>::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("build_info", "The operator's version; always 1", build);
    }
}

fn lock_labels(kind: &str) -> LockLabels {
    LockLabels { lock: kind.into() }
}

impl Observer for Metrics {
    fn lock_acquired(&self, kind: &'static str, waited: Duration) {
        let labels = lock_labels(kind);
        self.pipeline.locks_held.get_or_create(&labels).inc();
        self.pipeline
            .lock_wait
            .get_or_create(&labels)
            .observe(waited.as_secs_f64());
    }

    fn lock_released(&self, kind: &'static str) {
        self.pipeline.locks_held.get_or_create(&lock_labels(kind)).dec();
    }

    fn audit_write(&self, record: &'static str, outcome: &'static str) {
        let labels = AuditLabels {
            record: record.into(),
            outcome: outcome.into(),
        };
        self.pipeline.audit_writes.get_or_create(&labels).inc();
    }

    fn ssh_session(&self, open: bool) {
        if open {
            self.pipeline.ssh_opened.inc();
            self.pipeline.ssh_open.inc();
        } else {
            self.pipeline.ssh_open.dec();
        }
    }

    fn provision_step(&self, kind: &'static str, outcome: &'static str) {
        let labels = StepLabels {
            kind: kind.into(),
            outcome: outcome.into(),
        };
        self.pipeline.steps.get_or_create(&labels).inc();
    }
}

//! One reconcile, measured: [`Metered`] counts it as active while it runs and records its
//! result, halt kind, reason and duration when it ends — or `cancelled` when it was dropped
//! (leadership lost) before it could say.

use std::sync::Arc;
use std::time::Instant;

use super::halt::Halt;
use crate::cluster::ReconcileMetrics;

/// A running reconcile of one controller.
pub struct Metered {
    metrics: Option<Arc<dyn ReconcileMetrics>>,
    controller: &'static str,
    started: Instant,
    done: bool,
}

impl Metered {
    pub fn start(metrics: Option<Arc<dyn ReconcileMetrics>>, controller: &'static str) -> Self {
        if let Some(m) = &metrics {
            m.active(controller, 1);
        }
        Self {
            metrics,
            controller,
            started: Instant::now(),
            done: false,
        }
    }

    fn record(&mut self, result: &'static str, halt: &'static str, reason: &str) {
        self.done = true;
        if let Some(m) = &self.metrics {
            m.reconciled(
                self.controller,
                result,
                halt,
                reason,
                self.started.elapsed().as_secs_f64(),
            );
        }
    }

    /// The reconcile went through.
    pub fn success(&mut self) {
        self.record("success", "none", "");
    }

    /// The reconcile stopped at `halt`.
    pub fn halted(&mut self, halt: &Halt) {
        let result = if halt.is_failure() {
            "error"
        } else {
            "requeue_after"
        };
        self.record(result, halt.kind_label(), &halt.reason);
    }

    /// The reconcile failed before it could write status.
    pub fn error(&mut self, reason: &str) {
        self.record("error", "error", reason);
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if !self.done {
            self.record("cancelled", "cancelled", "");
        }
        if let Some(m) = &self.metrics {
            m.active(self.controller, -1);
        }
    }
}

//! Prometheus metrics, rendered on `/metrics`: Proxmox calls by operation and outcome (fed by
//! the client's hook), leadership, and reconciles under controller-runtime's names
//! (`controller_runtime_reconcile_total{controller,result}`,
//! `controller_runtime_reconcile_errors_total`, `controller_runtime_reconcile_time_seconds`,
//! `controller_runtime_active_workers`, `workqueue_depth{controller,name}`) so existing
//! dashboards and alerts fit, plus
//! `lxc_operator_reconcile_halts_total{controller,halt,reason}` for why reconciles stopped short,
//! and the pipeline's own families (phase durations, time to first Ready, Proxmox tasks, locks,
//! audit writes, SSH sessions, provisioning steps, build info). No label names an object.
//! Reconcile and Proxmox call durations also go to a per-minute [`LatencyHistory`] for the
//! status page's pictures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod pipeline;

use pipeline::Pipeline;

use crate::cluster::ReconcileMetrics;
use crate::observe::latency::{LatencyHistory, Series};
use crate::proxmox::client::Metrics as ClientMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

/// controller-runtime's workqueue labels (`name` is the controller's name there too).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    controller: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HaltLabels {
    controller: String,
    halt: String,
    reason: String,
}

/// The reconcile families.
#[derive(Clone)]
struct Reconciles {
    total: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabels, Counter>,
    time: Family<ControllerLabels, Histogram>,
    active: Family<ControllerLabels, Gauge>,
    depth: Family<QueueLabels, Gauge>,
    halts: Family<HaltLabels, Counter>,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    proxmox_calls: Family<CallLabels, Counter>,
    proxmox_latency: Family<CallLabels, Histogram>,
    leader: Gauge,
    reconciles: Reconciles,
    pipeline: Pipeline,
    latency: Arc<LatencyHistory>,
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut root = Registry::default();
        let reconciles = Reconciles {
            total: Family::default(),
            errors: Family::default(),
            time: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16))),
            active: Family::default(),
            depth: Family::default(),
            halts: Family::default(),
        };
        root.sub_registry_with_prefix("workqueue").register(
            "depth",
            "Reconciles due and waiting for a worker, per controller",
            reconciles.depth.clone(),
        );
        {
            let cr = root.sub_registry_with_prefix("controller_runtime");
            cr.register(
                "reconcile",
                "Reconciles per controller and result",
                reconciles.total.clone(),
            );
            cr.register(
                "reconcile_errors",
                "Reconciles that ended in an error, per controller",
                reconciles.errors.clone(),
            );
            cr.register(
                "reconcile_time_seconds",
                "Reconcile duration per controller",
                reconciles.time.clone(),
            );
            cr.register(
                "active_workers",
                "Reconciles running now, per controller",
                reconciles.active.clone(),
            );
        }
        let registry = root.sub_registry_with_prefix("lxc_operator");
        registry.register(
            "reconcile_halts",
            "Reconciles that stopped short, per controller, halt kind and reason",
            reconciles.halts.clone(),
        );
        let proxmox_calls = Family::<CallLabels, Counter>::default();
        let proxmox_latency = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "proxmox_calls",
            "Proxmox API calls by operation and outcome",
            proxmox_calls.clone(),
        );
        registry.register(
            "proxmox_call_seconds",
            "Proxmox API call latency by operation and outcome",
            proxmox_latency.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica holds the leader lease",
            leader.clone(),
        );
        let pipeline = Pipeline::new();
        pipeline.register(registry);
        Arc::new(Self {
            pipeline,
            latency: Arc::new(LatencyHistory::new()),
            registry: Mutex::new(root),
            reconciles,
            proxmox_calls,
            proxmox_latency,
            leader,
        })
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The last hour of reconcile and Proxmox call latencies, per minute (the status page's).
    pub fn latency(&self) -> Arc<LatencyHistory> {
        self.latency.clone()
    }

    /// The Prometheus text format (0.0.4, as `/metrics` declares it).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        drop(registry);
        prometheus_text(&out)
    }
}

/// OpenMetrics text (what `prometheus-client` writes) as Prometheus text 0.0.4: a counter's
/// HELP and TYPE name its `_total` samples (Prometheus' parser otherwise reads the samples as
/// an untyped family of their own), and no `# EOF`.
fn prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(described.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

impl ClientMetrics for Metrics {
    fn observe(&self, operation: &str, outcome: &str, elapsed: Duration) {
        let labels = CallLabels {
            operation: operation.to_string(),
            outcome: outcome.to_string(),
        };
        self.proxmox_calls.get_or_create(&labels).inc();
        self.proxmox_latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.latency.observe(Series::ProxmoxCall, elapsed.as_secs_f64());
    }

    fn task_finished(&self, kind: &str, outcome: &str, seconds: f64) {
        self.pipeline.task_finished(kind, outcome, seconds);
    }
}

impl ReconcileMetrics for Metrics {
    fn reconciled(
        &self,
        controller: &'static str,
        result: &'static str,
        halt: &'static str,
        reason: &str,
        seconds: f64,
    ) {
        let c = ControllerLabels {
            controller: controller.into(),
        };
        let labels = ResultLabels {
            controller: controller.into(),
            result: result.into(),
        };
        self.reconciles.total.get_or_create(&labels).inc();
        if result == "error" {
            self.reconciles.errors.get_or_create(&c).inc();
        }
        self.reconciles.time.get_or_create(&c).observe(seconds);
        self.latency.observe(Series::Reconcile, seconds);
        if halt != "none" {
            let halt = HaltLabels {
                controller: controller.into(),
                halt: halt.into(),
                reason: reason.into(),
            };
            self.reconciles.halts.get_or_create(&halt).inc();
        }
    }

    fn active(&self, controller: &'static str, delta: i64) {
        let c = ControllerLabels {
            controller: controller.into(),
        };
        self.reconciles.active.get_or_create(&c).inc_by(delta);
    }

    fn queued(&self, controller: &'static str, delta: i64) {
        let q = QueueLabels {
            controller: controller.into(),
            name: controller.into(),
        };
        self.reconciles.depth.get_or_create(&q).inc_by(delta);
    }

    fn phase_left(&self, phase: &str, seconds: f64) {
        self.pipeline.phase_left(phase, seconds);
    }

    fn first_ready(&self, seconds: f64) {
        self.pipeline.first_ready(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Observer;

    #[test]
    fn client_observations_show_up_by_operation_and_outcome() {
        let m = Metrics::new();
        m.observe("create container", "ok", Duration::from_millis(20));
        m.observe("create container", "ok", Duration::from_millis(30));
        m.observe("get version", "connect", Duration::from_millis(5));
        let text = m.render();
        assert!(
            text.contains(r#"lxc_operator_proxmox_calls_total{operation="create container",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lxc_operator_proxmox_calls_total{operation="get version",outcome="connect"} 1"#)
        );
        assert!(text.contains("lxc_operator_proxmox_call_seconds_bucket"));
        assert!(
            text.contains("# TYPE lxc_operator_proxmox_calls_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP lxc_operator_proxmox_calls_total Proxmox"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn reconciles_use_controller_runtime_names() {
        let m = Metrics::new();
        m.active("LxcContainer", 1);
        m.reconciled("LxcContainer", "success", "none", "", 0.2);
        m.reconciled("LxcContainer", "error", "transient", "ProxmoxUnreachable", 0.1);
        m.active("LxcContainer", -1);
        m.queued("LxcContainer", 1);
        m.queued("LxcContainer", 1);
        m.queued("LxcContainer", -1);
        let text = m.render();
        for line in [
            r#"controller_runtime_reconcile_total{controller="LxcContainer",result="success"} 1"#,
            r#"controller_runtime_reconcile_total{controller="LxcContainer",result="error"} 1"#,
            r#"controller_runtime_reconcile_errors_total{controller="LxcContainer"} 1"#,
            r#"controller_runtime_active_workers{controller="LxcContainer"} 0"#,
            r#"workqueue_depth{controller="LxcContainer",name="LxcContainer"} 1"#,
            r#"lxc_operator_reconcile_halts_total{controller="LxcContainer",halt="transient",reason="ProxmoxUnreachable"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        assert!(text.contains("controller_runtime_reconcile_time_seconds_bucket"));
    }

    #[test]
    fn pipeline_families_count_without_object_labels() {
        let m = Metrics::new();
        m.lock_acquired("container", Duration::from_millis(300));
        m.lock_acquired("container", Duration::ZERO);
        m.lock_released("container");
        m.audit_write("intent", "written");
        m.audit_write("outcome", "failed");
        m.ssh_session(true);
        m.ssh_session(true);
        m.ssh_session(false);
        m.provision_step("script", "ran");
        m.task_finished("vzcreate", "ok", 3.0);
        m.phase_left("Creating", 4.0);
        m.first_ready(9.0);
        let text = m.render();
        for line in [
            r#"lxc_operator_locks_held{lock="container"} 1"#,
            r#"lxc_operator_lock_wait_seconds_count{lock="container"} 2"#,
            r#"lxc_operator_audit_writes_total{record="intent",outcome="written"} 1"#,
            r#"lxc_operator_audit_writes_total{record="outcome",outcome="failed"} 1"#,
            "lxc_operator_ssh_sessions_open 1",
            "lxc_operator_ssh_sessions_opened_total 2",
            r#"lxc_operator_provision_steps_total{kind="script",outcome="ran"} 1"#,
            r#"lxc_operator_proxmox_task_seconds_count{task_type="vzcreate",outcome="ok"} 1"#,
            r#"lxc_operator_container_phase_seconds_sum{phase="Creating"} 4.0"#,
            "lxc_operator_container_first_ready_seconds_count 1",
            concat!(
                r#"lxc_operator_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}

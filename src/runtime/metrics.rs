//! Prometheus metrics: Proxmox calls by operation and outcome (fed by the client's hook) and
//! reconciles; rendered on `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::proxmox::client::Metrics as ClientMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: String,
    outcome: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    proxmox_calls: Family<CallLabels, Counter>,
    proxmox_latency: Family<CallLabels, Histogram>,
    leader: Gauge,
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("lxc_operator");
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
        Arc::new(Self {
            registry: Mutex::new(registry),
            proxmox_calls,
            proxmox_latency,
            leader,
        })
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}

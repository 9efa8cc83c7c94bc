//! [`Shared`]: the one context every controller reconciles with (and the status page reads):
//! the API client and its caches, the nodes' Proxmox clients and observations, the audit trail,
//! the coordinator and the fences. Each kind adds only what is truly its own.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use super::clients::ClientCache;
use super::fence::Leadership;
use super::observations::Observations;
use crate::audit::AuditStore;
use crate::coordination::Coordinator;
use crate::crd::{LxcContainer, LxcTemplate, ProxmoxNode};
use crate::proxmox::client::Metrics as ProxmoxMetrics;

/// The controllers' watch caches: reconciles read nodes, templates and sibling containers
/// here instead of listing them from the API server.
#[derive(Clone)]
pub struct Stores {
    pub nodes: Store<ProxmoxNode>,
    pub templates: Store<LxcTemplate>,
    pub containers: Store<LxcContainer>,
}

impl Stores {
    /// Waits (bounded) until every cache holds its first full listing; a reconcile that reads
    /// an empty cache would take a missing node for a deleted one.
    pub async fn ready(&self) {
        let all = || listed(&self.nodes) && listed(&self.templates) && listed(&self.containers);
        if !wait_for(all, Duration::from_secs(30)).await {
            tracing::warn!("watch caches not ready after 30 s; reading them anyway");
        }
    }

    /// Waits (bounded by `limit`) until the containers' cache holds its first listing.
    pub async fn containers_listed(&self, limit: Duration) -> bool {
        wait_for(|| listed(&self.containers), limit).await
    }

    /// A node by name, from the cache.
    pub fn node(&self, name: &str) -> Option<Arc<ProxmoxNode>> {
        self.nodes.get(&kube::runtime::reflector::ObjectRef::new(name))
    }

    /// A template by name, from the cache.
    pub fn template(&self, name: &str) -> Option<Arc<LxcTemplate>> {
        self.templates
            .get(&kube::runtime::reflector::ObjectRef::new(name))
    }
}

/// Whether a cache holds its first listing, looked at without waiting. A kube `Store`'s
/// readiness is a one-waker channel: of several tasks awaiting `wait_until_ready` at once only
/// the last one polled is woken (the others hung until their timeout, e.g. every reconcile of a
/// freshly elected leader for 30 s). So readiness is looked at every 50 ms instead; the
/// controllers' own runners are woken by the very watch event that makes their store ready.
fn listed<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(
        futures::FutureExt::now_or_never(store.wait_until_ready()),
        Some(Ok(()))
    )
}

/// Waits until `check` holds, looking every 50 ms, at most `limit`; whether it held.
async fn wait_for(check: impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Receives one observation per finished reconcile (the metrics registry implements it).
pub trait ReconcileMetrics: Send + Sync {
    /// `controller` is the kind; `result` is `success`, `requeue_after` or `error` as
    /// controller-runtime labels it; `halt` the halt's kind (`none` when the reconcile went
    /// through) and `reason` its condition reason — both bounded sets of constants.
    fn reconciled(
        &self,
        controller: &'static str,
        result: &'static str,
        halt: &'static str,
        reason: &str,
        seconds: f64,
    );
    /// A reconcile of `controller` started (`+1`) or ended (`-1`).
    fn active(&self, controller: &'static str, delta: i64);
    /// A reconcile of `controller` started waiting for a worker (`+1`) or stopped (`-1`).
    fn queued(&self, controller: &'static str, delta: i64);
    /// A container left pipeline phase `phase` (a `status.phase` value) after `seconds` in it.
    fn phase_left(&self, _phase: &str, _seconds: f64) {}
    /// A container became Ready for the first time, `seconds` after it was created.
    fn first_ready(&self, _seconds: f64) {}
}

/// What every controller shares.
#[derive(Clone)]
pub struct Shared {
    pub kube: Client,
    pub stores: Stores,
    /// The nodes' Proxmox clients, rebuilt on a spec or Secret change.
    pub clients: ClientCache,
    /// What the node polls saw.
    pub observations: Observations,
    /// Receives one observation per Proxmox call.
    pub proxmox_metrics: Option<Arc<dyn ProxmoxMetrics>>,
    /// Receives one observation per reconcile.
    pub reconcile_metrics: Option<Arc<dyn ReconcileMetrics>>,
    /// Receives what the lower parts did (SSH sessions, provisioning steps; the coordinator
    /// and the audit store hold it themselves).
    pub observer: crate::observe::Observed,
    /// Publishes Events.
    pub recorder: Option<Recorder>,
    /// Every mutation is written ahead here; no trail, no call.
    pub audit: AuditStore,
    /// Who acts, for the audit trail (`lxc-operator/<replica>`).
    pub actor: String,
    /// Locks and the VMID cache.
    pub coordinator: Coordinator,
    /// Whether this replica may act at all.
    pub leadership: Leadership,
}

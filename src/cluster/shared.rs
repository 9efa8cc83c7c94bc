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
        let wait = async {
            let _ = self.nodes.wait_until_ready().await;
            let _ = self.templates.wait_until_ready().await;
            let _ = self.containers.wait_until_ready().await;
        };
        if tokio::time::timeout(Duration::from_secs(30), wait).await.is_err() {
            tracing::warn!("watch caches not ready after 30 s; reading them anyway");
        }
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

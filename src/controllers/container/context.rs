//! What the container controller shares across reconciles: clients, the audit trail, the
//! coordinator, the node polls' observations, and a little memory that outlives a stale watch
//! cache (the last VMID, node and task each container's status was written with).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::Client;

use crate::audit::AuditStore;
use crate::controllers::node::connect::ClientCache;
use crate::controllers::node::observe::Observations;
use crate::coordination::Coordinator;
use crate::crd::container::TaskRef;
use crate::proxmox::client::Metrics;

use super::provision::Provisioner;

/// The identity fields of a status this process wrote last: a reconcile handed an older copy
/// by the watch cache must not allocate, create or migrate again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    pub vmid: Option<i64>,
    pub node: Option<String>,
    pub task: Option<TaskRef>,
    /// A graceful shutdown failed: the next power step stops hard.
    pub shutdown_failed: bool,
}

/// The container controller's shared state.
#[derive(Clone)]
pub struct ContainerCtx {
    pub kube: Client,
    pub clients: ClientCache,
    pub metrics: Option<Arc<dyn Metrics>>,
    /// Every mutating Proxmox call is written ahead here; no trail, no call.
    pub audit: AuditStore,
    /// Who acts, for the audit trail.
    pub actor: String,
    /// Container and allocation locks, and the VMID cache.
    pub coordinator: Coordinator,
    /// What the node polls saw (shared with the node controller).
    pub observations: Observations,
    pub recorder: Option<kube::runtime::events::Recorder>,
    /// Runs the Provision phase; `None` reports provisioning as unavailable.
    pub provisioner: Option<Arc<dyn Provisioner>>,
    /// Per container uid: see [`Remembered`].
    pub memory: Arc<Mutex<HashMap<String, Remembered>>>,
    /// VMIDs this process allocated, per cluster (until their containers are observed).
    pub reserved: Arc<Mutex<BTreeMap<String, BTreeSet<u32>>>>,
    /// Consecutive failures per uid, for backoff.
    pub failures: Arc<Mutex<HashMap<String, u32>>>,
    /// One placement at a time in this process (each sees the previous one's choice).
    pub placing: Arc<tokio::sync::Mutex<()>>,
    /// How long a DHCP interface may go without an address before `Discovered` says so.
    pub address_timeout: std::time::Duration,
}

impl ContainerCtx {
    /// A context with empty memory.
    pub fn new(
        kube: Client,
        clients: ClientCache,
        audit: AuditStore,
        actor: String,
        coordinator: Coordinator,
        observations: Observations,
    ) -> Self {
        Self {
            kube,
            clients,
            metrics: None,
            audit,
            actor,
            coordinator,
            observations,
            recorder: None,
            provisioner: None,
            memory: Default::default(),
            reserved: Default::default(),
            failures: Default::default(),
            placing: Default::default(),
            address_timeout: std::time::Duration::from_secs(120),
        }
    }

    pub(crate) fn remembered(&self, uid: &str) -> Option<Remembered> {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
    }

    pub(crate) fn remember(&self, uid: &str, f: impl FnOnce(&mut Remembered)) {
        let mut map = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(uid.to_string()).or_default());
    }

    pub(crate) fn forget(&self, uid: &str) {
        self.memory.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}

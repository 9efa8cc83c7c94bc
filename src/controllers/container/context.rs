//! What the container controller adds to the [`Shared`] context: a little memory that outlives
//! a stale watch cache (the last VMID, node and task each container's status was written
//! with), the VMIDs this process reserved, failure counts for backoff, the placement mutex,
//! and the provisioner (whose seam is in `provisioner`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::cluster::Shared;
use crate::crd::container::TaskRef;

/// The identity fields of a status this process wrote last: a reconcile handed an older copy
/// by the watch cache must not allocate, create or migrate again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remembered {
    pub vmid: Option<i64>,
    pub node: Option<String>,
    pub task: Option<TaskRef>,
    /// A graceful shutdown failed: the next power step stops hard.
    pub shutdown_failed: bool,
    /// The task in flight last asked about, and how many times it was found running.
    pub polls: Option<(String, u32)>,
    /// The whole status this process wrote last, with the resource version the write gave the
    /// object: a watch cache older than that hands out an older status, which must neither be
    /// the baseline of the next reconcile nor make it write the same status again.
    pub written: Option<(String, crate::crd::LxcContainerStatus)>,
    /// The container as a walk last found it matching the spec: see [`Seen`].
    pub seen: Option<Seen>,
    /// The `status.phase` this process saw the container enter, and when (phase durations).
    pub phase_since: Option<(String, std::time::Instant)>,
}

/// What a walk read from Proxmox and found matching the spec (owned by this object, config as
/// planned, power state). The walks that follow within [`SEEN_FOR`] — waiting for a task, an
/// address — reuse it instead of reading the same config again; a change of the spec, a
/// config write or a task other than power forgets it, and the node polls and the config
/// sweep keep watching for changes made behind the operator's back.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub at: std::time::Instant,
    pub generation: Option<i64>,
    pub vmid: u32,
    pub node: String,
    pub config: crate::proxmox::types::LxcConfig,
    pub running: bool,
}

/// How long a [`Seen`] serves.
pub const SEEN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

impl Seen {
    /// Whether it still describes this container for this generation.
    pub fn serves(&self, generation: Option<i64>, vmid: u32, node: &str) -> bool {
        self.at.elapsed() < SEEN_FOR
            && self.generation == generation
            && self.vmid == vmid
            && self.node == node
    }
}

/// Whether the cached copy (`cached` resource version) predates the one `written` gave. Resource
/// versions are etcd revisions: comparing them is the kube-apiserver's own watch-cache rule; one
/// that does not parse is never called older.
pub fn cache_is_older(cached: Option<&str>, written: &str) -> bool {
    match (cached.and_then(|c| c.parse::<u64>().ok()), written.parse::<u64>()) {
        (Some(c), Ok(w)) => c < w,
        _ => false,
    }
}

/// How long a DHCP interface may go without an address, by default.
pub const DEFAULT_ADDRESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The container controller's context.
#[derive(Clone)]
pub struct ContainerCtx {
    pub shared: Shared,
    /// Per container uid: see [`Remembered`].
    pub memory: Arc<Mutex<HashMap<String, Remembered>>>,
    /// VMIDs this process allocated, per cluster (until their containers are observed).
    pub reserved: Arc<Mutex<BTreeMap<String, BTreeSet<u32>>>>,
    /// Consecutive failures per uid, for backoff.
    pub failures: Arc<Mutex<HashMap<String, u32>>>,
    /// One placement at a time in this process (each sees the previous one's choice).
    pub placing: Arc<tokio::sync::Mutex<()>>,
    /// One allocation at a time per Proxmox cluster in this process.
    pub allocating: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// How long a DHCP interface may go without an address before `Discovered` says so.
    pub address_timeout: std::time::Duration,
    /// Where a container waiting for a task slot is sent when one frees (the controller
    /// reconciles it); `None` outside a running controller.
    pub wake: Option<
        tokio::sync::mpsc::UnboundedSender<kube::runtime::reflector::ObjectRef<crate::crd::LxcContainer>>,
    >,
}

impl std::ops::Deref for ContainerCtx {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl ContainerCtx {
    /// A context with empty memory.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            memory: Default::default(),
            reserved: Default::default(),
            failures: Default::default(),
            placing: Default::default(),
            allocating: Default::default(),
            address_timeout: DEFAULT_ADDRESS_TIMEOUT,
            wake: None,
        }
    }

    /// The mutex this process's allocations in `cluster` take turns on.
    pub(crate) fn allocation_turn(&self, cluster: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.allocating.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(cluster.to_string()).or_default().clone()
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

    /// Counts a halt toward the object's backoff; returns the failures in a row.
    pub(crate) fn count_failure(&self, uid: &str, failed: bool) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(uid.to_string()).or_default();
        *n = if failed { *n + 1 } else { 0 };
        *n
    }
}

//! What the node controller adds to the [`Shared`] context: when each node was last probed, the
//! last Ready transition it published, where to send the containers a poll must wake, and
//! whether the nodes' cache holds its first listing.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::cluster::Shared;
use crate::cluster::drift::ContainerWake;

/// The node controller's context.
#[derive(Clone)]
pub struct NodeCtx {
    pub shared: Shared,
    /// The last Ready condition published per node uid: the watch cache may replay an object
    /// whose status predates our last write, and that must not publish the same Event again.
    pub published: Arc<Mutex<HashMap<String, (String, String)>>>,
    /// When each node (by uid) was last probed, and with which spec generation and Secret
    /// version: the status a probe writes comes back as a watch event, and that must not
    /// probe again before the poll interval.
    pub probed: Arc<Mutex<HashMap<String, (std::time::Instant, String)>>>,
    /// Where the containers a poll must wake go (the container controller reconciles them).
    pub wake: Option<ContainerWake>,
    /// Whether the nodes' cache holds its first listing (set by its watch). Polling a kube
    /// `Store`'s readiness from here could take the one wake-up its controller's runner waits
    /// for (the readiness is a single-waker channel), so the node controller reads this.
    pub nodes_listed: Arc<AtomicBool>,
    /// The cluster-wide reads of the last probes, shared by nodes behind one endpoint.
    pub cluster_reads: super::cluster_reads::ClusterReads,
}

impl std::ops::Deref for NodeCtx {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl NodeCtx {
    pub fn new(shared: Shared, wake: Option<ContainerWake>) -> Self {
        Self {
            shared,
            published: Default::default(),
            probed: Default::default(),
            wake,
            nodes_listed: Default::default(),
            cluster_reads: Default::default(),
        }
    }
}

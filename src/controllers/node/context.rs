//! What the node controller adds to the [`Shared`] context: when each node was last probed, the
//! last Ready transition it published, where to send the containers a poll must wake, and the
//! Secrets' metadata cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;

use crate::cluster::Shared;
use crate::cluster::drift::ContainerWake;

/// The Secrets' metadata (never their data): which carry the node-secret finalizer.
pub type SecretMetaStore = Store<PartialObjectMeta<Secret>>;

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
    /// The Secrets' metadata cache (set by the controller that watches it): which Secrets a
    /// node holds with its finalizer.
    pub secrets: Option<SecretMetaStore>,
    /// Whether the nodes' and the Secrets' caches hold their first listing (set by the watches).
    pub listed: Listed,
}

/// Flags the watches set once their cache holds its first listing. Polling a kube `Store`'s
/// readiness from here could take the one wake-up its controller's runner waits for (the
/// readiness is a single-waker channel), so the node controller reads these instead.
#[derive(Clone, Default)]
pub struct Listed {
    pub nodes: Arc<AtomicBool>,
    pub secrets: Arc<AtomicBool>,
}

impl Listed {
    /// Both caches hold a listing.
    pub fn all(&self) -> bool {
        self.nodes.load(Ordering::Acquire) && self.secrets.load(Ordering::Acquire)
    }
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
            secrets: None,
            listed: Listed::default(),
        }
    }
}

//! The page's own read-only watch caches, started with the process whatever its leadership (the
//! controllers' caches live only while this replica leads, and the page must not go blank on a
//! failover), the overview's container index kept with them, and the change feed the live page
//! listens to: one message per applied object, and one when the audit trail grew (polled, so
//! rows another replica wrote count too).

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::broadcast;

use super::index::ContainerIndex;
use crate::audit::AuditStore;
use crate::crd::{LxcContainer, LxcTemplate, ProxmoxNode};

/// How often the audit trail's newest id is read while someone watches the page.
const AUDIT_POLL: Duration = Duration::from_secs(2);

/// What changed, as the live page names it: `node/<name>`, `template/<name>`,
/// `container/<namespace>/<name>` or `audit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change(pub String);

/// The caches the page reads, and its change feed.
#[derive(Clone)]
pub struct PageCaches {
    pub nodes: Store<ProxmoxNode>,
    pub templates: Store<LxcTemplate>,
    pub containers: Store<LxcContainer>,
    index: Arc<RwLock<ContainerIndex>>,
    changes: broadcast::Sender<Change>,
}

impl PageCaches {
    /// Starts the three watches and the audit poll on the current runtime; they run for as long
    /// as the process does.
    pub fn start(kube: Client, audit: AuditStore) -> Self {
        let (changes, _) = broadcast::channel(256);
        let (nodes, mut node_writer) = reflector::store();
        spawn_watch(
            Api::<ProxmoxNode>::all(kube.clone()),
            changes.clone(),
            "node",
            |o| format!("node/{}", o.name_any()),
            move |e| node_writer.apply_watcher_event(e),
        );
        let (templates, mut template_writer) = reflector::store();
        spawn_watch(
            Api::<LxcTemplate>::all(kube.clone()),
            changes.clone(),
            "template",
            |o| format!("template/{}", o.name_any()),
            move |e| template_writer.apply_watcher_event(e),
        );
        let (caches, mut containers) = Self::over(nodes, templates, changes.clone());
        spawn_watch(
            Api::<LxcContainer>::all(kube),
            changes.clone(),
            "container",
            |o| format!("container/{}/{}", o.namespace().unwrap_or_default(), o.name_any()),
            move |e| containers.apply(e),
        );
        tokio::spawn(poll_audit(audit, changes));
        caches
    }

    /// Caches over node and template stores someone else fills (tests and benchmarks), with no
    /// change feed source, and the writer that fills the containers' store and index (the one
    /// the watch uses).
    pub fn from_stores(nodes: Store<ProxmoxNode>, templates: Store<LxcTemplate>) -> (Self, ContainerWriter) {
        Self::over(nodes, templates, broadcast::channel(16).0)
    }

    fn over(
        nodes: Store<ProxmoxNode>,
        templates: Store<LxcTemplate>,
        changes: broadcast::Sender<Change>,
    ) -> (Self, ContainerWriter) {
        let (containers, writer) = reflector::store();
        let index = Arc::new(RwLock::new(ContainerIndex::default()));
        let caches = Self {
            nodes,
            templates,
            containers: containers.clone(),
            index: index.clone(),
            changes,
        };
        (
            caches,
            ContainerWriter {
                writer,
                store: containers,
                index,
            },
        )
    }

    /// The overview's index, read-locked: take what a view needs and let go (the writer waits).
    pub(crate) fn index(&self) -> RwLockReadGuard<'_, ContainerIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn node(&self, name: &str) -> Option<Arc<ProxmoxNode>> {
        self.nodes.get(&ObjectRef::new(name))
    }

    pub fn template(&self, name: &str) -> Option<Arc<LxcTemplate>> {
        self.templates.get(&ObjectRef::new(name))
    }

    pub fn container(&self, namespace: &str, name: &str) -> Option<Arc<LxcContainer>> {
        self.containers.get(&ObjectRef::new(name).within(namespace))
    }
}

/// Fills the containers' store and keeps the overview's index with it, event by event.
pub struct ContainerWriter {
    writer: Writer<LxcContainer>,
    store: Store<LxcContainer>,
    index: Arc<RwLock<ContainerIndex>>,
}

impl ContainerWriter {
    /// Applies one watch event to the store, then to the index (which shares the store's
    /// objects). A relisting is applied to the index whole when the store swaps it in.
    pub fn apply(&mut self, event: &watcher::Event<LxcContainer>) {
        self.writer.apply_watcher_event(event);
        match event {
            watcher::Event::Apply(ct) => {
                let shared = self
                    .store
                    .get(&ObjectRef::from_obj(ct))
                    .unwrap_or_else(|| Arc::new(ct.clone()));
                self.write().insert(shared);
            }
            watcher::Event::Delete(ct) => self.write().remove(ct),
            watcher::Event::InitDone => {
                // Built outside the lock: the page keeps reading the old index meanwhile.
                let fresh = ContainerIndex::of(self.store.state());
                *self.write() = fresh;
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ContainerIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Watches one kind, handing every event to `apply` (a store's writer); every applied or
/// deleted object is announced by `key`, a finished (re)listing as `<prefix>/*`.
fn spawn_watch<K>(
    api: Api<K>,
    changes: broadcast::Sender<Change>,
    prefix: &'static str,
    key: fn(&K) -> String,
    mut apply: impl FnMut(&watcher::Event<K>) + Send + 'static,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        // The page shows nothing of who wrote which field; managed fields are most of a small
        // object (the operator's status writes list every condition field).
        .modify(|o| o.meta_mut().managed_fields = None);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    apply(&event);
                    match &event {
                        watcher::Event::Apply(obj) | watcher::Event::Delete(obj) => {
                            // Nobody listening is fine.
                            let _ = changes.send(Change(key(obj)));
                        }
                        watcher::Event::InitDone => {
                            let _ = changes.send(Change(format!("{prefix}/*")));
                        }
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "page watch failed; retrying"),
            }
        }
    });
}

/// Announces `audit` when the trail's newest id moved (read only while someone listens).
async fn poll_audit(audit: AuditStore, changes: broadcast::Sender<Change>) {
    let mut last = None;
    let mut tick = tokio::time::interval(AUDIT_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if changes.receiver_count() == 0 {
            last = None;
            continue;
        }
        match audit.latest_id().await {
            Ok(id) => {
                if last.is_some_and(|l| l != id) {
                    let _ = changes.send(Change("audit".into()));
                }
                last = Some(id);
            }
            Err(e) => tracing::debug!(error = %e, "page: audit poll failed"),
        }
    }
}

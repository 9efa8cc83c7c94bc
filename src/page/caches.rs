//! The page's own read-only watch caches, started with the process whatever its leadership (the
//! controllers' caches live only while this replica leads, and the page must not go blank on a
//! failover), and the change feed the live page listens to: one message per applied object, and
//! one when the audit trail grew (polled, so rows another replica wrote count too).

use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector::ObjectRef};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::broadcast;

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
    changes: broadcast::Sender<Change>,
}

impl PageCaches {
    /// Starts the three watches and the audit poll on the current runtime; they run for as long
    /// as the process does.
    pub fn start(kube: Client, audit: AuditStore) -> Self {
        let (changes, _) = broadcast::channel(256);
        let nodes = spawn_watch(
            Api::<ProxmoxNode>::all(kube.clone()),
            changes.clone(),
            "node",
            |o| format!("node/{}", o.name_any()),
        );
        let templates = spawn_watch(
            Api::<LxcTemplate>::all(kube.clone()),
            changes.clone(),
            "template",
            |o| format!("template/{}", o.name_any()),
        );
        let containers = spawn_watch(
            Api::<LxcContainer>::all(kube),
            changes.clone(),
            "container",
            |o| format!("container/{}/{}", o.namespace().unwrap_or_default(), o.name_any()),
        );
        tokio::spawn(poll_audit(audit, changes.clone()));
        Self {
            nodes,
            templates,
            containers,
            changes,
        }
    }

    /// Caches over stores someone else fills (tests and benchmarks), with no change feed source.
    pub fn from_stores(
        nodes: Store<ProxmoxNode>,
        templates: Store<LxcTemplate>,
        containers: Store<LxcContainer>,
    ) -> Self {
        Self {
            nodes,
            templates,
            containers,
            changes: broadcast::channel(16).0,
        }
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn node(&self, name: &str) -> Option<std::sync::Arc<ProxmoxNode>> {
        self.nodes.get(&ObjectRef::new(name))
    }

    pub fn template(&self, name: &str) -> Option<std::sync::Arc<LxcTemplate>> {
        self.templates.get(&ObjectRef::new(name))
    }

    pub fn container(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<LxcContainer>> {
        self.containers.get(&ObjectRef::new(name).within(namespace))
    }
}

/// Watches one kind into a store; every applied or deleted object is announced by `key`, a
/// finished (re)listing as `<prefix>/*`.
fn spawn_watch<K>(
    api: Api<K>,
    changes: broadcast::Sender<Change>,
    prefix: &'static str,
    key: fn(&K) -> String,
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::Delete(obj)) => {
                    // Nobody listening is fine.
                    let _ = changes.send(Change(key(&obj)));
                }
                Ok(watcher::Event::InitDone) => {
                    let _ = changes.send(Change(format!("{prefix}/*")));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "page watch failed; retrying"),
            }
        }
    });
    store
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

//! One watch per kind for the whole process. Each kind's watch feeds one store, and every
//! controller that needs its events subscribes to that same stream: an object reaches a
//! controller only after the store holds it, so a reconcile that reads the cache sees at least
//! what woke it (two watchers of one kind could disagree for a moment, and a reconcile woken by
//! a node turning Ready could read it as not Ready yet). Deletions are delivered too (the
//! object as it was last seen), so a deleted node still wakes what depends on it.
//!
//! kube's own shared streams (`ReflectHandle`) are not used: they drop deletions, and a handle
//! whose object was deleted before it was polled stops waking its task.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::crd::{LxcTemplate, ProxmoxNode};

/// A shared watch of one kind: its store and its subscribers.
pub struct SharedWatch<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    pub store: Store<K>,
    writer: Writer<K>,
    subscribers: Mutex<Vec<UnboundedSender<Arc<K>>>>,
}

impl<K> SharedWatch<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    pub fn new() -> Self {
        let (store, writer) = reflector::store();
        Self {
            store,
            writer,
            subscribers: Mutex::default(),
        }
    }

    /// A stream of the kind's changed (and deleted) objects, each delivered after the store
    /// applied it.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (tx, rx) = unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|o| (o, rx)) })
    }

    /// Drives the watch (until the future is dropped).
    pub fn run(self, api: Api<K>) -> impl Future<Output = ()> + Send {
        let subscribers = self.subscribers.into_inner().unwrap_or_else(|p| p.into_inner());
        let store = self.store;
        let send = move |object: Arc<K>| {
            for tx in &subscribers {
                let _ = tx.send(object.clone());
            }
        };
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(self.writer)
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                        send(Arc::new(object))
                    }
                    // A (re)listing reaches the store only once it is complete: then every
                    // object is delivered (a controller drops a request for an object its
                    // store does not hold yet).
                    Ok(watcher::Event::InitDone) => store.state().into_iter().for_each(&send),
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying"),
                }
                futures::future::ready(())
            })
    }
}

impl<K> Default for SharedWatch<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

/// The watches the controllers share: nodes and templates (containers are watched by their
/// own controller only).
#[derive(Default)]
pub struct Watches {
    pub nodes: SharedWatch<ProxmoxNode>,
    pub templates: SharedWatch<LxcTemplate>,
}

impl Watches {
    /// Drives both watches (subscribe first).
    pub async fn run(self, kube: kube::Client) {
        tokio::join!(
            self.nodes.run(Api::all(kube.clone())),
            self.templates.run(Api::all(kube)),
        );
    }
}

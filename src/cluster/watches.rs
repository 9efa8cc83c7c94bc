//! One watch per kind for the whole process. Each kind's watch feeds one store, and every
//! controller that needs its events subscribes to that same stream: an object reaches a
//! controller only after the store holds it, so a reconcile that reads the cache sees at least
//! what woke it (two watchers of one kind could disagree for a moment, and a reconcile woken by
//! a node turning Ready could read it as not Ready yet).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};

use crate::crd::{LxcTemplate, ProxmoxNode};

/// How many events a slow subscriber may lag behind before the watch waits for it.
const BUFFER: usize = 1024;

/// A shared watch of one kind: its store and its subscribers.
pub struct SharedWatch<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    pub store: Store<K>,
    writer: Writer<K>,
    listed: Arc<AtomicBool>,
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
        let (store, writer) = reflector::store_shared(BUFFER);
        Self {
            store,
            writer,
            listed: Default::default(),
        }
    }

    /// True once the store holds its first full listing. Read this instead of polling
    /// `Store::wait_until_ready` from a second place: its readiness is a one-waker channel, so
    /// a second poller (or a `now_or_never`) can take the wake-up another waiter needs.
    pub fn listed(&self) -> Arc<AtomicBool> {
        self.listed.clone()
    }

    /// A stream of the kind's changed objects, each delivered after the store applied it.
    pub fn subscribe(&self) -> ReflectHandle<K> {
        self.writer
            .subscribe()
            .expect("a shared store hands out subscribers")
    }

    /// Drives the watch (until the future is dropped).
    pub fn run(self, api: Api<K>) -> impl Future<Output = ()> + Send {
        let listed = self.listed;
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect_shared(self.writer)
            .for_each(move |event| {
                if let Ok(watcher::Event::InitDone) = event {
                    // Yielded after the store applied it.
                    listed.store(true, Ordering::Release);
                }
                async move {
                    if let Err(e) = event {
                        tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
                    }
                }
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

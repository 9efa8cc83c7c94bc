//! The in-process backend, for a single replica without Redis: the same semantics as Redis
//! (owner tokens, expiry, owner-only renew and release), kept in a mutex-guarded map.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Backend, Unavailable};

#[derive(Default)]
struct State {
    locks: HashMap<String, (String, Instant)>,
    vmids: HashMap<String, (BTreeSet<u32>, Instant)>,
}

/// In-process coordination.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

impl MemoryBackend {
    fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        state.locks.retain(|_, (_, expires)| *expires > now);
        state.vmids.retain(|_, (_, expires)| *expires > now);
        f(&mut state, now)
    }
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "in-process"
    }

    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
        Ok(self.with(|s, now| {
            if s.locks.contains_key(key) {
                return false;
            }
            s.locks.insert(key.to_string(), (token.to_string(), now + ttl));
            true
        }))
    }

    async fn renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
        Ok(self.with(|s, now| match s.locks.get_mut(key) {
            Some((owner, expires)) if owner == token => {
                *expires = now + ttl;
                true
            }
            _ => false,
        }))
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, Unavailable> {
        Ok(self.with(|s, _| match s.locks.get(key) {
            Some((owner, _)) if owner == token => s.locks.remove(key).is_some(),
            _ => false,
        }))
    }

    async fn vmids_replace(
        &self,
        cluster: &str,
        vmids: &BTreeSet<u32>,
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        self.with(|s, now| s.vmids.insert(cluster.to_string(), (vmids.clone(), now + ttl)));
        Ok(())
    }

    async fn vmids(&self, cluster: &str) -> Result<Option<BTreeSet<u32>>, Unavailable> {
        Ok(self.with(|s, _| s.vmids.get(cluster).map(|(v, _)| v.clone())))
    }

    async fn vmids_update(&self, cluster: &str, vmid: u32, present: bool) -> Result<(), Unavailable> {
        self.with(|s, _| {
            if let Some((set, _)) = s.vmids.get_mut(cluster) {
                if present {
                    set.insert(vmid);
                } else {
                    set.remove(&vmid);
                }
            }
        });
        Ok(())
    }
}

//! Coordination between reconciles (and replicas): locks with an owner token, expiry, renewal
//! while work runs and compare-and-delete release, and the per-cluster VMID cache.
//!
//! Redis serves when a URL is given; otherwise an in-process implementation does, which is safe
//! with leader election and one active replica. `backend()` says which is in use (for `/readyz`
//! and the status page).

mod memory;
mod redis_backend;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use memory::MemoryBackend;
pub use redis_backend::RedisBackend;

/// Coordination could not be reached or answered badly.
#[derive(Debug, thiserror::Error)]
#[error("coordination store unavailable: {0}")]
pub struct Unavailable(pub String);

/// The operations a backend provides. Keys are plain strings; the callers build them with
/// [`allocation_lock`] and [`container_lock`].
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// `"redis"` or `"in-process"`.
    fn name(&self) -> &'static str;
    /// Sets `key` to `token` with expiry `ttl` unless it is held. True when acquired.
    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable>;
    /// Extends the expiry if `token` still holds `key`. True when still held.
    async fn renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable>;
    /// Deletes `key` only if `token` holds it. True when released; false for a non-owner.
    async fn release(&self, key: &str, token: &str) -> Result<bool, Unavailable>;
    /// Replaces the cached VMIDs of `cluster`, valid for `ttl`.
    async fn vmids_replace(
        &self,
        cluster: &str,
        vmids: &BTreeSet<u32>,
        ttl: Duration,
    ) -> Result<(), Unavailable>;
    /// The cached VMIDs of `cluster`, or `None` when the cache is missing or expired.
    async fn vmids(&self, cluster: &str) -> Result<Option<BTreeSet<u32>>, Unavailable>;
    /// Adds (allocate) or removes (delete) one VMID in an existing cache.
    async fn vmids_update(&self, cluster: &str, vmid: u32, present: bool) -> Result<(), Unavailable>;
}

/// The lock for VMID allocation in one Proxmox cluster.
pub fn allocation_lock(cluster: &str) -> String {
    format!("lxc-operator:lock:allocate:{cluster}")
}

/// The lock for mutating one container (by its Kubernetes uid).
pub fn container_lock(uid: &str) -> String {
    format!("lxc-operator:lock:container:{uid}")
}

/// The shared coordination handle.
#[derive(Clone)]
pub struct Coordinator {
    backend: Arc<dyn Backend>,
    ttl: Duration,
}

impl Coordinator {
    /// Redis at `url`, or in-process when `None`; `ttl` is the lock expiry (renewed at a third).
    pub async fn connect(url: Option<&str>, ttl: Duration) -> Result<Self, Unavailable> {
        let backend: Arc<dyn Backend> = match url {
            Some(url) => Arc::new(RedisBackend::connect(url).await?),
            None => Arc::new(MemoryBackend::default()),
        };
        Ok(Self { backend, ttl })
    }

    /// A coordinator over any backend.
    pub fn with_backend(backend: Arc<dyn Backend>, ttl: Duration) -> Self {
        Self { backend, ttl }
    }

    /// Which backend serves: `"redis"` or `"in-process"`.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The underlying backend (VMID cache operations).
    pub fn store(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Takes `key` if free. The returned guard renews the lock in the background until it is
    /// released or dropped; `lost()` turns true if renewal finds the lock gone.
    pub async fn try_lock(&self, key: &str) -> Result<Option<LockGuard>, Unavailable> {
        let token = uuid::Uuid::new_v4().to_string();
        if !self.backend.try_lock(key, &token, self.ttl).await? {
            return Ok(None);
        }
        let (lost_tx, lost_rx) = watch::channel(false);
        let (backend, ttl, k, t) = (self.backend.clone(), self.ttl, key.to_string(), token.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match backend.renew(&k, &t, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(lock = %k, "lock lost before release");
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => tracing::warn!(lock = %k, error = %e, "lock renewal failed; retrying"),
                }
            }
        });
        Ok(Some(LockGuard {
            key: key.to_string(),
            token,
            backend: self.backend.clone(),
            renewer,
            lost: lost_rx,
        }))
    }
}

/// Whether a held lock was lost, as a cloneable handle.
#[derive(Clone, Debug)]
pub struct LockWatch(watch::Receiver<bool>);

impl LockWatch {
    /// True once renewal found the lock gone.
    pub fn lost(&self) -> bool {
        *self.0.borrow()
    }
}

/// A held lock. Release it with [`LockGuard::release`]; dropping it stops the renewal so the
/// lock expires after its ttl (what a crashed holder's lock does too).
pub struct LockGuard {
    key: String,
    token: String,
    backend: Arc<dyn Backend>,
    renewer: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

impl LockGuard {
    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether renewal found the lock taken away (work under it must stop).
    pub fn lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// A handle that tells whether the lock was lost, for work that outlives a borrow of the
    /// guard (an SSH target checking before each command).
    pub fn watch(&self) -> LockWatch {
        LockWatch(self.lost.clone())
    }

    /// Stops renewing and deletes the lock if this guard still owns it.
    pub async fn release(self) -> Result<bool, Unavailable> {
        self.renewer.abort();
        self.backend.release(&self.key, &self.token).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

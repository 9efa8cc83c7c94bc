//! Coordination between reconciles (and replicas): locks with an owner token, expiry, renewal
//! while work runs and compare-and-delete release, and the per-cluster VMID cache.
//!
//! Redis serves when a URL is given; otherwise an in-process implementation does, which is safe
//! with leader election and one active replica. `backend()` says which is in use (for `/readyz`
//! and the status page).

mod memory;
mod redis_backend;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

pub use memory::MemoryBackend;
pub use redis_backend::RedisBackend;

use crate::observe::Observed;

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

/// The metrics label of a lock key: `container`, `allocation` or `other`.
fn lock_kind(key: &str) -> &'static str {
    match key.strip_prefix("lxc-operator:lock:") {
        Some(rest) if rest.starts_with("container:") => "container",
        Some(rest) if rest.starts_with("allocate:") => "allocation",
        _ => "other",
    }
}

/// Keys whose last try was refused, and since when: the wait a later acquire reports. Bounded:
/// a key leaves when it is acquired, and past this many the oldest waits are forgotten.
const MAX_WAITING_KEYS: usize = 10_000;

/// The shared coordination handle.
#[derive(Clone)]
pub struct Coordinator {
    backend: Arc<dyn Backend>,
    ttl: Duration,
    observer: Observed,
    waiting: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Coordinator {
    /// Redis at `url`, or in-process when `None`; `ttl` is the lock expiry (renewed at a third).
    pub async fn connect(url: Option<&str>, ttl: Duration) -> Result<Self, Unavailable> {
        let backend: Arc<dyn Backend> = match url {
            Some(url) => Arc::new(RedisBackend::connect(url).await?),
            None => Arc::new(MemoryBackend::default()),
        };
        Ok(Self::with_backend(backend, ttl))
    }

    /// A coordinator over any backend.
    pub fn with_backend(backend: Arc<dyn Backend>, ttl: Duration) -> Self {
        Self {
            backend,
            ttl,
            observer: None,
            waiting: Arc::default(),
        }
    }

    /// Reports locks taken and let go, and how long they were waited for, to `observer`.
    pub fn observed(mut self, observer: Observed) -> Self {
        self.observer = observer;
        self
    }

    /// Notes a refused try of `key` (the wait starts at the first), or takes the wait out
    /// once acquired: the time since the first refusal, else `call` (the acquiring call).
    fn waited(&self, key: &str, acquired: bool, call: Duration) -> Duration {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if acquired {
            return waiting.remove(key).map_or(call, |since| since.elapsed());
        }
        if waiting.len() >= MAX_WAITING_KEYS && !waiting.contains_key(key) {
            waiting.clear();
        }
        waiting.entry(key.to_string()).or_insert_with(Instant::now);
        call
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
    /// released or dropped. The lock is judged by the local monotonic clock: each successful
    /// acquire or renew proves it for two thirds of the ttl from the moment the request left,
    /// so `lost()` is true as soon as that runs out, even when the renewal task has not run
    /// (a frozen or starved process), and stays true.
    pub async fn try_lock(&self, key: &str) -> Result<Option<LockGuard>, Unavailable> {
        let token = uuid::Uuid::new_v4().to_string();
        let sent = Instant::now();
        let acquired = self.backend.try_lock(key, &token, self.ttl).await?;
        let waited = self.waited(key, acquired, sent.elapsed());
        if !acquired {
            return Ok(None);
        }
        let kind = lock_kind(key);
        if let Some(o) = &self.observer {
            o.lock_acquired(kind, waited);
        }
        let validity = Arc::new(Validity::new(sent + valid_for(self.ttl)));
        let renewer = tokio::spawn(renew(
            self.backend.clone(),
            key.to_string(),
            token.clone(),
            self.ttl,
            validity.clone(),
        ));
        Ok(Some(LockGuard {
            key: key.to_string(),
            token,
            backend: self.backend.clone(),
            renewer,
            validity,
            kind,
            observer: self.observer.clone(),
        }))
    }
}

/// How long one successful acquire or renew proves a lock held, from the moment it was sent:
/// the third of the ttl left over covers the renewal's own round trip and a late wake-up.
pub fn valid_for(ttl: Duration) -> Duration {
    ttl * 2 / 3
}

/// Until when a lock is proven held; `None` once it is lost (for good).
#[derive(Debug)]
struct Validity(Mutex<Option<Instant>>);

impl Validity {
    fn new(until: Instant) -> Self {
        Self(Mutex::new(Some(until)))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the lock is lost; a lapse found here is recorded, so a later renewal cannot
    /// make a lapsed lock look continuous.
    fn lost(&self) -> bool {
        let mut slot = self.slot();
        match *slot {
            Some(until) if Instant::now() < until => false,
            _ => {
                *slot = None;
                true
            }
        }
    }

    /// A renewal sent at `sent` succeeded. It extends the lock only if the lock was still
    /// valid when the renewal left.
    fn renewed(&self, sent: Instant, valid_for: Duration) -> bool {
        let mut slot = self.slot();
        match *slot {
            Some(until) if sent < until => {
                *slot = Some(sent + valid_for);
                true
            }
            _ => {
                *slot = None;
                false
            }
        }
    }

    fn lose(&self) {
        *self.slot() = None;
    }
}

/// Renews the lock every third of its ttl (each call with a deadline of a third), until the
/// lock is lost or the guard goes.
async fn renew(
    backend: Arc<dyn Backend>,
    key: String,
    token: String,
    ttl: Duration,
    validity: Arc<Validity>,
) {
    let every = ttl / 3;
    let mut next = Instant::now() + every;
    loop {
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        next = sent + every;
        if validity.lost() {
            tracing::warn!(lock = %key, "lock validity ran out before its renewal; lock lost");
            return;
        }
        match tokio::time::timeout(every, backend.renew(&key, &token, ttl)).await {
            Ok(Ok(true)) => {
                if !validity.renewed(sent, valid_for(ttl)) {
                    tracing::warn!(lock = %key, "lock renewed only after its validity ran out; lock lost");
                    return;
                }
            }
            Ok(Ok(false)) => {
                tracing::warn!(lock = %key, "lock lost before release");
                validity.lose();
                return;
            }
            Ok(Err(e)) => tracing::warn!(lock = %key, error = %e, "lock renewal failed; retrying"),
            Err(_) => tracing::warn!(lock = %key, after = ?every, "lock renewal timed out; retrying"),
        }
    }
}

/// Whether a held lock was lost, as a cloneable handle (judged like [`LockGuard::lost`]).
#[derive(Clone, Debug)]
pub struct LockWatch(Arc<Validity>);

impl LockWatch {
    /// True once the lock can no longer be trusted; stays true.
    pub fn lost(&self) -> bool {
        self.0.lost()
    }
}

/// A held lock. Release it with [`LockGuard::release`]; dropping it stops the renewal so the
/// lock expires after its ttl (what a crashed holder's lock does too).
pub struct LockGuard {
    key: String,
    token: String,
    backend: Arc<dyn Backend>,
    renewer: tokio::task::JoinHandle<()>,
    validity: Arc<Validity>,
    kind: &'static str,
    observer: Observed,
}

impl LockGuard {
    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the lock can no longer be trusted (work under it must stop): the store said it
    /// is gone, or no renewal proved it within its validity by the local clock. Once true,
    /// always true.
    pub fn lost(&self) -> bool {
        self.validity.lost()
    }

    /// A handle that tells whether the lock was lost, for work that outlives a borrow of the
    /// guard (an SSH target checking before each command).
    pub fn watch(&self) -> LockWatch {
        LockWatch(self.validity.clone())
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
        if let Some(o) = &self.observer {
            o.lock_released(self.kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn validity_runs_out_by_the_local_clock_and_stays_lost() {
        let v = Validity::new(Instant::now() + ms(100));
        assert!(!v.lost());
        assert!(v.renewed(Instant::now(), ms(100)), "renewed while valid");
        tokio::time::sleep(ms(150)).await;
        assert!(v.lost(), "no renewal within its validity");
        assert!(
            !v.renewed(Instant::now(), ms(1000)),
            "a late renewal does not revive it"
        );
        assert!(v.lost(), "lost for good");
    }

    #[tokio::test]
    async fn a_renewal_sent_after_the_lapse_does_not_count() {
        let start = Instant::now();
        let v = Validity::new(start + ms(50));
        tokio::time::sleep(ms(80)).await;
        // Nobody called lost() in between; the renewal left after the lapse all the same.
        assert!(!v.renewed(Instant::now(), ms(1000)));
        assert!(v.lost());
        let fresh = Validity::new(Instant::now() + ms(50));
        // A renewal that left in time counts even if its answer came late.
        assert!(fresh.renewed(Instant::now(), ms(1000)));
        tokio::time::sleep(ms(80)).await;
        assert!(!fresh.lost());
    }

    /// A backend whose renewals hang (a frozen or unreachable store).
    struct Hanging(MemoryBackend);

    #[async_trait::async_trait]
    impl Backend for Hanging {
        fn name(&self) -> &'static str {
            "hanging"
        }
        async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
            self.0.try_lock(key, token, ttl).await
        }
        async fn renew(&self, _: &str, _: &str, _: Duration) -> Result<bool, Unavailable> {
            std::future::pending().await
        }
        async fn release(&self, key: &str, token: &str) -> Result<bool, Unavailable> {
            self.0.release(key, token).await
        }
        async fn vmids_replace(&self, c: &str, v: &BTreeSet<u32>, ttl: Duration) -> Result<(), Unavailable> {
            self.0.vmids_replace(c, v, ttl).await
        }
        async fn vmids(&self, c: &str) -> Result<Option<BTreeSet<u32>>, Unavailable> {
            self.0.vmids(c).await
        }
        async fn vmids_update(&self, c: &str, vmid: u32, present: bool) -> Result<(), Unavailable> {
            self.0.vmids_update(c, vmid, present).await
        }
    }

    #[tokio::test]
    async fn a_lock_whose_renewals_hang_is_lost_when_its_validity_ends() {
        let ttl = ms(300);
        let c = Coordinator::with_backend(Arc::new(Hanging(MemoryBackend::default())), ttl);
        let start = Instant::now();
        let guard = c.try_lock("k").await.unwrap().unwrap();
        while !guard.lost() {
            assert!(
                start.elapsed() < ms(1000),
                "still trusted after {:?}",
                start.elapsed()
            );
            tokio::time::sleep(ms(10)).await;
        }
        let after = start.elapsed();
        assert!(
            after >= valid_for(ttl),
            "lost at {after:?}, before its validity ended"
        );
        assert!(
            after < ttl,
            "lost at {after:?}: the store's own expiry already freed it"
        );
    }

    /// A frozen process: the runtime's only thread is blocked, so the renewal task cannot run.
    /// On waking, the very first look at the guard must say lost.
    #[tokio::test(flavor = "current_thread")]
    async fn a_frozen_holder_sees_its_lock_lost_before_the_renewal_runs() {
        let ttl = ms(300);
        let c = Coordinator::with_backend(Arc::new(MemoryBackend::default()), ttl);
        let guard = c.try_lock("k").await.unwrap().unwrap();
        assert!(!guard.lost());
        let watch = guard.watch();
        std::thread::sleep(ttl);
        assert!(watch.lost(), "the lock's validity ran out while frozen");
        assert!(guard.lost());
        tokio::time::sleep(ttl).await;
        assert!(guard.lost(), "the renewal that ran late did not revive it");
    }

    #[tokio::test]
    async fn a_renewed_lock_stays_valid() {
        let ttl = ms(300);
        let c = Coordinator::with_backend(Arc::new(MemoryBackend::default()), ttl);
        let guard = c.try_lock("k").await.unwrap().unwrap();
        tokio::time::sleep(ttl * 3).await;
        assert!(!guard.lost());
        assert!(guard.release().await.unwrap());
    }
}

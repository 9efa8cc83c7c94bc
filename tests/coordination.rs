//! Locks and the VMID cache against a real Redis, and the in-process backend with the same
//! semantics: contention, expiry of a crashed holder, renewal, owner-only release, restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lxc_operator::coordination::{Backend, Coordinator, MemoryBackend, RedisBackend, container_lock};

async fn redis_coordinator(ttl: Duration) -> Coordinator {
    let backend = RedisBackend::connect(&test_world::redis().url())
        .await
        .expect("connect to redis");
    Coordinator::with_backend(Arc::new(backend), ttl)
}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Two holders contend for one lock: exactly one wins until it releases.
async fn contention(a: Coordinator, b: Coordinator) {
    let key = container_lock(&unique("contention"));
    let held = a
        .try_lock(&key)
        .await
        .unwrap()
        .expect("first holder gets the lock");
    assert!(
        b.try_lock(&key).await.unwrap().is_none(),
        "second holder must wait"
    );
    assert!(a.try_lock(&key).await.unwrap().is_none(), "not re-entrant either");
    assert!(held.release().await.unwrap(), "the owner releases");
    let second = b.try_lock(&key).await.unwrap().expect("free after release");
    second.release().await.unwrap();
}

/// A holder that crashes (drops without releasing, stops renewing) loses the lock at expiry.
async fn crashed_holder_expires(a: Coordinator, b: Coordinator, ttl: Duration) {
    let key = container_lock(&unique("crash"));
    let held = a.try_lock(&key).await.unwrap().unwrap();
    drop(held);
    assert!(
        b.try_lock(&key).await.unwrap().is_none(),
        "still held right after the crash"
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(b.try_lock(&key).await.unwrap().is_some(), "expired after its ttl");
}

/// A live holder keeps renewing: the lock outlives several ttls.
async fn renewal_keeps_the_lock(a: Coordinator, b: Coordinator, ttl: Duration) {
    let key = container_lock(&unique("renew"));
    let held = a.try_lock(&key).await.unwrap().unwrap();
    tokio::time::sleep(ttl * 3).await;
    assert!(!held.lost(), "renewal kept it");
    assert!(
        b.try_lock(&key).await.unwrap().is_none(),
        "still held after 3 ttls"
    );
    assert!(held.release().await.unwrap());
}

/// Only the owner's token releases; a stale owner cannot release the next holder's lock.
async fn non_owner_release_refused(store: &dyn Backend) {
    let key = container_lock(&unique("owner"));
    assert!(
        store
            .try_lock(&key, "token-a", Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert!(
        !store.release(&key, "token-b").await.unwrap(),
        "non-owner release is refused"
    );
    assert!(
        !store
            .renew(&key, "token-b", Duration::from_secs(10))
            .await
            .unwrap(),
        "non-owner renew too"
    );
    assert!(
        !store
            .try_lock(&key, "token-b", Duration::from_secs(10))
            .await
            .unwrap(),
        "still held by a"
    );
    assert!(store.release(&key, "token-a").await.unwrap());
    assert!(
        !store.release(&key, "token-a").await.unwrap(),
        "released once only"
    );
}

/// The VMID cache: replaced wholesale, updated per VMID, gone after its expiry.
async fn vmid_cache(store: &dyn Backend) {
    let cluster = unique("cluster");
    assert_eq!(store.vmids(&cluster).await.unwrap(), None, "no cache yet");
    store.vmids_update(&cluster, 5, true).await.unwrap();
    assert_eq!(
        store.vmids(&cluster).await.unwrap(),
        None,
        "updates do not create a cache"
    );
    let ids: BTreeSet<u32> = [100, 101, 250].into();
    store
        .vmids_replace(&cluster, &ids, Duration::from_millis(600))
        .await
        .unwrap();
    assert_eq!(store.vmids(&cluster).await.unwrap(), Some(ids));
    store.vmids_update(&cluster, 300, true).await.unwrap();
    store.vmids_update(&cluster, 101, false).await.unwrap();
    assert_eq!(store.vmids(&cluster).await.unwrap(), Some([100, 250, 300].into()));
    let empty = unique("empty");
    store
        .vmids_replace(&empty, &BTreeSet::new(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        store.vmids(&empty).await.unwrap(),
        Some(BTreeSet::new()),
        "an empty cluster is cached"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(store.vmids(&cluster).await.unwrap(), None, "expired");
}

const TTL: Duration = Duration::from_millis(600);

#[tokio::test]
async fn redis_locks_contend() {
    contention(redis_coordinator(TTL).await, redis_coordinator(TTL).await).await;
}

#[tokio::test]
async fn redis_lock_of_a_crashed_holder_expires() {
    crashed_holder_expires(redis_coordinator(TTL).await, redis_coordinator(TTL).await, TTL).await;
}

#[tokio::test]
async fn redis_lock_is_renewed_while_held() {
    renewal_keeps_the_lock(redis_coordinator(TTL).await, redis_coordinator(TTL).await, TTL).await;
}

#[tokio::test]
async fn redis_release_by_non_owner_is_refused() {
    let backend = RedisBackend::connect(&test_world::redis().url()).await.unwrap();
    non_owner_release_refused(&backend).await;
}

#[tokio::test]
async fn redis_vmid_cache() {
    let backend = RedisBackend::connect(&test_world::redis().url()).await.unwrap();
    vmid_cache(&backend).await;
}

/// An update racing the cache's expiry must not recreate the cache without expiry: such a key
/// would hold only the updated VMID, for good, and hide every other VMID of the cluster.
#[tokio::test]
async fn redis_vmid_update_never_recreates_an_expired_cache() {
    let url = test_world::redis().url();
    let backend = RedisBackend::connect(&url).await.unwrap();
    let mut raw = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for round in 0..100 {
        let cluster = unique("race");
        backend
            .vmids_replace(&cluster, &[100].into(), Duration::from_millis(4))
            .await
            .unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(8) {
            backend.vmids_update(&cluster, 200, true).await.unwrap();
        }
        let pttl: i64 = redis::cmd("PTTL")
            .arg(format!("lxc-operator:vmids:{cluster}"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_ne!(pttl, -1, "round {round}: the cache came back without expiry");
        assert_eq!(
            backend.vmids(&cluster).await.unwrap(),
            None,
            "round {round}: expired"
        );
    }
}

#[tokio::test]
async fn redis_restart_is_survived() {
    let mut redis = test_world::PrivateRedis::start().unwrap();
    let coordinator =
        Coordinator::with_backend(Arc::new(RedisBackend::connect(&redis.url()).await.unwrap()), TTL);
    assert_eq!(coordinator.backend(), "redis");
    let held = coordinator
        .try_lock("k")
        .await
        .unwrap()
        .expect("lock before the restart");
    redis.stop();
    let err = coordinator.try_lock("other").await;
    assert!(
        err.is_err(),
        "a down Redis is an error, never a silently granted lock"
    );
    redis.restart().unwrap();
    // The connection manager reconnects by itself; give it a moment.
    let mut relocked = None;
    for _ in 0..50 {
        if let Ok(Some(g)) = coordinator.try_lock("k").await {
            relocked = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let relocked = relocked.expect("locks work again after the restart");
    assert!(
        !held.release().await.unwrap(),
        "the pre-restart guard no longer owns the lock"
    );
    assert!(relocked.release().await.unwrap());
}

#[tokio::test]
async fn in_process_backend_has_the_same_semantics() {
    let shared: Arc<MemoryBackend> = Arc::default();
    let a = Coordinator::with_backend(shared.clone(), TTL);
    let b = Coordinator::with_backend(shared.clone(), TTL);
    assert_eq!(a.backend(), "in-process");
    contention(a.clone(), b.clone()).await;
    crashed_holder_expires(a.clone(), b.clone(), TTL).await;
    renewal_keeps_the_lock(a, b, TTL).await;
    non_owner_release_refused(shared.as_ref()).await;
    vmid_cache(shared.as_ref()).await;
}

#[tokio::test]
async fn connect_picks_the_backend_from_the_url() {
    let none = Coordinator::connect(None, TTL).await.unwrap();
    assert_eq!(none.backend(), "in-process");
    let redis = Coordinator::connect(Some(&test_world::redis().url()), TTL)
        .await
        .unwrap();
    assert_eq!(redis.backend(), "redis");
    assert!(
        Coordinator::connect(Some("redis://127.0.0.1:1/"), TTL)
            .await
            .is_err(),
        "unreachable Redis fails"
    );
}

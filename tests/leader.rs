//! Leader election on a real API server: one leader at a time, and a take-over within the
//! lease duration when the leader stops.

use std::time::Duration;

use lxc_operator::runtime::leader::{self, LeaderConfig};
use tokio::sync::watch;

fn config(ns: &str, identity: &str) -> LeaderConfig {
    LeaderConfig {
        namespace: ns.to_string(),
        lease_name: "lxc-operator".to_string(),
        identity: identity.to_string(),
        lease_duration: Duration::from_secs(3),
        retry_period: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn one_leader_at_a_time_and_take_over_after_the_leader_dies() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("leader").await;
    let (a_tx, a_rx) = watch::channel(false);
    let (b_tx, b_rx) = watch::channel(false);
    let a = tokio::spawn(leader::run(cp.client().await, config(&ns, "replica-a"), a_tx));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = tokio::spawn(leader::run(cp.client().await, config(&ns, "replica-b"), b_tx));

    // For two lease durations, never both, and the first one leads.
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < until {
        let (la, lb) = (*a_rx.borrow(), *b_rx.borrow());
        assert!(!(la && lb), "two leaders at once");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(*a_rx.borrow() && !*b_rx.borrow(), "replica-a should lead");

    // The leader dies without releasing: b takes over within the lease duration (+ a retry).
    a.abort();
    let died = tokio::time::Instant::now();
    let mut b_rx2 = b_rx.clone();
    tokio::time::timeout(Duration::from_secs(5), b_rx2.wait_for(|l| *l))
        .await
        .expect("replica-b takes over")
        .unwrap();
    let took = died.elapsed();
    assert!(
        took <= Duration::from_millis(3000 + 600),
        "take-over took {took:?}"
    );
    b.abort();
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("release").await;
    let client = cp.client().await;
    let api = kube::Api::namespaced(client.clone(), &ns);
    assert!(
        leader::try_acquire_or_renew(&api, &config(&ns, "a"))
            .await
            .unwrap()
    );
    assert!(
        !leader::try_acquire_or_renew(&api, &config(&ns, "b"))
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        leader::try_acquire_or_renew(&api, &config(&ns, "a"))
            .await
            .unwrap(),
        "a renews"
    );
    leader::release(client, &config(&ns, "a")).await.unwrap();
    assert!(
        leader::try_acquire_or_renew(&api, &config(&ns, "b"))
            .await
            .unwrap(),
        "b takes it at once"
    );
}

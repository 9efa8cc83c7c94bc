//! Leader election on a real API server: one leader at a time, a take-over within the lease
//! duration when the leader stops, and a frozen leader that stops leading by its own clock
//! before its election loop runs again.

use std::time::Duration;

use lxc_operator::cluster::fence::Leadership;
use lxc_operator::runtime::leader::{self, Elector, LeaderConfig};
use tokio::sync::watch;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(300);

fn config(ns: &str, identity: &str) -> LeaderConfig {
    LeaderConfig {
        namespace: ns.to_string(),
        lease_name: "lxc-operator".to_string(),
        identity: identity.to_string(),
        lease_duration: LEASE,
        retry_period: RETRY,
    }
}

/// One replica's election, as the operator runs it.
struct Replica {
    leadership: Leadership,
    leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn replica(ns: &str, identity: &str) -> Replica {
    let cp = test_world::control_plane();
    let leadership = Leadership::elected();
    let (tx, leading) = watch::channel(false);
    let task = tokio::spawn(leader::run(
        cp.client().await,
        config(ns, identity),
        leadership.clone(),
        tx,
    ));
    Replica {
        leadership,
        leading,
        task,
    }
}

#[tokio::test]
async fn one_leader_at_a_time_and_take_over_after_the_leader_dies() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("leader").await;
    let a = replica(&ns, "replica-a").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = replica(&ns, "replica-b").await;

    // For two lease durations, never both, and the first one leads.
    let until = Instant::now() + LEASE * 2;
    while Instant::now() < until {
        let (la, lb) = (a.leadership.is_leading(), b.leadership.is_leading());
        assert!(!(la && lb), "two leaders at once");
        assert!(
            !(*a.leading.borrow() && *b.leading.borrow()),
            "two published leaders"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        a.leadership.is_leading() && *a.leading.borrow(),
        "replica-a should lead"
    );
    assert!(!b.leadership.is_leading() && !*b.leading.borrow());

    // The leader dies without releasing: b takes over a lease duration after it last saw a
    // renewal (at most one retry after the last one), judged by its own clock.
    a.task.abort();
    let died = Instant::now();
    let mut b_rx = b.leading.clone();
    tokio::time::timeout(Duration::from_secs(6), b_rx.wait_for(|l| *l))
        .await
        .expect("replica-b takes over")
        .unwrap();
    let took = died.elapsed();
    println!("take-over after the leader died: {took:?} (lease {LEASE:?}, retry {RETRY:?})");
    assert!(
        took >= LEASE - RETRY,
        "took over after {took:?}: before the lease could have expired"
    );
    assert!(took <= LEASE + RETRY * 2, "take-over took {took:?}");
    assert!(b.leadership.is_leading());
    b.task.abort();
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("release").await;
    let client = cp.client().await;
    let mut a = Elector::new(client.clone(), config(&ns, "a"), Leadership::elected());
    let mut b = Elector::new(client.clone(), config(&ns, "b"), Leadership::elected());
    assert!(a.round().await.unwrap());
    assert!(a.leadership().is_leading());
    assert!(!b.round().await.unwrap(), "held by a");
    assert!(!b.leadership().is_leading());
    assert!(a.round().await.unwrap(), "a renews");
    assert!(
        !b.round().await.unwrap(),
        "still held by a: b has not seen it unchanged for a lease"
    );
    leader::release(client, &config(&ns, "a")).await.unwrap();
    assert!(b.round().await.unwrap(), "b takes it at once");
    assert!(b.leadership().is_leading());
    assert!(!a.round().await.unwrap(), "a sees b");
    assert!(!a.leadership().is_leading(), "and stops leading at once");
}

/// A replica whose whole runtime can be frozen, as SIGSTOP freezes a process: its election
/// loop, timers and lapse watcher all stop; only the shared `Leadership` can be read from
/// outside.
struct Freezable {
    leadership: Leadership,
    leading: watch::Receiver<bool>,
    freeze: tokio::sync::mpsc::UnboundedSender<Duration>,
    _thread: std::thread::JoinHandle<()>,
}

fn freezable(ns: &str, identity: &str) -> Freezable {
    let leadership = Leadership::elected();
    let (tx, leading) = watch::channel(false);
    let (freeze, mut freezes) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let config = config(ns, identity);
    let l = leadership.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // The client is built here so that its connection tasks freeze too.
            let client = test_world::control_plane().client().await;
            let election = tokio::spawn(leader::run(client, config, l, tx));
            while let Some(d) = freezes.recv().await {
                std::thread::sleep(d);
            }
            election.abort();
        });
    });
    Freezable {
        leadership,
        leading,
        freeze,
        _thread: thread,
    }
}

#[tokio::test]
async fn a_frozen_leader_stops_leading_by_its_own_clock_before_its_loop_runs() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("frozen").await;
    let a = freezable(&ns, "replica-a");
    let mut a_rx = a.leading.clone();
    tokio::time::timeout(Duration::from_secs(5), a_rx.wait_for(|l| *l))
        .await
        .expect("replica-a leads")
        .unwrap();
    let b = replica(&ns, "replica-b").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.leadership.is_leading() && !b.leadership.is_leading());

    // Freeze a for two lease durations: b takes over meanwhile.
    let freeze = LEASE * 2;
    a.freeze.send(freeze).unwrap();
    let frozen_at = Instant::now();
    let mut a_lapsed_after = None;
    let mut b_led_after = None;
    while frozen_at.elapsed() < freeze - Duration::from_millis(200) {
        let (la, lb) = (a.leadership.is_leading(), b.leadership.is_leading());
        assert!(
            !(la && lb),
            "both lead at {:?} into the freeze",
            frozen_at.elapsed()
        );
        if !la && a_lapsed_after.is_none() {
            a_lapsed_after = Some(frozen_at.elapsed());
            assert!(
                *a.leading.borrow(),
                "the frozen loop could not have published the loss: the clock judged it"
            );
        }
        if lb && b_led_after.is_none() {
            b_led_after = Some(frozen_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a_lapsed_after = a_lapsed_after.expect("the frozen leader's leadership lapsed");
    let b_led_after = b_led_after.expect("replica-b took over during the freeze");
    println!("frozen leader lapsed after {a_lapsed_after:?}; replica-b led after {b_led_after:?}");
    assert!(
        a_lapsed_after <= LEASE * 2 / 3 + RETRY,
        "validity is two thirds of the lease from the last renewal: {a_lapsed_after:?}"
    );
    assert!(
        b_led_after > a_lapsed_after,
        "b led only after a's validity ended"
    );
    assert!(b_led_after <= LEASE + RETRY * 2 + Duration::from_millis(300));

    // a wakes: it never leads again while b holds the lease, and publishes the loss.
    let woke = frozen_at + freeze;
    tokio::time::timeout(Duration::from_secs(5), a_rx.wait_for(|l| !*l))
        .await
        .expect("the woken replica publishes that it does not lead")
        .unwrap();
    println!(
        "woken replica published the loss {:?} after waking",
        woke.elapsed()
    );
    let until = Instant::now() + LEASE;
    while Instant::now() < until {
        assert!(!a.leadership.is_leading(), "the old leader came back");
        assert!(b.leadership.is_leading(), "the new leader keeps the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.task.abort();
}

//! Two operator processes against one API server, pve-sim, Postgres and Redis. The leader is
//! frozen (SIGSTOP) past its lease while creates, config changes and deletes are in flight; the
//! other takes over; the first is resumed. The audit trail (which names the acting replica)
//! must show no call the old leader made after the take-over, and pve-sim must hold exactly
//! one container per object, with the newest spec.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use lxc_operator::audit::{Outcome, OutcomeKind};
use pve_sim::{FaultConfig, LatencyRule, Match};
use serde_json::json;
use support::{World, vmid};

/// The setting: a 4 s lease, creates and destroys that take 3 s.
const LEASE_SECONDS: u64 = 4;
const OBJECTS: usize = 3;

/// An operator process; killed when the test ends, whichever way.
struct Operator {
    identity: String,
    port: u16,
    child: Child,
}

impl Operator {
    fn start(w: &World, name: &str, logs: &std::path::Path) -> Operator {
        let cp = test_world::control_plane();
        let identity = format!("{}-{name}", w.ns);
        let port = test_world::free_port();
        let log = std::fs::File::create(logs.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .args(["--namespace", &w.ns, "--identity", &identity])
            .args(["--lease-seconds", &LEASE_SECONDS.to_string(), "--replicas", "2"])
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--redis-url={}", test_world::redis().url()))
            .arg(format!("--database-url={}", test_world::postgres().url()))
            .env("RUST_LOG", "info,lxc_operator=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start lxc-operator");
        Operator {
            identity,
            port,
            child,
        }
    }

    fn actor(&self) -> String {
        format!("lxc-operator/{}", self.identity)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.identity);
    }

    async fn leads(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let Ok(response) = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        else {
            return false;
        };
        response
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|j| j["leader"] == true)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one freeze found.
struct TakeOver {
    /// When the new leader acquired the Lease (its own wall clock, written into the Lease).
    acquired: DateTime<Utc>,
    /// From the freeze to the new leader saying it leads.
    took: Duration,
}

/// Freezes `old` (the leader) and waits until `new` leads; `old` stays frozen.
async fn freeze_until_taken_over(w: &World, old: &Operator, new: &Operator) -> TakeOver {
    assert!(old.leads().await, "{} leads before the freeze", old.identity);
    old.signal("-STOP");
    let frozen = Instant::now();
    while !new.leads().await {
        assert!(
            frozen.elapsed() < Duration::from_secs(LEASE_SECONDS * 3),
            "{} did not take over from the frozen leader",
            new.identity
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = frozen.elapsed();
    let lease = kube::Api::<Lease>::namespaced(w.kube.clone(), &w.ns)
        .get("lxc-operator")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some(new.identity.as_str()));
    let acquired = lease.acquire_time.expect("acquireTime").0;
    let acquired = DateTime::<Utc>::from_timestamp_micros(acquired.as_microsecond()).unwrap();
    TakeOver { acquired, took }
}

/// Lets the new leader work a moment longer, then wakes the old one.
async fn resume_after_a_while(old: &Operator) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    old.signal("-CONT");
}

/// The old leader's calls recorded at or after the take-over, for any of `uids`, that may
/// have reached Proxmox: anything but a call the fence refused before it was made.
async fn calls_after(old: &Operator, uids: &[String], since: DateTime<Utc>) -> Vec<String> {
    let audit = support::audit().await;
    let mut found = Vec::new();
    for uid in uids {
        for r in audit.by_object(uid, 500).await.unwrap() {
            let fenced = matches!(
                r.outcome.as_ref().map(|o| &o.outcome),
                Some(Outcome::Failed { class, .. }) if class == "fenced"
            );
            if r.intent.actor == old.actor() && r.at >= since && !fenced {
                let kind = r.outcome_kind();
                found.push(format!(
                    "{} {} {} at {} ({})",
                    r.intent.object_name,
                    r.intent.operation,
                    r.intent.vmid.unwrap_or_default(),
                    r.at,
                    if kind == OutcomeKind::Pending {
                        "pending"
                    } else {
                        kind.as_str()
                    }
                ));
            }
        }
    }
    found
}

/// Waits until the simulator has answered a request matching `hit` (a call is in flight).
async fn until_requested(w: &World, what: &str, hit: impl Fn(&pve_sim::LogEntry) -> bool) {
    let start = Instant::now();
    while !w.sim.admin().requests().iter().any(&hit) {
        assert!(start.elapsed() < Duration::from_secs(60), "never saw {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn memory_of(cfg: &lxc_operator::proxmox::types::LxcConfig) -> String {
    cfg.get("memory").map(|m| m.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn a_frozen_leader_never_acts_after_the_take_over() {
    let w = World::without_operator("failover", &["pve1"], |mut c| {
        c.task_durations_ms.insert("vzcreate".into(), 3000);
        c.task_durations_ms.insert("vzdestroy".into(), 3000);
        c
    })
    .await;
    let logs = support::scratch(&format!("failover-{}", w.ns));
    println!("operator logs in {}", logs.display());
    let a = Operator::start(&w, "a", &logs);
    let start = Instant::now();
    while !a.leads().await {
        assert!(start.elapsed() < Duration::from_secs(30), "replica a never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = Operator::start(&w, "b", &logs);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!b.leads().await, "one leader");

    // 1. Creates in flight: a is frozen while the 3 s create tasks run.
    let names: Vec<String> = (0..OBJECTS).map(|i| format!("ct-{i}")).collect();
    for name in &names {
        w.container(
            name,
            json!({"nodeRef": w.nodes[0], "resources": {"memoryMiB": 512}, "network": [{"name": "eth0"}]}),
        )
        .await;
    }
    until_requested(&w, "a create call", |r| {
        r.method == "POST" && r.path == "/nodes/pve1/lxc" && r.status == 200
    })
    .await;
    let create = freeze_until_taken_over(&w, &a, &b).await;
    resume_after_a_while(&a).await;
    println!("creates: {} took over after {:?}", b.identity, create.took);
    let mut uids = Vec::new();
    let mut vmids = BTreeMap::new();
    for name in &names {
        let ct = w.ready(name).await;
        uids.push(ct.metadata.uid.clone().unwrap());
        vmids.insert(name.clone(), vmid(&ct));
    }
    // The old leader had its chance to act after waking; give it a little longer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_sim: BTreeSet<u32> = w.sim.admin().containers().iter().map(|c| c.vmid).collect();
    let recorded: BTreeSet<u32> = vmids.values().copied().collect();
    assert_eq!(recorded.len(), OBJECTS, "one VMID per object: {vmids:?}");
    assert_eq!(in_sim, recorded, "exactly one container per object in pve-sim");
    let late = calls_after(&a, &uids, create.acquired).await;
    assert!(
        late.is_empty(),
        "the frozen leader acted after the take-over: {late:#?}"
    );

    // 2. Config changes in flight: reads of container state are slow, b is frozen inside a
    // reconcile of memory 1024; a takes over and applies the newer 2048.
    w.sim.admin().set_faults(FaultConfig {
        latency: vec![LatencyRule {
            on: Match {
                path_prefix: "/nodes/pve1/lxc/".into(),
                method: Some("GET".into()),
            },
            ms: 1500,
        }],
        ..FaultConfig::default()
    });
    for name in &names {
        w.patch_spec(name, json!({"resources": {"memoryMiB": 1024}}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let change = freeze_until_taken_over(&w, &b, &a).await;
    for name in &names {
        w.patch_spec(name, json!({"resources": {"memoryMiB": 2048}}))
            .await;
    }
    resume_after_a_while(&b).await;
    println!("config changes: {} took over after {:?}", a.identity, change.took);
    for name in &names {
        w.ready(name).await;
    }
    w.sim.admin().set_faults(FaultConfig::default());
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, id) in &vmids {
        let memory = memory_of(&w.config("pve1", *id).await);
        assert_eq!(
            memory, "2048",
            "{name}: the newest change stays, not the old leader's"
        );
    }
    let late = calls_after(&b, &uids, change.acquired).await;
    assert!(
        late.is_empty(),
        "the frozen leader acted after the take-over: {late:#?}"
    );

    // 3. Deletes in flight: a is frozen while the 3 s destroy tasks run.
    for name in &names {
        w.api()
            .delete(name, &kube::api::DeleteParams::default())
            .await
            .unwrap();
    }
    until_requested(&w, "a destroy call", |r| {
        r.method == "DELETE" && r.path.starts_with("/nodes/pve1/lxc/") && r.status == 200
    })
    .await;
    let delete = freeze_until_taken_over(&w, &a, &b).await;
    resume_after_a_while(&a).await;
    println!("deletes: {} took over after {:?}", b.identity, delete.took);
    let start = Instant::now();
    for name in &names {
        while w.api().get_opt(name).await.unwrap().is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{name} was never deleted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.sim.admin().containers().is_empty(),
        "every container destroyed, none created again: {:?}",
        w.sim.admin().containers()
    );
    let late = calls_after(&a, &uids, delete.acquired).await;
    assert!(
        late.is_empty(),
        "the frozen leader acted after the take-over: {late:#?}"
    );
    for took in [create.took, change.took, delete.took] {
        assert!(
            took <= Duration::from_secs(LEASE_SECONDS + 2),
            "take-over took {took:?} (lease {LEASE_SECONDS} s)"
        );
    }
}

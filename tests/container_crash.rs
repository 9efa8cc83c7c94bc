//! The operator process killed right after its create call: the next one adopts the container
//! it finds under the recorded VMID instead of creating a second one.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::{World, vmid};

fn start_operator(ns: &str, identity: &str) -> Child {
    let cp = test_world::control_plane();
    Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["--namespace", ns, "--identity", identity, "--lease-seconds", "2"])
        .arg(format!("--listen=127.0.0.1:{}", test_world::free_port()))
        .arg(format!("--redis-url={}", test_world::redis().url()))
        .arg(format!("--database-url={}", test_world::postgres().url()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lxc-operator")
}

#[tokio::test]
async fn a_restarted_operator_adopts_instead_of_creating_again() {
    // Creation takes 3 s in the simulator, so the kill lands while the task runs.
    let w = World::without_operator("crash", &["pve1"], |mut c| {
        c.task_durations_ms.insert("vzcreate".into(), 3000);
        c
    })
    .await;
    let mut first = start_operator(&w.ns, "first");
    w.container(
        "survivor",
        json!({"nodeRef": w.nodes[0], "network": [{"name": "eth0"}]}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let created = w
            .sim
            .admin()
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/nodes/pve1/lxc" && r.status == 200);
        if created {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first operator never called create"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Whether or not the UPID reached the status before the kill, make it as if it did not: the
    // only record left is the VMID (written before the call) and the marker in Proxmox.
    let ct = w.api().get("survivor").await.unwrap();
    let id = vmid(&ct);
    w.api()
        .patch_status(
            "survivor",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"task": null}})),
        )
        .await
        .unwrap();

    let mut second = start_operator(&w.ns, "second");
    let ct = w.ready("survivor").await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(vmid(&ct), id, "the VMID recorded before the create call");
    let creates = w.creates("pve1");
    assert_eq!(creates, 1, "created once");
    assert_eq!(w.sim.admin().containers().len(), 1, "no duplicate container");
    let events = w.events("survivor").await;
    assert!(events.iter().any(|(r, _)| r == "Adopted"), "{events:?}");
    // The trail holds the create intent (its outcome was recorded by the first process, or is
    // pending if the kill beat it) and the later calls with outcomes.
    let trail = support::audit()
        .await
        .by_object(ct.metadata.uid.as_deref().unwrap(), 50)
        .await
        .unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|r| r.intent.operation == "create container")
            .count(),
        1
    );
    assert!(
        trail
            .iter()
            .any(|r| r.intent.operation == "start container" && r.outcome.is_some())
    );
}

//! The ProxmoxNode and LxcTemplate controllers against a real API server and pve-sim:
//! Ready with version and capacity, precise reasons for each failure, a Secret change
//! re-checks the node, and a missing OS template is downloaded as a tracked task.

// This test acts on Proxmox (or the audit trail) directly, behind the operator's back; the
// operator itself may only do so through controllers::act::Actor (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use lxc_operator::audit::AuditStore;
use lxc_operator::cluster::Stores;
use lxc_operator::cluster::drift::ContainerWake;
use lxc_operator::cluster::observations::Observations;
use lxc_operator::cluster::sweep::{ConfigSweep, SweepSettings};
use lxc_operator::cluster::watches::Watches;
use lxc_operator::controllers::node::{NodeCtx, reconcile as node_controller};
use lxc_operator::controllers::template::{TemplateCtx, reconcile as template_controller};
use lxc_operator::coordination::Coordinator;
use lxc_operator::crd::{LxcTemplate, ProxmoxNode};
use lxc_operator::runtime::controllers::ControllerSet;
use pve_sim::{Config, PveSim};
use serde_json::json;

fn audit_file() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("lxc-audit-{}-{n}.db", std::process::id()))
}

/// Starts both controllers for this test; they stop when the returned sender is dropped.
type Woken = tokio::sync::mpsc::UnboundedReceiver<
    kube::runtime::reflector::ObjectRef<lxc_operator::crd::LxcContainer>,
>;

async fn controllers() -> (tokio::sync::oneshot::Sender<()>, Observations, AuditStore, Woken) {
    let audit = AuditStore::connect(None, &audit_file()).await.unwrap();
    let kube = test_world::control_plane().client().await;
    let (reader, writer) = kube::runtime::reflector::store();
    let containers = kube::runtime::reflector(
        writer,
        kube::runtime::watcher(
            Api::<lxc_operator::crd::LxcContainer>::all(kube.clone()),
            Default::default(),
        ),
    );
    tokio::spawn(futures::StreamExt::for_each(containers, |_| async {}));
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
    let coordinator = Coordinator::connect(None, Duration::from_secs(12)).await.unwrap();
    let mut set = ControllerSet::new(kube.clone(), audit.clone(), coordinator);
    set.identity = Some("test".into());
    let observations = set.observations.clone();
    let watches = Watches::default();
    let nodes = node_controller::prepare(&watches.nodes);
    let templates = template_controller::prepare(&watches);
    let shared = set.shared(Stores {
        nodes: nodes.store.clone(),
        templates: templates.store.clone(),
        containers: reader.clone(),
    });
    // Only what a poll shows wakes a container here (the config sweep has its own tests).
    let wake = ContainerWake {
        containers: reader,
        sender: wake_tx,
        sweep: std::sync::Arc::new(ConfigSweep::new(SweepSettings::OFF)),
    };
    tokio::spawn(watches.run(kube.clone()));
    tokio::spawn(nodes.run(NodeCtx::new(shared.clone(), Some(wake)), async move {
        let _ = rx.await;
        let _ = tx2.send(());
    }));
    tokio::spawn(templates.run(TemplateCtx::new(shared), async move {
        let _ = rx2.await;
    }));
    (tx, observations, audit, wake_rx)
}

async fn secret(ns: &str, name: &str, data: serde_json::Value) {
    let api: Api<Secret> = Api::namespaced(test_world::control_plane().client().await, ns);
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&s))
        .await
        .unwrap();
}

async fn node(name: &str, sim: &PveSim, ns: &str, secret: &str, fingerprint: &str) {
    let api: Api<ProxmoxNode> = Api::all(test_world::control_plane().client().await);
    let obj: ProxmoxNode = serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode", "metadata": {"name": name},
        "spec": {"endpoint": sim.url(), "nodeName": "pve1", "pollIntervalSeconds": 5,
                 "credentialsSecretRef": {"name": secret, "namespace": ns},
                 "tls": {"fingerprintSha256": fingerprint}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// Waits until the node's Ready condition has `reason`; returns the node.
async fn wait_reason(name: &str, reason: &str) -> ProxmoxNode {
    let api: Api<ProxmoxNode> = Api::all(test_world::control_plane().client().await);
    let mut last = None;
    for _ in 0..150 {
        let n = api.get(name).await.unwrap();
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
        if ready.as_ref().is_some_and(|c| c.reason == reason) {
            return n;
        }
        last = ready;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never reached reason {reason}; last Ready: {last:?}")
}

/// A namespace, a simulator with node `pve1`, and a Secret `token` with its API token.
async fn world(prefix: &str) -> (String, PveSim) {
    let ns = test_world::control_plane().namespace(prefix).await;
    let sim = PveSim::start(Config::default_with_nodes(&["pve1"]))
        .await
        .unwrap();
    secret(
        &ns,
        "token",
        json!({"tokenId": sim.token_id(), "tokenSecret": sim.token_secret()}),
    )
    .await;
    (ns, sim)
}

/// One controller pair per test binary, as one leader runs them: two would both act on every
/// object of the cluster.
#[tokio::test]
async fn controllers_against_pve_sim() {
    let (_stop, observations, audit, mut woken) = controllers().await;
    nodes_report_ready_and_every_failure_precisely(&observations, &mut woken).await;
    templates_are_digested_and_downloaded_where_missing(&audit).await;
}

async fn nodes_report_ready_and_every_failure_precisely(observations: &Observations, woken: &mut Woken) {
    let cp = test_world::control_plane();
    let (ns, sim) = world("nodes").await;

    let good = format!("{ns}-good");
    node(&good, &sim, &ns, "token", sim.fingerprint_sha256()).await;
    let ready = wait_reason(&good, "Ready").await;
    let status = ready.status.unwrap();
    assert_eq!(status.pve_version.as_deref(), Some(sim.config().version.as_str()));
    assert_eq!(status.container_count, Some(0));
    let capacity = status.capacity.unwrap();
    assert!(capacity.cpus > 0 && capacity.memory_bytes > 0, "{capacity:?}");
    assert!(capacity.storage.contains_key("local-lvm"), "{capacity:?}");
    for t in ["Reachable", "Authenticated"] {
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True"),
            "{t}"
        );
    }
    assert!(
        observations.get(&good).is_some(),
        "the poll's observation is shared"
    );

    // A poll that sees a container's Proxmox state change wakes exactly that LxcContainer.
    let cts: Api<lxc_operator::crd::LxcContainer> = Api::namespaced(cp.client().await, &ns);
    for (ct_name, vmid) in [("watched", 4242), ("untouched", 4243)] {
        let ct: lxc_operator::crd::LxcContainer = serde_json::from_value(json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer", "metadata": {"name": ct_name},
            "spec": {"nodeRef": good, "templateRef": "t"}
        }))
        .unwrap();
        cts.create(&PostParams::default(), &ct).await.unwrap();
        let status = json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
                            "status": {"node": good, "vmid": vmid}});
        cts.patch_status(
            ct_name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    }
    while woken.try_recv().is_ok() {}
    let creds = lxc_operator::proxmox::Credentials::Token {
        id: sim.token_id().into(),
        secret: lxc_operator::proxmox::Secret::new(sim.token_secret()),
    };
    let pin = lxc_operator::proxmox::tls::parse_fingerprint(sim.fingerprint_sha256()).unwrap();
    let pve = lxc_operator::proxmox::ProxmoxClient::new(lxc_operator::proxmox::ClientConfig::new(
        sim.url(),
        creds,
        lxc_operator::proxmox::TlsTrust::PinnedSha256(pin),
    ))
    .unwrap();
    let create = lxc_operator::pipeline::desired::DesiredContainer {
        vmid: 4242,
        ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
        unprivileged: true,
        rootfs: Some(lxc_operator::proxmox::property::Volume {
            volume: "local-lvm:4".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .create_request();
    let upid = pve.create_container("pve1", &create).await.unwrap();
    pve.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
    let target = tokio::time::timeout(Duration::from_secs(12), woken.recv())
        .await
        .expect("woken within a poll")
        .unwrap();
    assert_eq!(
        (target.name.as_str(), target.namespace.as_deref()),
        ("watched", Some(ns.as_str()))
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        woken.try_recv().is_err(),
        "steady state wakes nothing, and the untouched container never"
    );

    let wrong_pin = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
    let mismatch = format!("{ns}-pin");
    node(&mismatch, &sim, &ns, "token", &wrong_pin).await;
    let refused = wait_reason(&mismatch, "TLSFingerprintMismatch").await;
    let reachable = refused
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Reachable")
        .unwrap();
    assert_eq!(
        (reachable.status.as_str(), reachable.reason.as_str()),
        ("False", "TLSFingerprintMismatch")
    );

    let missing = format!("{ns}-missing");
    node(&missing, &sim, &ns, "absent", sim.fingerprint_sha256()).await;
    wait_reason(&missing, "CredentialsNotFound").await;
    // Creating the Secret is noticed at the node's next poll (its resourceVersion is read each time).
    secret(
        &ns,
        "absent",
        json!({"tokenId": sim.token_id(), "tokenSecret": "wrong"}),
    )
    .await;
    wait_reason(&missing, "AuthenticationFailed").await;
    secret(
        &ns,
        "absent",
        json!({"tokenId": sim.token_id(), "tokenSecret": sim.token_secret()}),
    )
    .await;
    wait_reason(&missing, "Ready").await;

    // Transitions became Events: a Normal one for Ready, a Warning one per failure reason.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(cp.client().await);
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(missing.as_str()))
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
            .collect();
        if seen.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for expected in [
        ("Warning", "CredentialsNotFound"),
        ("Warning", "AuthenticationFailed"),
        ("Normal", "Ready"),
    ] {
        let n = seen
            .iter()
            .filter(|(t, r)| (t.as_str(), r.as_str()) == expected)
            .count();
        assert_eq!(
            n, 1,
            "exactly one {expected:?} Event (repeats fold into it): {seen:?}"
        );
    }

    // The credentials never reach status or Events.
    let node_objects = serde_json::to_string(
        &Api::<ProxmoxNode>::all(cp.client().await)
            .list(&Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let event_objects = serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
    for text in [&node_objects, &event_objects] {
        assert!(!text.contains(sim.token_secret()), "the token secret leaked");
        assert!(!text.contains(sim.password()), "the password leaked");
    }

    sim.admin().set_node_online("pve1", false);
    let offline = wait_reason(&good, "NodeOffline").await;
    assert!(
        offline
            .status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False")
    );
}

async fn templates_are_digested_and_downloaded_where_missing(audit: &AuditStore) {
    let cp = test_world::control_plane();
    let (ns, sim) = world("templates").await;
    let node_name = format!("{ns}-node");
    node(&node_name, &sim, &ns, "token", sim.fingerprint_sha256()).await;
    wait_reason(&node_name, "Ready").await;

    let api: Api<LxcTemplate> = Api::all(cp.client().await);
    let tpl = |name: &str, volid: &str, source: serde_json::Value| -> LxcTemplate {
        serde_json::from_value(json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": name},
            "spec": {"osTemplate": {"volid": volid, "source": source},
                     "packages": {"apt": ["nginx"]}, "scripts": [{"name": "hello", "content": "echo hi\n"}]}
        }))
        .unwrap()
    };
    let present = format!("{ns}-present");
    let appliance = json!({"appliance": "debian-12-standard_12.7-1_amd64.tar.zst"});
    api.create(
        &PostParams::default(),
        &tpl(
            &present,
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            appliance,
        ),
    )
    .await
    .unwrap();
    let downloaded = format!("{ns}-download");
    let alpine = json!({"appliance": "alpine-3.22-default_20250617_amd64.tar.xz"});
    api.create(
        &PostParams::default(),
        &tpl(
            &downloaded,
            "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz",
            alpine,
        ),
    )
    .await
    .unwrap();

    let mut digests = Vec::new();
    for name in [&present, &downloaded] {
        let mut ready = None;
        for _ in 0..200 {
            let t = api.get(name).await.unwrap();
            if t.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            }) {
                ready = t.status;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = ready.unwrap_or_else(|| panic!("{name} never Ready"));
        assert!(status.nodes.iter().all(|n| n.present), "{:?}", status.nodes);
        digests.push(status.digest.unwrap());
    }
    assert_eq!(digests[0], digests[1], "same provisioning, same digest");
    let downloads = sim
        .admin()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/nodes/pve1/aplinfo")
        .count();
    assert_eq!(downloads, 1, "only the missing template was downloaded");
    // The template's way to Ready is told by Events: missing first, then Ready.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(cp.client().await);
    let mut reasons = Vec::new();
    for _ in 0..50 {
        reasons = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(downloaded.as_str()))
            .map(|e| e.reason.unwrap_or_default())
            .collect::<Vec<_>>();
        if reasons.iter().any(|r| r == "Ready") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reasons.iter().any(|r| r == "TemplateMissing") && reasons.iter().any(|r| r == "Ready"),
        "{reasons:?}"
    );

    // The download was written ahead to the audit trail, with its outcome and task.
    let uid = api.get(&downloaded).await.unwrap().metadata.uid.unwrap();
    let trail = audit.by_object(&uid, 10).await.unwrap();
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0].intent.operation, "download appliance template");
    let outcome = trail[0].outcome.as_ref().expect("outcome recorded");
    assert!(
        format!("{:?}", outcome.outcome).contains("UPID:pve1:"),
        "{outcome:?}"
    );
}

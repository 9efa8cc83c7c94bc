//! The `lxc-operator run` process: health, readiness and metrics endpoints, leadership, and a
//! clean SIGTERM shutdown that hands the lease back.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;

fn start_operator(ns: &str, identity: &str, port: u16) -> Child {
    let cp = test_world::control_plane();
    Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["--namespace", ns, "--identity", identity, "--lease-seconds", "3"])
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!(
            "--sqlite-path={}/lxc-operator-{identity}-{port}.db",
            std::env::temp_dir().display()
        ))
        .env_remove("LXC_OPERATOR_REDIS_URL")
        .env_remove("LXC_OPERATOR_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lxc-operator")
}

async fn lease_holder(leases: &kube::Api<Lease>) -> Option<String> {
    leases
        .get("lxc-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test]
async fn serves_health_and_metrics_leads_and_shuts_down_cleanly() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("operator").await;
    let port = test_world::free_port();
    let mut child = start_operator(&ns, "replica-1", port);
    let base = format!("http://127.0.0.1:{port}");

    let mut ready = None;
    for _ in 0..100 {
        if let Some((200, body)) = get(&format!("{base}/readyz")).await {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            if json["leader"] == true {
                ready = Some(json);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = ready.expect("ready and leading within 10 s");
    assert_eq!(
        ready["coordination"], "in-process",
        "no Redis URL: the in-process backend serves"
    );
    assert_eq!(
        get(&format!("{base}/healthz")).await.unwrap(),
        (200, "ok".to_string())
    );
    let (status, metrics) = get(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("lxc_operator_leader 1"), "{metrics}");
    let post = reqwest::Client::new()
        .post(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405, "only GET and HEAD are served");

    let leases: kube::Api<Lease> = kube::Api::namespaced(cp.client().await, &ns);
    let holder = lease_holder(&leases).await;
    assert_eq!(holder.as_deref(), Some("replica-1"));

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = exited.expect("exits within 10 s of SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    let holder = lease_holder(&leases).await;
    assert_eq!(holder, None, "the lease is handed back on shutdown");
}

/// Sum of `lxc_operator_proxmox_calls_total` in a process's metrics.
async fn proxmox_calls(port: u16) -> u64 {
    let (_, text) = get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("lxc_operator_proxmox_calls_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn is_leader(port: u16) -> bool {
    match get(&format!("http://127.0.0.1:{port}/readyz")).await {
        Some((200, body)) => {
            serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|j| j["leader"] == true)
        }
        _ => false,
    }
}

#[tokio::test]
async fn only_the_leader_calls_proxmox_and_a_follower_takes_over() {
    use kube::api::{Patch, PatchParams, PostParams};
    let cp = test_world::control_plane();
    let ns = cp.namespace("two-replicas").await;
    let sim = pve_sim::PveSim::start(pve_sim::Config::default_with_nodes(&["pve1"]))
        .await
        .unwrap();
    let client = cp.client().await;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pve"}, "stringData": {"tokenId": sim.token_id(), "tokenSecret": sim.token_secret()}
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns)
        .patch("pve", &PatchParams::apply("test"), &Patch::Apply(&secret))
        .await
        .unwrap();
    let node: lxc_operator::crd::ProxmoxNode = serde_json::from_value(serde_json::json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode", "metadata": {"name": format!("{ns}-pve1")},
        "spec": {"endpoint": sim.url(), "nodeName": "pve1", "pollIntervalSeconds": 5,
                 "credentialsSecretRef": {"name": "pve", "namespace": ns},
                 "tls": {"fingerprintSha256": sim.fingerprint_sha256()}}
    }))
    .unwrap();
    kube::Api::<lxc_operator::crd::ProxmoxNode>::all(client)
        .create(&PostParams::default(), &node)
        .await
        .unwrap();

    let (port_a, port_b) = (test_world::free_port(), test_world::free_port());
    let mut a = start_operator(&ns, "replica-a", port_a);
    for _ in 0..100 {
        if is_leader(port_a).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_leader(port_a).await, "replica-a leads");
    let mut b = start_operator(&ns, "replica-b", port_b);
    for _ in 0..100 {
        if get(&format!("http://127.0.0.1:{port_b}/healthz")).await.is_some()
            && proxmox_calls(port_a).await > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(proxmox_calls(port_a).await > 0, "the leader polls Proxmox");
    assert_eq!(proxmox_calls(port_b).await, 0, "the follower never calls Proxmox");
    assert!(!is_leader(port_b).await);

    // The leader dies without handing the lease back: the follower takes over within the lease.
    a.kill().unwrap();
    a.wait().unwrap();
    let died = std::time::Instant::now();
    while !is_leader(port_b).await {
        assert!(
            died.elapsed() < Duration::from_secs(6),
            "replica-b did not take over within the lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = died.elapsed();
    for _ in 0..100 {
        if proxmox_calls(port_b).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proxmox_calls(port_b).await > 0, "the new leader polls Proxmox");
    assert!(
        took <= Duration::from_secs(5),
        "took over after {took:?} (lease 3 s)"
    );
    b.kill().unwrap();
    b.wait().unwrap();
}

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
        .env_remove("LXC_OPERATOR_REDIS_URL")
        .env_remove("LXC_OPERATOR_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lxc-operator")
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
    let holder = leases
        .get("lxc-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
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
    let holder = leases
        .get("lxc-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder, None, "the lease is handed back on shutdown");
}

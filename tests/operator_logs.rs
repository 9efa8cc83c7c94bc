//! `lxc-operator run --log-format json`: structured lines that name the object and the Proxmox
//! task, and never a credential. (Its own test binary: another operator in the same control
//! plane would act on the same objects.)

use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

#[tokio::test]
async fn json_logs_name_the_object_and_the_task_and_no_secret() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("logs").await;
    let sim = pve_sim::PveSim::start(pve_sim::Config::default_with_nodes(&["pve1"]))
        .await
        .unwrap();
    let client = cp.client().await;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "pve"}, "stringData": {"tokenId": sim.token_id(), "tokenSecret": sim.token_secret()}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns)
        .patch("pve", &PatchParams::apply("test"), &Patch::Apply(&secret))
        .await
        .unwrap();
    let node: lxc_operator::crd::ProxmoxNode = serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode", "metadata": {"name": "pve1"},
        "spec": {"endpoint": sim.url(), "nodeName": "pve1", "pollIntervalSeconds": 5,
                 "credentialsSecretRef": {"name": "pve", "namespace": ns},
                 "tls": {"fingerprintSha256": sim.fingerprint_sha256()}}
    }))
    .unwrap();
    Api::<lxc_operator::crd::ProxmoxNode>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let template: lxc_operator::crd::LxcTemplate = serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": "alpine"},
        "spec": {"osTemplate": {"volid": "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz",
                                "source": {"appliance": "alpine-3.22-default_20250617_amd64.tar.xz"}}}
    }))
    .unwrap();
    Api::<lxc_operator::crd::LxcTemplate>::all(client)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();

    let log = std::env::temp_dir().join(format!("lxc-operator-logs-{}.jsonl", std::process::id()));
    let port = test_world::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["--namespace", &ns, "--identity", "logger", "--log-format", "json"])
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--sqlite-path={}", log.with_extension("db").display()))
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut download_line = None;
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        download_line = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["fields"]["message"] == "OS template download started");
        if download_line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = download_line.expect("a download log line");
    assert_eq!(line["fields"]["template"], "alpine", "{line}");
    assert!(
        line["fields"]["task"]
            .as_str()
            .is_some_and(|t| t.starts_with("UPID:pve1:")),
        "{line}"
    );
    assert!(
        line.to_string().contains("LxcTemplate"),
        "the reconcile span names the object: {line}"
    );
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(
        all.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "every line is JSON"
    );
    assert!(!all.contains(sim.token_secret()), "no credential in the logs");
}

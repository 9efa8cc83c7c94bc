//! Fault injection and the request log, through the library handle and the admin HTTP API.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn error_rates_latency_and_resets() {
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    let admin = plain();
    let r = admin
        .post(format!("{}/faults/errors", sim.admin_url()))
        .json(&json!({"path_prefix": "/cluster/nextid", "rate": 1.0, "kind": "503"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _, _) = tok.call("GET", "/cluster/nextid", &[]).await;
    assert_eq!(s, 503);
    assert_eq!(tok.get_ok("/version").await["version"], "9.1.2");

    sim.admin().set_faults(pve_sim::FaultConfig::default());
    sim.admin().add_error_rule(pve_sim::ErrorRule {
        on: pve_sim::Match {
            path_prefix: "/nodes/pve/lxc".into(),
            method: Some("POST".into()),
        },
        rate: 1.0,
        kind: pve_sim::ErrorKind::Internal,
        message: Some("got timeout".into()),
    });
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[("vmid", "100"), ("ostemplate", TEMPLATE)],
        )
        .await;
    assert_eq!((s, v["message"].as_str()), (500, Some("got timeout\n")));
    assert_eq!(tok.get_ok("/nodes/pve/lxc").await, json!([]));

    sim.admin().set_faults(pve_sim::FaultConfig::default());
    sim.admin().add_error_rule(pve_sim::ErrorRule {
        on: pve_sim::Match {
            path_prefix: "/version".into(),
            method: None,
        },
        rate: 1.0,
        kind: pve_sim::ErrorKind::Reset,
        message: None,
    });
    assert!(tok.try_call("GET", "/version").await.is_err());

    sim.admin().set_faults(pve_sim::FaultConfig::default());
    sim.admin().add_latency(pve_sim::LatencyRule {
        on: pve_sim::Match::default(),
        ms: 150,
    });
    let t = Instant::now();
    tok.get_ok("/version").await;
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn offline_node_and_lock_contention() {
    let sim = start(&["pve1", "pve2"]).await;
    let tok = Client::token(&sim);
    create_ct(&tok, "pve2", "150", &[]).await;
    let r = plain()
        .post(format!("{}/nodes/pve2/offline", sim.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _, _) = tok.call("GET", "/nodes/pve2/lxc/150/status/current", &[]).await;
    assert_eq!(s, 595);
    let nodes = tok.get_ok("/nodes").await;
    let pve2 = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "pve2")
        .unwrap();
    assert_eq!(pve2["status"], "offline");
    assert_eq!(tok.get_ok("/nodes/pve1/status").await["cpuinfo"]["cpus"], 8);
    assert!(sim.admin().set_node_online("pve2", true));

    // Config lock file held: a start task waits for it, then runs.
    let held = std::time::Instant::now();
    let r = plain()
        .post(format!("{}/locks", sim.admin_url()))
        .json(&json!({"vmid": 150, "seconds": 0.3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        tok.task("POST", "/nodes/pve2/lxc/150/status/start", &[]).await.1,
        "OK"
    );
    assert!(held.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        tok.task("POST", "/nodes/pve2/lxc/150/status/stop", &[]).await.1,
        "OK"
    );
    // A config lock ("backup") for a while.
    assert!(sim.admin().lock_ct(pve_sim::LockRequest {
        vmid: 150,
        seconds: 0.3,
        lock: Some("backup".into())
    }));
    let (s, v, _) = tok.call("POST", "/nodes/pve2/lxc/150/status/start", &[]).await;
    assert_eq!((s, v["message"].as_str()), (500, Some("CT is locked (backup)\n")));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        tok.task("POST", "/nodes/pve2/lxc/150/status/start", &[]).await.1,
        "OK"
    );
}

#[tokio::test]
async fn request_log_counts_calls_and_redacts_secrets() {
    let sim = start(&["pve"]).await;
    let root = Client::root(&sim).await;
    let tok = Client::token(&sim);
    create_ct(&tok, "pve", "120", &[]).await;
    tok.get_ok("/nodes/pve/lxc/120/config").await;
    let log = sim.admin().requests();
    let login = &log[0];
    assert_eq!(
        (
            login.path.as_str(),
            login.params["password"].as_str(),
            login.status
        ),
        ("/access/ticket", "<redacted>", 200)
    );
    assert!(
        log.iter()
            .any(|e| e.identity.as_deref() == Some("root@pam!operator")
                && e.method == "POST"
                && e.path == "/nodes/pve/lxc")
    );
    // create + task status polls + config read, all about vmid 120.
    let n = sim.admin().count_requests_for(120);
    assert!(n >= 2, "{n}");
    let via_http: Vec<serde_json::Value> = admin_get(format!("{}/requests?vmid=120", sim.admin_url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(via_http.len(), n);
    let _ = root;
    let ct: serde_json::Value = admin_get(format!("{}/cts/120", sim.admin_url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ct["status"], "stopped");
    let r = admin_get(format!("{}/cts/999", sim.admin_url())).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn binary_prints_one_json_line_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pve-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "pve1,pve2,pve3",
            "--seed",
            "7",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ep: pve_sim::Endpoint = serde_json::from_str(&line).unwrap();
    assert!(ep.url.starts_with("https://127.0.0.1:"));
    assert_eq!(
        (ep.username.as_str(), ep.token_id.as_str()),
        ("root@pam", "root@pam!operator")
    );
    assert_eq!(ep.fingerprint_sha256.len(), 95);
    let health = admin_get(format!("{}/health", ep.admin_url)).await;
    assert_eq!(health.status(), 200);
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn binary_realistic_flag_gives_tasks_real_durations() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pve-sim"))
        .args(["--listen", "127.0.0.1:0", "--nodes", "pve", "--realistic"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ep: pve_sim::Endpoint = serde_json::from_str(&line).unwrap();
    let _ = plain();
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let auth = format!("PVEAPIToken={}={}", ep.token_id, ep.token_secret);
    let created: serde_json::Value = http
        .post(format!("{}/api2/json/nodes/pve/lxc", ep.url))
        .header("Authorization", &auth)
        .form(&[
            ("vmid", "100"),
            ("ostemplate", TEMPLATE),
            ("rootfs", "local-lvm:8"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upid = created["data"].as_str().expect("upid").to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status: serde_json::Value = http
        .get(format!(
            "{}/api2/json/nodes/pve/tasks/{}/status",
            ep.url,
            enc(&upid)
        ))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["data"]["status"], "running",
        "a create takes seconds: {status}"
    );
}

#[tokio::test]
async fn spikes_are_counted_and_the_log_keeps_arrival_times() {
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    let r = plain()
        .post(format!("{}/faults/spikes", sim.admin_url()))
        .json(&json!({"path_prefix": "/version", "rate": 1.0, "ms": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.admin().add_error_rule(pve_sim::ErrorRule {
        on: pve_sim::Match {
            path_prefix: "/cluster/nextid".into(),
            method: None,
        },
        rate: 1.0,
        kind: pve_sim::ErrorKind::Unavailable,
        message: None,
    });
    let before = pve_sim::reqlog::epoch_ms();
    let t = Instant::now();
    tok.get_ok("/version").await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    let (s, _, _) = tok.call("GET", "/cluster/nextid", &[]).await;
    assert_eq!(s, 503);
    let after = pve_sim::reqlog::epoch_ms();
    let injected: pve_sim::InjectedCounts = plain()
        .get(format!("{}/faults/injected", sim.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        injected,
        pve_sim::InjectedCounts {
            unavailable: 1,
            spikes: 1,
            ..Default::default()
        }
    );
    let log = sim.admin().requests();
    let version = log.iter().find(|e| e.path == "/version").unwrap();
    let nextid = log.iter().find(|e| e.path == "/cluster/nextid").unwrap();
    // Arrival, not answer: the spiked call arrived at least 300 ms before the next one.
    assert!(before <= version.received_ms && version.received_ms + 300 <= nextid.received_ms);
    assert!(nextid.received_ms <= after);
}

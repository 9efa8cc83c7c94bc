//! The `lxc-operator run` process: health, readiness and metrics endpoints, leadership, a
//! clean SIGTERM shutdown that hands the lease back, a frozen leader (SIGSTOP) that stops
//! leading by its own clock, and more than one replica refused without Redis.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;

/// `lxc-operator run` against the test world's API server, lease 3 s, in-process coordination
/// unless the caller adds Redis.
fn operator_command(ns: &str, identity: &str, port: u16) -> Command {
    let cp = test_world::control_plane();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lxc-operator"));
    cmd.arg("run")
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
        .env_remove("LXC_OPERATOR_REPLICAS")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn start_operator(ns: &str, identity: &str, port: u16) -> Child {
    operator_command(ns, identity, port)
        .spawn()
        .expect("start lxc-operator")
}

/// One of two replicas, as the Helm chart runs them: Redis coordination, `--replicas 2`.
fn start_replica(ns: &str, identity: &str, port: u16) -> Child {
    operator_command(ns, identity, port)
        .args(["--replicas", "2", "--redis-url", &test_world::redis().url()])
        .spawn()
        .expect("start lxc-operator")
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

/// Waits up to `limit` for the process to exit.
async fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
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
    let mut a = start_replica(&ns, "replica-a", port_a);
    for _ in 0..100 {
        if is_leader(port_a).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_leader(port_a).await, "replica-a leads");
    let mut b = start_replica(&ns, "replica-b", port_b);
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

#[tokio::test]
async fn more_than_one_replica_without_redis_is_refused_at_start() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("replicas").await;
    let leases: kube::Api<Lease> = kube::Api::namespaced(cp.client().await, &ns);
    let refusals = [
        ("flag", {
            let mut c = operator_command(&ns, "by-flag", test_world::free_port());
            c.args(["--replicas", "2"]);
            c
        }),
        ("environment", {
            let mut c = operator_command(&ns, "by-env", test_world::free_port());
            c.env("LXC_OPERATOR_REPLICAS", "3");
            c
        }),
    ];
    for (how, mut cmd) in refusals {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let status = exit_within(&mut child, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("replicas by {how}: still running without Redis"));
        let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        assert!(!status.success(), "replicas by {how}: {status}");
        assert!(
            stderr.contains("replicas need Redis") && stderr.contains("LXC_OPERATOR_REDIS_URL"),
            "replicas by {how}: the message says what is wrong and how to fix it: {stderr}"
        );
    }
    assert!(
        leases.get_opt("lxc-operator").await.unwrap().is_none(),
        "a refused replica never took part in the election"
    );

    // With Redis, two replicas start; one alone never needed it.
    let port = test_world::free_port();
    let mut child = start_replica(&ns, "with-redis", port);
    let mut readyz = None;
    for _ in 0..100 {
        if let Some((200, body)) = get(&format!("http://127.0.0.1:{port}/readyz")).await {
            readyz = Some(serde_json::from_str::<serde_json::Value>(&body).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let readyz = readyz.expect("a replica with Redis starts");
    assert_eq!(readyz["coordination"], "redis");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_frozen_leader_says_not_leading_the_moment_it_wakes() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("sigstop").await;
    let leases: kube::Api<Lease> = kube::Api::namespaced(cp.client().await, &ns);
    let (port_a, port_b) = (test_world::free_port(), test_world::free_port());
    let a = start_replica(&ns, "replica-a", port_a);
    let started = Instant::now();
    while !is_leader(port_a).await {
        assert!(started.elapsed() < Duration::from_secs(15), "replica-a leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = start_replica(&ns, "replica-b", port_b);
    while get(&format!("http://127.0.0.1:{port_b}/healthz")).await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(25), "replica-b serves");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!is_leader(port_b).await);

    // Freeze the leader past its lease: the other takes over by its own clock.
    signal(&a, "-STOP");
    let stopped = Instant::now();
    while !is_leader(port_b).await {
        assert!(
            stopped.elapsed() < Duration::from_secs(8),
            "replica-b did not take over from the frozen leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = stopped.elapsed();
    println!("take-over from a frozen leader: {took:?} (lease 3 s, retry 600 ms)");
    assert!(
        took >= Duration::from_secs(2),
        "took over after {took:?}: before the lease ran out"
    );
    assert!(took <= Duration::from_secs(5), "took over after {took:?}");
    assert_eq!(lease_holder(&leases).await.as_deref(), Some("replica-b"));

    // Wake it: its first answers already say it does not lead, though its election loop has
    // not run since it was frozen.
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(&a, "-CONT");
    let (status, body) = get(&format!("http://127.0.0.1:{port_a}/readyz"))
        .await
        .expect("the woken replica answers");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["leader"], false, "first answer after waking: {json}");
    let (_, metrics) = get(&format!("http://127.0.0.1:{port_a}/metrics")).await.unwrap();
    assert!(metrics.contains("lxc_operator_leader 0"), "{metrics}");
    let woke = Instant::now();
    while woke.elapsed() < Duration::from_secs(3) {
        assert!(!is_leader(port_a).await, "the old leader came back");
        assert!(is_leader(port_b).await, "the new leader kept the lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for mut child in [a, b] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[tokio::test]
async fn a_missing_namespace_is_said_once_and_keeps_readyz_false() {
    let cp = test_world::control_plane();
    // A namespace name that does not exist (yet).
    let ns = format!("absent-{}-{}", std::process::id(), test_world::free_port());
    let port = test_world::free_port();
    let log = std::env::temp_dir().join(format!("lxc-operator-absent-{port}.log"));
    let mut child = operator_command(&ns, "early", port)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    // Several election rounds (lease 3 s: a round every 0.6 s) while the namespace is missing.
    for _ in 0..100 {
        let said = get(&format!("{base}/readyz")).await;
        if said.is_some_and(|(_, b)| b.contains("does not exist")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = get(&format!("{base}/readyz")).await.expect("readyz answers");
    assert_eq!(status, 503, "not ready while it cannot lead: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["ready"], false);
    assert!(
        json["problem"]
            .as_str()
            .is_some_and(|p| p.contains(&format!("namespace {ns} does not exist"))),
        "{body}"
    );
    // `/` says where everything is, as text.
    let index = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(index.status().as_u16(), 200);
    assert!(
        index
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain")),
        "{:?}",
        index.headers()
    );
    let text = index.text().await.unwrap();
    for needle in ["/metrics", "/healthz", "/readyz", "--status-listen"] {
        assert!(text.contains(needle), "`/` names {needle}: {text}");
    }

    // Said once, clearly; no debug dump; no colour codes in a log that is not a terminal.
    let logged = std::fs::read_to_string(&log).unwrap();
    let said = logged.matches(&format!("namespace {ns} does not exist")).count();
    assert_eq!(said, 1, "the problem is logged once, not every round:\n{logged}");
    assert!(
        !logged.contains("ErrorResponse") && !logged.contains("Api("),
        "no Debug dump:\n{logged}"
    );
    assert!(
        !logged.contains('\u{1b}'),
        "no ANSI escape codes in a file:\n{logged:?}"
    );

    // Once the namespace exists, the replica leads and is ready; that is said once too.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(cp.client().await);
    let obj = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    namespaces.create(&Default::default(), &obj).await.unwrap();
    let mut became_ready = false;
    for _ in 0..100 {
        if let Some((200, _)) = get(&format!("{base}/readyz")).await {
            became_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(became_ready, "ready once the namespace exists");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches("leader election works again").count(),
        1,
        "{logged}"
    );
}

#[tokio::test]
async fn a_sqlite_path_in_a_missing_directory_is_refused() {
    let cp = test_world::control_plane();
    let ns = cp.namespace("sqlite").await;
    let missing = std::env::temp_dir().join(format!("lxc-no-such-dir-{}", std::process::id()));
    let path = missing.join("audit.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["--namespace", &ns, "--identity", "sqlite"])
        .arg(format!("--listen=127.0.0.1:{}", test_world::free_port()))
        .arg(format!("--sqlite-path={}", path.display()))
        .env_remove("LXC_OPERATOR_DATABASE_URL")
        .env_remove("LXC_OPERATOR_REDIS_URL")
        .env_remove("LXC_OPERATOR_REPLICAS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(&mut child, Duration::from_secs(30))
        .await
        .expect("refused at start");
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!status.success(), "{status}");
    assert!(
        stderr.contains("--sqlite-path") && stderr.contains(&format!("{} does not exist", missing.display())),
        "the message names the flag and the directory: {stderr}"
    );
    assert!(!missing.exists(), "the directory was not created");
}

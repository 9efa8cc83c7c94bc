//! A busy node: config lock waits, storage allocation locks, pvestatd's status delay, the
//! per-node worker limit, realistic durations and per-endpoint request counts.

mod common;
use common::*;
use pve_sim::{Config, LatencyRule, LockRequest, Match, PveSim};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn sim_with(cfg: Config) -> PveSim {
    PveSim::start(cfg).await.expect("sim starts")
}

fn vm_entry(resources: &Value, vmid: u64) -> Value {
    resources
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"] == vmid)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn defaults_are_the_real_waits() {
    let cfg = Config::default();
    assert_eq!(
        (
            cfg.config_lock_timeout_ms,
            cfg.create_lock_timeout_ms,
            cfg.storage_lock_timeout_ms
        ),
        (10_000, 5_000, 10_000)
    );
    assert_eq!(cfg.api_workers, 3);
    assert!(cfg.stats_delay_ms > 0);
    assert!(cfg.task_duration("vzcreate").is_zero());
    let real = Config::realistic(&["pve"]);
    assert!(real.task_duration("vzcreate") >= Duration::from_secs(3));
    assert!(real.task_duration("vzstart") >= Duration::from_secs(1));
    assert!(real.task_duration("vzmigrate") > real.task_duration("vzcreate"));
    assert_eq!(real.stats_delay_ms, 10_000);
}

#[tokio::test]
async fn config_lock_waits_then_times_out() {
    let mut cfg = Config::default_with_nodes(&["pve"]);
    cfg.config_lock_timeout_ms = 300;
    cfg.create_lock_timeout_ms = 150;
    let sim = sim_with(cfg).await;
    let tok = Client::token(&sim);
    create_ct(&tok, "pve", "150", &[]).await;
    create_ct(&tok, "pve", "152", &[]).await;
    let hold = |vmid: u32, seconds: f64| LockRequest {
        vmid,
        seconds,
        lock: None,
    };

    // Held longer than the wait: the API call that locks in the API process (PUT config)
    // answers 500 after the wait.
    assert!(sim.admin().lock_ct(hold(150, 2.0)));
    let t = Instant::now();
    let (s, v, _) = tok
        .call("PUT", "/nodes/pve/lxc/150/config", &[("cores", "2")])
        .await;
    let waited = t.elapsed();
    assert_eq!(
        (s, v["message"].as_str()),
        (
            500,
            Some("can't lock file '/run/lock/lxc/pve-config-150.lock' - got timeout\n")
        )
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );

    // A start locks inside its task: the call returns a UPID, the task fails after the wait.
    let t = Instant::now();
    let (_, status) = tok.task("POST", "/nodes/pve/lxc/150/status/start", &[]).await;
    assert_eq!(
        status,
        "can't lock file '/run/lock/lxc/pve-config-150.lock' - got timeout"
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        tok.get_ok("/nodes/pve/lxc/150/status/current").await["status"],
        "stopped"
    );

    // A create waits 5 s (here 150 ms) in the API call, and says which CT it was creating.
    assert!(sim.admin().lock_ct(hold(151, 2.0)));
    let t = Instant::now();
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[
                ("vmid", "151"),
                ("ostemplate", TEMPLATE),
                ("rootfs", "local-lvm:8"),
            ],
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            500,
            Some(
                "unable to create CT 151 - can't lock file '/run/lock/lxc/pve-config-151.lock' - got timeout\n"
            )
        )
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(300),
        "{waited:?}"
    );

    // Released within the wait: the call goes through once the lock is free.
    assert!(sim.admin().lock_ct(hold(152, 0.15)));
    let t = Instant::now();
    let (s, _, text) = tok
        .call("PUT", "/nodes/pve/lxc/152/config", &[("cores", "3")])
        .await;
    assert_eq!(s, 200, "{text}");
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(tok.get_ok("/nodes/pve/lxc/152/config").await["cores"], 3);

    // `CT is locked (...)` still refuses at once: it is the config's `lock`, not a wait.
    assert!(sim.admin().lock_ct(LockRequest {
        vmid: 152,
        seconds: 2.0,
        lock: Some("backup".into())
    }));
    let t = Instant::now();
    let (s, v, _) = tok.call("POST", "/nodes/pve/lxc/152/status/start", &[]).await;
    assert_eq!((s, v["message"].as_str()), (500, Some("CT is locked (backup)\n")));
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn tasks_on_one_guest_run_one_after_another() {
    let sim = sim_with(Config::default_with_nodes(&["pve"]).with_task_duration_ms(200)).await;
    let tok = Client::token(&sim);
    create_ct(&tok, "pve", "160", &[]).await;
    let t = Instant::now();
    let (s, v, _) = tok.call("POST", "/nodes/pve/lxc/160/status/start", &[]).await;
    assert_eq!(s, 200);
    let start = v["data"].as_str().unwrap().to_string();
    let (s, v, _) = tok
        .call(
            "PUT",
            "/nodes/pve/lxc/160/resize",
            &[("disk", "rootfs"), ("size", "+1G")],
        )
        .await;
    assert_eq!(s, 200);
    let resize = v["data"].as_str().unwrap().to_string();
    assert_eq!(tok.wait(&start).await, "OK");
    let after_start = t.elapsed();
    assert_eq!(tok.wait(&resize).await, "OK");
    let after_resize = t.elapsed();
    assert!(
        after_resize >= after_start + Duration::from_millis(150),
        "the resize ran after the start: {after_start:?} then {after_resize:?}"
    );
    let conf = tok.get_ok("/nodes/pve/lxc/160/config").await;
    assert!(conf["rootfs"].as_str().unwrap().contains("size=9G"), "{conf}");
}

#[tokio::test]
async fn a_destroy_that_waited_checks_again_whether_the_guest_runs() {
    let sim = sim_with(Config::default_with_nodes(&["pve"]).with_task_duration_ms(200)).await;
    let tok = Client::token(&sim);
    create_ct(&tok, "pve", "170", &[]).await;
    let (s, v, _) = tok.call("POST", "/nodes/pve/lxc/170/status/start", &[]).await;
    assert_eq!(s, 200);
    let start = v["data"].as_str().unwrap().to_string();
    // Not running yet, so the call's early check passes; the task finds it running.
    let (s, v, text) = tok.call("DELETE", "/nodes/pve/lxc/170", &[]).await;
    assert_eq!(s, 200, "{text}");
    let destroy = v["data"].as_str().unwrap().to_string();
    assert_eq!(tok.wait(&start).await, "OK");
    assert_eq!(
        tok.wait(&destroy).await,
        "unable to destroy CT 170 - container is running"
    );
    assert_eq!(
        tok.get_ok("/nodes/pve/lxc/170/status/current").await["status"],
        "running"
    );
    // With force, it stops the guest and destroys it.
    let (s, v, _) = tok.call("POST", "/nodes/pve/lxc/170/status/reboot", &[]).await;
    assert_eq!(s, 200);
    let reboot = v["data"].as_str().unwrap().to_string();
    let (_, status) = tok.task("DELETE", "/nodes/pve/lxc/170", &[("force", "1")]).await;
    assert_eq!(status, "OK");
    assert_eq!(tok.wait(&reboot).await, "OK");
    let (s, _, _) = tok.call("GET", "/nodes/pve/lxc/170/config", &[]).await;
    assert_eq!(s, 500);
}

fn storage_cfg(alloc_ms: u64, timeout_ms: u64) -> Config {
    let mut cfg = Config::default_with_nodes(&["pve1", "pve2"]);
    cfg.task_durations_ms.insert("vzcreate".into(), 400);
    cfg.storage_alloc_ms = Some(alloc_ms);
    cfg.storage_lock_timeout_ms = timeout_ms;
    let mut second = cfg.storages[1].clone();
    second.id = "fast-lvm".into();
    cfg.storages.push(second);
    cfg
}

async fn create_upid(tok: &Client, node: &str, vmid: &str, rootfs: &str) -> String {
    let (s, v, text) = tok
        .call(
            "POST",
            &format!("/nodes/{node}/lxc"),
            &[("vmid", vmid), ("ostemplate", TEMPLATE), ("rootfs", rootfs)],
        )
        .await;
    assert_eq!(s, 200, "{text}");
    v["data"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn creates_on_one_storage_take_turns_allocating() {
    let sim = sim_with(storage_cfg(300, 5_000)).await;
    let tok = Client::token(&sim);
    let t = Instant::now();
    let first = create_upid(&tok, "pve1", "200", "local-lvm:8").await;
    let second = create_upid(&tok, "pve1", "201", "local-lvm:8").await;
    let other_storage = create_upid(&tok, "pve1", "202", "fast-lvm:8").await;
    let other_node = create_upid(&tok, "pve2", "203", "local-lvm:8").await;
    for upid in [&other_storage, &other_node, &first] {
        assert_eq!(tok.wait(upid).await, "OK");
    }
    let unhindered = t.elapsed();
    assert_eq!(tok.wait(&second).await, "OK");
    let waited = t.elapsed();
    // The second waited for the first's 300 ms allocation: 300 + 400 ms in all.
    assert!(unhindered < Duration::from_millis(650), "{unhindered:?}");
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
}

#[tokio::test]
async fn storage_lock_timeout_fails_the_task_not_the_call() {
    let sim = sim_with(storage_cfg(300, 100)).await;
    let tok = Client::token(&sim);
    let first = create_upid(&tok, "pve1", "200", "local-lvm:8").await;
    let second = create_upid(&tok, "pve1", "201", "local-lvm:8").await;
    assert_eq!(
        tok.wait(&second).await,
        "unable to create CT 201 - can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"
    );
    let log = tok
        .get_ok(&format!("/nodes/pve1/tasks/{}/log", enc(&second)))
        .await;
    assert_eq!(
        log.as_array().unwrap().last().unwrap()["t"],
        "TASK ERROR: unable to create CT 201 - can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"
    );
    assert_eq!(tok.wait(&first).await, "OK");
    // The failed create left nothing behind.
    let (s, v, _) = tok.call("GET", "/nodes/pve1/lxc/201/config", &[]).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            500,
            Some("Configuration file 'nodes/pve1/lxc/201.conf' does not exist\n")
        )
    );
    let content = tok.get_ok("/nodes/pve1/storage/local-lvm/content?vmid=201").await;
    assert_eq!(content, json!([]));
}

#[tokio::test]
async fn cluster_resources_lag_behind_like_pvestatd() {
    let mut cfg = Config::default_with_nodes(&["pve"]);
    cfg.stats_delay_ms = 400;
    let sim = sim_with(cfg).await;
    let tok = Client::token(&sim);
    let t = Instant::now();
    create_ct(&tok, "pve", "300", &[("hostname", "lag")]).await;
    let vm = vm_entry(&tok.get_ok("/cluster/resources?type=vm").await, 300);
    assert_eq!(vm["status"], "unknown", "{vm}");
    assert!(vm.get("name").is_none(), "{vm}");
    assert_eq!(
        tok.get_ok("/nodes/pve/lxc/300/status/current").await["status"],
        "stopped"
    );
    tokio::time::sleep(Duration::from_millis(450).saturating_sub(t.elapsed())).await;
    let vm = vm_entry(&tok.get_ok("/cluster/resources?type=vm").await, 300);
    assert_eq!(
        (vm["status"].as_str(), vm["name"].as_str()),
        (Some("stopped"), Some("lag"))
    );

    // After vzstart, status/current is live (the task waited for RUNNING); the cluster view
    // shows the old status until the next broadcast.
    assert_eq!(
        tok.task("POST", "/nodes/pve/lxc/300/status/start", &[]).await.1,
        "OK"
    );
    let started = Instant::now();
    assert_eq!(
        tok.get_ok("/nodes/pve/lxc/300/status/current").await["status"],
        "running"
    );
    let vm = vm_entry(&tok.get_ok("/cluster/resources?type=vm").await, 300);
    assert_eq!(vm["status"], "stopped");
    assert_eq!(vm["mem"], 0);
    tokio::time::sleep(Duration::from_millis(450).saturating_sub(started.elapsed())).await;
    let vm = vm_entry(&tok.get_ok("/cluster/resources?type=vm").await, 300);
    assert_eq!(vm["status"], "running");
}

async fn concurrent_gets(sim: &PveSim, paths: &[&str]) -> Duration {
    let t = Instant::now();
    let calls: Vec<_> = paths
        .iter()
        .map(|p| {
            let tok = Client::token(sim);
            let p = p.to_string();
            tokio::spawn(async move { tok.call("GET", &p, &[]).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    t.elapsed()
}

#[tokio::test]
async fn api_workers_per_node_queue_requests() {
    let mut cfg = Config::default_with_nodes(&["pve1", "pve2"]);
    cfg.api_workers = 2;
    let sim = sim_with(cfg).await;
    sim.admin().add_latency(LatencyRule {
        on: Match {
            path_prefix: "/nodes".into(),
            method: None,
        },
        ms: 200,
    });
    // Four calls to one node with two workers: two rounds.
    let one_node = ["/nodes/pve1/status"; 4];
    let took = concurrent_gets(&sim, &one_node).await;
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Two calls per node: each node's workers take them at once.
    let two_nodes = [
        "/nodes/pve1/status",
        "/nodes/pve1/status",
        "/nodes/pve2/status",
        "/nodes/pve2/status",
    ];
    let took = concurrent_gets(&sim, &two_nodes).await;
    assert!(took < Duration::from_millis(390), "{took:?}");
}

#[tokio::test]
async fn request_stats_count_calls_per_endpoint() {
    let sim = sim_with(Config::default_with_nodes(&["pve"])).await;
    let tok = Client::token(&sim);
    create_ct(&tok, "pve", "400", &[]).await;
    create_ct(&tok, "pve", "401", &[]).await;
    tok.get_ok("/nodes/pve/lxc/400/config").await;
    tok.get_ok("/nodes/pve/lxc/401/config").await;
    let (s, _, _) = tok.call("GET", "/nodes/pve/lxc/999/config", &[]).await;
    assert_eq!(s, 500);
    let stats: Value = admin_get(format!("{}/requests/stats", sim.admin_url()))
        .await
        .json()
        .await
        .unwrap();
    let find = |method: &str, route: &str| {
        stats
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["method"] == method && e["route"] == route)
            .cloned()
            .unwrap_or_else(|| panic!("{method} {route} in {stats}"))
    };
    let config = find("GET", "/nodes/{node}/lxc/{vmid}/config");
    assert_eq!(
        (config["count"].as_u64(), config["failed"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(config["mutating"], false);
    let create = find("POST", "/nodes/{node}/lxc");
    assert_eq!(
        (create["count"].as_u64(), create["mutating"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(
        find("GET", "/nodes/{node}/tasks/{upid}/status")["mutating"],
        false
    );
    assert_eq!(
        sim.admin().request_stats(),
        serde_json::from_value::<Vec<pve_sim::EndpointCount>>(stats.clone()).unwrap()
    );
}

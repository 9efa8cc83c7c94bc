//! Container lifecycle over HTTPS: create, config and digest, tags, power, interfaces, status,
//! cluster resources, destroy, and PVE's error messages along the way.

mod common;
use common::*;
use regex::Regex;

#[tokio::test]
async fn lifecycle_with_real_errors() {
    let sim = start(&["pve1", "pve2"]).await;
    let tok = Client::token(&sim);
    assert_eq!(tok.get_ok("/cluster/nextid").await, "100");
    let (upid, status) = tok
        .task(
            "POST",
            "/nodes/pve1/lxc",
            &[
                ("vmid", "100"),
                ("ostemplate", TEMPLATE),
                ("hostname", "web1"),
                ("rootfs", "local-lvm:8"),
                ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1"),
                ("net1", "name=eth1,bridge=vmbr0,ip=dhcp,hwaddr=BC:24:11:AA:BB:CC"),
                ("tags", "Web;db,web  Prod"),
                ("memory", "1024"),
            ],
        )
        .await;
    assert_eq!(status, "OK");
    let re = Regex::new(r"^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:vzcreate:100:root@pam!operator:$")
        .unwrap();
    assert!(re.is_match(&upid), "{upid}");
    let st = tok
        .get_ok(&format!("/nodes/pve1/tasks/{}/status", enc(&upid)))
        .await;
    assert_eq!(
        (st["user"].as_str(), st["tokenid"].as_str(), st["id"].as_str()),
        (Some("root@pam"), Some("operator"), Some("100"))
    );
    let (s, v, _) = tok
        .call(
            "GET",
            &format!("/nodes/pve1/tasks/{}/log", enc(&upid)),
            &[("start", "0"), ("limit", "0")],
        )
        .await;
    assert_eq!(s, 200);
    let lines = v["data"].as_array().unwrap();
    assert_eq!(lines.last().unwrap()["t"], "TASK OK");
    assert_eq!(v["total"].as_u64().unwrap() as usize, lines.len());

    let conf = tok.get_ok("/nodes/pve1/lxc/100/config").await;
    assert_eq!(conf["rootfs"], "local-lvm:vm-100-disk-0,size=8G");
    assert_eq!(conf["tags"], "db;prod;web");
    assert_eq!(conf["hostname"], "web1");
    assert_eq!(conf["unprivileged"], 1);
    assert!(
        conf["net0"].as_str().unwrap().contains("hwaddr=BC:24:11:"),
        "{}",
        conf["net0"]
    );
    let digest = conf["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 40);
    assert!(conf.get("lock").is_none());

    // Taken VMID, nextid with a vmid, config on the wrong node.
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve2/lxc",
            &[("vmid", "100"), ("ostemplate", TEMPLATE)],
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("CT 100 already exists on node 'pve1'\n"))
    );
    let (s, v, _) = tok.call("GET", "/cluster/nextid", &[("vmid", "100")]).await;
    assert_eq!(
        (s, &v["errors"]["vmid"]),
        (400, &serde_json::json!("VM 100 already exists"))
    );
    assert_eq!(tok.get_ok("/cluster/nextid").await, "101");
    let (s, v, _) = tok.call("GET", "/nodes/pve2/lxc/100/config", &[]).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            500,
            Some("Configuration file 'nodes/pve2/lxc/100.conf' does not exist\n")
        )
    );

    // Digest: the current one is accepted, a stale one refused.
    let (s, _, t) = tok
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/config",
            &[("cores", "2"), ("digest", &digest)],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, v, _) = tok
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/config",
            &[("cores", "3"), ("digest", &digest)],
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "detected modified configuration - file changed by other user? Try again.\n"
    );
    let (s, v, _) = tok
        .call("PUT", "/nodes/pve1/lxc/100/config", &[("delete", "bogus")])
        .await;
    assert_eq!(
        (s, &v["errors"]["delete"]),
        (400, &serde_json::json!("unknown option 'bogus'"))
    );
    let (s, v, _) = tok.call("PUT", "/nodes/pve1/lxc/100/config", &[]).await;
    assert_eq!((s, v["message"].as_str()), (500, Some("no options specified\n")));

    // Stopped: no interfaces, zero usage.
    assert_eq!(
        tok.get_ok("/nodes/pve1/lxc/100/interfaces").await,
        serde_json::Value::Null
    );
    let cur = tok.get_ok("/nodes/pve1/lxc/100/status/current").await;
    assert_eq!(
        (cur["status"].as_str(), cur["mem"].as_u64()),
        (Some("stopped"), Some(0))
    );
    assert_eq!(cur["maxmem"], 1024u64 << 20);
    assert_eq!(cur["maxdisk"], 8u64 << 30);

    let (s, v, _) = tok.call("POST", "/nodes/pve1/lxc/100/status/stop", &[]).await;
    assert_eq!((s, v["message"].as_str()), (500, Some("CT 100 not running\n")));
    assert_eq!(
        tok.task("POST", "/nodes/pve1/lxc/100/status/start", &[]).await.1,
        "OK"
    );
    let (s, v, _) = tok.call("POST", "/nodes/pve1/lxc/100/status/start", &[]).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("CT 100 already running\n"))
    );

    let cur = tok.get_ok("/nodes/pve1/lxc/100/status/current").await;
    assert_eq!(cur["status"], "running");
    assert!(cur["mem"].as_u64().unwrap() > 0 && cur["pid"].as_u64().is_some());
    assert_eq!(cur["ha"]["managed"], 0);
    let ifs = tok.get_ok("/nodes/pve1/lxc/100/interfaces").await;
    let names: Vec<&str> = ifs
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lo", "eth0", "eth1"]);
    assert_eq!(ifs[1]["inet"], "10.0.0.5/24");
    assert_eq!(ifs[2]["inet"], "10.99.187.204/16");
    assert_eq!(ifs[2]["hwaddr"], "bc:24:11:aa:bb:cc");
    assert_eq!(ifs[0]["ip-addresses"][0]["ip-address"], "127.0.0.1");

    // pvestatd publishes the new status after `stats_delay_ms` (1 s by default).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = tok.get_ok("/cluster/resources?type=vm").await;
    let vm = &res.as_array().unwrap()[0];
    assert_eq!(
        (vm["id"].as_str(), vm["status"].as_str(), vm["node"].as_str()),
        (Some("lxc/100"), Some("running"), Some("pve1"))
    );
    assert_eq!(vm["tags"], "db;prod;web");
    let all = tok.get_ok("/cluster/resources").await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "node" && r["node"] == "pve2")
    );
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "storage" && r["storage"] == "local-lvm")
    );

    let (s, v, _) = tok.call("DELETE", "/nodes/pve1/lxc/100", &[]).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("unable to destroy CT 100 - container is running\n"))
    );
    let (s, v, _) = tok.call("POST", "/nodes/pve1/lxc/100/status/reboot", &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        tok.task("POST", "/nodes/pve1/lxc/100/status/shutdown", &[])
            .await
            .1,
        "OK"
    );
    let (s, v, _) = tok.call("POST", "/nodes/pve1/lxc/100/status/reboot", &[]).await;
    assert_eq!((s, v["message"].as_str()), (500, Some("VM 100 not running\n")));
    assert_eq!(
        tok.task("DELETE", "/nodes/pve1/lxc/100", &[("purge", "1")])
            .await
            .1,
        "OK"
    );
    let (s, _, _) = tok.call("GET", "/nodes/pve1/lxc/100/config", &[]).await;
    assert_eq!(s, 500);
    assert_eq!(
        tok.get_ok("/cluster/resources?type=vm").await,
        serde_json::json!([])
    );
    // The disk is gone from the storage too.
    let content = tok.get_ok("/nodes/pve1/storage/local-lvm/content").await;
    assert_eq!(content, serde_json::json!([]));
}

#[tokio::test]
async fn locks_while_tasks_run_and_injected_task_failures() {
    let sim =
        pve_sim::PveSim::start(pve_sim::Config::default_with_nodes(&["pve"]).with_task_duration_ms(300))
            .await
            .unwrap();
    let tok = Client::token(&sim);
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[("vmid", "200"), ("ostemplate", TEMPLATE)],
        )
        .await;
    // Without rootfs PVE uses `local:4`, and `local` holds no container directories.
    assert_eq!(
        (s, &v["errors"]["storage"]),
        (
            400,
            &serde_json::json!("storage 'local' does not support container directories")
        )
    );
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[
                ("vmid", "200"),
                ("ostemplate", TEMPLATE),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    let upid = v["data"].as_str().unwrap().to_string();
    let st = tok
        .get_ok(&format!("/nodes/pve/tasks/{}/status", enc(&upid)))
        .await;
    assert_eq!(st["status"], "running");
    assert!(st.get("exitstatus").is_none());
    let creating = tok.get_ok("/nodes/pve/lxc/200/config").await;
    assert_eq!(creating["lock"], "create");
    let keys: Vec<&String> = creating.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["digest", "lock"],
        "only the lock until vzcreate ends: {creating}"
    );
    let (s, v, _) = tok.call("POST", "/nodes/pve/lxc/200/status/start", &[]).await;
    assert_eq!((s, v["message"].as_str()), (500, Some("CT is locked (create)\n")));
    let (s, v, _) = tok
        .call("PUT", "/nodes/pve/lxc/200/config", &[("cores", "2")])
        .await;
    assert_eq!((s, v["message"].as_str()), (500, Some("CT is locked (create)\n")));
    assert_eq!(tok.wait(&upid).await, "OK");
    let created = tok.get_ok("/nodes/pve/lxc/200/config").await;
    assert!(created.get("lock").is_none());
    assert!(
        created.get("rootfs").is_some(),
        "the real config once it ended: {created}"
    );

    // A start task holds the config lock file: a resize started meanwhile waits for it
    // inside its own task, and a config change waits in the API call.
    let (s, v, _) = tok.call("POST", "/nodes/pve/lxc/200/status/start", &[]).await;
    assert_eq!(s, 200);
    let start_upid = v["data"].as_str().unwrap().to_string();
    let (s, v, _) = tok
        .call(
            "PUT",
            "/nodes/pve/lxc/200/resize",
            &[("disk", "rootfs"), ("size", "+1G")],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let resize_upid = v["data"].as_str().unwrap().to_string();
    let (s, _, _) = tok
        .call("PUT", "/nodes/pve/lxc/200/config", &[("cores", "2")])
        .await;
    assert_eq!(s, 200);
    let st = tok
        .get_ok(&format!("/nodes/pve/tasks/{}/status", enc(&start_upid)))
        .await;
    assert_eq!(
        st["status"], "stopped",
        "the config change waited for the start task"
    );
    assert_eq!(tok.wait(&start_upid).await, "OK");
    assert_eq!(tok.wait(&resize_upid).await, "OK");

    // Injected failure of the next vzstop for this vmid.
    sim.admin().fail_tasks(pve_sim::TaskFailure {
        task_type: Some("vzstop".into()),
        vmid: Some(200),
        message: "command 'lxc-stop' failed: exit code 1".into(),
        count: 1,
    });
    let (upid, status) = tok.task("POST", "/nodes/pve/lxc/200/status/stop", &[]).await;
    assert_eq!(status, "command 'lxc-stop' failed: exit code 1");
    let log = tok.get_ok(&format!("/nodes/pve/tasks/{}/log", enc(&upid))).await;
    assert_eq!(
        log.as_array().unwrap().last().unwrap()["t"],
        "TASK ERROR: command 'lxc-stop' failed: exit code 1"
    );
    assert_eq!(
        tok.get_ok("/nodes/pve/lxc/200/status/current").await["status"],
        "running"
    );
    assert_eq!(
        tok.task("POST", "/nodes/pve/lxc/200/status/stop", &[]).await.1,
        "OK"
    );

    // A failed create leaves nothing behind.
    sim.admin().fail_tasks(pve_sim::TaskFailure {
        task_type: Some("vzcreate".into()),
        vmid: None,
        message: "unable to create CT 201 - no space".into(),
        count: 1,
    });
    let (_, status) = tok
        .task(
            "POST",
            "/nodes/pve/lxc",
            &[
                ("vmid", "201"),
                ("ostemplate", TEMPLATE),
                ("rootfs", "local-lvm:1"),
            ],
        )
        .await;
    assert_eq!(status, "unable to create CT 201 - no space");
    let (s, _, _) = tok.call("GET", "/nodes/pve/lxc/201/config", &[]).await;
    assert_eq!(s, 500);

    let (s, v, _) = tok
        .call(
            "GET",
            "/nodes/pve/tasks/UPID:pve:00000001:00000001:00000001:vzstart:1:root@pam:/status",
            &[],
        )
        .await;
    assert_eq!(
        (s, &v["errors"]["upid"]),
        (400, &serde_json::json!("no such task"))
    );
    let (s, v, _) = tok.call("GET", "/nodes/pve/tasks/garbage/status", &[]).await;
    assert_eq!(
        (s, &v["errors"]["upid"]),
        (400, &serde_json::json!("unable to parse worker upid"))
    );
}

#[tokio::test]
async fn cluster_status_names_the_cluster_or_only_the_standalone_node() {
    let sim = start(&["pve1", "pve2"]).await;
    let st = Client::token(&sim).get_ok("/cluster/status").await;
    let entries = st.as_array().unwrap();
    assert_eq!(
        (
            entries[0]["type"].as_str(),
            entries[0]["name"].as_str(),
            entries[0]["nodes"].as_u64()
        ),
        (Some("cluster"), Some("pve-sim"), Some(2))
    );
    let locals: Vec<&str> = entries
        .iter()
        .filter(|e| e["type"] == "node" && e["local"] == 1)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(locals, ["pve1"], "one node answers");

    let single = start(&["solo"]).await;
    let st = Client::token(&single).get_ok("/cluster/status").await;
    let entries = st.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{st}");
    assert_eq!(
        (
            entries[0]["type"].as_str(),
            entries[0]["name"].as_str(),
            entries[0]["local"].as_u64()
        ),
        (Some("node"), Some("solo"), Some(1))
    );
}

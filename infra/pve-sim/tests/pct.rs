//! The `host/pct` stand-in driven directly (no SSH): existence and running checks with pct's
//! messages, exec with exit codes, push/pull with modes, package and service stand-ins, and
//! the container root created at create and removed at destroy.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

fn pct(sim: &pve_sim::PveSim, args: &[&str]) -> Output {
    std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/host/pct"))
        .args(args)
        .env("PVE_SIM_ADMIN_URL", sim.admin_url())
        .env("PVE_SIM_NODE", "pve")
        .output()
        .expect("pct runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

// pct runs synchronously, so the simulator needs its own worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pct_stand_in_works_inside_the_container_root() {
    let dir = std::env::temp_dir().join(format!("pve-sim-pct-{}", std::process::id()));
    let mut cfg = pve_sim::Config::default_with_nodes(&["pve"]);
    cfg.ct_root_dir = Some(dir.clone());
    let sim = pve_sim::PveSim::start(cfg).await.unwrap();
    let tok = Client::token(&sim);

    let o = pct(&sim, &["exec", "300", "--", "true"]);
    assert_eq!(
        (o.status.code(), stderr(&o).as_str()),
        (
            Some(255),
            "Configuration file 'nodes/pve/lxc/300.conf' does not exist"
        )
    );

    create_ct(&tok, "pve", "300", &[("hostname", "app1")]).await;
    let root = dir.join("300");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "app1\n"
    );
    let o = pct(&sim, &["exec", "300", "--", "true"]);
    assert_eq!(
        (o.status.code(), stderr(&o).as_str()),
        (Some(255), "container '300' not running!")
    );
    let src = dir.join("app.conf");
    std::fs::write(&src, "key=value\n").unwrap();
    let o = pct(&sim, &["push", "300", src.to_str().unwrap(), "/etc/app.conf"]);
    assert_eq!(
        (o.status.code(), stderr(&o).as_str()),
        (Some(255), "can only push files to a running CT")
    );

    assert_eq!(
        tok.task("POST", "/nodes/pve/lxc/300/status/start", &[]).await.1,
        "OK"
    );
    let o = pct(&sim, &["exec", "300", "--", "sh", "-c", "pwd; exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        std::fs::canonicalize(&root).unwrap().to_str().unwrap()
    );

    let o = pct(
        &sim,
        &[
            "push",
            "300",
            src.to_str().unwrap(),
            "/etc/app.conf",
            "--perms",
            "0600",
            "--user",
            "root",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let pushed = root.join("etc/app.conf");
    assert_eq!(std::fs::read_to_string(&pushed).unwrap(), "key=value\n");
    assert_eq!(
        std::fs::metadata(&pushed).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let back = dir.join("back.conf");
    let o = pct(&sim, &["pull", "300", "/etc/app.conf", back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "key=value\n");

    let o = pct(
        &sim,
        &["exec", "300", "--", "apt-get", "install", "-y", "nginx", "curl"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(root.join("var/log/pve-sim-packages.log")).unwrap();
    assert_eq!(log, "apt-get install nginx\napt-get install curl\n");
    let o = pct(&sim, &["exec", "300", "--", "systemctl", "is-active", "nginx"]);
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).trim()),
        (Some(3), "inactive")
    );
    assert!(
        pct(
            &sim,
            &["exec", "300", "--", "systemctl", "enable", "--now", "nginx"]
        )
        .status
        .success()
    );
    let o = pct(
        &sim,
        &["exec", "300", "--", "systemctl", "is-active", "nginx.service"],
    );
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).trim()),
        (Some(0), "active")
    );

    assert_eq!(
        tok.task("DELETE", "/nodes/pve/lxc/300", &[("force", "1")])
            .await
            .1,
        "OK"
    );
    assert!(!root.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

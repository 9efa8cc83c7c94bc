//! Provisioning over real SSH: the test world's OpenSSH server plays the Proxmox host, its
//! `pct` is pve-sim's stand-in working in the simulator's container root directories (see
//! `ssh_provision/world.rs` for how it is pointed at each test's simulator).
//!
//! Covered here: files with mode, owner and the three policies; packages through the
//! stand-ins; scripts with their interpreter, environment, timeout and exit code; skipping by
//! digest (status or marker) and re-running only what changed; discovery of units, ports and
//! credentials. `client`: the SSH connection itself; `injection`: payloads in every value that
//! reaches a command.
//!
//! Scripts here write under `$PCT_ROOT`: the stand-in runs commands unconfined with the
//! container root as `PCT_ROOT` (and working directory), so that is where "inside the
//! container" is.

// This test acts on Proxmox (or the audit trail) directly, behind the operator's back; the
// operator itself may only do so through controllers::act::Actor (see clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "ssh_provision/world.rs"]
mod world;

#[path = "ssh_provision/client.rs"]
mod client;
#[path = "ssh_provision/injection.rs"]
mod injection;

use std::time::{Duration, Instant};

use lxc_operator::crd::provisioning::{FilePolicy, ServiceSpec};
use lxc_operator::provision::content::digest::ResolvedProvisioning;
use lxc_operator::provision::{
    MARKER_PATH, PctTarget, ProvisionError, ProvisionOptions, Target, discover, parse_marker, provision,
};
use lxc_operator::ssh::{ErrorKind, FilePerms};
use world::*;

pub fn options() -> ProvisionOptions {
    ProvisionOptions {
        file_timeout: Duration::from_secs(30),
        package_timeout: Duration::from_secs(60),
        command_timeout: Duration::from_secs(30),
    }
}

pub fn marker(root: &std::path::Path) -> Vec<(String, String)> {
    parse_marker(read(root, &MARKER_PATH[1..]).as_bytes())
}

// The stand-in calls back into the simulator synchronously: give it worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_packages_and_scripts_land_in_the_container() {
    let w = World::start("land").await;
    let (ct, root) = w.container(101).await;
    write(&root, "etc/keep.conf", "mine\n");
    write(&root, "etc/app.conf", "old\n");
    write_exe(
        &root,
        "usr/bin/pip3",
        "#!/bin/sh\nprintf '%s\\0' \"$@\" >> \"${PCT_ROOT:?}/var/log/pip-args\"\n",
    );
    let resolved = ResolvedProvisioning {
        files: vec![
            file(
                "/etc/myapp/conf.d/app.yaml",
                "0640",
                "app:app",
                FilePolicy::Replace,
                "key: value\n",
            ),
            file(
                "/etc/keep.conf",
                "0644",
                "root:root",
                FilePolicy::Default,
                "theirs\n",
            ),
            file("/etc/fresh.conf", "0600", "root", FilePolicy::Default, "fresh\n"),
            file("/etc/app.conf", "0644", "root:root", FilePolicy::Backup, "new\n"),
        ],
        packages: vec![
            ("apt".into(), vec!["nginx".into(), "curl".into()]),
            ("pip".into(), vec!["requests==2.32.3".into()]),
        ],
        scripts: vec![
            script(
                "write-env",
                "printf '%s|%s' \"$GREETING\" \"$SECOND\" > \"${PCT_ROOT:?}/root/greeting\"\n",
                &[("GREETING", "hello world"), ("SECOND", "2")],
            ),
            {
                let mut s = script(
                    "bash-only",
                    "arr=(a b c)\necho \"${#arr[@]}\" > \"${PCT_ROOT:?}/root/bash-count\"\n",
                    &[],
                );
                s.interpreter = "/bin/bash".into();
                s
            },
        ],
    };
    let report = provision(&ct, &resolved, &[], &options())
        .await
        .expect("provision");
    assert_eq!(
        report.ran,
        [
            "file:/etc/myapp/conf.d/app.yaml",
            "file:/etc/keep.conf",
            "file:/etc/fresh.conf",
            "file:/etc/app.conf",
            "packages:apt",
            "packages:pip",
            "script:write-env",
            "script:bash-only"
        ]
    );

    // Files: content, mode and owner; missing directories created; policies honoured.
    assert_eq!(read(&root, "etc/myapp/conf.d/app.yaml"), "key: value\n");
    assert_eq!(mode(&root, "etc/myapp/conf.d/app.yaml"), 0o640);
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root.join("etc/myapp/conf.d/app.yaml")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (APP_ID, APP_ID));
    assert_eq!(read(&root, "etc/keep.conf"), "mine\n", "Default never overwrites");
    assert_eq!(read(&root, "etc/fresh.conf"), "fresh\n");
    assert_eq!(mode(&root, "etc/fresh.conf"), 0o600);
    assert_eq!(read(&root, "etc/app.conf"), "new\n");
    assert_eq!(
        read(&root, "etc/app.conf.bak"),
        "old\n",
        "Backup keeps the old file"
    );
    assert_eq!(mode(&root, "etc/app.conf.bak"), 0o600);

    // Packages: the index refreshed once, then each package; pip got exactly its arguments.
    assert_eq!(
        read(&root, "var/log/pve-sim-packages.log"),
        "apt-get update\napt-get install nginx\napt-get install curl\n"
    );
    assert_eq!(read(&root, "var/log/pip-args"), "install\0--\0requests==2.32.3\0");

    // Scripts: their environment, their interpreter, a root-only copy kept.
    assert_eq!(read(&root, "root/greeting"), "hello world|2");
    assert_eq!(read(&root, "root/bash-count"), "3\n");
    assert_eq!(
        read(&root, "var/lib/lxc-operator/scripts/bash-only"),
        "arr=(a b c)\necho \"${#arr[@]}\" > \"${PCT_ROOT:?}/root/bash-count\"\n"
    );
    assert_eq!(mode(&root, "var/lib/lxc-operator/scripts/bash-only"), 0o700);

    // The marker inside the container says what is done.
    assert_eq!(marker(&root), report.done);
    assert_eq!(report.done.len(), 8);
    assert_eq!(mode(&root, &MARKER_PATH[1..]), 0o600);
    assert_eq!(w.host.stats().connections, 1, "one connection for the whole run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_steps_are_skipped_and_a_changed_script_alone_runs_again() {
    let w = World::start("rerun").await;
    let (ct, root) = w.container(102).await;
    let counting = |name: &str| {
        script(
            name,
            &format!("echo run >> \"${{PCT_ROOT:?}}/root/runs-{name}\"\n"),
            &[],
        )
    };
    let mut resolved = ResolvedProvisioning {
        files: vec![file(
            "/etc/motd",
            "0644",
            "root:root",
            FilePolicy::Replace,
            "hi\n",
        )],
        packages: vec![("apt".into(), vec!["nginx".into()])],
        scripts: vec![counting("one"), counting("two")],
    };
    let first = provision(&ct, &resolved, &[], &options()).await.unwrap();
    assert_eq!(first.ran.len(), 4);

    // Status says done: only the marker is read.
    let before = w.host.stats().commands;
    let second = provision(&ct, &resolved, &first.done, &options()).await.unwrap();
    assert!(second.ran.is_empty(), "{second:?}");
    assert_eq!(second.done, first.done);
    assert_eq!(
        w.host.stats().commands,
        before + 1,
        "one command: reading the marker"
    );

    // Status lost (the object was re-created): the marker alone skips everything.
    let third = provision(&ct, &resolved, &[], &options()).await.unwrap();
    assert!(third.ran.is_empty(), "{third:?}");
    assert_eq!(third.skipped.len(), 4);
    assert_eq!(w.host.stats().commands, before + 2);
    assert_eq!(read(&root, "root/runs-one"), "run\n");
    assert_eq!(read(&root, "root/runs-two"), "run\n");
    assert_eq!(read(&root, "var/log/pve-sim-packages.log").lines().count(), 2);

    // One script changes: it alone runs again.
    resolved.scripts[1].content = b"echo again >> \"${PCT_ROOT:?}/root/runs-two\"\n".to_vec();
    let fourth = provision(&ct, &resolved, &first.done, &options()).await.unwrap();
    assert_eq!(fourth.ran, ["script:two"]);
    assert_eq!(read(&root, "root/runs-one"), "run\n");
    assert_eq!(read(&root, "root/runs-two"), "run\nagain\n");
    assert_eq!(read(&root, "var/log/pve-sim-packages.log").lines().count(), 2);
    assert_eq!(marker(&root), fourth.done);
    assert_ne!(fourth.done[3], first.done[3]);
    assert_eq!(fourth.done[..3], first.done[..3]);
    assert_eq!(w.host.stats().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_stops_the_run_with_its_code_and_output_tail() {
    let w = World::start("fail").await;
    let (ct, root) = w.container(103).await;
    let resolved = ResolvedProvisioning {
        scripts: vec![
            script("ok", "touch \"${PCT_ROOT:?}/root/ok-ran\"\n", &[]),
            script(
                "bad",
                "i=1\nwhile [ $i -le 30 ]; do echo \"line $i\"; i=$((i+1)); done\n\
                 echo 'it broke' >&2\nexit 3\n",
                &[],
            ),
            script("after", "touch \"${PCT_ROOT:?}/root/after-ran\"\n", &[]),
        ],
        ..Default::default()
    };
    let failure = provision(&ct, &resolved, &[], &options()).await.unwrap_err();
    let message = failure.to_string();
    assert_eq!(failure.error.step(), "script:bad");
    assert_eq!(failure.error.exit_code(), Some(3));
    assert_eq!(failure.error.kind(), ErrorKind::CommandFailed);
    assert!(
        message.starts_with("step script:bad: /bin/sh exited with code 3; last output:\n"),
        "{message}"
    );
    for expected in ["line 12\n", "line 30", "it broke"] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    assert!(!message.contains("line 9\n"), "only the last 20 lines: {message}");
    assert_eq!(failure.report.ran, ["script:ok"]);
    assert!(root.join("root/ok-ran").exists());
    assert!(
        !root.join("root/after-ran").exists(),
        "the run stopped at the failure"
    );
    assert_eq!(marker(&root), failure.report.done);
    assert_eq!(failure.report.done.len(), 1);

    // A script past its timeout is killed inside the container.
    let slow = ResolvedProvisioning {
        scripts: vec![{
            let mut s = script("slow", "sleep 6\ntouch \"${PCT_ROOT:?}/root/late\"\n", &[]);
            s.timeout_seconds = 1;
            s
        }],
        ..Default::default()
    };
    let started = Instant::now();
    let failure = provision(&ct, &slow, &[], &options()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(failure.error.kind(), ErrorKind::Timeout, "{}", failure.error);
    assert!(
        matches!(&failure.error, ProvisionError::Ssh { step, .. } if step == "script:slow"),
        "{:?}",
        failure.error
    );
    tokio::time::sleep_until((started + Duration::from_secs(7)).into()).await;
    assert!(
        !root.join("root/late").exists(),
        "the script was killed, not left running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pct_errors_and_absent_files_are_told_apart() {
    let w = World::start("errors").await;
    let (ct, root) = w.container(104).await;
    assert_eq!(
        ct.read("/etc/nothing-here", Duration::from_secs(20))
            .await
            .unwrap(),
        None
    );
    write(&root, "etc/here", "x=1\n");
    assert_eq!(
        ct.read("/etc/here", Duration::from_secs(20)).await.unwrap(),
        Some(b"x=1\n".to_vec())
    );

    let missing = PctTarget::new(w.host.clone(), 999);
    let e = missing
        .push(
            b"x",
            "/etc/x",
            &FilePerms::root_only(0o644),
            Duration::from_secs(20),
        )
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.exit_code()), (ErrorKind::CommandFailed, Some(255)));
    assert!(
        e.to_string()
            .contains("Configuration file 'nodes/pve1/lxc/999.conf' does not exist"),
        "{e}"
    );
    let e = missing.read("/etc/x", Duration::from_secs(20)).await.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");

    let out = ct
        .exec(&["sh", "-c", "exit 42"], None, &[], Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.code, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reads_units_ports_and_credentials() {
    let w = World::start("discover").await;
    let (ct, root) = w.container(105).await;
    let out = ct
        .exec(
            &["systemctl", "enable", "--now", "nginx"],
            None,
            &[],
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.tail(5));
    write(
        &root,
        "etc/infrahaus/credentials/nginx.env",
        "# written by the service\nADMIN_USER=admin\nADMIN_PASSWORD='pa ss=word'\n",
    );
    let sshd_port = test_world::sshd().port;
    let closed = test_world::free_port();
    let services = [
        ServiceSpec {
            name: "nginx.service".into(),
            ports: vec![i32::from(sshd_port), i32::from(closed)],
        },
        ServiceSpec {
            name: "db.service".into(),
            ports: vec![],
        },
    ];
    let found = discover(&ct, &services, Duration::from_secs(20)).await.unwrap();
    assert_eq!(found.services.len(), 2);
    assert_eq!(
        (
            found.services[0].unit.as_str(),
            found.services[0].active_state.as_str()
        ),
        ("nginx.service", "active")
    );
    assert_eq!(found.services[1].active_state, "inactive");
    // The stand-in's "container" shares the host's network: sshd's port is listening there.
    let ports: Vec<(u16, Option<bool>)> = found.services[0]
        .ports
        .iter()
        .map(|p| (p.port, p.listening))
        .collect();
    assert_eq!(ports, [(sshd_port, Some(true)), (closed, Some(false))]);
    let creds = &found.credentials["nginx"];
    assert_eq!(creds.get("ADMIN_USER"), Some("admin"));
    assert_eq!(creds.get("ADMIN_PASSWORD"), Some("pa ss=word"));
    assert!(!found.credentials.contains_key("db"));
    let debug = format!("{found:?}");
    assert!(
        debug.contains("ADMIN_PASSWORD") && !debug.contains("pa ss"),
        "{debug}"
    );

    // Without `ss` the ports are unknown, not an error.
    write_exe(
        &root,
        "usr/bin/ss",
        "#!/bin/sh\necho 'ss: not found' >&2\nexit 127\n",
    );
    let found = discover(&ct, &services, Duration::from_secs(20)).await.unwrap();
    assert_eq!(found.listening_ports, None);
    assert_eq!(found.services[0].ports[0].listening, None);
}

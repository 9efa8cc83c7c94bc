//! Provisioning over real SSH: the test world's OpenSSH server plays the Proxmox host, its
//! `pct` is pve-sim's stand-in working in the simulator's container root directories (see
//! `ssh_provision/world.rs` for how it is pointed at each test's simulator).
//!
//! Covered: files with mode, owner and the three policies; packages through the stand-ins;
//! scripts with their interpreter, environment, timeout and exit code; skipping by digest
//! (status or marker) and re-running only what changed; discovery of units, ports and
//! credentials; and injection payloads in every value that reaches a command.
//!
//! Scripts here write under `$PCT_ROOT`: the stand-in runs commands unconfined with the
//! container root as `PCT_ROOT` (and working directory), so that is where "inside the
//! container" is.

#[path = "ssh_provision/world.rs"]
mod world;

use std::time::{Duration, Instant};

use lxc_operator::crd::provisioning::{FilePolicy, ServiceSpec};
use lxc_operator::provision::{
    MARKER_PATH, PctTarget, ProvisionError, ProvisionOptions, Target, discover, parse_marker, provision,
};
use lxc_operator::ssh::{ErrorKind, FilePerms};
use lxc_operator::template::digest::ResolvedProvisioning;
use world::*;

fn options() -> ProvisionOptions {
    ProvisionOptions {
        file_timeout: Duration::from_secs(30),
        package_timeout: Duration::from_secs(60),
        command_timeout: Duration::from_secs(30),
    }
}

fn marker(root: &std::path::Path) -> Vec<(String, String)> {
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

#[tokio::test]
async fn an_unpinned_host_key_is_refused_before_authenticating() {
    let sshd = test_world::sshd();
    let key_path = sshd.authorize_key_with_env(&[]).unwrap();
    let key = lxc_operator::ssh::ClientKey::from_text(&std::fs::read(&key_path).unwrap()).unwrap();
    let key_fp = key.public_fingerprint();
    let touched = std::env::temp_dir().join(format!("lxc-ssh-hostkey-{}", std::process::id()));

    // Pin some other valid key (here: the client key's own fingerprint).
    let mut config = sshd_config(2);
    config.host_key = lxc_operator::ssh::HostKeyFingerprint::parse(&key_fp).unwrap();
    let host = lxc_operator::ssh::SshHost::new(config, key.clone());
    let e = host
        .exec(
            &["touch", touched.to_str().unwrap()],
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostKeyMismatch, "{e}");
    let message = e.to_string();
    assert!(
        message.contains(&sshd.host_key_fingerprint) && message.contains(&key_fp),
        "{message}"
    );
    assert_eq!(host.stats().connections, 0);
    assert!(!touched.exists(), "no command ran");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(sshd.log_path()).unwrap();
    assert!(
        !log.contains(&key_fp),
        "sshd saw an authentication with the key:\n{log}"
    );

    // Control: the same key with the right pin authenticates, and sshd's log names it.
    let host = lxc_operator::ssh::SshHost::new(sshd_config(2), key);
    let out = host
        .exec(&["echo", "in"], None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "in\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(sshd.log_path())
        .unwrap()
        .contains(&key_fp)
    {
        assert!(Instant::now() < deadline, "sshd never logged the accepted key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn refused_keys_closed_ports_and_pem_rsa_keys() {
    let sshd = test_world::sshd();
    let dir = std::env::temp_dir().join(format!("lxc-ssh-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keygen = |name: &str, args: &[&str]| {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-N", ""])
            .args(args)
            .arg("-f")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    };

    // A key the server does not know: Auth.
    let stranger = keygen("stranger", &["-t", "ed25519"]);
    let key = lxc_operator::ssh::ClientKey::from_text(&std::fs::read(&stranger).unwrap()).unwrap();
    let e = lxc_operator::ssh::SshHost::new(sshd_config(1), key)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");

    // An RSA key in PEM (PKCS#1) form, as older Secrets hold them.
    let rsa = keygen("rsa", &["-t", "rsa", "-b", "2048", "-m", "PEM"]);
    let text = std::fs::read(&rsa).unwrap();
    assert!(text.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    let public = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    sshd.authorize_public_key(&public, &[]).unwrap();
    let key = lxc_operator::ssh::ClientKey::from_text(&text).unwrap();
    let host = lxc_operator::ssh::SshHost::new(sshd_config(1), key);
    let out = host
        .exec(&["echo", "rsa"], None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "rsa\n");

    // Nobody listening: Connect, after the configured attempts.
    let mut config = sshd_config(1);
    config.port = test_world::free_port();
    let key = lxc_operator::ssh::ClientKey::from_text(&std::fs::read(&sshd.client_key).unwrap()).unwrap();
    let e = lxc_operator::ssh::SshHost::new(config, key)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.to_string().contains("(attempt 3)"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_is_shared_capped_and_reopened_when_it_dies() {
    let sshd = test_world::sshd();
    let key = lxc_operator::ssh::ClientKey::from_text(&std::fs::read(&sshd.client_key).unwrap()).unwrap();
    let host = std::sync::Arc::new(lxc_operator::ssh::SshHost::new(sshd_config(2), key));
    let dir = std::env::temp_dir().join(format!("lxc-ssh-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir_text = dir.to_str().unwrap().to_string();

    // Each command registers itself, waits, and records how many were running at once.
    const CONCURRENT: &str =
        r#"touch "$1/run.$$"; sleep 0.4; ls "$1" | grep -c '^run\.' >> "$1.counts"; rm "$1/run.$$""#;
    let started = Instant::now();
    let runs = (0..6).map(|_| {
        let host = host.clone();
        let dir = dir_text.clone();
        async move {
            host.exec(
                &["sh", "-c", CONCURRENT, "probe", &dir],
                None,
                Duration::from_secs(30),
            )
            .await
        }
    });
    for out in futures::future::join_all(runs).await {
        assert!(out.unwrap().success());
    }
    let counts = std::fs::read_to_string(format!("{dir_text}.counts")).unwrap();
    let most = counts
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .max()
        .unwrap();
    assert!(most <= 2, "at most maxSessions at once: {counts}");
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(host.stats().connections, 1);
    assert_eq!(host.stats().commands, 6);

    // Kill this connection's own sshd process (never the listening daemon).
    let daemon = std::fs::read_to_string(sshd.client_key.with_file_name("sshd.pid")).unwrap();
    const KILL_MY_SSHD: &str = r#"p=$PPID
while [ "$(cat /proc/$p/comm)" != sshd ]; do p=$(cut -d' ' -f4 /proc/$p/stat); done
[ "$p" != "$1" ] && kill -9 "$p""#;
    let e = host
        .exec(
            &["sh", "-c", KILL_MY_SSHD, "kill", daemon.trim()],
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let out = host
        .exec(&["echo", "back"], None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "back\n");
    assert_eq!(host.stats().connections, 2, "reconnected once");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(format!("{dir_text}.counts"));
}

/// Shell-injection payloads; every one that would run names a file `<tag>-NN`, in `/tmp` or in
/// the working directory.
fn payloads(tag: &str) -> Vec<String> {
    vec![
        format!("; touch /tmp/{tag}-01"),
        format!("$(touch /tmp/{tag}-02)"),
        format!("`touch /tmp/{tag}-03`"),
        format!("' ; touch /tmp/{tag}-04 ; '"),
        format!("\" ; touch /tmp/{tag}-05 ; \""),
        format!("x\ntouch /tmp/{tag}-06"),
        format!("&& touch /tmp/{tag}-07"),
        format!("|| touch /tmp/{tag}-08"),
        format!("| tee /tmp/{tag}-09"),
        format!("> /tmp/{tag}-10"),
        "*".into(),
        "--help".into(),
        "-rf".into(),
        "$HOME".into(),
        format!("${{IFS}}touch${{IFS}}/tmp/{tag}-15"),
        "back\\slash\\".into(),
        "~root".into(),
        "{a,b}".into(),
        format!("#; touch /tmp/{tag}-19"),
        format!("<(touch /tmp/{tag}-20)"),
        format!("$'\\x3b' touch /tmp/{tag}-21"),
        "tab\there".into(),
        format!("\r\ntouch {tag}-23"),
        format!("$(touch {tag}-24)"),
        format!("`touch {tag}-25`"),
        format!("';touch {tag}-26;'"),
        "!!".into(),
        "%s%n%x".into(),
        "ünïcødé 😀".into(),
        "a=b".into(),
    ]
}

/// Files and directories under `dir` whose name starts with `prefix`, outside `skip`.
fn named(dir: &std::path::Path, prefix: &str, skip: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.contains(&path) {
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(named(&path, prefix, skip));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_payloads_arrive_literally_and_run_nothing() {
    let w = World::start("inject").await;
    let (ct, root) = w.container(106).await;
    let tag = format!("pwned{}", std::process::id());
    let payloads = payloads(&tag);
    assert!(payloads.len() >= 20);
    let words: Vec<&str> = payloads.iter().map(String::as_str).collect();
    let nul_joined: Vec<u8> = payloads
        .iter()
        .flat_map(|p| format!("{p}\0").into_bytes())
        .collect();

    // On the host, through the login shell.
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(&words);
    let out = w.host.exec(&argv, None, Duration::from_secs(20)).await.unwrap();
    assert_eq!(out.stdout, nul_joined);

    // In the container, as arguments and as environment values.
    let env_names: Vec<String> = (0..payloads.len()).map(|i| format!("P{i:02}")).collect();
    let env: Vec<(&str, &str)> = env_names
        .iter()
        .map(String::as_str)
        .zip(words.iter().copied())
        .collect();
    let show_env = env_names
        .iter()
        .map(|n| format!("printf '%s\\0' \"${n}\""))
        .collect::<Vec<_>>()
        .join("; ");
    let out = ct
        .exec(&["sh", "-c", &show_env], None, &env, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.stdout, nul_joined);
    let out = ct.exec(&argv, None, &[], Duration::from_secs(20)).await.unwrap();
    assert_eq!(out.stdout, nul_joined);

    // Through provisioning: file paths, package names, script names, script environment.
    write_exe(
        &root,
        "usr/bin/pip3",
        "#!/bin/sh\nprintf '%s\\0' \"$@\" >> \"${PCT_ROOT:?}/var/log/pip-args\"\n",
    );
    let plain: Vec<&String> = payloads
        .iter()
        .filter(|p| !p.chars().any(char::is_control))
        .collect();
    let no_slash: Vec<&&String> = plain.iter().filter(|p| !p.contains('/')).collect();
    assert!(
        plain.len() >= 20 && no_slash.len() >= 12,
        "{} {}",
        plain.len(),
        no_slash.len()
    );
    let env_script: String = env_names
        .iter()
        .map(|n| format!("printf '%s\\0' \"${n}\" >> \"${{PCT_ROOT:?}}/root/env-values\"\n"))
        .collect();
    let mut scripts = vec![script("show-env", &env_script, &env)];
    scripts.extend(
        no_slash
            .iter()
            .map(|name| script(name, "echo ran >> \"${PCT_ROOT:?}/root/named-runs\"\n", &[])),
    );
    let resolved = ResolvedProvisioning {
        files: plain
            .iter()
            .enumerate()
            .map(|(i, p)| {
                file(
                    &format!("/srv/inject/{i:02}/{p}"),
                    "0640",
                    "app:app",
                    FilePolicy::Replace,
                    p,
                )
            })
            .collect(),
        packages: vec![("pip".into(), payloads.clone())],
        scripts,
    };
    let report = provision(&ct, &resolved, &[], &options())
        .await
        .expect("provision");
    assert_eq!(report.ran.len(), plain.len() + 1 + 1 + no_slash.len());

    for (i, p) in plain.iter().enumerate() {
        let rel = format!("srv/inject/{i:02}/{p}");
        assert_eq!(read(&root, &rel), **p, "file {rel:?}");
        assert_eq!(mode(&root, &rel), 0o640);
    }
    let mut pip_args = b"install\0--\0".to_vec();
    pip_args.extend(&nul_joined);
    assert_eq!(std::fs::read(root.join("var/log/pip-args")).unwrap(), pip_args);
    assert_eq!(std::fs::read(root.join("root/env-values")).unwrap(), nul_joined);
    assert_eq!(read(&root, "root/named-runs").lines().count(), no_slash.len());
    for name in &no_slash {
        assert!(
            root.join("var/lib/lxc-operator/scripts").join(name).is_file(),
            "script copy {name:?}"
        );
    }
    assert_eq!(marker(&root), report.done);

    // What cannot be passed as a name is refused before anything runs.
    let before = w.host.stats().commands;
    for bad in [
        ResolvedProvisioning {
            files: vec![file(
                &format!("/srv/a\ntouch /tmp/{tag}-f"),
                "0644",
                "root",
                FilePolicy::Replace,
                "x",
            )],
            ..Default::default()
        },
        ResolvedProvisioning {
            scripts: vec![script(&format!("x/../../../tmp/{tag}-s"), "true\n", &[])],
            ..Default::default()
        },
        ResolvedProvisioning {
            files: vec![file(
                "/srv/ok",
                "0644",
                "root; touch /tmp/x",
                FilePolicy::Replace,
                "x",
            )],
            ..Default::default()
        },
        ResolvedProvisioning {
            scripts: vec![script("env", "true\n", &[("A;touch", "x")])],
            ..Default::default()
        },
    ] {
        let failure = provision(&ct, &bad, &[], &options()).await.unwrap_err();
        assert!(
            matches!(failure.error, ProvisionError::Invalid { .. }),
            "{}",
            failure.error
        );
    }
    assert_eq!(
        w.host.stats().commands,
        before + 4,
        "only the marker was read, four times"
    );

    // Nothing ran anywhere: host /tmp, the SSH user's home directories, the container root
    // (outside the files whose names are the payloads on purpose), this process's directory.
    let skip = [root.join("srv/inject")];
    let mut ran = named(&w.ct_root_dir, &tag, &skip);
    for dir in ["/tmp", "/root", "."] {
        ran.extend(
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&tag))
                .map(|e| e.path()),
        );
    }
    assert!(ran.is_empty(), "payloads ran: {ran:?}");
}

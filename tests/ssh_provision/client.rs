//! The SSH client against the real sshd: the pinned host key checked before authenticating,
//! refused keys, closed ports, PEM RSA keys, one shared connection under the session cap, and
//! a reconnect after the connection died.

use std::time::{Duration, Instant};

use lxc_operator::ssh::{ClientKey, ErrorKind, HostKeyFingerprint, SshHost};

use super::world::sshd_config;

#[tokio::test]
async fn an_unpinned_host_key_is_refused_before_authenticating() {
    let sshd = test_world::sshd();
    let key_path = sshd.authorize_key_with_env(&[]).unwrap();
    let key = ClientKey::from_text(&std::fs::read(&key_path).unwrap()).unwrap();
    let key_fp = key.public_fingerprint();
    let touched = std::env::temp_dir().join(format!("lxc-ssh-hostkey-{}", std::process::id()));

    // Pin some other valid key (here: the client key's own fingerprint).
    let mut config = sshd_config(2);
    config.host_key = HostKeyFingerprint::parse(&key_fp).unwrap();
    let host = SshHost::new(config, key.clone());
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
    let host = SshHost::new(sshd_config(2), key);
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
    let key = ClientKey::from_text(&std::fs::read(&stranger).unwrap()).unwrap();
    let e = SshHost::new(sshd_config(1), key).connect().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");

    // An RSA key in PEM (PKCS#1) form, as older Secrets hold them.
    let rsa = keygen("rsa", &["-t", "rsa", "-b", "2048", "-m", "PEM"]);
    let text = std::fs::read(&rsa).unwrap();
    assert!(text.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    let public = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    sshd.authorize_public_key(&public, &[]).unwrap();
    let key = ClientKey::from_text(&text).unwrap();
    let host = SshHost::new(sshd_config(1), key);
    let out = host
        .exec(&["echo", "rsa"], None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "rsa\n");

    // Nobody listening: Connect, after the configured attempts.
    let mut config = sshd_config(1);
    config.port = test_world::free_port();
    let key = ClientKey::from_text(&std::fs::read(&sshd.client_key).unwrap()).unwrap();
    let e = SshHost::new(config, key).connect().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.to_string().contains("(attempt 3)"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_is_shared_capped_and_reopened_when_it_dies() {
    let sshd = test_world::sshd();
    let key = ClientKey::from_text(&std::fs::read(&sshd.client_key).unwrap()).unwrap();
    let host = std::sync::Arc::new(SshHost::new(sshd_config(2), key));
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

#[tokio::test]
async fn the_wait_for_a_session_counts_inside_the_deadline() {
    let sshd = test_world::sshd();
    let key = ClientKey::from_text(&std::fs::read(&sshd.client_key).unwrap()).unwrap();
    let host = std::sync::Arc::new(SshHost::new(sshd_config(1), key));
    let marker = std::env::temp_dir().join(format!("lxc-ssh-wait-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let busy = {
        let host = host.clone();
        tokio::spawn(async move { host.exec(&["sleep", "3"], None, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let e = host
        .exec(&["touch", marker.to_str().unwrap()], None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "gave up at its own deadline, not after the busy session: {:?}",
        started.elapsed()
    );
    assert!(busy.await.unwrap().unwrap().success());
    assert!(
        !marker.exists(),
        "a command that timed out waiting was never sent"
    );
}

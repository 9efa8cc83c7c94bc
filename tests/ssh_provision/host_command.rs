//! The host command (`infra/host/lxc-operator-host`) as the forced command of a key: anything
//! but its three requests is refused (a raw `sh -c`, other programs, malformed requests, path
//! traversal, VMIDs that are not numbers); in both modes a pull takes only a regular file up to
//! its limit; a command past its deadline is killed on the host; environment values never
//! appear on a command line.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lxc_operator::provision::content::digest::ResolvedProvisioning;
use lxc_operator::provision::{Target, provision};
use lxc_operator::ssh::{ErrorKind, HostMode, MAX_TRANSFER};

use super::options;
use super::world::*;

/// RFC 4648 base64, as the protocol carries arguments (from the system's `base64`, so the test
/// does not share the encoder under test).
fn b64(text: &str) -> String {
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `request` as the SSH command with OpenSSH's own client and the world's key; returns
/// the exit code, stdout and stderr.
fn ssh(w: &World, request: Option<&str>, stdin: &[u8]) -> (i32, String, String) {
    let mut cmd = test_world::sshd().ssh_with_key(&w.key_path);
    if let Some(request) = request {
        cmd.arg(request);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Paths under `dir` (recursively) whose file name contains `tag`.
fn tagged(dir: &Path, tag: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().contains(tag) {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(tagged(&path, tag));
        }
    }
    found
}

/// Command lines of running processes that contain `needle`.
fn command_lines_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(needle) {
            found.push(line);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forced_command_refuses_everything_but_its_requests() {
    let w = World::start("refuse", HostMode::HostCommand).await;
    let (_ct, root) = w.container(110).await;
    write(&root, "etc/small", "small\n");
    let tag = format!("hostcmd{}", std::process::id());

    // Control: the key works, and a well-formed request does what it says.
    let (code, out, err) = ssh(
        &w,
        Some(&format!("v1 exec 110 10 {} {}", b64("echo"), b64("ok"))),
        b"",
    );
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    let (code, out, err) = ssh(
        &w,
        Some(&format!("v1 pull 110 10 {} 100", b64("/etc/small"))),
        b"",
    );
    assert_eq!((code, out.as_str()), (0, "small\n"), "{err}");

    let refused: Vec<(String, String)> = vec![
        // Raw commands, whatever they look like.
        ("raw sh -c".into(), format!("sh -c 'touch /tmp/{tag}-01'")),
        ("raw program".into(), format!("touch /tmp/{tag}-02")),
        ("raw pct".into(), format!("pct exec 110 -- touch /tmp/{tag}-03")),
        (
            "raw pct push".into(),
            format!("pct push 110 /etc/shadow /tmp/{tag}-04"),
        ),
        (
            "chained".into(),
            format!("v1 exec 110 10 {} ; touch /tmp/{tag}-05", b64("true")),
        ),
        (
            "substitution".into(),
            format!("v1 exec 110 10 $(touch /tmp/{tag}-06)"),
        ),
        ("quoted".into(), format!("v1 exec 110 10 '{}'", b64("true"))),
        (
            "newline".into(),
            format!("v1 exec 110 10 {}\ntouch /tmp/{tag}-08", b64("true")),
        ),
        // Malformed requests.
        ("other version".into(), format!("v2 exec 110 10 {}", b64("true"))),
        ("other operation".into(), "v1 shell 110 10".into()),
        ("no command".into(), "v1 exec 110 10".into()),
        ("short".into(), "v1 exec".into()),
        ("not base64".into(), "v1 exec 110 10 abc".into()),
        (
            "option as program".into(),
            format!("v1 exec 110 10 {}", b64("--help")),
        ),
        ("empty program".into(), "v1 exec 110 10 -".into()),
        ("zero deadline".into(), format!("v1 exec 110 0 {}", b64("true"))),
        (
            "long deadline".into(),
            format!("v1 exec 110 86401 {}", b64("true")),
        ),
        // VMIDs that are not plain numbers.
        ("VMID word".into(), format!("v1 exec abc 10 {}", b64("true"))),
        (
            "VMID leading zero".into(),
            format!("v1 exec 0110 10 {}", b64("true")),
        ),
        ("VMID exponent".into(), format!("v1 exec 1e3 10 {}", b64("true"))),
        ("VMID negative".into(), format!("v1 exec -110 10 {}", b64("true"))),
        ("VMID too small".into(), format!("v1 exec 99 10 {}", b64("true"))),
        (
            "VMID too long".into(),
            format!("v1 exec 1000000000 10 {}", b64("true")),
        ),
        // Paths that climb, are relative or name a directory; bad modes and owners.
        (
            "push traversal".into(),
            format!(
                "v1 push 110 10 {} 0644 - -",
                b64(&format!("/../../../tmp/{tag}-30"))
            ),
        ),
        (
            "push traversal inside".into(),
            format!(
                "v1 push 110 10 {} 0644 - -",
                b64(&format!("/etc/../../tmp/{tag}-31"))
            ),
        ),
        (
            "push relative".into(),
            format!("v1 push 110 10 {} 0644 - -", b64(&format!("tmp/{tag}-32"))),
        ),
        (
            "push directory".into(),
            format!("v1 push 110 10 {} 0644 - -", b64("/etc/")),
        ),
        (
            "push mode".into(),
            format!("v1 push 110 10 {} 4755a - -", b64(&format!("/{tag}-34"))),
        ),
        (
            "push mode digits".into(),
            format!("v1 push 110 10 {} 0999 - -", b64(&format!("/{tag}-35"))),
        ),
        (
            "push owner option".into(),
            format!("v1 push 110 10 {} 0644 --help -", b64(&format!("/{tag}-36"))),
        ),
        (
            "push missing group".into(),
            format!("v1 push 110 10 {} 0644 root", b64(&format!("/{tag}-37"))),
        ),
        (
            "pull traversal".into(),
            format!("v1 pull 110 10 {} 100", b64("/../../../../etc/hostname")),
        ),
        (
            "pull relative".into(),
            format!("v1 pull 110 10 {} 100", b64("etc/small")),
        ),
        (
            "pull no limit".into(),
            format!("v1 pull 110 10 {}", b64("/etc/small")),
        ),
        (
            "pull huge limit".into(),
            format!("v1 pull 110 10 {} 16777217", b64("/etc/small")),
        ),
        (
            "pull zero limit".into(),
            format!("v1 pull 110 10 {} 0", b64("/etc/small")),
        ),
    ];
    for (what, request) in &refused {
        let (code, out, err) = ssh(&w, Some(request), format!("pushed by {tag}").as_bytes());
        assert_eq!(code, 64, "{what}: {request:?} gave {code}: {out} {err}");
        assert!(out.is_empty(), "{what}: {out}");
        assert!(err.starts_with("lxc-operator-host: refused: "), "{what}: {err}");
    }
    // No command at all (an interactive login) is refused too.
    let (code, _, err) = ssh(&w, None, b"touch /tmp/x\n");
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no request"), "{err}");

    // Through the operator's own client: a raw command is refused, not run.
    let touched = format!("/tmp/{tag}-50");
    let out = w
        .host
        .exec(
            &["sh", "-c", &format!("touch {touched}")],
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.code, 64, "{}", out.tail(3));

    // Nothing ran and nothing was written: not on the host, not in the container.
    let mut ran = tagged(Path::new("/tmp"), &tag);
    ran.extend(tagged(&w.ct_root_dir, &tag));
    assert!(ran.is_empty(), "refused requests left traces: {ran:?}");
}

crate::in_both_modes!(
    pulls_take_only_regular_files_within_their_limit,
    a_command_past_its_deadline_is_killed_on_the_host,
    environment_values_never_reach_a_command_line,
);

async fn pulls_take_only_regular_files_within_their_limit(ssh_mode: HostMode) {
    let w = World::start("pull", ssh_mode).await;
    let (ct, root) = w.container(111).await;
    let host = &w.host;
    let t = Duration::from_secs(20);
    write(&root, "etc/thousand", &"x".repeat(1000));
    assert_eq!(
        host.pct_pull_limited(111, "/etc/thousand", 1000, t)
            .await
            .unwrap(),
        Some(vec![b'x'; 1000]),
        "exactly the limit is taken"
    );
    let e = host
        .pct_pull_limited(111, "/etc/thousand", 999, t)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("larger than 999 bytes"), "{e}");
    assert_eq!(host.pct_pull(111, "/etc/absent", t).await.unwrap(), None);

    // Past the transfer limit: refused, after reading no more than one byte past it. The file
    // is sparse, so the bound (not the disk) decides how long this takes.
    let big = std::fs::File::create(root.join("var-big")).unwrap();
    big.set_len(MAX_TRANSFER as u64 + 1).unwrap();
    let started = Instant::now();
    let e = ct.read("/var-big", t).await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("larger than {MAX_TRANSFER} bytes")),
        "{e}"
    );
    eprintln!(
        "refusing a {} byte file took {:?}",
        MAX_TRANSFER + 1,
        started.elapsed()
    );

    // Not regular files: each refused, and none opened (a FIFO would block until the deadline).
    let fifo = root.join("run/fifo");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::os::unix::fs::symlink("thousand", root.join("etc/link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("etc/host-link")).unwrap();
    let mut refused = vec![
        ("/run/fifo", "not a regular file"),
        ("/etc", "not a regular file"),
        ("/etc/link", "symbolic link"),
        ("/etc/host-link", "symbolic link"),
    ];
    let device = root.join("dev/null-ish");
    std::fs::create_dir_all(device.parent().unwrap()).unwrap();
    let made = Command::new("mknod").arg(&device).args(["c", "1", "3"]).status();
    match made {
        Ok(status) if status.success() => refused.push(("/dev/null-ish", "not a regular file")),
        _ => eprintln!("mknod is not permitted here: the device case is not tried"),
    }
    for (path, why) in refused {
        let started = Instant::now();
        let e = host.pct_pull_limited(111, path, 1000, t).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{path}: {e}");
        assert!(e.to_string().contains(why), "{path}: {e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: {:?}",
            started.elapsed()
        );
    }
}

async fn a_command_past_its_deadline_is_killed_on_the_host(ssh_mode: HostMode) {
    let w = World::start("deadline", ssh_mode).await;
    let (ct, root) = w.container(112).await;
    // A sleep whose command line is unique to this test run.
    let nap = format!("29.{}{}", std::process::id(), ssh_mode as u8);
    let started = Instant::now();
    let e = ct
        .exec(
            &["sh", "-c", &format!("sleep {nap}; touch \"$PCT_ROOT/late\"")],
            None,
            &[],
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Nothing of it is left running on the host (the stand-in's "container" is the host).
    let deadline = Instant::now() + Duration::from_secs(3);
    while !command_lines_with(&nap).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running: {:?}",
            command_lines_with(&nap)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!root.join("late").exists());
}

async fn environment_values_never_reach_a_command_line(ssh_mode: HostMode) {
    let w = World::start("envargv", ssh_mode).await;
    let (ct, root) = w.container(113).await;
    let secret = format!("s3cr3t-{}-{ssh_mode:?}", std::process::id());
    let odd = "line one\nline two\n\n 'quoted' $(not run) \\ end ";
    let resolved = ResolvedProvisioning {
        scripts: vec![script(
            "slow-env",
            "touch \"$PCT_ROOT/root/started\"\nsleep 2\n\
             printf '%s|%s' \"$SECRET\" \"$ODD\" > \"$PCT_ROOT/root/seen\"\n",
            &[("SECRET", secret.as_str()), ("ODD", odd), ("EMPTY", "")],
        )],
        ..Default::default()
    };
    let run = tokio::spawn({
        let ct = ct.clone();
        async move { provision(&ct as &dyn Target, &resolved, &[], &options()).await }
    });
    // Watch every process's command line while the script runs.
    let encoded = b64(&secret);
    let (mut looks, mut while_running, mut seen) = (0, 0, Vec::new());
    while !run.is_finished() {
        seen.extend(command_lines_with(&secret));
        seen.extend(command_lines_with(encoded.trim_end_matches('=')));
        looks += 1;
        if root.join("root/started").exists() && !root.join("root/seen").exists() {
            while_running += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.await.unwrap().expect("provision");
    assert!(
        while_running >= 10,
        "looked {looks} times, {while_running} while the script ran"
    );
    seen.sort();
    seen.dedup();
    assert!(seen.is_empty(), "environment values on command lines: {seen:#?}");
    assert_eq!(read(&root, "root/seen"), format!("{secret}|{odd}"));
}

//! Starting servers that cannot outlive the test binary, and waiting for them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// A fresh private directory that the watchdog of the server using it removes at the end.
pub fn scratch_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("lxc-test-{prefix}-"))
        .tempdir()?
        .keep())
}

/// Spawns `cmd` with its output in `dir/<name>.log`, plus a watchdog that stops it (TERM,
/// then KILL) and removes `dir` as soon as this test process has exited.
pub fn spawn_watched(name: &str, mut cmd: Command, dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {name}: {cmd:?}"))?;
    watchdog(child.id(), Some(dir))?;
    Ok(child)
}

/// Starts a watchdog that stops process `pid` (TERM, then KILL 3 s later) and removes `dir`,
/// if any, as soon as this process has exited, however it ended.
pub fn watchdog(pid: u32, dir: Option<&Path>) -> anyhow::Result<()> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        kill -TERM "$2" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$2" 2>/dev/null || break; sleep 0.3; done
        kill -KILL "$2" 2>/dev/null
        [ -n "$3" ] && rm -rf "$3"
    "#;
    Command::new("sh")
        .args(["-c", script, "watchdog"])
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(dir.map(Path::as_os_str).unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start watchdog")?;
    Ok(())
}

/// Polls `ready` until it returns true, failing with the server's log tail after `timeout`.
pub fn wait_until(
    what: &str,
    log: &Path,
    timeout: Duration,
    child: &mut Child,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}) before it was ready:\n{}", tail(log));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} not ready after {timeout:?}:\n{}", tail(log))
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Runs a short command to completion, failing with its output when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this process runs as root (servers such as PostgreSQL refuse to).
pub fn is_root() -> bool {
    run(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

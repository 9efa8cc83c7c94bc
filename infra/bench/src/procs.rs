//! The processes the benchmark starts itself (pve-sim, the operator): each is stopped when its
//! handle drops, and a watchdog stops it if this program dies first, however it ended.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

pub struct Watched {
    name: &'static str,
    child: Child,
}

impl Watched {
    /// Spawns `cmd` with stderr (and stdout unless `pipe_stdout`) in `log`.
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        pipe_stdout: bool,
    ) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)?;
        let stdout = if pipe_stdout {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone()?)
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .with_context(|| format!("start {name}: {cmd:?}"))?;
        test_world::watchdog(child.id(), None)?;
        Ok(Self { name, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); its log: {}", self.name, log.display());
        }
        Ok(())
    }

    /// The first line of its stdout (within `timeout`); the rest is appended to `log`.
    pub fn first_line(&mut self, log: &Path, timeout: Duration) -> anyhow::Result<String> {
        let out = self.child.stdout.take().context("stdout not piped")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let log = log.to_path_buf();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let _ = tx.send(lines.next());
            let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(&log) else {
                return;
            };
            for line in lines.map_while(Result::ok) {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(Some(Ok(line))) => Ok(line),
            Ok(_) => bail!("{} printed nothing", self.name),
            Err(_) => bail!("{} printed nothing within {timeout:?}", self.name),
        }
    }

    /// TERM, then KILL after 5 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

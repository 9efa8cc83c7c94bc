//! Redis from Debian's packages, on a free loopback port, without persistence.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{free_port, port_open, scratch_dir, spawn_watched, wait_until};

/// A running Redis server.
#[derive(Debug)]
pub struct Redis {
    /// The port on 127.0.0.1.
    pub port: u16,
}

static REDIS: OnceLock<Result<Redis, String>> = OnceLock::new();

/// The test binary's Redis server, started on first use.
pub fn redis() -> &'static Redis {
    REDIS
        .get_or_init(|| start().map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("test world: redis failed to start: {e}"))
}

fn start() -> anyhow::Result<Redis> {
    let dir = scratch_dir("redis")?;
    let port = free_port();
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .arg("--dir")
    .arg(&dir);
    let mut child = spawn_watched("redis", cmd, &dir)?;
    wait_until(
        "redis",
        &dir.join("redis.log"),
        Duration::from_secs(30),
        &mut child,
        || port_open(port),
    )?;
    Ok(Redis { port })
}

impl Redis {
    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A Redis server of one test's own, which the test may stop and start again on the same port
/// (to prove clients survive a Redis restart).
pub struct PrivateRedis {
    /// The port on 127.0.0.1.
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts a fresh server.
    pub fn start() -> anyhow::Result<Self> {
        let mut redis = Self {
            port: free_port(),
            dir: scratch_dir("redis-private")?,
            child: None,
        };
        redis.restart()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (SIGKILL, as a crash would) and waits until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&self.dir);
        let mut child = spawn_watched("redis", cmd, &self.dir)?;
        let port = self.port;
        wait_until(
            "redis",
            &self.dir.join("redis.log"),
            Duration::from_secs(30),
            &mut child,
            || port_open(port),
        )?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

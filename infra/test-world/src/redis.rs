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

//! PostgreSQL from Debian's packages, on a free loopback port with a data directory of ours.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;

use crate::binaries::Binaries;
use crate::process::{free_port, is_root, port_open, run, scratch_dir, spawn_watched, wait_until};

/// A running PostgreSQL server with trust authentication for user `postgres` on loopback.
#[derive(Debug)]
pub struct Postgres {
    /// The port on 127.0.0.1.
    pub port: u16,
}

static POSTGRES: OnceLock<Result<Postgres, String>> = OnceLock::new();

/// The test binary's PostgreSQL server, started on first use.
pub fn postgres() -> &'static Postgres {
    POSTGRES
        .get_or_init(|| start().map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("test world: postgres failed to start: {e}"))
}

/// Runs a program as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_postgres(program: std::path::PathBuf) -> Command {
    if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
            .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn start() -> anyhow::Result<Postgres> {
    let bin = Binaries::find()?.pg_bin;
    let dir = scratch_dir("postgres")?;
    let data = dir.join("data");
    if is_root() {
        run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(&dir))?;
    }
    run(as_postgres(bin.join("initdb")).arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]))
    .context("initdb")?;
    let port = free_port();
    let mut cmd = as_postgres(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "synchronous_commit=off", "-c", "max_connections=200"]);
    let mut child = spawn_watched("postgres", cmd, &dir)?;
    wait_until(
        "postgres",
        &dir.join("postgres.log"),
        Duration::from_secs(60),
        &mut child,
        || port_open(port),
    )?;
    Ok(Postgres { port })
}

impl Postgres {
    /// URL of database `postgres` on this server.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// URL of the named database.
    pub fn database_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

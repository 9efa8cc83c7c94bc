//! PostgreSQL from Debian's packages, on a free loopback port with a data directory of ours.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
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
fn as_postgres(program: PathBuf) -> Command {
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
    init_data_dir(&bin, &dir)?;
    let port = free_port();
    spawn_server(&bin, &dir, port)?;
    Ok(Postgres { port })
}

/// Creates the cluster in `dir/data`, owned by `postgres` when we are root.
fn init_data_dir(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    if is_root() {
        run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir))?;
    }
    run(as_postgres(bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args([
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
    Ok(())
}

/// Starts the server on `dir/data` and waits until it accepts connections on `port`.
fn spawn_server(bin: &Path, dir: &Path, port: u16) -> anyhow::Result<Child> {
    let mut cmd = as_postgres(bin.join("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "synchronous_commit=off", "-c", "max_connections=200"]);
    let mut child = spawn_watched("postgres", cmd, dir)?;
    wait_until(
        "postgres",
        &dir.join("postgres.log"),
        Duration::from_secs(60),
        &mut child,
        // An open port is not enough: during start-up the server refuses sessions (57P03).
        || {
            port_open(port)
                && Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                    .status()
                    .is_ok_and(|s| s.success())
        },
    )?;
    Ok(child)
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

/// A PostgreSQL server of one test's own, which the test may stop and start again on the same
/// port with the same data (to prove that clients hold their promises across an outage).
pub struct PrivatePostgres {
    /// The port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivatePostgres {
    /// Creates a fresh cluster and starts it.
    pub fn start() -> anyhow::Result<Self> {
        let bin = Binaries::find()?.pg_bin;
        let dir = scratch_dir("postgres-private")?;
        init_data_dir(&bin, &dir)?;
        let mut postgres = Self {
            port: free_port(),
            bin,
            dir,
            child: None,
        };
        postgres.restart()?;
        Ok(postgres)
    }

    /// URL of database `postgres` on this server.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// URL of the named database.
    pub fn database_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (fast shutdown: clients are cut off, committed data stays) and waits
    /// until it has exited.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            run(Command::new("kill").arg("-INT").arg(child.id().to_string()))?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.child = Some(spawn_server(&self.bin, &self.dir, self.port)?);
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

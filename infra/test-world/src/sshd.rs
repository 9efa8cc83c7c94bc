//! An OpenSSH server from Debian's packages on a free loopback port, with a generated host key
//! and a generated client key in `authorized_keys`. Further client keys can be authorized with
//! their own session environment (sshd's `environment=` key option), which is how a test points
//! the `pct` stand-in of one pve-sim at that simulator: `PATH`, `HOME` and `PVE_SIM_*` only.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::process::{free_port, port_open, run, scratch_dir, spawn_watched, wait_until};

/// A running sshd that accepts the generated client key for the current user.
#[derive(Debug)]
pub struct Sshd {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The user to log in as (the one running the tests).
    pub user: String,
    /// Private key accepted by the server (OpenSSH format).
    pub client_key: PathBuf,
    /// The host key's fingerprint as `ssh-keygen -lf` prints it (`SHA256:...`).
    pub host_key_fingerprint: String,
}

static SSHD: OnceLock<Result<Sshd, String>> = OnceLock::new();

/// The test binary's sshd, started on first use.
pub fn sshd() -> &'static Sshd {
    SSHD.get_or_init(|| start().map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("test world: sshd failed to start: {e}"))
}

fn keygen(path: &std::path::Path) -> anyhow::Result<()> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path))?;
    Ok(())
}

fn start() -> anyhow::Result<Sshd> {
    let dir = scratch_dir("sshd")?;
    let (host_key, client_key) = (dir.join("host_ed25519"), dir.join("client_ed25519"));
    keygen(&host_key)?;
    keygen(&client_key)?;
    std::fs::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys"))?;
    let fingerprint = run(Command::new("ssh-keygen")
        .arg("-lf")
        .arg(dir.join("host_ed25519.pub")))?;
    let host_key_fingerprint = fingerprint
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let user = run(Command::new("id").arg("-un"))?.trim().to_string();
    let port = free_port();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
             MaxSessions 64\nMaxStartups 64\nSubsystem sftp internal-sftp\n\
             PermitUserEnvironment PATH,HOME,PVE_SIM_*\n",
            hk = host_key.display(),
            dir = dir.display()
        ),
    )?;
    std::fs::create_dir_all("/run/sshd").ok();
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.args(["-D", "-e", "-f"]).arg(dir.join("sshd_config"));
    let mut child = spawn_watched("sshd", cmd, &dir)?;
    wait_until(
        "sshd",
        &dir.join("sshd.log"),
        Duration::from_secs(30),
        &mut child,
        || port_open(port),
    )?;
    Ok(Sshd {
        port,
        user,
        client_key,
        host_key_fingerprint,
    })
}

/// Serializes appends to `authorized_keys` between the tests of one binary.
static AUTHORIZED_KEYS: Mutex<()> = Mutex::new(());
static EXTRA_KEYS: AtomicU32 = AtomicU32::new(0);

impl Sshd {
    /// The server's log (sshd runs with `-e`: one line per connection event, e.g.
    /// `Accepted publickey for root ... ED25519 SHA256:...`).
    pub fn log_path(&self) -> PathBuf {
        self.client_key.with_file_name("sshd.log")
    }

    /// Generates and authorizes another client key (ed25519) whose sessions get `env` set by
    /// sshd; see [`Sshd::authorize_public_key`]. Returns the private key's path (OpenSSH format).
    pub fn authorize_key_with_env(&self, env: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
        self.authorize_key(env, None)
    }

    /// Generates and authorizes another client key (ed25519) whose sessions get `env` set by
    /// sshd and, with `forced_command`, run only that command (`command="..."` with
    /// `restrict`: no pty, no forwarding; the client's command is in `SSH_ORIGINAL_COMMAND`).
    /// Returns the private key's path (OpenSSH format).
    pub fn authorize_key(
        &self,
        env: &[(&str, &str)],
        forced_command: Option<&str>,
    ) -> anyhow::Result<PathBuf> {
        let n = EXTRA_KEYS.fetch_add(1, Ordering::Relaxed);
        let key = self
            .client_key
            .with_file_name(format!("client{n}_{}_ed25519", std::process::id()));
        keygen(&key)?;
        let public_key = std::fs::read_to_string(key.with_extension("pub"))?;
        self.authorize_public_key_with(&public_key, env, forced_command)?;
        Ok(key)
    }

    /// Authorizes `public_key` (an `authorized_keys` line without options) with `env` set by
    /// sshd in its sessions (`environment="NAME=value"`; only `PATH`, `HOME` and `PVE_SIM_*`
    /// are permitted by the server).
    pub fn authorize_public_key(&self, public_key: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
        self.authorize_public_key_with(public_key, env, None)
    }

    /// [`Sshd::authorize_public_key`], restricted to `forced_command` when given.
    pub fn authorize_public_key_with(
        &self,
        public_key: &str,
        env: &[(&str, &str)],
        forced_command: Option<&str>,
    ) -> anyhow::Result<()> {
        let unquotable = |text: &str| text.contains(['"', '\\', '\n']);
        for (name, value) in env {
            anyhow::ensure!(
                !name.is_empty() && !unquotable(&format!("{name}{value}")),
                "unsupported environment entry {name}={value}"
            );
        }
        let mut options: Vec<String> = Vec::new();
        if let Some(command) = forced_command {
            anyhow::ensure!(!unquotable(command), "unsupported forced command {command}");
            options.push(format!("command=\"{command}\""));
            options.push("restrict".into());
        }
        options.extend(
            env.iter()
                .map(|(name, value)| format!("environment=\"{name}={value}\"")),
        );
        let line = match options.is_empty() {
            true => format!("{}\n", public_key.trim()),
            false => format!("{} {}\n", options.join(","), public_key.trim()),
        };
        let _guard = AUTHORIZED_KEYS.lock().unwrap_or_else(|e| e.into_inner());
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.client_key.with_file_name("authorized_keys"))?
            .write_all(line.as_bytes())?;
        Ok(())
    }

    /// An `ssh` command that logs in with the client key and checks the host key strictly.
    pub fn ssh(&self) -> Command {
        self.ssh_with_key(&self.client_key)
    }

    /// An `ssh` command that logs in with `key` (e.g. one from [`Sshd::authorize_key`]) and
    /// checks the host key strictly.
    pub fn ssh_with_key(&self, key: &std::path::Path) -> Command {
        let known_hosts = self.client_key.with_file_name("known_hosts");
        if !known_hosts.exists() {
            let host_pub = std::fs::read_to_string(self.client_key.with_file_name("host_ed25519.pub"))
                .unwrap_or_default();
            let _ = std::fs::write(&known_hosts, format!("[127.0.0.1]:{} {host_pub}", self.port));
        }
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(key)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .arg(format!("{}@127.0.0.1", self.user));
        cmd
    }
}

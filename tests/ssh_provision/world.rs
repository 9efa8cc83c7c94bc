//! The world of the SSH provisioning tests: the test world's real sshd as the "Proxmox host",
//! a pve-sim per test with container root directories, and the sim's `pct` stand-in reached
//! through sshd.
//!
//! How `pct` on the SSH host finds this test's simulator: each world authorizes its own client
//! key in sshd's `authorized_keys` with `environment="PATH=<infra/pve-sim/host>:..."` and
//! `environment="PVE_SIM_ADMIN_URL=<this sim's admin URL>"` (sshd has `PermitUserEnvironment
//! PATH,HOME,PVE_SIM_*`). Sessions of that key find the stand-in as plain `pct`, pointed at this
//! simulator, while the operator's code runs exactly what it runs on a real host. `HOME` points
//! at an empty directory of the world, so the machine's own dotfiles for root (a `.bashrc`
//! that the login shell sources for every SSH command) neither slow nor change the commands.
//!
//! Every world runs in one of the two SSH modes. In `HostCommand` mode its key is authorized
//! with `command="<repo>/infra/host/lxc-operator-host",restrict`, so sshd runs the host command
//! for every session of that key and the operator's code can do nothing else on the "host".
//! The tests run as root and this machine has no `sudo`, so the forced command runs directly
//! as the login user, not as an unprivileged user through the `sudoers` line of
//! `infra/host/README.md`; what is tested is the protocol and what the host command refuses.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lxc_operator::crd::provisioning::{EnvVar, FilePolicy};
use lxc_operator::pipeline::desired::DesiredContainer;
use lxc_operator::provision::PctTarget;
use lxc_operator::provision::content::digest::{ResolvedFile, ResolvedScript};
use lxc_operator::proxmox::api::PowerAction;
use lxc_operator::proxmox::client::ClientConfig;
use lxc_operator::proxmox::property::Volume;
use lxc_operator::proxmox::tls::parse_fingerprint;
use lxc_operator::proxmox::{Credentials, ProxmoxClient, Secret, TlsTrust};
use lxc_operator::ssh::{ClientKey, ConnectRetry, HostMode, SshConfig, SshHost};
use pve_sim::{Config, PveSim};

pub const NODE: &str = "pve1";
const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
/// The `app` user and group in every test container's `/etc/passwd` and `/etc/group`.
pub const APP_ID: u32 = 1234;

pub struct World {
    /// Kept alive for the world's lifetime (its admin API answers the stand-in).
    _sim: PveSim,
    pub client: ProxmoxClient,
    pub ct_root_dir: PathBuf,
    pub host: Arc<SshHost>,
    /// The world's client key (private, OpenSSH format), for the `ssh` command line client.
    pub key_path: PathBuf,
}

/// The host command as installed on a host, from this checkout.
pub const HOST_COMMAND: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/host/lxc-operator-host");

/// Each listed test (an `async fn(HostMode)`) becomes two: `direct::<name>` and
/// `host_command::<name>`, the same test in both SSH modes.
#[macro_export]
macro_rules! in_both_modes {
    ($($test:ident),+ $(,)?) => {
        mod direct {
            $(
                // The stand-in calls back into the simulator synchronously: worker threads.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(lxc_operator::ssh::HostMode::Direct).await
                }
            )+
        }
        mod host_command {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(lxc_operator::ssh::HostMode::HostCommand).await
                }
            )+
        }
    };
}

/// Connection retries short enough for tests.
pub fn fast_retry() -> ConnectRetry {
    ConnectRetry {
        attempts: 3,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    }
}

/// A config for the test world's sshd.
pub fn sshd_config(max_sessions: usize) -> SshConfig {
    let sshd = test_world::sshd();
    let mut config = SshConfig::new(
        "127.0.0.1",
        sshd.port,
        &sshd.user,
        &sshd.host_key_fingerprint,
        max_sessions,
    )
    .expect("sshd's fingerprint parses");
    config.retry = fast_retry();
    config
}

impl World {
    /// A world whose key reaches the "host" in `mode`.
    pub async fn start(name: &str, mode: HostMode) -> World {
        let ct_root_dir =
            std::env::temp_dir().join(format!("lxc-ssh-{name}-{mode:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&ct_root_dir);
        std::fs::create_dir_all(&ct_root_dir).unwrap();
        let mut cfg = Config::default_with_nodes(&[NODE]);
        cfg.ct_root_dir = Some(ct_root_dir.clone());
        let sim = PveSim::start(cfg).await.expect("start pve-sim");
        let creds = Credentials::Token {
            id: sim.token_id().into(),
            secret: Secret::new(sim.token_secret()),
        };
        let trust = TlsTrust::PinnedSha256(parse_fingerprint(sim.fingerprint_sha256()).unwrap());
        let client = ProxmoxClient::new(ClientConfig::new(sim.url(), creds, trust)).unwrap();

        let stand_in = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/pve-sim/host");
        let path = format!("{stand_in}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let home = ct_root_dir.join("ssh-home");
        std::fs::create_dir_all(&home).unwrap();
        let forced = match mode {
            HostMode::Direct => None,
            HostMode::HostCommand => Some(HOST_COMMAND),
        };
        let key_path = test_world::sshd()
            .authorize_key(
                &[
                    ("PATH", &path),
                    ("HOME", home.to_str().unwrap()),
                    ("PVE_SIM_ADMIN_URL", sim.admin_url()),
                    ("PVE_SIM_NODE", NODE),
                ],
                forced,
            )
            .expect("authorize a key for this world");
        let key = ClientKey::from_text(&std::fs::read(&key_path).unwrap()).unwrap();
        let mut config = sshd_config(4);
        config.mode = mode;
        let host = Arc::new(SshHost::new(config, key));
        World {
            _sim: sim,
            client,
            ct_root_dir,
            host,
            key_path,
        }
    }

    /// Creates and starts container `vmid` in the simulator; returns it as a provisioning
    /// target and its root directory (with an `app` user and group).
    pub async fn container(&self, vmid: u32) -> (PctTarget, PathBuf) {
        let create = DesiredContainer {
            vmid,
            ostemplate: TEMPLATE.into(),
            hostname: Some(format!("ct{vmid}")),
            rootfs: Some(Volume {
                volume: "local-lvm:4".into(),
                ..Default::default()
            }),
            unprivileged: true,
            ..Default::default()
        };
        let upid = self
            .client
            .create_container(NODE, &create.create_request())
            .await
            .expect("create");
        self.client
            .wait_task(&upid, Duration::from_secs(20))
            .await
            .expect("created");
        let upid = self
            .client
            .container_power(NODE, vmid, PowerAction::Start)
            .await
            .expect("start");
        self.client
            .wait_task(&upid, Duration::from_secs(20))
            .await
            .expect("started");
        let root = std::fs::canonicalize(self.ct_root_dir.join(vmid.to_string())).unwrap();
        write(
            &root,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n",
        );
        write(&root, "etc/group", "root:x:0:\napp:x:1234:\n");
        (PctTarget::new(self.host.clone(), vmid), root)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.ct_root_dir);
    }
}

/// Writes `rel` under `root`, creating directories.
pub fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Writes an executable shell script under `root`.
pub fn write_exe(root: &Path, rel: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    write(root, rel, text);
    std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub fn mode(root: &Path, rel: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(root.join(rel)).unwrap().permissions().mode() & 0o7777
}

pub fn file(path: &str, mode: &str, owner: &str, policy: FilePolicy, content: &str) -> ResolvedFile {
    ResolvedFile {
        path: path.into(),
        mode: mode.into(),
        owner: owner.into(),
        policy,
        content: content.as_bytes().to_vec(),
    }
}

pub fn script(name: &str, text: &str, env: &[(&str, &str)]) -> ResolvedScript {
    ResolvedScript {
        name: name.into(),
        interpreter: "/bin/sh".into(),
        timeout_seconds: 60,
        env: env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        content: text.as_bytes().to_vec(),
        record_output: true,
    }
}

//! A Proxmox host over SSH for pve-sim: the test world's sshd with a key whose sessions find
//! pve-sim's `pct` stand-in first on `PATH`, pointed at one simulator and node.

use std::path::Path;

use serde_json::{Value, json};

use crate::binaries::repo_root;
use crate::sshd::sshd;

/// Authorizes a new key as the Proxmox host `pve_node` of the simulator whose admin API is at
/// `admin_url`; with `host_command` the key is restricted to `infra/host/lxc-operator-host`.
/// Returns the private key's text and the ProxmoxNode `spec.ssh` for it (without the key
/// reference). `home` becomes the sessions' `HOME`.
pub fn authorize_pve_host(
    admin_url: &str,
    pve_node: &str,
    home: &Path,
    host_command: bool,
) -> anyhow::Result<(String, Value)> {
    let root = repo_root();
    let stand_in = root.join("infra/pve-sim/host");
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        stand_in.display()
    );
    std::fs::create_dir_all(home)?;
    let sshd = sshd();
    let forced = root.join("infra/host/lxc-operator-host");
    let forced = forced.to_str().unwrap_or_default();
    let key = sshd.authorize_key(
        &[
            ("PATH", &path),
            ("HOME", home.to_str().unwrap_or_default()),
            ("PVE_SIM_ADMIN_URL", admin_url),
            ("PVE_SIM_NODE", pve_node),
        ],
        host_command.then_some(forced),
    )?;
    let mut ssh = json!({"host": "127.0.0.1", "port": sshd.port, "user": sshd.user,
                         "hostKeyFingerprint": sshd.host_key_fingerprint, "maxSessions": 4});
    if host_command {
        ssh["mode"] = json!("HostCommand");
    }
    Ok((std::fs::read_to_string(key)?, ssh))
}

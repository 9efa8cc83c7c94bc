//! Per-container root directories (`<ct_root_dir>/<vmid>`) for the `host/pct` stand-in:
//! created with a minimal skeleton when a create task succeeds, removed on destroy.

use crate::config::Config;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The root directory of a container, if the simulator manages them.
pub fn path(cfg: &Config, vmid: u32) -> Option<PathBuf> {
    cfg.ct_root_dir.as_ref().map(|d| d.join(vmid.to_string()))
}

/// The accounts every Debian standard template has (a subset), so owners like `www-data`
/// resolve inside the container as they would on a real one.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n";

/// Creates the skeleton: /etc (hostname, os-release, passwd, group), /root, /tmp, /var/log.
pub fn create(cfg: &Config, vmid: u32, conf: &BTreeMap<String, String>) -> std::io::Result<()> {
    let Some(root) = path(cfg, vmid) else {
        return Ok(());
    };
    for dir in ["etc", "root", "tmp", "var/log", "usr/bin"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    let hostname = conf
        .get("hostname")
        .cloned()
        .unwrap_or_else(|| format!("CT{vmid}"));
    std::fs::write(root.join("etc/hostname"), format!("{hostname}\n"))?;
    std::fs::write(root.join("etc/passwd"), PASSWD)?;
    std::fs::write(root.join("etc/group"), GROUP)?;
    let ostype = conf.get("ostype").map_or("debian", String::as_str);
    std::fs::write(
        root.join("etc/os-release"),
        format!("ID={ostype}\nPRETTY_NAME=\"{ostype} (pve-sim)\"\n"),
    )?;
    Ok(())
}

pub fn remove(cfg: &Config, vmid: u32) {
    if let Some(root) = path(cfg, vmid) {
        let _ = std::fs::remove_dir_all(root);
    }
}

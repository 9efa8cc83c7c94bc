//! API handlers, one module per area, plus the helpers they share (container lookup, the
//! status numbers every listing reports).

pub mod access;
pub mod cluster;
pub mod ct_options;
pub mod lxc;
pub mod lxc_config;
pub mod power;
pub mod snapshot;
pub mod storage;
pub mod tasks;

use crate::config::Config;
use crate::error::ApiError;
use crate::state::{Ct, State, now};
use serde_json::{Map, Value, json};

/// The container `vmid` on `node`, or PVE's "Configuration file ... does not exist".
pub fn ct_on<'a>(st: &'a mut State, node: &str, vmid: u32) -> Result<&'a mut Ct, ApiError> {
    match st.cts.get_mut(&vmid) {
        Some(ct) if ct.node == node => Ok(ct),
        _ => Err(ApiError::no_config(node, vmid)),
    }
}

/// A call that takes the config lock file in the API process (`lock_config`): while a task or
/// injected contention holds it, the pipeline waits (`config_lock_timeout_ms`) and retries.
pub fn check_flock(st: &State, cfg: &Config, vmid: u32) -> Result<(), ApiError> {
    if st.flock_free(vmid) {
        return Ok(());
    }
    Err(ApiError::LockBusy {
        vmid,
        timeout_ms: cfg.config_lock_timeout_ms,
        message: ApiError::flock_timeout(vmid),
    })
}

/// Status numbers as `vmstatus` reports them; plausible and deterministic per vmid.
pub fn ct_status(ct: &Ct, node_cpus: u32) -> Map<String, Value> {
    let maxmem = ct.memory_mib() << 20;
    let maxdisk = ct.maxdisk();
    let running = ct.running;
    let uptime = if running {
        now().saturating_sub(ct.started_at)
    } else {
        0
    };
    let v = u64::from(ct.vmid);
    let pick = |on: u64| if running { on } else { 0 };
    let mut m = Map::new();
    m.insert("vmid".into(), json!(ct.vmid));
    m.insert(
        "status".into(),
        json!(if running { "running" } else { "stopped" }),
    );
    m.insert("name".into(), json!(ct.name()));
    m.insert("type".into(), json!("lxc"));
    m.insert("uptime".into(), json!(uptime));
    m.insert(
        "cpu".into(),
        json!(if running {
            ((v * 37) % 100) as f64 / 1000.0
        } else {
            0.0
        }),
    );
    m.insert("cpus".into(), json!(ct.cores(node_cpus)));
    m.insert("mem".into(), json!(pick(maxmem * (15 + v % 20) / 100)));
    m.insert("maxmem".into(), json!(maxmem));
    m.insert("swap".into(), json!(0));
    m.insert("maxswap".into(), json!(ct.swap_mib() << 20));
    m.insert("disk".into(), json!(pick(maxdisk * (20 + v % 30) / 100)));
    m.insert("maxdisk".into(), json!(maxdisk));
    m.insert("netin".into(), json!(pick(uptime * 1200 + 4096)));
    m.insert("netout".into(), json!(pick(uptime * 800 + 2048)));
    m.insert("diskread".into(), json!(pick(52_428_800)));
    m.insert("diskwrite".into(), json!(pick(uptime * 4096)));
    if running {
        m.insert("pid".into(), json!(10_000 + ct.vmid));
    }
    if let Some(lock) = ct.lock() {
        m.insert("lock".into(), json!(lock));
    }
    if let Some(tags) = ct.conf.get("tags") {
        m.insert("tags".into(), json!(tags));
    }
    if ct.conf.get("template").is_some_and(|t| t == "1") {
        m.insert("template".into(), json!(1));
    }
    m
}

//! The admin side: fault injection, node outages, ticket expiry, lock contention, the request
//! log and container lookups (for `host/pct`), as a library handle and as a plain-HTTP API.
//!
//! HTTP routes (JSON bodies): `GET|DELETE /requests`, `GET|PUT /faults`, `POST /faults/errors`
//! (ErrorRule), `POST /faults/latency` (LatencyRule), `POST /faults/spikes` (LatencySpike),
//! `GET /faults/injected` (InjectedCounts), `POST /faults/padding` (PaddingRule),
//! `GET /padding-sent`, `POST /faults/task-failures` (TaskFailure), `POST /tickets/expire`,
//! `POST /nodes/{node}/offline|online`, `POST /locks` (`{"vmid":100,"seconds":5,"lock":"backup"?}`),
//! `GET /cts`, `GET /cts/{vmid}`, `GET /requests/stats` (calls per endpoint), `GET /health`.

use crate::auth::TicketKey;
use crate::faults::{
    ErrorRule, FaultConfig, InjectedCounts, LatencyRule, LatencySpike, PaddingRule, TaskFailure,
};
use crate::reqlog::{EndpointCount, LogEntry};
use crate::state::Sim;
use crate::sync::lock;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A container as the host sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CtInfo {
    pub vmid: u32,
    pub node: String,
    pub status: String,
    pub lock: Option<String>,
    pub rootdir: Option<String>,
}

/// Lock contention: the config lock file is held (`lock: None`) or a config `lock` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    pub vmid: u32,
    pub seconds: f64,
    #[serde(default)]
    pub lock: Option<String>,
}

/// Fault injection and inspection for one simulator.
#[derive(Clone)]
pub struct Admin(pub(crate) Arc<Sim>);

impl Admin {
    pub fn requests(&self) -> Vec<LogEntry> {
        self.0.log.entries()
    }
    /// Calls per endpoint (method and path template), and whether each is mutating.
    pub fn request_stats(&self) -> Vec<EndpointCount> {
        self.0.log.stats()
    }
    pub fn clear_requests(&self) {
        self.0.log.clear()
    }
    /// API calls that concerned one container (path or parameter `vmid`).
    /// The most tasks that ever ran at once on `node`.
    pub fn peak_running_tasks(&self, node: &str) -> usize {
        self.0.state().peak_tasks.get(node).copied().unwrap_or_default()
    }
    pub fn count_requests_for(&self, vmid: u32) -> usize {
        self.0.log.count_for_vmid(vmid)
    }
    pub fn faults(&self) -> FaultConfig {
        lock(&self.0.faults).cfg.clone()
    }
    pub fn set_faults(&self, cfg: FaultConfig) {
        lock(&self.0.faults).cfg = cfg;
    }
    /// DHCP leases show this many seconds after a container starts (see `FaultConfig`).
    pub fn set_dhcp_delay(&self, secs: u64) {
        lock(&self.0.faults).cfg.dhcp_delay_secs = secs;
    }
    pub fn add_error_rule(&self, rule: ErrorRule) {
        lock(&self.0.faults).cfg.errors.push(rule);
    }
    pub fn add_latency(&self, rule: LatencyRule) {
        lock(&self.0.faults).cfg.latency.push(rule);
    }
    pub fn add_spike(&self, spike: LatencySpike) {
        lock(&self.0.faults).cfg.spikes.push(spike);
    }
    /// The faults injected so far (errors by kind, latency spikes).
    pub fn injected(&self) -> InjectedCounts {
        lock(&self.0.faults).injected()
    }
    pub fn add_padding(&self, rule: PaddingRule) {
        lock(&self.0.faults).cfg.padding.push(rule);
    }
    /// Filler bytes handed to connections so far (see `PaddingRule`): far below the padding's
    /// size when a client stopped reading.
    pub fn padding_sent(&self) -> u64 {
        self.0.padding_sent.load(Ordering::Relaxed)
    }
    pub fn fail_tasks(&self, failure: TaskFailure) {
        lock(&self.0.faults).cfg.task_failures.push(failure);
    }
    /// Every ticket issued so far stops working (the signing key is replaced).
    pub fn expire_tickets(&self) {
        let mut key = [0u8; 32];
        self.0.state().rng.fill_bytes(&mut key);
        *lock(&self.0.key) = TicketKey(key);
    }
    /// Returns false for an unknown node.
    pub fn set_node_online(&self, node: &str, online: bool) -> bool {
        match self.0.state().nodes.get_mut(node) {
            Some(n) => {
                n.online = online;
                true
            }
            None => false,
        }
    }
    /// Holds the container's lock for a while (see `LockRequest`); false if the CT is unknown.
    pub fn lock_ct(&self, req: LockRequest) -> bool {
        let until = Duration::from_secs_f64(req.seconds.max(0.0));
        let mut st = self.0.state();
        match req.lock {
            None => {
                let holder = crate::state::Holder::Until(Instant::now() + until);
                if !st.take_flock(req.vmid, &holder) {
                    // Held by a task: the injected holder takes over when the task ends.
                    let sim = self.0.clone();
                    tokio::spawn(async move {
                        let wait_ms = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
                        crate::worker::wait_for(&sim, wait_ms, |st| st.take_flock(req.vmid, &holder)).await;
                    });
                }
                true
            }
            Some(l) => {
                let Some(ct) = st.cts.get_mut(&req.vmid) else {
                    return false;
                };
                ct.conf.insert("lock".into(), l.clone());
                let sim = self.0.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(until).await;
                    if let Some(ct) = sim.state().cts.get_mut(&req.vmid)
                        && ct.lock() == Some(l.as_str())
                    {
                        ct.conf.remove("lock");
                    }
                });
                true
            }
        }
    }
    pub fn container(&self, vmid: u32) -> Option<CtInfo> {
        let st = self.0.state();
        st.cts.get(&vmid).map(|ct| CtInfo {
            vmid,
            node: ct.node.clone(),
            status: if ct.running { "running" } else { "stopped" }.into(),
            lock: ct.lock().map(String::from),
            rootdir: crate::ctroot::path(&self.0.cfg, vmid).map(|p| p.display().to_string()),
        })
    }
    pub fn containers(&self) -> Vec<CtInfo> {
        let ids: Vec<u32> = self.0.state().cts.keys().copied().collect();
        ids.into_iter().filter_map(|v| self.container(v)).collect()
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (u16, Value)> {
    serde_json::from_slice(body).map_err(|e| (400, json!({"error": e.to_string()})))
}

/// The admin HTTP API; returns (status, JSON body).
pub fn handle(sim: &Arc<Sim>, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> (u16, Value) {
    let admin = Admin(sim.clone());
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ok = || (200, json!({"ok": true}));
    let result: Result<(u16, Value), (u16, Value)> = (|| {
        Ok(match (method, segs.as_slice()) {
            ("GET", ["health"]) => ok(),
            ("GET", ["requests"]) => {
                let vmid: Option<u32> = query
                    .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "vmid"))
                    .and_then(|(_, v)| v.parse().ok());
                let entries: Vec<LogEntry> = admin
                    .requests()
                    .into_iter()
                    .filter(|e| vmid.is_none_or(|v| e.vmid == Some(v)))
                    .collect();
                (200, json!(entries))
            }
            ("GET", ["requests", "stats"]) => (200, json!(admin.request_stats())),
            ("DELETE", ["requests"]) => {
                admin.clear_requests();
                ok()
            }
            ("GET", ["faults"]) => (200, json!(admin.faults())),
            ("PUT", ["faults"]) => {
                admin.set_faults(parse(body)?);
                ok()
            }
            ("POST", ["faults", "errors"]) => {
                admin.add_error_rule(parse(body)?);
                ok()
            }
            ("POST", ["faults", "latency"]) => {
                admin.add_latency(parse(body)?);
                ok()
            }
            ("POST", ["faults", "spikes"]) => {
                admin.add_spike(parse(body)?);
                ok()
            }
            ("GET", ["faults", "injected"]) => (200, json!(admin.injected())),
            ("POST", ["faults", "padding"]) => {
                admin.add_padding(parse(body)?);
                ok()
            }
            ("GET", ["padding-sent"]) => (200, json!({"bytes": admin.padding_sent()})),
            ("POST", ["faults", "task-failures"]) => {
                admin.fail_tasks(parse(body)?);
                ok()
            }
            ("POST", ["tickets", "expire"]) => {
                admin.expire_tickets();
                ok()
            }
            ("POST", ["nodes", node, state @ ("offline" | "online")]) => {
                if !admin.set_node_online(node, *state == "online") {
                    return Err((404, json!({"error": format!("no such node '{node}'")})));
                }
                ok()
            }
            ("POST", ["locks"]) => {
                let req: LockRequest = parse(body)?;
                let vmid = req.vmid;
                if !admin.lock_ct(req) {
                    return Err((404, json!({"error": format!("no such container {vmid}")})));
                }
                ok()
            }
            ("GET", ["cts"]) => (200, json!(admin.containers())),
            ("GET", ["cts", vmid]) => match vmid.parse().ok().and_then(|v| admin.container(v)) {
                Some(ct) => (200, json!(ct)),
                None => return Err((404, json!({"error": format!("no such container {vmid}")}))),
            },
            _ => return Err((404, json!({"error": format!("no admin route {method} {path}")}))),
        })
    })();
    result.unwrap_or_else(|e| e)
}

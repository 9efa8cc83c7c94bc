//! The request log: every API call with its method, path, parameters (secrets redacted),
//! status, caller and arrival time, so tests can count Proxmox calls per container and tell
//! when each arrived.

use crate::sync::lock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Parameters whose values never appear in the log.
const SECRET_PARAMS: &[&str] = &["password", "tfa-challenge", "otp"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    pub seq: u64,
    pub method: String,
    /// Path below `/api2/json`.
    pub path: String,
    /// The served endpoint's path template (`/nodes/{node}/lxc/{vmid}/config`); None for an
    /// unknown path.
    #[serde(default)]
    pub route: Option<String>,
    pub params: BTreeMap<String, String>,
    pub status: u16,
    /// `user@realm` or `user@realm!token`; None before authentication.
    pub identity: Option<String>,
    /// The vmid the call was about (path or `vmid` parameter), for per-container counts.
    pub vmid: Option<u32>,
    /// When the request arrived (before it waited for a worker or an injected delay), in
    /// milliseconds since the Unix epoch: lets a test set a call against its own clock.
    #[serde(default)]
    pub received_ms: u64,
}

/// Now, in milliseconds since the Unix epoch (for [`LogEntry::received_ms`]).
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// How often one endpoint was called (`GET /requests/stats`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointCount {
    pub method: String,
    /// The path template, or the raw path for an unknown one.
    pub route: String,
    /// Whether the method changes state (anything but GET).
    pub mutating: bool,
    pub count: usize,
    /// Answers with status 400 or more, or none at all (a reset).
    pub failed: usize,
}

#[derive(Default)]
pub struct RequestLog {
    entries: Mutex<Vec<LogEntry>>,
}

impl RequestLog {
    #[allow(clippy::too_many_arguments)] // one call site, every field named there
    pub fn record(
        &self,
        received_ms: u64,
        method: &str,
        path: &str,
        route: Option<&str>,
        params: &BTreeMap<String, String>,
        status: u16,
        identity: Option<String>,
    ) {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if SECRET_PARAMS.contains(&k.as_str()) {
                        "<redacted>".into()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        let vmid = params.get("vmid").and_then(|v| v.parse().ok());
        let mut entries = lock(&self.entries);
        let seq = entries.len() as u64 + 1;
        entries.push(LogEntry {
            seq,
            method: method.into(),
            path: path.into(),
            route: route.map(String::from),
            params,
            status,
            identity,
            vmid,
            received_ms,
        });
    }

    pub fn entries(&self) -> Vec<LogEntry> {
        lock(&self.entries).clone()
    }

    pub fn clear(&self) {
        lock(&self.entries).clear();
    }

    /// Calls per endpoint (method and path template), in the order first seen.
    pub fn stats(&self) -> Vec<EndpointCount> {
        let mut out: Vec<EndpointCount> = Vec::new();
        for e in lock(&self.entries).iter() {
            let route = e.route.clone().unwrap_or_else(|| e.path.clone());
            let i = match out.iter().position(|c| c.method == e.method && c.route == route) {
                Some(i) => i,
                None => {
                    out.push(EndpointCount {
                        method: e.method.clone(),
                        mutating: e.method != "GET",
                        route,
                        count: 0,
                        failed: 0,
                    });
                    out.len() - 1
                }
            };
            out[i].count += 1;
            if e.status >= 400 || e.status == 0 {
                out[i].failed += 1;
            }
        }
        out
    }

    /// Calls that concerned one container.
    pub fn count_for_vmid(&self, vmid: u32) -> usize {
        lock(&self.entries)
            .iter()
            .filter(|e| e.vmid == Some(vmid))
            .count()
    }
}

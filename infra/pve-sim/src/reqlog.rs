//! The request log: every API call with its method, path, parameters (secrets redacted),
//! status and caller, so tests can count Proxmox calls per container.

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
    pub params: BTreeMap<String, String>,
    pub status: u16,
    /// `user@realm` or `user@realm!token`; None before authentication.
    pub identity: Option<String>,
    /// The vmid the call was about (path or `vmid` parameter), for per-container counts.
    pub vmid: Option<u32>,
}

#[derive(Default)]
pub struct RequestLog {
    entries: Mutex<Vec<LogEntry>>,
}

impl RequestLog {
    pub fn record(
        &self,
        method: &str,
        path: &str,
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
            params,
            status,
            identity,
            vmid,
        });
    }

    pub fn entries(&self) -> Vec<LogEntry> {
        lock(&self.entries).clone()
    }

    pub fn clear(&self) {
        lock(&self.entries).clear();
    }

    /// Calls that concerned one container.
    pub fn count_for_vmid(&self, vmid: u32) -> usize {
        lock(&self.entries)
            .iter()
            .filter(|e| e.vmid == Some(vmid))
            .count()
    }
}

//! Download: start the OS template's download on one node — one audited call, from the
//! appliance index or a URL. A download not started says why in a typed [`Refused`].

use super::observe::split_volid;
use super::plan::NodeAction;
use crate::controllers::act::{ActError, Actor};
use crate::crd::template::LxcTemplate;
use crate::proxmox::{Mutation, ProxmoxClient};

/// Why a download was not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The audit trail could not take the intent: no trail, no download.
    AuditUnavailable(String),
    /// This replica may no longer act.
    Fenced(String),
    /// The node runs as many of this operator's tasks as `maxConcurrentTasks` allows: the
    /// download waits for one to end (it is a task like a create, on the same storage).
    Busy { busy: usize, limit: usize },
    /// Proxmox refused it.
    Proxmox(String),
}

impl Refused {
    /// The node line's message.
    pub fn message(&self) -> String {
        match self {
            Self::AuditUnavailable(e) => format!("audit store unavailable, download not started: {e}"),
            Self::Fenced(e) => format!("download not started: {e}"),
            Self::Busy { busy, limit } => format!(
                "download waits: the node runs {busy} of this operator's tasks (maxConcurrentTasks {limit})"
            ),
            Self::Proxmox(e) => e.clone(),
        }
    }
}

/// The mutation `action` asks for, if it asks for one.
pub fn mutation(template: &LxcTemplate, node: &str, action: &NodeAction) -> Option<Mutation> {
    let volid = &template.spec.os_template.volid;
    let (storage, file) = split_volid(volid);
    let url = template
        .spec
        .os_template
        .source
        .as_ref()
        .and_then(|s| s.url.as_ref());
    match (action, url) {
        (NodeAction::DownloadAppliance { template }, _) => Some(Mutation::DownloadAppliance {
            node: node.into(),
            storage: storage.into(),
            template: template.clone(),
        }),
        (NodeAction::DownloadUrl, Some(url)) => Some(Mutation::DownloadUrl {
            node: node.into(),
            storage: storage.into(),
            url: url.url.clone(),
            filename: file.into(),
            checksum: url.checksum.clone(),
            algorithm: serde_json::to_value(url.checksum_algorithm)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "sha256".into()),
        }),
        _ => None,
    }
}

/// Starts the download `action` asks for; the UPID when one started.
pub async fn start(
    actor: &Actor<'_>,
    client: &ProxmoxClient,
    template: &LxcTemplate,
    node: &str,
    action: &NodeAction,
) -> Result<Option<String>, Refused> {
    let Some(download) = mutation(template, node, action) else {
        return Ok(None);
    };
    let Some(slot) = client.task_slots().claim() else {
        let (busy, limit) = client.task_slots().busy();
        return Err(Refused::Busy { busy, limit });
    };
    match actor.proxmox_task(client, "download", &download).await {
        Ok(upid) => {
            let upid = upid.to_string();
            slot.started(&upid);
            Ok(Some(upid))
        }
        Err(ActError::AuditUnavailable(e)) => Err(Refused::AuditUnavailable(e.to_string())),
        Err(ActError::Fenced(f)) => Err(Refused::Fenced(f.to_string())),
        Err(ActError::Call(e)) => Err(Refused::Proxmox(e.to_string())),
    }
}

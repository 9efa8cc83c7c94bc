//! Every mutating Proxmox call as a value. The audit intent is derived from the same value
//! that is sent ([`Mutation::params`]), so what the trail records is what Proxmox received
//! (secret values redacted). Only `controllers::act` sends one (`clippy.toml` forbids
//! [`ProxmoxClient::mutate`] and the typed wrappers anywhere else): no intent, no call.

use reqwest::Method;

use super::auth::Secret;
use super::client::{CallKind, Params, ProxmoxClient, enc};
use super::error::Error;
use super::upid::Upid;

/// Parameters of `POST /nodes/{node}/lxc`: the config keys in Proxmox's names and formats
/// (built from one table by `pipeline::desired`), plus the secrets read right before the call.
#[derive(Debug, Clone, Default)]
pub struct CreateLxc {
    pub vmid: u32,
    pub ostemplate: String,
    /// Every other key, in the order sent.
    pub config: Params,
    pub password: Option<Secret>,
    pub ssh_public_keys: Option<String>,
}

impl CreateLxc {
    /// The form parameters, in Proxmox's names.
    pub fn params(&self) -> Params {
        let mut p: Params = vec![
            ("vmid".into(), self.vmid.to_string()),
            ("ostemplate".into(), self.ostemplate.clone()),
        ];
        p.extend(self.config.iter().cloned());
        if let Some(pw) = &self.password {
            p.push(("password".into(), pw.expose().to_string()));
        }
        if let Some(keys) = &self.ssh_public_keys {
            p.push(("ssh-public-keys".into(), keys.clone()));
        }
        p
    }
}

/// A power action on a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    Stop,
    Reboot,
    Shutdown { timeout_secs: u32 },
}

/// A mutating call.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// `POST /nodes/{node}/lxc` (task `vzcreate`).
    CreateContainer { node: String, create: Box<CreateLxc> },
    /// `PUT /nodes/{node}/lxc/{vmid}/config` with the digest the change was computed from.
    UpdateConfig {
        node: String,
        vmid: u32,
        digest: String,
        set: Params,
        delete: Vec<String>,
    },
    /// `POST /nodes/{node}/lxc/{vmid}/status/{action}`.
    Power {
        node: String,
        vmid: u32,
        action: PowerAction,
    },
    /// `DELETE /nodes/{node}/lxc/{vmid}?purge=1&destroy-unreferenced-disks=1`.
    Destroy { node: String, vmid: u32 },
    /// `PUT /nodes/{node}/lxc/{vmid}/resize` to an absolute size (idempotent).
    Resize {
        node: String,
        vmid: u32,
        disk: String,
        size_gib: u64,
    },
    /// `POST /nodes/{node}/lxc/{vmid}/migrate`, restarting a running container.
    Migrate {
        node: String,
        vmid: u32,
        target: String,
        restart: bool,
    },
    /// `POST /nodes/{node}/aplinfo`: an appliance template into `storage`.
    DownloadAppliance {
        node: String,
        storage: String,
        template: String,
    },
    /// `POST /nodes/{node}/storage/{storage}/download-url` of a container template.
    DownloadUrl {
        node: String,
        storage: String,
        url: String,
        filename: String,
        checksum: String,
        algorithm: String,
    },
}

impl PowerAction {
    /// The action's name in the API path (`start`, `shutdown`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Shutdown { .. } => "shutdown",
        }
    }
}

impl Mutation {
    /// The operation's name (errors, metrics, the audit trail).
    pub fn operation(&self) -> String {
        match self {
            Self::CreateContainer { .. } => "create container".into(),
            Self::UpdateConfig { .. } => "update container config".into(),
            Self::Power { action, .. } => format!("{} container", action.name()),
            Self::Destroy { .. } => "destroy container".into(),
            Self::Resize { .. } => "resize container disk".into(),
            Self::Migrate { .. } => "migrate container".into(),
            Self::DownloadAppliance { .. } => "download appliance template".into(),
            Self::DownloadUrl { .. } => "download template from URL".into(),
        }
    }

    /// The Proxmox node the call goes to.
    pub fn node(&self) -> &str {
        match self {
            Self::CreateContainer { node, .. }
            | Self::UpdateConfig { node, .. }
            | Self::Power { node, .. }
            | Self::Destroy { node, .. }
            | Self::Resize { node, .. }
            | Self::Migrate { node, .. }
            | Self::DownloadAppliance { node, .. }
            | Self::DownloadUrl { node, .. } => node,
        }
    }

    /// The container the call is about, if any.
    pub fn vmid(&self) -> Option<u32> {
        match self {
            Self::CreateContainer { create, .. } => Some(create.vmid),
            Self::UpdateConfig { vmid, .. }
            | Self::Power { vmid, .. }
            | Self::Destroy { vmid, .. }
            | Self::Resize { vmid, .. }
            | Self::Migrate { vmid, .. } => Some(*vmid),
            Self::DownloadAppliance { .. } | Self::DownloadUrl { .. } => None,
        }
    }

    /// The form parameters exactly as sent (secret values included: redact before storing).
    pub fn params(&self) -> Params {
        let p = |pairs: &[(&str, String)]| -> Params {
            pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        match self {
            Self::CreateContainer { create, .. } => create.params(),
            Self::UpdateConfig {
                digest, set, delete, ..
            } => {
                let mut params = set.clone();
                if !delete.is_empty() {
                    params.push(("delete".into(), delete.join(",")));
                }
                params.push(("digest".into(), digest.clone()));
                params
            }
            Self::Power {
                action: PowerAction::Shutdown { timeout_secs },
                ..
            } => p(&[("timeout", timeout_secs.to_string())]),
            Self::Power { .. } => Vec::new(),
            Self::Destroy { .. } => p(&[("purge", "1".into()), ("destroy-unreferenced-disks", "1".into())]),
            Self::Resize { disk, size_gib, .. } => {
                p(&[("disk", disk.clone()), ("size", format!("{size_gib}G"))])
            }
            Self::Migrate { target, restart, .. } => {
                let mut params = p(&[("target", target.clone())]);
                if *restart {
                    params.push(("restart".into(), "1".into()));
                }
                params
            }
            Self::DownloadAppliance {
                storage, template, ..
            } => p(&[("storage", storage.clone()), ("template", template.clone())]),
            Self::DownloadUrl {
                url,
                filename,
                checksum,
                algorithm,
                ..
            } => p(&[
                ("content", "vztmpl".into()),
                ("url", url.clone()),
                ("filename", filename.clone()),
                ("checksum", checksum.clone()),
                ("checksum-algorithm", algorithm.clone()),
            ]),
        }
    }

    fn method_and_path(&self) -> (Method, String) {
        let n = enc(self.node());
        match self {
            Self::CreateContainer { .. } => (Method::POST, format!("/nodes/{n}/lxc")),
            Self::UpdateConfig { vmid, .. } => (Method::PUT, format!("/nodes/{n}/lxc/{vmid}/config")),
            Self::Power { vmid, action, .. } => (
                Method::POST,
                format!("/nodes/{n}/lxc/{vmid}/status/{}", action.name()),
            ),
            Self::Destroy { vmid, .. } => (Method::DELETE, format!("/nodes/{n}/lxc/{vmid}")),
            Self::Resize { vmid, .. } => (Method::PUT, format!("/nodes/{n}/lxc/{vmid}/resize")),
            Self::Migrate { vmid, .. } => (Method::POST, format!("/nodes/{n}/lxc/{vmid}/migrate")),
            Self::DownloadAppliance { .. } => (Method::POST, format!("/nodes/{n}/aplinfo")),
            Self::DownloadUrl { storage, .. } => (
                Method::POST,
                format!("/nodes/{n}/storage/{}/download-url", enc(storage)),
            ),
        }
    }

    /// Whether the call starts a task (and answers with its UPID); a config update is
    /// synchronous and may be repeated with the same digest.
    pub fn starts_task(&self) -> bool {
        !matches!(self, Self::UpdateConfig { .. })
    }
}

impl ProxmoxClient {
    /// Sends a mutation; a task-starting one answers with the task's UPID. Only
    /// `controllers::act` may call this: it writes the intent first.
    pub async fn mutate(&self, mutation: &Mutation) -> Result<Option<Upid>, Error> {
        let operation = mutation.operation();
        let (method, path) = mutation.method_and_path();
        let params = mutation.params();
        if !mutation.starts_task() {
            let _: serde_json::Value = self
                .call(&operation, method, &path, params, CallKind::IdempotentWrite)
                .await?;
            return Ok(None);
        }
        let text: String = self
            .call(&operation, method, &path, params, CallKind::StartTask)
            .await?;
        Upid::parse(&text).map(Some).ok_or_else(|| Error::Decode {
            operation,
            message: format!("not a UPID: {text:.100}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sent_is_what_the_trail_records() {
        let m = Mutation::UpdateConfig {
            node: "pve 1".into(),
            vmid: 100,
            digest: "abc".into(),
            set: vec![("memory".into(), "768".into())],
            delete: vec!["swap".into(), "mp0".into()],
        };
        assert_eq!(m.operation(), "update container config");
        assert_eq!(
            m.params(),
            [("memory", "768"), ("delete", "swap,mp0"), ("digest", "abc")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(m.method_and_path().1, "/nodes/pve%201/lxc/100/config");
        assert!(!m.starts_task());
        let power = Mutation::Power {
            node: "pve1".into(),
            vmid: 7,
            action: PowerAction::Shutdown { timeout_secs: 30 },
        };
        assert_eq!(power.operation(), "shutdown container");
        assert_eq!(power.params(), vec![("timeout".to_string(), "30".to_string())]);
        assert_eq!(power.vmid(), Some(7));
    }

    #[test]
    fn create_parameters_carry_the_config_and_the_secrets() {
        let create = CreateLxc {
            vmid: 1000,
            ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            config: vec![("rootfs".into(), "local-lvm:8".into())],
            password: Some(Secret::new("pw")),
            ssh_public_keys: None,
        };
        let p = create.params();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("vmid"), Some("1000"));
        assert_eq!(get("rootfs"), Some("local-lvm:8"));
        assert_eq!(get("password"), Some("pw"));
        assert_eq!(get("ssh-public-keys"), None, "unset keys are not sent");
        assert!(
            !format!("{create:?}").contains("\"pw\""),
            "the password stays out of Debug"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("pve1"), "pve1");
        assert_eq!(
            enc("UPID:pve:1:2:3:vzcreate:100:root@pam!op:"),
            "UPID%3Apve%3A1%3A2%3A3%3Avzcreate%3A100%3Aroot%40pam%21op%3A"
        );
    }
}

//! One probe of a node — version, node status, storages and the cluster's guests in one bulk
//! read — and the pure mapping from its outcome to the node's conditions.

use crate::proxmox::types::{ClusterResource, NodeStatus, StorageEntry, Version};
use crate::proxmox::{Error, ErrorClass, ProxmoxClient};
use crate::status::conditions::{Desired, types};

use super::connect::ConnectError;

/// What a successful probe saw.
#[derive(Debug, Clone)]
pub struct Probe {
    pub version: Version,
    pub status: NodeStatus,
    pub storages: Vec<StorageEntry>,
    /// Every guest of the cluster (`/cluster/resources?type=vm`).
    pub guests: Vec<ClusterResource>,
}

impl Probe {
    /// The LXC containers on `node`.
    pub fn containers_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a ClusterResource> + 'a {
        self.guests
            .iter()
            .filter(move |g| g.kind == "lxc" && g.node.as_deref() == Some(node))
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Proxmox(#[from] Error),
    /// The API answered but the node itself is offline (Proxmox cannot proxy to it).
    #[error("node is offline: {0}")]
    NodeOffline(Error),
}

/// Reads everything the node's status needs: 4 GETs, whatever the number of containers.
pub async fn probe(client: &ProxmoxClient, node: &str) -> Result<Probe, ProbeError> {
    let version = client.version().await?;
    let status = client.node_status(node).await.map_err(|e| match e.class() {
        ErrorClass::Connect => ProbeError::NodeOffline(e),
        _ => ProbeError::Proxmox(e),
    })?;
    let storages = client.storages(node, None).await?;
    let guests = client.cluster_resources(Some("vm")).await?;
    Ok(Probe {
        version,
        status,
        storages,
        guests,
    })
}

fn desired(
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: impl Into<String>,
) -> Desired<'static> {
    Desired {
        type_,
        status,
        reason,
        message: message.into(),
    }
}

/// The `Reachable`, `Authenticated` and `Ready` conditions for a probe's outcome.
pub fn conditions(
    outcome: &Result<&Probe, &ProbeError>,
    insecure: bool,
    pinned: bool,
) -> [Desired<'static>; 3] {
    use types::{AUTHENTICATED, REACHABLE, READY};
    let all = |ok: bool, reason: &'static str, msg: String| {
        [
            desired(REACHABLE, ok, reason, msg.clone()),
            desired(AUTHENTICATED, ok, reason, msg.clone()),
            desired(READY, ok, reason, msg),
        ]
    };
    match outcome {
        Ok(p) => {
            let (reason, msg) = if insecure {
                (
                    "InsecureSkipVerify",
                    "connected WITHOUT verifying the TLS certificate (insecureSkipVerify)".to_string(),
                )
            } else {
                ("Connected", format!("Proxmox VE {}", p.version.version))
            };
            [
                desired(REACHABLE, true, reason, msg),
                desired(AUTHENTICATED, true, "Authenticated", ""),
                desired(READY, true, "Ready", format!("Proxmox VE {}", p.version.version)),
            ]
        }
        Err(ProbeError::Connect(e)) => all(false, e.reason(), e.to_string()),
        Err(ProbeError::NodeOffline(e)) => [
            desired(REACHABLE, true, "Connected", ""),
            desired(AUTHENTICATED, true, "Authenticated", ""),
            desired(READY, false, "NodeOffline", e.to_string()),
        ],
        Err(ProbeError::Proxmox(e)) => {
            let msg = e.to_string();
            match e.class() {
                ErrorClass::Tls => {
                    let reason = if pinned {
                        "TLSFingerprintMismatch"
                    } else {
                        "TLSVerificationFailed"
                    };
                    all(false, reason, msg)
                }
                ErrorClass::Connect | ErrorClass::CircuitOpen => all(false, "Unreachable", msg),
                ErrorClass::Unauthorized => [
                    desired(REACHABLE, true, "Connected", ""),
                    desired(AUTHENTICATED, false, "AuthenticationFailed", msg.clone()),
                    desired(READY, false, "AuthenticationFailed", msg),
                ],
                ErrorClass::Forbidden => [
                    desired(REACHABLE, true, "Connected", ""),
                    desired(AUTHENTICATED, true, "Authenticated", ""),
                    desired(READY, false, "PermissionDenied", msg),
                ],
                ErrorClass::NotFound => [
                    desired(REACHABLE, true, "Connected", ""),
                    desired(AUTHENTICATED, true, "Authenticated", ""),
                    desired(READY, false, "NodeNotFound", msg),
                ],
                _ => [
                    desired(REACHABLE, true, "Connected", ""),
                    desired(AUTHENTICATED, true, "Authenticated", ""),
                    desired(READY, false, "ProxmoxError", msg),
                ],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn api_error(status: u16, class: ErrorClass, message: &str) -> ProbeError {
        ProbeError::Proxmox(Error::Api {
            operation: "get version".into(),
            status,
            class,
            message: message.into(),
            fields: BTreeMap::new(),
        })
    }

    fn reasons(c: &[Desired<'static>; 3]) -> Vec<(bool, &'static str)> {
        c.iter().map(|d| (d.status, d.reason)).collect()
    }

    #[test]
    fn each_failure_gets_its_reason() {
        let tls = ProbeError::Proxmox(Error::Tls {
            operation: "get version".into(),
            message: "invalid peer certificate: ApplicationVerificationFailure".into(),
        });
        assert_eq!(
            reasons(&conditions(&Err(&tls), false, true))[0],
            (false, "TLSFingerprintMismatch")
        );
        assert_eq!(
            reasons(&conditions(&Err(&tls), false, false))[0],
            (false, "TLSVerificationFailed")
        );
        let refused = ProbeError::Proxmox(Error::Connect {
            operation: "get version".into(),
            message: "connection refused".into(),
            never_sent: true,
        });
        assert_eq!(
            reasons(&conditions(&Err(&refused), false, true)),
            [(false, "Unreachable"); 3]
        );
        let unauth = api_error(401, ErrorClass::Unauthorized, "authentication failure");
        assert_eq!(
            reasons(&conditions(&Err(&unauth), false, true)),
            [
                (true, "Connected"),
                (false, "AuthenticationFailed"),
                (false, "AuthenticationFailed")
            ]
        );
        let forbidden = api_error(
            403,
            ErrorClass::Forbidden,
            "Permission check failed (/nodes/pve1, Sys.Audit)",
        );
        let c = conditions(&Err(&forbidden), false, true);
        assert_eq!(reasons(&c)[2], (false, "PermissionDenied"));
        assert!(c[2].message.contains("Sys.Audit"));
        let missing = ProbeError::Connect(ConnectError::SecretNotFound("lxc-operator/pve1".into()));
        assert_eq!(
            reasons(&conditions(&Err(&missing), false, true)),
            [(false, "CredentialsNotFound"); 3]
        );
    }
}

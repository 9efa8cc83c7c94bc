//! The node's status from a probe's outcome, pure: `Reachable`, `Authenticated` and `Ready`
//! with a precise reason for each failure, then version, capacity and container count.

use k8s_openapi::jiff::Timestamp;

use super::probe::{Probe, ProbeError};
use crate::crd::node::{NodeCapacity, ProxmoxNode, ProxmoxNodeStatus, StorageCapacity};
use crate::proxmox::ErrorClass;
use crate::status::conditions::{Desired, set, types};

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

/// The status a probe outcome gives, starting from the current one (conditions keep their
/// transition times).
pub fn next_status(
    node: &ProxmoxNode,
    outcome: &Result<Probe, ProbeError>,
    now: Timestamp,
) -> ProxmoxNodeStatus {
    let mut status = node.status.clone().unwrap_or_default();
    let generation = node.metadata.generation;
    let tls = &node.spec.tls;
    for desired in conditions(
        &outcome.as_ref(),
        tls.insecure_skip_verify,
        tls.fingerprint_sha256.is_some(),
    ) {
        set(&mut status.conditions, desired, generation, now);
    }
    status.observed_generation = generation;
    if let Ok(p) = outcome {
        status.pve_version = Some(p.version.version.clone());
        status.cluster_name = Some(p.cluster.clone().unwrap_or_else(|| node.spec.endpoint.clone()));
        status.container_count = Some(p.containers_on(&node.spec.node_name).count() as i64);
        status.capacity = Some(NodeCapacity {
            cpus: p.status.cpuinfo.cpus.unwrap_or_default() as i64,
            cpu_usage: Some(format!("{:.3}", p.status.cpu)),
            memory_bytes: p.status.memory.total.unwrap_or_default() as i64,
            memory_used_bytes: p.status.memory.used.unwrap_or_default() as i64,
            storage: p
                .storages
                .iter()
                .map(|s| {
                    let cap = StorageCapacity {
                        total_bytes: s.total.unwrap_or_default() as i64,
                        used_bytes: s.used.unwrap_or_default() as i64,
                    };
                    (s.storage.clone(), cap)
                })
                .collect(),
        });
        status.last_probe_time = Some(now.to_string());
    }
    status
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cluster::clients::ConnectError;
    use crate::proxmox::Error;

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

//! The Provision phase over SSH: the node's `spec.ssh` and its key Secret become a pooled
//! [`SshHost`]; the steps not yet done run inside the container through `pct`, each run written
//! ahead to the audit trail (its failure, with the output tail, too); progress is recorded in
//! status. Then the declared services are read and service credentials go into a Secret owned
//! by the container — and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::provisioner::Provisioner;
use super::run::{Run, phase};
use super::target::Target;
use crate::audit::{AuditedError, AuditedValue};
use crate::controllers::act::{ActError, SshOperation};
use crate::controllers::halt::{Halt, HaltKind};
use crate::crd::container::{LocalObjectRef, ProvisionedStep, ServiceStatus, TemplateUpdatePolicy};
use crate::crd::node::SshMode;
use crate::crd::provisioning::ServiceSpec;
use crate::provision::content::digest::ResolvedProvisioning;
use crate::provision::{
    PctTarget, ProvisionFailure, ProvisionOptions, ProvisionReport, discover, plan, steps,
};
use crate::ssh::{ClientKey, ErrorKind, HostMode, SshConfig, SshHost, SshPool};
use crate::status::apply::FIELD_MANAGER;

impl AuditedValue for ProvisionReport {}

impl AuditedError for ProvisionFailure {
    fn audit_class(&self) -> String {
        self.error.kind().label().to_string()
    }
}

/// Provisions over SSH with one pooled connection per node.
#[derive(Default)]
pub struct SshProvisioner {
    pub pool: SshPool,
    pub options: ProvisionOptions,
}

fn halt_for(kind: ErrorKind, message: String) -> Halt {
    let (reason, how) = match kind {
        ErrorKind::HostKeyMismatch => ("HostKeyMismatch", HaltKind::Failed),
        ErrorKind::Auth => ("SshAuthenticationFailed", HaltKind::Failed),
        ErrorKind::Connect => ("SshUnreachable", HaltKind::Transient),
        ErrorKind::Timeout => ("StepTimedOut", HaltKind::Transient),
        ErrorKind::CommandFailed => ("StepFailed", HaltKind::Transient),
        ErrorKind::InvalidInput => ("InvalidStep", HaltKind::Stalled),
        ErrorKind::Fenced => ("Fenced", HaltKind::Fenced),
    };
    Halt::new(phase::PROVISIONED, reason, message, how)
}

impl SshProvisioner {
    /// The node's SSH host, with its key read from the Secret `spec.ssh` names.
    async fn host(&self, run: &Run<'_>, target: &Target) -> Result<Arc<SshHost>, Halt> {
        let node = target.node.name_any();
        let Some(ssh) = &target.node.spec.ssh else {
            return Err(Halt::new(
                phase::PROVISIONED,
                "SshNotConfigured",
                format!("ProxmoxNode {node} has no spec.ssh"),
                HaltKind::Blocked,
            ));
        };
        let r = &ssh.private_key_secret_ref;
        let field = format!("ProxmoxNode {node} spec.ssh.privateKeySecretRef");
        let blocked = |why: String| Halt::new(phase::PROVISIONED, "SshKeyNotFound", why, HaltKind::Blocked);
        let secret = Api::<KubeSecret>::namespaced(run.ctx.kube.clone(), &r.namespace)
            .get_opt(&r.name)
            .await
            .map_err(|e| Halt::kube(phase::PROVISIONED, &e))?
            .ok_or_else(|| blocked(format!("{field}: Secret {}/{} not found", r.namespace, r.name)))?;
        let bytes = secret.data.and_then(|mut d| d.remove(&r.key)).ok_or_else(|| {
            blocked(format!(
                "{field}: Secret {}/{} has no key {}",
                r.namespace, r.name, r.key
            ))
        })?;
        let key = ClientKey::from_text(&bytes.0)
            .map_err(|e| halt_for(ErrorKind::InvalidInput, format!("{field}: {e}")))?;
        let mut config = SshConfig::new(
            ssh.host.clone(),
            u16::try_from(ssh.port).unwrap_or(22),
            ssh.user.clone(),
            &ssh.host_key_fingerprint,
            ssh.max_sessions.max(1) as usize,
        )
        .map_err(|e| {
            halt_for(
                ErrorKind::InvalidInput,
                format!("ProxmoxNode {node} spec.ssh: {e}"),
            )
        })?;
        config.mode = match ssh.mode {
            SshMode::Direct => HostMode::Direct,
            SshMode::HostCommand => HostMode::HostCommand,
        };
        Ok(self.pool.host(&node, config, key))
    }
}

/// The steps recorded as done; with `templateUpdates: Ignore`, a step done once counts as done
/// whatever its digest is now.
fn recorded(run: &Run<'_>, steps_now: &ResolvedProvisioning) -> Vec<(String, String)> {
    let done: Vec<(String, String)> = run
        .status
        .provisioned_steps
        .iter()
        .map(|s| (s.name.clone(), s.digest.clone()))
        .collect();
    if run.ct.spec.update_strategy.template_updates != TemplateUpdatePolicy::Ignore {
        return done;
    }
    steps(steps_now)
        .into_iter()
        .filter(|s| done.iter().any(|(name, _)| *name == s.name))
        .map(|s| (s.name, s.digest))
        .chain(done.iter().cloned())
        .collect()
}

fn record(run: &mut Run<'_>, done: &[(String, String)]) {
    run.status.provisioned_steps = done
        .iter()
        .map(|(name, digest)| ProvisionedStep {
            name: name.clone(),
            digest: digest.clone(),
        })
        .collect();
}

#[async_trait]
impl Provisioner for SshProvisioner {
    async fn provision(
        &self,
        run: &mut Run<'_>,
        target: &Target,
        vmid: u32,
        resolved: &ResolvedProvisioning,
    ) -> Result<(), Halt> {
        let recorded = recorded(run, resolved);
        let todo = plan(resolved, &recorded);
        if todo.is_empty() {
            run.status.applied_template_digest =
                target.template.status.as_ref().and_then(|s| s.digest.clone());
            let n = run.status.provisioned_steps.len();
            run.pass(phase::PROVISIONED, "Provisioned", format!("{n} steps done"));
            return Ok(());
        }
        let host = self.host(run, target).await?;
        let pct = PctTarget::new(host, vmid).fenced(run.fence());
        let names: Vec<String> = todo.iter().map(|s| s.name.clone()).collect();
        let operation = SshOperation {
            operation: "provision container",
            node: target.pve_node().to_string(),
            vmid,
            params: serde_json::json!({"steps": todo.iter().map(|s| serde_json::json!({"name": s.name, "digest": s.digest})).collect::<Vec<_>>()}),
        };
        let options = &self.options;
        let outcome = run
            .actor()
            .ssh("provision", operation, || {
                crate::provision::provision(&pct, resolved, &recorded, options)
            })
            .await;
        match outcome {
            Ok(report) => {
                record(run, &report.done);
                run.status.applied_template_digest =
                    target.template.status.as_ref().and_then(|s| s.digest.clone());
                run.corrected
                    .extend(report.ran.iter().map(|s| format!("provisioned {s}")));
                run.pass(
                    phase::PROVISIONED,
                    "Provisioned",
                    format!("ran {}; {} skipped", report.ran.join(", "), report.skipped.len()),
                );
                Ok(())
            }
            Err(ActError::Call(failure)) => {
                record(run, &failure.report.done);
                run.save().await?;
                tracing::warn!(steps = ?names, step = failure.error.step(), kind = failure.error.kind().label(), "provisioning step failed");
                Err(halt_for(failure.error.kind(), failure.error.to_string()))
            }
            Err(other) => Err(Halt::not_acted(phase::PROVISIONED, &other).expect("a call not made")),
        }
    }

    async fn observe(
        &self,
        run: &mut Run<'_>,
        target: &Target,
        vmid: u32,
        services: &[ServiceSpec],
    ) -> Result<(), Halt> {
        let host = self.host(run, target).await?;
        let pct = PctTarget::new(host, vmid);
        let found = discover(&pct, services, self.options.command_timeout)
            .await
            .map_err(|e| halt_for(e.kind(), format!("discovering services: {e}")))?;
        run.status.services = found
            .services
            .iter()
            .map(|s| ServiceStatus {
                name: s.unit.clone(),
                active_state: s.active_state.clone(),
                sub_state: s.sub_state.clone(),
                listening_ports: s
                    .ports
                    .iter()
                    .filter(|p| p.listening == Some(true))
                    .map(|p| i32::from(p.port))
                    .collect(),
            })
            .collect();
        if found.credentials.is_empty() {
            return Ok(());
        }
        let mut data = BTreeMap::new();
        for (service, creds) in &found.credentials {
            for (key, value) in creds.expose() {
                data.insert(secret_key(service, key), value.clone());
            }
        }
        let name = format!("{}-credentials", run.name);
        write_credentials(run, &name, data).await?;
        run.status.credentials_secret_ref = Some(LocalObjectRef { name });
        Ok(())
    }
}

/// A valid Secret key (`[-._a-zA-Z0-9]+`) for a service's variable: unit names carry `@` and
/// `:`, which become `_`.
pub fn secret_key(service: &str, var: &str) -> String {
    format!("{service}.{var}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the credentials Secret, owned by the container (garbage-collected with it). A Secret
/// of that name someone else owns is never taken over: `SecretConflict`.
async fn write_credentials(run: &Run<'_>, name: &str, data: BTreeMap<String, String>) -> Result<(), Halt> {
    let api = Api::<KubeSecret>::namespaced(run.ctx.kube.clone(), &run.namespace);
    let existing = api
        .get_metadata_opt(name)
        .await
        .map_err(|e| Halt::kube(phase::DISCOVERED, &e))?;
    if let Some(existing) = existing {
        let ours = existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == run.uid && o.controller == Some(true));
        if !ours {
            return Err(Halt::new(
                phase::DISCOVERED,
                "SecretConflict",
                format!(
                    "Secret {name} exists and is not owned by this LxcContainer; not overwriting it \
                     (delete or rename it to let the operator write the credentials)"
                ),
                HaltKind::Stalled,
            ));
        }
    }
    let owner = OwnerReference {
        api_version: "lxc.infrahaus.dev/v1alpha1".into(),
        kind: "LxcContainer".into(),
        name: run.name.clone(),
        uid: run.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": run.namespace, "ownerReferences": [owner],
                     "labels": {"app.kubernetes.io/managed-by": "lxc-operator"}},
        "type": "Opaque", "stringData": data
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .map(|_| ())
    .map_err(|e| Halt::kube(phase::DISCOVERED, &e))
}

/// How often a Ready container's declared services are looked at again.
pub const SERVICE_REFRESH: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys_are_valid_secret_keys() {
        assert_eq!(secret_key("postgresql", "PASSWORD"), "postgresql.PASSWORD");
        assert_eq!(secret_key("getty@tty1.service", "A:B"), "getty_tty1.service.A_B");
        let valid =
            |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        assert!(valid(&secret_key("a b/c@d:e", "ü$x")));
    }
}

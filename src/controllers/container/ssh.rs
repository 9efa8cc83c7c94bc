//! The Provision phase over SSH: the node's `spec.ssh` and its key Secret become a pooled
//! [`SshHost`]; the steps not yet done run inside the container through `pct`, each run written
//! ahead to the audit trail (its failure, with the output tail, too); progress is recorded in
//! status. Then the declared services are read and service credentials go into a Secret owned
//! by the container — and nowhere else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use tokio::task::JoinHandle;

use super::provisioner::Provisioner;
use super::run::{Run, phase};
use super::target::Target;
use crate::audit::{AuditedError, AuditedValue};
use crate::cluster::fence::Fenced;
use crate::controllers::act::{ActError, Actor, SshOperation};
use crate::controllers::halt::{Halt, HaltKind, backoff};
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

/// Provisions over SSH with one pooled connection per node. The steps run as background work
/// holding the container's lock: the reconcile that starts them returns at once (no worker
/// waits out a long script), reconciles meanwhile find the lock taken, and the first one after
/// the work ended collects its outcome into status.
pub struct SshProvisioner {
    pub pool: SshPool,
    pub options: ProvisionOptions,
    /// A step that failed this many times in a row (same digest) is not run again until it
    /// changes.
    pub max_attempts: u32,
    jobs: std::sync::Mutex<HashMap<String, JoinHandle<JobOutcome>>>,
    /// Per container uid: the step that failed last and how.
    failures: std::sync::Mutex<HashMap<String, Failures>>,
}

/// The failures in a row of one step (at one digest).
#[derive(Clone)]
struct Failures {
    /// The step (name, digest) that failed, or `None` for the bookkeeping around the steps
    /// (connecting, the marker) that no change of a step mends.
    step: Option<(String, String)>,
    /// Failures in a row of any kind (the backoff), and of the step itself (exit code or
    /// timeout: the strikes that give it up).
    count: u32,
    strikes: u32,
    /// When the last one ended, and the halt it gave.
    at: std::time::Instant,
    last: Halt,
}

/// Failures in a row after which a step is not run again until it changes.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

impl Default for SshProvisioner {
    fn default() -> Self {
        Self {
            pool: SshPool::default(),
            options: ProvisionOptions::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            jobs: Default::default(),
            failures: Default::default(),
        }
    }
}

/// What a background run of steps ended with: the steps it was given, and the audited outcome.
struct JobOutcome {
    todo: Vec<(String, String)>,
    result: Result<ProvisionReport, ActError<ProvisionFailure>>,
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
        Ok(self.pool.host(&node, config, key, run.ctx.observer.clone()))
    }
}

impl SshProvisioner {
    fn running(&self, uid: &str) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .is_some_and(|j| !j.is_finished())
    }

    /// The container's background run, taken out once it ended.
    fn finished(&self, uid: &str) -> Option<JoinHandle<JobOutcome>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.get(uid) {
            Some(j) if j.is_finished() => jobs.remove(uid),
            _ => None,
        }
    }

    /// The halt for a container whose provisioning keeps failing: a step among `todo` given up
    /// after `max_attempts` strikes in a row, else the last failure held for its retry delay
    /// (the condition keeps saying it: no run starts, and no status flaps, before then). A step
    /// that changed since it failed is tried at once.
    fn held_back(&self, uid: &str, todo: &[(String, String)]) -> Option<Halt> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let f = failures.get(uid)?;
        if let Some(step) = &f.step {
            if !todo.contains(step) {
                return None;
            }
            if f.strikes >= self.max_attempts {
                return Some(gave_up(&step.0, f.strikes, &f.last.message));
            }
        }
        let hold = match f.last.kind {
            HaltKind::Failed => Duration::from_secs((30 * u64::from(f.count)).min(300)),
            HaltKind::Stalled => Duration::from_secs(600),
            _ => backoff(f.count),
        };
        let due = hold.saturating_sub(f.at.elapsed());
        (!due.is_zero()).then(|| {
            let mut halt = f.last.clone();
            if !matches!(halt.kind, HaltKind::Failed | HaltKind::Stalled) {
                halt.kind = HaltKind::Wait(due);
            }
            halt
        })
    }

    /// Records a failure for `uid` ending in `halt`, of `step` when it was one of the plan's;
    /// `strike` when the step itself failed. Returns the strikes in a row.
    fn count_failure(&self, uid: &str, step: Option<(String, String)>, strike: bool, halt: &Halt) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (count, strikes) = match failures.get(uid) {
            Some(f) if f.step == step => (f.count + 1, f.strikes + u32::from(strike)),
            _ => (1, u32::from(strike)),
        };
        failures.insert(
            uid.to_string(),
            Failures {
                step,
                count,
                strikes,
                at: std::time::Instant::now(),
                last: halt.clone(),
            },
        );
        strikes
    }

    /// Records what an ended background run did, and says how it went.
    async fn conclude(
        &self,
        run: &mut Run<'_>,
        target: &Target,
        job: JoinHandle<JobOutcome>,
    ) -> Result<(), Halt> {
        let outcome = match job.await {
            Ok(outcome) => outcome,
            Err(e) => {
                return Err(Halt::new(
                    phase::PROVISIONED,
                    "ProvisioningInterrupted",
                    format!("the provisioning run ended without an outcome ({e}); running again"),
                    HaltKind::Transient,
                ));
            }
        };
        match outcome.result {
            Ok(report) => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&run.uid);
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
                let step = failure.error.step().to_string();
                tracing::warn!(
                    step,
                    kind = failure.error.kind().label(),
                    "provisioning step failed"
                );
                let halt = halt_for(failure.error.kind(), failure.error.to_string());
                if failure.error.kind() == ErrorKind::Fenced {
                    // Not a failure of provisioning: the next leader carries on.
                    return Err(halt);
                }
                let strike = matches!(
                    failure.error.kind(),
                    ErrorKind::CommandFailed | ErrorKind::Timeout
                );
                let planned = outcome.todo.iter().find(|(s, _)| *s == step).cloned();
                let strike = strike && planned.is_some();
                let strikes = self.count_failure(&run.uid, planned, strike, &halt);
                if strike && strikes >= self.max_attempts {
                    return Err(gave_up(&step, strikes, &halt.message));
                }
                Err(halt)
            }
            Err(other) => Err(Halt::not_acted(phase::PROVISIONED, &other).expect("a call not made")),
        }
    }
}

/// A step that keeps failing: `Stalled` until it (or its template) changes.
fn gave_up(step: &str, n: u32, last: &str) -> Halt {
    Halt::new(
        phase::PROVISIONED,
        "StepFailed",
        format!("step {step} failed {n} times in a row; not run again until it changes; last: {last}"),
        HaltKind::Stalled,
    )
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
        if let Some(job) = self.finished(&run.uid) {
            return self.conclude(run, target, job).await;
        }
        if self.running(&run.uid) {
            return Err(Halt::wait(
                phase::PROVISIONED,
                "Provisioning",
                "provisioning steps run in the background",
                Duration::from_secs(2),
            ));
        }
        let recorded = recorded(run, resolved);
        let todo = plan(resolved, &recorded);
        if todo.is_empty() {
            run.status.applied_template_digest =
                target.template.status.as_ref().and_then(|s| s.digest.clone());
            let n = run.status.provisioned_steps.len();
            run.pass(phase::PROVISIONED, "Provisioned", format!("{n} steps done"));
            return Ok(());
        }
        let todo: Vec<(String, String)> = todo.into_iter().map(|s| (s.name, s.digest)).collect();
        if let Some(halt) = self.held_back(&run.uid, &todo) {
            return Err(halt);
        }
        let Some(lock) = run.lock_handle.clone() else {
            return Err(Halt::new(
                phase::PROVISIONED,
                "CoordinationUnavailable",
                "provisioning runs only under the container's lock",
                HaltKind::Transient,
            ));
        };
        let host = self.host(run, target).await?;
        let pct = PctTarget::new(host, vmid).fenced(run.fence());
        let names: Vec<&str> = todo.iter().map(|(n, _)| n.as_str()).collect();
        let message = format!("running {} in the background", names.join(", "));
        let operation = SshOperation {
            operation: "provision container",
            node: target.pve_node().to_string(),
            vmid,
            params: serde_json::json!({"steps": todo.iter().map(|(n, d)| serde_json::json!({"name": n, "digest": d})).collect::<Vec<_>>()}),
        };
        let (shared, ct) = (run.ctx.shared.clone(), run.ct.clone());
        let (resolved, options) = (resolved.clone(), self.options);
        let job = tokio::spawn(async move {
            let actor = Actor::new(&shared, &ct, Some(&lock));
            let work = actor.ssh("provision", operation, || {
                crate::provision::provision(&pct, &resolved, &recorded, &options)
            });
            let result = tokio::select! {
                biased;
                // A lapsed leadership stops the work at once, like a reconcile's.
                () = shared.leadership.lapsed() => Err(ActError::Fenced(Fenced::NotLeading)),
                result = work => result,
            };
            drop(actor);
            let report = match &result {
                Ok(report) | Err(ActError::Call(ProvisionFailure { report, .. })) => Some(report),
                Err(_) => None,
            };
            if let (Some(o), Some(report)) = (&shared.observer, report) {
                for (kind, outcome) in &report.outcomes {
                    o.provision_step(kind, outcome);
                }
            }
            if let Ok(lock) = Arc::try_unwrap(lock)
                && let Err(e) = lock.release().await
            {
                tracing::warn!(error = %e, "could not release the container lock (it expires)");
            }
            JobOutcome { todo, result }
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run.uid.clone(), job);
        Err(Halt::wait(
            phase::PROVISIONED,
            "Provisioning",
            message,
            Duration::from_secs(1),
        ))
    }

    fn cancel(&self, uid: &str) {
        if let Some(job) = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(uid) {
            job.abort();
        }
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
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

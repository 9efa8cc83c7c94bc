//! One reconcile's working state: the status being built, how a phase stops the walk
//! ([`Halt`]), and the helpers every phase uses — conditions, the audit intent, Events and
//! the status write that must land before the next Proxmox call.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::context::ContainerCtx;
use crate::audit::{Guarded, Intent};
use crate::controllers::node::reconcile::FIELD_MANAGER;
use crate::crd::container::{LxcContainer, LxcContainerStatus};
use crate::proxmox::{self, ErrorClass};
use crate::status::conditions::{Desired, is_true, set, types};

/// The per-phase condition types.
pub mod phase {
    pub const RESOLVED: &str = "Resolved";
    pub const PLACED: &str = "Placed";
    pub const VMID_ALLOCATED: &str = "VmidAllocated";
    pub const CREATED: &str = "Created";
    pub const CONFIGURED: &str = "Configured";
    pub const POWERED: &str = "Powered";
    pub const PROVISIONED: &str = "Provisioned";
    pub const DISCOVERED: &str = "Discovered";
}

/// How a halted walk goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaltKind {
    /// Work is under way (a task runs, a lock is held): look again after the delay.
    Wait(Duration),
    /// Something else must change first (a node, a template); watches bring it back.
    Blocked,
    /// Only a change of the spec (or a person) helps.
    Stalled,
    /// Worth retrying: per-object backoff with jitter.
    Transient,
    /// Anything else: retried with a capped delay.
    Failed,
}

/// Why the walk stopped at a phase: the phase's condition goes false with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    pub condition: &'static str,
    pub reason: String,
    pub message: String,
    pub kind: HaltKind,
}

impl Halt {
    pub fn new(condition: &'static str, reason: &str, message: impl Into<String>, kind: HaltKind) -> Self {
        Self {
            condition,
            reason: reason.to_string(),
            message: message.into(),
            kind,
        }
    }

    pub fn wait(condition: &'static str, reason: &str, message: impl Into<String>, after: Duration) -> Self {
        Self::new(condition, reason, message, HaltKind::Wait(after))
    }

    /// A Proxmox failure, sorted by its class.
    pub fn proxmox(condition: &'static str, error: &proxmox::Error) -> Self {
        let class = error.class();
        let (reason, kind) = match class {
            ErrorClass::Connect => ("ProxmoxUnreachable", HaltKind::Transient),
            ErrorClass::CircuitOpen => ("CircuitOpen", HaltKind::Transient),
            ErrorClass::Server => ("ProxmoxError", HaltKind::Transient),
            ErrorClass::Locked => ("Locked", HaltKind::Wait(Duration::from_secs(2))),
            ErrorClass::Tls => ("TLSError", HaltKind::Failed),
            ErrorClass::Unauthorized => ("AuthenticationFailed", HaltKind::Failed),
            ErrorClass::Forbidden => ("PermissionDenied", HaltKind::Failed),
            ErrorClass::NotFound => ("NotFound", HaltKind::Failed),
            ErrorClass::AlreadyExists => ("Conflict", HaltKind::Stalled),
            ErrorClass::InvalidParameters => ("InvalidParameters", HaltKind::Stalled),
            ErrorClass::TaskFailed => ("TaskFailed", HaltKind::Transient),
        };
        let mut message = error.to_string();
        if !error.log_tail().is_empty() {
            message = format!("{message}; task log: {}", error.log_tail().join(" | "));
        }
        Self::new(condition, reason, message, kind)
    }

    /// A guarded call that failed, or was not made because the audit trail is away.
    pub fn guarded(condition: &'static str, error: &Guarded<proxmox::Error>) -> Self {
        match error {
            Guarded::Call(e) => Self::proxmox(condition, e),
            Guarded::AuditUnavailable(e) => Self::new(
                condition,
                crate::audit::AUDIT_UNAVAILABLE_REASON,
                format!("audit store unavailable, Proxmox not called: {e}"),
                HaltKind::Transient,
            ),
        }
    }

    pub fn kube(condition: &'static str, error: &kube::Error) -> Self {
        Self::new(
            condition,
            "KubernetesError",
            error.to_string(),
            HaltKind::Transient,
        )
    }
}

/// One reconcile's state.
pub struct Run<'a> {
    pub ct: &'a LxcContainer,
    pub ctx: &'a ContainerCtx,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    /// The status as read (merged with what this process wrote last).
    pub before: LxcContainerStatus,
    /// The status being built.
    pub status: LxcContainerStatus,
    pub now: Timestamp,
    /// The container was Ready for this generation when the reconcile began: whatever the
    /// walk corrects now is drift.
    pub was_ready: bool,
    /// Mutating calls made in this reconcile (for drift Events).
    pub corrected: Vec<String>,
    /// The status last written by this reconcile.
    written: Option<LxcContainerStatus>,
}

impl<'a> Run<'a> {
    pub fn new(ct: &'a LxcContainer, ctx: &'a ContainerCtx) -> Self {
        let uid = ct.metadata.uid.clone().unwrap_or_default();
        let mut status = ct.status.clone().unwrap_or_default();
        if let Some(m) = ctx.remembered(&uid) {
            status.vmid = m.vmid.or(status.vmid);
            status.node = m.node.or(status.node);
            status.task = m.task;
        }
        let generation = ct.metadata.generation;
        let was_ready = is_true(&status.conditions, types::READY) && status.observed_generation == generation;
        Self {
            ct,
            ctx,
            name: ct.name_any(),
            namespace: ct.namespace().unwrap_or_default(),
            uid,
            generation,
            before: status.clone(),
            status,
            now: Timestamp::now(),
            was_ready,
            corrected: Vec::new(),
            written: None,
        }
    }

    /// Marks a phase satisfied.
    pub fn pass(&mut self, condition: &'static str, reason: &str, message: impl Into<String>) {
        set(
            &mut self.status.conditions,
            Desired {
                type_: condition,
                status: true,
                reason,
                message: message.into(),
            },
            self.generation,
            self.now,
        );
    }

    /// Records a halted phase.
    pub fn fail(&mut self, halt: &Halt) {
        set(
            &mut self.status.conditions,
            Desired {
                type_: halt.condition,
                status: false,
                reason: &halt.reason,
                message: halt.message.chars().take(2048).collect(),
            },
            self.generation,
            self.now,
        );
    }

    /// Whether `condition` was true when the reconcile began.
    pub fn was(&self, condition: &str) -> bool {
        is_true(&self.before.conditions, condition)
    }

    /// The audit intent of a call this reconcile is about to make.
    pub fn intent(&self, phase: &str, operation: &str, node: &str, params: serde_json::Value) -> Intent {
        Intent {
            actor: self.ctx.actor.clone(),
            object_kind: "LxcContainer".into(),
            object_namespace: Some(self.namespace.clone()),
            object_name: self.name.clone(),
            object_uid: self.uid.clone(),
            generation: self.generation.unwrap_or_default(),
            phase: phase.into(),
            operation: operation.into(),
            node: Some(node.to_string()),
            vmid: self.status.vmid,
            params,
        }
    }

    /// Publishes an Event about the container (failures to publish are logged only).
    pub async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        let Some(recorder) = &self.ctx.recorder else {
            return;
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1024).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &self.ct.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish Event");
        }
    }

    /// Writes the status now (before a call whose result must survive a crash) and remembers
    /// its identity fields.
    pub async fn save(&mut self) -> Result<(), Halt> {
        // Not any one phase's failure: the overall condition says it.
        self.flush().await.map_err(|e| Halt::kube(types::READY, &e))
    }

    /// The Proxmox client of `node` (shared cache); a failure halts at `condition`.
    pub async fn client_for(
        &self,
        node: &crate::crd::ProxmoxNode,
        condition: &'static str,
    ) -> Result<crate::proxmox::ProxmoxClient, Halt> {
        self.ctx
            .clients
            .get(&self.ctx.kube, node, self.ctx.metrics.clone())
            .await
            .map_err(|e| Halt::new(condition, e.reason(), e.to_string(), HaltKind::Transient))
    }

    /// Writes the status if it differs from the last one written (or read).
    pub async fn flush(&mut self) -> Result<(), kube::Error> {
        let last = self.written.as_ref().or(self.ct.status.as_ref());
        if last != Some(&self.status) {
            write_status(self.ctx, self.ct, &self.status).await?;
            self.written = Some(self.status.clone());
        }
        self.remember();
        Ok(())
    }

    pub fn remember(&self) {
        let (vmid, node, task) = (
            self.status.vmid,
            self.status.node.clone(),
            self.status.task.clone(),
        );
        self.ctx.remember(&self.uid, |m| {
            m.vmid = vmid;
            m.node = node;
            m.task = task;
        });
    }
}

/// Writes `status` with server-side apply.
pub async fn write_status(
    ctx: &ContainerCtx,
    ct: &LxcContainer,
    status: &LxcContainerStatus,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer", "status": status
    });
    Api::<LxcContainer>::namespaced(ctx.kube.clone(), &ct.namespace().unwrap_or_default())
        .patch_status(
            &ct.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
}

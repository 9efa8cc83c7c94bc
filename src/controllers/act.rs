//! The one audited call. Every change outside Kubernetes — a mutating Proxmox call, an SSH
//! command in a container — goes through an [`Actor`]: the intent is derived from the typed
//! request itself (the [`Mutation`] that is sent, or the [`SshOperation`] that runs; secret
//! parameters redacted), both fences are checked (this replica leads, and still holds the
//! object's lock), the intent is written ahead, the fences are checked again right before the
//! call, and the outcome is recorded. No intent, no call; no leadership or lock, no call.

use std::future::Future;

use kube::{Resource, ResourceExt};

use crate::audit::redact::form_params;
use crate::audit::{AuditError, AuditedError, AuditedValue, Guarded, Intent};
use crate::cluster::Shared;
use crate::cluster::fence::{self, Fenced};
use crate::coordination::LockGuard;
use crate::proxmox::{self, Mutation, ProxmoxClient, Upid};

/// Why an audited call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ActError<E> {
    /// Not made: this replica may not act.
    #[error("{0}")]
    Fenced(Fenced),
    /// Not made: its intent could not be written.
    #[error("audit store unavailable: {0}")]
    AuditUnavailable(AuditError),
    /// Made, and failed.
    #[error("{0}")]
    Call(E),
}

/// An SSH operation in a container, as the audit trail records it.
#[derive(Debug, Clone)]
pub struct SshOperation {
    /// E.g. `provision container`.
    pub operation: &'static str,
    /// The Proxmox node.
    pub node: String,
    pub vmid: u32,
    /// What runs (never a secret value: step names and digests).
    pub params: serde_json::Value,
}

/// The object on whose behalf calls are made, and the lock it is reconciled under.
pub struct Actor<'a> {
    shared: &'a Shared,
    kind: String,
    namespace: Option<String>,
    name: String,
    uid: String,
    generation: i64,
    lock: Option<&'a LockGuard>,
}

/// A call's failure, or the fence closing between the intent and the call.
#[derive(Debug, thiserror::Error)]
enum Fenceable<E> {
    #[error("{0}")]
    Fenced(Fenced),
    #[error("{0}")]
    Call(E),
}

impl<E: AuditedError> AuditedError for Fenceable<E> {
    fn audit_class(&self) -> String {
        match self {
            Self::Fenced(_) => "fenced".into(),
            Self::Call(e) => e.audit_class(),
        }
    }

    fn audit_upid(&self) -> Option<String> {
        match self {
            Self::Fenced(_) => None,
            Self::Call(e) => e.audit_upid(),
        }
    }
}

impl<'a> Actor<'a> {
    /// Acts for `object`; `lock` is the object's lock when the kind takes one.
    pub fn new<K: Resource<DynamicType = ()>>(
        shared: &'a Shared,
        object: &K,
        lock: Option<&'a LockGuard>,
    ) -> Self {
        Self {
            shared,
            kind: K::kind(&()).into_owned(),
            namespace: object.namespace(),
            name: object.name_any(),
            uid: object.meta().uid.clone().unwrap_or_default(),
            generation: object.meta().generation.unwrap_or_default(),
            lock,
        }
    }

    /// The object's lock as a cloneable handle, if it is held.
    pub fn lock_watch(&self) -> Option<crate::coordination::LockWatch> {
        self.lock.map(LockGuard::watch)
    }

    /// Whether this process may act for the object right now.
    pub fn fence(&self) -> Result<(), Fenced> {
        fence::check(&self.shared.leadership, self.lock)
    }

    fn intent(
        &self,
        phase: &str,
        operation: String,
        node: &str,
        vmid: Option<u32>,
        params: serde_json::Value,
    ) -> Intent {
        Intent {
            actor: self.shared.actor.clone(),
            object_kind: self.kind.clone(),
            object_namespace: self.namespace.clone(),
            object_name: self.name.clone(),
            object_uid: self.uid.clone(),
            generation: self.generation,
            phase: phase.into(),
            operation,
            node: Some(node.to_string()),
            vmid: vmid.map(i64::from),
            params,
        }
    }

    /// Sends `mutation` under the audit guard; a task-starting call answers with its UPID.
    pub async fn proxmox(
        &self,
        client: &ProxmoxClient,
        phase: &str,
        mutation: &Mutation,
    ) -> Result<Option<Upid>, ActError<proxmox::Error>> {
        let intent = self.intent(
            phase,
            mutation.operation(),
            mutation.node(),
            mutation.vmid(),
            form_params(&mutation.params()),
        );
        #[allow(clippy::disallowed_methods)] // the one place a mutation is sent
        self.guarded(intent, || client.mutate(mutation)).await
    }

    /// Like [`proxmox`](Self::proxmox) for a call that starts a task.
    pub async fn proxmox_task(
        &self,
        client: &ProxmoxClient,
        phase: &str,
        mutation: &Mutation,
    ) -> Result<Upid, ActError<proxmox::Error>> {
        match self.proxmox(client, phase, mutation).await? {
            Some(upid) => Ok(upid),
            None => Err(ActError::Call(proxmox::Error::Decode {
                operation: mutation.operation(),
                message: "no task in the answer".into(),
            })),
        }
    }

    /// Runs an SSH operation under the audit guard. `call` must itself check
    /// [`fence`](Self::fence) before each further command it sends.
    pub async fn ssh<T, E, F, Fut>(&self, phase: &str, op: SshOperation, call: F) -> Result<T, ActError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: AuditedValue,
        E: AuditedError,
    {
        let intent = self.intent(phase, op.operation.into(), &op.node, Some(op.vmid), op.params);
        self.guarded(intent, call).await
    }

    async fn guarded<T, E, F, Fut>(&self, intent: Intent, call: F) -> Result<T, ActError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: AuditedValue,
        E: AuditedError,
    {
        self.fence().map_err(ActError::Fenced)?;
        #[allow(clippy::disallowed_methods)] // the one place a call is guarded
        let result = self
            .shared
            .audit
            .guarded(&intent, || async move {
                // Writing the intent took time: the fences are checked again right before the call.
                self.fence().map_err(Fenceable::Fenced)?;
                call().await.map_err(Fenceable::Call)
            })
            .await;
        match result {
            Ok(value) => Ok(value),
            Err(Guarded::AuditUnavailable(e)) => Err(ActError::AuditUnavailable(e)),
            Err(Guarded::Call(Fenceable::Fenced(f))) => Err(ActError::Fenced(f)),
            Err(Guarded::Call(Fenceable::Call(e))) => Err(ActError::Call(e)),
        }
    }
}

//! The `ProxmoxNode` reconcile driver: hold (finalizers on the node and its Secrets) → due? →
//! connect and probe → observe (drift) → Ready → status, then requeue after the node's poll
//! interval; a changed credentials Secret (its resourceVersion, read each time) probes at once.
//! The Secrets a node holds are recorded in its status, so the operator never lists or watches
//! Secrets. A deleted node waits (`DeletionBlocked`) until no container is placed on it, then
//! lets go of its Secrets and itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::context::NodeCtx;
use super::finalize::{self, DELETION_BLOCKED, SECRET_FINALIZER, SecretKey};
use super::observe;
use super::probe::connect_and_probe;
use super::ready::next_status;
use crate::cluster::clients::ClientCache;
use crate::cluster::watches::SharedWatch;
use crate::controllers::metered::Metered;
use crate::crd::common::NamespacedSecretRef;
use crate::crd::node::{ProxmoxNode, ProxmoxNodeStatus};
use crate::status::apply::apply_status;
use crate::status::conditions::{Desired, set, types};

/// Errors that end a reconcile early (Proxmox failures are recorded in status instead).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("writing status of ProxmoxNode {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("setting finalizers for ProxmoxNode {name}: {source}")]
    Finalizer {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// How often a node whose deletion waits looks again at the containers placed on it.
const DELETION_RECHECK: Duration = Duration::from_secs(3);

/// One reconcile of a `ProxmoxNode`.
pub async fn reconcile(node: Arc<ProxmoxNode>, ctx: Arc<NodeCtx>) -> Result<Action, NodeError> {
    let mut metered = Metered::start(ctx.reconcile_metrics.clone(), "ProxmoxNode");
    let guarded = match node.metadata.deletion_timestamp {
        Some(_) => deleting(&ctx, &node).await.map(Err),
        None => hold(&ctx, &node).await.map(Ok),
    };
    let Held {
        secrets: held,
        credentials_version,
    } = match guarded {
        Ok(Ok(held)) => held,
        Ok(Err(action)) => {
            metered.success();
            return Ok(action);
        }
        Err(e) => {
            metered.error("KubernetesError");
            return Err(e);
        }
    };
    let poll = Duration::from_secs(node.spec.poll_interval_seconds.max(5) as u64);
    let recorded = node.status.as_ref().map(|s| &s.held_secrets);
    let version = match due(&ctx, &node, poll, &credentials_version) {
        Due::Now(version) => version,
        // Not probing now, but what the node holds changed: that is recorded at once.
        Due::In(wait) if recorded != Some(&held) => {
            let mut status = node.status.clone().unwrap_or_default();
            status.held_secrets = held;
            if let Err(source) = apply_status(&ctx.kube, node.as_ref(), &status).await {
                metered.error("KubernetesError");
                return Err(NodeError::Status {
                    name: node.name_any(),
                    source,
                });
            }
            metered.success();
            return Ok(Action::requeue(wait));
        }
        Due::In(wait) => {
            metered.success();
            return Ok(Action::requeue(wait));
        }
    };
    let outcome = connect_and_probe(&ctx, &node, version, poll).await;
    if let Ok(probe) = &outcome {
        observe::record(&ctx, &node, probe);
    }
    let mut status = next_status(&node, &outcome, Timestamp::now());
    status.held_secrets = held;
    publish_transitions(&ctx, &node, &status).await;
    if node.status.as_ref() != Some(&status) {
        let written = apply_status(&ctx.kube, node.as_ref(), &status).await;
        if let Err(source) = written {
            metered.error("KubernetesError");
            return Err(NodeError::Status {
                name: node.name_any(),
                source,
            });
        }
    }
    metered.success();
    Ok(Action::requeue(poll))
}

/// What a live node holds now, for its status, and its credentials Secret's resourceVersion
/// as read while taking hold of it (what its Proxmox client is built from).
struct Held {
    secrets: Vec<NamespacedSecretRef>,
    credentials_version: String,
}

/// A live node: its finalizer on it, ours on the Secrets it references, and released from the
/// Secrets it held before that no node references any more (a changed reference).
async fn hold(ctx: &NodeCtx, node: &ProxmoxNode) -> Result<Held, NodeError> {
    let failed = |source| NodeError::Finalizer {
        name: node.name_any(),
        source,
    };
    finalize::hold_node(&ctx.kube, node).await.map_err(failed)?;
    let creds = &node.spec.credentials_secret_ref;
    let mut credentials_version = String::new();
    let mut held = BTreeSet::new();
    for key in finalize::referenced_secrets(&node.spec) {
        let Some(secret) = finalize::secret_meta(&ctx.kube, &key).await.map_err(failed)? else {
            continue;
        };
        if key == (creds.namespace.clone(), creds.name.clone()) {
            credentials_version = secret.metadata.resource_version.clone().unwrap_or_default();
        }
        // A Secret being deleted takes no new finalizer (the API server refuses it); one that
        // already carries ours stays held.
        if secret.metadata.deletion_timestamp.is_none() {
            finalize::set_secret_finalizer(&ctx.kube, &secret, true)
                .await
                .map_err(failed)?;
        } else if !secret.finalizers().iter().any(|f| f == SECRET_FINALIZER) {
            continue;
        }
        held.insert(key);
    }
    let before = finalize::recorded(node);
    if ctx.nodes_listed.load(Ordering::Acquire) {
        // This node as it is now, with the others as the cache has them.
        let all = ctx.stores.nodes.state();
        let others = all
            .iter()
            .map(|n| n.as_ref())
            .filter(|n| n.name_any() != node.name_any());
        let released = finalize::secrets_to_release(before, others.chain([node]));
        release(ctx, released).await.map_err(failed)?;
    } else {
        // A release decided on a partial listing could free a Secret another node needs: what
        // was held stays recorded, for the next reconcile to decide.
        tracing::debug!(node = %node.name_any(), "nodes' cache not ready yet: Secret releases next time");
        held.extend(before);
    }
    Ok(Held {
        secrets: held
            .into_iter()
            .map(|(namespace, name)| NamespacedSecretRef { name, namespace })
            .collect(),
        credentials_version,
    })
}

/// Takes our finalizer off each of these Secrets (read again: the recorded list may be older).
async fn release(ctx: &NodeCtx, secrets: Vec<SecretKey>) -> Result<(), kube::Error> {
    for key in secrets {
        if let Some(secret) = finalize::secret_meta(&ctx.kube, &key).await? {
            tracing::info!(secret = %format!("{}/{}", key.0, key.1), "no ProxmoxNode references the Secret any more: finalizer released");
            finalize::set_secret_finalizer(&ctx.kube, &secret, false).await?;
        }
    }
    Ok(())
}

/// A deleted node: waits while containers are placed on it (`Ready=False`, `DeletionBlocked`,
/// naming them), then releases its Secrets and its finalizer. A deleted node is not probed
/// again (its client keeps serving the containers' own deletion).
async fn deleting(ctx: &NodeCtx, node: &ProxmoxNode) -> Result<Action, NodeError> {
    let name = node.name_any();
    let failed = |source| NodeError::Finalizer {
        name: name.clone(),
        source,
    };
    let containers_listed = ctx.stores.containers_listed(Duration::from_secs(5)).await;
    if !containers_listed || !ctx.nodes_listed.load(Ordering::Acquire) {
        // Deciding on a partial listing could let the node go under a container.
        return Ok(Action::requeue(DELETION_RECHECK));
    }
    let containers = ctx.stores.containers.state();
    let placed = finalize::placed_on(containers.iter().map(|c| c.as_ref()), &name);
    if placed.is_empty() {
        let mut held = finalize::recorded(node);
        held.extend(finalize::referenced_secrets(&node.spec));
        let all = ctx.stores.nodes.state();
        let others = all.iter().map(|n| n.as_ref()).filter(|n| n.name_any() != name);
        release(ctx, finalize::secrets_to_release(held, others))
            .await
            .map_err(failed)?;
        finalize::release_node(&ctx.kube, node).await.map_err(failed)?;
        tracing::info!(node = %name, "no LxcContainer is placed on the deleted ProxmoxNode: finalizer released");
        return Ok(Action::await_change());
    }
    let mut status = node.status.clone().unwrap_or_default();
    let blocked = Desired {
        type_: types::READY,
        status: false,
        reason: DELETION_BLOCKED,
        message: finalize::blocked_message(&placed),
    };
    set(
        &mut status.conditions,
        blocked,
        node.metadata.generation,
        Timestamp::now(),
    );
    publish_transitions(ctx, node, &status).await;
    if node.status.as_ref() != Some(&status) {
        apply_status(&ctx.kube, node, &status)
            .await
            .map_err(|source| NodeError::Status { name, source })?;
    }
    Ok(Action::requeue(DELETION_RECHECK))
}

/// Whether a probe is due: its status write comes back as a watch event, which must not probe
/// again before the poll interval unless the spec or the credentials Secret changed.
enum Due {
    /// Probe now, with a client built from this key (see [`ClientCache::key`]).
    Now(String),
    /// Not before this long.
    In(Duration),
}

fn due(ctx: &NodeCtx, node: &ProxmoxNode, poll: Duration, credentials_version: &str) -> Due {
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let key = ClientCache::key(node, credentials_version);
    let mut probed = ctx.probed.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, v)) = probed.get(&uid)
        && *v == key
        && at.elapsed() < poll
    {
        return Due::In(poll - at.elapsed());
    }
    probed.insert(uid, (Instant::now(), key.clone()));
    Due::Now(key)
}

async fn publish_transitions(ctx: &NodeCtx, node: &ProxmoxNode, status: &ProxmoxNodeStatus) {
    let Some(recorder) = &ctx.recorder else { return };
    let before = node
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let Some(after) = status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::status::conditions::types::READY)
    else {
        return;
    };
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let last = ctx
        .published
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        .cloned();
    if last.as_ref() == Some(&(after.status.clone(), after.reason.clone())) {
        return;
    }
    let old = before.iter().find(|c| c.type_ == after.type_);
    if let Some(event) = crate::status::events::transition_event(old, after, "Probe") {
        match recorder.publish(&event, &node.object_ref(&())).await {
            Ok(()) => {
                let seen = (after.status.clone(), after.reason.clone());
                ctx.published
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(uid, seen);
            }
            Err(e) => tracing::warn!(error = %e, "could not publish Event"),
        }
    }
}

fn error_policy(_node: Arc<ProxmoxNode>, error: &NodeError, _ctx: Arc<NodeCtx>) -> Action {
    tracing::warn!(%error, "ProxmoxNode reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// The controller, built but not running, with its cache.
pub struct Prepared {
    controller: Controller<ProxmoxNode>,
    /// The nodes' watch cache.
    pub store: Store<ProxmoxNode>,
    /// Whether the nodes' cache holds its first listing.
    nodes_listed: Arc<AtomicBool>,
}

/// Builds the controller on the nodes' shared watch. Secrets are not watched: a node reads the
/// metadata of the ones it references (and its client's credentials) when it reconciles.
pub fn prepare(nodes: &SharedWatch<ProxmoxNode>) -> Prepared {
    let controller = Controller::for_shared_stream(nodes.subscribe(), nodes.store.clone());
    let store = controller.store();
    Prepared {
        controller,
        store,
        nodes_listed: nodes.listed(),
    }
}

impl Prepared {
    /// Runs the controller until it is dropped or `shutdown` resolves.
    pub async fn run(
        self,
        mut ctx: NodeCtx,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        ctx.nodes_listed = self.nodes_listed;
        crate::controllers::drive(self.controller, reconcile, error_policy, ctx, shutdown).await;
    }
}

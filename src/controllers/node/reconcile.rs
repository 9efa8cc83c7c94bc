//! The `ProxmoxNode` reconcile driver: hold (finalizers on the node and its Secrets) → due? →
//! connect and probe → observe (drift) → Ready → status, then requeue after the node's poll
//! interval. A change to a Secret the node references re-checks it at once. A deleted node
//! waits (`DeletionBlocked`) until no container is placed on it, then lets go of its Secrets
//! and itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::context::{Listed, NodeCtx, SecretMetaStore};
use super::finalize::{self, DELETION_BLOCKED, SECRET_FINALIZER, SecretKey};
use super::observe;
use super::probe::connect_and_probe;
use super::ready::next_status;
use crate::cluster::clients::ConnectError;
use crate::cluster::watches::SharedWatch;
use crate::controllers::metered::Metered;
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
        Some(_) => deleting(&ctx, &node).await,
        None => hold(&ctx, &node).await.map(|()| None),
    };
    match guarded {
        Ok(None) => {}
        Ok(Some(action)) => {
            metered.success();
            return Ok(action);
        }
        Err(e) => {
            metered.error("KubernetesError");
            return Err(e);
        }
    }
    let poll = Duration::from_secs(node.spec.poll_interval_seconds.max(5) as u64);
    let version = match due(&ctx, &node, poll).await {
        Due::Now(version) => version,
        Due::In(wait) => {
            metered.success();
            return Ok(Action::requeue(wait));
        }
    };
    let outcome = connect_and_probe(&ctx, &node, version).await;
    if let Ok(probe) = &outcome {
        observe::record(&ctx, &node, probe);
    }
    let status = next_status(&node, &outcome, Timestamp::now());
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

/// A live node: its finalizer on it, ours on the Secrets it references, and released from the
/// Secrets no node references any more (a changed reference, a node gone).
async fn hold(ctx: &NodeCtx, node: &ProxmoxNode) -> Result<(), NodeError> {
    let failed = |source| NodeError::Finalizer {
        name: node.name_any(),
        source,
    };
    finalize::hold_node(&ctx.kube, node).await.map_err(failed)?;
    let Some(secrets) = &ctx.secrets else {
        return Ok(());
    };
    // The probe never waits for caches: until the nodes' and Secrets' caches hold their first
    // listing (a release decided on a partial one could free a Secret another node needs),
    // the Secrets are left for the next reconcile.
    if !ctx.listed.all() {
        tracing::debug!(node = %node.name_any(), "caches not ready yet: Secret finalizers next time");
        return Ok(());
    }
    for (ns, name) in finalize::referenced_secrets(&node.spec) {
        let found = secrets.get(&ObjectRef::new(&name).within(&ns));
        // A Secret being deleted takes no new finalizer (the API server refuses it).
        if let Some(secret) = found.filter(|s| s.metadata.deletion_timestamp.is_none()) {
            finalize::set_secret_finalizer(&ctx.kube, &secret, true)
                .await
                .map_err(failed)?;
        }
    }
    release_unneeded(ctx, secrets, None).await.map_err(failed)
}

/// Takes our finalizer off every Secret that no node (but `leaving`) references.
async fn release_unneeded(
    ctx: &NodeCtx,
    secrets: &SecretMetaStore,
    leaving: Option<&str>,
) -> Result<(), kube::Error> {
    let held: Vec<SecretKey> = secrets
        .state()
        .iter()
        .filter(|s| s.finalizers().iter().any(|f| f == SECRET_FINALIZER))
        .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
        .collect();
    let nodes = ctx.stores.nodes.state();
    for (ns, name) in finalize::secrets_to_release(held, nodes.iter().map(|n| n.as_ref()), leaving) {
        if let Some(secret) = secrets.get(&ObjectRef::new(&name).within(&ns)) {
            tracing::info!(secret = %format!("{ns}/{name}"), "no ProxmoxNode references the Secret any more: finalizer released");
            finalize::set_secret_finalizer(&ctx.kube, &secret, false).await?;
        }
    }
    Ok(())
}

/// A deleted node: waits while containers are placed on it (`Ready=False`, `DeletionBlocked`,
/// naming them), then releases its Secrets and its finalizer. `None` never: a deleted node is
/// not probed again (its client keeps serving the containers' own deletion).
async fn deleting(ctx: &NodeCtx, node: &ProxmoxNode) -> Result<Option<Action>, NodeError> {
    let name = node.name_any();
    let failed = |source| NodeError::Finalizer {
        name: name.clone(),
        source,
    };
    let containers_listed = ctx.stores.containers_listed(Duration::from_secs(5)).await;
    if !containers_listed || (ctx.secrets.is_some() && !ctx.listed.all()) {
        // Deciding on a partial listing could let the node go under a container.
        return Ok(Some(Action::requeue(DELETION_RECHECK)));
    }
    let containers = ctx.stores.containers.state();
    let placed = finalize::placed_on(containers.iter().map(|c| c.as_ref()), &name);
    if placed.is_empty() {
        if let Some(secrets) = &ctx.secrets {
            release_unneeded(ctx, secrets, Some(&name))
                .await
                .map_err(failed)?;
        }
        finalize::release_node(&ctx.kube, node).await.map_err(failed)?;
        tracing::info!(node = %name, "no LxcContainer is placed on the deleted ProxmoxNode: finalizer released");
        return Ok(Some(Action::await_change()));
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
    Ok(Some(Action::requeue(DELETION_RECHECK)))
}

/// Whether a probe is due: its status write comes back as a watch event, which must not probe
/// again before the poll interval unless the spec or the credentials Secret changed.
enum Due {
    /// Probe now, with a client built from this Secret version (read once here).
    Now(Result<String, ConnectError>),
    /// Not before this long.
    In(Duration),
}

async fn due(ctx: &NodeCtx, node: &ProxmoxNode, poll: Duration) -> Due {
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let version = ctx.clients.version(&ctx.kube, node).await;
    let key = version.as_ref().map(String::clone).unwrap_or_default();
    let mut probed = ctx.probed.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, v)) = probed.get(&uid)
        && *v == key
        && at.elapsed() < poll
    {
        return Due::In(poll - at.elapsed());
    }
    probed.insert(uid, (Instant::now(), key));
    Due::Now(version)
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

/// The controller, built but not running, with its caches.
pub struct Prepared {
    controller: Controller<ProxmoxNode>,
    /// The nodes' watch cache.
    pub store: Store<ProxmoxNode>,
    /// The Secrets' metadata cache.
    pub secrets: SecretMetaStore,
    /// Whether the nodes' and the Secrets' caches hold their first listing.
    listed: Listed,
}

/// Builds the controller: nodes (from the shared watch), plus the Secrets they reference —
/// watched by their metadata only, so the operator never holds Secret data it does not need
/// (it reads the ones a node references with a GET when it builds the node's client).
pub fn prepare(kube: kube::Client, nodes: &SharedWatch<ProxmoxNode>) -> Prepared {
    let controller = Controller::for_shared_stream(nodes.subscribe(), nodes.store.clone());
    let store = controller.store();
    let by_secret = store.clone();
    let (secrets, writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let listed = Listed {
        nodes: nodes.listed(),
        secrets: Default::default(),
    };
    let secrets_listed = listed.secrets.clone();
    let secret_changes = watcher(
        Api::<PartialObjectMeta<Secret>>::all(kube),
        watcher::Config::default(),
    )
    .default_backoff()
    // Only names, namespaces and finalizers matter here; managed fields would only cost memory.
    .modify(|secret| secret.metadata.managed_fields = None)
    .reflect(writer)
    .inspect(move |event| {
        if let Ok(watcher::Event::InitDone) = event {
            // Yielded after the store applied it.
            secrets_listed.store(true, std::sync::atomic::Ordering::Release);
        }
    })
    .touched_objects()
    .boxed();
    let controller = controller.watches_stream(secret_changes, move |secret| {
        let key = (secret.namespace().unwrap_or_default(), secret.name_any());
        by_secret
            .state()
            .into_iter()
            .filter(|n| finalize::referenced_secrets(&n.spec).contains(&key))
            .map(|n| ObjectRef::from_obj(n.as_ref()))
            .collect::<Vec<_>>()
    });
    Prepared {
        controller,
        store,
        secrets,
        listed,
    }
}

impl Prepared {
    /// Runs the controller until it is dropped or `shutdown` resolves.
    pub async fn run(
        self,
        mut ctx: NodeCtx,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        ctx.secrets = Some(self.secrets);
        ctx.listed = self.listed;
        crate::controllers::drive(self.controller, reconcile, error_policy, ctx, shutdown).await;
    }
}

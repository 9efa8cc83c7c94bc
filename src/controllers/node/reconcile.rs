//! The `ProxmoxNode` reconcile driver: due? → connect and probe → observe (drift) → Ready →
//! status, then requeue after the node's poll interval. A change to the credentials Secret
//! re-checks the node at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::context::NodeCtx;
use super::observe;
use super::probe::connect_and_probe;
use super::ready::next_status;
use crate::cluster::clients::ConnectError;
use crate::cluster::watches::SharedWatch;
use crate::controllers::metered::Metered;
use crate::crd::node::{ProxmoxNode, ProxmoxNodeStatus};
use crate::status::apply::apply_status;

/// Errors that end a reconcile early (Proxmox failures are recorded in status instead).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("writing status of ProxmoxNode {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// One reconcile of a `ProxmoxNode`.
pub async fn reconcile(node: Arc<ProxmoxNode>, ctx: Arc<NodeCtx>) -> Result<Action, NodeError> {
    let mut metered = Metered::start(ctx.reconcile_metrics.clone(), "ProxmoxNode");
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

/// The controller, built but not running, with its cache.
pub struct Prepared {
    controller: Controller<ProxmoxNode>,
    /// The nodes' watch cache.
    pub store: Store<ProxmoxNode>,
}

/// Builds the controller: nodes (from the shared watch), plus the credentials Secrets they
/// reference.
pub fn prepare(kube: kube::Client, nodes: &SharedWatch<ProxmoxNode>) -> Prepared {
    let secrets: Api<Secret> = Api::all(kube);
    let controller = Controller::for_shared_stream(nodes.subscribe(), nodes.store.clone());
    let store = controller.store();
    let by_secret = store.clone();
    let controller = controller.watches(secrets, watcher::Config::default(), move |secret: Secret| {
        let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        by_secret
            .state()
            .into_iter()
            .filter(|n| {
                n.spec.credentials_secret_ref.namespace == ns && n.spec.credentials_secret_ref.name == name
            })
            .map(|n| ObjectRef::from_obj(n.as_ref()))
            .collect::<Vec<_>>()
    });
    Prepared { controller, store }
}

impl Prepared {
    /// Runs the controller until it is dropped or `shutdown` resolves.
    pub async fn run(
        self,
        ctx: NodeCtx,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        crate::controllers::drive(self.controller, reconcile, error_policy, ctx, shutdown).await;
    }
}

//! The `LxcTemplate` reconcile driver: resolve the content and its digest → per Ready node:
//! observe, decide (pure), download → Ready (pure) → status. Requeues quickly while downloads
//! run.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

use super::context::TemplateCtx;
use super::download::{self, Refused};
use super::observe::observe;
use super::plan::{NodeAction, Observed, decide, node_status};
use super::ready::{NodeLine, next_status};
use crate::cluster::drift::ReadinessChanges;
use crate::cluster::watches::Watches;
use crate::controllers::act::Actor;
use crate::controllers::metered::Metered;
use crate::crd::node::ProxmoxNode;
use crate::crd::template::{LxcTemplate, LxcTemplateStatus, TemplateNodeStatus};
use crate::provision::content::resolve::{Scope, resolve};
use crate::status::apply::apply_status;
use crate::status::conditions::{is_true, types};

/// Errors that end a reconcile early.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// One reconcile of an `LxcTemplate`.
pub async fn reconcile(template: Arc<LxcTemplate>, ctx: Arc<TemplateCtx>) -> Result<Action, TemplateError> {
    let mut metered = Metered::start(ctx.reconcile_metrics.clone(), "LxcTemplate");
    ctx.stores.ready().await;
    let digest = resolve(&ctx.kube, &template.spec.provisioning, "spec", Scope::Cluster)
        .await
        .map(|r| r.digest())
        .map_err(|e| e.to_string());
    let actor = Actor::new(&ctx.shared, template.as_ref(), None);
    let mut lines = Vec::new();
    let ready = ready_nodes(&ctx);
    // A node not Ready (or not reachable yet) will wake this template when it turns Ready; the
    // short look again is a backstop for a wake-up the shared node stream can miss.
    let unseen = ready.len() < ctx.stores.nodes.state().len();
    for node in ready {
        lines.extend(on_node(&ctx, &actor, &template, &node).await);
    }
    let unseen = unseen || lines.len() < ctx.stores.nodes.state().len();
    if lines
        .iter()
        .any(|l| matches!(l.refused, Some(Refused::Fenced(_))))
    {
        // This replica may no longer act: it writes nothing.
        metered.error("Fenced");
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    // A download in flight, or one waiting for a task slot: look again soon.
    let downloading = lines
        .iter()
        .any(|l| l.downloading || matches!(l.refused, Some(Refused::Busy { .. })));
    let status = next_status(&template, digest, lines, Timestamp::now());
    publish_transition(&ctx, &template, &status).await;
    if template.status.as_ref() != Some(&status)
        && let Err(e) = apply_status(&ctx.kube, template.as_ref(), &status).await
    {
        metered.error("KubernetesError");
        return Err(e.into());
    }
    metered.success();
    Ok(Action::requeue(match (downloading, unseen) {
        (true, _) => Duration::from_secs(2),
        (false, true) => Duration::from_secs(15),
        (false, false) => Duration::from_secs(300),
    }))
}

/// The Ready nodes, from the cache.
fn ready_nodes(ctx: &TemplateCtx) -> Vec<Arc<ProxmoxNode>> {
    ctx.stores
        .nodes
        .state()
        .into_iter()
        .filter(|n| {
            n.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, types::READY))
        })
        .collect()
}

/// Observe, decide and act on one node; `None` when its client cannot be built.
async fn on_node(
    ctx: &TemplateCtx,
    actor: &Actor<'_>,
    template: &LxcTemplate,
    node: &ProxmoxNode,
) -> Option<NodeLine> {
    let name = node.name_any();
    let client = ctx
        .clients
        .current(&ctx.kube, node, ctx.proxmox_metrics.clone())
        .await
        .ok()?;
    let volid = &template.spec.os_template.volid;
    let key = (name.clone(), volid.clone());
    let previous = previous_line(template, &name, ctx.inflight(&key));
    let observed = observe(&client, &node.spec.node_name, volid, previous.as_ref()).await;
    let still = match &observed {
        Observed::Downloading { upid } => Some(upid.clone()),
        _ => None,
    };
    ctx.set_inflight(key.clone(), still);
    let retry_failed = previous.as_ref().is_none_or(|p| p.download_task.is_none());
    let action = decide(&observed, template.spec.os_template.source.as_ref(), retry_failed);
    let (started, action, refused) = match download::start(
        actor,
        &client,
        template,
        &node.spec.node_name,
        &action,
    )
    .await
    {
        Ok(started) => (started, action, None),
        Err(refused) => {
            if matches!(refused, Refused::Busy { .. }) {
                tracing::debug!(template = %template.name_any(), node = %name, message = %refused.message(), "download waits for a task slot");
            } else {
                tracing::warn!(template = %template.name_any(), node = %name, message = %refused.message(), "download not started");
            }
            let report = NodeAction::Report {
                message: refused.message(),
            };
            (None, report, Some(refused))
        }
    };
    if let Some(upid) = &started {
        tracing::info!(template = %template.name_any(), node = %name, task = %upid, "OS template download started");
        ctx.set_inflight(key, Some(upid.clone()));
    }
    Some(NodeLine {
        downloading: started.is_some() || matches!(observed, Observed::Downloading { .. }),
        status: node_status(&name, &observed, &action, started),
        refused,
    })
}

/// The node's line as the status shows it, or as this process remembers it: a download this
/// process started is awaited even when the cached status does not show it yet.
fn previous_line(template: &LxcTemplate, node: &str, inflight: Option<String>) -> Option<TemplateNodeStatus> {
    let recorded = template
        .status
        .as_ref()
        .and_then(|s| s.nodes.iter().find(|n| n.node == node))
        .cloned();
    let remembered = inflight.map(|upid| TemplateNodeStatus {
        node: node.to_string(),
        present: false,
        download_task: Some(upid),
        message: None,
    });
    match recorded {
        Some(p) if p.download_task.is_none() && remembered.is_some() => remembered,
        Some(p) => Some(p),
        None => remembered,
    }
}

async fn publish_transition(ctx: &TemplateCtx, template: &LxcTemplate, status: &LxcTemplateStatus) {
    let Some(recorder) = &ctx.recorder else { return };
    let Some(after) = status.conditions.iter().find(|c| c.type_ == types::READY) else {
        return;
    };
    let before = template
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY));
    if let Some(event) = crate::status::events::transition_event(before, after, "Reconcile")
        && let Err(e) = recorder
            .publish(&event, &kube::Resource::object_ref(template, &()))
            .await
    {
        tracing::warn!(error = %e, "could not publish Event");
    }
}

fn error_policy(_t: Arc<LxcTemplate>, error: &TemplateError, _ctx: Arc<TemplateCtx>) -> Action {
    tracing::warn!(%error, "LxcTemplate reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// The controller, built but not running, with its cache.
pub struct Prepared {
    controller: Controller<LxcTemplate>,
    /// The templates' watch cache.
    pub store: Store<LxcTemplate>,
}

/// Builds the controller (templates and nodes from the shared watches). Node changes (e.g. a
/// node turning Ready) re-check every template.
pub fn prepare(watches: &Watches) -> Prepared {
    let templates = &watches.templates;
    let controller = Controller::for_shared_stream(templates.subscribe(), templates.store.clone());
    let store = controller.store();
    let all = store.clone();
    let readiness = ReadinessChanges::default();
    let controller =
        controller.watches_shared_stream(watches.nodes.subscribe(), move |node: Arc<ProxmoxNode>| {
            // A probe rewrites the node's status every poll; only a change of readiness (or of
            // the spec) concerns the templates.
            if !readiness.changed(&node) {
                return Vec::new();
            }
            all.state()
                .into_iter()
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect::<Vec<_>>()
        });
    Prepared { controller, store }
}

impl Prepared {
    /// Runs the controller until it is dropped or `shutdown` resolves.
    pub async fn run(
        self,
        ctx: TemplateCtx,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        crate::controllers::drive(self.controller, reconcile, error_policy, ctx, shutdown).await;
    }
}

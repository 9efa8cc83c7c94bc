//! The `LxcTemplate` reconcile driver: resolve + digest → per Ready node: observe, decide,
//! act (start a download) → status. Requeues quickly while downloads run.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::plan::{NodeAction, Observed, decide, node_status};
use crate::audit::{AuditStore, Guarded, Intent};
use crate::controllers::node::reconcile::FIELD_MANAGER;
use crate::crd::node::ProxmoxNode;
use crate::crd::template::{LxcTemplate, LxcTemplateStatus, TemplateNodeStatus};
use crate::provision::content::resolve::{Scope, resolve};
use crate::proxmox::client::Metrics;
use crate::proxmox::tasks::TaskState;
use crate::proxmox::{ProxmoxClient, Upid};
use crate::status::conditions::{Desired, is_true, set, types};

/// What the template controller shares.
#[derive(Clone)]
pub struct TemplateCtx {
    pub kube: Client,
    /// Receives one observation per Proxmox call.
    pub metrics: Option<Arc<dyn Metrics>>,
    /// The nodes' Proxmox clients (shared with the node controller).
    pub clients: crate::controllers::node::connect::ClientCache,
    /// Downloads started by this process, by (node, volid): the watch cache may hand a
    /// reconcile an object whose status does not show the task yet, and a second download of
    /// the same template must never start.
    pub inflight: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), String>>>,
    /// Every download is written ahead to the audit trail; no trail, no download.
    pub audit: AuditStore,
    /// Who acts, for the audit trail.
    pub actor: String,
    /// Publishes Events on Ready transitions.
    pub recorder: Option<kube::runtime::events::Recorder>,
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

/// Errors that end a reconcile early.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// The storage and file name of a volid (`local`, `debian-12-...tar.zst`).
fn split_volid(volid: &str) -> (&str, &str) {
    let (storage, rest) = volid.split_once(':').unwrap_or(("local", volid));
    (storage, rest.trim_start_matches("vztmpl/"))
}

async fn observe(
    client: &ProxmoxClient,
    node: &str,
    volid: &str,
    previous: Option<&TemplateNodeStatus>,
) -> Observed {
    if let Some(upid) = previous
        .and_then(|p| p.download_task.as_deref())
        .and_then(Upid::parse)
    {
        match client.check_task(&upid).await {
            Ok(TaskState::Running) => {
                return Observed::Downloading {
                    upid: upid.to_string(),
                };
            }
            Ok(TaskState::Succeeded) => {}
            Err(e) if e.class() == crate::proxmox::ErrorClass::TaskFailed => {
                return Observed::DownloadFailed {
                    upid: upid.to_string(),
                    error: e.to_string(),
                };
            }
            // Not an answer about the task: it may still run, so keep waiting on it.
            Err(_) => {
                return Observed::Downloading {
                    upid: upid.to_string(),
                };
            }
        }
    }
    let (storage, _) = split_volid(volid);
    match client.storage_content(node, storage, Some("vztmpl")).await {
        Ok(content) if content.iter().any(|c| c.volid == volid) => Observed::Present,
        Ok(_) => Observed::Missing,
        Err(e) => Observed::Unknown { error: e.to_string() },
    }
}

/// How a node line of the status starts when the audit trail refused the download's intent.
const AUDIT_UNAVAILABLE_PREFIX: &str = "audit store unavailable";

async fn act(
    ctx: &TemplateCtx,
    client: &ProxmoxClient,
    node: &str,
    template: &LxcTemplate,
    action: &NodeAction,
) -> Result<Option<String>, String> {
    let volid = &template.spec.os_template.volid;
    let (storage, file) = split_volid(volid);
    let url = template
        .spec
        .os_template
        .source
        .as_ref()
        .and_then(|s| s.url.as_ref());
    let (operation, params) = match (action, url) {
        (NodeAction::DownloadAppliance { template }, _) => (
            "download appliance template",
            serde_json::json!({"storage": storage, "template": template}),
        ),
        (NodeAction::DownloadUrl, Some(url)) => (
            "download template from URL",
            serde_json::json!({"storage": storage, "url": url.url, "filename": file, "checksum": url.checksum}),
        ),
        _ => return Ok(None),
    };
    let intent = Intent {
        actor: ctx.actor.clone(),
        object_kind: "LxcTemplate".into(),
        object_namespace: None,
        object_name: template.name_any(),
        object_uid: template.metadata.uid.clone().unwrap_or_default(),
        generation: template.metadata.generation.unwrap_or_default(),
        phase: "download".into(),
        operation: operation.into(),
        node: Some(node.to_string()),
        vmid: None,
        params,
    };
    let started = ctx
        .audit
        .guarded(&intent, || async {
            match (action, url) {
                (NodeAction::DownloadAppliance { template }, _) => {
                    client.download_appliance(node, storage, template).await
                }
                (_, Some(url)) => {
                    let algorithm = serde_json::to_value(url.checksum_algorithm).ok();
                    let algorithm = algorithm
                        .as_ref()
                        .and_then(|v| v.as_str())
                        .unwrap_or("sha256")
                        .to_string();
                    client
                        .download_template_url(node, storage, &url.url, file, &url.checksum, &algorithm)
                        .await
                }
                _ => unreachable!("only download actions reach the call"),
            }
        })
        .await;
    match started {
        Ok(upid) => Ok(Some(upid.to_string())),
        Err(Guarded::AuditUnavailable(e)) => {
            Err(format!("{AUDIT_UNAVAILABLE_PREFIX}, download not started: {e}"))
        }
        Err(Guarded::Call(e)) => Err(e.to_string()),
    }
}

/// One reconcile of an `LxcTemplate`.
pub async fn reconcile(template: Arc<LxcTemplate>, ctx: Arc<TemplateCtx>) -> Result<Action, TemplateError> {
    let name = template.name_any();
    let now = Timestamp::now();
    let generation = template.metadata.generation;
    let mut status = template.status.clone().unwrap_or_default();
    let resolved = resolve(&ctx.kube, &template.spec.provisioning, "spec", Scope::Cluster).await;
    let digest = resolved.as_ref().map(|r| r.digest()).map_err(|e| e.to_string());

    let nodes = Api::<ProxmoxNode>::all(ctx.kube.clone())
        .list(&ListParams::default())
        .await?;
    let mut node_statuses = Vec::new();
    let mut downloading = false;
    for node in nodes.items.iter().filter(|n| {
        n.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, types::READY))
    }) {
        let node_name = node.name_any();
        let previous = status.nodes.iter().find(|n| n.node == node_name);
        let Ok(client) = ctx.clients.get(&ctx.kube, node, ctx.metrics.clone()).await else {
            continue;
        };
        let key = (node_name.clone(), template.spec.os_template.volid.clone());
        let inflight = ctx
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let remembered = previous
            .cloned()
            .or(inflight.clone().map(|upid| TemplateNodeStatus {
                node: node_name.clone(),
                present: false,
                download_task: Some(upid),
                message: None,
            }));
        let previous = match (previous, &inflight) {
            (Some(p), Some(_)) if p.download_task.is_none() => remembered.as_ref(),
            (Some(p), _) => Some(p),
            (None, _) => remembered.as_ref(),
        };
        let observed = observe(
            &client,
            &node.spec.node_name,
            &template.spec.os_template.volid,
            previous,
        )
        .await;
        {
            let mut map = ctx.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match &observed {
                Observed::Downloading { upid } => {
                    map.insert(key.clone(), upid.clone());
                }
                _ => {
                    map.remove(&key);
                }
            }
        }
        let action = decide(
            &observed,
            template.spec.os_template.source.as_ref(),
            previous.is_none_or(|p| p.download_task.is_none()),
        );
        let (started, action) = match act(&ctx, &client, &node.spec.node_name, &template, &action).await {
            Ok(started) => (started, action),
            Err(message) => {
                tracing::warn!(template = %name, node = %node_name, %message, "download not started");
                (None, NodeAction::Report { message })
            }
        };
        downloading |= started.is_some() || matches!(observed, Observed::Downloading { .. });
        if let Some(upid) = &started {
            tracing::info!(template = %name, node = %node_name, task = %upid, "OS template download started");
            ctx.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, upid.clone());
        }
        node_statuses.push(node_status(&node_name, &observed, &action, started));
    }
    node_statuses.sort_by(|a, b| a.node.cmp(&b.node));

    let all_present = node_statuses.iter().all(|n| n.present);
    let ready = match (&digest, all_present) {
        (Err(e), _) => Desired {
            type_: types::READY,
            status: false,
            reason: "InvalidContent",
            message: e.clone(),
        },
        (Ok(_), false) => {
            let missing: Vec<&str> = node_statuses
                .iter()
                .filter(|n| !n.present)
                .map(|n| n.node.as_str())
                .collect();
            let message = format!("OS template not yet on: {}", missing.join(", "));
            let audit_down = node_statuses.iter().any(|n| {
                n.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(AUDIT_UNAVAILABLE_PREFIX))
            });
            Desired {
                type_: types::READY,
                status: false,
                reason: if audit_down {
                    crate::audit::AUDIT_UNAVAILABLE_REASON
                } else {
                    "TemplateMissing"
                },
                message,
            }
        }
        (Ok(_), true) => Desired {
            type_: types::READY,
            status: true,
            reason: "Ready",
            message: String::new(),
        },
    };
    set(&mut status.conditions, ready, generation, now);
    publish_transition(&ctx, &template, &status).await;
    if let Ok(d) = digest {
        status.digest = Some(d);
    }
    status.nodes = node_statuses;
    status.observed_generation = generation;
    if template.status.as_ref() != Some(&status) {
        write_status(&ctx.kube, &name, &status).await?;
    }
    Ok(Action::requeue(if downloading {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(300)
    }))
}

async fn write_status(kube: &Client, name: &str, status: &LxcTemplateStatus) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "status": status});
    Api::<LxcTemplate>::all(kube.clone())
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
}

fn error_policy(_t: Arc<LxcTemplate>, error: &TemplateError, _ctx: Arc<TemplateCtx>) -> Action {
    tracing::warn!(%error, "LxcTemplate reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until `shutdown` resolves. Node changes (e.g. a node turning Ready)
/// re-check every template.
pub async fn run(ctx: TemplateCtx, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let templates: Api<LxcTemplate> = Api::all(ctx.kube.clone());
    let controller = Controller::new(templates, watcher::Config::default());
    let store = controller.store();
    let readiness = crate::controllers::node::observe::ReadinessChanges::default();
    controller
        .watches(
            Api::<ProxmoxNode>::all(ctx.kube.clone()),
            watcher::Config::default(),
            move |node: ProxmoxNode| {
                // A probe rewrites the node's status every poll; only a change of readiness
                // (or of the spec) concerns the templates.
                if !readiness.changed(&node) {
                    return Vec::new();
                }
                store
                    .state()
                    .into_iter()
                    .map(|t| kube::runtime::reflector::ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|_| async {})
        .await;
}

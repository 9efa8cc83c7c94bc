//! The `ProxmoxNode` reconcile driver: connect → probe → observe → status, then requeue after
//! the node's poll interval. A change to the credentials Secret re-checks the node at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use super::connect::ClientCache;
use super::observe::{NodeObservation, Observations, ObservedContainer};
use super::probe::{Probe, ProbeError, conditions, probe};
use crate::crd::node::{NodeCapacity, ProxmoxNode, ProxmoxNodeStatus, StorageCapacity};
use crate::proxmox::client::Metrics;
use crate::status::conditions::set;

/// The field manager of every status the operator writes.
pub const FIELD_MANAGER: &str = "lxc-operator";

/// What the node controller shares.
#[derive(Clone)]
pub struct NodeCtx {
    pub kube: Client,
    pub observations: Observations,
    /// The nodes' Proxmox clients (shared with the other controllers).
    pub clients: ClientCache,
    /// Receives one observation per Proxmox call.
    pub metrics: Option<Arc<dyn Metrics>>,
    /// Publishes Events on condition transitions.
    pub recorder: Option<kube::runtime::events::Recorder>,
    /// The last Ready condition published per node uid: the watch cache may replay an object
    /// whose status predates our last write, and that must not publish the same Event again.
    pub published: Arc<Mutex<HashMap<String, (String, String)>>>,
    /// When each node (by uid) was last probed, and with which spec generation and Secret
    /// version: the status a probe writes comes back as a watch event, and that must not
    /// probe again before the poll interval.
    pub probed: Arc<Mutex<HashMap<String, (std::time::Instant, String)>>>,
    /// The `LxcContainer`s known to the operator and where to send the ones a poll must wake
    /// (the container controller reconciles what arrives there).
    pub wake: Option<ContainerWake>,
}

/// Wakes `LxcContainer` reconciles after a poll saw their Proxmox state change.
#[derive(Clone)]
pub struct ContainerWake {
    pub containers: kube::runtime::reflector::Store<crate::crd::LxcContainer>,
    pub sender: tokio::sync::mpsc::UnboundedSender<ObjectRef<crate::crd::LxcContainer>>,
}

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
        status.cluster_name = Some(node.spec.endpoint.clone());
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

/// One reconcile of a `ProxmoxNode`.
pub async fn reconcile(node: Arc<ProxmoxNode>, ctx: Arc<NodeCtx>) -> Result<Action, NodeError> {
    let name = node.name_any();
    let poll = Duration::from_secs(node.spec.poll_interval_seconds.max(5) as u64);
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let version = ctx.clients.version(&ctx.kube, &node).await;
    let key = version.as_ref().map(String::clone).unwrap_or_default();
    let last = ctx
        .probed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&uid)
        .cloned();
    if let Some((at, v)) = last
        && v == key
        && at.elapsed() < poll
    {
        return Ok(Action::requeue(poll - at.elapsed()));
    }
    ctx.probed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(uid, (std::time::Instant::now(), key));
    // The Secret was read once for the skip check above; the client is keyed by that read.
    let client = match version {
        Ok(key) => {
            ctx.clients
                .get_at(&ctx.kube, &node, ctx.metrics.clone(), key)
                .await
        }
        Err(e) => Err(e),
    };
    let outcome: Result<Probe, ProbeError> = match client {
        Ok(client) => probe(&client, &node.spec.node_name).await,
        Err(e) => Err(e.into()),
    };
    if let Ok(p) = &outcome {
        let containers = p
            .containers_on(&node.spec.node_name)
            .filter_map(ObservedContainer::from_resource)
            .map(|c| (c.vmid, c))
            .collect();
        let cluster_vmids = p
            .guests
            .iter()
            .filter_map(|g| g.vmid.and_then(|v| u32::try_from(v).ok()))
            .collect();
        let observation = NodeObservation {
            cluster: node.spec.endpoint.clone(),
            containers,
            cluster_vmids,
        };
        let changed = ctx.observations.update(&name, observation);
        if !changed.is_empty() {
            tracing::debug!(node = %name, ?changed, "observed container changes");
            if let Some(wake) = &ctx.wake {
                let state = wake.containers.state();
                for target in
                    super::observe::containers_to_wake(state.iter().map(|c| c.as_ref()), &name, &changed)
                {
                    let _ = wake.sender.send(target);
                }
            }
        }
    }
    let status = next_status(&node, &outcome, Timestamp::now());
    publish_transitions(&ctx, &node, &status).await;
    if node.status.as_ref() != Some(&status) {
        let patch = serde_json::json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode", "status": status
        });
        Api::<ProxmoxNode>::all(ctx.kube.clone())
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| NodeError::Status {
                name: name.clone(),
                source,
            })?;
    }
    Ok(Action::requeue(poll))
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

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: NodeCtx, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let nodes: Api<ProxmoxNode> = Api::all(ctx.kube.clone());
    let secrets: Api<Secret> = Api::all(ctx.kube.clone());
    let controller = Controller::new(nodes, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(secrets, watcher::Config::default(), move |secret: Secret| {
            let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
            store
                .state()
                .into_iter()
                .filter(|n| {
                    n.spec.credentials_secret_ref.namespace == ns
                        && n.spec.credentials_secret_ref.name == name
                })
                .map(|n| ObjectRef::from_obj(n.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|_| async {})
        .await;
}

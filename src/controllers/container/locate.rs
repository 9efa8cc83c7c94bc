//! Resolve, Place and the move between nodes: which `ProxmoxNode` the container is on (or
//! goes to), that it and the template are usable, and — when `nodeRef` changes — the
//! migration (restart mode) inside one Proxmox cluster. A container is never recreated to move.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::events::EventType;

use super::run::{Halt, HaltKind, Run, phase};
use crate::crd::container::{LxcContainer, TaskRef};
use crate::crd::node::ProxmoxNode;
use crate::crd::template::LxcTemplate;
use crate::pipeline::place::{Candidate, choose};
use crate::pipeline::resolve::{Blocked, check_node, check_template};
use crate::proxmox::ProxmoxClient;

/// Where the container lives and what it is made from, with the node's client.
pub struct Target {
    pub node: ProxmoxNode,
    pub template: LxcTemplate,
    pub client: ProxmoxClient,
}

impl Target {
    /// The node's name inside Proxmox.
    pub fn pve_node(&self) -> &str {
        &self.node.spec.node_name
    }
}

fn blocked(condition: &'static str, b: Blocked) -> Halt {
    Halt::new(condition, b.reason, b.message, HaltKind::Blocked)
}

/// Finds the node (placing the container when it has none yet), the template and the client.
pub async fn resolve(run: &mut Run<'_>) -> Result<Target, Halt> {
    let kube = run.ctx.kube.clone();
    let spec = &run.ct.spec;
    let template = Api::<LxcTemplate>::all(kube.clone())
        .get_opt(&spec.template_ref)
        .await
        .map_err(|e| Halt::kube(phase::RESOLVED, &e))?;
    let placed = run.status.node.clone();
    let node_name = match (&placed, &spec.node_ref) {
        (Some(n), _) => n.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => place(run, template.as_ref()).await?,
    };
    let node = Api::<ProxmoxNode>::all(kube.clone())
        .get_opt(&node_name)
        .await
        .map_err(|e| Halt::kube(phase::RESOLVED, &e))?;
    check_node(node.as_ref(), &node_name, &run.namespace, placed.is_none())
        .map_err(|b| blocked(phase::RESOLVED, b))?;
    let exists = run.status.vmid.is_some() && run.was(phase::CREATED);
    match check_template(template.as_ref(), &spec.template_ref, &node_name) {
        Err(b) if b.reason != "TemplateNotOnNode" || !exists => return Err(blocked(phase::RESOLVED, b)),
        _ => {}
    }
    let (Some(node), Some(template)) = (node, template) else {
        unreachable!("checked above");
    };
    let client = run.client_for(&node, phase::RESOLVED).await?;
    run.pass(
        phase::RESOLVED,
        "Resolved",
        format!(
            "ProxmoxNode {node_name} and LxcTemplate {} are usable",
            template.name_any()
        ),
    );
    if placed.is_none() {
        run.status.node = Some(node_name.clone());
    }
    run.pass(phase::PLACED, "Placed", format!("on ProxmoxNode {node_name}"));
    Ok(Target {
        node,
        template,
        client,
    })
}

/// Chooses a node for a container with a `nodeSelector` and records it before anything else.
async fn place(run: &mut Run<'_>, template: Option<&LxcTemplate>) -> Result<String, Halt> {
    let kube = run.ctx.kube.clone();
    let selector = run.ct.spec.node_selector.clone().unwrap_or_default();
    // One placement at a time in this process, so each sees the previous one's reservation.
    let _one = run.ctx.placing.lock().await;
    let nodes = Api::<ProxmoxNode>::all(kube.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| Halt::kube(phase::PLACED, &e))?;
    let containers = Api::<LxcContainer>::all(kube)
        .list(&ListParams::default())
        .await
        .map_err(|e| Halt::kube(phase::PLACED, &e))?;
    let mut refusals = Vec::new();
    let candidates: Vec<Candidate> = nodes
        .items
        .iter()
        .filter_map(|n| {
            let name = n.name_any();
            let usable = check_node(Some(n), &name, &run.namespace, true)
                .and_then(|()| check_template(template, &run.ct.spec.template_ref, &name));
            if let Err(b) = usable {
                refusals.push(format!("{name}: {}", b.reason));
                return None;
            }
            let capacity = n.status.as_ref().and_then(|s| s.capacity.as_ref());
            let placed_here = containers
                .items
                .iter()
                .filter(|c| c.status.as_ref().and_then(|s| s.node.as_deref()) == Some(name.as_str()));
            let reserved_memory = placed_here
                .clone()
                .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Ready"))
                .map(|c| c.spec.resources.memory_mib.unwrap_or(512) * 1024 * 1024)
                .sum();
            Some(Candidate {
                labels: n.labels().clone(),
                free_memory: capacity.map_or(0, |c| c.memory_bytes - c.memory_used_bytes),
                reserved_memory,
                tasks_in_flight: placed_here
                    .filter(|c| c.status.as_ref().is_some_and(|s| s.task.is_some()))
                    .count(),
                name,
            })
        })
        .collect();
    let Some(chosen) = choose(&selector, &candidates) else {
        let wanted: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(Halt::new(
            phase::PLACED,
            "NoMatchingNode",
            format!(
                "no usable ProxmoxNode matches nodeSelector {{{}}} (not usable: {})",
                wanted.join(", "),
                if refusals.is_empty() {
                    "none".into()
                } else {
                    refusals.join("; ")
                }
            ),
            HaltKind::Blocked,
        ));
    };
    let chosen = chosen.name.clone();
    run.status.node = Some(chosen.clone());
    run.pass(phase::PLACED, "Placed", format!("on ProxmoxNode {chosen}"));
    run.save().await?;
    Ok(chosen)
}

/// Moves the container when `nodeRef` names another node than the one it is on.
pub async fn migrate(run: &mut Run<'_>, target: &Target) -> Result<(), Halt> {
    let Some(want) = run.ct.spec.node_ref.clone() else {
        return Ok(());
    };
    if run.status.node.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    let dest = Api::<ProxmoxNode>::all(run.ctx.kube.clone())
        .get_opt(&want)
        .await
        .map_err(|e| Halt::kube(phase::PLACED, &e))?;
    check_node(dest.as_ref(), &want, &run.namespace, true).map_err(|b| blocked(phase::PLACED, b))?;
    let Some(dest) = dest else {
        unreachable!("checked above")
    };
    if dest.spec.endpoint != target.node.spec.endpoint {
        return Err(Halt::new(
            phase::PLACED,
            "CrossClusterMove",
            format!(
                "ProxmoxNode {want} is in another Proxmox cluster ({}); a container moves only \
                 inside its cluster — delete and recreate it to move it",
                dest.spec.endpoint
            ),
            HaltKind::Stalled,
        ));
    }
    let vmid = run.status.vmid.unwrap_or_default() as u32;
    let state = target
        .client
        .container_status(target.pve_node(), vmid)
        .await
        .map_err(|e| Halt::proxmox(phase::PLACED, &e))?;
    let restart = state.status == "running";
    let to = dest.spec.node_name.clone();
    let intent = run.intent(
        "migrate",
        "migrate container",
        target.pve_node(),
        serde_json::json!({"target": to, "restart": restart}),
    );
    let client = &target.client;
    let upid = run
        .ctx
        .audit
        .guarded(&intent, || {
            client.migrate_container(target.pve_node(), vmid, &to, restart)
        })
        .await
        .map_err(|e| Halt::guarded(phase::PLACED, &e))?;
    run.status.task = Some(TaskRef {
        upid: upid.to_string(),
        action: "migrate".into(),
        node: target.pve_node().to_string(),
    });
    run.save().await?;
    run.event(
        EventType::Normal,
        "Migrating",
        "Migrate",
        format!(
            "moving VMID {vmid} from {} to {want}",
            run.status.node.clone().unwrap_or_default()
        ),
    )
    .await;
    Err(Halt::wait(
        phase::PLACED,
        "Migrating",
        format!("migrating to ProxmoxNode {want} (task {upid})"),
        Duration::from_secs(1),
    ))
}

//! Resolve and Place: which `ProxmoxNode` the container is on (or goes to, chosen once and
//! recorded before anything else), and that it and the template are usable. Nodes, templates
//! and sibling containers are read from the watch caches, not listed per reconcile.

use kube::ResourceExt;

use super::run::{Run, phase};
use super::target::Target;
use crate::controllers::halt::{Halt, HaltKind};
use crate::crd::node::ProxmoxNode;
use crate::crd::template::LxcTemplate;
use crate::pipeline::desired::{DEFAULT_MEMORY_MIB, Subject, desired_container, memory_mib};
use crate::pipeline::place::{Candidate, choose, matches};
use crate::pipeline::policy::{self, PolicyDenied};
use crate::pipeline::resolve::{Blocked, check_node, check_template, present_on};
use crate::status::conditions::{is_true, types};

pub(super) fn blocked(condition: &'static str, b: Blocked) -> Halt {
    Halt::new(condition, b.reason, b.message, HaltKind::Blocked)
}

/// Finds the node (placing the container when it has none yet), the template and the client.
pub async fn resolve(run: &mut Run<'_>) -> Result<Target, Halt> {
    let spec = &run.ct.spec;
    let template = run.ctx.stores.template(&spec.template_ref).map(|t| (*t).clone());
    let placed = run.status.node.clone();
    let node_name = match (&placed, &spec.node_ref) {
        (Some(n), _) => n.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => place(run, template.as_ref()).await?,
    };
    let node = run.ctx.stores.node(&node_name).map(|n| (*n).clone());
    check_node(node.as_ref(), &node_name, &run.namespace, placed.is_none())
        .map_err(|b| blocked(phase::RESOLVED, b))?;
    let exists = run.status.vmid.is_some() && run.was(phase::CREATED);
    // A container already created no longer needs the OS template on its node.
    let missing_here = template.as_ref().is_some_and(|t| !present_on(t, &node_name));
    match check_template(template.as_ref(), &spec.template_ref, &node_name) {
        Err(b) if !(missing_here && exists) => return Err(blocked(phase::RESOLVED, b)),
        _ => {}
    }
    let (Some(node), Some(template)) = (node, template) else {
        unreachable!("checked above");
    };
    // What the node's policy does not allow ends here, before any Proxmox call.
    admit(run, &node, &template).map_err(|denied| {
        Halt::new(
            phase::RESOLVED,
            "PolicyDenied",
            denied.to_string(),
            HaltKind::Stalled,
        )
    })?;
    let client = run.client_for(&node, phase::RESOLVED).await?;
    // A cordon keeps placed containers; their condition still says so.
    let cordoned = match node.spec.cordoned {
        true => " (the node is cordoned: it takes no new containers)",
        false => "",
    };
    run.pass(
        phase::RESOLVED,
        "Resolved",
        format!(
            "ProxmoxNode {node_name} and LxcTemplate {} are usable{cordoned}",
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

/// The node's policy on what this container asks for, with the template's and the node's
/// defaults filled in (the VMID is not judged).
fn admit(run: &Run<'_>, node: &ProxmoxNode, template: &LxcTemplate) -> Result<(), PolicyDenied> {
    let subject = Subject {
        name: &run.name,
        uid: &run.uid,
        spec: &run.ct.spec,
        template: &template.spec,
        node: &node.spec,
    };
    policy::check(
        &node.name_any(),
        &node.spec.policy,
        &desired_container(&subject, 0),
    )
}

/// Chooses a node for a container with a `nodeSelector` and records it before anything else.
async fn place(run: &mut Run<'_>, template: Option<&LxcTemplate>) -> Result<String, Halt> {
    let selector = run.ct.spec.node_selector.clone().unwrap_or_default();
    // One placement at a time in this process, so each sees the previous one's reservation
    // (placements are written to status at once, and this process's own writes reach its
    // cache before the next placement reads it: see `Run::remember` for what might not).
    let _one = run.ctx.placing.lock().await;
    let nodes = run.ctx.stores.nodes.state();
    let containers = run.ctx.stores.containers.state();
    let mut refusals = Vec::new();
    let candidates: Vec<Candidate> = nodes
        .iter()
        .filter_map(|n| {
            let name = n.name_any();
            let usable = check_node(Some(n.as_ref()), &name, &run.namespace, true)
                .and_then(|()| check_template(template, &run.ct.spec.template_ref, &name))
                .and_then(|()| match template {
                    Some(t) => admit(run, n, t).map_err(|d| Blocked {
                        reason: "PolicyDenied",
                        message: d.to_string(),
                    }),
                    None => Ok(()),
                });
            if let Err(b) = usable {
                refusals.push(format!("{name}: {}", b.reason));
                return None;
            }
            let capacity = n.status.as_ref().and_then(|s| s.capacity.as_ref());
            let placed_here = containers
                .iter()
                .filter(|c| placed_node(run, c).as_deref() == Some(name.as_str()));
            let reserved_memory = placed_here
                .clone()
                .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Ready"))
                .map(|c| {
                    let template = run.ctx.stores.template(&c.spec.template_ref);
                    let mib = memory_mib(&c.spec, template.as_ref().map(|t| &t.spec));
                    mib.unwrap_or(DEFAULT_MEMORY_MIB) * 1024 * 1024
                })
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
    // A matching node not probed yet is unknown, not unusable: choosing among the nodes probed
    // so far would send everything applied together with the nodes to whichever answered
    // first. Its first probe (a readiness change) wakes this container again.
    let unprobed: Vec<String> = nodes
        .iter()
        .filter(|n| matches(&selector, n.labels()) && n.metadata.deletion_timestamp.is_none())
        .filter(|n| {
            let probed = n
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == types::READY));
            // A Ready node the template controller has not looked at yet is unknown too.
            let ready = n
                .status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, types::READY));
            let checked = template.is_none_or(|t| {
                t.status
                    .as_ref()
                    .is_some_and(|s| s.nodes.iter().any(|e| e.node == n.name_any()))
            });
            !probed || (ready && !checked)
        })
        .map(|n| n.name_any())
        .collect();
    if !unprobed.is_empty() {
        return Err(Halt::new(
            phase::PLACED,
            "NodeNotProbed",
            format!(
                "waiting for the first probe of ProxmoxNode {} (matches nodeSelector), and its template check, before choosing",
                unprobed.join(", ")
            ),
            HaltKind::Blocked,
        ));
    }
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
    // Remembered at once for the next placement (under the same mutex); written to status with
    // the VMID, before anything is created.
    run.remember();
    Ok(chosen)
}

/// Where a container is placed: its status, or this process's memory of a placement not
/// written yet (or not yet back in the watch cache).
fn placed_node(run: &Run<'_>, ct: &crate::crd::LxcContainer) -> Option<String> {
    ct.status
        .as_ref()
        .and_then(|s| s.node.clone())
        .or_else(|| run.ctx.remembered(ct.metadata.uid.as_deref()?)?.node)
}

//! Observe: what a probe saw of the node's containers becomes its observation in the shared
//! state; the drift it shows wakes exactly the containers whose Proxmox state changed.

use super::context::NodeCtx;
use super::probe::Probe;
use crate::cluster::observations::{NodeObservation, ObservedContainer};
use crate::crd::node::ProxmoxNode;

/// The observation a probe gives (pure).
pub fn observation(node: &ProxmoxNode, probe: &Probe) -> NodeObservation {
    NodeObservation {
        cluster: probe
            .cluster
            .clone()
            .unwrap_or_else(|| node.spec.endpoint.clone()),
        containers: probe
            .containers_on(&node.spec.node_name)
            .filter_map(ObservedContainer::from_resource)
            .map(|c| (c.vmid, c))
            .collect(),
        cluster_vmids: probe
            .guests
            .iter()
            .filter_map(|g| g.vmid.and_then(|v| u32::try_from(v).ok()))
            .collect(),
        at: None,
    }
}

/// Stores the observation and wakes the containers it changed.
pub fn record(ctx: &NodeCtx, node: &ProxmoxNode, probe: &Probe) {
    let name = kube::ResourceExt::name_any(node);
    let observation = observation(node, probe);
    match &ctx.wake {
        Some(wake) => wake.observed(&ctx.observations, &name, observation),
        None => {
            ctx.observations.update(&name, observation);
        }
    }
}

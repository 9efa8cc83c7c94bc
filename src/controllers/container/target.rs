//! [`Target`]: where the container lives and what it is made from, with the node's client —
//! what Resolve hands to every later phase.

use crate::crd::node::ProxmoxNode;
use crate::crd::template::LxcTemplate;
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

    /// The `ProxmoxNode`'s name.
    pub fn node_name(&self) -> String {
        kube::ResourceExt::name_any(&self.node)
    }
}

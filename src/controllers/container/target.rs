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

    /// How old the node's last poll may be for its listing to stand in for a container's own
    /// status read: two poll intervals (one missed poll, e.g. a node unreachable, ends it).
    pub fn listing_fresh(&self) -> std::time::Duration {
        std::time::Duration::from_secs(2 * self.node.spec.poll_interval_seconds.max(5) as u64)
    }
}

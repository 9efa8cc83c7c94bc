//! Preflight, right before a create: the node's network list (one GET) and its last probe's
//! storage figures, judged by `pipeline::preflight`. A container that would fail in Proxmox
//! (a bridge the node lacks, an address outside the bridge's subnet, no room for its disks)
//! is never created; its `Created` condition names the problem.

use super::run::phase;
use super::target::Target;
use crate::controllers::halt::Halt;
use crate::pipeline::desired::DesiredContainer;
use crate::pipeline::preflight::{check_networks, check_storage};

pub async fn preflight(target: &Target, desired: &DesiredContainer) -> Result<(), Halt> {
    let node = target.pve_node();
    let blocked = |b| super::resolve::blocked(phase::CREATED, b);
    if let Some(storage) = target
        .node
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .map(|c| &c.storage)
    {
        check_storage(desired, storage, node).map_err(blocked)?;
    }
    if !desired.nets.is_empty() {
        let networks = target
            .client
            .networks(node)
            .await
            .map_err(|e| Halt::proxmox(phase::CREATED, &e))?;
        check_networks(desired, &networks, node).map_err(blocked)?;
    }
    Ok(())
}

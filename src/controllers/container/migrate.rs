//! Migrate: when `nodeRef` names another node than the one the container is on, the move
//! (restart mode) inside one Proxmox cluster. A container is never recreated to move.

use std::time::Duration;

use kube::runtime::events::EventType;

use super::resolve::blocked;
use super::run::{Run, phase};
use super::target::Target;
use crate::controllers::halt::{Halt, HaltKind};
use crate::crd::container::TaskRef;
use crate::pipeline::resolve::check_node;
use crate::proxmox::Mutation;

/// Moves the container when `nodeRef` names another node than the one it is on.
pub async fn migrate(run: &mut Run<'_>, target: &Target) -> Result<(), Halt> {
    let Some(want) = run.ct.spec.node_ref.clone() else {
        return Ok(());
    };
    if run.status.node.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    let dest = run.ctx.stores.node(&want).map(|n| (*n).clone());
    check_node(dest.as_ref(), &want, &run.namespace, true).map_err(|b| blocked(phase::PLACED, b))?;
    let Some(dest) = dest else {
        unreachable!("checked above")
    };
    if dest.vmid_space() != target.node.vmid_space() {
        return Err(Halt::new(
            phase::PLACED,
            "CrossClusterMove",
            format!(
                "ProxmoxNode {want} is in another Proxmox cluster ({}); a container moves only \
                 inside its cluster — delete and recreate it to move it",
                dest.vmid_space()
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
    let migration = Mutation::Migrate {
        node: target.pve_node().to_string(),
        vmid,
        target: to,
        restart,
    };
    let upid = run
        .act(&target.client, "migrate", phase::PLACED, migration)
        .await?;
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

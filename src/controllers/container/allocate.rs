//! Allocate VMID: `spec.vmid`, or the lowest free VMID of the node's range chosen under the
//! cluster's allocation lock from everything known to be taken (the node polls, the VMID cache,
//! other containers' statuses, this process's reservations) and confirmed with
//! `/cluster/nextid?vmid=`. The VMID is written to status before anything is created.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{Api, ListParams};

use super::run::{Run, phase};
use super::target::Target;
use crate::controllers::halt::{Halt, HaltKind};
use crate::coordination::allocation_lock;
use crate::crd::container::LxcContainer;
use crate::pipeline::vmid::{pick_free, range};
use crate::proxmox::ErrorClass;

/// Confirmations tried before giving up for this reconcile.
const ATTEMPTS: usize = 32;

fn unavailable(e: impl std::fmt::Display) -> Halt {
    Halt::new(
        phase::VMID_ALLOCATED,
        "CoordinationUnavailable",
        e.to_string(),
        HaltKind::Transient,
    )
}

/// The container's VMID, allocated and recorded if it has none yet.
pub async fn allocate(run: &mut Run<'_>, target: &Target) -> Result<u32, Halt> {
    if let Some(vmid) = run.status.vmid {
        run.pass(phase::VMID_ALLOCATED, "Allocated", format!("VMID {vmid}"));
        return Ok(vmid as u32);
    }
    if let Some(vmid) = run.ct.spec.vmid {
        run.status.vmid = Some(vmid);
        run.pass(
            phase::VMID_ALLOCATED,
            "FromSpec",
            format!("VMID {vmid} from spec.vmid"),
        );
        run.save().await?;
        return Ok(vmid as u32);
    }
    // The watch cache may be stale (a write of another replica, or of this one, not seen yet):
    // the object's latest status decides, and a VMID recorded there is never replaced.
    if let Some(vmid) = run.latest_status().await?.and_then(|s| s.vmid) {
        run.status.vmid = Some(vmid);
        run.pass(phase::VMID_ALLOCATED, "Allocated", format!("VMID {vmid}"));
        return Ok(vmid as u32);
    }
    // One lock and one VMID cache per Proxmox cluster, whichever endpoint reaches it.
    let cluster = target.node.vmid_space();
    let Some(lock) = run
        .ctx
        .coordinator
        .try_lock(&allocation_lock(&cluster))
        .await
        .map_err(unavailable)?
    else {
        return Err(Halt::wait(
            phase::VMID_ALLOCATED,
            "AllocationLockBusy",
            "another allocation in this Proxmox cluster is under way",
            Duration::from_millis(300 + rand::random::<u64>() % 400),
        ));
    };
    // The status is written while the lock is held: the next allocation sees this VMID taken.
    let result = match allocate_locked(run, target, &cluster).await {
        Ok(vmid) => run.save().await.map(|()| vmid),
        Err(e) => Err(e),
    };
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the allocation lock (it expires)");
    }
    result
}

async fn allocate_locked(run: &mut Run<'_>, target: &Target, cluster: &str) -> Result<u32, Halt> {
    let ctx = run.ctx;
    let mut taken: BTreeSet<u32> = ctx.observations.cluster_vmids(cluster);
    if let Some(cached) = ctx
        .coordinator
        .store()
        .vmids(cluster)
        .await
        .map_err(unavailable)?
    {
        taken.extend(cached);
    }
    taken.extend(
        ctx.reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cluster)
            .into_iter()
            .flatten(),
    );
    // The one LIST left in a reconcile: under the allocation lock, the API server's answer
    // (not a cache that may lag behind another replica's write) says which VMIDs are recorded.
    let others = Api::<LxcContainer>::all(ctx.kube.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| Halt::kube(phase::VMID_ALLOCATED, &e))?;
    taken.extend(
        others
            .items
            .iter()
            .filter_map(|c| c.status.as_ref()?.vmid)
            .chain(others.items.iter().filter_map(|c| c.spec.vmid))
            .filter_map(|v| u32::try_from(v).ok()),
    );
    let bounds = range(target.node.spec.vmid_range.as_ref());
    for _ in 0..ATTEMPTS {
        let Some(candidate) = pick_free(bounds, &taken) else {
            return Err(Halt::new(
                phase::VMID_ALLOCATED,
                "VmidRangeExhausted",
                format!(
                    "no free VMID in {}..{} of ProxmoxNode {}",
                    bounds.0,
                    bounds.1,
                    run.status.node.clone().unwrap_or_default()
                ),
                HaltKind::Blocked,
            ));
        };
        match target.client.next_id(Some(candidate)).await {
            Ok(_) => {
                ctx.reserved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(cluster.to_string())
                    .or_default()
                    .insert(candidate);
                ctx.coordinator
                    .store()
                    .vmids_update(cluster, candidate, true)
                    .await
                    .map_err(unavailable)?;
                run.status.vmid = Some(i64::from(candidate));
                run.pass(phase::VMID_ALLOCATED, "Allocated", format!("VMID {candidate}"));
                return Ok(candidate);
            }
            Err(e) if e.class() == ErrorClass::AlreadyExists => {
                taken.insert(candidate);
            }
            Err(e) => return Err(Halt::proxmox(phase::VMID_ALLOCATED, &e)),
        }
    }
    Err(Halt::new(
        phase::VMID_ALLOCATED,
        "VmidRaced",
        format!("{ATTEMPTS} VMIDs in a row were taken while confirming; trying again"),
        HaltKind::Transient,
    ))
}

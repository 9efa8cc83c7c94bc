//! Allocate VMID: `spec.vmid`, or the lowest free VMID of the node's range chosen under the
//! cluster's allocation lock from everything known to be taken (the node polls, the VMID cache,
//! other containers' statuses, this process's reservations). No `/cluster/nextid?vmid=` round
//! trip: the create's own "already exists" answer is the same check (see `create`). The VMID
//! is written to status before anything is created.

use std::collections::BTreeSet;
use std::time::Duration;

use super::run::{Run, phase};
use super::target::Target;
use crate::controllers::halt::{Halt, HaltKind};
use crate::coordination::allocation_lock;
use crate::pipeline::vmid::{pick_free, range};

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
    // This process's allocations in the cluster wait their turn here (each is a few
    // milliseconds, no Proxmox call) instead of finding the shared lock busy and coming back.
    let turn = run.ctx.allocation_turn(&cluster);
    let _turn = turn.lock().await;
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
        Ok(vmid) => {
            run.fresh_vmid = true;
            run.save().await.map(|()| vmid)
        }
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
    // Every VMID recorded or asked for by an LxcContainer, from the watch cache. A write of
    // another replica the cache has not seen yet cannot slip through: only the leader allocates,
    // under this cluster's allocation lock, its own writes are in `reserved` (and the Redis
    // VMID cache) before they are in the cache, and a VMID taken in Proxmox all the same makes
    // the create answer "already exists", which gives it up and allocates another.
    let containers = ctx.stores.containers.state();
    taken.extend(
        containers
            .iter()
            .filter_map(|c| c.status.as_ref()?.vmid)
            .chain(containers.iter().filter_map(|c| c.spec.vmid))
            .filter_map(|v| u32::try_from(v).ok()),
    );
    let bounds = range(target.node.spec.vmid_range.as_ref());
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
    Ok(candidate)
}

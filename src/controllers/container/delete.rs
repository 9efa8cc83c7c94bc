//! Deletion, behind the finalizer. `Delete`: shut down, destroy with purge, wait for the task,
//! confirm the container is gone, release the VMID, then let the object go. `Retain`: take the
//! ownership marker off and leave the container. A container that is not ours is never
//! touched; a failed step keeps the finalizer and says why.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::context::ContainerCtx;
use super::power::power_call;
use super::run::{Run, phase};
use super::settle::{settle, track};
use super::{ContainerError, FINALIZER};
use crate::controllers::halt::{Halt, HaltKind, backoff};
use crate::controllers::metered::Metered;
use crate::coordination::container_lock;
use crate::crd::container::PowerState;
use crate::crd::container::{DeletionPolicy, LxcContainer};
use crate::crd::node::ProxmoxNode;
use crate::pipeline::ownership::{description_without_owner, is_operator_tag, owner, parse_tags};
use crate::pipeline::power::decide;
use crate::proxmox::ErrorClass;
use crate::proxmox::Mutation;
use crate::status::conditions::{Outcome, set_kstatus};

/// Handles a deleted `LxcContainer` until its finalizer can go.
pub async fn finalize(
    ct: &LxcContainer,
    ctx: &ContainerCtx,
    metered: &mut Metered,
) -> Result<Action, ContainerError> {
    let uid = ct.metadata.uid.clone().unwrap_or_default();
    if !ct.finalizers().iter().any(|f| f == FINALIZER) {
        ctx.forget(&uid);
        metered.success();
        return Ok(Action::await_change());
    }
    ctx.stores.ready().await;
    let Some(lock) = ctx.coordinator.try_lock(&container_lock(&uid)).await? else {
        metered.halted(&Halt::wait(phase::CREATED, "Locked", "", Duration::from_secs(2)));
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let mut run = Run::new(ct, ctx, Some(&lock));
    let result = cleanup(&mut run).await;
    let action = conclude(ct, ctx, run, result, metered).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the container lock (it expires)");
    }
    action
}

/// Lets the object go after a cleanup, or says why it cannot yet.
async fn conclude(
    ct: &LxcContainer,
    ctx: &ContainerCtx,
    mut run: Run<'_>,
    result: Result<(), Halt>,
    metered: &mut Metered,
) -> Result<Action, ContainerError> {
    let uid = run.uid.clone();
    match &result {
        Ok(()) => metered.success(),
        Err(h) => metered.halted(h),
    }
    match result {
        Err(h) if h.kind == HaltKind::Fenced => Ok(h.requeue(0)),
        Ok(()) => {
            remove_finalizer(ct, ctx).await?;
            ctx.forget(&uid);
            Ok(Action::await_change())
        }
        Err(h) => {
            run.fail(&h);
            let stuck = matches!(h.kind, HaltKind::Stalled | HaltKind::Failed | HaltKind::Blocked);
            let outcome = if stuck {
                Outcome::Stalled {
                    reason: &h.reason,
                    message: format!("deletion: {}", h.message),
                }
            } else {
                Outcome::Progressing {
                    reason: &h.reason,
                    message: format!("deletion: {}", h.message),
                }
            };
            let (generation, now) = (run.generation, run.now);
            set_kstatus(&mut run.status.conditions, outcome, generation, now);
            run.status.phase = Some("Deleting".into());
            if stuck {
                run.event(EventType::Warning, &h.reason, "Delete", h.message.clone())
                    .await;
            }
            run.flush().await?;
            let failures = ctx.count_failure(&uid, !matches!(h.kind, HaltKind::Wait(_)));
            Ok(Action::requeue(retry_after(&h.kind, failures)))
        }
    }
}

/// When a deletion that stopped short looks again: a wait when it says, else after a backoff
/// that grows with each failure in a row, permanent ones (403, protection, invalid) included.
fn retry_after(kind: &HaltKind, failures: u32) -> Duration {
    match kind {
        HaltKind::Wait(d) => *d,
        _ => backoff(failures),
    }
}

async fn remove_finalizer(ct: &LxcContainer, ctx: &ContainerCtx) -> Result<(), kube::Error> {
    let finalizers: Vec<String> = ct
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers, "resourceVersion": ct.resource_version()
    }});
    let api = Api::<LxcContainer>::namespaced(ctx.kube.clone(), &ct.namespace().unwrap_or_default());
    match api
        .patch(&ct.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The cleanup; `Ok` once the finalizer may go.
async fn cleanup(run: &mut Run<'_>) -> Result<(), Halt> {
    let (Some(vmid), Some(node_name)) = (run.status.vmid, run.status.node.clone()) else {
        return Ok(()); // nothing was created
    };
    let vmid = vmid as u32;
    let Some(node) = run.ctx.stores.node(&node_name).map(|n| (*n).clone()) else {
        return Err(Halt::new(
            phase::CREATED,
            "NodeNotFound",
            format!(
                "ProxmoxNode {node_name} is gone, so VMID {vmid} cannot be cleaned up; recreate the \
                 node, or remove the finalizer {FINALIZER} by hand to abandon the container"
            ),
            HaltKind::Blocked,
        ));
    };
    let client = run.client_for(&node, phase::CREATED).await?;
    settle(run, &client).await?;
    let pve = node.spec.node_name.clone();
    let config = match client.container_config(&pve, vmid).await {
        Ok(c) => c,
        Err(e) if e.class() == ErrorClass::NotFound => {
            release_vmid(run, &node, vmid).await;
            return Ok(());
        }
        Err(e) => return Err(Halt::proxmox(phase::CREATED, &e)),
    };
    // The status names this VMID and node: with `Created` true it records creating this very
    // container, so a marker edited away in the Proxmox GUI does not leave it behind.
    let recorded = run.was(phase::CREATED);
    if !owner(config.get("tags"), config.get("description"), &run.uid, recorded).is_ours() {
        run.event(
            EventType::Normal,
            "NotOwned",
            "Delete",
            format!("VMID {vmid} on {pve} is not this object's container; left untouched"),
        )
        .await;
        return Ok(());
    }
    if let Some(lock) = config.lock() {
        return Err(Halt::wait(
            phase::CREATED,
            "Locked",
            format!("VMID {vmid} is locked ({lock})"),
            Duration::from_secs(2),
        ));
    }
    match run.ct.spec.deletion_policy {
        DeletionPolicy::Retain => {
            let tags: Vec<String> = config
                .get("tags")
                .map(parse_tags)
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !is_operator_tag(t))
                .collect();
            let description = description_without_owner(config.get("description").unwrap_or_default());
            let mut set = Vec::new();
            let mut delete = Vec::new();
            match tags.is_empty() {
                true => delete.push("tags".to_string()),
                false => set.push(("tags".to_string(), tags.join(";"))),
            }
            match description.is_empty() {
                true => delete.push("description".to_string()),
                false => set.push(("description".to_string(), description)),
            }
            let unmark = Mutation::UpdateConfig {
                node: pve.clone(),
                vmid,
                digest: config.digest.clone(),
                set,
                delete,
            };
            run.act_sync(&client, "delete", phase::CREATED, unmark).await?;
            release_vmid(run, &node, vmid).await;
            run.event(
                EventType::Normal,
                "Retained",
                "Delete",
                format!("VMID {vmid} on {pve} left in place without the ownership marker"),
            )
            .await;
            Ok(())
        }
        DeletionPolicy::Delete => {
            let state = client
                .container_status(&pve, vmid)
                .await
                .map_err(|e| Halt::proxmox(phase::CREATED, &e))?;
            let hard = run.ctx.remembered(&run.uid).is_some_and(|m| m.shutdown_failed);
            let timeout = run.ct.spec.update_strategy.shutdown_timeout_seconds.max(1) as u32;
            if let Some(action) = decide(PowerState::Stopped, &state.status, timeout, hard) {
                let (name, upid) =
                    power_call(run, &client, &pve, vmid, action, "delete", phase::CREATED).await?;
                let what = format!("{name} before destroy");
                return track(run, upid, name, &pve, what).await.map(|_| ());
            }
            let destroy = Mutation::Destroy {
                node: pve.clone(),
                vmid,
            };
            let upid = run.act(&client, "delete", phase::CREATED, destroy).await?;
            track(
                run,
                upid.to_string(),
                "destroy",
                &pve,
                format!("destroying VMID {vmid}"),
            )
            .await?;
            Ok(())
        }
    }
}

async fn release_vmid(run: &Run<'_>, node: &ProxmoxNode, vmid: u32) {
    let cluster = &node.vmid_space();
    if let Some(set) = run
        .ctx
        .reserved
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(cluster)
    {
        set.remove(&vmid);
    }
    if let Err(e) = run
        .ctx
        .coordinator
        .store()
        .vmids_update(cluster, vmid, false)
        .await
    {
        tracing::warn!(error = %e, vmid, "could not drop the VMID from the cache (the next poll replaces it)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deletion_that_keeps_failing_backs_off_further_each_time() {
        let wait = Duration::from_secs(2);
        assert_eq!(retry_after(&HaltKind::Wait(wait), 7), wait, "a wait says when");
        for kind in [HaltKind::Stalled, HaltKind::Transient, HaltKind::Blocked] {
            let secs = |n| retry_after(&kind, n).as_secs_f64();
            assert!((0.8..=1.2).contains(&secs(1)), "{kind:?}");
            assert!(
                (12.8..=19.2).contains(&secs(5)),
                "{kind:?}: permanent refusals back off too"
            );
            assert!((240.0..=360.0).contains(&secs(20)), "{kind:?}: capped");
        }
    }
}

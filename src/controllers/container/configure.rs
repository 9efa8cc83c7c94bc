//! Configure: apply the config plan — changed keys in one `PUT` carrying the digest the plan
//! was computed from, disks grown one `resize` task at a time, and changes Proxmox takes only
//! on a stopped container applied through a controlled restart when `restartAllowed`, else
//! listed in `status.pendingChanges`.

use std::time::Duration;

use super::context::Seen;
use super::create::root_required;
use super::power::power_call;
use super::run::{Run, phase};
use super::settle::track;
use super::target::Target;
use crate::controllers::halt::{Halt, HaltKind};
use crate::pipeline::configure::plan;
use crate::pipeline::desired::DesiredContainer;
use crate::proxmox::Mutation;
use crate::proxmox::api::PowerAction;
use crate::proxmox::types::LxcConfig;

/// Brings the config to the spec; returns whether the container runs.
pub async fn configure(
    run: &mut Run<'_>,
    target: &Target,
    desired: &DesiredContainer,
    config: &LxcConfig,
) -> Result<bool, Halt> {
    let vmid = desired.vmid;
    let node = target.pve_node().to_string();
    let client = &target.client;
    let seen = run.seen(vmid, &node);
    let known = run
        .running_after_task()
        .or(seen.as_ref().map(|s| s.running))
        .or_else(|| run.listed_as_asked(vmid, target.listing_fresh()));
    let running = match known {
        Some(running) => running,
        None => {
            client
                .container_status(&node, vmid)
                .await
                .map_err(|e| Halt::proxmox(phase::CONFIGURED, &e))?
                .status
                == "running"
        }
    };
    let plan = plan(desired, config, running);
    // Seen as it is now; a write below makes the next walk read again.
    run.see(plan.is_empty().then(|| Seen {
        at: std::time::Instant::now(),
        generation: run.generation,
        vmid,
        node: node.clone(),
        config: config.clone(),
        running,
    }));
    if !plan.fixed.is_empty() {
        return Err(Halt::new(
            phase::CONFIGURED,
            "ImmutableField",
            plan.fixed.join("; "),
            HaltKind::Stalled,
        ));
    }
    if plan.is_empty() {
        run.status.pending_changes.clear();
        run.pass(phase::CONFIGURED, "Configured", "Proxmox config matches the spec");
        return Ok(running);
    }
    if let Some(lock) = config.lock() {
        return Err(Halt::wait(
            phase::CONFIGURED,
            "Locked",
            format!("VMID {vmid} is locked ({lock})"),
            Duration::from_secs(2),
        ));
    }
    let touches_features = plan
        .set
        .iter()
        .map(|(k, _)| k)
        .chain(&plan.needs_restart)
        .any(|k| k == "features");
    if touches_features
        && desired.features.as_ref().is_some_and(|f| f.needs_root())
        && !client.is_root_ticket()
    {
        return Err(root_required(target));
    }
    if !plan.set.is_empty() || !plan.delete.is_empty() {
        let update = Mutation::UpdateConfig {
            node: node.clone(),
            vmid,
            digest: config.digest.clone(),
            set: plan.set.clone(),
            delete: plan.delete.clone(),
        };
        run.act_sync(client, "configure", phase::CONFIGURED, update)
            .await?;
        run.corrected.extend(plan.set.iter().map(|(k, _)| k.clone()));
        run.corrected.extend(plan.delete.iter().cloned());
    }
    if let Some((disk, gib)) = plan.resize.first().cloned() {
        let resize = Mutation::Resize {
            node: node.clone(),
            vmid,
            disk: disk.clone(),
            size_gib: gib,
        };
        let upid = run.act(client, "configure", phase::CONFIGURED, resize).await?;
        run.corrected.push(format!("{disk} size"));
        return track(
            run,
            upid.to_string(),
            "resize",
            &node,
            format!("growing {disk} to {gib} GiB"),
        )
        .await;
    }
    if plan.needs_restart.is_empty() {
        run.status.pending_changes.clear();
    } else if run.ct.spec.update_strategy.restart_allowed {
        let hard = run.ctx.remembered(&run.uid).is_some_and(|m| m.shutdown_failed);
        let action = if hard {
            PowerAction::Stop
        } else {
            PowerAction::Shutdown {
                timeout_secs: run.ct.spec.update_strategy.shutdown_timeout_seconds.max(1) as u32,
            }
        };
        let (_, upid) = power_call(run, client, &node, vmid, action, "configure", phase::CONFIGURED).await?;
        let keys = plan.needs_restart.join(", ");
        return track(
            run,
            upid.to_string(),
            "restart",
            &node,
            format!("restarting to apply {keys}"),
        )
        .await;
    } else {
        run.status.pending_changes = plan.needs_restart.clone();
        set_pending(run);
        return Ok(running);
    }
    run.pass(phase::CONFIGURED, "Configured", "Proxmox config matches the spec");
    Ok(running)
}

fn set_pending(run: &mut Run<'_>) {
    let halt = Halt::new(
        phase::CONFIGURED,
        "RestartRequired",
        format!(
            "{} change only on a stopped container and updateStrategy.restartAllowed is false: \
             pending until the container restarts",
            run.status.pending_changes.join(", ")
        ),
        HaltKind::Stalled,
    );
    run.fail(&halt);
}

//! Power: start the container, or shut it down gracefully (then stop it hard if the shutdown
//! failed), to match `powerState`.

use super::run::{Run, phase};
use super::settle::track;
use super::target::Target;
use crate::controllers::halt::Halt;
use crate::crd::container::PowerState;
use crate::pipeline::power::decide;
use crate::proxmox::api::PowerAction;
use crate::proxmox::{Mutation, ProxmoxClient};

/// Matches the power state; returns whether the container runs.
pub async fn power(run: &mut Run<'_>, target: &Target, vmid: u32, running: bool) -> Result<bool, Halt> {
    let spec = &run.ct.spec;
    let hard = run.ctx.remembered(&run.uid).is_some_and(|m| m.shutdown_failed);
    let timeout = spec.update_strategy.shutdown_timeout_seconds.max(1) as u32;
    let observed = if running { "running" } else { "stopped" };
    let Some(action) = decide(spec.power_state, observed, timeout, hard) else {
        let (reason, message) = match spec.power_state {
            PowerState::Running => ("Running", "the container runs"),
            PowerState::Stopped => ("Stopped", "the container is stopped"),
        };
        run.pass(phase::POWERED, reason, message);
        return Ok(running);
    };
    let node = target.pve_node().to_string();
    let (name, upid) = power_call(run, &target.client, &node, vmid, action, "power", phase::POWERED).await?;
    run.corrected.push(format!("power ({name})"));
    track(run, upid, name, &node, format!("{name} VMID {vmid}")).await
}

/// Makes an audited power call; returns the task's action name and UPID.
pub async fn power_call(
    run: &Run<'_>,
    client: &ProxmoxClient,
    node: &str,
    vmid: u32,
    action: PowerAction,
    phase: &str,
    condition: &'static str,
) -> Result<(&'static str, String), Halt> {
    let power = Mutation::Power {
        node: node.to_string(),
        vmid,
        action,
    };
    let upid = run.act(client, phase, condition, power).await?;
    Ok((action.name(), upid.to_string()))
}

//! Power: start the container, or shut it down gracefully (then stop it hard if the shutdown
//! failed), to match `powerState`.

use super::locate::Target;
use super::run::{Halt, Run, phase};
use super::tune::track;
use crate::crd::container::PowerState;
use crate::pipeline::power::decide;
use crate::proxmox::api::PowerAction;

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
    let (name, operation) = match action {
        PowerAction::Start => ("start", "start container"),
        PowerAction::Stop => ("stop", "stop container"),
        PowerAction::Shutdown { .. } => ("shutdown", "shutdown container"),
        PowerAction::Reboot => ("reboot", "reboot container"),
    };
    let node = target.pve_node().to_string();
    let params = match action {
        PowerAction::Shutdown { timeout_secs } => serde_json::json!({"timeout": timeout_secs}),
        _ => serde_json::json!({}),
    };
    let intent = run.intent("power", operation, &node, params);
    let client = &target.client;
    let upid = run
        .ctx
        .audit
        .guarded(&intent, || client.container_power(&node, vmid, action))
        .await
        .map_err(|e| Halt::guarded(phase::POWERED, &e))?;
    run.corrected.push(format!("power ({name})"));
    track(run, upid.to_string(), name, &node, format!("{name} VMID {vmid}")).await
}

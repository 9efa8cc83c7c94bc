//! The Proxmox task in flight: a reconcile that finds one in status asks about it once and
//! requeues while it runs — a worker never blocks on a task, and an operator restarted in the
//! middle resumes waiting instead of starting it again.

use std::time::Duration;

use kube::runtime::events::EventType;

use super::run::{Run, phase};
use crate::controllers::halt::Halt;
use crate::crd::container::TaskRef;
use crate::proxmox::tasks::TaskState;
use crate::proxmox::{ErrorClass, ProxmoxClient, Upid};

/// The condition a task's action belongs to, and how its wait is called.
pub fn condition_of(action: &str) -> (&'static str, &'static str) {
    match action {
        "create" => (phase::CREATED, "Creating"),
        "destroy" => (phase::CREATED, "Destroying"),
        "migrate" => (phase::PLACED, "Migrating"),
        "resize" => (phase::CONFIGURED, "Resizing"),
        "restart" => (phase::CONFIGURED, "Restarting"),
        "start" => (phase::POWERED, "Starting"),
        _ => (phase::POWERED, "Stopping"),
    }
}

/// When to ask again about a task found running for the `polls`th time: every second for its
/// first seconds (most tasks end there), then doubling up to 10 s, so a long task (a big
/// migration, a slow storage) costs a few calls a minute, not one a second.
pub fn poll_delay(polls: u32) -> Duration {
    let doublings = polls.saturating_sub(3).min(4);
    Duration::from_secs((1u64 << doublings).min(10))
}

/// The first look at a task just started: most short tasks (a start, a small create) end
/// within half a second.
pub const FIRST_LOOK: Duration = Duration::from_millis(500);

/// Checks the task in status, if any: `Ok` once none runs (a finished one is cleared).
pub async fn settle(run: &mut Run<'_>, client: &ProxmoxClient) -> Result<(), Halt> {
    let Some(task) = run.status.task.clone() else {
        return Ok(());
    };
    let (condition, waiting) = condition_of(&task.action);
    let Some(upid) = Upid::parse(&task.upid) else {
        run.status.task = None;
        return Ok(());
    };
    match client.check_task(&upid).await {
        Ok(TaskState::Running) => {
            let mut polls = 0;
            run.ctx.remember(&run.uid, |m| {
                polls = match &m.polls {
                    Some((u, n)) if *u == task.upid => n + 1,
                    _ => 1,
                };
                m.polls = Some((task.upid.clone(), polls));
            });
            // The message the task's start wrote stays: asking about a task changes nothing a
            // user sees, so it writes no status.
            let message = run
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition && c.reason == waiting && c.message.contains(&task.upid))
                .map_or_else(|| format!("task {} is running", task.upid), |c| c.message.clone());
            Err(Halt::wait(condition, waiting, message, poll_delay(polls)))
        }
        Ok(TaskState::Succeeded) => {
            run.status.task = None;
            run.finished = Some(task.action.clone());
            // Before anything else can await: the slot this task just freed goes to its start.
            if matches!(task.action.as_str(), "create" | "restart") {
                run.keep_slot_for_start(client);
            }
            // The node's polls take this task's word over a listing that lags it.
            if let (Some(running), Some(node), Some(vmid)) = (
                run.running_after_task(),
                run.status.node.as_deref(),
                run.status.vmid.and_then(|v| u32::try_from(v).ok()),
            ) {
                run.ctx.observations.expect(node, vmid, running);
            }
            match task.action.as_str() {
                "shutdown" | "stop" | "restart" => run.ctx.remember(&run.uid, |m| m.shutdown_failed = false),
                "create" => {
                    let vmid = run.status.vmid.unwrap_or_default();
                    run.event(
                        EventType::Normal,
                        "Created",
                        "Create",
                        format!("created VMID {vmid} on {}", task.node),
                    )
                    .await;
                }
                "migrate" => {
                    let to = run.ct.spec.node_ref.clone();
                    run.event(
                        EventType::Normal,
                        "Migrated",
                        "Migrate",
                        format!("now on ProxmoxNode {}", to.clone().unwrap_or_default()),
                    )
                    .await;
                    run.status.node = to;
                    // The rest of the walk needs the new node's client.
                    return Err(Halt::wait(
                        phase::PLACED,
                        "Migrated",
                        "migration finished",
                        Duration::ZERO,
                    ));
                }
                _ => {}
            }
            // No write of its own: the walk goes on, and the reconcile's one status write
            // carries the cleared task (a crash before it only asks about the task again).
            Ok(())
        }
        Err(e) if matches!(e.class(), ErrorClass::TaskFailed | ErrorClass::NotFound) => {
            run.status.task = None;
            if matches!(task.action.as_str(), "shutdown" | "restart") {
                run.ctx.remember(&run.uid, |m| m.shutdown_failed = true);
            }
            Err(Halt::proxmox(condition, &e))
        }
        Err(e) => Err(Halt::proxmox(condition, &e)),
    }
}

/// Stores a started task and ends the walk until it finishes: the reconcile's status write,
/// right after, records the UPID (no other call comes between).
pub async fn track(
    run: &mut Run<'_>,
    upid: String,
    action: &str,
    node: &str,
    what: String,
) -> Result<bool, Halt> {
    run.status.task = Some(TaskRef {
        upid: upid.clone(),
        action: action.into(),
        node: node.into(),
    });
    let (condition, reason) = super::settle::condition_of(action);
    Err(Halt::wait(
        condition,
        reason,
        format!("{what} (task {upid})"),
        FIRST_LOOK,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_task_is_asked_about_less_and_less_often() {
        let secs: Vec<u64> = (1..=9).map(|n| poll_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 1, 1, 2, 4, 8, 10, 10, 10]);
    }
}

//! Waiting on Proxmox tasks: a non-blocking check for the reconcilers (which store the UPID
//! in status and requeue) and a blocking waiter with backoff for everything else.

use std::time::Duration;

use super::client::ProxmoxClient;
use super::error::Error;
use super::upid::{Upid, exit_status_ok};

/// Lines of a failed task's log carried in the error.
pub const LOG_TAIL_LINES: usize = 20;

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Still running.
    Running,
    /// Stopped with `OK` or `WARNINGS: n`.
    Succeeded,
}

impl ProxmoxClient {
    /// Asks once: `Running`, `Succeeded`, or the failure with its exit status and log tail.
    pub async fn check_task(&self, upid: &Upid) -> Result<TaskState, Error> {
        let key = upid.to_string();
        let status = match self.task_status(upid).await {
            Ok(status) => status,
            Err(e) => {
                if e.class() == super::error::ErrorClass::NotFound {
                    self.task_slots().ended(&key);
                }
                return Err(e);
            }
        };
        if status.status != "stopped" {
            self.task_slots().running(&key);
            return Ok(TaskState::Running);
        }
        self.task_slots().ended(&key);
        let ended = status.endtime.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let seconds = ended.saturating_sub(upid.start_time) as f64;
        let exit = status
            .exitstatus
            .unwrap_or_else(|| "unexpected status".to_string());
        if exit_status_ok(&exit) {
            self.task_finished(&upid.kind, "ok", seconds);
            return Ok(TaskState::Succeeded);
        }
        self.task_finished(&upid.kind, "failed", seconds);
        let log_tail = self.task_log_tail(upid, LOG_TAIL_LINES).await.unwrap_or_default();
        Err(Error::TaskFailed {
            operation: format!("task {}", upid.kind),
            upid: upid.to_string(),
            exit_status: exit,
            log_tail,
        })
    }

    /// Polls until the task stops (backoff from 100 ms to 2 s), failing after `timeout`.
    pub async fn wait_task(&self, upid: &Upid, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            if self.check_task(upid).await? == TaskState::Succeeded {
                return Ok(());
            }
            if tokio::time::Instant::now() + delay > deadline {
                return Err(Error::TaskFailed {
                    operation: format!("task {}", upid.kind),
                    upid: upid.to_string(),
                    exit_status: format!("still running after {}s", timeout.as_secs()),
                    log_tail: Vec::new(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

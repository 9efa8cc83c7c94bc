//! Where provisioning happens: a small trait over "run a command in the container, write a
//! file into it, read a file from it", and its implementation with `pct` over SSH. Tests of
//! the executor's logic can put anything behind it; the integration tests use the real one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::ssh::{Error, ExecOutput, FilePerms, SshHost};

/// One container, as provisioning sees it.
#[async_trait]
pub trait Target: Send + Sync {
    /// Names the container in errors and logs, e.g. `CT 101 on pve1.lan`.
    fn name(&self) -> String;

    /// Runs `argv` inside the container with `env` added and `stdin` fed, killing it after
    /// `timeout` ([`Error::Timeout`]). A non-zero exit is returned, not an error.
    async fn exec(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<ExecOutput, Error>;

    /// Writes `content` to `path` inside the container with `perms`, creating missing parent
    /// directories.
    async fn push(
        &self,
        content: &[u8],
        path: &str,
        perms: &FilePerms,
        timeout: Duration,
    ) -> Result<(), Error>;

    /// The content of `path` inside the container, `None` when it does not exist.
    async fn read(&self, path: &str, timeout: Duration) -> Result<Option<Vec<u8>>, Error>;
}

/// Says, right before each command, whether this process may still act (`Err` names why not).
pub type Fence = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A container reached with `pct` on its Proxmox host.
#[derive(Clone)]
pub struct PctTarget {
    host: Arc<SshHost>,
    vmid: u32,
    fence: Option<Fence>,
}

impl std::fmt::Debug for PctTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PctTarget")
            .field("host", &self.host)
            .field("vmid", &self.vmid)
            .finish_non_exhaustive()
    }
}

impl PctTarget {
    pub fn new(host: Arc<SshHost>, vmid: u32) -> Self {
        Self {
            host,
            vmid,
            fence: None,
        }
    }

    /// Checks `fence` right before every command that changes the container.
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    fn may_act(&self, operation: &str) -> Result<(), Error> {
        match &self.fence {
            Some(fence) => fence().map_err(|reason| Error::Fenced {
                operation: operation.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Target for PctTarget {
    fn name(&self) -> String {
        format!("CT {} on {}", self.vmid, self.host.config().host)
    }

    async fn exec(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        self.may_act("pct exec")?;
        self.host.pct_exec(self.vmid, argv, stdin, env, timeout).await
    }

    async fn push(
        &self,
        content: &[u8],
        path: &str,
        perms: &FilePerms,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.may_act("pct push")?;
        self.host.pct_push(self.vmid, content, path, perms, timeout).await
    }

    async fn read(&self, path: &str, timeout: Duration) -> Result<Option<Vec<u8>>, Error> {
        self.host.pct_pull(self.vmid, path, timeout).await
    }
}

//! SSH to the Proxmox hosts: the door for what the API cannot do (`pct push`, `pct exec`,
//! `pct pull` inside containers). It knows nothing of Kubernetes.
//!
//! `connect` opens a connection (pinned host key, public-key auth, retries); `client` keeps
//! it (one per host, a session cap, reconnects) and runs commands; `pct` the container
//! commands on top, each one request to the host command whose protocol `host_command` owns
//! (sent inline as root in `Direct` mode, or as the only thing a restricted key may run in
//! `HostCommand` mode); `pool` one host per node; `quote` turns argument vectors into command
//! lines no shell re-interprets; `key` the client key and the host-key fingerprint; `output`
//! what a command returned; `error` what went wrong.

mod client;
mod connect;
mod error;
mod host_command;
mod key;
mod output;
mod pct;
mod perms;
mod pool;
mod quote;

pub use client::{SshHost, SshStats};
pub use connect::{ConnectRetry, SshConfig};
pub use error::{Error, ErrorKind};
pub use host_command::{HOST_SCRIPT, HostMode, MAX_TRANSFER, REMOTE_GRACE};
pub use key::{ClientKey, HostKeyFingerprint};
pub use output::{ExecOutput, MAX_CAPTURE};
pub use pct::{FilePerms, check_container_path, check_env_name};
pub use pool::SshPool;
pub use quote::command_line;

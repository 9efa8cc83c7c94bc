//! The `LxcContainer` controller: a short driver (`reconcile`) walks the pipeline phases, each
//! in a module named after it doing the I/O around the pure decisions of `crate::pipeline`:
//! `resolve` (and place), `settle`, `allocate`, `create`, `migrate`, `configure`, `power`,
//! `provision` (over `ssh`), `discover`. `run` keeps the per-reconcile state; `delete` is the
//! finalizer's cleanup; `context` what the kind adds to the shared context; `target` what
//! Resolve hands on.

pub mod allocate;
pub mod configure;
pub mod context;
pub mod create;
pub mod delete;
pub mod discover;
pub mod migrate;
pub mod power;
pub mod preflight;
pub mod provision;
pub mod provisioner;
pub mod reconcile;
pub mod resolve;
pub mod run;
pub mod settle;
pub mod ssh;
pub mod target;

pub use context::ContainerCtx;
pub use provisioner::Provisioner;
pub use reconcile::{Prepared, prepare};

/// The finalizer that keeps an `LxcContainer` until its Proxmox container is handled.
pub const FINALIZER: &str = "lxc.infrahaus.dev/container";

/// Errors that end a reconcile before its status could be written.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Coordination(#[from] crate::coordination::Unavailable),
}

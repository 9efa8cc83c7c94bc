//! The test world: real etcd, kube-apiserver, PostgreSQL, Redis and OpenSSH, started on free
//! loopback ports for integration tests, once per test binary, and stopped when it ends.
//!
//! The binaries come from `infra/test-world/bootstrap.sh` (built or installed into
//! `~/.cache/lxc-operator/`). Every server is watched by a small watchdog process that stops
//! it and removes its data directory as soon as the test binary is gone, however it ended.

#![forbid(unsafe_code)]

mod binaries;
mod chart;
mod control_plane;
mod examples;
mod pki;
mod postgres;
mod private_control_plane;
mod process;
mod pve_host;
mod redis;
mod sshd;

pub use binaries::{Binaries, kstatus_check, promcheck, repo_root};
pub use chart::{CHART, chart_identity, kubectl};
pub use control_plane::{ControlPlane, control_plane};
pub use examples::{ExampleTarget, examples};
pub use postgres::{Postgres, PrivatePostgres, postgres};
pub use private_control_plane::PrivateControlPlane;
pub use process::{free_port, scratch_dir, watchdog};
pub use pve_host::authorize_pve_host;
pub use redis::{PrivateRedis, Redis, redis};
pub use sshd::{Sshd, sshd};

/// Runs `start` on a fresh thread with its own Tokio runtime and waits for it: lets the
/// once-per-binary servers be started from inside any test's runtime.
pub(crate) fn block_on_fresh<T: Send + 'static>(
    start: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(start)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("test-world start-up thread panicked"))?
}

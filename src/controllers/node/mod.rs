//! `ProxmoxNode` controller: a short driver (`reconcile`) connects with the node's credentials
//! and TLS trust and probes the API (`probe`; the cluster-wide reads shared per endpoint in
//! `cluster_reads`), hands what it saw of the containers to the
//! shared state (`observe`, which wakes the drifted ones), and derives `Reachable` /
//! `Authenticated` / `Ready` with a precise reason, capacity and container count (`ready`, pure);
//! `finalize` keeps a node (and the Secrets it references) while containers are placed on it.

pub mod cluster_reads;
pub mod context;
pub mod finalize;
pub mod observe;
pub mod probe;
pub mod ready;
pub mod reconcile;

pub use context::NodeCtx;

//! The state every controller shares (and the status page reads): the nodes' Proxmox clients,
//! what the node polls observed and the drift they show, the watch caches, and the fences
//! every mutation passes.

pub mod clients;
pub mod drift;
pub mod fence;
pub mod observations;
pub mod shared;
pub mod sweep;
pub mod watches;

pub use shared::{ReconcileMetrics, Shared, Stores};

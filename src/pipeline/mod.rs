//! The `LxcContainer` pipeline's pure decisions, one module per phase, none doing I/O: the
//! controller in `controllers::container` observes, asks these what must change, and acts.
//!
//! Resolve → Place → AllocateVmid → Create (desired + ownership, judged by the node's
//! `policy`) → Configure → Power → Provision → Discover → Ready.

pub mod compare;
pub mod configure;
pub mod desired;
pub mod discover;
pub mod ownership;
pub mod place;
pub mod policy;
pub mod power;
pub mod preflight;
pub mod resolve;
pub mod vmid;

//! The `LxcContainer` pipeline's pure decisions (the controller that drives them comes next):
//! what Proxmox config a spec asks for, and how a container is marked as ours.

pub mod desired;
pub mod ownership;

//! The state every controller shares (and the status page reads): the nodes' Proxmox clients,
//! what the node polls observed, the wake-ups they send, and the fences every mutation passes.

pub mod fence;

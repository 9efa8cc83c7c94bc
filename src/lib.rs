//! lxc-operator: a Kubernetes operator that makes Proxmox VE LXC containers declarative.
//!
//! Dependencies point one way. At the bottom: `crd` (the three custom resources), `proxmox`
//! (the Proxmox VE client, which knows nothing of Kubernetes), `ssh`, `coordination` (locks and
//! the VMID cache) and `status` (conditions, Events, the status write). Above them the pure
//! decisions of `pipeline`, the `audit` trail and `provision` (what runs inside containers).
//! `cluster` is the state every controller shares (and the status page will read);
//! `controllers` holds one folder per kind plus the one audited call; `runtime` wires it all
//! into `lxc-operator run`. `observe` is the leaf the lower parts report their metrics through.

#![forbid(unsafe_code)]

pub mod audit;
pub mod cluster;
pub mod controllers;
pub mod coordination;
pub mod crd;
pub mod observe;
pub mod page;
pub mod pipeline;
pub mod provision;
pub mod proxmox;
pub mod runtime;
pub mod ssh;
pub mod status;

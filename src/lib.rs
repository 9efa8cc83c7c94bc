//! lxc-operator: a Kubernetes operator that makes Proxmox VE LXC containers declarative.
//!
//! `crd` holds the API (the three custom resources). The controllers, the Proxmox client and
//! the status page arrive in later modules; dependencies point one way, toward `crd`.

#![forbid(unsafe_code)]

pub mod audit;
pub mod cluster;
pub mod controllers;
pub mod coordination;
pub mod crd;
pub mod pipeline;
pub mod provision;
pub mod proxmox;
pub mod runtime;
pub mod ssh;
pub mod status;

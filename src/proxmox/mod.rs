//! The Proxmox VE client: the operator's only door to Proxmox. It knows nothing of Kubernetes.
//!
//! `client` is the HTTP core (auth, envelope, retries, breaker, task slots, metrics); `api`
//! holds the typed endpoints; `mutation` every mutating call as a value; `tasks` waits on UPIDs; `property` formats and parses property
//! strings; `error` classifies failures for the controllers' error policy.

pub mod api;
pub mod auth;
pub mod breaker;
pub mod client;
pub mod error;
pub mod mutation;
pub mod property;
pub mod slots;
pub mod tasks;
pub mod tls;
pub mod types;
pub mod upid;

pub use auth::{Credentials, Secret};
pub use client::{CallKind, ClientConfig, ProxmoxClient};
pub use error::{Error, ErrorClass};
pub use mutation::Mutation;
pub use tls::TlsTrust;
pub use upid::Upid;

//! `ProxmoxNode` controller: connects with the node's credentials and TLS trust, probes the
//! API, records `Reachable` / `Authenticated` / `Ready` with a precise reason, capacity and
//! container count, and keeps the observed container states for the other controllers.

pub mod connect;
pub mod observe;
pub mod probe;
pub mod reconcile;

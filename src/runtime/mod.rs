//! The operator's runtime: leader election, health and metrics endpoints, shutdown.

pub mod leader;

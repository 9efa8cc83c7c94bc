//! The operator's runtime: configuration, leader election, health and metrics endpoints, and
//! the clean shutdown on SIGTERM.

pub mod controllers;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod run;

//! `LxcTemplate` controller: validates and digests the template's provisioning, and makes
//! sure its OS template exists on every Ready node, downloading it as a tracked task.

pub mod plan;
pub mod reconcile;

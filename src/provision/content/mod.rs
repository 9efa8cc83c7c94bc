//! What a template (plus a container's own provisioning) would do inside a container,
//! resolved from ConfigMaps and Secrets, and its digests: one per step and one for the whole.

pub mod digest;
pub mod resolve;

//! The three custom resources of group `lxc.infrahaus.dev` and the generation of their CRDs.
//!
//! These types know nothing of controllers: they are the API. Every spec field carries a doc
//! comment (it becomes `kubectl explain`) and every rule the API server can enforce lives in
//! the schema (OpenAPI patterns, ranges, enums, and CEL `x-kubernetes-validations`).

pub mod common;
pub mod container;
pub mod generate;
pub mod node;
pub mod policy;
pub mod provisioning;
pub mod template;

pub use container::{LxcContainer, LxcContainerSpec, LxcContainerStatus};
pub use node::{ProxmoxNode, ProxmoxNodeSpec, ProxmoxNodeStatus};
pub use template::{LxcTemplate, LxcTemplateSpec, LxcTemplateStatus};

/// The API group of every resource here.
pub const GROUP: &str = "lxc.infrahaus.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `kubectl get infrahaus` lists all three kinds.
pub const CATEGORY: &str = "infrahaus";

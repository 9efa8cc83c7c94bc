//! `LxcTemplate`: an OS template plus what goes into every container made from it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Conditions;
use super::container::{Features, TAG_PATTERN};
use super::provisioning::{Provisioning, ServiceSpec};

/// A template volume id, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
pub const VOLID_PATTERN: &str = "^[a-zA-Z][a-zA-Z0-9._-]*[a-zA-Z0-9]:vztmpl/[A-Za-z0-9][A-Za-z0-9._+-]*\\.(tar|tar\\.gz|tar\\.xz|tar\\.zst|tar\\.bz2)$";
/// A template file name as listed by the appliance index.
pub const TEMPLATE_FILE_PATTERN: &str =
    "^[A-Za-z0-9][A-Za-z0-9._+-]*\\.(tar|tar\\.gz|tar\\.xz|tar\\.zst|tar\\.bz2)$";

/// An OS template and the provisioning every container made from it receives.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "lxc.infrahaus.dev",
    version = "v1alpha1",
    kind = "LxcTemplate",
    doc = "An OS template plus the files, packages, scripts and services of containers made from it.",
    shortname = "lxct",
    category = "infrahaus",
    status = "LxcTemplateStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".status.digest"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LxcTemplateSpec {
    /// The OS template and where to get it when a node lacks it.
    pub os_template: OsTemplate,
    /// Defaults for containers made from this template; a container's own spec wins.
    #[serde(default)]
    pub defaults: TemplateDefaults,
    /// Files, packages and scripts provisioned into every container made from the template
    /// (before the container's own).
    #[serde(default, flatten)]
    pub provisioning: Provisioning,
    /// systemd units (and their ports) whose state is reported in each container's status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub services: Vec<ServiceSpec>,
}

/// The OS template volume and its source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsTemplate {
    /// Volume id of the template on a node, e.g.
    /// `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    #[schemars(length(min = 12, max = 255), regex(pattern = VOLID_PATTERN))]
    pub volid: String,
    /// Where to download the template from on nodes that lack it. Without a source, a node
    /// lacking the template reports it and containers wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TemplateSource>,
}

/// Exactly one of `appliance` and `url`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.appliance) != has(self.url)",
    "message": "exactly one of appliance and url must be set"
}]))]
pub struct TemplateSource {
    /// Template name in Proxmox's appliance index (`pveam available`), e.g.
    /// `debian-12-standard_12.7-1_amd64.tar.zst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 5, max = 255), regex(pattern = TEMPLATE_FILE_PATTERN))]
    pub appliance: Option<String>,
    /// An HTTPS URL and the checksum Proxmox verifies after downloading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<UrlSource>,
}

/// A download URL with its checksum.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlSource {
    /// The URL (http or https).
    #[schemars(length(min = 8, max = 2048), regex(pattern = "^https?://[^\\s]+$"))]
    pub url: String,
    /// Hex digest of the file.
    #[schemars(length(min = 32, max = 128), regex(pattern = "^[0-9a-fA-F]+$"))]
    pub checksum: String,
    /// Digest algorithm.
    pub checksum_algorithm: ChecksumAlgorithm,
}

/// Checksum algorithms Proxmox's `download-url` accepts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    #[default]
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Defaults for containers made from a template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDefaults {
    /// CPU cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8192))]
    pub cores: Option<i32>,
    /// Memory in MiB.
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 268_435_456))]
    pub memory_mib: Option<i64>,
    /// Swap in MiB.
    #[serde(default, rename = "swapMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 268_435_456))]
    pub swap_mib: Option<i64>,
    /// Root filesystem size in GiB.
    #[serde(default, rename = "rootfsSizeGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 131_072))]
    pub rootfs_size_gib: Option<i64>,
    /// Whether containers are unprivileged (the safe default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unprivileged: Option<bool>,
    /// Container feature flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// Tags added to every container (Proxmox stores them lower-cased and sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 64), regex(pattern = TAG_PATTERN)))]
    pub tags: Vec<String>,
}

/// What the operator observed of the template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcTemplateStatus {
    /// `Ready` (valid and present on every Ready node) and per-problem conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Conditions,
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// A stable digest of everything provisioning would do (packages, files, scripts, with
    /// ConfigMap and Secret contents included but never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Per node: whether the OS template is present, and the download in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub nodes: Vec<TemplateNodeStatus>,
}

/// The OS template on one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateNodeStatus {
    /// The `ProxmoxNode`'s name.
    pub node: String,
    /// Whether the template volume exists on the node.
    pub present: bool,
    /// UPID of the download task in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_task: Option<String>,
    /// Why the template is missing, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

//! `ProxmoxNode`: one Proxmox VE node behind one API endpoint, with credentials, TLS trust,
//! SSH access, defaults for the containers placed on it, a VMID range and tenancy.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::common::{BRIDGE_PATTERN, STORAGE_ID_PATTERN};
use super::common::{Conditions, DNS_LABEL_PATTERN, NamespacedSecretKeyRef, NamespacedSecretRef};
use super::policy::NodePolicy;

/// A Proxmox node or storage name.
pub const PVE_NAME_PATTERN: &str = "^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$";
/// A SHA-256 certificate fingerprint as Proxmox prints it: 32 colon-separated hex bytes.
pub const CERT_FINGERPRINT_PATTERN: &str = "^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$";
/// An OpenSSH SHA-256 host-key fingerprint as `ssh-keygen -lf` prints it.
pub const SSH_FINGERPRINT_PATTERN: &str = "^SHA256:[A-Za-z0-9+/]{43}=?$";

/// One Proxmox VE node that the operator may place containers on.
///
/// Several `ProxmoxNode`s may belong to one Proxmox cluster; they then share one VMID space.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "lxc.infrahaus.dev",
    version = "v1alpha1",
    kind = "ProxmoxNode",
    doc = "One Proxmox VE node reached through its API, on which lxc-operator places containers.",
    shortname = "pvenode",
    category = "infrahaus",
    status = "ProxmoxNodeStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.pveVersion"}"#,
    printcolumn = r#"{"name":"Containers","type":"integer","jsonPath":".status.containerCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxNodeSpec {
    /// URL of the Proxmox VE API, e.g. `https://pve1.example.org:8006`. HTTPS only.
    #[schemars(
        length(min = 9, max = 2048),
        regex(pattern = "^https://[^/?#\\s]+(:[0-9]{1,5})?/?$")
    )]
    pub endpoint: String,
    /// The node's name inside Proxmox (as in `/nodes/{node}`), e.g. `pve1`.
    #[schemars(length(min = 1, max = 63), regex(pattern = PVE_NAME_PATTERN))]
    pub node_name: String,
    /// Secret holding the API credentials: either `tokenId` (`user@realm!name`) and
    /// `tokenSecret`, or `username` (`user@realm`) and `password` for tickets. Some features
    /// (feature flags other than nesting, privileged containers, bind mounts) need
    /// `root@pam` with a password; an API token never qualifies.
    pub credentials_secret_ref: NamespacedSecretRef,
    /// How the API's TLS certificate is trusted. Verification is always on unless
    /// `insecureSkipVerify` is set.
    #[serde(default)]
    pub tls: TlsSpec,
    /// SSH access to the node's host, used to provision inside containers
    /// (`pct push` / `pct exec`). Without it, containers with provisioning steps are not
    /// provisioned and say so in a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshSpec>,
    /// Defaults for containers placed on this node.
    #[serde(default)]
    pub defaults: NodeDefaults,
    /// VMIDs the operator may allocate on this node's cluster. Defaults to 100..999999999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid_range: Option<VmidRange>,
    /// What containers on this node may ask for: privileged mode, feature flags, bridges,
    /// VLANs, storages, pools, mount-point kinds and per-container maxima. The defaults deny
    /// privileged containers, feature flags other than `nesting`, and bind or device mounts.
    #[serde(default)]
    pub policy: NodePolicy,
    /// Namespaces whose `LxcContainer`s may use this node; empty means all namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN)))]
    pub allowed_namespaces: Vec<String>,
    /// At most this many of the operator's tasks (create, start, stop, migrate, template
    /// download...) in flight at once on the node, each counted from the call that starts it
    /// until the operator sees it end; a container whose task must wait says so
    /// (`WaitingForTaskSlot`), and so does a template's line for the node.
    #[serde(default = "default_max_concurrent_tasks")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent_tasks: i32,
    /// A cordoned node gets no new containers; the ones it has stay and are still reconciled.
    #[serde(default)]
    pub cordoned: bool,
    /// Seconds between two polls of the node's state (one bulk read per poll).
    #[serde(default = "default_poll_interval")]
    #[schemars(range(min = 5, max = 3600))]
    pub poll_interval_seconds: i32,
}

fn default_max_concurrent_tasks() -> i32 {
    4
}
fn default_poll_interval() -> i32 {
    30
}

/// Trust for the API's TLS certificate: at most one of `caBundle`, `fingerprintSha256` and
/// `insecureSkipVerify`. With none, the system's root certificates are used.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.caBundle) ? 1 : 0) + (has(self.fingerprintSha256) ? 1 : 0) + (self.insecureSkipVerify ? 1 : 0) <= 1",
    "message": "set at most one of caBundle, fingerprintSha256 and insecureSkipVerify"
}]))]
pub struct TlsSpec {
    /// PEM-encoded CA certificates that sign the API's certificate. Recommended: the cluster's
    /// own CA, `/etc/pve/pve-root-ca.pem` on any node, which signs every node's certificate and
    /// outlives their renewals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub ca_bundle: Option<String>,
    /// The SHA-256 fingerprint of the API's certificate, `AA:BB:...` (32 bytes), as shown by
    /// `pvenode cert info`. Pins one leaf certificate: it breaks at every renewal of that
    /// certificate (Proxmox renews its own every two years, ACME ones every few months), so
    /// prefer `caBundle` with the cluster's `pve-root-ca.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = CERT_FINGERPRINT_PATTERN))]
    pub fingerprint_sha256: Option<String>,
    /// Accept any certificate. Off by default; when on, the node reports it in a condition and
    /// the operator logs a warning on every connection. For throw-away labs only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// SSH access to the Proxmox host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshSpec {
    /// Host name or address of the node's SSH server.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = "^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$")
    )]
    pub host: String,
    /// SSH port.
    #[serde(default = "default_ssh_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// User to log in as: with `mode: Direct` one allowed to run `pct` (root); with
    /// `mode: HostCommand` the unprivileged user whose key runs the host command.
    #[serde(default = "default_ssh_user")]
    #[schemars(length(min = 1, max = 32), regex(pattern = "^[a-z_][a-z0-9_-]*$"))]
    pub user: String,
    /// Secret key holding the OpenSSH private key.
    pub private_key_secret_ref: NamespacedSecretKeyRef,
    /// The host key's SHA-256 fingerprint as `ssh-keygen -lf` prints it (`SHA256:...`). An
    /// unknown or changed host key is refused before authenticating.
    #[schemars(regex(pattern = SSH_FINGERPRINT_PATTERN))]
    pub host_key_fingerprint: String,
    /// At most this many SSH sessions at once on the one connection to this host.
    #[serde(default = "default_ssh_sessions")]
    #[schemars(range(min = 1, max = 64))]
    pub max_sessions: i32,
    /// How the operator's commands reach `pct` on the host. `Direct` (the default): the login
    /// may run anything, typically root, and each command carries its own host-side script.
    /// `HostCommand`: the key is restricted on the host to the `lxc-operator-host` forced
    /// command (`infra/host/README.md`), which takes only push, pull and exec requests for
    /// containers, so the key is not root on the host.
    #[serde(default)]
    pub mode: SshMode,
}

/// How the operator's SSH commands reach `pct` on a Proxmox host.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SshMode {
    /// Log in as a user that may run `pct` (root) and send each operation's script with it.
    #[default]
    Direct,
    /// Send only requests of the `lxc-operator-host` protocol, for a key whose forced command
    /// is that program.
    HostCommand,
}

fn default_ssh_port() -> i32 {
    22
}
fn default_ssh_user() -> String {
    "root".into()
}
fn default_ssh_sessions() -> i32 {
    4
}

/// Defaults for containers placed on the node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeDefaults {
    /// Storage for root filesystems and mount points (content type `rootdir`).
    #[serde(default = "default_storage")]
    #[schemars(length(min = 2, max = 64), regex(pattern = STORAGE_ID_PATTERN))]
    pub storage: String,
    /// Storage holding OS templates (content type `vztmpl`).
    #[serde(default = "default_template_storage")]
    #[schemars(length(min = 2, max = 64), regex(pattern = STORAGE_ID_PATTERN))]
    pub template_storage: String,
    /// Bridge for NICs that name none.
    #[serde(default = "default_bridge")]
    #[schemars(regex(pattern = BRIDGE_PATTERN))]
    pub bridge: String,
}

impl Default for NodeDefaults {
    fn default() -> Self {
        Self {
            storage: default_storage(),
            template_storage: default_template_storage(),
            bridge: default_bridge(),
        }
    }
}

fn default_storage() -> String {
    "local-lvm".into()
}
fn default_template_storage() -> String {
    "local".into()
}
fn default_bridge() -> String {
    "vmbr0".into()
}

/// An inclusive range of VMIDs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.min <= self.max", "message": "min must not be greater than max"
}]))]
pub struct VmidRange {
    /// Lowest VMID (at least 100).
    #[schemars(range(min = 100, max = 999_999_999))]
    pub min: i64,
    /// Highest VMID (at most 999999999).
    #[schemars(range(min = 100, max = 999_999_999))]
    pub max: i64,
}

/// What the operator observed of the node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxNodeStatus {
    /// `Reachable`, `Authenticated` and `Ready`, with reasons such as `CredentialsNotFound`,
    /// `TLSFingerprintMismatch`, `PermissionDenied` or `Unreachable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Conditions,
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Proxmox VE version, e.g. `9.1.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pve_version: Option<String>,
    /// Name of the Proxmox cluster, or of the node when it is standalone; nodes with the same
    /// cluster share one VMID space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// Capacity and usage at the last probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<NodeCapacity>,
    /// Number of LXC containers on the node (all of them, not only the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_count: Option<i64>,
    /// When the node was last probed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    /// The Secrets this node holds with the `lxc.infrahaus.dev/node-secret` finalizer: the
    /// operator releases one when no node references it any more, without watching Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_secrets: Vec<NamespacedSecretRef>,
}

/// CPU, memory and storage of a node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    /// Number of CPUs.
    pub cpus: i64,
    /// CPU usage as a fraction of all CPUs (0..1), as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_usage: Option<String>,
    /// Total memory in bytes.
    pub memory_bytes: i64,
    /// Used memory in bytes.
    pub memory_used_bytes: i64,
    /// Per storage: total and used bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<String, StorageCapacity>,
}

/// Size and usage of one storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageCapacity {
    /// Total bytes.
    pub total_bytes: i64,
    /// Used bytes.
    pub used_bytes: i64,
}

impl ProxmoxNode {
    /// The VMID space the node is in, shared by every ProxmoxNode of one Proxmox cluster
    /// whatever endpoint reaches it: the cluster's name from the last probe (the node's own
    /// name when standalone), else the endpoint. Keys the allocation lock and the VMID cache.
    pub fn vmid_space(&self) -> String {
        self.status
            .as_ref()
            .and_then(|s| s.cluster_name.clone())
            .unwrap_or_else(|| self.spec.endpoint.clone())
    }
}

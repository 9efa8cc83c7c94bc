//! `LxcContainer`: one container — where it runs, from which template, its resources, network,
//! power state and deletion policy — and the status the pipeline records.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Conditions, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, SecretKeyRef};
use super::node::{BRIDGE_PATTERN, STORAGE_ID_PATTERN};
use super::provisioning::{FILE_PATH_PATTERN, NO_DOTDOT_RULE, Provisioning, refuse_reference_namespaces};

/// A Proxmox tag (stored lower-case, so only lower-case is accepted here).
pub const TAG_PATTERN: &str = "^[a-z0-9_][a-z0-9_+.-]*$";
/// A Linux interface name: at most 15 characters, no `/`, `:` or white space.
pub const NIC_NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}$";
/// A MAC address, unicast.
pub const MAC_PATTERN: &str = "^[0-9A-Fa-f][02468AaCcEe](:[0-9A-Fa-f]{2}){5}$";

/// The CEL rule on `description`: the ownership marker's prefix (see
/// `pipeline::ownership::UID_PREFIX`) may not be written by hand, in any letter case.
pub const NO_OWNER_MARKER_RULE: &str = "!self.lowerAscii().contains('lxc-operator-uid:')";
/// The CEL rule on `tags`: the uid tag (`pipeline::ownership::UID_TAG_PREFIX`) is the
/// operator's alone.
pub const NO_UID_TAG_RULE: &str = "self.all(t, !t.startsWith('lxcop-'))";

/// One LXC container on Proxmox VE.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "lxc.infrahaus.dev",
    version = "v1alpha1",
    kind = "LxcContainer",
    doc = "One LXC container on Proxmox VE, reconciled by lxc-operator.",
    namespaced,
    shortname = "lxc",
    category = "infrahaus",
    status = "LxcContainerStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"VMID","type":"integer","jsonPath":".status.vmid"}"#,
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".status.ip"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.nodeRef) != has(self.nodeSelector)",
        "message": "exactly one of nodeRef and nodeSelector must be set",
        "fieldPath": ".nodeRef"
    },
    {
        "rule": "!has(oldSelf.vmid) || (has(self.vmid) && self.vmid == oldSelf.vmid)",
        "message": "vmid is immutable once set",
        "fieldPath": ".vmid"
    },
    {
        "rule": "!has(oldSelf.unprivileged) || (has(self.unprivileged) && self.unprivileged == oldSelf.unprivileged)",
        "message": "unprivileged is immutable once set",
        "fieldPath": ".unprivileged"
    },
    {
        "rule": "!has(oldSelf.rootfs) || !has(oldSelf.rootfs.sizeGiB) || (has(self.rootfs) && has(self.rootfs.sizeGiB) && self.rootfs.sizeGiB >= oldSelf.rootfs.sizeGiB)",
        "message": "rootfs size can only grow",
        "fieldPath": ".rootfs.sizeGiB"
    }
]))]
pub struct LxcContainerSpec {
    /// Name of the `ProxmoxNode` to run on. Changing it later migrates the container
    /// (with a restart). Exactly one of `nodeRef` and `nodeSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub node_ref: Option<String>,
    /// Labels a `ProxmoxNode` must carry; the operator places the container on the matching
    /// Ready node with the most free memory and records the choice in status. A placed
    /// container is never moved implicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 32))]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Name of the `LxcTemplate` the container is made from.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub template_ref: String,
    /// VMID to use. Optional: without it the operator allocates one in the node's range. Once
    /// set it cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<i64>,
    /// Hostname (an RFC 1123 label); defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub hostname: Option<String>,
    /// CPU and memory. Unset values come from the template's defaults, then Proxmox's.
    #[serde(default)]
    pub resources: Resources,
    /// The root filesystem. Its size can only grow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
    /// Additional volumes, by path inside the container. Sizes can only grow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub mount_points: Vec<MountPoint>,
    /// Network interfaces (at most 32, names unique).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub network: Vec<NetworkInterface>,
    /// DNS settings; without them the host's are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Container feature flags. Flags other than `nesting` need `root@pam` credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// Run the container unprivileged (user namespaces). Cannot change after creation.
    /// Defaults to the template's setting, else true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unprivileged: Option<bool>,
    /// Start the container when the Proxmox host boots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_boot: Option<bool>,
    /// Start and stop order on host boot and shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
    /// Whether the container should be `Running` (the default) or `Stopped`.
    #[serde(default)]
    pub power_state: PowerState,
    /// Secret key holding the root password, set at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding authorized SSH public keys for root (one per line), set at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_keys_secret_ref: Option<SecretKeyRef>,
    /// Provisioning of this container, after the template's: files, packages, scripts.
    /// Content references (`contentFrom`) read from the container's own namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = refuse_reference_namespaces)]
    pub provisioning: Option<Provisioning>,
    /// How changes are rolled out.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
    /// What happens in Proxmox when the object is deleted: `Delete` (stop and purge, the
    /// default) or `Retain` (remove the ownership marker and leave the container).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Proxmox resource pool to add the container to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = "^[A-Za-z0-9_-]+$"))]
    pub pool: Option<String>,
    /// Proxmox tags (lower-case). The operator adds its own ownership tags beside them
    /// (`lxc-operator` and `lxcop-<uid>`), so no tag here may start with `lxcop-`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 64), regex(pattern = TAG_PATTERN)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": NO_UID_TAG_RULE,
        "message": "must not start with 'lxcop-': the operator's ownership tag cannot be written by hand"
    }]))]
    pub tags: Vec<String>,
    /// Free-text description shown in Proxmox; the operator appends its ownership marker
    /// line, so the text itself must not contain `lxc-operator-uid:`. No NUL character: neither
    /// Proxmox's config file nor the audit trail (PostgreSQL text) can hold one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), regex(pattern = "^[^\\x00]*$"))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": NO_OWNER_MARKER_RULE,
        "message": "must not contain 'lxc-operator-uid:': the operator's ownership marker cannot be written by hand"
    }]))]
    pub description: Option<String>,
}

/// CPU and memory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Number of CPU cores the container sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8192))]
    pub cores: Option<i32>,
    /// CPU time limit in cores (e.g. `1.5`); 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 8192))]
    pub cpu_limit: Option<f64>,
    /// Relative CPU weight against other containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 500_000))]
    pub cpu_units: Option<i32>,
    /// Memory in MiB (at least 16).
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 268_435_456))]
    pub memory_mib: Option<i64>,
    /// Swap in MiB.
    #[serde(default, rename = "swapMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 268_435_456))]
    pub swap_mib: Option<i64>,
}

/// The root filesystem.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootFs {
    /// Storage for the volume; defaults to the node's default storage. Fixed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), regex(pattern = STORAGE_ID_PATTERN))]
    pub storage: Option<String>,
    /// Size in GiB; defaults to the template's, else 4. It can only grow.
    #[serde(default, rename = "sizeGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 131_072))]
    pub size_gib: Option<i64>,
}

/// An additional volume mounted inside the container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.sizeGiB >= oldSelf.sizeGiB",
    "message": "mount point size can only grow", "fieldPath": ".sizeGiB"
}]))]
pub struct MountPoint {
    /// Absolute path inside the container; letters, digits and `._@+-` only, no `..`.
    #[schemars(length(min = 2, max = 1024), regex(pattern = FILE_PATH_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": NO_DOTDOT_RULE, "message": "path must not contain a '..' segment"
    }]))]
    pub path: String,
    /// Storage for the volume; defaults to the node's default storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), regex(pattern = STORAGE_ID_PATTERN))]
    pub storage: Option<String>,
    /// Size in GiB. It can only grow.
    #[serde(rename = "sizeGiB")]
    #[schemars(range(min = 1, max = 131_072))]
    pub size_gib: i64,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Include the volume in Proxmox backups.
    #[serde(default)]
    pub backup: bool,
}

/// One network interface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Interface name inside the container, e.g. `eth0` (a valid Linux name, unique).
    #[schemars(length(min = 1, max = 15), regex(pattern = NIC_NAME_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self != '.' && self != '..'", "message": "not a valid interface name"
    }]))]
    pub name: String,
    /// Bridge to attach to; defaults to the node's default bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BRIDGE_PATTERN))]
    pub bridge: Option<String>,
    /// VLAN tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<i32>,
    /// IPv4 configuration; DHCP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Config>,
    /// IPv6 configuration; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Config>,
    /// Enable the Proxmox firewall on the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<bool>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64, max = 65535))]
    pub mtu: Option<i32>,
    /// Rate limit in MB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100_000))]
    pub rate_mbps: Option<f64>,
    /// MAC address; generated by Proxmox when unset, then kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = MAC_PATTERN))]
    pub hwaddr: Option<String>,
}

/// IPv4 addressing of an interface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mode == 'Static' ? has(self.address) : (!has(self.address) && !has(self.gateway))",
        "message": "address is required for Static and not allowed otherwise; gateway only with Static",
        "fieldPath": ".address"
    },
    {
        "rule": "!has(self.address) || (isCIDR(self.address) && cidr(self.address).ip().family() == 4)",
        "message": "address must be an IPv4 address in CIDR notation, e.g. 192.168.1.10/24",
        "fieldPath": ".address"
    },
    {
        "rule": "!has(self.gateway) || !has(self.address) || !isCIDR(self.address) || (isIP(self.gateway) && ip(self.gateway).family() == 4 && cidr(self.address).containsIP(self.gateway))",
        "message": "gateway must be an IPv4 address inside the address's network",
        "fieldPath": ".gateway"
    }
]))]
pub struct Ipv4Config {
    /// `Dhcp` (the default), `Static` (with `address`) or `Manual` (left to the container).
    #[serde(default)]
    pub mode: AddressMode,
    /// Address with prefix length, e.g. `192.168.1.10/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 18))]
    pub address: Option<String>,
    /// Default gateway, inside the address's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 7, max = 15))]
    pub gateway: Option<String>,
}

/// IPv6 addressing of an interface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mode == 'Static' ? has(self.address) : (!has(self.address) && !has(self.gateway))",
        "message": "address is required for Static and not allowed otherwise; gateway only with Static",
        "fieldPath": ".address"
    },
    {
        "rule": "!has(self.address) || (isCIDR(self.address) && cidr(self.address).ip().family() == 6)",
        "message": "address must be an IPv6 address in CIDR notation, e.g. fd00::10/64",
        "fieldPath": ".address"
    },
    {
        "rule": "!has(self.gateway) || !has(self.address) || !isCIDR(self.address) || (isIP(self.gateway) && ip(self.gateway).family() == 6 && cidr(self.address).containsIP(self.gateway))",
        "message": "gateway must be an IPv6 address inside the address's network",
        "fieldPath": ".gateway"
    }
]))]
pub struct Ipv6Config {
    /// `Dhcp`, `Auto` (SLAAC), `Static` (with `address`) or `Manual`.
    pub mode: Ipv6Mode,
    /// Address with prefix length, e.g. `fd00::10/64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 4, max = 43))]
    pub address: Option<String>,
    /// Default gateway, inside the address's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 39))]
    pub gateway: Option<String>,
}

/// How an IPv4 address is assigned.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AddressMode {
    /// From a DHCP server.
    #[default]
    Dhcp,
    /// The given `address` and `gateway`.
    Static,
    /// Not configured by Proxmox.
    Manual,
}

/// How an IPv6 address is assigned.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Ipv6Mode {
    /// From a DHCPv6 server.
    Dhcp,
    /// Stateless autoconfiguration (SLAAC).
    #[default]
    Auto,
    /// The given `address` and `gateway`.
    Static,
    /// Not configured by Proxmox.
    Manual,
}

/// DNS settings of the container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// Name server addresses (IPv4 or IPv6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3), inner(length(min = 2, max = 39)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(a, isIP(a))", "message": "each name server must be an IP address"
    }]))]
    pub nameservers: Vec<String>,
    /// Search domain, e.g. `example.org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = "^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
        )
    )]
    pub search_domain: Option<String>,
}

/// Container feature flags. Anything but `nesting` needs `root@pam` credentials on the node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Allow nested containers (needed by recent systemd in unprivileged containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesting: Option<bool>,
    /// Allow the `keyctl()` system call (e.g. for Docker inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyctl: Option<bool>,
    /// Allow FUSE mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse: Option<bool>,
    /// Allow `mknod()` (experimental in Proxmox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mknod: Option<bool>,
    /// File system types the container may mount, e.g. `nfs`, `cifs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 32), regex(pattern = "^[a-z0-9_.]+$"))
    )]
    pub mount: Vec<String>,
}

/// Start order on host boot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    /// Position in the boot order (lower starts first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100_000))]
    pub order: Option<i32>,
    /// Seconds to wait after starting this container before the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub up_delay_seconds: Option<i32>,
    /// Seconds to wait for this container to stop on host shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub down_delay_seconds: Option<i32>,
}

/// Desired power state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PowerState {
    /// Keep the container running.
    #[default]
    Running,
    /// Keep the container stopped (graceful shutdown, then stop after the timeout).
    Stopped,
}

/// What happens in Proxmox when the object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Stop and destroy the container with its volumes.
    #[default]
    Delete,
    /// Leave the container; only the ownership marker is removed.
    Retain,
}

/// How changes reach a running container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// Allow the operator to restart the container to apply a change Proxmox applies only
    /// to a stopped container. Without it, such changes are reported as pending.
    #[serde(default)]
    pub restart_allowed: bool,
    /// Seconds a graceful shutdown may take before the container is stopped.
    #[serde(default = "default_shutdown_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub shutdown_timeout_seconds: i32,
    /// What to do when the template's digest changes: `Reprovision` runs the changed steps
    /// again (the default); `Ignore` keeps what was provisioned.
    #[serde(default)]
    pub template_updates: TemplateUpdatePolicy,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        Self {
            restart_allowed: false,
            shutdown_timeout_seconds: default_shutdown_timeout(),
            template_updates: TemplateUpdatePolicy::default(),
        }
    }
}

fn default_shutdown_timeout() -> i32 {
    60
}

/// Reaction to a changed template digest.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TemplateUpdatePolicy {
    /// Re-run exactly the provisioning steps whose digest changed.
    #[default]
    Reprovision,
    /// Keep what was provisioned; report the new digest as pending.
    Ignore,
}

/// What the pipeline observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcContainerStatus {
    /// One condition per pipeline phase (`Resolved`, `Placed`, `VmidAllocated`, `Created`,
    /// `Configured`, `Powered`, `Provisioned`, `Discovered`) plus kstatus `Ready`,
    /// `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Conditions,
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the container is in its life: `Pending`, `Creating`, `Configuring`, `Starting`,
    /// `Provisioning`, `Ready`, `Stopped`, `Deleting` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The `ProxmoxNode` the container is placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The VMID, recorded before the container is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<i64>,
    /// The first address found, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Every address found, per interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<InterfaceAddress>,
    /// The Proxmox task in flight (its UPID), so a restarted operator resumes waiting on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    /// The template digest the container was last provisioned with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_template_digest: Option<String>,
    /// Provisioning steps done, with the digest each was done with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub provisioned_steps: Vec<ProvisionedStep>,
    /// Changes that wait for a restart the update strategy does not allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_changes: Vec<String>,
    /// State of the template's declared services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,
    /// The Secret (in this namespace) holding discovered service credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalObjectRef>,
}

/// An address of an interface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceAddress {
    /// Interface name.
    pub interface: String,
    /// Address with prefix length.
    pub address: String,
}

/// A Proxmox task in flight.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    /// The task's UPID.
    pub upid: String,
    /// What the task does, e.g. `create`, `start`, `migrate`.
    pub action: String,
    /// The node the task runs on.
    pub node: String,
}

/// A provisioning step that completed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionedStep {
    /// Step name, e.g. `file:/etc/motd`, `packages:apt`, `script:setup`.
    pub name: String,
    /// The step's digest when it ran.
    pub digest: String,
}

/// A systemd unit's observed state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Unit name.
    pub name: String,
    /// `ActiveState`, e.g. `active`.
    pub active_state: String,
    /// `SubState`, e.g. `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_state: Option<String>,
    /// Declared ports seen listening.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening_ports: Vec<i32>,
}

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Object name.
    pub name: String,
}

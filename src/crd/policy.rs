//! `ProxmoxNode.spec.policy`: what a container placed on the node may ask for. The node's
//! administrator writes it; tenants writing `LxcContainer`s cannot widen it. The decision itself
//! lives in `pipeline::policy`, on the fully resolved create request (spec, template defaults
//! and node defaults merged), so a template cannot smuggle in what a container may not ask.
//!
//! Defaults are the safe ones: no privileged containers, no feature flag but `nesting`, no
//! bind or device mounts. Allow-lists of bridges, VLANs, storages and pools restrict nothing
//! while unset; once set, only what they list is allowed (an empty list allows nothing).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{BRIDGE_PATTERN, STORAGE_ID_PATTERN};
use super::provisioning::FILE_PATH_PATTERN;

/// What containers on this node may ask for. Checked on every create and change before any
/// Proxmox call; a container asking for more is `Stalled` with reason `PolicyDenied`, naming
/// its field and this policy's rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePolicy {
    /// Allow privileged containers (`unprivileged: false`, from the container or its template).
    /// Off by default: root in a privileged container is root on the host.
    #[serde(default)]
    pub allow_privileged: bool,
    /// Feature flags a container may turn on. Defaults to `[Nesting]`; an empty list allows
    /// none. `Keyctl`, `Fuse`, `Mknod` and `ForceRwSys` weaken the host's isolation and also
    /// need `root@pam` credentials. Mount types are governed by `allowedMountTypes`.
    #[serde(default = "default_allowed_features")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_features: Vec<FeatureFlag>,
    /// File system types a container may mount itself (`features.mount`, e.g. `nfs`, `cifs`).
    /// Empty (the default): none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 32), regex(pattern = "^[a-z0-9_.]+$"))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_mount_types: Vec<String>,
    /// Bridges network interfaces may attach to (after the node's default bridge is filled
    /// in). Unset: any bridge. Set: only these; an empty list allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(regex(pattern = BRIDGE_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_bridges: Option<Vec<String>>,
    /// VLAN tags network interfaces may use, as inclusive ranges. Unset: any tag, or none.
    /// Set: every interface must carry a tag inside one of the ranges; an untagged interface
    /// is refused (on a VLAN-aware bridge it would reach the native VLAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub allowed_vlans: Option<Vec<VlanRange>>,
    /// Storages for the root filesystem and mount-point volumes (after the node's default
    /// storage is filled in). Unset: any storage. Set: only these; empty allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        inner(length(min = 2, max = 64), regex(pattern = STORAGE_ID_PATTERN))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_storages: Option<Vec<String>>,
    /// Proxmox resource pools a container may join (`spec.pool`). Unset: any pool. Set: only
    /// these; empty allows none. A container without a pool is always allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 64), regex(pattern = "^[A-Za-z0-9_-]+$"))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_pools: Option<Vec<String>>,
    /// Which kinds of mount point are allowed beyond storage volumes. By default only storage
    /// volumes (`STORAGE:SIZE`): no bind mounts of host directories, no host devices.
    #[serde(default)]
    pub mount_points: MountPointPolicy,
    /// Most CPU cores one container may see. Unset: no limit. When set, a container must name
    /// its cores (itself or through its template): unset means all of the host's cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8192))]
    pub max_cores: Option<i32>,
    /// Most memory of one container, in MiB. Unset: no limit. A container that names none gets
    /// Proxmox's default of 512 MiB, which is checked against this.
    #[serde(default, rename = "maxMemoryMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 268_435_456))]
    pub max_memory_mib: Option<i64>,
    /// Most swap of one container, in MiB. Unset: no limit. A container that names none gets
    /// Proxmox's default of 512 MiB, which is checked against this.
    #[serde(default, rename = "maxSwapMiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 268_435_456))]
    pub max_swap_mib: Option<i64>,
    /// Most disk of one container in GiB: the root filesystem plus every mount-point volume.
    /// Unset: no limit. Bind and device mounts do not count (they allocate nothing).
    #[serde(default, rename = "maxDiskGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_disk_gib: Option<i64>,
}

impl Default for NodePolicy {
    fn default() -> Self {
        Self {
            allow_privileged: false,
            allowed_features: default_allowed_features(),
            allowed_mount_types: Vec::new(),
            allowed_bridges: None,
            allowed_vlans: None,
            allowed_storages: None,
            allowed_pools: None,
            mount_points: MountPointPolicy::default(),
            max_cores: None,
            max_memory_mib: None,
            max_swap_mib: None,
            max_disk_gib: None,
        }
    }
}

fn default_allowed_features() -> Vec<FeatureFlag> {
    vec![FeatureFlag::Nesting]
}

/// A container feature flag (Proxmox `features`), other than `mount`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum FeatureFlag {
    /// `nesting`: nested containers (recent systemd needs it in unprivileged containers).
    Nesting,
    /// `keyctl`: the `keyctl()` system call (e.g. Docker inside).
    Keyctl,
    /// `fuse`: FUSE mounts.
    Fuse,
    /// `mknod`: creating device nodes (experimental in Proxmox).
    Mknod,
    /// `force_rw_sys`: `/sys` mounted read-write.
    ForceRwSys,
}

impl FeatureFlag {
    /// The flag's name in the `LxcContainer` spec (`spec.features.<name>`) and in this policy.
    pub fn spec_name(self) -> &'static str {
        match self {
            Self::Nesting => "nesting",
            Self::Keyctl => "keyctl",
            Self::Fuse => "fuse",
            Self::Mknod => "mknod",
            Self::ForceRwSys => "forceRwSys",
        }
    }
}

/// An inclusive range of VLAN tags.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.min <= self.max", "message": "min must not be greater than max"
}]))]
pub struct VlanRange {
    /// Lowest tag.
    #[schemars(range(min = 1, max = 4094))]
    pub min: i32,
    /// Highest tag.
    #[schemars(range(min = 1, max = 4094))]
    pub max: i32,
}

impl VlanRange {
    /// Whether `tag` is inside the range.
    pub fn contains(&self, tag: i32) -> bool {
        (self.min..=self.max).contains(&tag)
    }
}

/// Mount points other than storage volumes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!self.allowBindMounts || (has(self.bindMountHostPaths) && size(self.bindMountHostPaths) > 0)",
    "message": "bind mounts need at least one allowed host path",
    "fieldPath": ".bindMountHostPaths"
}]))]
pub struct MountPointPolicy {
    /// Allow bind mounts of host directories, under `bindMountHostPaths` only. Off by default:
    /// a bind mount exposes the host's file system to the container.
    #[serde(default)]
    pub allow_bind_mounts: bool,
    /// Host directories bind mounts may come from. A path is allowed when it is one of these or
    /// below one, compared by whole segments (`/srv/share` allows `/srv/share/a`, not
    /// `/srv/shared`); paths with `.` or `..` segments are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 2, max = 1024), regex(pattern = FILE_PATH_PATTERN)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(p, !p.matches('(^|/)[.][.]?(/|$)'))",
        "message": "host paths must not contain '.' or '..' segments"
    }]))]
    pub bind_mount_host_paths: Vec<String>,
    /// Allow mounting host block devices (`/dev/...`). Off by default.
    #[serde(default)]
    pub allow_device_mounts: bool,
}

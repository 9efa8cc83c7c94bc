//! Policy: whether a container's fully resolved create request (spec, template defaults and
//! node defaults merged by `desired::desired_container`) stays inside its node's `spec.policy`.
//! Pure: the controller asks before any Proxmox call and stalls the container on a denial.
//!
//! Checking the resolved request rather than the spec means a template's defaults (a
//! privileged template, a template turning on `keyctl`) and the node's defaults (its bridge
//! and storage) are held to the same rules as what the container names itself.

use std::fmt;

use super::desired::DesiredContainer;
use crate::crd::policy::{FeatureFlag, NodePolicy, VlanRange};
use crate::proxmox::property::Volume;

/// Proxmox's memory when a container names none (MiB).
pub const PVE_DEFAULT_MEMORY_MIB: u64 = 512;
/// Proxmox's swap when a container names none (MiB).
pub const PVE_DEFAULT_SWAP_MIB: u64 = 512;

/// A request the node's policy refuses: the container's field, what it asks, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {asked} is not allowed by {rule}")]
pub struct PolicyDenied {
    /// The `LxcContainer` field that asks too much, e.g. `spec.resources.memoryMiB` (the value
    /// may come from the template's defaults or the node's, filled in for that field).
    pub field: String,
    /// What the request asks for, e.g. `8192`.
    pub asked: String,
    /// The rule it breaks, e.g. `ProxmoxNode pve1 spec.policy.maxMemoryMiB = 4096`.
    pub rule: String,
}

/// Checks `desired` (for a container on the `ProxmoxNode` named `node`) against `policy`; the
/// first rule broken is returned.
pub fn check(node: &str, policy: &NodePolicy, desired: &DesiredContainer) -> Result<(), PolicyDenied> {
    let deny = |field: String, asked: String, rule: &str, value: String| PolicyDenied {
        field,
        asked,
        rule: format!("ProxmoxNode {node} spec.policy.{rule} = {value}"),
    };

    if !desired.unprivileged && !policy.allow_privileged {
        return Err(deny(
            "spec.unprivileged".into(),
            "false".into(),
            "allowPrivileged",
            "false".into(),
        ));
    }

    if let Some(f) = &desired.features {
        let flags = [
            (FeatureFlag::Nesting, f.nesting),
            (FeatureFlag::Keyctl, f.keyctl),
            (FeatureFlag::Fuse, f.fuse),
            (FeatureFlag::Mknod, f.mknod),
            (FeatureFlag::ForceRwSys, f.force_rw_sys),
        ];
        for (flag, on) in flags {
            if on == Some(true) && !policy.allowed_features.contains(&flag) {
                return Err(deny(
                    format!("spec.features.{}", flag.spec_name()),
                    "true".into(),
                    "allowedFeatures",
                    list(policy.allowed_features.iter().map(|f| format!("{f:?}"))),
                ));
            }
        }
        if let Some(kind) = f.mount.iter().find(|m| !policy.allowed_mount_types.contains(*m)) {
            return Err(deny(
                "spec.features.mount".into(),
                kind.clone(),
                "allowedMountTypes",
                list(&policy.allowed_mount_types),
            ));
        }
    }

    if let (Some(pool), Some(allowed)) = (&desired.pool, &policy.allowed_pools)
        && !allowed.contains(pool)
    {
        return Err(deny(
            "spec.pool".into(),
            pool.clone(),
            "allowedPools",
            list(allowed),
        ));
    }

    for (i, net) in desired.nets.iter().enumerate() {
        if let (Some(bridge), Some(allowed)) = (&net.bridge, &policy.allowed_bridges)
            && !allowed.contains(bridge)
        {
            return Err(deny(
                format!("spec.network[{i}].bridge"),
                bridge.clone(),
                "allowedBridges",
                list(allowed),
            ));
        }
        if let Some(ranges) = &policy.allowed_vlans {
            let inside = |tag: i32| ranges.iter().any(|r| r.contains(tag));
            if !net.tag.is_some_and(|t| inside(i32::from(t))) {
                let asked = net.tag.map_or("untagged".to_string(), |t| t.to_string());
                return Err(deny(
                    format!("spec.network[{i}].vlan"),
                    asked,
                    "allowedVlans",
                    vlans(ranges),
                ));
            }
            if let Some(trunks) = &net.trunks
                && !trunk_tags(trunks).is_some_and(|tags| tags.into_iter().all(inside))
            {
                return Err(deny(
                    format!("spec.network[{i}].trunks"),
                    trunks.clone(),
                    "allowedVlans",
                    vlans(ranges),
                ));
            }
        }
    }

    let volumes = desired
        .rootfs
        .iter()
        .map(|v| ("spec.rootfs".to_string(), v))
        .chain(
            desired
                .mount_points
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("spec.mountPoints[{i}]"), v)),
        );
    let mut disk_gib = 0u64;
    let mut disk_unknown = None;
    for (field, volume) in volumes {
        match kind(volume) {
            VolumeKind::Device(path) if !policy.mount_points.allow_device_mounts => {
                return Err(deny(
                    field,
                    format!("device mount of {path}"),
                    "mountPoints.allowDeviceMounts",
                    "false".into(),
                ));
            }
            VolumeKind::Device(_) => {}
            VolumeKind::Bind(path) => {
                let mp = &policy.mount_points;
                if !mp.allow_bind_mounts {
                    return Err(deny(
                        field,
                        format!("bind mount of {path}"),
                        "mountPoints.allowBindMounts",
                        "false".into(),
                    ));
                }
                if !mp.bind_mount_host_paths.iter().any(|p| under(path, p)) {
                    return Err(deny(
                        field,
                        format!("bind mount of {path}"),
                        "mountPoints.bindMountHostPaths",
                        list(&mp.bind_mount_host_paths),
                    ));
                }
            }
            VolumeKind::Storage { storage, size_gib } => {
                if let Some(allowed) = &policy.allowed_storages
                    && !allowed.iter().any(|s| s == storage)
                {
                    return Err(deny(
                        format!("{field}.storage"),
                        storage.to_string(),
                        "allowedStorages",
                        list(allowed),
                    ));
                }
                match size_gib {
                    // Size 0 asks Proxmox for a volume without a size limit.
                    Some(gib) if gib > 0 => disk_gib += gib,
                    _ => disk_unknown = disk_unknown.or(Some(field)),
                }
            }
        }
    }

    if let Some(max) = policy.max_cores {
        let Some(cores) = desired.cores else {
            return Err(deny(
                "spec.resources.cores".into(),
                "unset (all of the host's cores)".into(),
                "maxCores",
                max.to_string(),
            ));
        };
        if i64::from(cores) > i64::from(max) {
            return Err(deny(
                "spec.resources.cores".into(),
                cores.to_string(),
                "maxCores",
                max.to_string(),
            ));
        }
    }
    let maxima = [
        (
            "spec.resources.memoryMiB",
            desired.memory.unwrap_or(PVE_DEFAULT_MEMORY_MIB),
            "maxMemoryMiB",
            policy.max_memory_mib,
        ),
        (
            "spec.resources.swapMiB",
            desired.swap.unwrap_or(PVE_DEFAULT_SWAP_MIB),
            "maxSwapMiB",
            policy.max_swap_mib,
        ),
    ];
    for (field, asked, rule, max) in maxima {
        if let Some(max) = max
            && i128::from(asked) > i128::from(max)
        {
            return Err(deny(field.into(), asked.to_string(), rule, max.to_string()));
        }
    }
    if let Some(max) = policy.max_disk_gib {
        if let Some(field) = disk_unknown {
            return Err(deny(
                format!("{field}.sizeGiB"),
                "a volume without a known size limit".into(),
                "maxDiskGiB",
                max.to_string(),
            ));
        }
        if i128::from(disk_gib) > i128::from(max) {
            return Err(deny(
                "spec.rootfs.sizeGiB + spec.mountPoints[*].sizeGiB".into(),
                format!("{disk_gib} GiB in all"),
                "maxDiskGiB",
                max.to_string(),
            ));
        }
    }
    Ok(())
}

/// What a `rootfs` or `mp[n]` volume is, the way Proxmox tells them apart
/// (`PVE::LXC::Config::classify_mountpoint`): a path under `/dev/` is a device, any other
/// absolute path a bind mount, anything else a storage volume.
enum VolumeKind<'a> {
    Device(&'a str),
    Bind(&'a str),
    /// `STORAGE:SIZE_GiB` for a new volume, or an allocated one whose size is in `size=`.
    Storage {
        storage: &'a str,
        size_gib: Option<u64>,
    },
}

fn kind(volume: &Volume) -> VolumeKind<'_> {
    let v = volume.volume.as_str();
    if v.starts_with("/dev/") {
        VolumeKind::Device(v)
    } else if v.starts_with('/') {
        VolumeKind::Bind(v)
    } else {
        let new_size = v
            .split_once(':')
            .and_then(|(_, size)| size.parse::<f64>().ok())
            .filter(|gib| gib.is_finite() && *gib >= 0.0)
            .map(|gib| gib.ceil() as u64);
        VolumeKind::Storage {
            storage: volume.storage(),
            size_gib: new_size.or_else(|| volume.size_gib()),
        }
    }
}

/// Whether host `path` is `prefix` or below it, by whole segments; paths with `.` or `..`
/// segments (or empty ones) are never under anything.
fn under(path: &str, prefix: &str) -> bool {
    let segments = |p: &str| -> Option<Vec<String>> {
        let rest = p.strip_prefix('/')?;
        let parts: Vec<String> = rest
            .trim_end_matches('/')
            .split('/')
            .map(str::to_string)
            .collect();
        let clean = parts.iter().all(|s| !s.is_empty() && s != "." && s != "..");
        clean.then_some(parts)
    };
    match (segments(path), segments(prefix)) {
        (Some(path), Some(prefix)) => path.starts_with(&prefix),
        _ => false,
    }
}

/// The VLAN tags of a `trunks` value (`10;20-30`), or `None` when it does not parse.
fn trunk_tags(trunks: &str) -> Option<Vec<i32>> {
    let mut tags = Vec::new();
    for part in trunks.split(';').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (i32, i32) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        if lo > hi || hi - lo > 4094 {
            return None;
        }
        tags.extend(lo..=hi);
    }
    Some(tags)
}

fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(", "))
}

fn vlans(ranges: &[VlanRange]) -> String {
    list(ranges.iter().map(|r| match r.min == r.max {
        true => r.min.to_string(),
        false => format!("{}-{}", r.min, r.max),
    }))
}

#[cfg(test)]
mod tests;

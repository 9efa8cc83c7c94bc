//! Before a create: what the schema cannot know and Proxmox would only find out after the
//! container exists (a NIC on a bridge the node lacks fails in the start task; a full storage
//! fails inside the create task) — judged from the node's network list and its last probe's
//! storage figures, so a container that cannot work is never created.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::desired::DesiredContainer;
use super::resolve::Blocked;
use crate::crd::node::StorageCapacity;
use crate::proxmox::types::NetworkEntry;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Interface types a container's NIC can be attached to.
fn is_bridge(kind: &str) -> bool {
    matches!(kind, "bridge" | "OVSBridge" | "vnet")
}

/// `a.b.c.d/n` as (address, prefix length).
fn ipv4_cidr(s: &str) -> Option<(Ipv4Addr, u32)> {
    let (addr, bits) = s.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    (bits <= 32).then_some(())?;
    Some((addr.parse().ok()?, bits))
}

fn network_of(addr: Ipv4Addr, bits: u32) -> u32 {
    u32::from(addr) & u32::MAX.checked_shl(32 - bits).unwrap_or(0)
}

/// Every NIC's bridge exists on the node (`networks`: `GET /nodes/{node}/network`), and a
/// static IPv4 address lies in the bridge's subnet when the host has an address on it.
pub fn check_networks(
    desired: &DesiredContainer,
    networks: &[NetworkEntry],
    node: &str,
) -> Result<(), Blocked> {
    for net in &desired.nets {
        let Some(bridge) = net.bridge.as_deref() else {
            continue;
        };
        let Some(found) = networks.iter().find(|n| n.iface == bridge && is_bridge(&n.kind)) else {
            let mut known: Vec<&str> = networks
                .iter()
                .filter(|n| is_bridge(&n.kind))
                .map(|n| n.iface.as_str())
                .collect();
            known.sort_unstable();
            return Err(Blocked {
                reason: "BridgeNotFound",
                message: format!(
                    "network {}: bridge {bridge} does not exist on Proxmox node {node} (bridges: {})",
                    net.name,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        };
        let (Some(ip), Some(host)) = (
            net.ip.as_deref().and_then(ipv4_cidr),
            found.cidr.as_deref().and_then(ipv4_cidr),
        ) else {
            continue;
        };
        let (bridge_net, bits) = (network_of(host.0, host.1), host.1);
        if network_of(ip.0, bits) != bridge_net {
            return Err(Blocked {
                reason: "AddressOutsideSubnet",
                message: format!(
                    "network {}: address {} is outside the subnet {}/{bits} of bridge {bridge} on Proxmox node {node}",
                    net.name,
                    ip.0,
                    Ipv4Addr::from(bridge_net)
                ),
            });
        }
    }
    Ok(())
}

/// The new volumes (`STORAGE:SIZE_GiB`) fit into their storages' free space as last probed
/// (`storage`: the node's `status.capacity.storage`; a storage not listed is not judged).
pub fn check_storage(
    desired: &DesiredContainer,
    storage: &BTreeMap<String, StorageCapacity>,
    node: &str,
) -> Result<(), Blocked> {
    let mut wanted: BTreeMap<&str, f64> = BTreeMap::new();
    for volume in desired.rootfs.iter().chain(&desired.mount_points) {
        let Some((id, size)) = volume.volume.split_once(':') else {
            continue;
        };
        if let Ok(gib) = size.parse::<f64>() {
            *wanted.entry(id).or_default() += gib;
        }
    }
    for (id, gib) in wanted {
        let Some(cap) = storage.get(id) else {
            continue;
        };
        let free = (cap.total_bytes - cap.used_bytes).max(0) as f64;
        if gib * GIB > free {
            return Err(Blocked {
                reason: "InsufficientStorage",
                message: format!(
                    "storage {id} on Proxmox node {node} has {:.1} GiB free; the container's new volumes need {gib} GiB",
                    free / GIB
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::property::{Net, Volume};

    fn desired(nets: &[&str], rootfs: &str) -> DesiredContainer {
        DesiredContainer {
            nets: nets.iter().map(|n| Net::parse(n).unwrap()).collect(),
            rootfs: Some(Volume::parse(rootfs).unwrap()),
            ..DesiredContainer::default()
        }
    }

    fn entry(iface: &str, kind: &str, cidr: Option<&str>) -> NetworkEntry {
        NetworkEntry {
            iface: iface.into(),
            kind: kind.into(),
            cidr: cidr.map(Into::into),
        }
    }

    #[test]
    fn a_bridge_must_exist_and_a_static_address_be_in_its_subnet() {
        let nets = [
            entry("eno1", "eth", None),
            entry("vmbr0", "bridge", Some("192.168.10.2/24")),
            entry("vmbr1", "bridge", None),
        ];
        let ok = desired(&["name=eth0,bridge=vmbr0,ip=192.168.10.50/24"], "local-lvm:4");
        assert_eq!(check_networks(&ok, &nets, "pve1"), Ok(()));
        let dhcp = desired(&["name=eth0,bridge=vmbr0,ip=dhcp"], "local-lvm:4");
        assert_eq!(check_networks(&dhcp, &nets, "pve1"), Ok(()));
        // No host address on the bridge: nothing to compare with.
        let routed = desired(&["name=eth0,bridge=vmbr1,ip=10.9.9.9/24"], "local-lvm:4");
        assert_eq!(check_networks(&routed, &nets, "pve1"), Ok(()));
        let missing = desired(&["name=eth0,bridge=vmbr7,ip=dhcp"], "local-lvm:4");
        let b = check_networks(&missing, &nets, "pve1").unwrap_err();
        assert_eq!(b.reason, "BridgeNotFound");
        assert!(
            b.message.contains("vmbr7") && b.message.contains("vmbr0, vmbr1"),
            "{}",
            b.message
        );
        // A port is not a bridge.
        let port = desired(&["name=eth0,bridge=eno1,ip=dhcp"], "local-lvm:4");
        assert_eq!(
            check_networks(&port, &nets, "pve1").unwrap_err().reason,
            "BridgeNotFound"
        );
        let outside = desired(&["name=eth0,bridge=vmbr0,ip=10.0.0.5/24"], "local-lvm:4");
        let b = check_networks(&outside, &nets, "pve1").unwrap_err();
        assert_eq!(b.reason, "AddressOutsideSubnet");
        assert!(
            b.message.contains("10.0.0.5") && b.message.contains("192.168.10.0/24"),
            "{}",
            b.message
        );
    }

    #[test]
    fn new_volumes_must_fit_the_free_space() {
        let gib = 1i64 << 30;
        let storage = BTreeMap::from([(
            "local-lvm".to_string(),
            StorageCapacity {
                total_bytes: 10 * gib,
                used_bytes: 7 * gib,
            },
        )]);
        assert_eq!(
            check_storage(&desired(&[], "local-lvm:3"), &storage, "pve1"),
            Ok(())
        );
        let b = check_storage(&desired(&[], "local-lvm:4"), &storage, "pve1").unwrap_err();
        assert_eq!(b.reason, "InsufficientStorage");
        assert!(
            b.message.contains("local-lvm") && b.message.contains("3.0 GiB free"),
            "{}",
            b.message
        );
        // Unknown storage, or an existing volume: not judged.
        assert_eq!(
            check_storage(&desired(&[], "other:400"), &storage, "pve1"),
            Ok(())
        );
        assert_eq!(
            check_storage(&desired(&[], "local-lvm:vm-200-disk-0"), &storage, "pve1"),
            Ok(())
        );
    }
}

//! The containers each node's poll observed, kept in memory for every controller (and the
//! status page), and the pure diff that says which containers changed between two polls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use crate::proxmox::types::ClusterResource;

/// What a poll saw of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub vmid: u32,
    pub node: String,
    pub status: String,
    pub name: Option<String>,
    pub lock: Option<String>,
    pub tags: Option<String>,
    /// `maxcpu` in thousandths (it is fractional with a `cpulimit`): a `cores` change shows here.
    pub maxcpu_milli: Option<u64>,
    pub maxmem: Option<u64>,
    pub maxdisk: Option<u64>,
}

impl ObservedContainer {
    /// From a `/cluster/resources` entry (`None` for anything but an LXC guest).
    pub fn from_resource(r: &ClusterResource) -> Option<Self> {
        if r.kind != "lxc" {
            return None;
        }
        Some(Self {
            vmid: u32::try_from(r.vmid?).ok()?,
            node: r.node.clone()?,
            status: r.status.clone().unwrap_or_else(|| "unknown".into()),
            name: r.name.clone(),
            lock: r.lock.clone(),
            tags: r.tags.clone(),
            maxcpu_milli: r
                .maxcpu
                .filter(|c| c.is_finite() && *c >= 0.0)
                .map(|c| (c * 1000.0).round() as u64),
            maxmem: r.maxmem,
            maxdisk: r.maxdisk,
        })
    }
}

/// One node's last observation.
#[derive(Debug, Clone, Default)]
pub struct NodeObservation {
    /// The VMID space it belongs to (nodes behind one endpoint share it).
    pub cluster: String,
    /// Containers on this node by VMID.
    pub containers: BTreeMap<u32, ObservedContainer>,
    /// Every VMID in use in the cluster (any guest type, any node).
    pub cluster_vmids: BTreeSet<u32>,
}

/// The VMIDs whose observation differs between two polls (appeared, vanished or changed).
pub fn changed_vmids(
    old: &BTreeMap<u32, ObservedContainer>,
    new: &BTreeMap<u32, ObservedContainer>,
) -> BTreeSet<u32> {
    let keys: BTreeSet<u32> = old.keys().chain(new.keys()).copied().collect();
    keys.into_iter().filter(|k| old.get(k) != new.get(k)).collect()
}

/// The shared observations, by `ProxmoxNode` name.
#[derive(Debug, Clone, Default)]
pub struct Observations(Arc<RwLock<HashMap<String, NodeObservation>>>);

impl Observations {
    /// Stores a node's new observation and returns the VMIDs that changed.
    pub fn update(&self, node: &str, observation: NodeObservation) -> BTreeSet<u32> {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        let old = map.get(node).map(|o| o.containers.clone()).unwrap_or_default();
        let changed = changed_vmids(&old, &observation.containers);
        map.insert(node.to_string(), observation);
        changed
    }

    /// A node's last observation.
    pub fn get(&self, node: &str) -> Option<NodeObservation> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
    }

    /// Every VMID the polls saw in use in `cluster` (any node, any guest type).
    pub fn cluster_vmids(&self, cluster: &str) -> BTreeSet<u32> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|o| o.cluster == cluster)
            .flat_map(|o| o.cluster_vmids.iter().copied())
            .collect()
    }

    /// Forgets a node (deleted).
    pub fn remove(&self, node: &str) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(vmid: u32, status: &str) -> ObservedContainer {
        ObservedContainer {
            vmid,
            node: "pve1".into(),
            status: status.into(),
            name: None,
            lock: None,
            tags: None,
            maxcpu_milli: None,
            maxmem: None,
            maxdisk: None,
        }
    }

    #[test]
    fn only_changed_containers_are_reported() {
        let old: BTreeMap<u32, ObservedContainer> =
            [(100, ct(100, "running")), (101, ct(101, "running"))].into();
        let new: BTreeMap<u32, ObservedContainer> = [
            (100, ct(100, "running")),
            (101, ct(101, "stopped")),
            (102, ct(102, "running")),
        ]
        .into();
        assert_eq!(changed_vmids(&old, &new), [101, 102].into());
        assert_eq!(
            changed_vmids(&new, &old),
            [101, 102].into(),
            "a vanished container is a change"
        );
        assert!(
            changed_vmids(&new, &new).is_empty(),
            "steady state changes nothing"
        );
        let mut more_cores = new.clone();
        more_cores.get_mut(&100).unwrap().maxcpu_milli = Some(4000);
        assert_eq!(
            changed_vmids(&new, &more_cores),
            [100].into(),
            "a cores change is a change"
        );
        let obs = Observations::default();
        assert_eq!(
            obs.update(
                "pve1",
                NodeObservation {
                    containers: old.clone(),
                    ..Default::default()
                }
            ),
            [100, 101].into()
        );
        assert!(
            obs.update(
                "pve1",
                NodeObservation {
                    containers: old,
                    ..Default::default()
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn only_lxc_guests_are_containers() {
        let r = |kind: &str| ClusterResource {
            id: format!("{kind}/100"),
            kind: kind.into(),
            node: Some("pve1".into()),
            vmid: Some(100),
            status: Some("running".into()),
            name: Some("web".into()),
            tags: None,
            lock: None,
            template: false,
            maxcpu: Some(1.5),
            maxmem: None,
            mem: None,
            maxdisk: None,
            disk: None,
            storage: None,
        };
        let observed = ObservedContainer::from_resource(&r("lxc")).unwrap();
        assert_eq!((observed.vmid, observed.maxcpu_milli), (100, Some(1500)));
        assert!(ObservedContainer::from_resource(&r("qemu")).is_none());
    }
}

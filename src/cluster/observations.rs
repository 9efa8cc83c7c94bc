//! The containers each node's poll observed, kept in memory for every controller (and the
//! status page), and the pure diff that says which containers changed between two polls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

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
    /// When it was stored.
    pub at: Option<Instant>,
}

/// The VMIDs whose observation differs between two polls (appeared, vanished or changed).
pub fn changed_vmids(
    old: &BTreeMap<u32, ObservedContainer>,
    new: &BTreeMap<u32, ObservedContainer>,
) -> BTreeSet<u32> {
    let keys: BTreeSet<u32> = old.keys().chain(new.keys()).copied().collect();
    keys.into_iter().filter(|k| old.get(k) != new.get(k)).collect()
}

/// How long the power state a finished task reported outranks `/cluster/resources`. The
/// listing's `status` comes from pvestatd's RRD data, refreshed about every 10 s (PVE-FACTS
/// §6.2), so a container a task just started can show `stopped` for up to one cycle; 15 s covers
/// a cycle and a late poll. A listing that agrees ends the window early; one that still
/// disagrees when it ends is a change (drift), noticed at that poll.
pub const LISTING_LAG: Duration = Duration::from_secs(15);

/// A power state a finished task reported, until when it outranks the listing.
#[derive(Debug, Clone)]
struct Expected {
    status: &'static str,
    until: Instant,
}

/// The shared observations, by `ProxmoxNode` name, and the power states tasks reported that
/// the listings may not show yet.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    nodes: Arc<RwLock<HashMap<String, NodeObservation>>>,
    expected: Arc<Mutex<HashMap<(String, u32), Expected>>>,
}

/// What one poll changed: the containers before and after (as stored), and the VMIDs whose
/// observation differs.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub before: BTreeMap<u32, ObservedContainer>,
    pub after: BTreeMap<u32, ObservedContainer>,
    pub changed: BTreeSet<u32>,
}

impl Observations {
    /// Stores a node's new observation and returns what changed. Where a finished task
    /// reported a power state within [`LISTING_LAG`] and the listing still shows another, the
    /// task's word is stored: the listing is late, not the container changed.
    pub fn update(&self, node: &str, observation: NodeObservation) -> Update {
        self.update_at(node, observation, Instant::now())
    }

    fn update_at(&self, node: &str, mut observation: NodeObservation, now: Instant) -> Update {
        {
            let mut expected = self.expected.lock().unwrap_or_else(|p| p.into_inner());
            expected.retain(|(n, vmid), e| {
                if n != node {
                    return e.until > now;
                }
                match observation.containers.get_mut(vmid) {
                    // The listing caught up (or the window is over): it speaks for itself.
                    Some(ct) if ct.status == e.status || e.until <= now => false,
                    Some(ct) => {
                        ct.status = e.status.to_string();
                        true
                    }
                    // Gone from the listing: that is news of its own.
                    None => false,
                }
            });
        }
        let mut map = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let before = map.get(node).map(|o| o.containers.clone()).unwrap_or_default();
        let changed = changed_vmids(&before, &observation.containers);
        let after = observation.containers.clone();
        observation.at = Some(now);
        map.insert(node.to_string(), observation);
        Update {
            before,
            after,
            changed,
        }
    }

    /// A task that ended left container `vmid` on `node` (a `ProxmoxNode` name) `running` or
    /// not: the next polls take that over a listing that still shows the state before it, for
    /// [`LISTING_LAG`].
    pub fn expect(&self, node: &str, vmid: u32, running: bool) {
        self.expect_at(node, vmid, running, Instant::now());
    }

    fn expect_at(&self, node: &str, vmid: u32, running: bool, now: Instant) {
        let status = if running { "running" } else { "stopped" };
        let mut expected = self.expected.lock().unwrap_or_else(|p| p.into_inner());
        expected.insert(
            (node.to_string(), vmid),
            Expected {
                status,
                until: now + LISTING_LAG,
            },
        );
    }

    /// A node's last observation.
    pub fn get(&self, node: &str) -> Option<NodeObservation> {
        self.nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
    }

    /// Whether container `vmid` runs, as `node`'s last poll lists it, if that poll is at most
    /// `fresh` old and lists it unlocked in a settled state (not `unknown`).
    pub fn listed_running(&self, node: &str, vmid: u32, fresh: Duration) -> Option<bool> {
        let map = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let observation = map.get(node)?;
        if observation.at?.elapsed() > fresh {
            return None;
        }
        let ct = observation.containers.get(&vmid)?;
        if ct.lock.is_some() {
            return None;
        }
        match ct.status.as_str() {
            "running" => Some(true),
            "stopped" => Some(false),
            _ => None,
        }
    }

    /// Every VMID the polls saw in use in `cluster` (any node, any guest type).
    pub fn cluster_vmids(&self, cluster: &str) -> BTreeSet<u32> {
        let map = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|o| o.cluster == cluster)
            .flat_map(|o| o.cluster_vmids.iter().copied())
            .collect()
    }

    /// Forgets a node (deleted).
    pub fn remove(&self, node: &str) {
        self.nodes.write().unwrap_or_else(|p| p.into_inner()).remove(node);
        self.expected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _), _| n != node);
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
            )
            .changed,
            BTreeSet::from([100, 101])
        );
        assert!(
            obs.update(
                "pve1",
                NodeObservation {
                    containers: old,
                    ..Default::default()
                }
            )
            .changed
            .is_empty()
        );
    }

    #[test]
    fn a_task_s_word_outranks_a_late_listing_for_the_lag_only() {
        let obs = Observations::default();
        let at = |status: &str| NodeObservation {
            containers: [(100, ct(100, status)), (101, ct(101, "stopped"))].into(),
            ..Default::default()
        };
        let t0 = Instant::now();
        obs.update_at("pve1", at("stopped"), t0);
        // A start task ended: the listing still shows the container stopped (pvestatd lags).
        obs.expect_at("pve1", 100, true, t0);
        let u = obs.update_at("pve1", at("stopped"), t0 + Duration::from_secs(2));
        assert_eq!(u.changed, BTreeSet::from([100]), "stored as running: a change");
        assert_eq!(u.after[&100].status, "running");
        assert_eq!(u.after[&101].status, "stopped", "other containers untouched");
        let u = obs.update_at("pve1", at("stopped"), t0 + Duration::from_secs(7));
        assert!(u.changed.is_empty(), "still within the lag: nothing new");
        // The window ends with the listing still showing it stopped: that is drift.
        let u = obs.update_at("pve1", at("stopped"), t0 + LISTING_LAG + Duration::from_secs(1));
        assert_eq!(u.changed, BTreeSet::from([100]));
        assert_eq!(u.after[&100].status, "stopped");

        // A listing that caught up ends the window early: a stop right after is seen at once.
        obs.expect_at("pve1", 100, true, t0 + Duration::from_secs(20));
        let u = obs.update_at("pve1", at("running"), t0 + Duration::from_secs(22));
        assert_eq!(u.after[&100].status, "running");
        let u = obs.update_at("pve1", at("stopped"), t0 + Duration::from_secs(24));
        assert_eq!(u.changed, BTreeSet::from([100]), "stopped behind our back");
        assert_eq!(u.after[&100].status, "stopped");
        // Another node's listing does not consume this node's expectation.
        obs.expect_at("pve1", 100, true, t0 + Duration::from_secs(30));
        obs.update_at("pve2", at("stopped"), t0 + Duration::from_secs(31));
        let u = obs.update_at("pve1", at("stopped"), t0 + Duration::from_secs(32));
        assert_eq!(u.after[&100].status, "running");
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

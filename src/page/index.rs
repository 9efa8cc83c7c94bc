//! The overview's index over the container cache, kept as watch events arrive: every container
//! filed by phase in name order (all of them, per namespace, per node shown), what each node
//! card counts and the time-to-Ready tally. A view reads counts and the first rows of each phase
//! from it, so the cost of a page follows the rows it shows, not the containers that exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::crd::LxcContainer;
use crate::page::filter::{ContainerFilter, phase_of};

/// The phases in the order the pipeline walks them (any other after them, by name).
pub const PHASES: [&str; 9] = [
    "Failed",
    "Pending",
    "Creating",
    "Configuring",
    "Starting",
    "Provisioning",
    "Ready",
    "Stopped",
    "Deleting",
];

/// The containers of one phase, as a view shows them: the count of all that match and the
/// first of them by namespace and name.
#[derive(Debug, Clone)]
pub struct PhaseRows {
    pub phase: String,
    pub count: usize,
    pub rows: Vec<Arc<LxcContainer>>,
}

/// What a node's card counts: containers placed on it and those with a Proxmox task in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeTally {
    pub managed: usize,
    pub tasks: usize,
}

/// Everything filed about the containers; see the module doc.
#[derive(Default)]
pub struct ContainerIndex {
    /// By namespace and name: the object each one is filed as, to unfile it on change.
    entries: HashMap<(String, String), Arc<LxcContainer>>,
    all: Phases,
    by_namespace: BTreeMap<String, Phases>,
    /// By the node a row shows (placed, else asked for), as the node filter reads it.
    by_node: BTreeMap<String, Phases>,
    /// By the node a container is placed on (`status.node`), as the node cards count.
    placed: HashMap<String, NodeTally>,
    /// Seconds from creation to Ready (containers Ready now) → how many took that long.
    ready_after: BTreeMap<i64, usize>,
}

impl ContainerIndex {
    /// An index of these containers.
    pub fn of(containers: impl IntoIterator<Item = Arc<LxcContainer>>) -> Self {
        let mut index = Self::default();
        for ct in containers {
            index.insert(ct);
        }
        index
    }

    /// Files a new container, or the new version of one (unfiling the old).
    pub fn insert(&mut self, ct: Arc<LxcContainer>) {
        if let Some(old) = self.entries.insert(key(&ct), ct.clone()) {
            self.file(&old, Change::Remove);
        }
        self.file(&ct, Change::Add);
    }

    /// Unfiles a container that is gone (one never filed is fine).
    pub fn remove(&mut self, ct: &LxcContainer) {
        if let Some(old) = self.entries.remove(&key(ct)) {
            self.file(&old, Change::Remove);
        }
    }

    /// How many containers there are.
    pub fn total(&self) -> usize {
        self.entries.len()
    }

    /// The namespaces that hold a container, in order.
    pub fn namespaces(&self) -> Vec<String> {
        self.by_namespace.keys().cloned().collect()
    }

    /// What the card of node `name` counts.
    pub fn on_node(&self, name: &str) -> NodeTally {
        self.placed.get(name).copied().unwrap_or_default()
    }

    /// Seconds to Ready and how many containers took that long, shortest first.
    pub fn ready_after(&self) -> Vec<(i64, usize)> {
        self.ready_after.iter().map(|(s, n)| (*s, *n)).collect()
    }

    /// The phases with a container matching `filter`, in pipeline order, each with its count
    /// and its first `rows` containers by namespace and name. Starts from the narrowest group
    /// the filter names (a namespace, else a node) and walks containers only for what the
    /// groups cannot answer (a name search, or a node within a namespace).
    pub fn select(&self, filter: &ContainerFilter, rows: usize) -> Vec<PhaseRows> {
        let group = if !filter.namespace.is_empty() {
            self.by_namespace.get(&filter.namespace)
        } else if !filter.node.is_empty() {
            self.by_node.get(&filter.node)
        } else {
            Some(&self.all)
        };
        let Some(group) = group else {
            return Vec::new();
        };
        let walk = !filter.q.is_empty() || (!filter.namespace.is_empty() && !filter.node.is_empty());
        group
            .0
            .iter()
            .filter(|(phase, _)| filter.phase.is_empty() || phase.1 == filter.phase)
            .filter_map(|(phase, cts)| {
                let (count, rows) = if walk {
                    let mut matching = cts.iter().filter(|c| filter.matches(&c.0));
                    let first: Vec<_> = matching.by_ref().take(rows).map(|c| c.0.clone()).collect();
                    (first.len() + matching.count(), first)
                } else {
                    (cts.len(), cts.iter().take(rows).map(|c| c.0.clone()).collect())
                };
                (count > 0).then(|| PhaseRows {
                    phase: phase.1.clone(),
                    count,
                    rows,
                })
            })
            .collect()
    }

    /// Adds `ct` to, or removes it from, every place it is filed in.
    fn file(&mut self, ct: &Arc<LxcContainer>, change: Change) {
        let phase = PhaseKey::of(ct);
        let status = ct.status.as_ref();
        self.all.file(&phase, ct, change);
        if let Some(ns) = ct.metadata.namespace.as_deref() {
            file_in(&mut self.by_namespace, ns, &phase, ct, change);
        }
        if let Some(node) = status
            .and_then(|s| s.node.as_deref())
            .or(ct.spec.node_ref.as_deref())
        {
            file_in(&mut self.by_node, node, &phase, ct, change);
        }
        if let Some(node) = status.and_then(|s| s.node.as_deref()) {
            let task = usize::from(status.is_some_and(|s| s.task.is_some()));
            let tally = self.placed.entry(node.to_string()).or_default();
            match change {
                Change::Add => {
                    tally.managed += 1;
                    tally.tasks += task;
                }
                Change::Remove => {
                    tally.managed -= 1;
                    tally.tasks -= task;
                }
            }
            if tally.managed == 0 {
                self.placed.remove(node);
            }
        }
        if let Some(seconds) = time_to_ready(ct) {
            let n = self.ready_after.entry(seconds).or_default();
            match change {
                Change::Add => *n += 1,
                Change::Remove => *n -= 1,
            }
            if *n == 0 {
                self.ready_after.remove(&seconds);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Change {
    Add,
    Remove,
}

/// A phase's place on the page: its rank in [`PHASES`] (the unknown after them) and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PhaseKey(usize, String);

impl PhaseKey {
    fn of(ct: &LxcContainer) -> Self {
        let phase = phase_of(ct);
        let rank = PHASES.iter().position(|p| *p == phase).unwrap_or(PHASES.len());
        Self(rank, phase.to_string())
    }
}

/// Containers by phase, each phase in namespace and name order.
#[derive(Default)]
struct Phases(BTreeMap<PhaseKey, BTreeSet<ByName>>);

impl Phases {
    fn file(&mut self, phase: &PhaseKey, ct: &Arc<LxcContainer>, change: Change) {
        match change {
            Change::Add => {
                self.0
                    .entry(phase.clone())
                    .or_default()
                    .insert(ByName(ct.clone()));
            }
            Change::Remove => {
                if let Some(set) = self.0.get_mut(phase) {
                    set.remove(&ByName(ct.clone()));
                    if set.is_empty() {
                        self.0.remove(phase);
                    }
                }
            }
        }
    }
}

/// Files `ct` in the group named `name`, dropping a group that became empty (a namespace
/// without containers leaves the filter's list).
fn file_in(
    groups: &mut BTreeMap<String, Phases>,
    name: &str,
    phase: &PhaseKey,
    ct: &Arc<LxcContainer>,
    change: Change,
) {
    let group = groups.entry(name.to_string()).or_default();
    group.file(phase, ct, change);
    if group.0.is_empty() {
        groups.remove(name);
    }
}

/// A container ordered by namespace and name (borrowed: no copy of the names per entry).
#[derive(Clone)]
struct ByName(Arc<LxcContainer>);

impl ByName {
    fn key(&self) -> (&str, &str) {
        borrowed_key(&self.0)
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ByName {}

impl PartialOrd for ByName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

fn borrowed_key(ct: &LxcContainer) -> (&str, &str) {
    let m = &ct.metadata;
    (
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

fn key(ct: &LxcContainer) -> (String, String) {
    let (ns, name) = borrowed_key(ct);
    (ns.to_string(), name.to_string())
}

/// Seconds from creation to the Ready condition's last transition, for a container Ready now
/// (one that went Ready, then not, then Ready again counts its latest transition).
pub fn time_to_ready(ct: &LxcContainer) -> Option<i64> {
    let created = ct.metadata.creation_timestamp.as_ref()?.0.as_second();
    let ready = ct
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some((ready.last_transition_time.0.as_second() - created).max(0))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;
    use crate::page::caches::{ContainerWriter, PageCaches};

    /// A container; `ready_after` (under an hour) gives it a Ready condition that many seconds
    /// after its creation.
    fn ct(
        ns: &str,
        name: &str,
        phase: Option<&str>,
        node: Option<&str>,
        node_ref: Option<&str>,
        task: bool,
        ready_after: Option<i64>,
    ) -> LxcContainer {
        let mut status = json!({"conditions": []});
        if let Some(p) = phase {
            status["phase"] = json!(p);
        }
        if let Some(n) = node {
            status["node"] = json!(n);
        }
        if task {
            status["task"] = json!({"upid": "UPID:x", "action": "create", "node": "x"});
        }
        if let Some(s) = ready_after {
            let at = format!("2026-01-01T00:{:02}:{:02}Z", s / 60, s % 60);
            status["conditions"] = json!([{"type": "Ready", "status": "True", "reason": "Up",
                "message": "", "lastTransitionTime": at}]);
        }
        serde_json::from_value(json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
            "metadata": {"name": name, "namespace": ns,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeRef": node_ref, "templateRef": "debian"},
            "status": status}))
        .unwrap()
    }

    fn caches() -> (PageCaches, ContainerWriter) {
        PageCaches::from_stores(reflector::store().0, reflector::store().0)
    }

    /// (phase, count, "namespace/name" of the rows) of each phase shown.
    fn shown(phases: &[PhaseRows]) -> Vec<(String, usize, Vec<String>)> {
        phases
            .iter()
            .map(|p| {
                let rows = p.rows.iter().map(|c| label(c)).collect();
                (p.phase.clone(), p.count, rows)
            })
            .collect()
    }

    fn label(c: &LxcContainer) -> String {
        let (ns, name) = borrowed_key(c);
        format!("{ns}/{name}")
    }

    fn filter(namespace: &str, node: &str, phase: &str, q: &str) -> ContainerFilter {
        ContainerFilter {
            namespace: namespace.into(),
            node: node.into(),
            phase: phase.into(),
            q: q.into(),
        }
    }

    fn counts(caches: &PageCaches, f: &ContainerFilter) -> Vec<(String, usize)> {
        let index = caches.index();
        shown(&index.select(f, 10))
            .into_iter()
            .map(|(p, n, _)| (p, n))
            .collect()
    }

    fn pairs(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    }

    #[test]
    fn counts_follow_add_update_and_delete_events() {
        let (caches, mut writer) = caches();
        let all = ContainerFilter::default();
        let a = ct("team-a", "a", None, None, Some("pve1"), false, None);
        let b = ct("team-a", "b", Some("Ready"), Some("pve1"), None, false, Some(30));
        let c = ct("team-b", "c", Some("Creating"), Some("pve2"), None, true, None);
        for o in [&a, &b, &c] {
            writer.apply(&Event::Apply(o.clone()));
        }
        assert_eq!(
            counts(&caches, &all),
            pairs(&[("Pending", 1), ("Creating", 1), ("Ready", 1)])
        );
        assert_eq!(
            counts(&caches, &filter("team-a", "", "", "")),
            pairs(&[("Pending", 1), ("Ready", 1)])
        );
        // `a` is not placed yet: the node filter finds it by its nodeRef, the card does not count it.
        assert_eq!(
            counts(&caches, &filter("", "pve1", "", "")),
            pairs(&[("Pending", 1), ("Ready", 1)])
        );
        {
            let index = caches.index();
            assert_eq!(index.total(), 3);
            assert_eq!(index.namespaces(), ["team-a", "team-b"]);
            assert_eq!(index.on_node("pve1"), NodeTally { managed: 1, tasks: 0 });
            assert_eq!(index.on_node("pve2"), NodeTally { managed: 1, tasks: 1 });
            assert_eq!(index.ready_after(), [(30, 1)]);
        }

        // `c` moves to pve1 and goes Ready: unfiled from Creating, pve2 and its task.
        let c2 = ct("team-b", "c", Some("Ready"), Some("pve1"), None, false, Some(90));
        writer.apply(&Event::Apply(c2));
        assert_eq!(counts(&caches, &all), pairs(&[("Pending", 1), ("Ready", 2)]));
        assert_eq!(counts(&caches, &filter("", "pve2", "", "")), pairs(&[]));
        {
            let index = caches.index();
            assert_eq!(index.total(), 3);
            assert_eq!(index.on_node("pve1"), NodeTally { managed: 2, tasks: 0 });
            assert_eq!(index.on_node("pve2"), NodeTally::default());
            assert_eq!(index.ready_after(), [(30, 1), (90, 1)]);
        }
        // The same version again changes nothing.
        writer.apply(&Event::Apply(b.clone()));
        assert_eq!(counts(&caches, &all), pairs(&[("Pending", 1), ("Ready", 2)]));

        writer.apply(&Event::Delete(a.clone()));
        assert_eq!(counts(&caches, &all), pairs(&[("Ready", 2)]));
        assert_eq!(
            counts(&caches, &filter("team-a", "pve1", "", "")),
            pairs(&[("Ready", 1)])
        );
        writer.apply(&Event::Delete(b.clone()));
        {
            let index = caches.index();
            assert_eq!(index.total(), 1);
            assert_eq!(
                index.namespaces(),
                ["team-b"],
                "an emptied namespace leaves the list"
            );
            assert_eq!(index.on_node("pve1"), NodeTally { managed: 1, tasks: 0 });
            assert_eq!(index.ready_after(), [(90, 1)]);
        }
        // Deleting what is not there is fine.
        writer.apply(&Event::Delete(a));

        // A relisting replaces everything at its end, not before.
        writer.apply(&Event::Init);
        writer.apply(&Event::InitApply(b));
        assert_eq!(counts(&caches, &all), pairs(&[("Ready", 1)]));
        assert_eq!(label(&caches.index().select(&all, 10)[0].rows[0]), "team-b/c");
        writer.apply(&Event::InitDone);
        assert_eq!(label(&caches.index().select(&all, 10)[0].rows[0]), "team-a/b");
        assert_eq!(caches.index().namespaces(), ["team-a"]);
        assert_eq!(caches.index().on_node("pve1"), NodeTally { managed: 1, tasks: 0 });
    }

    /// What the overview showed before the index: every container walked and filtered, grouped
    /// by phase, sorted by namespace and name, the first `rows` of each phase.
    fn walked(
        truth: &BTreeMap<(String, String), LxcContainer>,
        f: &ContainerFilter,
        rows: usize,
    ) -> Vec<(String, usize, Vec<String>)> {
        let mut groups: BTreeMap<PhaseKey, Vec<&LxcContainer>> = BTreeMap::new();
        for c in truth.values().filter(|c| f.matches(c)) {
            groups.entry(PhaseKey::of(c)).or_default().push(c);
        }
        groups
            .into_iter()
            .map(|(phase, mut cts)| {
                cts.sort_by(|a, b| borrowed_key(a).cmp(&borrowed_key(b)));
                let first = cts.iter().take(rows).map(|c| label(c)).collect();
                (phase.1, cts.len(), first)
            })
            .collect()
    }

    #[test]
    fn the_index_answers_as_a_walk_of_every_container_would_after_random_events() {
        let (caches, mut writer) = caches();
        let mut truth: BTreeMap<(String, String), LxcContainer> = BTreeMap::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let phases = [
            None,
            Some("Ready"),
            Some("Creating"),
            Some("Failed"),
            Some("Migrating"),
        ];
        let nodes = [None, Some("pve0"), Some("pve1"), Some("pve2")];
        let mut filters = vec![
            ContainerFilter::default(),
            filter("", "", "Ready", ""),
            filter("", "", "Pending", ""),
            filter("", "", "", "1"),
            filter("", "", "Ready", "ct-1"),
            filter("ns-9", "", "", ""),
        ];
        for ns in ["ns-0", "ns-1", "ns-2"] {
            filters.push(filter(ns, "", "", ""));
            filters.push(filter(ns, "pve1", "", ""));
            filters.push(filter(ns, "", "Creating", "2"));
        }
        for node in ["pve0", "pve1", "pve2"] {
            filters.push(filter("", node, "", ""));
            filters.push(filter("", node, "Failed", ""));
        }
        for step in 0..1500 {
            let ns = format!("ns-{}", next(3));
            let name = format!("ct-{}", next(40));
            match next(10) {
                0..=5 => {
                    let o = ct(
                        &ns,
                        &name,
                        phases[next(phases.len())],
                        nodes[next(nodes.len())],
                        nodes[next(nodes.len())],
                        next(3) == 0,
                        (next(2) == 0).then(|| next(4) as i64 * 7),
                    );
                    truth.insert((ns, name), o.clone());
                    writer.apply(&Event::Apply(o));
                }
                6..=8 => {
                    let o = ct(&ns, &name, None, None, None, false, None);
                    truth.remove(&(ns, name));
                    writer.apply(&Event::Delete(o));
                }
                _ => {
                    // A relisting of what exists now.
                    writer.apply(&Event::Init);
                    for o in truth.values() {
                        writer.apply(&Event::InitApply(o.clone()));
                    }
                    writer.apply(&Event::InitDone);
                }
            }
            let index = caches.index();
            for f in &filters {
                assert_eq!(
                    shown(&index.select(f, 3)),
                    walked(&truth, f, 3),
                    "step {step}, {f:?}"
                );
            }
            assert_eq!(index.total(), truth.len());
            let namespaces: BTreeSet<String> = truth.keys().map(|k| k.0.clone()).collect();
            assert_eq!(index.namespaces(), namespaces.into_iter().collect::<Vec<_>>());
            for node in ["pve0", "pve1", "pve2"] {
                let placed = truth
                    .values()
                    .filter_map(|c| c.status.as_ref())
                    .filter(|s| s.node.as_deref() == Some(node));
                let tally = NodeTally {
                    managed: placed.clone().count(),
                    tasks: placed.filter(|s| s.task.is_some()).count(),
                };
                assert_eq!(index.on_node(node), tally, "step {step}, {node}");
            }
            let mut ready: BTreeMap<i64, usize> = BTreeMap::new();
            for s in truth.values().filter_map(time_to_ready) {
                *ready.entry(s).or_default() += 1;
            }
            assert_eq!(index.ready_after(), ready.into_iter().collect::<Vec<_>>());
        }
    }
}

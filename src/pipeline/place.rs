//! Place: with a `nodeSelector`, the matching usable node with the most free memory (after the
//! memory of containers already placed there but not yet running), then the fewest tasks in
//! flight. A placed container is never moved by this phase.

use std::collections::BTreeMap;

/// A node a container could go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Free memory at the last probe, in bytes.
    pub free_memory: i64,
    /// Memory promised to containers placed on it that the probe does not count yet.
    pub reserved_memory: i64,
    /// Proxmox tasks the operator has in flight there.
    pub tasks_in_flight: usize,
}

/// Whether `labels` carry every pair of `selector`.
pub fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The best node for a container with `selector` among usable `candidates`.
pub fn choose<'a>(selector: &BTreeMap<String, String>, candidates: &'a [Candidate]) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter(|c| matches(selector, &c.labels))
        .max_by(|a, b| {
            (a.free_memory - a.reserved_memory)
                .cmp(&(b.free_memory - b.reserved_memory))
                .then(b.tasks_in_flight.cmp(&a.tasks_in_flight))
                .then(b.name.cmp(&a.name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, zone: &str, free: i64, reserved: i64, tasks: usize) -> Candidate {
        Candidate {
            name: name.into(),
            labels: [("zone".to_string(), zone.to_string())].into(),
            free_memory: free,
            reserved_memory: reserved,
            tasks_in_flight: tasks,
        }
    }

    #[test]
    fn most_free_memory_among_matching_nodes_wins() {
        let nodes = [c("a", "x", 8, 0, 0), c("b", "x", 16, 0, 0), c("c", "y", 64, 0, 0)];
        let sel: BTreeMap<_, _> = [("zone".to_string(), "x".to_string())].into();
        assert_eq!(choose(&sel, &nodes).unwrap().name, "b");
        assert_eq!(
            choose(&BTreeMap::new(), &nodes).unwrap().name,
            "c",
            "empty selector matches all"
        );
        let none: BTreeMap<_, _> = [("zone".to_string(), "z".to_string())].into();
        assert!(choose(&none, &nodes).is_none());
    }

    #[test]
    fn reservations_spread_placements_and_tasks_break_ties() {
        let sel = BTreeMap::new();
        let nodes = [c("a", "x", 16, 12, 0), c("b", "x", 8, 0, 0)];
        assert_eq!(
            choose(&sel, &nodes).unwrap().name,
            "b",
            "a's memory is promised already"
        );
        let tied = [c("a", "x", 8, 0, 3), c("b", "x", 8, 0, 1)];
        assert_eq!(choose(&sel, &tied).unwrap().name, "b");
        let same = [c("b", "x", 8, 0, 0), c("a", "x", 8, 0, 0)];
        assert_eq!(choose(&sel, &same).unwrap().name, "a", "stable order by name");
    }
}

//! Drift: who must hear of what changed in Proxmox between two polls of a node — exactly the `LxcContainer`s whose observed state changed (steady state wakes
//! none) and, when a `ProxmoxNode` itself changed, the objects that depend on it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kube::runtime::reflector::{ObjectRef, Store};

use super::observations::{NodeObservation, Observations};
use crate::crd::LxcContainer;

/// Wakes `LxcContainer` reconciles after a poll saw their Proxmox state change.
#[derive(Clone)]
pub struct ContainerWake {
    pub containers: Store<LxcContainer>,
    pub sender: tokio::sync::mpsc::UnboundedSender<ObjectRef<LxcContainer>>,
}

impl ContainerWake {
    /// Stores `node`'s new observation and wakes the containers on it whose state changed.
    pub fn observed(&self, observations: &Observations, node: &str, observation: NodeObservation) {
        let changed = observations.update(node, observation);
        if changed.is_empty() {
            return;
        }
        tracing::debug!(%node, ?changed, "observed container changes");
        let state = self.containers.state();
        for target in containers_to_wake(state.iter().map(|c| c.as_ref()), node, &changed) {
            let _ = self.sender.send(target);
        }
    }
}

/// Remembers each node's readiness, generation (spec: cordon, namespaces, ...) and deletion, to
/// tell a real change of a `ProxmoxNode` from a probe that only refreshed its status (watch
/// mappers wake dependents on the former).
#[derive(Debug, Clone, Default)]
pub struct ReadinessChanges(Arc<std::sync::Mutex<HashMap<String, Seen>>>);

/// A node's Ready status, generation and whether it is being deleted, as last seen.
type Seen = (bool, Option<i64>, bool);

impl ReadinessChanges {
    /// True the first time a node is seen and whenever its Ready status, its generation or its
    /// deletion changed.
    pub fn changed(&self, node: &crate::crd::ProxmoxNode) -> bool {
        use crate::status::conditions::{is_true, types};
        let ready = node
            .status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, types::READY));
        let deleting = node.metadata.deletion_timestamp.is_some();
        let seen = (ready, node.metadata.generation, deleting);
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(name, seen) != Some(seen)
    }
}

/// The `LxcContainer`s placed on `node` whose VMID is among `changed`: exactly the ones a poll
/// must wake (steady state wakes none).
pub fn containers_to_wake<'a>(
    containers: impl IntoIterator<Item = &'a LxcContainer>,
    node: &str,
    changed: &BTreeSet<u32>,
) -> Vec<ObjectRef<LxcContainer>> {
    containers
        .into_iter()
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.node.as_deref() == Some(node)
                    && s.vmid
                        .and_then(|v| u32::try_from(v).ok())
                        .is_some_and(|v| changed.contains(&v))
            })
        })
        .map(ObjectRef::from_obj)
        .collect()
}

#[cfg(test)]
mod wake_tests {
    use super::*;
    use crate::crd::{LxcContainer, LxcContainerStatus};

    fn ct(name: &str, node: &str, vmid: i64) -> LxcContainer {
        let mut c: LxcContainer = serde_json::from_value(serde_json::json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeRef": node, "templateRef": "t"}
        }))
        .unwrap();
        c.status = Some(LxcContainerStatus {
            node: Some(node.into()),
            vmid: Some(vmid),
            ..Default::default()
        });
        c
    }

    #[test]
    fn only_the_changed_containers_of_that_node_wake() {
        let all = [ct("a", "pve1", 100), ct("b", "pve1", 101), ct("c", "pve2", 100)];
        let woken = containers_to_wake(&all, "pve1", &[100].into());
        assert_eq!(woken.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(containers_to_wake(&all, "pve1", &BTreeSet::new()).is_empty());
    }
}

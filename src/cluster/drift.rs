//! Drift: who must hear of what changed in Proxmox between two polls of a node — exactly the
//! `LxcContainer`s whose observed state changed and, when a `ProxmoxNode` itself changed, the
//! objects that depend on it — plus the config sweep's bounded share of the others, for what a
//! poll cannot show (see `sweep`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use kube::runtime::reflector::{ObjectRef, Store};

use super::observations::{NodeObservation, Observations};
use super::sweep::ConfigSweep;
use crate::crd::LxcContainer;

/// Wakes `LxcContainer` reconciles after a poll saw their Proxmox state change, and a bounded
/// share of the others for the config sweep (see [`ConfigSweep`]).
#[derive(Clone)]
pub struct ContainerWake {
    pub containers: Store<LxcContainer>,
    pub sender: tokio::sync::mpsc::UnboundedSender<ObjectRef<LxcContainer>>,
    pub sweep: Arc<ConfigSweep>,
}

impl ContainerWake {
    /// Stores `node`'s new observation and wakes the containers on it whose state changed, plus
    /// the ones the config sweep is due to read.
    pub fn observed(&self, observations: &Observations, node: &str, observation: NodeObservation) {
        self.observed_at(observations, node, observation, Instant::now());
    }

    fn observed_at(
        &self,
        observations: &Observations,
        node: &str,
        observation: NodeObservation,
        now: Instant,
    ) {
        let super::observations::Update {
            before,
            after,
            changed,
        } = observations.update(node, observation);
        let state = self.containers.state();
        let woken: Vec<ObjectRef<LxcContainer>> = state
            .iter()
            .filter(|c| {
                let vmid = c
                    .status
                    .as_ref()
                    .and_then(|s| s.vmid)
                    .and_then(|v| u32::try_from(v).ok());
                !vmid.is_some_and(|v| as_expected(c, before.get(&v), after.get(&v)))
            })
            .filter_map(|c| containers_to_wake([c.as_ref()], node, &changed).pop())
            .collect();
        if !changed.is_empty() {
            tracing::debug!(%node, ?changed, "observed container changes");
        }
        let placed = placed_on(state.iter().map(|c| c.as_ref()), node);
        let uids: Vec<String> = placed.keys().cloned().collect();
        let already: BTreeSet<&str> = placed
            .iter()
            .filter(|(_, r)| woken.contains(r))
            .map(|(uid, _)| uid.as_str())
            .collect();
        let swept: Vec<ObjectRef<LxcContainer>> = self
            .sweep
            .pick(node, now, &uids, &already)
            .into_iter()
            .filter_map(|uid| placed.get(uid).cloned())
            .collect();
        if !swept.is_empty() {
            tracing::debug!(%node, count = swept.len(), "config sweep wakes containers");
        }
        for target in woken.into_iter().chain(swept) {
            let _ = self.sender.send(target);
        }
    }
}

/// The `LxcContainer`s placed on `node` with a VMID, by uid (the sweep's order).
pub fn placed_on<'a>(
    containers: impl IntoIterator<Item = &'a LxcContainer>,
    node: &str,
) -> BTreeMap<String, ObjectRef<LxcContainer>> {
    containers
        .into_iter()
        .filter(|c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.node.as_deref() == Some(node) && s.vmid.is_some())
        })
        .filter_map(|c| Some((c.metadata.uid.clone()?, ObjectRef::from_obj(c))))
        .collect()
}

/// Remembers each node's readiness, generation (spec: cordon, namespaces, ...), deletion and,
/// while it is not Ready, why, to tell a real change of a `ProxmoxNode` from a probe that only
/// refreshed its status (watch mappers wake dependents on the former). The reason matters
/// because a blocked dependent's condition quotes it: a node seen first without any Ready
/// condition and then `Ready=False` with a reason must wake them again.
#[derive(Debug, Clone, Default)]
pub struct ReadinessChanges(Arc<std::sync::Mutex<HashMap<String, Seen>>>);

/// A node's Ready status, generation, whether it is being deleted, and the reason and message
/// of its Ready condition while that is not true, as last seen.
type Seen = (bool, Option<i64>, bool, Option<(String, String)>);

impl ReadinessChanges {
    /// True the first time a node is seen and whenever its Ready status, its generation, its
    /// deletion or (while not Ready) the reason it gives changed.
    pub fn changed(&self, node: &crate::crd::ProxmoxNode) -> bool {
        use crate::status::conditions::types;
        let condition = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY));
        let ready = condition.is_some_and(|c| c.status == "True");
        let why = condition
            .filter(|_| !ready)
            .map(|c| (c.reason.clone(), c.message.clone()));
        let deleting = node.metadata.deletion_timestamp.is_some();
        let seen = (ready, node.metadata.generation, deleting, why);
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(name, seen.clone()) != Some(seen)
    }
}

/// What a container reads of an `LxcTemplate` (see `pipeline::resolve::check_template` and
/// provisioning): its spec, its digest, a content error, and per node whether the OS template
/// is there, downloading, or why not.
#[derive(Debug, Clone, PartialEq, Default)]
struct TemplateSeen {
    generation: Option<i64>,
    digest: Option<String>,
    invalid: Option<String>,
    lines: BTreeMap<String, (bool, bool, Option<String>)>,
}

impl TemplateSeen {
    fn of(template: &crate::crd::LxcTemplate) -> Self {
        use crate::status::conditions::types;
        let status = template.status.as_ref();
        Self {
            generation: template.metadata.generation,
            digest: status.and_then(|s| s.digest.clone()),
            invalid: status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY))
                .filter(|c| c.status != "True" && c.reason == "InvalidContent")
                .map(|c| c.message.clone()),
            lines: status
                .map(|s| {
                    s.nodes
                        .iter()
                        .map(|n| {
                            let line = (n.present, n.download_task.is_some(), n.message.clone());
                            (n.node.clone(), line)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Which of a template's users an update concerns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateChange {
    /// Every container that uses it (its spec, digest or content changed, or first sight).
    pub all: bool,
    /// The containers on these nodes (their line changed), and the ones not placed yet.
    pub nodes: BTreeSet<String>,
}

impl TemplateChange {
    /// Whether a container placed on `node` (`None`: not placed yet) must look again.
    pub fn concerns(&self, node: Option<&str>) -> bool {
        self.all || node.map_or(!self.nodes.is_empty(), |n| self.nodes.contains(n))
    }
}

/// Remembers what containers read of each template, to wake only the ones an update concerns:
/// a template's status holds a line per node of the cluster, rewritten as other nodes come,
/// go or fail a download, and each of those used to wake (and re-read in Proxmox) every
/// container made from it.
#[derive(Debug, Clone, Default)]
pub struct TemplateChanges(Arc<std::sync::Mutex<HashMap<String, TemplateSeen>>>);

impl TemplateChanges {
    pub fn changed(&self, template: &crate::crd::LxcTemplate) -> TemplateChange {
        let now = TemplateSeen::of(template);
        let name = template.metadata.name.clone().unwrap_or_default();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(before) = map.insert(name, now.clone()) else {
            return TemplateChange {
                all: true,
                nodes: BTreeSet::new(),
            };
        };
        if (&before.generation, &before.digest, &before.invalid)
            != (&now.generation, &now.digest, &now.invalid)
        {
            return TemplateChange {
                all: true,
                nodes: BTreeSet::new(),
            };
        }
        let names: BTreeSet<&String> = before.lines.keys().chain(now.lines.keys()).collect();
        TemplateChange {
            all: false,
            nodes: names
                .into_iter()
                .filter(|n| before.lines.get(*n) != now.lines.get(*n))
                .cloned()
                .collect(),
        }
    }
}

/// Whether a change a poll saw is only the operator's own rollout showing up in the listing: the
/// container is Ready for its generation, the poll now shows it in the power state it asks for,
/// unlocked, and nothing but that state changed (or it just appeared, or its name was published
/// late). Waking it
/// would only read again what the walk that made it Ready read.
pub fn as_expected(
    ct: &LxcContainer,
    before: Option<&super::observations::ObservedContainer>,
    after: Option<&super::observations::ObservedContainer>,
) -> bool {
    use crate::crd::container::PowerState;
    use crate::status::conditions::{is_true, types};
    let Some(after) = after else {
        return false;
    };
    let Some(status) = &ct.status else {
        return false;
    };
    let ready =
        is_true(&status.conditions, types::READY) && status.observed_generation == ct.metadata.generation;
    let wanted = match ct.spec.power_state {
        PowerState::Running => "running",
        PowerState::Stopped => "stopped",
    };
    // A name not published yet (Proxmox's status daemon lags a new container) is no change.
    let same_config = before.is_none_or(|b| {
        (&b.lock, &b.tags, b.maxcpu_milli, b.maxmem, b.maxdisk)
            == (
                &after.lock,
                &after.tags,
                after.maxcpu_milli,
                after.maxmem,
                after.maxdisk,
            )
            && (b.name.is_none() || b.name == after.name)
    });
    ready && after.status == wanted && after.lock.is_none() && same_config
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
        c.metadata.uid = Some(format!("uid-{name}"));
        c.status = Some(LxcContainerStatus {
            node: Some(node.into()),
            vmid: Some(vmid),
            ..Default::default()
        });
        c
    }

    fn observation(vmids: &[u32], memory: u64) -> NodeObservation {
        use crate::cluster::observations::ObservedContainer;
        NodeObservation {
            containers: vmids
                .iter()
                .map(|&vmid| {
                    let c = ObservedContainer {
                        vmid,
                        node: "pve1".into(),
                        status: "running".into(),
                        name: None,
                        lock: None,
                        tags: None,
                        maxcpu_milli: Some(1000),
                        maxmem: Some(memory),
                        maxdisk: None,
                    };
                    (vmid, c)
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_ready_container_showing_up_as_asked_is_not_woken_but_any_drift_is() {
        use crate::status::conditions::{Desired, set, types};
        let mut ready = ct("a", "pve1", 100);
        ready.metadata.generation = Some(1);
        let status = ready.status.as_mut().unwrap();
        status.observed_generation = Some(1);
        let now = k8s_openapi::jiff::Timestamp::now();
        let up = Desired {
            type_: types::READY,
            status: true,
            reason: "Ready",
            message: String::new(),
        };
        set(&mut status.conditions, up, Some(1), now);
        let seen = |memory, state: &str| {
            let mut o = observation(&[100], memory).containers.remove(&100).unwrap();
            o.status = state.into();
            o
        };
        // Its own rollout: it appears, or turns running, as the spec asks.
        assert!(as_expected(&ready, None, Some(&seen(512, "running"))));
        assert!(as_expected(
            &ready,
            Some(&seen(512, "stopped")),
            Some(&seen(512, "running"))
        ));
        // Drift: stopped, resized, gone; and a container not Ready yet is always woken.
        assert!(!as_expected(
            &ready,
            Some(&seen(512, "running")),
            Some(&seen(512, "stopped"))
        ));
        assert!(!as_expected(
            &ready,
            Some(&seen(512, "running")),
            Some(&seen(256, "running"))
        ));
        assert!(!as_expected(&ready, Some(&seen(512, "running")), None));
        let named = |name: &str| {
            let mut o = seen(512, "running");
            o.name = Some(name.into());
            o
        };
        assert!(!as_expected(
            &ready,
            Some(&named("web")),
            Some(&named("hijacked"))
        ));
        assert!(as_expected(
            &ready,
            Some(&seen(512, "running")),
            Some(&named("web"))
        ));
        assert!(!as_expected(
            &ct("b", "pve1", 101),
            None,
            Some(&seen(512, "running"))
        ));
    }

    #[test]
    fn polls_wake_the_changed_containers_and_a_bounded_sweep_of_the_rest() {
        use crate::cluster::sweep::{ConfigSweep, SweepSettings};
        use std::time::Duration;
        let mut writer = kube::runtime::reflector::store::Writer::<LxcContainer>::default();
        for c in [
            ct("a", "pve1", 100),
            ct("b", "pve1", 101),
            ct("c", "pve1", 102),
            ct("d", "pve2", 100),
        ] {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(c));
        }
        let (sender, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let wake = ContainerWake {
            containers: writer.as_reader(),
            sender,
            sweep: Arc::new(ConfigSweep::new(SweepSettings {
                interval: Duration::from_secs(10),
                reads_per_second: 10.0,
            })),
        };
        let obs = Observations::default();
        let t0 = Instant::now();
        let mut poll = |secs: u64, observation: NodeObservation| {
            wake.observed_at(&obs, "pve1", observation, t0 + Duration::from_secs(secs));
            let mut names = Vec::new();
            while let Ok(r) = rx.try_recv() {
                names.push(r.name);
            }
            // Which containers are woken matters, not the order of the wake-ups.
            names.sort();
            names
        };
        // First poll: everything is new (and the sweep's clock starts).
        assert_eq!(poll(0, observation(&[100, 101, 102], 1)), ["a", "b", "c"]);
        // 5 s later, nothing changed: 3 containers × 5 s / 10 s = 1.5 owed, one read now.
        assert_eq!(poll(5, observation(&[100, 101, 102], 1)), ["a"]);
        // Then 2 (1.5 + 0.5 carried); pve2's container is never this node's business.
        assert_eq!(poll(10, observation(&[100, 101, 102], 1)), ["b", "c"]);
        // A change wakes its container; the sweep goes on with the others.
        assert_eq!(poll(15, observation(&[100, 101, 102], 2)), ["a", "b", "c"]);
    }

    #[test]
    fn only_the_changed_containers_of_that_node_wake() {
        let all = [ct("a", "pve1", 100), ct("b", "pve1", 101), ct("c", "pve2", 100)];
        let woken = containers_to_wake(&all, "pve1", &[100].into());
        assert_eq!(woken.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(containers_to_wake(&all, "pve1", &BTreeSet::new()).is_empty());
    }
}

#[cfg(test)]
mod readiness_tests {
    use super::ReadinessChanges;
    use crate::crd::ProxmoxNode;

    fn node(generation: i64, ready: Option<(&str, &str, &str)>) -> ProxmoxNode {
        let conditions: Vec<_> = ready
            .into_iter()
            .map(|(status, reason, message)| {
                serde_json::json!({"type": "Ready", "status": status, "reason": reason,
                    "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode",
            "metadata": {"name": "pve1", "generation": generation},
            "spec": {"endpoint": "https://pve1:8006", "nodeName": "pve1",
                     "credentialsSecretRef": {"name": "s", "namespace": "ns"}},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn a_reason_appearing_while_not_ready_is_a_change_a_refreshed_probe_is_not() {
        let seen = ReadinessChanges::default();
        assert!(seen.changed(&node(2, None)), "first sight");
        assert!(!seen.changed(&node(2, None)));
        // The probe's verdict arrives: blocked dependents quote it, so they must look again.
        let missing = ("False", "InvalidCredentials", "Secret ns/s lacks tokenSecret");
        assert!(seen.changed(&node(2, Some(missing))));
        assert!(!seen.changed(&node(2, Some(missing))), "the same verdict again");
        let other = ("False", "Unreachable", "connection refused");
        assert!(seen.changed(&node(2, Some(other))));
        // Ready, then a probe that only refreshed its message: no wake.
        assert!(seen.changed(&node(2, Some(("True", "Connected", "PVE 9.1 at 10:00")))));
        assert!(!seen.changed(&node(2, Some(("True", "Connected", "PVE 9.1 at 10:05")))));
        assert!(
            seen.changed(&node(3, Some(("True", "Connected", "PVE 9.1 at 10:05")))),
            "spec"
        );
    }
}

#[cfg(test)]
mod template_tests {
    use super::{TemplateChange, TemplateChanges};
    use crate::crd::LxcTemplate;

    fn template(generation: i64, digest: &str, lines: &[(&str, bool, Option<&str>)]) -> LxcTemplate {
        let nodes: Vec<_> = lines
            .iter()
            .map(|(node, present, message)| serde_json::json!({"node": node, "present": present, "message": message}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
            "metadata": {"name": "debian", "generation": generation},
            "spec": {"osTemplate": {"volid": "local:vztmpl/debian.tar.zst"}},
            "status": {"digest": digest, "nodes": nodes}
        }))
        .unwrap()
    }

    #[test]
    fn only_the_containers_an_update_concerns_are_woken() {
        let seen = TemplateChanges::default();
        let first = seen.changed(&template(1, "d1", &[("a", true, None)]));
        assert!(first.all && first.concerns(Some("a")), "first sight: everyone");
        // Another node joins the cluster and is still missing the template: only its
        // containers (and unplaced ones, which may be placed there) look again.
        let joined = seen.changed(&template(1, "d1", &[("a", true, None), ("b", false, None)]));
        assert_eq!(
            joined,
            TemplateChange {
                all: false,
                nodes: ["b".to_string()].into()
            }
        );
        assert!(!joined.concerns(Some("a")) && joined.concerns(Some("b")) && joined.concerns(None));
        // Nothing a container reads changed: nobody.
        let same = seen.changed(&template(1, "d1", &[("a", true, None), ("b", false, None)]));
        assert!(!same.concerns(Some("a")) && !same.concerns(Some("b")) && !same.concerns(None));
        // A download refused on b: b's containers quote why.
        let refused = seen.changed(&template(
            1,
            "d1",
            &[("a", true, None), ("b", false, Some("403"))],
        ));
        assert!(refused.concerns(Some("b")) && !refused.concerns(Some("a")));
        // The content (digest) or the spec changed: everyone.
        assert!(
            seen.changed(&template(
                1,
                "d2",
                &[("a", true, None), ("b", false, Some("403"))]
            ))
            .concerns(Some("a"))
        );
        assert!(
            seen.changed(&template(
                2,
                "d2",
                &[("a", true, None), ("b", false, Some("403"))]
            ))
            .concerns(Some("a"))
        );
    }
}

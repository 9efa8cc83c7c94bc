//! The overview: every node (Ready, version, capacity bars, containers, tasks in flight), every
//! template (Ready, digest, availability per node), and the containers grouped by phase with
//! counts, filtered by namespace, node, phase and a name search.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use maud::{Markup, html};

use super::layout::{condition_status, page, phase_badge, short_digest, status_badge};
use super::parts::{capacity_bars, container_table};
use super::svg::{histogram, latency};
use crate::crd::{LxcContainer, ProxmoxNode};
use crate::observe::latency::{LatencyHistory, Series};
use crate::page::caches::PageCaches;
use crate::page::filter::{ContainerFilter, encode, phase_of};

/// The phases in the order the pipeline walks them (anything else after them).
const PHASES: [&str; 9] = [
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

/// Rows shown per phase: the page stays small and fast with ten thousand containers; the
/// filters reach the rest.
pub const ROWS_PER_PHASE: usize = 200;

pub fn render(caches: &PageCaches, filter: &ContainerFilter, latencies: Option<&LatencyHistory>) -> Markup {
    let mut nodes = caches.nodes.state();
    nodes.sort_by_key(|n| n.name_any());
    let mut templates = caches.templates.state();
    templates.sort_by_key(|t| t.name_any());
    let all = caches.containers.state();
    let mut by_phase: BTreeMap<usize, (String, Vec<Arc<LxcContainer>>)> = BTreeMap::new();
    // Borrowed and deduplicated as they come: ten thousand containers share a few namespaces.
    let namespaces: Vec<String> = all
        .iter()
        .filter_map(|c| c.metadata.namespace.as_deref())
        .collect::<std::collections::BTreeSet<&str>>()
        .into_iter()
        .map(String::from)
        .collect();
    for ct in all.iter().filter(|c| filter.matches(c)) {
        let phase = phase_of(ct);
        let rank = PHASES.iter().position(|p| *p == phase).unwrap_or(PHASES.len());
        by_phase
            .entry(rank)
            .or_insert_with(|| (phase.to_string(), Vec::new()))
            .1
            .push(ct.clone());
    }
    let shown: usize = by_phase.values().map(|(_, v)| v.len()).sum();
    page(
        "Overview",
        "node/ template/ container/",
        html! {
            h1 { "Overview" }
            section {
                h2 { "Proxmox nodes " span .count { (nodes.len()) } }
                @if nodes.is_empty() { p .muted { "No ProxmoxNode yet." } }
                div .cards {
                    @for n in &nodes { (node_card(n, &all)) }
                }
            }
            section {
                h2 { "Templates " span .count { (templates.len()) } }
                @if templates.is_empty() { p .muted { "No LxcTemplate yet." } }
                @else {
                    div .scroll { table {
                        thead { tr { th { "Template" } th { "Ready" } th { "Digest" } th { "On nodes" } } }
                        tbody {
                            @for t in &templates {
                                @let status = t.status.clone().unwrap_or_default();
                                tr {
                                    td { a href=(format!("/templates/{}", encode(&t.name_any()))) { (t.name_any()) } }
                                    td { (status_badge(condition_status(&status.conditions, "Ready"))) }
                                    td { @if let Some(d) = &status.digest { (short_digest(d)) } @else { "—" } }
                                    td { (status.nodes.iter().filter(|n| n.present).count()) " / " (status.nodes.len()) }
                                }
                            }
                        }
                    } }
                }
            }
            @let to_ready = time_to_ready(&all);
            @if !to_ready.is_empty() {
                section {
                    h2 { "Time to Ready" }
                    p .muted { "From creation to the first Ready, for containers Ready now." }
                    (histogram("Time to Ready", &to_ready))
                }
            }
            @if let Some(history) = latencies {
                section {
                    h2 { "Latency, last hour" }
                    p .muted { "Median and 95th percentile per minute, from this replica's metrics." }
                    div .cards {
                        (latency("Reconcile", &history.last_hour(Series::Reconcile)))
                        (latency("Proxmox API call", &history.last_hour(Series::ProxmoxCall)))
                    }
                }
            }
            section {
                h2 { "Containers " span .count { (shown) @if shown != all.len() { " of " (all.len()) } } }
                (filter_form(filter, &namespaces, &nodes))
                @if by_phase.is_empty() { p .muted { "No container matches." } }
                p .phases {
                    @for (phase, cts) in by_phase.values() {
                        a href=(format!("#phase-{phase}")) { (phase_badge(phase)) " " (cts.len()) }
                    }
                }
                @for (phase, cts) in by_phase.values() {
                    h3 id=(format!("phase-{phase}")) { (phase) " " span .count { (cts.len()) } }
                    @if cts.len() > ROWS_PER_PHASE {
                        (container_table(&first_by_name(cts, ROWS_PER_PHASE)))
                        p .muted { (cts.len() - ROWS_PER_PHASE) " more in " (phase) ": narrow the filter (namespace, node, name) to see them." }
                    } @else {
                        (container_table(cts))
                    }
                }
            }
        },
    )
}

fn node_card(n: &ProxmoxNode, containers: &[Arc<LxcContainer>]) -> Markup {
    let status = n.status.clone().unwrap_or_default();
    let name = n.name_any();
    let placed = containers
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.node.as_deref()) == Some(name.as_str()));
    let tasks = placed
        .clone()
        .filter(|c| c.status.as_ref().is_some_and(|s| s.task.is_some()))
        .count();
    html! {
        article .card {
            h3 { a href=(format!("/nodes/{}", encode(&name))) { (name) } " " (status_badge(condition_status(&status.conditions, "Ready"))) }
            p .muted {
                "PVE " (status.pve_version.as_deref().unwrap_or("?"))
                " · " (status.container_count.unwrap_or(0)) " on Proxmox"
                " · " (placed.count()) " managed"
                " · " (tasks) " tasks in flight"
                @if n.spec.cordoned { " · cordoned" }
            }
            @if let Some(cap) = &status.capacity { (capacity_bars(cap)) }
        }
    }
}

fn filter_form(filter: &ContainerFilter, namespaces: &[String], nodes: &[Arc<ProxmoxNode>]) -> Markup {
    html! {
        form .filters method="get" action="/" {
            label { "Name " input type="search" name="q" value=(filter.q) placeholder="part of a name"; }
            label { "Namespace "
                select name="namespace" {
                    option value="" { "all" }
                    @for ns in namespaces { option value=(ns) selected[*ns == filter.namespace] { (ns) } }
                }
            }
            label { "Node "
                select name="node" {
                    option value="" { "all" }
                    @for n in nodes { @let name = n.name_any(); option value=(name) selected[name == filter.node] { (name) } }
                }
            }
            label { "Phase "
                select name="phase" {
                    option value="" { "all" }
                    @for p in PHASES { option value=(p) selected[p == filter.phase] { (p) } }
                }
            }
            button type="submit" { "Filter" }
            @if filter.is_set() { a href="/" { "clear" } }
        }
    }
}

/// Seconds from creation to the Ready condition's last transition, for containers Ready now
/// (a container that went Ready, then not, then Ready again counts its latest transition).
fn time_to_ready(containers: &[Arc<LxcContainer>]) -> Vec<i64> {
    containers
        .iter()
        .filter_map(|c| {
            let created = c.metadata.creation_timestamp.as_ref()?.0.as_second();
            let ready = c
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?;
            Some((ready.last_transition_time.0.as_second() - created).max(0))
        })
        .collect()
}

/// The first `n` containers by namespace and name: the `n` smallest picked in linear time,
/// then only those sorted, comparing borrowed names (no copy per comparison).
fn first_by_name(cts: &[Arc<LxcContainer>], n: usize) -> Vec<Arc<LxcContainer>> {
    fn key(c: &LxcContainer) -> (&str, &str) {
        let m = &c.metadata;
        (
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default(),
        )
    }
    let mut sorted = cts.to_vec();
    if n < sorted.len() {
        sorted.select_nth_unstable_by(n, |a, b| key(a).cmp(&key(b)));
        sorted.truncate(n);
    }
    sorted.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    sorted
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;
    use crate::crd::ProxmoxNode;

    /// Ten thousand containers over 10 nodes and 20 namespaces in real stores.
    fn caches(n: usize) -> PageCaches {
        let (nodes, mut node_writer) = reflector::store::<ProxmoxNode>();
        let (templates, _) = reflector::store();
        let (containers, mut ct_writer) = reflector::store::<LxcContainer>();
        for i in 0..10 {
            let node: ProxmoxNode = serde_json::from_value(json!({
                "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode",
                "metadata": {"name": format!("pve{i}")},
                "spec": {"endpoint": "https://pve:8006", "nodeName": format!("pve{i}"),
                         "credentialsSecretRef": {"name": "t", "namespace": "n"}}}))
            .unwrap();
            node_writer.apply_watcher_event(&Event::Apply(node));
        }
        for i in 0..n {
            let phase = if i % 10 == 0 { "Provisioning" } else { "Ready" };
            let ct: LxcContainer = serde_json::from_value(json!({
                "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
                "metadata": {"name": format!("ct-{i:05}"), "namespace": format!("team-{}", i % 20),
                             "uid": format!("uid-{i}")},
                "spec": {"nodeRef": format!("pve{}", i % 10), "templateRef": "debian"},
                "status": {"phase": phase, "node": format!("pve{}", i % 10), "vmid": 100 + i,
                           "ip": "10.0.0.1/24"}}))
            .unwrap();
            ct_writer.apply_watcher_event(&Event::Apply(ct));
        }
        PageCaches::from_stores(nodes, templates, containers)
    }

    #[test]
    fn ten_thousand_containers_make_a_bounded_overview_and_filters_reach_the_rest() {
        let caches = caches(10_000);
        let started = std::time::Instant::now();
        let html = render(&caches, &ContainerFilter::default(), None).into_string();
        let took = started.elapsed();
        eprintln!(
            "overview of 10 000 containers: {} KiB in {took:?} (debug build)",
            html.len() / 1024
        );
        let rows = html.matches("<tr><td><a href=\"/containers/").count();
        assert_eq!(rows, 2 * ROWS_PER_PHASE, "two phases, each capped");
        assert!(html.contains("8800 more in Ready") && html.contains("800 more in Provisioning"));
        assert!(html.contains(">10000</span>"), "the count is of all containers");

        let one = ContainerFilter {
            namespace: "team-3".into(),
            q: "ct-0994".into(),
            ..ContainerFilter::default()
        };
        let html = render(&caches, &one, None).into_string();
        assert!(
            html.contains("team-3/ct-09943") && !html.contains("team-4/ct-09944"),
            "{html}"
        );
        assert_eq!(html.matches("<tr><td><a href=\"/containers/").count(), 1);
    }
}

//! The overview: every node (Ready, version, capacity bars, containers, tasks in flight), every
//! template (Ready, digest, availability per node), and the containers grouped by phase with
//! counts, filtered by namespace, node, phase and a name search.

use std::sync::Arc;

use kube::ResourceExt;
use maud::{Markup, html};

use super::layout::{condition_status, page, phase_badge, short_digest, status_badge};
use super::parts::{capacity_bars, container_table};
use super::svg::{histogram, latency};
use crate::crd::ProxmoxNode;
use crate::observe::latency::{LatencyHistory, Series};
use crate::page::caches::PageCaches;
use crate::page::filter::{ContainerFilter, encode};
use crate::page::index::{NodeTally, PHASES};

/// Rows shown per phase: the page stays small and fast with ten thousand containers; the
/// filters reach the rest.
pub const ROWS_PER_PHASE: usize = 200;

pub fn render(caches: &PageCaches, filter: &ContainerFilter, latencies: Option<&LatencyHistory>) -> Markup {
    let mut nodes = caches.nodes.state();
    nodes.sort_by_key(|n| n.name_any());
    let mut templates = caches.templates.state();
    templates.sort_by_key(|t| t.name_any());
    // What the page shows of the containers, taken from the index under one short read lock.
    let (total, by_phase, namespaces, tallies, to_ready) = {
        let index = caches.index();
        let tallies: Vec<NodeTally> = nodes.iter().map(|n| index.on_node(&n.name_any())).collect();
        (
            index.total(),
            index.select(filter, ROWS_PER_PHASE),
            index.namespaces(),
            tallies,
            index.ready_after(),
        )
    };
    let shown: usize = by_phase.iter().map(|p| p.count).sum();
    page(
        "Overview",
        "node/ template/ container/",
        html! {
            h1 { "Overview" }
            section {
                h2 { "Proxmox nodes " span .count { (nodes.len()) } }
                @if nodes.is_empty() { p .muted { "No ProxmoxNode yet." } }
                div .cards {
                    @for (n, tally) in nodes.iter().zip(&tallies) { (node_card(n, *tally)) }
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
                h2 { "Containers " span .count { (shown) @if shown != total { " of " (total) } } }
                (filter_form(filter, &namespaces, &nodes))
                @if by_phase.is_empty() { p .muted { "No container matches." } }
                p .phases {
                    @for p in &by_phase {
                        a href=(format!("#phase-{}", p.phase)) { (phase_badge(&p.phase)) " " (p.count) }
                    }
                }
                @for p in &by_phase {
                    h3 id=(format!("phase-{}", p.phase)) { (p.phase) " " span .count { (p.count) } }
                    (container_table(&p.rows))
                    @if p.count > p.rows.len() {
                        p .muted { (p.count - p.rows.len()) " more in " (p.phase) ": narrow the filter (namespace, node, name) to see them." }
                    }
                }
            }
        },
    )
}

fn node_card(n: &ProxmoxNode, tally: NodeTally) -> Markup {
    let status = n.status.clone().unwrap_or_default();
    let name = n.name_any();
    html! {
        article .card {
            h3 { a href=(format!("/nodes/{}", encode(&name))) { (name) } " " (status_badge(condition_status(&status.conditions, "Ready"))) }
            p .muted {
                "PVE " (status.pve_version.as_deref().unwrap_or("?"))
                " · " (status.container_count.unwrap_or(0)) " on Proxmox"
                " · " (tally.managed) " managed"
                " · " (tally.tasks) " tasks in flight"
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

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;
    use crate::crd::{LxcContainer, ProxmoxNode};

    /// Ten thousand containers over 10 nodes and 20 namespaces in real stores.
    fn caches(n: usize) -> PageCaches {
        let (nodes, mut node_writer) = reflector::store::<ProxmoxNode>();
        let (templates, _) = reflector::store();
        let (caches, mut ct_writer) = PageCaches::from_stores(nodes, templates);
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
            ct_writer.apply(&Event::Apply(ct));
        }
        caches
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

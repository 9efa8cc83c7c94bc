//! Pieces several pages show: the containers table and a node's capacity bars.

use std::sync::Arc;

use kube::ResourceExt;
use maud::{Markup, html};

use super::layout::{bytes, phase_badge};
use super::svg::bar;
use crate::crd::LxcContainer;
use crate::crd::node::NodeCapacity;
use crate::page::filter::{encode, phase_of};

/// Containers as table rows, by namespace and name.
pub fn container_table(cts: &[Arc<LxcContainer>]) -> Markup {
    let mut cts = cts.to_vec();
    // Borrowed keys: no copy of two names per comparison.
    cts.sort_unstable_by(|a, b| {
        (a.metadata.namespace.as_deref(), a.metadata.name.as_deref())
            .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_deref()))
    });
    html! {
        div .scroll { table {
            thead { tr { th { "Container" } th { "Phase" } th { "Node" } th { "VMID" } th { "IP" } th { "Reason" } } }
            tbody {
                @for c in &cts {
                    @let ns = c.namespace().unwrap_or_default();
                    // Borrowed: a row reads four fields of a status it need not copy.
                    @let s = c.status.as_ref();
                    tr {
                        td { a href=(format!("/containers/{}/{}", encode(&ns), encode(&c.name_any()))) { (ns) "/" (c.name_any()) } }
                        td { (phase_badge(phase_of(c))) }
                        td { (s.and_then(|s| s.node.as_deref()).or(c.spec.node_ref.as_deref()).unwrap_or("—")) }
                        td { @if let Some(v) = s.and_then(|s| s.vmid) { (v) } @else { "—" } }
                        td { (s.and_then(|s| s.ip.as_deref()).unwrap_or("—")) }
                        td .msg { (s.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready" && c.status != "True")).map(|c| c.reason.as_str()).unwrap_or("")) }
                    }
                }
            }
        } }
    }
}

/// CPU, memory and every storage as bars.
pub fn capacity_bars(cap: &NodeCapacity) -> Markup {
    let cpu: f64 = cap
        .cpu_usage
        .as_deref()
        .and_then(|u| u.parse().ok())
        .unwrap_or(0.0);
    html! {
        div .bars {
            (bar("CPU", cpu, 1.0, &format!("{:.0}% of {}", cpu * 100.0, cap.cpus)))
            (bar("Memory", cap.memory_used_bytes as f64, cap.memory_bytes as f64,
                 &format!("{} of {}", bytes(cap.memory_used_bytes), bytes(cap.memory_bytes))))
            @for (storage, s) in &cap.storage {
                (bar(storage, s.used_bytes as f64, s.total_bytes as f64,
                     &format!("{} of {}", bytes(s.used_bytes), bytes(s.total_bytes))))
            }
        }
    }
}

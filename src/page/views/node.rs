//! A node's page: conditions, version, cluster, capacity bars, the containers placed on it and
//! its settings (never its credentials: the Secret by name only).

use std::sync::Arc;

use kube::ResourceExt;
use maud::{Markup, html};

use super::layout::{bytes, conditions_table, page};
use super::overview::container_table;
use super::svg::bar;
use crate::crd::ProxmoxNode;
use crate::crd::node::NodeCapacity;
use crate::page::caches::PageCaches;

pub fn render(caches: &PageCaches, n: &ProxmoxNode) -> Markup {
    let name = n.name_any();
    let status = n.status.clone().unwrap_or_default();
    let placed: Vec<Arc<_>> = caches
        .containers
        .state()
        .into_iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.node.as_deref()) == Some(name.as_str()))
        .collect();
    page(
        &name,
        &format!("node/{name} container/"),
        html! {
            h1 { "ProxmoxNode " (name) }
            dl .facts {
                dt { "Endpoint" } dd { code { (n.spec.endpoint) } }
                dt { "Proxmox node" } dd { (n.spec.node_name) }
                dt { "Cluster" } dd { (status.cluster_name.as_deref().unwrap_or("—")) }
                dt { "Version" } dd { (status.pve_version.as_deref().unwrap_or("—")) }
                dt { "Containers on Proxmox" } dd { (status.container_count.unwrap_or(0)) }
                dt { "Last probe" } dd { (status.last_probe_time.as_deref().unwrap_or("—")) }
                dt { "Credentials Secret" } dd { (n.spec.credentials_secret_ref.namespace) "/" (n.spec.credentials_secret_ref.name) }
                dt { "TLS" } dd {
                    @if n.spec.tls.insecure_skip_verify { span .badge.bad { "verification off" } }
                    @else if n.spec.tls.ca_bundle.is_some() { "CA bundle" }
                    @else { "fingerprint or system roots" }
                }
                dt { "VMID range" } dd { @if let Some(r) = &n.spec.vmid_range { (r.min) "–" (r.max) } @else { "any" } }
                dt { "Cordoned" } dd { (if n.spec.cordoned { "yes" } else { "no" }) }
                dt { "Allowed namespaces" } dd { @if n.spec.allowed_namespaces.is_empty() { "all" } @else { (n.spec.allowed_namespaces.join(", ")) } }
            }
            @if let Some(cap) = &status.capacity { h2 { "Capacity" } (capacity_bars(cap)) }
            h2 { "Conditions" }
            (conditions_table(&status.conditions))
            h2 { "Containers placed here" }
            (container_table(&placed))
        },
    )
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

//! A node's page: conditions, version, cluster, capacity bars, the containers placed on it and
//! its settings (never its credentials: the Secret by name only).

use std::sync::Arc;

use kube::ResourceExt;
use maud::{Markup, html};

use super::layout::{conditions_table, page};
use super::parts::{capacity_bars, container_table};
use crate::crd::ProxmoxNode;
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

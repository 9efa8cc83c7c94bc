//! A template's page: conditions, digest, availability per node, what provisioning would do
//! (names only: file paths, package managers, script names — never contents) and its services.

use std::sync::Arc;

use kube::ResourceExt;
use maud::{Markup, html};

use super::layout::{conditions_table, page, short_digest};
use super::parts::container_table;
use crate::crd::LxcTemplate;
use crate::page::caches::PageCaches;
use crate::page::filter::encode;

pub fn render(caches: &PageCaches, t: &LxcTemplate) -> Markup {
    let name = t.name_any();
    let status = t.status.clone().unwrap_or_default();
    let users: Vec<Arc<_>> = caches
        .containers
        .state()
        .into_iter()
        .filter(|c| c.spec.template_ref == name)
        .collect();
    let p = &t.spec.provisioning;
    page(
        &name,
        &format!("template/{name} container/"),
        html! {
            h1 { "LxcTemplate " (name) }
            dl .facts {
                dt { "OS template" } dd { code { (t.spec.os_template.volid) } }
                dt { "Digest" } dd { @if let Some(d) = &status.digest { (short_digest(d)) } @else { "—" } }
                dt { "Defaults" } dd {
                    (t.spec.defaults.cores.map_or("—".into(), |c| format!("{c} cores"))) ", "
                    (t.spec.defaults.memory_mib.map_or("—".into(), |m| format!("{m} MiB"))) ", tags "
                    (t.spec.defaults.tags.join(", "))
                }
            }
            h2 { "On nodes" }
            div .scroll { table {
                thead { tr { th { "Node" } th { "Present" } th { "Download" } th { "Message" } } }
                tbody {
                    @for n in &status.nodes {
                        tr {
                            td { a href=(format!("/nodes/{}", encode(&n.node))) { (n.node) } }
                            td { (if n.present { "yes" } else { "no" }) }
                            td { (n.download_task.as_deref().unwrap_or("")) }
                            td .msg { (n.message.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
            h2 { "Conditions" }
            (conditions_table(&status.conditions))
            h2 { "Provisioning" }
            ul {
                @for f in &p.files { li { "file " code { (f.path) } } }
                @if let Some(pk) = &p.packages {
                    @for (manager, list) in [("apt", &pk.apt), ("apk", &pk.apk), ("dnf", &pk.dnf), ("pip", &pk.pip), ("npm", &pk.npm)] {
                        @if !list.is_empty() { li { "packages:" (manager) " " code { (list.join(" ")) } } }
                    }
                }
                @for s in &p.scripts { li { "script " code { (s.name) } } }
                @if p.files.is_empty() && p.packages.is_none() && p.scripts.is_empty() { li .muted { "nothing" } }
            }
            h2 { "Services" }
            ul {
                @for s in &t.spec.services { li { code { (s.name) } @if !s.ports.is_empty() { " ports " (s.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")) } } }
                @if t.spec.services.is_empty() { li .muted { "none declared" } }
            }
            h2 { "Containers using it" }
            (container_table(&users))
        },
    )
}

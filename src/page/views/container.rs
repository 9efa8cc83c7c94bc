//! A container's page: its conditions drawn on a time axis and listed, the spec in short, the
//! Proxmox facts (VMID, node, addresses, task in flight), provisioning steps with their digests,
//! services, and its audit trail (paged). Secrets appear by name only — the credentials Secret,
//! the root password and SSH key references — never a value.

use kube::ResourceExt;
use maud::{Markup, html};

use super::audit::trail;
use super::layout::{conditions_table, page, phase_badge, short_digest};
use super::svg::{phase_bars, timeline};
use crate::audit::{AuditError, AuditRecord};
use crate::crd::LxcContainer;
use crate::page::caches::PageCaches;
use crate::page::filter::{encode, phase_of};

pub fn render(_caches: &PageCaches, ct: &LxcContainer, rows: Result<Vec<AuditRecord>, AuditError>) -> Markup {
    let ns = ct.namespace().unwrap_or_default();
    let name = ct.name_any();
    let spec = &ct.spec;
    let status = ct.status.clone().unwrap_or_default();
    let base = format!("/containers/{}/{}", encode(&ns), encode(&name));
    let phases = rows.as_ref().map(|r| phase_spans(r)).unwrap_or_default();
    page(
        &format!("{ns}/{name}"),
        &format!("container/{ns}/{name} audit"),
        html! {
            h1 { "LxcContainer " (ns) "/" (name) " " (phase_badge(phase_of(ct))) }
            @if let Some(d) = &spec.description { p .description { (d) } }
            div .columns {
                section {
                    h2 { "Proxmox" }
                    dl .facts {
                        dt { "VMID" } dd { @if let Some(v) = status.vmid { (v) } @else { "—" } }
                        dt { "Node" } dd {
                            @if let Some(n) = &status.node { a href=(format!("/nodes/{}", encode(n))) { (n) } } @else { "—" }
                        }
                        dt { "Addresses" } dd {
                            @if status.addresses.is_empty() { (status.ip.as_deref().unwrap_or("—")) }
                            @for a in &status.addresses { span .addr { (a.interface) " " (a.address) } " " }
                        }
                        dt { "Task in flight" } dd {
                            @if let Some(t) = &status.task { (t.action) " on " (t.node) " " code .upid { (t.upid) } } @else { "none" }
                        }
                        dt { "Generation" } dd { (ct.metadata.generation.unwrap_or(0)) " (observed " (status.observed_generation.unwrap_or(0)) ")" }
                        dt { "Credentials Secret" } dd {
                            @if let Some(r) = &status.credentials_secret_ref { code { (r.name) } " (values never shown)" } @else { "—" }
                        }
                        @if !status.pending_changes.is_empty() {
                            dt { "Waiting for a restart" } dd { (status.pending_changes.join(", ")) }
                        }
                    }
                }
                section {
                    h2 { "Spec" }
                    dl .facts {
                        dt { "Template" } dd { a href=(format!("/templates/{}", encode(&spec.template_ref))) { (spec.template_ref) } }
                        dt { "Placement" } dd {
                            @if let Some(n) = &spec.node_ref { "node " (n) }
                            @if let Some(sel) = &spec.node_selector {
                                "selector " (sel.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
                            }
                        }
                        dt { "Hostname" } dd { (spec.hostname.as_deref().unwrap_or("—")) }
                        dt { "Resources" } dd {
                            (spec.resources.cores.map_or("default".into(), |c| format!("{c} cores"))) ", "
                            (spec.resources.memory_mib.map_or("default".into(), |m| format!("{m} MiB"))) " memory"
                            @if let Some(r) = &spec.rootfs { @if let Some(g) = r.size_gib { ", rootfs " (g) " GiB" } }
                        }
                        dt { "Network" } dd {
                            @for n in &spec.network {
                                span .addr { (n.name) " on " (n.bridge.as_deref().unwrap_or("default bridge"))
                                    @if let Some(v4) = &n.ipv4 { " " (v4.address.as_deref().unwrap_or("dhcp")) } }
                                " "
                            }
                            @if spec.network.is_empty() { "—" }
                        }
                        dt { "Power" } dd { (format!("{:?}", spec.power_state)) }
                        dt { "On delete" } dd { (format!("{:?}", spec.deletion_policy)) }
                        dt { "Tags" } dd { (spec.tags.join(", ")) }
                        @if let Some(r) = &spec.root_password_secret_ref { dt { "Root password Secret" } dd { code { (r.name) } } }
                        @if let Some(r) = &spec.ssh_public_keys_secret_ref { dt { "SSH keys Secret" } dd { code { (r.name) } } }
                    }
                }
            }
            h2 { "Conditions" }
            (timeline(&status.conditions))
            (conditions_table(&status.conditions))
            @if !phases.is_empty() {
                h2 { "Where the time went" }
                p .muted { "Per pipeline phase, from its audited calls on this page of the trail." }
                (phase_bars(&phases))
            }
            h2 { "Provisioning" }
            p .muted { "Applied template digest: " @if let Some(d) = &status.applied_template_digest { (short_digest(d)) } @else { "—" } }
            @if status.provisioned_steps.is_empty() { p .muted { "No step done yet." } }
            @else {
                div .scroll { table {
                    thead { tr { th { "Step" } th { "Digest" } } }
                    tbody { @for s in &status.provisioned_steps { tr { td { code { (s.name) } } td { (short_digest(&s.digest)) } } } }
                } }
            }
            h2 { "Services" }
            @if status.services.is_empty() { p .muted { "None observed." } }
            @else {
                div .scroll { table {
                    thead { tr { th { "Unit" } th { "State" } th { "Listening" } } }
                    tbody {
                        @for s in &status.services {
                            tr {
                                td { code { (s.name) } }
                                td { (s.active_state) @if let Some(sub) = &s.sub_state { " (" (sub) ")" } }
                                td { (s.listening_ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")) }
                            }
                        }
                    }
                } }
            }
            h2 { "Audit trail" }
            (trail(rows, |last| format!("{base}?before={last}")))
        },
    )
}

/// Per phase (in the order first seen, oldest first): the first call's start and the last
/// call's end, in Unix milliseconds.
fn phase_spans(rows: &[AuditRecord]) -> Vec<(String, i64, i64)> {
    let mut spans: Vec<(String, i64, i64)> = Vec::new();
    for r in rows.iter().rev() {
        let from = r.at.timestamp_millis();
        let to = r
            .outcome
            .as_ref()
            .map_or(from, |o| o.at.timestamp_millis().max(from));
        match spans.iter_mut().find(|s| s.0 == r.intent.phase) {
            Some(span) => {
                span.1 = span.1.min(from);
                span.2 = span.2.max(to);
            }
            None => spans.push((r.intent.phase.clone(), from, to)),
        }
    }
    spans
}

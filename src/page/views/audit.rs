//! The audit view: the trail across everything, filtered by object, outcome, call and time
//! range, newest first, paged by keyset (a "next" link carrying the last id seen). The same
//! table serves a container's page.

use maud::{Markup, html};

use super::layout::page;
use crate::audit::{AuditError, AuditRecord, OutcomeKind};
use crate::page::filter::{AUDIT_PAGE_SIZE, AuditFilter, encode};

pub fn render(filter: &AuditFilter, rows: Result<Vec<AuditRecord>, AuditError>) -> Markup {
    page(
        "Audit",
        "audit",
        html! {
            h1 { "Audit trail" }
            form .filters method="get" action="/audit" {
                label { "Object " input type="search" name="object" value=(filter.object) placeholder="name"; }
                label { "Outcome "
                    select name="outcome" {
                        option value="" { "any" }
                        @for o in ["pending", "succeeded", "failed"] { option value=(o) selected[o == filter.outcome] { (o) } }
                    }
                }
                label { "Call " input type="search" name="call" value=(filter.call) placeholder="e.g. create container"; }
                label { "From (UTC) " input type="datetime-local" name="from" value=(filter.from); }
                label { "To (UTC) " input type="datetime-local" name="to" value=(filter.to); }
                @if !filter.uid.is_empty() { input type="hidden" name="uid" value=(filter.uid); }
                button type="submit" { "Filter" }
                a href="/audit" { "clear" }
            }
            (trail(rows, |last| format!("/audit?{}", filter.with_before(last))))
        },
    )
}

/// The trail's rows as a table, with a link to the next (older) page when this one is full.
pub fn trail(rows: Result<Vec<AuditRecord>, AuditError>, next: impl Fn(i64) -> String) -> Markup {
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            return html! { p .badge.bad { "The audit store did not answer: " (e.to_string()) } };
        }
    };
    html! {
        @if rows.is_empty() { p .muted { "No audited call." } }
        @else {
            div .scroll { table .audit {
                thead { tr { th { "#" } th { "When (UTC)" } th { "Object" } th { "Phase" } th { "Call" } th { "Node / VMID" } th { "Outcome" } th { "Took" } } }
                tbody {
                    @for r in &rows {
                        @let kind = r.outcome_kind();
                        @let class = match kind { OutcomeKind::Succeeded => "badge ok", OutcomeKind::Failed => "badge bad", OutcomeKind::Pending => "badge busy" };
                        tr {
                            td { (r.id.0) }
                            td { time datetime=(r.at.to_rfc3339()) { (r.at.format("%Y-%m-%d %H:%M:%S")) } }
                            td {
                                (r.intent.object_kind) " "
                                @if let Some(ns) = &r.intent.object_namespace {
                                    a href=(format!("/containers/{}/{}", encode(ns), encode(&r.intent.object_name))) { (ns) "/" (r.intent.object_name) }
                                } @else {
                                    (r.intent.object_name)
                                }
                            }
                            td { (r.intent.phase) }
                            td { (r.intent.operation) }
                            td { (r.intent.node.as_deref().unwrap_or("—")) " / " @if let Some(v) = r.intent.vmid { (v) } @else { "—" } }
                            td {
                                span class=(class) { (kind.as_str()) }
                                @if let Some(crate::audit::RecordedOutcome { outcome: crate::audit::Outcome::Failed { error, class, .. }, .. }) = &r.outcome {
                                    " " span .msg { (class) ": " (error) }
                                }
                            }
                            td { @if let Some(o) = &r.outcome { (o.duration_ms) " ms" } }
                        }
                    }
                }
            } }
            @if rows.len() as u32 >= AUDIT_PAGE_SIZE {
                @if let Some(last) = rows.last() {
                    p { a .next rel="next" href=(next(last.id.0)) { "Older →" } }
                }
            }
        }
    }
}

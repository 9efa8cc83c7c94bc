//! The frame every page shares (navigation, the live indicator, the stylesheet and the one
//! external script), and the small pieces several pages show: conditions, badges, times.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use maud::{DOCTYPE, Markup, html};

/// A whole page. `watch` lists the change-feed prefixes that make the live script refresh this
/// page (`container/ns/name`, `node/`, `audit`, …), space-separated.
pub fn page(title: &str, watch: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="referrer" content="no-referrer";
                title { (title) " · lxc-operator" }
                link rel="stylesheet" href="/static/page.css";
                script src="/static/page.js" defer {}
            }
            body data-watch=(watch) {
                header {
                    nav {
                        a href="/" { "Overview" }
                        a href="/audit" { "Audit" }
                    }
                    span #live .live title="live updates" { "static" }
                }
                main #main { (body) }
                footer {
                    "Read-only status of lxc-operator. Live with JavaScript; reload the page without it."
                }
            }
        }
    }
}

/// The 404 page.
pub fn not_found(kind: &str, name: &str) -> Markup {
    page(
        "not found",
        "",
        html! {
            h1 { "Not found" }
            p { "No " (kind) " " code { (name) } " in this replica's caches." }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// `True` / `False` / `Unknown` as a coloured badge.
pub fn status_badge(status: &str) -> Markup {
    let class = match status {
        "True" => "badge ok",
        "False" => "badge bad",
        _ => "badge unknown",
    };
    html! { span class=(class) { (status) } }
}

/// A phase as a badge.
pub fn phase_badge(phase: &str) -> Markup {
    let class = match phase {
        "Ready" => "badge ok",
        "Failed" => "badge bad",
        "Stopped" => "badge unknown",
        _ => "badge busy",
    };
    html! { span class=(class) { (phase) } }
}

/// The condition of `type_`'s status (`Unknown` when absent).
pub fn condition_status<'a>(conditions: &'a [Condition], type_: &str) -> &'a str {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map_or("Unknown", |c| c.status.as_str())
}

/// Every condition as a table row.
pub fn conditions_table(conditions: &[Condition]) -> Markup {
    html! {
        @if conditions.is_empty() {
            p .muted { "No conditions yet." }
        } @else {
            div .scroll {
                table {
                    thead { tr { th { "Type" } th { "Status" } th { "Reason" } th { "Message" } th { "Since" } } }
                    tbody {
                        @for c in conditions {
                            tr {
                                td { (c.type_) }
                                td { (status_badge(&c.status)) }
                                td { (c.reason) }
                                td .msg { (c.message) }
                                td { time datetime=(c.last_transition_time.0.to_string()) { (ago(c.last_transition_time.0.as_second())) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How long ago a Unix time was, briefly (`42s`, `5m`, `3h`, `2d`).
pub fn ago(unix_seconds: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let secs = (now - unix_seconds).max(0);
    format!("{} ago", duration(secs))
}

/// A duration in seconds, briefly.
pub fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Bytes in binary units.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A digest shortened for a table (the whole one in the title).
pub fn short_digest(digest: &str) -> Markup {
    let short: String = digest.trim_start_matches("sha256:").chars().take(12).collect();
    html! { code title=(digest) { (short) } }
}

//! The pictures, drawn server-side as inline SVG with presentation attributes only (no style
//! attribute: the CSP allows no inline style) and a `<title>` for screen readers: usage bars
//! and the conditions timeline.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use maud::{Markup, html};

/// A labelled usage bar: `used` of `total` (a share in 0..1 when `total` is 1).
pub fn bar(label: &str, used: f64, total: f64, text: &str) -> Markup {
    let share = if total > 0.0 {
        (used / total).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let width = format!("{:.1}", share * 200.0);
    let class = match share {
        s if s >= 0.9 => "fill bad",
        s if s >= 0.75 => "fill warn",
        _ => "fill ok",
    };
    html! {
        div .bar {
            span .bar-label { (label) }
            svg class="bar-svg" viewBox="0 0 200 12" width="200" height="12" role="img" {
                title { (label) ": " (text) }
                rect class="track" x="0" y="0" width="200" height="12" rx="3" {}
                rect class=(class) x="0" y="0" width=(width) height="12" rx="3" {}
            }
            span .bar-text { (text) }
        }
    }
}

/// The conditions on a time axis, oldest transition left, now at the right: when each one
/// last changed, and to what. Rows sorted by transition time.
pub fn timeline(conditions: &[Condition]) -> Markup {
    let mut sorted: Vec<&Condition> = conditions.iter().collect();
    sorted.sort_by_key(|c| c.last_transition_time.0);
    let Some(first) = sorted.first().map(|c| c.last_transition_time.0.as_second()) else {
        return html! {};
    };
    let now = chrono::Utc::now().timestamp().max(first + 1);
    let span = (now - first) as f64;
    let row = 22;
    let height = row * sorted.len() as i64 + 24;
    let x = |t: i64| format!("{:.1}", 130.0 + (t - first) as f64 / span * 450.0);
    html! {
        svg class="timeline" viewBox=(format!("0 0 600 {height}")) role="img" {
            title { "Conditions by the time of their last transition" }
            line class="axis" x1="130" y1=(height - 18) x2="580" y2=(height - 18) {}
            text class="tick" x="130" y=(height - 4) { (super::layout::ago(first)) }
            text class="tick" x="580" y=(height - 4) text-anchor="end" { "now" }
            @for (i, c) in sorted.iter().enumerate() {
                @let y = row * i as i64 + 14;
                @let cx = x(c.last_transition_time.0.as_second());
                @let class = match c.status.as_str() { "True" => "dot ok", "False" => "dot bad", _ => "dot unknown" };
                text class="label" x="124" y=(y + 4) text-anchor="end" { (c.type_) }
                line class="since" x1=(cx) y1=(y) x2="580" y2=(y) {}
                circle class=(class) cx=(cx) cy=(y) r="5" {
                    title { (c.type_) " " (c.status) " (" (c.reason) ") " (super::layout::ago(c.last_transition_time.0.as_second())) }
                }
            }
        }
    }
}

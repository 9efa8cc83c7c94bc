//! The pictures, drawn server-side as inline SVG with presentation attributes only (no style
//! attribute: the CSP allows no inline style) and a `<title>` for screen readers: usage bars
//! and the conditions timeline, durations, phase bars and the last hour's latencies.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use maud::{Markup, html};

use crate::observe::latency::Point;

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
            svg class="bar-svg" viewBox="0 0 200 12" preserveAspectRatio="none" role="img" {
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

/// A histogram of durations in seconds (e.g. time to Ready), given as (seconds, how many took
/// that long), in buckets that double from 5 s; the count above each bar.
pub fn histogram(title: &str, seconds: &[(i64, usize)]) -> Markup {
    const BOUNDS: [i64; 8] = [5, 10, 20, 40, 80, 160, 320, 640];
    let mut counts = [0usize; BOUNDS.len() + 1];
    for (s, n) in seconds {
        let i = BOUNDS.iter().position(|b| s <= b).unwrap_or(BOUNDS.len());
        counts[i] += n;
    }
    let total: usize = counts.iter().sum();
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let label = |i: usize| match BOUNDS.get(i) {
        Some(b) => format!("≤{}", super::layout::duration(*b)),
        None => format!(">{}", super::layout::duration(BOUNDS[BOUNDS.len() - 1])),
    };
    html! {
        svg class="histogram" viewBox="0 0 450 130" role="img" {
            title { (title) ": " (total) " containers" }
            @for (i, n) in counts.iter().enumerate() {
                @let h = (*n as f64 / max * 80.0).round();
                @let x = 10 + i as i64 * 48;
                rect class="fill ok" x=(x) y=(format!("{:.0}", 100.0 - h)) width="40" height=(format!("{h:.0}")) {}
                text class="tick" x=(x + 20) y=(format!("{:.0}", 96.0 - h)) text-anchor="middle" { (n) }
                text class="tick" x=(x + 20) y="118" text-anchor="middle" { (label(i)) }
            }
        }
    }
}

/// Seconds as the latency pictures label them.
fn short_seconds(s: f64) -> String {
    match s {
        s if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        s => format!("{s:.1} s"),
    }
}

/// The last hour of one latency, a minute a column: p50 and p95 as lines with a dot per
/// minute that saw any (its title gives the minute, both quantiles and the count). The y axis
/// is logarithmic from 1 ms, as latencies spread over orders of magnitude.
pub fn latency(title: &str, points: &[Point]) -> Markup {
    const MINUTES: i64 = crate::observe::latency::MINUTES as i64;
    let now = points
        .iter()
        .map(|p| p.minute)
        .max()
        .unwrap_or_default()
        .max(chrono::Utc::now().timestamp().div_euclid(60));
    let top = points.iter().map(|p| p.p95).fold(0.01_f64, f64::max);
    let (floor, ceiling) = (0.001_f64.log10(), (top * 1.5).log10());
    let x = |minute: i64| 50.0 + (minute - (now - MINUTES + 1)) as f64 / (MINUTES - 1) as f64 * 530.0;
    let y = |s: f64| 110.0 - (s.max(0.001).log10() - floor) / (ceiling - floor) * 100.0;
    let line = |q: fn(&Point) -> f64| {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.minute), y(q(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        figure .latency {
            figcaption { (title) ": " (points.iter().map(|p| p.count).sum::<u64>()) " in the last hour" }
            svg class="latency" viewBox="0 0 600 140" role="img" {
                title { (title) " latency, p50 and p95 per minute, last hour" }
                line class="axis" x1="50" y1="110" x2="580" y2="110" {}
                text class="tick" x="46" y="113" text-anchor="end" { "1 ms" }
                text class="tick" x="46" y="14" text-anchor="end" { (short_seconds(10f64.powf(ceiling))) }
                text class="tick" x="50" y="128" { "−60 min" }
                text class="tick" x="580" y="128" text-anchor="end" { "now" }
                @if points.is_empty() {
                    text class="tick" x="315" y="60" text-anchor="middle" { "nothing measured yet" }
                } @else {
                    polyline class="p95" points=(line(|p| p.p95)) {}
                    polyline class="p50" points=(line(|p| p.p50)) {}
                    @for p in points {
                        @let at = chrono::DateTime::from_timestamp(p.minute * 60, 0).map(|t| t.format("%H:%M UTC").to_string()).unwrap_or_default();
                        circle class="point p95" cx=(format!("{:.1}", x(p.minute))) cy=(format!("{:.1}", y(p.p95))) r="2.5" {
                            title { (at) ": p50 " (short_seconds(p.p50)) ", p95 " (short_seconds(p.p95)) ", " (p.count) " measured" }
                        }
                    }
                }
            }
        }
    }
}

/// One bar per audited pipeline phase of a container, from its first call's start to its last
/// call's end, on a shared time axis: where the container's time went.
pub fn phase_bars(phases: &[(String, i64, i64)]) -> Markup {
    let Some(start) = phases.iter().map(|p| p.1).min() else {
        return html! {};
    };
    let end = phases.iter().map(|p| p.2).max().unwrap_or(start).max(start + 1);
    let span = (end - start) as f64;
    let row = 22;
    let height = row * phases.len() as i64 + 8;
    html! {
        svg class="timeline" viewBox=(format!("0 0 600 {height}")) role="img" {
            title { "Time spent per pipeline phase (from the audit trail)" }
            @for (i, (phase, from, to)) in phases.iter().enumerate() {
                @let y = row * i as i64 + 6;
                @let x = 130.0 + (from - start) as f64 / span * 380.0;
                @let w = ((to - from) as f64 / span * 380.0).max(2.0);
                text class="label" x="124" y=(y + 11) text-anchor="end" { (phase) }
                rect class="fill ok" x=(format!("{x:.1}")) y=(y) width=(format!("{w:.1}")) height="14" rx="2" {}
                text class="tick" x=(format!("{:.1}", x + w + 4.0)) y=(y + 11) { (format!("{:.2} s", (to - from) as f64 / 1000.0)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_draws_a_dot_per_minute_and_escapes_its_title() {
        let now = chrono::Utc::now().timestamp().div_euclid(60);
        let points = [
            Point {
                minute: now - 2,
                count: 4,
                p50: 0.004,
                p95: 0.2,
            },
            Point {
                minute: now,
                count: 9,
                p50: 0.02,
                p95: 1.5,
            },
        ];
        let svg = latency("<i>calls</i>", &points).into_string();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(
            svg.contains("&lt;i&gt;calls&lt;/i&gt;: 13 in the last hour"),
            "{svg}"
        );
        assert!(svg.contains("p95 1.5 s, 9 measured"), "{svg}");
        let empty = latency("calls", &[]).into_string();
        assert!(empty.contains("nothing measured yet") && !empty.contains("<circle"));
    }

    #[test]
    fn the_histogram_counts_each_duration_in_its_doubling_bucket() {
        let svg = histogram("t", &[(1, 1), (5, 1), (6, 1), (30, 3), (5000, 1)]).into_string();
        // ≤5s: 2, ≤10s: 1, ≤40s: 3, >640s... the last bucket: 1.
        let counts: Vec<&str> = svg
            .split("text-anchor=\"middle\">")
            .skip(1)
            .step_by(2)
            .map(|s| s.split('<').next().unwrap())
            .collect();
        assert_eq!(counts, ["2", "1", "0", "3", "0", "0", "0", "0", "1"]);
        assert!(svg.contains("t: 7 containers"), "{svg}");
    }

    #[test]
    fn pictures_escape_what_they_label() {
        let svg = phase_bars(&[("<b>x</b>".into(), 0, 1500)]).into_string();
        assert!(
            svg.contains("&lt;b&gt;x&lt;/b&gt;") && svg.contains("1.50 s"),
            "{svg}"
        );
    }
}

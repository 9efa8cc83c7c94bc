//! The last hour of two latencies (reconciles, Proxmox calls) for the status page's pictures:
//! one small histogram per minute, at most [`MINUTES`] kept, so memory stays bounded whatever
//! the traffic. The metrics registry feeds it beside its own histograms.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Minutes kept (the current one included).
pub const MINUTES: usize = 60;

/// Bucket upper bounds in seconds (1 ms doubling to about 65 s), then +Inf.
const BOUNDS: [f64; 17] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384,
    32.768, 65.536,
];

/// Which latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Reconcile,
    ProxmoxCall,
}

/// One minute's summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The minute (Unix seconds / 60).
    pub minute: i64,
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
}

#[derive(Debug, Clone)]
struct Minute {
    minute: i64,
    counts: [u64; BOUNDS.len() + 1],
    count: u64,
}

impl Minute {
    fn new(minute: i64) -> Self {
        Self {
            minute,
            counts: [0; BOUNDS.len() + 1],
            count: 0,
        }
    }

    /// The `q` quantile, interpolated inside its bucket as Prometheus' `histogram_quantile`.
    fn quantile(&self, q: f64) -> f64 {
        let rank = q * self.count as f64;
        let mut seen = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 && (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                let Some(&upper) = BOUNDS.get(i) else {
                    return lower;
                };
                let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
                return lower + (upper - lower) * within;
            }
            seen += n;
        }
        0.0
    }
}

/// Per-minute histograms of both series.
#[derive(Debug, Default)]
pub struct LatencyHistory {
    series: Mutex<[VecDeque<Minute>; 2]>,
}

fn index(series: Series) -> usize {
    match series {
        Series::Reconcile => 0,
        Series::ProxmoxCall => 1,
    }
}

fn now_minute() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(60)
}

impl LatencyHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one duration of `series` in the current minute.
    pub fn observe(&self, series: Series, seconds: f64) {
        self.observe_at(series, seconds, now_minute());
    }

    fn observe_at(&self, series: Series, seconds: f64, minute: i64) {
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let minutes = &mut all[index(series)];
        if minutes.back().is_none_or(|m| m.minute < minute) {
            minutes.push_back(Minute::new(minute));
        }
        while minutes.len() > MINUTES
            || minutes
                .front()
                .is_some_and(|m| m.minute <= minute - MINUTES as i64)
        {
            minutes.pop_front();
        }
        if let Some(m) = minutes.back_mut() {
            let bucket = BOUNDS.iter().position(|b| seconds <= *b).unwrap_or(BOUNDS.len());
            m.counts[bucket] += 1;
            m.count += 1;
        }
    }

    /// The minutes of the last hour that saw at least one duration, oldest first.
    pub fn last_hour(&self, series: Series) -> Vec<Point> {
        self.last_hour_at(series, now_minute())
    }

    fn last_hour_at(&self, series: Series, now: i64) -> Vec<Point> {
        let all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        all[index(series)]
            .iter()
            .filter(|m| m.minute > now - MINUTES as i64 && m.count > 0)
            .map(|m| Point {
                minute: m.minute,
                count: m.count,
                p50: m.quantile(0.5),
                p95: m.quantile(0.95),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_per_minute_and_an_hour_at_most() {
        let h = LatencyHistory::new();
        for i in 0..100 {
            // 90 fast (<= 4 ms), 10 slow (1.024..2.048 s).
            h.observe_at(Series::Reconcile, if i < 90 { 0.003 } else { 1.5 }, 1000);
        }
        h.observe_at(Series::ProxmoxCall, 0.05, 1000);
        let points = h.last_hour_at(Series::Reconcile, 1000);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].count, 100);
        assert!(points[0].p50 > 0.002 && points[0].p50 <= 0.004, "{points:?}");
        assert!(points[0].p95 > 1.024 && points[0].p95 <= 2.048, "{points:?}");
        for minute in 1001..1200 {
            h.observe_at(Series::Reconcile, 0.1, minute);
        }
        let points = h.last_hour_at(Series::Reconcile, 1199);
        assert_eq!(points.len(), MINUTES);
        assert_eq!(points[0].minute, 1199 - MINUTES as i64 + 1);
        assert_eq!(h.series.lock().unwrap()[0].len(), MINUTES);
        assert_eq!(h.last_hour_at(Series::ProxmoxCall, 1199), vec![]);
    }
}

//! The config sweep: what `/cluster/resources` cannot show (NICs, the description, DNS, mount
//! points, features, …) is checked by waking each placed container now and then for one
//! reconcile, which reads its config and corrects any drift. Per node, a round-robin cursor
//! over the placed containers (by uid) and two budgets: one that owes each container a read
//! at least every `interval`, spread evenly over the polls, and a token bucket that never lets
//! the sweep exceed `reads_per_second` for the node. Pure: the caller passes the clock.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often every container's config is read, at most how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepSettings {
    /// Each placed container's config is read at least this often (when the rate allows).
    /// Zero turns the sweep off.
    pub interval: Duration,
    /// Sweep reconciles per second per node, at most.
    pub reads_per_second: f64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            reads_per_second: 2.0,
        }
    }
}

impl SweepSettings {
    /// No sweep: only what a poll shows wakes a container.
    pub const OFF: Self = Self {
        interval: Duration::ZERO,
        reads_per_second: 0.0,
    };

    fn enabled(&self) -> bool {
        !self.interval.is_zero() && self.reads_per_second > 0.0
    }
}

/// One node's sweep position and budgets.
#[derive(Debug, Clone, Default)]
pub struct NodeSweep {
    /// The uid last woken by the sweep; the next round starts after it.
    cursor: Option<String>,
    /// The previous poll.
    last: Option<Instant>,
    /// Reads owed so that each container is read once per interval.
    owed: f64,
    /// Reads the rate limit allows now.
    tokens: f64,
}

impl NodeSweep {
    /// How many containers this poll may wake, of `placed` on the node, at `now`.
    pub fn allowance(&mut self, now: Instant, placed: usize, settings: &SweepSettings) -> usize {
        let Some(last) = self.last.replace(now) else {
            // The first poll only starts the clock (every container reconciles at start anyway).
            return 0;
        };
        if !settings.enabled() || placed == 0 {
            self.owed = 0.0;
            return 0;
        }
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let n = placed as f64;
        // Never more than one round owed: a slow rate must not turn into a burst later.
        self.owed = (self.owed + n * elapsed / settings.interval.as_secs_f64()).min(n);
        // The bucket holds at most one poll's worth of reads (and at least one read, so a rate
        // below one per poll still reads, every few polls).
        let cap = (settings.reads_per_second * elapsed).max(1.0);
        self.tokens = (self.tokens + settings.reads_per_second * elapsed).min(cap);
        // (A hair of slack: a sum of fractions lands just below the whole number it makes.)
        let k = (self.owed.min(self.tokens) + 1e-9).floor();
        self.owed = (self.owed - k).max(0.0);
        self.tokens = (self.tokens - k).max(0.0);
        k as usize
    }

    /// The next `k` of `placed` (sorted uids) after the cursor, in a circle, skipping the ones
    /// in `woken` (already woken by this poll's diff: they read their config anyway).
    pub fn next<'a>(&mut self, placed: &'a [String], woken: &BTreeSet<&str>, k: usize) -> Vec<&'a str> {
        if k == 0 || placed.is_empty() {
            return Vec::new();
        }
        let start = match &self.cursor {
            Some(c) => placed.partition_point(|u| u.as_str() <= c.as_str()),
            None => 0,
        };
        let picked: Vec<&str> = placed[start..]
            .iter()
            .chain(&placed[..start])
            .map(String::as_str)
            .filter(|u| !woken.contains(u))
            .take(k)
            .collect();
        if let Some(last) = picked.last() {
            self.cursor = Some((*last).to_string());
        }
        picked
    }
}

/// Every node's sweep, shared by the polls.
#[derive(Debug, Default)]
pub struct ConfigSweep {
    pub settings: SweepSettings,
    nodes: Mutex<HashMap<String, NodeSweep>>,
}

impl ConfigSweep {
    pub fn new(settings: SweepSettings) -> Self {
        Self {
            settings,
            nodes: Mutex::default(),
        }
    }

    /// The uids among `placed` (sorted) that `node`'s poll at `now` wakes for a config read.
    pub fn pick<'a>(
        &self,
        node: &str,
        now: Instant,
        placed: &'a [String],
        woken: &BTreeSet<&str>,
    ) -> Vec<&'a str> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let sweep = nodes.entry(node.to_string()).or_default();
        let candidates = placed.iter().filter(|u| !woken.contains(u.as_str())).count();
        let k = sweep.allowance(now, candidates, &self.settings);
        sweep.next(placed, woken, k)
    }

    /// Forgets a node (deleted).
    pub fn remove(&self, node: &str) {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(n: usize) -> Vec<String> {
        let mut v: Vec<String> = (0..n).map(|i| format!("uid-{i:04}")).collect();
        v.sort();
        v
    }

    fn settings(interval: u64, rate: f64) -> SweepSettings {
        SweepSettings {
            interval: Duration::from_secs(interval),
            reads_per_second: rate,
        }
    }

    /// Polls every `poll` seconds for `total` seconds; returns the uids woken per poll.
    fn simulate(placed: &[String], s: SweepSettings, poll: u64, total: u64) -> Vec<Vec<String>> {
        let sweep = ConfigSweep::new(s);
        let t0 = Instant::now();
        (0..=total / poll)
            .map(|i| {
                let now = t0 + Duration::from_secs(i * poll);
                sweep
                    .pick("pve1", now, placed, &BTreeSet::new())
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_container_is_read_once_per_interval_spread_evenly() {
        let placed = uids(10);
        let polls = simulate(&placed, settings(100, 2.0), 5, 100);
        assert!(polls[0].is_empty(), "the first poll only starts the clock");
        let all: Vec<&String> = polls.iter().flatten().collect();
        assert_eq!(all.len(), 10, "{polls:?}");
        assert_eq!(
            all.iter().map(|u| u.as_str()).collect::<BTreeSet<_>>().len(),
            10,
            "each once, in one interval"
        );
        assert!(
            polls.iter().all(|p| p.len() <= 1),
            "spread, not a burst: {polls:?}"
        );
        // Round robin: the next interval goes on in the same order.
        let two = simulate(&placed, settings(100, 2.0), 5, 200);
        let order: Vec<&String> = two.iter().flatten().collect();
        assert_eq!(order[..10], order[10..20], "the same order each round");
    }

    #[test]
    fn the_rate_limit_caps_each_node() {
        let placed = uids(1000);
        let polls = simulate(&placed, settings(60, 2.0), 5, 120);
        assert!(polls.iter().all(|p| p.len() <= 10), "at most 2/s × 5 s per poll");
        let total: usize = polls.iter().map(Vec::len).sum();
        assert_eq!(total, 240, "the limit is used in full: 2/s over 120 s");
        // A rate below one per poll still reads, every few polls.
        let slow = simulate(&uids(50), settings(60, 0.1), 5, 100);
        let total: usize = slow.iter().map(Vec::len).sum();
        assert_eq!(total, 10, "0.1/s over 100 s: {slow:?}");
    }

    #[test]
    fn fractions_carry_over_long_intervals() {
        // 3 containers every 300 s with 5 s polls: 0.05 reads per poll, 3 in 300 s.
        let polls = simulate(&uids(3), settings(300, 2.0), 5, 300);
        assert_eq!(polls.iter().map(Vec::len).sum::<usize>(), 3);
        let off = simulate(&uids(3), SweepSettings::OFF, 5, 300);
        assert!(off.iter().all(Vec::is_empty), "off wakes nothing");
    }

    #[test]
    fn the_cursor_wraps_and_skips_containers_the_diff_woke() {
        let placed = uids(4);
        let mut s = NodeSweep::default();
        let none = BTreeSet::new();
        assert_eq!(s.next(&placed, &none, 3), ["uid-0000", "uid-0001", "uid-0002"]);
        let woken: BTreeSet<&str> = ["uid-0000"].into();
        assert_eq!(
            s.next(&placed, &woken, 2),
            ["uid-0003", "uid-0001"],
            "wraps, and uid-0000 was read by the diff's wake-up"
        );
        assert_eq!(
            s.next(&placed, &none, 10),
            ["uid-0002", "uid-0003", "uid-0000", "uid-0001"]
        );
        // A container that left the node: the cursor goes on from where it would be.
        let fewer = vec!["uid-0000".to_string(), "uid-0003".to_string()];
        assert_eq!(s.next(&fewer, &none, 1), ["uid-0003"]);
    }
}

//! The fault suite's faults: pve-sim's unreliability (5xx and latency spikes), the lock
//! contention and ticket expiry injected in the background, and the outages' spans with the
//! check that no mutation reached Proxmox while the audit store was down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pve_sim::admin::LockRequest;
use pve_sim::{ErrorKind, ErrorRule, FaultConfig, LatencySpike, LogEntry, Match};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::end_checks::{IntentWindow, is_mutating, operation_of};

/// A span of time (ms since the Unix epoch, pve-sim's request log clock) a dependency was away.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outage {
    pub from_ms: u64,
    pub to_ms: u64,
}

impl Outage {
    pub fn contains(&self, at_ms: u64) -> bool {
        (self.from_ms..=self.to_ms).contains(&at_ms)
    }

    pub fn secs(&self) -> f64 {
        (self.to_ms.saturating_sub(self.from_ms)) as f64 / 1000.0
    }
}

/// The lock contention and ticket expiry injected in the background, counted.
#[derive(Default)]
pub struct Chaos {
    pub stop: AtomicBool,
    pub flocks: AtomicUsize,
    pub config_locks: AtomicUsize,
    pub ticket_expiries: AtomicUsize,
}

/// Every 1.5 s, with the seed's dice: a container's config lock file held for 1-4 s (calls
/// wait for it) or its config `lock: backup` set for 2-4 s (calls are refused as locked); every
/// 12 s all tickets expire.
pub async fn chaos(admin: pve_sim::Admin, seed: u64, chaos: Arc<Chaos>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc4a05);
    let started = Instant::now();
    let mut expired = 0;
    while !chaos.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if started.elapsed() > Duration::from_secs(12 * (expired + 1)) {
            admin.expire_tickets();
            expired += 1;
            chaos.ticket_expiries.fetch_add(1, Ordering::Relaxed);
        }
        let cts = admin.containers();
        if cts.is_empty() || rng.random_bool(0.3) {
            continue;
        }
        let vmid = cts[rng.random_range(0..cts.len())].vmid;
        if rng.random_bool(0.5) {
            admin.lock_ct(LockRequest {
                vmid,
                seconds: rng.random_range(1.0..4.0),
                lock: None,
            });
            chaos.flocks.fetch_add(1, Ordering::Relaxed);
        } else {
            admin.lock_ct(LockRequest {
                vmid,
                seconds: rng.random_range(2.0..4.0),
                lock: Some("backup".into()),
            });
            chaos.config_locks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// 20 % of every request answered 500 or 503 (half each), 5 % held 1.5 s longer.
pub fn unreliable() -> FaultConfig {
    let all = Match::default();
    FaultConfig {
        errors: vec![
            ErrorRule {
                on: all.clone(),
                rate: 0.10,
                kind: ErrorKind::Internal,
                message: Some("injected: proxy loop detected".into()),
            },
            // Drawn only when the first did not fire: 0.9 × 1/9 = another 10 %.
            ErrorRule {
                on: all.clone(),
                rate: 1.0 / 9.0,
                kind: ErrorKind::Unavailable,
                message: None,
            },
        ],
        spikes: vec![LatencySpike {
            on: all,
            rate: 0.05,
            ms: 1500,
        }],
        ..FaultConfig::default()
    }
}

/// Mutating requests that arrived while the audit store was down, and those of them no intent
/// written before it went down covers.
pub fn during_audit_outage<'a>(
    requests: &'a [LogEntry],
    windows: &[IntentWindow],
    outage: Outage,
) -> (usize, Vec<String>) {
    let arrived: Vec<&'a LogEntry> = requests
        .iter()
        .filter(|r| is_mutating(r) && outage.contains(r.received_ms))
        .collect();
    let uncovered = arrived
        .iter()
        .filter(|r| {
            let at = r.received_ms as i64;
            operation_of(r).is_none_or(|key| {
                !windows
                    .iter()
                    .any(|w| w.from_ms < outage.from_ms as i64 && w.covers(&key, at))
            })
        })
        .map(|r| format!("{} {} -> {} at {}", r.method, r.path, r.status, r.received_ms))
        .collect();
    (arrived.len(), uncovered)
}

/// How long after Redis went away the operator may still act on a lock it held: the lock's
/// validity (two thirds of the operator's 12 s ttl from the last renewal, which left before
/// Redis went), plus two seconds for the intent's write after the fence's check on a loaded
/// machine.
const LOCK_VALIDITY_MS: u64 = 8_000 + 2_000;

/// Calls begun — intents written, which the fences allow only to a lock holder — while Redis
/// was down and no lock could still be valid.
pub fn begun_without_lock(windows: &[IntentWindow], outage: Outage) -> Vec<String> {
    let unlocked = Outage {
        from_ms: outage.from_ms + LOCK_VALIDITY_MS,
        to_ms: outage.to_ms,
    };
    windows
        .iter()
        .filter(|w| unlocked.from_ms < unlocked.to_ms && unlocked.contains(w.from_ms as u64))
        .map(|w| {
            format!(
                "{} on {} VMID {:?}: intent {} ms after Redis went",
                w.operation,
                w.node,
                w.vmid,
                w.from_ms as u64 - outage.from_ms
            )
        })
        .collect()
}

/// Mutating requests that arrived while `outage` lasted, and the latest one's distance from
/// its start in seconds.
pub fn mutations_during(requests: &[LogEntry], outage: Outage) -> (usize, f64) {
    let during: Vec<u64> = requests
        .iter()
        .filter(|r| is_mutating(r) && outage.contains(r.received_ms))
        .map(|r| r.received_ms - outage.from_ms)
        .collect();
    let latest = during.iter().max().copied().unwrap_or_default();
    (during.len(), latest as f64 / 1000.0)
}

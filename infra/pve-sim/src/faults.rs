//! Fault injection: per-endpoint error rates (500, 503, connection reset), added latency
//! (always, or as occasional spikes), oversized answers and task failures, drawn from a seeded RNG so a run is reproducible. (Node outages, ticket
//! expiry and lock contention act on the state directly; see `admin.rs`.)

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Faults set at start (`Config::faults`) or through the admin API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    pub errors: Vec<ErrorRule>,
    pub latency: Vec<LatencyRule>,
    /// Occasional delays: each matching request is held `ms` longer with probability `rate`.
    pub spikes: Vec<LatencySpike>,
    pub padding: Vec<PaddingRule>,
    pub task_failures: Vec<TaskFailure>,
    /// Seconds after a container starts before its DHCP lease shows in `/interfaces` (a real
    /// container's DHCP client takes a while after boot; 0 = at once).
    pub dhcp_delay_secs: u64,
}

/// Which requests a rule applies to: path prefix below `/api2/json` ("" = all) and method.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    pub path_prefix: String,
    pub method: Option<String>,
}

impl Match {
    fn hits(&self, method: &str, path: &str) -> bool {
        path.starts_with(&self.path_prefix)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// 500 with the rule's message.
    #[serde(rename = "500")]
    Internal,
    /// 503 `Service Unavailable`.
    #[serde(rename = "503")]
    Unavailable,
    /// The connection is closed without an answer.
    Reset,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    #[serde(flatten)]
    pub on: Match,
    /// Probability in [0, 1].
    pub rate: f64,
    pub kind: ErrorKind,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyRule {
    #[serde(flatten)]
    pub on: Match,
    pub ms: u64,
}

/// A latency spike: a matching request is delayed by `ms` with probability `rate` (drawn from
/// the seeded RNG like error rates).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpike {
    #[serde(flatten)]
    pub on: Match,
    /// Probability in [0, 1].
    pub rate: f64,
    pub ms: u64,
}

/// How many faults were injected so far (`GET /faults/injected`), so a test can print what it
/// put its client through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedCounts {
    /// Answers replaced by an injected 500.
    pub internal: u64,
    /// Answers replaced by an injected 503.
    pub unavailable: u64,
    /// Connections closed without an answer.
    pub resets: u64,
    /// Requests held by a latency spike.
    pub spikes: u64,
}

/// Successful answers that match carry `bytes` of filler in their envelope
/// (`{"data":...,"padding":"xx..."}`), streamed as the client reads, so a client's body size
/// limit can be tested without the simulator holding the body in memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaddingRule {
    #[serde(flatten)]
    pub on: Match,
    pub bytes: u64,
    /// Sent chunked, without `Content-Length`, so the size is not known from the headers.
    #[serde(default)]
    pub chunked: bool,
}

/// The next `count` tasks of a type (any if unset) for a vmid (any if unset) fail with `message`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFailure {
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub vmid: Option<u32>,
    pub message: String,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// An injected error for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Injected {
    Error(ErrorKind, String),
}

pub struct Faults {
    pub cfg: FaultConfig,
    rng: ChaCha8Rng,
    injected: InjectedCounts,
}

impl Faults {
    pub fn new(cfg: FaultConfig, seed: u64) -> Faults {
        Faults {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            injected: InjectedCounts::default(),
        }
    }

    /// The latency to add and the error (if any) to answer with, for one request.
    pub fn decide(&mut self, method: &str, path: &str) -> (Duration, Option<Injected>) {
        let ms: u64 = self
            .cfg
            .latency
            .iter()
            .filter(|l| l.on.hits(method, path))
            .map(|l| l.ms)
            .sum();
        let mut spiked = 0;
        for spike in self.cfg.spikes.iter().filter(|s| s.on.hits(method, path)) {
            if self.rng.random::<f64>() < spike.rate {
                spiked += spike.ms;
            }
        }
        if spiked > 0 {
            self.injected.spikes += 1;
        }
        let mut injected = None;
        for rule in self.cfg.errors.iter().filter(|r| r.on.hits(method, path)) {
            if self.rng.random::<f64>() < rule.rate {
                let msg = rule.message.clone().unwrap_or_else(|| "injected failure".into());
                match rule.kind {
                    ErrorKind::Internal => self.injected.internal += 1,
                    ErrorKind::Unavailable => self.injected.unavailable += 1,
                    ErrorKind::Reset => self.injected.resets += 1,
                }
                injected = Some(Injected::Error(rule.kind, msg));
                break;
            }
        }
        (Duration::from_millis(ms + spiked), injected)
    }

    /// The faults injected so far.
    pub fn injected(&self) -> InjectedCounts {
        self.injected
    }

    /// The padding for a successful answer to this request (the first matching rule).
    pub fn padding(&self, method: &str, path: &str) -> Option<PaddingRule> {
        self.cfg.padding.iter().find(|p| p.on.hits(method, path)).cloned()
    }

    /// Consumes a matching task failure, if any.
    pub fn take_task_failure(&mut self, kind: &str, vmid: Option<u32>) -> Option<String> {
        let pos = self.cfg.task_failures.iter().position(|f| {
            f.task_type.as_deref().is_none_or(|t| t == kind) && f.vmid.is_none_or(|v| Some(v) == vmid)
        })?;
        let f = &mut self.cfg.task_failures[pos];
        let msg = f.message.clone();
        f.count = f.count.saturating_sub(1);
        if f.count == 0 {
            self.cfg.task_failures.remove(pos);
        }
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(rate: f64) -> FaultConfig {
        FaultConfig {
            errors: vec![ErrorRule {
                on: Match {
                    path_prefix: "/nodes".into(),
                    method: None,
                },
                rate,
                kind: ErrorKind::Unavailable,
                message: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn seeded_rates_are_reproducible() {
        let draw = |seed| {
            let mut f = Faults::new(rule(0.5), seed);
            (0..64)
                .map(|_| f.decide("GET", "/nodes/pve").1.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        let hits = draw(7).iter().filter(|h| **h).count();
        assert!((16..48).contains(&hits), "{hits}");
        let mut f = Faults::new(rule(1.0), 1);
        assert!(f.decide("GET", "/version").1.is_none());
    }

    #[test]
    fn spikes_delay_some_requests_and_are_counted() {
        let mut f = Faults::new(
            FaultConfig {
                spikes: vec![LatencySpike {
                    on: Match::default(),
                    rate: 0.25,
                    ms: 700,
                }],
                ..Default::default()
            },
            3,
        );
        let delays: Vec<Duration> = (0..200).map(|_| f.decide("GET", "/nodes").0).collect();
        let spiked = delays.iter().filter(|d| !d.is_zero()).count();
        assert!((25..75).contains(&spiked), "{spiked}");
        assert!(
            delays
                .iter()
                .all(|d| d.is_zero() || *d == Duration::from_millis(700))
        );
        assert_eq!(f.injected().spikes, spiked as u64);
        assert_eq!(f.injected().internal + f.injected().unavailable, 0);
    }

    #[test]
    fn task_failures_are_consumed() {
        let mut f = Faults::new(FaultConfig::default(), 1);
        f.cfg.task_failures.push(TaskFailure {
            task_type: Some("vzstart".into()),
            vmid: Some(100),
            message: "boom".into(),
            count: 1,
        });
        assert_eq!(f.take_task_failure("vzstart", Some(101)), None);
        assert_eq!(f.take_task_failure("vzstart", Some(100)).as_deref(), Some("boom"));
        assert_eq!(f.take_task_failure("vzstart", Some(100)), None);
    }
}

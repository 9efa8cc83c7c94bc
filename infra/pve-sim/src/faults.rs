//! Fault injection: per-endpoint error rates (500, 503, connection reset), added latency,
//! oversized answers and task failures, drawn from a seeded RNG so a run is reproducible. (Node outages, ticket
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
}

impl Faults {
    pub fn new(cfg: FaultConfig, seed: u64) -> Faults {
        Faults {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
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
        let mut injected = None;
        for rule in self.cfg.errors.iter().filter(|r| r.on.hits(method, path)) {
            if self.rng.random::<f64>() < rule.rate {
                let msg = rule.message.clone().unwrap_or_else(|| "injected failure".into());
                injected = Some(Injected::Error(rule.kind, msg));
                break;
            }
        }
        (Duration::from_millis(ms), injected)
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

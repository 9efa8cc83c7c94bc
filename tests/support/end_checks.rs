//! The crash and fault suites' end checks (issue 17): pve-sim's containers against what was
//! asked (none wrong, missing, duplicated, orphaned or left locked), every mutating call against
//! the audit trail, no operator lock left in Redis; and the verdict that prints and fails them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use pve_sim::LogEntry;

use super::World;
use super::suite::Asked;

/// pve-sim's state against what was asked.
#[derive(Debug, Default)]
pub struct SimState {
    /// Ours, on the wrong node, with the wrong memory or not running.
    pub wrong: Vec<String>,
    /// Objects asked to exist without a container.
    pub missing: Vec<String>,
    /// More than one container for one object uid.
    pub duplicates: Vec<String>,
    /// Ours without an object.
    pub orphans: Vec<String>,
    /// Containers whose config lock (`lock: ...`) is still set.
    pub locked: Vec<String>,
}

/// One container per uid (by the `lxcop-<uid>` tag), none of ours without an object, each as
/// asked, none left locked.
pub async fn sim_state(w: &World, asked: &BTreeMap<String, Asked>) -> SimState {
    let mut live: BTreeMap<String, (String, Asked)> = BTreeMap::new();
    for (name, a) in asked.iter().filter(|(_, a)| !a.deleted) {
        if let Some(ct) = w.api().get_opt(name).await.unwrap() {
            live.insert(ct.metadata.uid.unwrap(), (name.clone(), a.clone()));
        }
    }
    let mut by_uid: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
    let mut s = SimState::default();
    for c in w.sim.admin().containers() {
        if let Some(lock) = &c.lock {
            s.locked
                .push(format!("VMID {} on {}: lock {lock}", c.vmid, c.node));
        }
        let cfg = w.config(&c.node, c.vmid).await;
        let tags = cfg.get("tags").map(|t| t.to_string()).unwrap_or_default();
        let tags: Vec<&str> = tags.split([';', ',', ' ']).collect();
        let Some(uid) = tags.iter().find_map(|t| t.strip_prefix("lxcop-")) else {
            if tags.contains(&"lxc-operator") {
                s.orphans
                    .push(format!("VMID {} on {}: operator tag, no uid tag", c.vmid, c.node));
            }
            continue;
        };
        by_uid
            .entry(uid.to_string())
            .or_default()
            .push((c.node.clone(), c.vmid));
        match live.get(uid) {
            None => s
                .orphans
                .push(format!("VMID {} on {} (uid {uid})", c.vmid, c.node)),
            Some((name, a)) => {
                let memory = cfg.get("memory").map(|m| m.to_string()).unwrap_or_default();
                let pve = w.nodes[a.node].rsplit('-').next().unwrap();
                if memory != a.memory.to_string() || c.node != pve || c.status != "running" {
                    s.wrong.push(format!(
                        "{name}: VMID {} on {} {} memory {memory}, asked {pve} memory {}",
                        c.vmid, c.node, c.status, a.memory
                    ));
                }
            }
        }
    }
    s.duplicates = by_uid
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(uid, v)| format!("uid {uid}: {v:?}"))
        .collect();
    s.missing = live
        .iter()
        .filter(|(uid, _)| !by_uid.contains_key(*uid))
        .map(|(_, (name, _))| name.clone())
        .collect();
    s
}

/// The audit operation a mutating request in pve-sim's log is the call of, with its node and
/// VMID (from the path when the log has none: an injected failure is logged before its
/// parameters are read).
pub fn operation_of(r: &LogEntry) -> Option<(String, String, Option<i64>)> {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let op = match (r.method.as_str(), parts.as_slice()) {
        ("POST", ["nodes", _, "lxc"]) => "create container".to_string(),
        ("PUT", ["nodes", _, "lxc", _, "config"]) => "update container config".into(),
        ("POST", ["nodes", _, "lxc", _, "status", action]) => format!("{action} container"),
        ("DELETE", ["nodes", _, "lxc", _]) => "destroy container".into(),
        ("PUT", ["nodes", _, "lxc", _, "resize"]) => "resize container disk".into(),
        ("POST", ["nodes", _, "lxc", _, "migrate"]) => "migrate container".into(),
        _ => return None,
    };
    let vmid = r
        .vmid
        .or_else(|| parts.get(3).and_then(|v| v.parse().ok()))
        .map(i64::from);
    Some((op, parts[1].to_string(), vmid))
}

/// A request that changes Proxmox state: anything but a read or a login (a ticket is no
/// change, and the test's own reads log in as root).
pub fn is_mutating(r: &LogEntry) -> bool {
    r.method != "GET" && r.path != "/access/ticket"
}

/// The longest a call can last after its intent when its outcome was never written (the
/// operator was killed first): five attempts of a 30 s write, with backoff.
const UNFINISHED_CALL: i64 = 180_000;

/// One intent row and the time its call covered, in milliseconds since the Unix epoch.
#[derive(Debug, Clone)]
pub struct IntentWindow {
    pub operation: String,
    pub node: String,
    pub vmid: Option<i64>,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Whether its outcome was written (otherwise `to_ms` is a bound, not a record).
    pub finished: bool,
}

impl IntentWindow {
    /// Whether this call was under way, for this operation, `at_ms`.
    pub fn covers(&self, key: &(String, String, Option<i64>), at_ms: i64) -> bool {
        self.operation == key.0
            && self.node == key.1
            && (key.2.is_none() || self.vmid == key.2)
            && (self.from_ms..=self.to_ms).contains(&at_ms)
    }
}

/// operation, node, vmid, intent ms, outcome ms (none: never written).
type IntentRow = (String, Option<String>, Option<i64>, i64, Option<i64>);

/// The namespace's audit intents with their call windows: from the intent (written before the
/// call) to its outcome (written after it).
pub async fn intent_windows(database_url: &str, ns: &str) -> Vec<IntentWindow> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows: Vec<IntentRow> = sqlx::query_as(
        "SELECT i.operation, i.node, i.vmid, \
                floor(extract(epoch FROM i.at) * 1000)::bigint, \
                ceil(extract(epoch FROM o.at) * 1000)::bigint \
         FROM audit_intents i LEFT JOIN audit_outcomes o ON o.intent_id = i.id \
         WHERE i.object_namespace = $1",
    )
    .bind(ns)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|(operation, node, vmid, from_ms, to)| IntentWindow {
            operation,
            node: node.unwrap_or_default(),
            vmid,
            from_ms,
            to_ms: to.unwrap_or(from_ms + UNFINISHED_CALL),
            finished: to.is_some(),
        })
        .collect()
}

/// Mutating calls against the audit trail.
#[derive(Debug, Default)]
pub struct AuditCheck {
    /// Mutating requests pve-sim received (every attempt, answered or not).
    pub calls: usize,
    /// Of those, the ones it carried out (2xx).
    pub accepted: usize,
    pub intents: usize,
    /// Intents whose outcome was never written.
    pub unfinished: usize,
    /// Requests that no intent covers, and operations carried out more often than intended.
    pub unaudited: Vec<String>,
}

/// Every mutating request arrived while a call of the same operation (node, VMID) was under
/// way by the trail — after its intent was written and before its outcome was — so a retry
/// inside one call is covered and nothing else is; and no operation was carried out (2xx) more
/// often than it has intents.
pub fn check_audit(requests: &[LogEntry], windows: &[IntentWindow]) -> AuditCheck {
    let mut check = AuditCheck {
        intents: windows.len(),
        unfinished: windows.iter().filter(|w| !w.finished).count(),
        ..AuditCheck::default()
    };
    let mut accepted: BTreeMap<(String, String, Option<i64>), usize> = BTreeMap::new();
    for r in requests.iter().filter(|r| is_mutating(r)) {
        check.calls += 1;
        let Some(key) = operation_of(r) else {
            check.unaudited.push(format!(
                "{} {} -> {}: not an operation the operator audits",
                r.method, r.path, r.status
            ));
            continue;
        };
        let at = r.received_ms as i64;
        if !windows.iter().any(|w| w.covers(&key, at)) {
            check.unaudited.push(format!(
                "{} {} -> {} at {at}: no intent {key:?} covers it",
                r.method, r.path, r.status
            ));
        }
        if (200..300).contains(&r.status) {
            check.accepted += 1;
            *accepted.entry(key).or_default() += 1;
        }
    }
    for (key, n) in accepted {
        let intents = windows
            .iter()
            .filter(|w| w.operation == key.0 && w.node == key.1 && w.vmid == key.2)
            .count();
        if n > intents {
            check
                .unaudited
                .push(format!("{key:?}: carried out {n} times, {intents} intents"));
        }
    }
    check
}

/// Waits (up to 30 s: a killed holder's lock expires within its 12 s validity) until Redis
/// holds no operator lock; returns those still held, with their TTLs.
pub async fn redis_locks_left(redis_url: &str) -> Vec<(String, i64)> {
    let mut redis = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("lxc-operator:lock:*")
            .query_async(&mut redis)
            .await
            .unwrap();
        let mut locks = Vec::new();
        for k in keys {
            let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(&mut redis).await.unwrap();
            locks.push((k, ttl));
        }
        // A key without expiry is a leak at once; one with expiry may be a reconcile's.
        if locks.is_empty() || locks.iter().any(|(_, t)| *t < 0) || Instant::now() > deadline {
            return locks;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The end checks' lists, printed as counts and failed on when any is not empty.
#[derive(Default)]
pub struct Verdict {
    lists: Vec<(&'static str, Vec<String>)>,
}

impl Verdict {
    /// Adds a check: `what` and what it found wrong.
    pub fn check(&mut self, what: &'static str, bad: Vec<String>) {
        self.lists.push((what, bad));
    }

    /// The crash suite's end checks, in order.
    pub fn end_checks(
        not_converged: Vec<String>,
        sim: SimState,
        audit: &AuditCheck,
        locks: &[(String, i64)],
    ) -> Verdict {
        let mut v = Verdict::default();
        v.check("not converged", not_converged);
        v.check("wrong in pve-sim", sim.wrong);
        v.check("missing in pve-sim", sim.missing);
        v.check("duplicates", sim.duplicates);
        v.check("orphans", sim.orphans);
        v.check("unaudited calls", audit.unaudited.clone());
        v.check(
            "redis locks left held",
            locks
                .iter()
                .map(|(k, ttl)| format!("{k} (ttl {ttl} ms)"))
                .collect(),
        );
        v.check("proxmox locks left", sim.locked);
        v
    }

    /// One line per check (`  <what>: <count>`).
    pub fn lines(&self) -> Vec<String> {
        self.lists
            .iter()
            .map(|(what, bad)| format!("  {:<44}{}", format!("{what}:"), bad.len()))
            .collect()
    }

    /// Prints [`lines`](Self::lines).
    pub fn print(&self) {
        for line in self.lines() {
            println!("{line}");
        }
    }

    /// Panics with every non-empty list.
    pub fn assert_clean(&self, suite: &str, logs: &Path) {
        let mut report = String::new();
        for (what, bad) in &self.lists {
            if !bad.is_empty() {
                report.push_str(&format!("{what}: {bad:#?}\n"));
            }
        }
        assert!(
            report.is_empty(),
            "{suite} failed:\n{report}operator logs in {}",
            logs.display()
        );
    }
}

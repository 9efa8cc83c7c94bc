//! What the crash and fault suites (issue 17) share: the operator binary as a process of its
//! own, the bookkeeping of what the test asked of each container, waiting for convergence, and
//! the end checks — every container as asked or gone, no duplicate, orphan, unaudited
//! mutating call or lock left held.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lxc_operator::crd::LxcContainer;
use pve_sim::LogEntry;
use serde_json::json;

use super::World;

/// The operator binary's settings for one suite.
pub struct OperatorSettings {
    pub kubeconfig: PathBuf,
    pub database_url: String,
    pub redis_url: String,
    pub lease_seconds: u32,
    /// Where `op-<incarnation>.log` files go.
    pub logs: PathBuf,
}

/// One operator process, SIGKILLed on drop if still running.
pub struct OperatorProcess {
    child: Child,
    port: u16,
}

impl OperatorProcess {
    /// Starts `lxc-operator run` for the world's namespace (its Lease lives there).
    pub fn start(w: &World, s: &OperatorSettings, incarnation: usize) -> OperatorProcess {
        let log = std::fs::File::create(s.logs.join(format!("op-{incarnation}.log"))).unwrap();
        let port = test_world::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(["--namespace", &w.ns, "--identity", &format!("op-{incarnation}")])
            .args(["--lease-seconds", &s.lease_seconds.to_string()])
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--redis-url={}", s.redis_url))
            .arg(format!("--database-url={}", s.database_url))
            .env("RUST_LOG", "info,lxc_operator=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start lxc-operator");
        OperatorProcess { child, port }
    }

    /// Waits until this process leads (it runs its controllers only then), up to 30 s.
    pub async fn until_leading(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            let leads = match client.get(&url).timeout(Duration::from_secs(2)).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|j| j["leader"] == true),
                Err(_) => false,
            };
            if leads {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "operator never led");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is still running (it never exits by itself in a suite).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().is_ok_and(|s| s.is_none())
    }

    /// SIGKILL (std's `Child::kill`), and reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many lines of the operator's logs in `dir` contain `needle`.
pub fn count_log_lines(dir: &Path, needle: &str) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .sum()
}

/// What the test asked of one object.
#[derive(Debug, Clone)]
pub struct Asked {
    /// Index into `World::nodes`.
    pub node: usize,
    pub memory: u32,
    pub deleted: bool,
}

pub const MEMORIES: [u32; 4] = [256, 512, 768, 1024];

/// Applies the container as asked (one eth0 on DHCP).
pub async fn apply(w: &World, name: &str, a: &Asked) {
    w.container(
        name,
        json!({"nodeRef": w.nodes[a.node], "resources": {"memoryMiB": a.memory},
               "network": [{"name": "eth0"}]}),
    )
    .await;
}

fn ready_as_asked(w: &World, ct: &LxcContainer, a: &Asked) -> bool {
    ct.status.as_ref().is_some_and(|s| {
        s.observed_generation == ct.metadata.generation
            && s.node.as_deref() == Some(w.nodes[a.node].as_str())
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Waits until every container is Ready as asked or gone as asked, up to `deadline`; returns
/// those that are not, with their last status.
pub async fn converge(w: &World, asked: &BTreeMap<String, Asked>, deadline: Instant) -> Vec<String> {
    loop {
        let mut not_done = Vec::new();
        for (name, a) in asked {
            // The API server may still be coming back: an error counts as not done yet.
            let ct = match w.api().get_opt(name).await {
                Ok(ct) => ct,
                Err(e) => {
                    not_done.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let done = match (&ct, a.deleted) {
                (None, true) => true,
                (Some(ct), false) => ready_as_asked(w, ct, a),
                _ => false,
            };
            if !done {
                not_done.push(format!(
                    "{name} (asked {a:?}) status {}",
                    ct.and_then(|c| c.status)
                        .map(|s| serde_json::to_string(&s).unwrap())
                        .unwrap_or_else(|| "gone".into())
                ));
            }
        }
        if not_done.is_empty() || Instant::now() > deadline {
            return not_done;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

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
}

impl IntentWindow {
    fn covers(&self, key: &(String, String, Option<i64>), at_ms: i64) -> bool {
        self.operation == key.0
            && self.node == key.1
            && (key.2.is_none() || self.vmid == key.2)
            && (self.from_ms..=self.to_ms).contains(&at_ms)
    }
}

/// The namespace's audit intents with their call windows: from the intent (written before the
/// call) to its outcome (written after it).
pub async fn intent_windows(database_url: &str, ns: &str) -> Vec<IntentWindow> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows: Vec<(String, Option<String>, Option<i64>, i64, Option<i64>)> = sqlx::query_as(
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

/// The containers a suite drives: what it asked of each, and how many of each change it made.
pub struct Workload {
    pub names: Vec<String>,
    pub asked: BTreeMap<String, Asked>,
    pub changes: usize,
    pub moves: usize,
    pub deletes: usize,
    max_deletes: usize,
}

impl Workload {
    /// `containers` objects `ct-0`, `ct-1`, ...; at most a third of them get deleted.
    pub fn new(containers: usize) -> Workload {
        Workload {
            names: (0..containers).map(|i| format!("ct-{i}")).collect(),
            asked: BTreeMap::new(),
            changes: 0,
            moves: 0,
            deletes: 0,
            max_deletes: containers / 3,
        }
    }

    /// Applies the objects not created yet up to the first `due`, each on a random node with a
    /// random memory size.
    pub async fn create_up_to(&mut self, w: &World, rng: &mut impl rand::Rng, due: usize) {
        let due = due.min(self.names.len());
        for name in self.names[self.asked.len().min(due)..due].to_vec() {
            let a = Asked {
                node: rng.random_range(0..w.nodes.len()),
                memory: MEMORIES[rng.random_range(0..MEMORIES.len())],
                deleted: false,
            };
            apply(w, &name, &a).await;
            self.asked.insert(name, a);
        }
    }

    /// One change of a random object that exists: its memory (45 %), a move to the next node
    /// (30 %) or its deletion (25 %, while fewer than a third are deleted).
    pub async fn change(&mut self, w: &World, rng: &mut impl rand::Rng) {
        let live: Vec<String> = self
            .asked
            .iter()
            .filter(|(_, a)| !a.deleted)
            .map(|(n, _)| n.clone())
            .collect();
        if live.is_empty() {
            return;
        }
        let name = live[rng.random_range(0..live.len())].clone();
        let roll = rng.random_range(0..100);
        let a = self.asked.get_mut(&name).unwrap();
        if roll < 45 {
            a.memory = MEMORIES[(MEMORIES.iter().position(|m| *m == a.memory).unwrap()
                + rng.random_range(1..MEMORIES.len()))
                % MEMORIES.len()];
            self.changes += 1;
            apply(w, &name, a).await;
        } else if roll < 75 {
            a.node = (a.node + 1) % w.nodes.len();
            self.moves += 1;
            apply(w, &name, a).await;
        } else if self.deletes < self.max_deletes {
            a.deleted = true;
            self.deletes += 1;
            w.api()
                .delete(&name, &kube::api::DeleteParams::default())
                .await
                .unwrap();
        }
    }

    /// `created N, M memory changes, K moves, D deletes`.
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} memory changes, {} moves, {} deletes",
            self.asked.len(),
            self.changes,
            self.moves,
            self.deletes
        )
    }
}

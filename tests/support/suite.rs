//! What the crash and fault suites (issue 17) share to drive the operator: its binary as a
//! process of its own, the workload and what the test asked of each container, and waiting for
//! convergence. Their end checks are in `end_checks`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lxc_operator::crd::LxcContainer;
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

pub fn ready_as_asked(w: &World, ct: &LxcContainer, a: &Asked) -> bool {
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
        for name in &self.names[self.asked.len().min(due)..due] {
            let a = Asked {
                node: rng.random_range(0..w.nodes.len()),
                memory: MEMORIES[rng.random_range(0..MEMORIES.len())],
                deleted: false,
            };
            apply(w, name, &a).await;
            self.asked.insert(name.clone(), a);
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

//! The simulator's shared state: nodes, containers, storage volumes, tasks, and the handles
//! (ticket key, faults, request log) every request touches.

use crate::auth::TicketKey;
use crate::config::Config;
use crate::faults::Faults;
use crate::reqlog::RequestLog;
use crate::sync::lock;
use crate::tasks::Task;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Everything behind one simulator instance.
pub struct Sim {
    pub cfg: Config,
    pub state: Mutex<State>,
    pub key: Mutex<TicketKey>,
    pub faults: Mutex<Faults>,
    pub log: RequestLog,
    /// Filler bytes of padded answers handed to connections (see `faults::PaddingRule`).
    pub padding_sent: AtomicU64,
    /// SHA-256 fingerprint of the served certificate (reported by `/nodes`).
    pub fingerprint: String,
    /// Per node: the API workers a request occupies while it is handled (`api_workers`).
    pub workers: HashMap<String, Arc<tokio::sync::Semaphore>>,
}

impl Sim {
    pub fn new(cfg: Config, fingerprint: String) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let boot = now().saturating_sub(86_400 * 3);
        let nodes = cfg
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    NodeState {
                        online: n.online,
                        maxcpu: n.maxcpu,
                        maxmem: n.maxmem,
                        boot,
                    },
                )
            })
            .collect();
        let mut volumes = BTreeMap::new();
        for node in &cfg.nodes {
            for volid in &cfg.templates {
                let (storage, _) = volid.split_once(':').unwrap_or(("local", ""));
                let entry: &mut Vec<Volume> = volumes
                    .entry((node.name.clone(), storage.to_string()))
                    .or_default();
                entry.push(Volume::template(volid, 129_824_858, boot));
            }
        }
        let faults = Faults::new(cfg.faults.clone(), cfg.seed);
        Sim {
            state: Mutex::new(State {
                nodes,
                cts: BTreeMap::new(),
                tasks: HashMap::new(),
                volumes,
                next_pid: 0x1000,
                rng,
                flocks: HashMap::new(),
                storage_locks: HashMap::new(),
                peak_tasks: HashMap::new(),
            }),
            workers: cfg
                .nodes
                .iter()
                .map(|n| {
                    let permits = cfg.api_workers.max(1);
                    (n.name.clone(), Arc::new(tokio::sync::Semaphore::new(permits)))
                })
                .collect(),
            key: Mutex::new(TicketKey(key)),
            faults: Mutex::new(faults),
            log: RequestLog::default(),
            padding_sent: AtomicU64::new(0),
            fingerprint,
            cfg,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

pub struct State {
    pub nodes: BTreeMap<String, NodeState>,
    pub cts: BTreeMap<u32, Ct>,
    pub tasks: HashMap<String, Task>,
    /// Volumes per (node, storage).
    pub volumes: BTreeMap<(String, String), Vec<Volume>>,
    pub next_pid: u32,
    pub rng: ChaCha8Rng,
    /// Who holds a guest's config lock file (`/run/lock/lxc/pve-config-<vmid>.lock`).
    pub flocks: HashMap<u32, Holder>,
    /// Who holds a storage's allocation lock, per (node, storage): a task's UPID.
    pub storage_locks: HashMap<(String, String), String>,
    /// Per node: the most tasks that ever ran at once (for the admin API).
    pub peak_tasks: HashMap<String, usize>,
}

/// The holder of a lock file.
#[derive(Debug, Clone, PartialEq)]
pub enum Holder {
    /// A running task (its UPID).
    Task(String),
    /// Contention injected by the admin API, until then.
    Until(Instant),
}

impl State {
    /// Takes the config lock file of `vmid` for `holder` if it is free (or already theirs).
    pub fn take_flock(&mut self, vmid: u32, holder: &Holder) -> bool {
        if self.flock_free(vmid) || self.flocks.get(&vmid) == Some(holder) {
            self.flocks.insert(vmid, holder.clone());
            return true;
        }
        false
    }

    /// Whether nobody holds the config lock file of `vmid`.
    pub fn flock_free(&self, vmid: u32) -> bool {
        match self.flocks.get(&vmid) {
            None => true,
            Some(Holder::Until(t)) => *t <= Instant::now(),
            Some(Holder::Task(upid)) => !self.tasks.get(upid).is_some_and(|t| t.running),
        }
    }

    /// Releases the config lock file of `vmid` if `holder` has it.
    pub fn release_flock(&mut self, vmid: u32, holder: &Holder) {
        if self.flocks.get(&vmid) == Some(holder) {
            self.flocks.remove(&vmid);
        }
    }

    /// Takes a storage's allocation lock for a task if it is free.
    pub fn take_storage_lock(&mut self, key: &(String, String), upid: &str) -> bool {
        let free = match self.storage_locks.get(key) {
            None => true,
            Some(holder) => holder == upid || !self.tasks.get(holder).is_some_and(|t| t.running),
        };
        if free {
            self.storage_locks.insert(key.clone(), upid.to_string());
        }
        free
    }

    /// Releases every storage lock a task holds.
    pub fn release_storage_locks(&mut self, upid: &str) {
        self.storage_locks.retain(|_, holder| holder != upid);
    }
}

pub struct NodeState {
    pub online: bool,
    pub maxcpu: u32,
    pub maxmem: u64,
    pub boot: u64,
}

/// One container.
#[derive(Debug, Clone)]
pub struct Ct {
    pub vmid: u32,
    pub node: String,
    /// The config as PVE stores it (`key -> value`), `lock` included while locked.
    pub conf: BTreeMap<String, String>,
    pub running: bool,
    pub started_at: u64,
    pub snapshots: Vec<Snapshot>,
    /// What `/cluster/resources` shows (status, name) until pvestatd publishes again; None:
    /// never published (`unknown`).
    pub reported: Option<(bool, String)>,
    /// When pvestatd publishes the current status and name next (None: up to date).
    pub publish_at: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub description: String,
    pub parent: Option<String>,
    pub snaptime: u64,
    pub conf: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub volid: String,
    pub content: String,
    pub format: String,
    pub size: u64,
    pub ctime: u64,
    pub vmid: Option<u32>,
}

impl Volume {
    pub fn template(volid: &str, size: u64, ctime: u64) -> Volume {
        let format = template_format(volid).unwrap_or("tzst").to_string();
        Volume {
            volid: volid.into(),
            content: "vztmpl".into(),
            format,
            size,
            ctime,
            vmid: None,
        }
    }
}

/// The format PVE derives from a template file name, or None for a wrong extension.
pub fn template_format(name: &str) -> Option<&'static str> {
    [
        (".tar.gz", "tgz"),
        (".tar.xz", "txz"),
        (".tar.zst", "tzst"),
        (".tar.bz2", "tbz2"),
        (".tar", "tar"),
    ]
    .iter()
    .find(|(ext, _)| name.ends_with(ext))
    .map(|(_, f)| *f)
}

impl Ct {
    /// A new container: pvestatd has not seen it yet.
    pub fn new(vmid: u32, node: &str, conf: BTreeMap<String, String>, stats_delay: Duration) -> Ct {
        Ct {
            vmid,
            node: node.into(),
            conf,
            running: false,
            started_at: 0,
            snapshots: vec![],
            reported: None,
            publish_at: Some(Instant::now() + stats_delay),
        }
    }

    /// Notes a status change that pvestatd publishes after `delay` (or with an earlier
    /// pending publication).
    pub fn status_changed(&mut self, delay: Duration) {
        if self.publish_at.is_none() {
            self.publish_at = Some(Instant::now() + delay);
        }
    }

    /// The (running, name) `/cluster/resources` shows now; None: `unknown`.
    pub fn published(&mut self) -> Option<(bool, String)> {
        if self.publish_at.is_some_and(|t| t <= Instant::now()) {
            self.publish_at = None;
            self.reported = Some((self.running, self.name()));
        }
        if self.publish_at.is_none() {
            self.reported = Some((self.running, self.name()));
        }
        self.reported.clone()
    }

    pub fn lock(&self) -> Option<&str> {
        self.conf.get("lock").map(String::as_str)
    }

    /// `CT is locked (<lock>)` unless unlocked.
    pub fn check_lock(&self) -> Result<(), crate::error::ApiError> {
        match self.lock() {
            Some(l) => Err(crate::error::ApiError::server(format!("CT is locked ({l})"))),
            None => Ok(()),
        }
    }

    /// SHA-1 hex of the canonical config rendering (what PVE computes over the raw file).
    pub fn digest(&self) -> String {
        config_digest(&self.conf)
    }

    pub fn memory_mib(&self) -> u64 {
        self.conf
            .get("memory")
            .and_then(|m| m.parse().ok())
            .unwrap_or(512)
    }

    pub fn swap_mib(&self) -> u64 {
        self.conf.get("swap").and_then(|m| m.parse().ok()).unwrap_or(512)
    }

    pub fn cores(&self, node_cpus: u32) -> u32 {
        self.conf
            .get("cores")
            .and_then(|m| m.parse().ok())
            .unwrap_or(node_cpus)
    }

    pub fn name(&self) -> String {
        self.conf
            .get("hostname")
            .cloned()
            .unwrap_or_else(|| format!("CT{}", self.vmid))
    }

    /// Root disk size in bytes, from `rootfs`'s `size=` (4 GiB if absent).
    pub fn maxdisk(&self) -> u64 {
        let size = self
            .conf
            .get("rootfs")
            .and_then(|r| r.split(',').find_map(|p| p.strip_prefix("size=")));
        size.and_then(parse_size).unwrap_or(4 << 30)
    }
}

pub fn config_digest(conf: &BTreeMap<String, String>) -> String {
    let mut raw = String::new();
    for (k, v) in conf {
        raw.push_str(&format!("{k}: {v}\n"));
    }
    Sha1::digest(raw.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `8G`, `512M`, `1.5T`, `100` (bytes... PVE: a bare number is GiB in `size=`? No: bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num.parse().ok()?;
    let mul = match unit {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mul) as u64)
}

/// Renders bytes the way PVE writes `size=` (whole G, else M, else K).
pub fn format_size(bytes: u64) -> String {
    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;
    if bytes.is_multiple_of(G) {
        format!("{}G", bytes / G)
    } else if bytes.is_multiple_of(M) {
        format!("{}M", bytes / M)
    } else {
        format!("{}K", bytes.div_ceil(1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digest() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(format_size(8 << 30), "8G");
        assert_eq!(format_size(3 << 29), "1536M");
        let mut c = BTreeMap::new();
        c.insert("memory".to_string(), "512".to_string());
        let d = config_digest(&c);
        assert_eq!(d.len(), 40);
        c.insert("cores".to_string(), "2".to_string());
        assert_ne!(d, config_digest(&c));
        assert_eq!(template_format("a.tar.zst"), Some("tzst"));
        assert_eq!(template_format("a.zip"), None);
    }
}

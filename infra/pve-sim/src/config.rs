//! Simulator configuration: nodes, users, tokens and their ACLs, storages, appliances, task
//! durations, ticket lifetime, faults. Serde-loadable from a JSON file (`--config`).

use crate::faults::FaultConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything the simulator starts from. Unset fields take the defaults below.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub nodes: Vec<NodeConfig>,
    pub users: Vec<UserConfig>,
    pub tokens: Vec<TokenConfig>,
    pub storages: Vec<StorageConfig>,
    pub bridges: Vec<String>,
    /// A bridge's IPv4 address on the host (`GET /nodes/{node}/network`: `cidr`, `address`,
    /// `netmask`, method `static`); a bridge without one has method `manual`.
    pub bridge_cidrs: BTreeMap<String, String>,
    pub appliances: Vec<Appliance>,
    /// Template volids present on every node at start.
    pub templates: Vec<String>,
    /// URL → file content for `download-url` (otherwise the bytes are derived from the URL).
    pub download_contents: BTreeMap<String, String>,
    /// Task duration in milliseconds per task type (`vzcreate`, `vzstart`, ...); `default` for the rest.
    pub task_durations_ms: BTreeMap<String, u64>,
    pub ticket_lifetime_secs: u64,
    /// Delay before a 401 answer (real PVE: 3000 ms).
    pub auth_failure_delay_ms: u64,
    /// Seed for everything random (error rates, MAC addresses, ticket keys).
    pub seed: u64,
    /// Base directory for per-container root directories (`<dir>/<vmid>`), used by `host/pct`.
    pub ct_root_dir: Option<PathBuf>,
    /// PEM certificate and key to serve instead of a generated self-signed pair.
    pub tls_cert_pem: Option<PathBuf>,
    pub tls_key_pem: Option<PathBuf>,
    pub version: String,
    pub faults: FaultConfig,
    /// The corosync cluster's name (`GET /cluster/status` lists it); `None`: a standalone node.
    pub cluster_name: Option<String>,
    /// How long a call or task waits for a guest's config lock file before `got timeout`
    /// (PVE's `lock_file_full` default: 10 s).
    pub config_lock_timeout_ms: u64,
    /// The same wait for the config lock a create takes in the API call
    /// (`create_and_lock_config`: 5 s).
    pub create_lock_timeout_ms: u64,
    /// How long a task waits for a storage's allocation lock (`cluster_lock_storage` with no
    /// timeout: 10 s).
    pub storage_lock_timeout_ms: u64,
    /// How long a create's volume allocation holds the storage lock; `None`: a quarter of the
    /// `vzcreate` duration.
    pub storage_alloc_ms: Option<u64>,
    /// Delay before `/cluster/resources` shows a guest's new status and name (pvestatd's
    /// broadcast; real PVE: up to 10 s). A new guest shows `unknown` until then.
    pub stats_delay_ms: u64,
    /// Requests handled at once per node (pveproxy/pvedaemon run 3 workers); more wait in line.
    pub api_workers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    #[serde(default = "yes")]
    pub online: bool,
    #[serde(default = "default_cpus")]
    pub maxcpu: u32,
    #[serde(default = "default_mem")]
    pub maxmem: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// `user@realm`
    pub userid: String,
    pub password: String,
    #[serde(default)]
    pub acl: Vec<AclEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// `user@realm!name`
    pub tokenid: String,
    pub secret: String,
    #[serde(default = "yes")]
    pub privsep: bool,
    #[serde(default)]
    pub acl: Vec<AclEntry>,
}

/// Privileges granted on a path (and below it unless `propagate` is false). `VM.Config.*` expands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclEntry {
    pub path: String,
    pub privs: Vec<String>,
    #[serde(default = "yes")]
    pub propagate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: Vec<String>,
    #[serde(default = "default_storage_size")]
    pub total: u64,
    #[serde(default)]
    pub shared: bool,
}

/// One appliance index (aplinfo) record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appliance {
    pub template: String,
    pub package: String,
    pub version: String,
    pub os: String,
    pub headline: String,
    pub section: String,
}

fn yes() -> bool {
    true
}
fn default_cpus() -> u32 {
    8
}
fn default_mem() -> u64 {
    32 * 1024 * 1024 * 1024
}
fn default_storage_size() -> u64 {
    500 * 1024 * 1024 * 1024
}

/// Task durations of `Config::realistic` in milliseconds (README: "Realistic durations").
pub const REALISTIC_TASK_MS: &[(&str, u64)] = &[
    ("vzcreate", 8_000),
    ("vzstart", 1_500),
    ("vzstop", 1_000),
    ("vzshutdown", 4_000),
    ("vzreboot", 5_000),
    ("vzdestroy", 2_000),
    ("vzmigrate", 12_000),
    ("resize", 1_000),
    ("vzsnapshot", 1_500),
    ("vzdelsnapshot", 1_500),
    ("vzrollback", 3_000),
    ("download", 10_000),
    ("default", 1_000),
];

pub const ROOT_PASSWORD: &str = "pve-sim-root-password";
pub const OPERATOR_TOKEN_ID: &str = "root@pam!operator";
pub const OPERATOR_TOKEN_SECRET: &str = "0b6a7c1e-5f2d-4c1a-9e3b-7d8f2a6c4e10";

/// All `VM.Config.*` privileges (PVE 9).
pub const VM_CONFIG_PRIVS: &[&str] = &[
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
];

fn acl(path: &str, privs: &[&str]) -> AclEntry {
    AclEntry {
        path: path.into(),
        privs: privs.iter().map(|s| s.to_string()).collect(),
        propagate: true,
    }
}

fn appliance(template: &str, package: &str, version: &str, os: &str, headline: &str) -> Appliance {
    Appliance {
        template: template.into(),
        package: package.into(),
        version: version.into(),
        os: os.into(),
        headline: headline.into(),
        section: "system".into(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::default_with_nodes(&["pve"])
    }
}

impl Config {
    /// The default world (see the README) with the given node names.
    pub fn default_with_nodes(nodes: &[&str]) -> Self {
        Config {
            nodes: nodes
                .iter()
                .map(|n| NodeConfig {
                    name: n.to_string(),
                    online: true,
                    maxcpu: default_cpus(),
                    maxmem: default_mem(),
                })
                .collect(),
            users: vec![UserConfig {
                userid: "root@pam".into(),
                password: ROOT_PASSWORD.into(),
                acl: vec![],
            }],
            tokens: vec![TokenConfig {
                tokenid: OPERATOR_TOKEN_ID.into(),
                secret: OPERATOR_TOKEN_SECRET.into(),
                privsep: true,
                acl: vec![
                    acl(
                        "/vms",
                        &[
                            "VM.Allocate",
                            "VM.Config.*",
                            "VM.PowerMgmt",
                            "VM.Audit",
                            "VM.Migrate",
                            "VM.Snapshot",
                        ],
                    ),
                    acl(
                        "/storage",
                        &[
                            "Datastore.AllocateSpace",
                            "Datastore.AllocateTemplate",
                            "Datastore.Audit",
                        ],
                    ),
                    acl("/nodes", &["Sys.Audit"]),
                    AclEntry {
                        path: "/".into(),
                        privs: vec!["Sys.Audit".into()],
                        propagate: false,
                    },
                    acl("/sdn", &["SDN.Use"]),
                ],
            }],
            storages: vec![
                StorageConfig {
                    id: "local".into(),
                    kind: "dir".into(),
                    content: vec!["vztmpl".into(), "iso".into(), "backup".into()],
                    total: 100 * 1024 * 1024 * 1024,
                    shared: false,
                },
                StorageConfig {
                    id: "local-lvm".into(),
                    kind: "lvmthin".into(),
                    content: vec!["rootdir".into(), "images".into()],
                    total: default_storage_size(),
                    shared: false,
                },
            ],
            bridges: vec!["vmbr0".into()],
            bridge_cidrs: BTreeMap::new(),
            appliances: vec![
                appliance(
                    "debian-12-standard_12.7-1_amd64.tar.zst",
                    "debian-12-standard",
                    "12.7-1",
                    "debian-12",
                    "Debian 12 (standard)",
                ),
                appliance(
                    "debian-13-standard_13.1-2_amd64.tar.zst",
                    "debian-13-standard",
                    "13.1-2",
                    "debian-13",
                    "Debian 13 (standard)",
                ),
                appliance(
                    "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
                    "ubuntu-24.04-standard",
                    "24.04-2",
                    "ubuntu-24.04",
                    "Ubuntu 24.04 (standard)",
                ),
                appliance(
                    "alpine-3.22-default_20250617_amd64.tar.xz",
                    "alpine-3.22-default",
                    "20250617",
                    "alpine-3.22",
                    "Alpine 3.22 (default)",
                ),
            ],
            templates: vec!["local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into()],
            download_contents: BTreeMap::new(),
            task_durations_ms: BTreeMap::new(),
            ticket_lifetime_secs: 7200,
            auth_failure_delay_ms: 0,
            seed: 1,
            ct_root_dir: None,
            tls_cert_pem: None,
            tls_key_pem: None,
            version: "9.1.2".into(),
            faults: FaultConfig::default(),
            // More than one node is a cluster; one node is standalone.
            cluster_name: (nodes.len() > 1).then(|| "pve-sim".to_string()),
            config_lock_timeout_ms: 10_000,
            create_lock_timeout_ms: 5_000,
            storage_lock_timeout_ms: 10_000,
            storage_alloc_ms: None,
            stats_delay_ms: 1_000,
            api_workers: 3,
        }
    }

    /// The default world with task durations close to a real node's (see the README for
    /// where the numbers come from) and pvestatd's 10 s status delay.
    pub fn realistic(nodes: &[&str]) -> Self {
        let mut cfg = Config::default_with_nodes(nodes);
        cfg.set_realistic();
        cfg
    }

    /// Applies the realistic task durations and status delay to this config.
    pub fn set_realistic(&mut self) {
        for (task, ms) in REALISTIC_TASK_MS {
            self.task_durations_ms.insert(task.to_string(), *ms);
        }
        self.storage_alloc_ms = Some(1_000);
        self.stats_delay_ms = 10_000;
    }

    /// Sets every task type to take `ms` milliseconds.
    pub fn with_task_duration_ms(mut self, ms: u64) -> Self {
        self.task_durations_ms.insert("default".into(), ms);
        self
    }

    pub fn stats_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.stats_delay_ms)
    }

    pub fn task_duration(&self, task_type: &str) -> std::time::Duration {
        let ms = self
            .task_durations_ms
            .get(task_type)
            .or_else(|| self.task_durations_ms.get("default"));
        std::time::Duration::from_millis(ms.copied().unwrap_or(0))
    }
}

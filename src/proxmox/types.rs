//! Typed answers of the endpoints the operator uses (see PVE-FACTS). Proxmox sends booleans as
//! 0/1 and some numbers as strings; the deserializers here accept what it really sends.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A number that may arrive as a JSON number or a string.
fn flexible_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

/// A boolean that may arrive as 0/1, `true`/`false` or a string.
fn flexible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "1",
        _ => false,
    })
}

/// `GET /version`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub release: String,
    #[serde(default)]
    pub repoid: String,
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeEntry {
    pub node: String,
    pub status: String,
    #[serde(default)]
    pub maxcpu: Option<f64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub mem: Option<u64>,
}

/// Memory or disk totals of `GET /nodes/{node}/status`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default, deserialize_with = "flexible_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub free: Option<u64>,
}

/// `GET /nodes/{node}/status` (the parts used).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeStatus {
    #[serde(default)]
    pub cpu: f64,
    #[serde(default)]
    pub memory: Usage,
    #[serde(default)]
    pub rootfs: Usage,
    #[serde(default)]
    pub pveversion: String,
    #[serde(default)]
    pub cpuinfo: CpuInfo,
}

/// CPU model facts.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct CpuInfo {
    #[serde(default, deserialize_with = "flexible_u64")]
    pub cpus: Option<u64>,
}

/// One entry of `GET /cluster/status`: the cluster (`type` `cluster`) or a node.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClusterStatusEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// The node answering (node entries).
    #[serde(default, deserialize_with = "flexible_bool")]
    pub local: bool,
}

/// The name of the VMID space `entries` describe: the cluster's name, or the answering node's
/// when it stands alone (PVE lists no `cluster` entry then).
pub fn cluster_name(entries: &[ClusterStatusEntry]) -> Option<String> {
    entries
        .iter()
        .find(|e| e.kind == "cluster")
        .or_else(|| entries.iter().find(|e| e.kind == "node" && e.local))
        .map(|e| e.name.clone())
}

/// One entry of `GET /cluster/resources`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClusterResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub vmid: Option<u64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "flexible_bool")]
    pub template: bool,
    /// CPUs a guest may use (an LXC's `cores`, or the node's CPUs without it; fractional with
    /// `cpulimit`).
    #[serde(default)]
    pub maxcpu: Option<f64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub disk: Option<u64>,
    #[serde(default)]
    pub storage: Option<String>,
}

/// One entry of `GET /nodes/{node}/storage`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StorageEntry {
    pub storage: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, deserialize_with = "flexible_bool")]
    pub active: bool,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub avail: Option<u64>,
}

/// One entry of `GET /nodes/{node}/network` (the fields the operator reads).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct NetworkEntry {
    pub iface: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The host's IPv4 address on it with its prefix (`192.168.1.10/24`), when it has one.
    #[serde(default)]
    pub cidr: Option<String>,
}

/// One entry of `GET /nodes/{node}/storage/{storage}/content`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct StorageContent {
    pub volid: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub format: String,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub size: Option<u64>,
}

/// One appliance of `GET /nodes/{node}/aplinfo`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Appliance {
    pub template: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub headline: String,
    #[serde(default)]
    pub sha512sum: Option<String>,
}

/// `GET /nodes/{node}/lxc/{vmid}/config`: every key as text, plus the `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxcConfig {
    pub digest: String,
    pub values: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for LxcConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, Value>::deserialize(d)?;
        let mut values = BTreeMap::new();
        let mut digest = String::new();
        for (k, v) in map {
            let text = match v {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            if k == "digest" {
                digest = text;
            } else {
                values.insert(k, text);
            }
        }
        Ok(Self { digest, values })
    }
}

impl LxcConfig {
    /// One key's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
    /// The lock, while an operation holds one.
    pub fn lock(&self) -> Option<&str> {
        self.get("lock")
    }
}

/// One entry of `GET /nodes/{node}/lxc` or `GET .../status/current`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LxcStatus {
    #[serde(deserialize_with = "flexible_u64", default)]
    pub vmid: Option<u64>,
    pub status: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub maxmem: Option<u64>,
}

/// One interface of `GET .../interfaces`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub hwaddr: Option<String>,
    #[serde(default)]
    pub inet: Option<String>,
    #[serde(default)]
    pub inet6: Option<String>,
    #[serde(default, rename = "ip-addresses")]
    pub ip_addresses: Vec<IpAddress>,
}

/// An address of an interface.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IpAddress {
    #[serde(rename = "ip-address")]
    pub address: String,
    #[serde(rename = "ip-address-type")]
    pub family: String,
    #[serde(default, deserialize_with = "flexible_u64")]
    pub prefix: Option<u64>,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TaskStatus {
    pub status: String,
    #[serde(default)]
    pub exitstatus: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub id: Option<String>,
    /// When a stopped task ended (Unix seconds); older versions leave it out.
    #[serde(default)]
    pub endtime: Option<u64>,
}

/// One line of `GET /nodes/{node}/tasks/{upid}/log`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TaskLogLine {
    pub n: u64,
    pub t: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_every_key_as_text_and_splits_off_the_digest() {
        let cfg: LxcConfig = serde_json::from_value(serde_json::json!({
            "digest": "abc", "cores": 2, "memory": 512, "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
            "unprivileged": 1, "lock": "create", "description": null
        }))
        .unwrap();
        assert_eq!(cfg.digest, "abc");
        assert_eq!(cfg.get("cores"), Some("2"));
        assert_eq!(cfg.get("unprivileged"), Some("1"));
        assert_eq!(cfg.lock(), Some("create"));
        assert_eq!(cfg.get("description"), None);
        assert!(!cfg.values.contains_key("digest"));
    }

    #[test]
    fn numbers_and_booleans_arrive_in_either_shape() {
        let r: ClusterResource = serde_json::from_value(serde_json::json!({
            "id": "lxc/100", "type": "lxc", "vmid": "100", "template": 1, "maxmem": 536870912.0
        }))
        .unwrap();
        assert_eq!(r.vmid, Some(100));
        assert!(r.template);
        assert_eq!(r.maxmem, Some(536_870_912));
    }

    #[test]
    fn the_vmid_space_is_the_cluster_or_the_standalone_node() {
        let entries: Vec<ClusterStatusEntry> = serde_json::from_value(serde_json::json!([
            {"type": "cluster", "id": "cluster", "name": "prod", "nodes": 2, "quorate": 1},
            {"type": "node", "id": "node/a", "name": "a", "local": 0},
            {"type": "node", "id": "node/b", "name": "b", "local": 1}
        ]))
        .unwrap();
        assert_eq!(cluster_name(&entries).as_deref(), Some("prod"));
        assert_eq!(
            cluster_name(&entries[1..]).as_deref(),
            Some("b"),
            "standalone: the local node"
        );
        assert_eq!(cluster_name(&entries[1..2]), None);
    }
}

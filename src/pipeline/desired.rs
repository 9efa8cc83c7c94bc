//! What Proxmox config a container's spec asks for: the spec first, then the template's
//! defaults, then the node's defaults, then Proxmox's. [`DesiredContainer`] is that config as a
//! type of its own, and [`FIELDS`] the one table from each of its values to its Proxmox key:
//! create sends it ([`DesiredContainer::create_request`]), configure compares against it, policy
//! and placement read it. Adding a spec field touches the CRD type, this table and a test.
//! Pure, so every mapping is unit-tested.

use crate::crd::container::{AddressMode, Ipv6Mode, LxcContainerSpec, NetworkInterface};
use crate::crd::node::ProxmoxNodeSpec;
use crate::crd::template::LxcTemplateSpec;
use crate::proxmox::api::CreateLxc;
use crate::proxmox::client::Params;
use crate::proxmox::property::{Features, Net, Startup, Volume};

use super::compare::{features_eq, num_eq, startup_eq, tags_eq, text_eq, words_eq};
use super::ownership::{description_with_owner, tags_with_owner};

/// The root filesystem size when neither the container nor its template names one (Proxmox's).
pub const DEFAULT_ROOTFS_GIB: i64 = 4;

/// Proxmox's memory when neither the container nor its template names one (MiB).
pub const DEFAULT_MEMORY_MIB: i64 = 512;

/// The memory a container asks for: the spec, then the template's default (`None`: Proxmox's).
pub fn memory_mib(spec: &LxcContainerSpec, template: Option<&LxcTemplateSpec>) -> Option<i64> {
    spec.resources
        .memory_mib
        .or(template.and_then(|t| t.defaults.memory_mib))
}

/// The container a spec asks for, every default resolved; `None` leaves a key to Proxmox (and
/// configure never touches it). Secrets (root password, SSH keys) are not here: create reads
/// them from their Secrets right before the call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredContainer {
    pub vmid: u32,
    pub ostemplate: String,
    pub hostname: Option<String>,
    pub cores: Option<u32>,
    pub cpulimit: Option<f64>,
    pub cpuunits: Option<u32>,
    pub memory: Option<u64>,
    pub swap: Option<u64>,
    pub rootfs: Option<Volume>,
    pub mount_points: Vec<Volume>,
    pub nets: Vec<Net>,
    pub features: Option<Features>,
    pub unprivileged: bool,
    pub onboot: Option<bool>,
    pub startup: Option<Startup>,
    pub nameserver: Option<String>,
    pub searchdomain: Option<String>,
    pub tags: Option<String>,
    pub description: Option<String>,
    pub pool: Option<String>,
}

/// How Proxmox takes a change of a key on an existing container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// At once or hot-plugged.
    Live,
    /// Kept pending by Proxmox until the container restarts.
    Restart,
    /// Never: a difference is reported (`ImmutableField`), not applied.
    Fixed,
    /// Sent at creation only, never compared afterwards.
    CreateOnly,
}

/// One scalar config key of the table.
pub struct Field {
    /// Proxmox's name for it.
    pub key: &'static str,
    pub apply: Apply,
    /// Whether a stored value and the desired one mean the same.
    pub same: fn(&str, &str) -> bool,
    /// What Proxmox means when the key is absent from a config (`None`: nothing).
    pub absent: Option<&'static str>,
    /// The desired value in Proxmox's format (`None`: left to Proxmox).
    pub value: fn(&DesiredContainer) -> Option<String>,
}

fn flag(v: bool) -> String {
    u8::from(v).to_string()
}

const fn field(
    key: &'static str,
    apply: Apply,
    same: fn(&str, &str) -> bool,
    value: fn(&DesiredContainer) -> Option<String>,
) -> Field {
    Field {
        key,
        apply,
        same,
        absent: None,
        value,
    }
}

/// Every scalar key, in the order it is sent and compared. Disks and NICs are indexed keys
/// ([`ROOTFS`], [`mount_key`], [`net_key`]) with rules of their own in the configure plan.
pub const FIELDS: &[Field] = &[
    field("hostname", Apply::Live, text_eq, |d| d.hostname.clone()),
    field("cores", Apply::Live, num_eq, |d| d.cores.map(|v| v.to_string())),
    field("cpulimit", Apply::Live, num_eq, |d| {
        d.cpulimit.map(|v| v.to_string())
    }),
    field("cpuunits", Apply::Live, num_eq, |d| {
        d.cpuunits.map(|v| v.to_string())
    }),
    field("memory", Apply::Live, num_eq, |d| d.memory.map(|v| v.to_string())),
    field("swap", Apply::Live, num_eq, |d| d.swap.map(|v| v.to_string())),
    field("onboot", Apply::Live, num_eq, |d| d.onboot.map(flag)),
    field("startup", Apply::Live, startup_eq, |d| {
        d.startup.as_ref().map(Startup::to_string)
    }),
    field("tags", Apply::Live, tags_eq, |d| d.tags.clone()),
    field("description", Apply::Live, text_eq, |d| d.description.clone()),
    field("nameserver", Apply::Restart, words_eq, |d| d.nameserver.clone()),
    field("searchdomain", Apply::Restart, text_eq, |d| {
        d.searchdomain.clone()
    }),
    field("features", Apply::Restart, features_eq, |d| {
        d.features.as_ref().map(Features::to_string)
    }),
    // Always sent: PVE 8 defaults to privileged containers; a config omits it when 0.
    Field {
        absent: Some("0"),
        ..field("unprivileged", Apply::Fixed, num_eq, |d| {
            Some(flag(d.unprivileged))
        })
    },
    field("pool", Apply::CreateOnly, text_eq, |d| d.pool.clone()),
];

/// The root filesystem's key.
pub const ROOTFS: &str = "rootfs";

/// The key of the `i`th NIC.
pub fn net_key(i: usize) -> String {
    format!("net{i}")
}

/// The key of the `i`th mount point.
pub fn mount_key(i: usize) -> String {
    format!("mp{i}")
}

impl DesiredContainer {
    /// Every key a create sends, in Proxmox's names and formats (secrets aside).
    pub fn config(&self) -> Params {
        let mut p: Params = FIELDS
            .iter()
            .filter_map(|f| (f.value)(self).map(|v| (f.key.to_string(), v)))
            .collect();
        if let Some(rootfs) = &self.rootfs {
            p.push((ROOTFS.into(), rootfs.to_string()));
        }
        p.extend(
            self.nets
                .iter()
                .enumerate()
                .map(|(i, n)| (net_key(i), n.to_string())),
        );
        p.extend(
            self.mount_points
                .iter()
                .enumerate()
                .map(|(i, m)| (mount_key(i), m.to_string())),
        );
        p
    }

    /// The `POST /nodes/{node}/lxc` request (the caller adds the secrets).
    pub fn create_request(&self) -> CreateLxc {
        CreateLxc {
            vmid: self.vmid,
            ostemplate: self.ostemplate.clone(),
            config: self.config(),
            password: None,
            ssh_public_keys: None,
        }
    }
}

/// The object a container is built for.
pub struct Subject<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    pub spec: &'a LxcContainerSpec,
    pub template: &'a LxcTemplateSpec,
    pub node: &'a ProxmoxNodeSpec,
}

fn net(nic: &NetworkInterface, default_bridge: &str) -> Net {
    let (ip, gw) = match &nic.ipv4 {
        None => (Some("dhcp".to_string()), None),
        Some(v4) => match v4.mode {
            AddressMode::Dhcp => (Some("dhcp".into()), None),
            AddressMode::Manual => (Some("manual".into()), None),
            AddressMode::Static => (v4.address.clone(), v4.gateway.clone()),
        },
    };
    let (ip6, gw6) = match &nic.ipv6 {
        None => (None, None),
        Some(v6) => match v6.mode {
            Ipv6Mode::Dhcp => (Some("dhcp".into()), None),
            Ipv6Mode::Auto => (Some("auto".into()), None),
            Ipv6Mode::Manual => (Some("manual".into()), None),
            Ipv6Mode::Static => (v6.address.clone(), v6.gateway.clone()),
        },
    };
    Net {
        name: nic.name.clone(),
        bridge: Some(nic.bridge.clone().unwrap_or_else(|| default_bridge.to_string())),
        firewall: nic.firewall,
        gw,
        gw6,
        hwaddr: nic.hwaddr.clone(),
        ip,
        ip6,
        link_down: None,
        mtu: nic.mtu.map(|m| m as u32),
        rate: nic.rate_mbps,
        tag: nic.vlan.map(|v| v as u16),
        trunks: None,
        kind: Some("veth".into()),
    }
}

fn features(f: &crate::crd::container::Features) -> Features {
    Features {
        force_rw_sys: None,
        fuse: f.fuse,
        keyctl: f.keyctl,
        mknod: f.mknod,
        mount: f.mount.clone(),
        nesting: f.nesting,
    }
}

/// The container `subject` asks for on `vmid`.
pub fn desired_container(subject: &Subject<'_>, vmid: u32) -> DesiredContainer {
    let Subject {
        name,
        uid,
        spec,
        template,
        node,
    } = subject;
    let defaults = &template.defaults;
    let storage = |s: &Option<String>| s.clone().unwrap_or_else(|| node.defaults.storage.clone());
    let rootfs_gib = spec
        .rootfs
        .as_ref()
        .and_then(|r| r.size_gib)
        .or(defaults.rootfs_size_gib)
        .unwrap_or(DEFAULT_ROOTFS_GIB);
    let rootfs_storage = storage(&spec.rootfs.as_ref().and_then(|r| r.storage.clone()));
    let mount_points = spec
        .mount_points
        .iter()
        .map(|m| Volume {
            volume: format!("{}:{}", storage(&m.storage), m.size_gib),
            mp: Some(m.path.clone()),
            ro: Some(m.read_only),
            backup: Some(m.backup),
            ..Default::default()
        })
        .collect();
    let mut tags = spec.tags.clone();
    tags.extend(defaults.tags.iter().cloned());
    DesiredContainer {
        vmid,
        ostemplate: template.os_template.volid.clone(),
        hostname: Some(spec.hostname.clone().unwrap_or_else(|| name.to_string())),
        cores: spec.resources.cores.or(defaults.cores).map(|c| c as u32),
        cpulimit: spec.resources.cpu_limit,
        cpuunits: spec.resources.cpu_units.map(|c| c as u32),
        memory: memory_mib(spec, Some(template)).map(|m| m as u64),
        swap: spec.resources.swap_mib.or(defaults.swap_mib).map(|m| m as u64),
        rootfs: Some(Volume {
            volume: format!("{rootfs_storage}:{rootfs_gib}"),
            ..Default::default()
        }),
        mount_points,
        nets: spec
            .network
            .iter()
            .map(|n| net(n, &node.defaults.bridge))
            .collect(),
        features: spec
            .features
            .as_ref()
            .or(defaults.features.as_ref())
            .map(features),
        unprivileged: spec.unprivileged.or(defaults.unprivileged).unwrap_or(true),
        onboot: spec.on_boot,
        startup: spec.startup.as_ref().map(|s| Startup {
            order: s.order.map(|v| v as u32),
            up: s.up_delay_seconds.map(|v| v as u32),
            down: s.down_delay_seconds.map(|v| v as u32),
        }),
        nameserver: spec
            .dns
            .as_ref()
            .filter(|d| !d.nameservers.is_empty())
            .map(|d| d.nameservers.join(" ")),
        searchdomain: spec.dns.as_ref().and_then(|d| d.search_domain.clone()),
        tags: Some(tags_with_owner(&tags, uid)),
        description: Some(description_with_owner(spec.description.as_deref(), uid)),
        pool: spec.pool.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> ProxmoxNodeSpec {
        serde_json::from_value(json!({
            "endpoint": "https://pve:8006", "nodeName": "pve1",
            "credentialsSecretRef": {"name": "c", "namespace": "n"},
            "defaults": {"storage": "fast", "templateStorage": "local", "bridge": "vmbr9"}
        }))
        .unwrap()
    }

    fn template() -> LxcTemplateSpec {
        serde_json::from_value(json!({
            "osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
            "defaults": {"cores": 2, "memoryMiB": 1024, "swapMiB": 256, "rootfsSizeGiB": 8,
                         "features": {"nesting": true}, "tags": ["Base"]}
        }))
        .unwrap()
    }

    #[test]
    fn template_and_node_defaults_fill_what_the_spec_leaves_unset() {
        let spec: LxcContainerSpec = serde_json::from_value(json!({
            "nodeRef": "pve1", "templateRef": "t", "network": [{"name": "eth0"}]
        }))
        .unwrap();
        let (t, n) = (template(), node());
        let p = desired_container(
            &Subject {
                name: "web-1",
                uid: "u1",
                spec: &spec,
                template: &t,
                node: &n,
            },
            1000,
        );
        assert_eq!(
            p.hostname.as_deref(),
            Some("web-1"),
            "hostname defaults to the object's name"
        );
        assert_eq!((p.cores, p.memory, p.swap), (Some(2), Some(1024), Some(256)));
        assert_eq!(p.rootfs.unwrap().volume, "fast:8");
        assert_eq!(p.nets[0].to_string(), "name=eth0,bridge=vmbr9,ip=dhcp,type=veth");
        assert_eq!(p.features.unwrap().to_string(), "nesting=1");
        assert!(p.unprivileged, "unprivileged unless asked otherwise");
        assert_eq!(p.tags.as_deref(), Some("base;lxc-operator;lxcop-u1"));
        assert_eq!(p.description.as_deref(), Some("lxc-operator-uid: u1\n"));
        assert_eq!(
            p.ostemplate,
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
        );
    }

    #[test]
    fn every_spec_field_reaches_its_proxmox_parameter() {
        let spec: LxcContainerSpec = serde_json::from_value(json!({
            "nodeRef": "pve1", "templateRef": "t", "hostname": "db-1", "unprivileged": false, "onBoot": true,
            "resources": {"cores": 4, "cpuLimit": 1.5, "cpuUnits": 2048, "memoryMiB": 4096, "swapMiB": 0},
            "rootfs": {"storage": "local-lvm", "sizeGiB": 16},
            "mountPoints": [{"path": "/var/lib/pg", "sizeGiB": 32, "backup": true, "readOnly": false}],
            "network": [{"name": "eth0", "bridge": "vmbr0", "vlan": 20, "firewall": true, "mtu": 1500,
                         "rateMbps": 12.5, "hwaddr": "BC:24:11:00:00:01",
                         "ipv4": {"mode": "Static", "address": "192.168.20.10/24", "gateway": "192.168.20.1"},
                         "ipv6": {"mode": "Static", "address": "fd00:20::10/64", "gateway": "fd00:20::1"}},
                        {"name": "eth1", "ipv4": {"mode": "Manual"}, "ipv6": {"mode": "Auto"}}],
            "dns": {"nameservers": ["192.168.20.1", "fd00:20::1"], "searchDomain": "lab.example.org"},
            "features": {"keyctl": true, "mount": ["nfs"]},
            "startup": {"order": 10, "upDelaySeconds": 5, "downDelaySeconds": 30},
            "tags": ["db"], "description": "primary", "pool": "prod"
        }))
        .unwrap();
        let (t, n) = (template(), node());
        let p = desired_container(
            &Subject {
                name: "x",
                uid: "u2",
                spec: &spec,
                template: &t,
                node: &n,
            },
            1500,
        );
        assert_eq!(p.vmid, 1500);
        assert_eq!(p.hostname.as_deref(), Some("db-1"));
        assert_eq!(
            (p.cores, p.cpulimit, p.cpuunits),
            (Some(4), Some(1.5), Some(2048))
        );
        assert_eq!((p.memory, p.swap), (Some(4096), Some(0)));
        assert_eq!(p.rootfs.unwrap().volume, "local-lvm:16");
        assert_eq!(
            p.mount_points[0].to_string(),
            "fast:32,mp=/var/lib/pg,backup=1,ro=0"
        );
        assert_eq!(
            p.nets[0].to_string(),
            "name=eth0,bridge=vmbr0,firewall=1,gw=192.168.20.1,gw6=fd00:20::1,hwaddr=BC:24:11:00:00:01,\
             ip=192.168.20.10/24,ip6=fd00:20::10/64,mtu=1500,rate=12.5,tag=20,type=veth"
        );
        assert_eq!(
            p.nets[1].to_string(),
            "name=eth1,bridge=vmbr9,ip=manual,ip6=auto,type=veth"
        );
        assert_eq!(p.nameserver.as_deref(), Some("192.168.20.1 fd00:20::1"));
        assert_eq!(p.searchdomain.as_deref(), Some("lab.example.org"));
        assert_eq!(p.features.as_ref().unwrap().to_string(), "keyctl=1,mount=nfs");
        assert!(p.features.unwrap().needs_root(), "keyctl needs root@pam");
        assert_eq!(p.startup.unwrap().to_string(), "order=10,up=5,down=30");
        assert!(!p.unprivileged);
        assert_eq!(p.onboot, Some(true));
        assert_eq!(p.tags.as_deref(), Some("base;db;lxc-operator;lxcop-u2"));
        assert_eq!(
            p.description.as_deref(),
            Some("primary\n\nlxc-operator-uid: u2\n")
        );
        assert_eq!(p.pool.as_deref(), Some("prod"));
    }

    #[test]
    fn the_table_sends_each_value_under_its_proxmox_key() {
        let d = DesiredContainer {
            vmid: 1000,
            ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            hostname: Some("web-1".into()),
            memory: Some(1024),
            rootfs: Some(Volume::parse("local-lvm:8").unwrap()),
            nets: vec![Net::parse("name=eth0,bridge=vmbr0,ip=dhcp").unwrap()],
            unprivileged: true,
            onboot: Some(false),
            ..Default::default()
        };
        let p = d.create_request().params();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("vmid"), Some("1000"));
        assert_eq!(get("hostname"), Some("web-1"));
        assert_eq!(get("memory"), Some("1024"));
        assert_eq!(get("unprivileged"), Some("1"));
        assert_eq!(get("onboot"), Some("0"));
        assert_eq!(get("rootfs"), Some("local-lvm:8"));
        assert_eq!(get("net0"), Some("name=eth0,bridge=vmbr0,ip=dhcp"));
        assert_eq!(get("cores"), None, "unset fields are not sent");
    }

    #[test]
    fn a_config_holding_what_create_sent_needs_no_change() {
        let spec: LxcContainerSpec = serde_json::from_value(json!({
            "nodeRef": "pve1", "templateRef": "t", "hostname": "db-1", "onBoot": true,
            "resources": {"cores": 4, "cpuLimit": 1.5, "cpuUnits": 2048, "memoryMiB": 4096, "swapMiB": 0},
            "network": [{"name": "eth0", "vlan": 20}],
            "dns": {"nameservers": ["192.168.20.1"], "searchDomain": "lab.example.org"},
            "features": {"keyctl": true}, "startup": {"order": 10},
            "tags": ["db"], "description": "primary", "pool": "prod"
        }))
        .unwrap();
        let (t, n) = (template(), node());
        let subject = Subject {
            name: "x",
            uid: "u",
            spec: &spec,
            template: &t,
            node: &n,
        };
        let d = desired_container(&subject, 100);
        let mut stored = serde_json::Map::new();
        stored.insert("digest".into(), json!("d"));
        for (k, v) in d.config() {
            stored.insert(k, json!(v));
        }
        let stored: crate::proxmox::types::LxcConfig =
            serde_json::from_value(serde_json::Value::Object(stored)).unwrap();
        let plan = super::super::configure::plan(&d, &stored, false);
        assert!(plan.is_empty() && plan.fixed.is_empty(), "{plan:?}");
        for field in FIELDS.iter().filter(|f| f.apply != Apply::CreateOnly) {
            let mut changed = stored.clone();
            changed.values.insert(field.key.to_string(), "x-changed".into());
            let plan = super::super::configure::plan(&d, &changed, false);
            assert!(
                plan.set.iter().any(|(k, _)| k == field.key)
                    || plan.fixed.iter().any(|m| m.starts_with(field.key)),
                "a changed {} is noticed: {plan:?}",
                field.key
            );
        }
    }
}

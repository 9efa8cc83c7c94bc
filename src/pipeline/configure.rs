//! Configure: what differs between the config a spec asks for and the one Proxmox holds, sorted
//! by how Proxmox can apply it. A field the spec leaves unset is never touched, a MAC Proxmox
//! generated is kept, and changes Proxmox applies only to a stopped container are held back
//! while it runs (the driver restarts it when the update strategy allows, else reports them).

use crate::proxmox::property::{Net, Volume};
use crate::proxmox::types::LxcConfig;

use super::compare::net_eq;
use super::desired::{Apply, DesiredContainer, FIELDS, ROOTFS, mount_key, net_key};

/// The changes to make.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigPlan {
    /// Keys to set now, in Proxmox's names and formats.
    pub set: Vec<(String, String)>,
    /// Keys to remove now.
    pub delete: Vec<String>,
    /// Disks to grow now: (`rootfs` or `mpN`, GiB).
    pub resize: Vec<(String, u64)>,
    /// Keys that differ but apply only to a stopped container (it runs; not in `set`).
    pub needs_restart: Vec<String>,
    /// Differences Proxmox cannot apply at all, as messages (e.g. the rootfs storage).
    pub fixed: Vec<String>,
}

impl ConfigPlan {
    /// True when Proxmox already matches everything it can.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.delete.is_empty()
            && self.resize.is_empty()
            && self.needs_restart.is_empty()
    }

    /// The keys this plan changes now, for Events and the audit trail.
    pub fn changed_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.set.iter().map(|(k, _)| k.clone()).collect();
        keys.extend(self.delete.iter().cloned());
        keys.extend(self.resize.iter().map(|(d, _)| format!("{d} size")));
        keys
    }
}

struct Planner {
    running: bool,
    plan: ConfigPlan,
}

impl Planner {
    fn change(&mut self, key: &str, value: String, apply: Apply) {
        if self.running && apply == Apply::Restart {
            self.plan.needs_restart.push(key.to_string());
        } else {
            self.plan.set.push((key.to_string(), value));
        }
    }
}

/// The desired NIC with what the spec leaves to Proxmox (the MAC) taken from `current`.
fn net_with_observed(desired: &Net, current: Option<&Net>) -> Net {
    let mut net = desired.clone();
    if net.hwaddr.is_none() {
        net.hwaddr = current.and_then(|c| c.hwaddr.clone());
    }
    net
}

/// The size in GiB asked for by a `STORAGE:SIZE` volume.
fn requested_gib(volume: &Volume) -> Option<u64> {
    volume.volume.split_once(':').and_then(|(_, n)| n.parse().ok())
}

fn mount_options_eq(a: &Volume, b: &Volume) -> bool {
    let opts = |v: &Volume| (v.mp.clone(), v.ro.unwrap_or(false), v.backup.unwrap_or(false));
    opts(a) == opts(b)
}

/// The plan that takes `observed` to `desired` (the table [`FIELDS`] for scalar keys, then
/// NICs, the root filesystem and mount points).
pub fn plan(desired: &DesiredContainer, observed: &LxcConfig, running: bool) -> ConfigPlan {
    let mut p = Planner {
        running,
        plan: ConfigPlan::default(),
    };
    for field in FIELDS {
        let Some(want) = (field.value)(desired) else {
            continue;
        };
        let current = observed.get(field.key).or(field.absent);
        if current.is_some_and(|c| (field.same)(c, &want)) {
            continue;
        }
        match field.apply {
            Apply::Live | Apply::Restart => p.change(field.key, want, field.apply),
            Apply::Fixed => p.plan.fixed.push(format!(
                "{} is {} in Proxmox and cannot change after creation (the spec asks for {want})",
                field.key,
                current.unwrap_or("unset"),
            )),
            Apply::CreateOnly => {}
        }
    }

    // NICs: net0..netN-1 as listed; extra NICs go when the spec lists any.
    for (i, net) in desired.nets.iter().enumerate() {
        let key = net_key(i);
        let current = observed.get(&key).and_then(|v| Net::parse(v).ok());
        let wanted = net_with_observed(net, current.as_ref());
        if !current.as_ref().is_some_and(|c| net_eq(c, &wanted)) {
            p.change(&key, wanted.to_string(), Apply::Live);
        }
    }
    if !desired.nets.is_empty() {
        let extra = observed
            .values
            .keys()
            .filter_map(|k| k.strip_prefix("net").and_then(|i| i.parse::<usize>().ok()))
            .filter(|i| *i >= desired.nets.len());
        for i in extra {
            p.plan.delete.push(net_key(i));
        }
    }

    // The root filesystem only grows; its storage is fixed.
    if let (Some(want), Some(current)) = (
        desired.rootfs.as_ref(),
        observed.get(ROOTFS).and_then(|v| Volume::parse(v).ok()),
    ) {
        if current.storage() != want.storage() {
            p.plan.fixed.push(format!(
                "rootfs is on storage {} and cannot move to {}",
                current.storage(),
                want.storage()
            ));
        }
        if let (Some(w), Some(c)) = (requested_gib(want), current.size_gib())
            && w > c
        {
            p.plan.resize.push((ROOTFS.into(), w));
        }
    }

    // Mount points: new ones are hot-plugged, options of existing ones need a restart, sizes grow.
    for (i, mp) in desired.mount_points.iter().enumerate() {
        let key = mount_key(i);
        match observed.get(&key).and_then(|v| Volume::parse(v).ok()) {
            None => p.change(&key, mp.to_string(), Apply::Live),
            Some(current) => {
                if !mount_options_eq(&current, mp) {
                    let updated = Volume {
                        volume: current.volume.clone(),
                        size: current.size.clone(),
                        ..mp.clone()
                    };
                    p.change(&key, updated.to_string(), Apply::Restart);
                }
                if let (Some(w), Some(c)) = (requested_gib(mp), current.size_gib())
                    && w > c
                {
                    p.plan.resize.push((key, w));
                }
            }
        }
    }
    p.plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::property::Features;
    use serde_json::json;

    fn observed(v: serde_json::Value) -> LxcConfig {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> DesiredContainer {
        DesiredContainer {
            vmid: 100,
            ostemplate: "local:vztmpl/x.tar.zst".into(),
            hostname: Some("web".into()),
            cores: Some(2),
            memory: Some(1024),
            rootfs: Some(Volume {
                volume: "local-lvm:8".into(),
                ..Default::default()
            }),
            nets: vec![Net::parse("name=eth0,bridge=vmbr0,ip=dhcp,type=veth").unwrap()],
            unprivileged: true,
            tags: Some("lxc-operator;web".into()),
            description: Some("lxc-operator-uid: u\n".into()),
            ..Default::default()
        }
    }

    fn matching() -> serde_json::Value {
        json!({
            "digest": "d", "hostname": "web", "cores": 2, "memory": 1024, "swap": 512,
            "rootfs": "local-lvm:vm-100-disk-0,size=8G", "unprivileged": 1,
            "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth",
            "tags": "web;lxc-operator", "description": "lxc-operator-uid: u\n", "ostype": "debian"
        })
    }

    #[test]
    fn a_matching_config_needs_nothing_and_unset_fields_are_left_alone() {
        let p = plan(&base(), &observed(matching()), true);
        assert!(p.is_empty(), "{p:?}");
        assert!(p.fixed.is_empty(), "{p:?}");
        // swap is 512 in Proxmox and unset in the spec: not touched.
        assert!(!p.set.iter().any(|(k, _)| k == "swap"));
    }

    #[test]
    fn changed_fields_are_set_and_the_generated_mac_is_kept() {
        let mut d = base();
        d.cores = Some(4);
        d.memory = Some(2048);
        d.nets[0].tag = Some(20);
        d.tags = Some("db;lxc-operator".into());
        let p = plan(&d, &observed(matching()), true);
        let keys: Vec<&str> = p.set.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["cores", "memory", "tags", "net0"]);
        let net0 = &p.set.iter().find(|(k, _)| k == "net0").unwrap().1;
        assert!(net0.contains("hwaddr=BC:24:11:AA:BB:CC"), "{net0}");
        assert!(net0.contains("tag=20"), "{net0}");
        assert!(p.needs_restart.is_empty());
    }

    #[test]
    fn restart_only_changes_wait_while_running_and_apply_when_stopped() {
        let mut d = base();
        d.nameserver = Some("1.1.1.1".into());
        d.features = Some(Features::parse("nesting=1").unwrap());
        let running = plan(&d, &observed(matching()), true);
        assert_eq!(running.needs_restart, ["nameserver", "features"]);
        assert!(
            running.set.is_empty(),
            "nothing applied while running: {running:?}"
        );
        let stopped = plan(&d, &observed(matching()), false);
        assert!(stopped.needs_restart.is_empty());
        assert_eq!(
            stopped.set,
            [
                ("nameserver".to_string(), "1.1.1.1".to_string()),
                ("features".to_string(), "nesting=1".to_string())
            ]
        );
    }

    #[test]
    fn disks_only_grow_and_the_storage_is_fixed() {
        let mut d = base();
        d.rootfs = Some(Volume {
            volume: "local-lvm:16".into(),
            ..Default::default()
        });
        let p = plan(&d, &observed(matching()), true);
        assert_eq!(p.resize, [("rootfs".to_string(), 16)]);
        d.rootfs = Some(Volume {
            volume: "other:4".into(),
            ..Default::default()
        });
        let p = plan(&d, &observed(matching()), true);
        assert!(p.resize.is_empty(), "never shrinks");
        assert_eq!(p.fixed.len(), 1, "{p:?}");
        assert!(p.fixed[0].contains("cannot move to other"));
    }

    #[test]
    fn mount_points_are_added_live_grown_and_reoptioned_with_a_restart() {
        let mut d = base();
        d.mount_points = vec![
            Volume::parse("local-lvm:10,mp=/data,backup=1,ro=0").unwrap(),
            Volume::parse("local-lvm:2,mp=/logs,backup=0,ro=0").unwrap(),
        ];
        let mut o = matching();
        o["mp0"] = json!("local-lvm:vm-100-disk-1,mp=/data,backup=1,size=8G");
        let p = plan(&d, &observed(o.clone()), true);
        assert_eq!(
            p.set,
            [(
                "mp1".to_string(),
                "local-lvm:2,mp=/logs,backup=0,ro=0".to_string()
            )]
        );
        assert_eq!(p.resize, [("mp0".to_string(), 10)]);
        d.mount_points[0].ro = Some(true);
        let p = plan(&d, &observed(o.clone()), true);
        assert_eq!(p.needs_restart, ["mp0"]);
        let p = plan(&d, &observed(o), false);
        let mp0 = &p.set.iter().find(|(k, _)| k == "mp0").unwrap().1;
        assert_eq!(mp0, "local-lvm:vm-100-disk-1,mp=/data,backup=1,ro=1,size=8G");
    }

    #[test]
    fn extra_nics_go_and_equivalent_spellings_are_equal() {
        let mut o = matching();
        o["net1"] = json!("name=eth1,bridge=vmbr1,ip=dhcp");
        o["tags"] = json!("LXC-Operator web");
        o["description"] = json!("lxc-operator-uid: u");
        o["cores"] = json!("2");
        let p = plan(&base(), &observed(o), true);
        assert_eq!(p.delete, ["net1"]);
        assert!(p.set.is_empty(), "{p:?}");
    }

    #[test]
    fn unprivileged_cannot_flip() {
        let mut d = base();
        d.unprivileged = false;
        let p = plan(&d, &observed(matching()), false);
        assert!(p.fixed[0].contains("unprivileged"));
        assert!(p.set.is_empty());
    }
}

//! One accept and one deny per rule, on requests built the way the controller builds them
//! (`desired::desired_container`), plus hand-made volumes the spec cannot express yet.

use serde_json::{Value, json};

use super::*;
use crate::crd::container::LxcContainerSpec;
use crate::crd::node::ProxmoxNodeSpec;
use crate::crd::template::LxcTemplateSpec;
use crate::pipeline::desired::{Subject, desired_container};

/// The create request for a container `spec` (merged over a minimal one) from a template
/// with `template_defaults`, on a node whose defaults are bridge `vmbr0`, storage `local-lvm`.
fn request_from(spec: Value, template_defaults: Value) -> DesiredContainer {
    let mut base = json!({"nodeRef": "pve1", "templateRef": "t", "network": [{"name": "eth0"}]});
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    let spec: LxcContainerSpec = serde_json::from_value(base).unwrap();
    let template: LxcTemplateSpec = serde_json::from_value(json!({
        "osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
        "defaults": template_defaults
    }))
    .unwrap();
    let node: ProxmoxNodeSpec = serde_json::from_value(json!({
        "endpoint": "https://pve:8006", "nodeName": "pve1",
        "credentialsSecretRef": {"name": "c", "namespace": "n"}
    }))
    .unwrap();
    desired_container(
        &Subject {
            name: "web-1",
            uid: "u1",
            spec: &spec,
            template: &template,
            node: &node,
        },
        1000,
    )
}

fn request(spec: Value) -> DesiredContainer {
    request_from(spec, json!({}))
}

/// A policy from its YAML/JSON form, defaults filled in as the API server would.
fn policy(v: Value) -> NodePolicy {
    serde_json::from_value(v).unwrap()
}

fn denied(policy: &NodePolicy, desired: &DesiredContainer) -> PolicyDenied {
    check("pve1", policy, desired).expect_err("the policy should deny this request")
}

fn allowed(policy: &NodePolicy, desired: &DesiredContainer) {
    if let Err(e) = check("pve1", policy, desired) {
        panic!("the policy should allow this request, but: {e}");
    }
}

#[test]
fn the_default_policy_is_the_safe_one_and_allows_an_ordinary_container() {
    let defaults = NodePolicy::default();
    assert_eq!(policy(json!({})), defaults, "serde defaults match Default");
    assert!(!defaults.allow_privileged);
    assert_eq!(defaults.allowed_features, [FeatureFlag::Nesting]);
    assert!(!defaults.mount_points.allow_bind_mounts && !defaults.mount_points.allow_device_mounts);
    let node: ProxmoxNodeSpec = serde_json::from_value(json!({
        "endpoint": "https://pve:8006", "nodeName": "pve1",
        "credentialsSecretRef": {"name": "c", "namespace": "n"}
    }))
    .unwrap();
    assert_eq!(node.policy, defaults, "a node without a policy gets the safe one");
    let ordinary = request(json!({
        "features": {"nesting": true}, "resources": {"cores": 2, "memoryMiB": 1024},
        "rootfs": {"sizeGiB": 8}, "mountPoints": [{"path": "/srv/data", "sizeGiB": 4}],
        "network": [{"name": "eth0", "vlan": 10}], "pool": "tenants"
    }));
    allowed(&defaults, &ordinary);
}

#[test]
fn privileged_containers_are_denied_unless_allowed_also_from_a_template() {
    let own = request(json!({"unprivileged": false}));
    let e = denied(&NodePolicy::default(), &own);
    assert_eq!(
        e.to_string(),
        "spec.unprivileged: false is not allowed by ProxmoxNode pve1 spec.policy.allowPrivileged = false"
    );
    let from_template = request_from(json!({}), json!({"unprivileged": false}));
    assert_eq!(
        denied(&NodePolicy::default(), &from_template).field,
        "spec.unprivileged"
    );
    let open = policy(json!({"allowPrivileged": true}));
    allowed(&open, &own);
    allowed(&open, &from_template);
}

#[test]
fn feature_flags_need_the_policy_to_list_them() {
    let keyctl = request(json!({"features": {"nesting": true, "keyctl": true}}));
    let e = denied(&NodePolicy::default(), &keyctl);
    assert_eq!(
        e.to_string(),
        "spec.features.keyctl: true is not allowed by ProxmoxNode pve1 spec.policy.allowedFeatures = [Nesting]"
    );
    allowed(
        &policy(json!({"allowedFeatures": ["Nesting", "Keyctl"]})),
        &keyctl,
    );
    // Each flag is checked on its own: allowing keyctl does not allow fuse or mknod.
    let fuse = request(json!({"features": {"fuse": true}}));
    let e = denied(&policy(json!({"allowedFeatures": ["Keyctl"]})), &fuse);
    assert_eq!(
        (e.field.as_str(), e.asked.as_str()),
        ("spec.features.fuse", "true")
    );
    let mknod = request(json!({"features": {"mknod": true}}));
    assert_eq!(
        denied(&NodePolicy::default(), &mknod).field,
        "spec.features.mknod"
    );
    // An empty list allows not even nesting; a flag set to false asks for nothing.
    let nesting = request(json!({"features": {"nesting": true, "keyctl": false}}));
    let none = policy(json!({"allowedFeatures": []}));
    assert_eq!(denied(&none, &nesting).field, "spec.features.nesting");
    allowed(&none, &request(json!({"features": {"nesting": false}})));
    // The template's features count too.
    let from_template = request_from(json!({}), json!({"features": {"keyctl": true}}));
    assert_eq!(
        denied(&NodePolicy::default(), &from_template).field,
        "spec.features.keyctl"
    );
}

#[test]
fn force_rw_sys_is_named_in_the_policy_s_spelling() {
    let mut desired = request(json!({}));
    desired.features = Some(crate::proxmox::property::Features {
        force_rw_sys: Some(true),
        ..Default::default()
    });
    let e = denied(&NodePolicy::default(), &desired);
    assert_eq!(e.field, "spec.features.forceRwSys");
    allowed(&policy(json!({"allowedFeatures": ["ForceRwSys"]})), &desired);
}

#[test]
fn mount_types_need_the_policy_to_list_them() {
    let nfs = request(json!({"features": {"mount": ["nfs"]}}));
    let e = denied(&NodePolicy::default(), &nfs);
    assert_eq!(
        e.to_string(),
        "spec.features.mount: nfs is not allowed by ProxmoxNode pve1 spec.policy.allowedMountTypes = []"
    );
    let p = policy(json!({"allowedMountTypes": ["nfs"]}));
    allowed(&p, &nfs);
    let both = request(json!({"features": {"mount": ["nfs", "cifs"]}}));
    assert_eq!(denied(&p, &both).asked, "cifs");
}

#[test]
fn bridges_are_free_while_unset_and_listed_once_set() {
    let desired = request(json!({"network": [
        {"name": "eth0", "bridge": "vmbr0"}, {"name": "eth1", "bridge": "vmbr1"}
    ]}));
    allowed(&NodePolicy::default(), &desired);
    let p = policy(json!({"allowedBridges": ["vmbr0"]}));
    let e = denied(&p, &desired);
    assert_eq!(
        e.to_string(),
        "spec.network[1].bridge: vmbr1 is not allowed by ProxmoxNode pve1 spec.policy.allowedBridges = [vmbr0]"
    );
    allowed(&policy(json!({"allowedBridges": ["vmbr0", "vmbr1"]})), &desired);
    // The node's default bridge (vmbr0) is filled in before the check.
    let unnamed = request(json!({"network": [{"name": "eth0"}]}));
    allowed(&p, &unnamed);
    let e = denied(&policy(json!({"allowedBridges": ["vmbr7"]})), &unnamed);
    assert_eq!(
        (e.field.as_str(), e.asked.as_str()),
        ("spec.network[0].bridge", "vmbr0")
    );
    assert_eq!(
        denied(&policy(json!({"allowedBridges": []})), &unnamed).field,
        "spec.network[0].bridge"
    );
}

#[test]
fn vlans_must_fall_in_a_range_once_ranges_are_set() {
    let tagged = |tag: i32| request(json!({"network": [{"name": "eth0", "vlan": tag}]}));
    let untagged = request(json!({}));
    allowed(&NodePolicy::default(), &tagged(4000));
    allowed(&NodePolicy::default(), &untagged);
    let p = policy(json!({"allowedVlans": [{"min": 100, "max": 199}, {"min": 300, "max": 300}]}));
    allowed(&p, &tagged(100));
    allowed(&p, &tagged(199));
    allowed(&p, &tagged(300));
    let e = denied(&p, &tagged(200));
    assert_eq!(
        e.to_string(),
        "spec.network[0].vlan: 200 is not allowed by ProxmoxNode pve1 spec.policy.allowedVlans = [100-199, 300]"
    );
    assert_eq!(denied(&p, &tagged(99)).asked, "99");
    let e = denied(&p, &untagged);
    assert_eq!(
        (e.field.as_str(), e.asked.as_str()),
        ("spec.network[0].vlan", "untagged")
    );
}

#[test]
fn trunks_must_stay_inside_the_vlan_ranges() {
    let p = policy(json!({"allowedVlans": [{"min": 100, "max": 199}]}));
    let mut desired = request(json!({"network": [{"name": "eth0", "vlan": 100}]}));
    desired.nets[0].trunks = Some("110;120-130".into());
    allowed(&p, &desired);
    desired.nets[0].trunks = Some("110;190-210".into());
    assert_eq!(denied(&p, &desired).field, "spec.network[0].trunks");
    desired.nets[0].trunks = Some("garbage".into());
    assert_eq!(denied(&p, &desired).field, "spec.network[0].trunks");
    allowed(&NodePolicy::default(), &desired);
}

#[test]
fn storages_are_free_while_unset_and_listed_once_set() {
    let desired = request(json!({
        "rootfs": {"storage": "fast", "sizeGiB": 8},
        "mountPoints": [{"path": "/a", "sizeGiB": 1}, {"path": "/b", "storage": "slow", "sizeGiB": 1}]
    }));
    allowed(&NodePolicy::default(), &desired);
    allowed(
        &policy(json!({"allowedStorages": ["fast", "slow", "local-lvm"]})),
        &desired,
    );
    let e = denied(
        &policy(json!({"allowedStorages": ["slow", "local-lvm"]})),
        &desired,
    );
    assert_eq!(
        e.to_string(),
        "spec.rootfs.storage: fast is not allowed by ProxmoxNode pve1 spec.policy.allowedStorages = [slow, local-lvm]"
    );
    // mountPoints[0] names no storage: the node's default (local-lvm) is what is checked.
    let e = denied(&policy(json!({"allowedStorages": ["fast", "slow"]})), &desired);
    assert_eq!(
        (e.field.as_str(), e.asked.as_str()),
        ("spec.mountPoints[0].storage", "local-lvm")
    );
    let e = denied(
        &policy(json!({"allowedStorages": ["fast", "local-lvm"]})),
        &desired,
    );
    assert_eq!(
        (e.field.as_str(), e.asked.as_str()),
        ("spec.mountPoints[1].storage", "slow")
    );
}

#[test]
fn pools_are_free_while_unset_and_listed_once_set() {
    let pooled = request(json!({"pool": "prod"}));
    allowed(&NodePolicy::default(), &pooled);
    let p = policy(json!({"allowedPools": ["tenant-a"]}));
    let e = denied(&p, &pooled);
    assert_eq!(
        e.to_string(),
        "spec.pool: prod is not allowed by ProxmoxNode pve1 spec.policy.allowedPools = [tenant-a]"
    );
    allowed(&p, &request(json!({"pool": "tenant-a"})));
    allowed(&policy(json!({"allowedPools": []})), &request(json!({})));
}

/// A request with one extra mount point whose volume is `volume` (a bind or device mount).
fn with_mount(volume: &str) -> DesiredContainer {
    let mut desired = request(json!({}));
    desired.mount_points.push(Volume {
        volume: volume.into(),
        mp: Some("/mnt/x".into()),
        ..Default::default()
    });
    desired
}

#[test]
fn bind_mounts_are_denied_unless_allowed_and_then_only_under_the_host_paths() {
    let share = with_mount("/srv/share/tenant-a");
    let e = denied(&NodePolicy::default(), &share);
    assert_eq!(
        e.to_string(),
        "spec.mountPoints[0]: bind mount of /srv/share/tenant-a is not allowed by \
         ProxmoxNode pve1 spec.policy.mountPoints.allowBindMounts = false"
    );
    let p = policy(json!({"mountPoints": {"allowBindMounts": true, "bindMountHostPaths": ["/srv/share"]}}));
    allowed(&p, &share);
    allowed(&p, &with_mount("/srv/share"));
    allowed(&p, &with_mount("/srv/share/"));
    for outside in [
        "/srv/shared",
        "/srv",
        "/etc",
        "/srv/share/../../etc",
        "/srv/share/./x",
        "/srv//share",
    ] {
        let e = denied(&p, &with_mount(outside));
        assert_eq!(
            e.rule, "ProxmoxNode pve1 spec.policy.mountPoints.bindMountHostPaths = [/srv/share]",
            "{outside}"
        );
    }
    // Host paths without allowBindMounts allow nothing.
    let paths_only = policy(json!({"mountPoints": {"bindMountHostPaths": ["/srv/share"]}}));
    assert_eq!(
        denied(&paths_only, &share).rule,
        e_rule("mountPoints.allowBindMounts = false")
    );
}

fn e_rule(rest: &str) -> String {
    format!("ProxmoxNode pve1 spec.policy.{rest}")
}

#[test]
fn device_mounts_are_denied_unless_allowed_and_are_not_bind_mounts() {
    let disk = with_mount("/dev/sdb1");
    let e = denied(&NodePolicy::default(), &disk);
    assert_eq!(e.asked, "device mount of /dev/sdb1");
    assert_eq!(e.rule, e_rule("mountPoints.allowDeviceMounts = false"));
    // Allowing bind mounts under /dev does not allow devices.
    let binds = policy(json!({"mountPoints": {"allowBindMounts": true, "bindMountHostPaths": ["/dev"]}}));
    assert_eq!(
        denied(&binds, &disk).rule,
        e_rule("mountPoints.allowDeviceMounts = false")
    );
    allowed(
        &policy(json!({"mountPoints": {"allowDeviceMounts": true}})),
        &disk,
    );
}

#[test]
fn a_bind_mounted_root_filesystem_is_a_bind_mount_too() {
    let mut desired = request(json!({}));
    desired.rootfs = Some(Volume {
        volume: "/".into(),
        ..Default::default()
    });
    let e = denied(&NodePolicy::default(), &desired);
    assert_eq!(
        (e.field.as_str(), e.asked.as_str()),
        ("spec.rootfs", "bind mount of /")
    );
}

#[test]
fn cores_above_the_maximum_or_left_unset_are_denied() {
    let p = policy(json!({"maxCores": 4}));
    allowed(&p, &request(json!({"resources": {"cores": 4}})));
    let e = denied(&p, &request(json!({"resources": {"cores": 5}})));
    assert_eq!(
        e.to_string(),
        "spec.resources.cores: 5 is not allowed by ProxmoxNode pve1 spec.policy.maxCores = 4"
    );
    let e = denied(&p, &request(json!({})));
    assert_eq!(e.asked, "unset (all of the host's cores)");
    // The template's cores count.
    allowed(&p, &request_from(json!({}), json!({"cores": 2})));
    assert_eq!(
        denied(&p, &request_from(json!({}), json!({"cores": 8}))).asked,
        "8"
    );
    allowed(
        &NodePolicy::default(),
        &request(json!({"resources": {"cores": 64}})),
    );
}

#[test]
fn memory_and_swap_above_the_maximum_are_denied_counting_proxmox_defaults() {
    let p = policy(json!({"maxMemoryMiB": 4096, "maxSwapMiB": 1024}));
    allowed(
        &p,
        &request(json!({"resources": {"memoryMiB": 4096, "swapMiB": 1024}})),
    );
    let e = denied(&p, &request(json!({"resources": {"memoryMiB": 8192}})));
    assert_eq!(
        e.to_string(),
        "spec.resources.memoryMiB: 8192 is not allowed by ProxmoxNode pve1 spec.policy.maxMemoryMiB = 4096"
    );
    let e = denied(&p, &request(json!({"resources": {"swapMiB": 2048}})));
    assert_eq!(
        (e.field.as_str(), e.rule.as_str()),
        ("spec.resources.swapMiB", &*e_rule("maxSwapMiB = 1024"))
    );
    // Unset memory is Proxmox's 512 MiB, which a smaller maximum refuses.
    let tiny = policy(json!({"maxMemoryMiB": 256}));
    assert_eq!(denied(&tiny, &request(json!({}))).asked, "512");
    assert_eq!(
        denied(&tiny, &request_from(json!({}), json!({"memoryMiB": 1024}))).asked,
        "1024"
    );
}

#[test]
fn disk_counts_the_root_filesystem_and_every_volume() {
    let p = policy(json!({"maxDiskGiB": 32}));
    let fits = request(json!({"rootfs": {"sizeGiB": 8}, "mountPoints": [
        {"path": "/a", "sizeGiB": 16}, {"path": "/b", "sizeGiB": 8}
    ]}));
    allowed(&p, &fits);
    let over = request(json!({"rootfs": {"sizeGiB": 8}, "mountPoints": [
        {"path": "/a", "sizeGiB": 16}, {"path": "/b", "sizeGiB": 9}
    ]}));
    let e = denied(&p, &over);
    assert_eq!(
        e.to_string(),
        "spec.rootfs.sizeGiB + spec.mountPoints[*].sizeGiB: 33 GiB in all is not allowed by \
         ProxmoxNode pve1 spec.policy.maxDiskGiB = 32"
    );
    // The template's (or Proxmox's 4 GiB) root filesystem size counts when the spec names none.
    let e = denied(&policy(json!({"maxDiskGiB": 3})), &request(json!({})));
    assert_eq!(e.asked, "4 GiB in all");
    assert_eq!(
        denied(&p, &request_from(json!({}), json!({"rootfsSizeGiB": 40}))).asked,
        "40 GiB in all"
    );
}

#[test]
fn a_volume_without_a_size_limit_is_denied_under_a_disk_maximum() {
    let mut desired = request(json!({}));
    desired.mount_points.push(Volume {
        volume: "local-lvm:0".into(),
        mp: Some("/data".into()),
        ..Default::default()
    });
    let e = denied(&policy(json!({"maxDiskGiB": 100})), &desired);
    assert_eq!(e.field, "spec.mountPoints[0].sizeGiB");
    allowed(&NodePolicy::default(), &desired);
    // An allocated volume reports its size in `size=`.
    desired.mount_points[0] = Volume {
        volume: "local-lvm:vm-1000-disk-1".into(),
        size: Some("50G".into()),
        ..Default::default()
    };
    allowed(&policy(json!({"maxDiskGiB": 54})), &desired);
    assert_eq!(
        denied(&policy(json!({"maxDiskGiB": 53})), &desired).asked,
        "54 GiB in all"
    );
}

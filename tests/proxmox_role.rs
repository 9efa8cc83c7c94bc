//! `infra/proxmox-role.sh`: the Proxmox privileges it grants are no more than the test world's
//! operator token holds, and enough: a container goes through create, resize, memory and CPU
//! changes, stop and start, migration and deletion with a token holding exactly the script's
//! grants (pve-sim checks every privilege as Proxmox VE does).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use pve_sim::config::{AclEntry, Config, VM_CONFIG_PRIVS};
use serde_json::json;
use support::{World, vmid};

/// The token's ACL entries the script's `pveum` commands grant.
fn script_token_acl() -> Vec<AclEntry> {
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/proxmox-role.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut acl = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let flag = |name: &str| {
            words
                .iter()
                .position(|w| *w == name)
                .map(|i| words[i + 1].trim_matches('\'').to_string())
        };
        match words.get(..3) {
            Some(["pveum", "role", "add"]) => {
                let privs = flag("--privs").unwrap();
                roles.insert(words[3].into(), privs.split(',').map(String::from).collect());
            }
            Some(["pveum", "acl", "modify"]) if flag("--tokens").is_some() => {
                assert_eq!(flag("--tokens").as_deref(), Some("lxc-operator@pve!operator"));
                acl.push(AclEntry {
                    path: words[3].into(),
                    privs: roles[&flag("--roles").unwrap()].clone(),
                    propagate: flag("--propagate").as_deref() == Some("1"),
                });
            }
            _ => {}
        }
    }
    assert!(!acl.is_empty(), "the script grants the token something:\n{text}");
    acl
}

/// (path, propagate, privilege) triples, `VM.Config.*` expanded.
fn grants(acl: &[AclEntry]) -> BTreeSet<(String, bool, String)> {
    acl.iter()
        .flat_map(|e| {
            e.privs.iter().flat_map(move |p| {
                let expanded: Vec<String> = if p == "VM.Config.*" {
                    VM_CONFIG_PRIVS.iter().map(|s| s.to_string()).collect()
                } else {
                    vec![p.clone()]
                };
                expanded
                    .into_iter()
                    .map(move |p| (e.path.clone(), e.propagate, p))
            })
        })
        .collect()
}

#[tokio::test]
async fn the_scripts_privileges_are_narrow_and_enough_for_a_containers_life() {
    let acl = script_token_acl();
    let world = grants(&Config::default().tokens[0].acl);
    let script = grants(&acl);
    let extra: Vec<_> = script.difference(&world).collect();
    assert!(
        extra.is_empty(),
        "granted beyond the test world's token: {extra:?}"
    );
    assert!(
        !script
            .iter()
            .any(|(_, _, p)| p == "Sys.Modify" || p.starts_with("VM.Snapshot"))
    );

    let w = World::new("pverole", &["pve1", "pve2"], move |mut c| {
        c.tokens[0].acl = acl;
        c
    })
    .await;
    let (a, b) = (w.nodes[0].clone(), w.nodes[1].clone());
    w.container(
        "life",
        json!({"nodeRef": a, "network": [{"name": "eth0"}], "resources": {"memoryMiB": 256, "cores": 1},
               "updateStrategy": {"restartAllowed": true}}),
    )
    .await;
    let id = vmid(&w.ready("life").await);
    w.patch_spec(
        "life",
        json!({"resources": {"memoryMiB": 384, "cores": 2}, "rootfs": {"sizeGiB": 6}}),
    )
    .await;
    w.ready("life").await;
    let config = w.config("pve1", id).await;
    assert_eq!(
        (config.get("memory"), config.get("cores")),
        (Some("384"), Some("2"))
    );
    w.patch_spec("life", json!({"powerState": "Stopped"})).await;
    w.ready("life").await;
    assert_eq!(w.sim.admin().container(id).unwrap().status, "stopped");
    w.patch_spec("life", json!({"powerState": "Running", "nodeRef": b}))
        .await;
    w.wait("life", "running on pve2", 60, |ct| {
        ct.status.as_ref().is_some_and(|s| {
            s.node.as_deref() == Some(b.as_str())
                && s.observed_generation == ct.metadata.generation
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await;
    let info = w.sim.admin().container(id).unwrap();
    assert_eq!((info.node.as_str(), info.status.as_str()), ("pve2", "running"));
    w.delete("life").await;
    assert!(w.sim.admin().container(id).is_none(), "destroyed in Proxmox");

    let refused: Vec<String> = w
        .sim
        .admin()
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(refused.is_empty(), "Proxmox refused: {refused:?}");
}

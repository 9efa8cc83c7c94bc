//! The LxcContainer pipeline end to end: a real API server, Postgres audit, Redis locks and
//! pve-sim. Every test has its own namespace, simulator, nodes and template; one controller
//! set serves them all, as one leader would.

// This test acts on Proxmox (or the audit trail) directly, behind the operator's back; the
// operator itself may only do so through controllers::act::Actor (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use lxc_operator::pipeline::ownership::{OWNER_TAG, parse_tags};
use lxc_operator::proxmox::property::{Net, Volume};
use serde_json::json;
use support::{World, reason, vmid};

#[tokio::test]
async fn every_field_reaches_proxmox_and_changes_in_place() {
    let w = World::new("fields", &["pve1"], |c| c).await;
    let node = w.nodes[0].clone();
    w.container(
        "app",
        json!({
            "nodeRef": node, "hostname": "app-1", "onBoot": true,
            "resources": {"cores": 2, "cpuLimit": 1.5, "cpuUnits": 512, "memoryMiB": 1024, "swapMiB": 256},
            "rootfs": {"sizeGiB": 8},
            "mountPoints": [{"path": "/srv/data", "sizeGiB": 2, "backup": true}],
            "network": [{"name": "eth0", "vlan": 20, "firewall": true, "mtu": 1400,
                         "ipv4": {"mode": "Static", "address": "192.168.20.10/24", "gateway": "192.168.20.1"}}],
            "dns": {"nameservers": ["192.168.20.1"], "searchDomain": "lab.example.org"},
            "features": {"nesting": true},
            "startup": {"order": 3, "upDelaySeconds": 5},
            "tags": ["app"], "description": "the app"
        }),
    )
    .await;
    let ct = w.ready("app").await;
    let st = ct.status.clone().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Ready"));
    assert_eq!(st.node.as_deref(), Some(node.as_str()));
    assert_eq!(st.ip.as_deref(), Some("192.168.20.10"));
    let id = vmid(&ct);
    assert!((200..=299).contains(&id), "VMID {id} inside the node's range");
    let cfg = w.config("pve1", id).await;
    let get = |k: &str| {
        cfg.get(k)
            .unwrap_or_else(|| panic!("{k} missing in {cfg:?}"))
            .to_string()
    };
    assert_eq!(get("hostname"), "app-1");
    assert_eq!(
        (get("cores"), get("memory"), get("swap")),
        ("2".into(), "1024".into(), "256".into())
    );
    assert_eq!((get("cpulimit"), get("cpuunits")), ("1.5".into(), "512".into()));
    assert_eq!(get("onboot"), "1");
    assert_eq!(get("nameserver"), "192.168.20.1");
    assert_eq!(get("searchdomain"), "lab.example.org");
    assert_eq!(get("features"), "nesting=1");
    assert_eq!(get("startup"), "order=3,up=5");
    assert_eq!(get("unprivileged"), "1");
    let net = Net::parse(&get("net0")).unwrap();
    assert_eq!(
        (
            net.bridge.as_deref(),
            net.tag,
            net.firewall,
            net.mtu,
            net.ip.as_deref(),
            net.gw.as_deref()
        ),
        (
            Some("vmbr0"),
            Some(20),
            Some(true),
            Some(1400),
            Some("192.168.20.10/24"),
            Some("192.168.20.1")
        )
    );
    let mac = net.hwaddr.clone().expect("Proxmox generated a MAC");
    assert_eq!(Volume::parse(&get("rootfs")).unwrap().size_gib(), Some(8));
    let mp0 = Volume::parse(&get("mp0")).unwrap();
    assert_eq!(
        (mp0.mp.as_deref(), mp0.size_gib(), mp0.backup),
        (Some("/srv/data"), Some(2), Some(true))
    );
    let tags: BTreeSet<String> = parse_tags(&get("tags")).into_iter().collect();
    let uid_tag = lxc_operator::pipeline::ownership::uid_tag(ct.metadata.uid.as_deref().unwrap());
    assert_eq!(
        tags,
        ["app", "base", OWNER_TAG, &uid_tag].map(String::from).into(),
        "spec + template + owner tags (the owner tag and the uid tag)"
    );
    assert!(get("description").starts_with("the app"));
    let creates = w.creates("pve1");
    assert_eq!(creates, 1, "one create call");

    // Everything that can change in place changes in place; the MAC stays.
    w.patch_spec(
        "app",
        json!({"hostname": "app-2", "onBoot": false,
               "resources": {"cores": 4, "memoryMiB": 2048, "cpuLimit": 2},
               "rootfs": {"sizeGiB": 10},
               "mountPoints": [{"path": "/srv/data", "sizeGiB": 3, "backup": true},
                               {"path": "/srv/logs", "sizeGiB": 1}],
               "network": [{"name": "eth0", "vlan": 30, "firewall": false, "mtu": 1400,
                            "ipv4": {"mode": "Static", "address": "192.168.30.10/24", "gateway": "192.168.30.1"}},
                           {"name": "eth1", "ipv4": {"mode": "Dhcp"}}],
               "startup": {"order": 4, "upDelaySeconds": null},
               "tags": ["app", "v2"], "description": "the app, v2"}),
    )
    .await;
    let ct = w.ready("app").await;
    assert_eq!(vmid(&ct), id, "same container");
    let cfg = w.config("pve1", id).await;
    let get = |k: &str| {
        cfg.get(k)
            .unwrap_or_else(|| panic!("{k} missing in {cfg:?}"))
            .to_string()
    };
    assert_eq!(
        (get("hostname"), get("cores"), get("memory")),
        ("app-2".into(), "4".into(), "2048".into())
    );
    assert_eq!(
        (get("cpulimit"), get("onboot"), get("startup")),
        ("2".into(), "0".into(), "order=4".into())
    );
    let net = Net::parse(&get("net0")).unwrap();
    assert_eq!(
        (net.tag, net.ip.as_deref(), net.hwaddr.as_deref()),
        (Some(30), Some("192.168.30.10/24"), Some(mac.as_str()))
    );
    assert_eq!(Net::parse(&get("net1")).unwrap().ip.as_deref(), Some("dhcp"));
    assert_eq!(Volume::parse(&get("rootfs")).unwrap().size_gib(), Some(10));
    assert_eq!(Volume::parse(&get("mp0")).unwrap().size_gib(), Some(3));
    assert_eq!(
        Volume::parse(&get("mp1")).unwrap().mp.as_deref(),
        Some("/srv/logs")
    );
    assert!(parse_tags(&get("tags")).contains(&"v2".to_string()));
    assert!(get("description").starts_with("the app, v2"));
    let addrs: Vec<String> = ct
        .status
        .unwrap()
        .addresses
        .iter()
        .map(|a| format!("{}={}", a.interface, a.address))
        .collect();
    assert!(addrs.contains(&"eth0=192.168.30.10/24".to_string()), "{addrs:?}");
    assert!(
        addrs.iter().any(|a| a.starts_with("eth1=")),
        "DHCP address discovered: {addrs:?}"
    );

    // A change Proxmox applies only when stopped waits for a restart the strategy forbids...
    w.patch_spec(
        "app",
        json!({"dns": {"nameservers": ["9.9.9.9"], "searchDomain": "lab.example.org"}}),
    )
    .await;
    let ct = w
        .wait("app", "report a pending change", 30, |ct| {
            ct.status
                .as_ref()
                .is_some_and(|s| s.pending_changes == ["nameserver"])
                && reason(ct, "Stalled").as_deref() == Some("RestartRequired")
        })
        .await;
    assert_eq!(reason(&ct, "Configured").as_deref(), Some("RestartRequired"));
    assert_eq!(w.config("pve1", id).await.get("nameserver"), Some("192.168.20.1"));
    // ...and is applied by a controlled restart once allowed.
    w.patch_spec(
        "app",
        json!({"updateStrategy": {"restartAllowed": true, "shutdownTimeoutSeconds": 5}}),
    )
    .await;
    let ct = w.ready("app").await;
    assert!(ct.status.as_ref().unwrap().pending_changes.is_empty());
    assert_eq!(w.config("pve1", id).await.get("nameserver"), Some("9.9.9.9"));
    assert_eq!(
        w.sim.admin().container(id).unwrap().status,
        "running",
        "started again"
    );

    // Power off and on.
    w.patch_spec("app", json!({"powerState": "Stopped"})).await;
    let ct = w.ready("app").await;
    assert_eq!(ct.status.as_ref().unwrap().phase.as_deref(), Some("Stopped"));
    assert_eq!(w.sim.admin().container(id).unwrap().status, "stopped");
    w.patch_spec("app", json!({"powerState": "Running"})).await;
    w.ready("app").await;
    assert_eq!(w.sim.admin().container(id).unwrap().status, "running");

    // Every mutating call has its audit record, with an outcome.
    let trail = support::audit()
        .await
        .by_object(ct.metadata.uid.as_deref().unwrap(), 200)
        .await
        .unwrap();
    let ops: BTreeSet<&str> = trail.iter().map(|r| r.intent.operation.as_str()).collect();
    for op in [
        "create container",
        "update container config",
        "resize container disk",
        "start container",
        "shutdown container",
    ] {
        assert!(ops.contains(op), "audit lacks {op}: {ops:?}");
    }
    assert!(
        trail.iter().all(|r| r.outcome.is_some()),
        "every intent has its outcome"
    );
    let writes = w.operator_writes(id).len();
    assert_eq!(
        writes,
        trail.len(),
        "every mutating request is audited, and only those"
    );
}

#[tokio::test]
async fn node_change_migrates_and_deletion_follows_the_policy() {
    let w = World::new("move", &["pve1", "pve2"], |c| c).await;
    let (a, b) = (w.nodes[0].clone(), w.nodes[1].clone());
    w.container("mover", json!({"nodeRef": a, "network": [{"name": "eth0"}]}))
        .await;
    w.container(
        "keeper",
        json!({"nodeRef": a, "deletionPolicy": "Retain", "description": "keep me"}),
    )
    .await;
    let ct = w.ready("mover").await;
    let id = vmid(&ct);
    assert_eq!(w.sim.admin().container(id).unwrap().node, "pve1");
    w.patch_spec("mover", json!({"nodeRef": b})).await;
    let ct = w
        .wait("mover", "move to pve2", 60, |ct| {
            ct.status.as_ref().and_then(|s| s.node.as_deref()) == Some(b.as_str())
                && ct.status.as_ref().is_some_and(|s| {
                    s.observed_generation == ct.metadata.generation
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        })
        .await;
    assert_eq!(vmid(&ct), id, "same VMID after the move");
    let info = w.sim.admin().container(id).unwrap();
    assert_eq!((info.node.as_str(), info.status.as_str()), ("pve2", "running"));
    let requests = w.sim.admin().requests();
    let migrations = requests
        .iter()
        .filter(|r| r.path.ends_with("/migrate") && r.status == 200)
        .count();
    let creates = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/lxc") && r.status == 200)
        .count();
    assert_eq!(
        (migrations, creates),
        (1, 2),
        "moved once, never recreated (2 creates: mover and keeper)"
    );

    // Delete: stopped, destroyed, gone, and the object goes.
    w.delete("mover").await;
    assert!(w.sim.admin().container(id).is_none(), "destroyed in Proxmox");
    // Retain: the container stays, without the marker.
    let keeper = w.ready("keeper").await;
    let kid = vmid(&keeper);
    w.delete("keeper").await;
    let info = w.sim.admin().container(kid).expect("retained");
    assert_eq!(info.status, "running");
    let cfg = w.config("pve1", kid).await;
    let left = parse_tags(cfg.get("tags").unwrap_or_default());
    assert!(
        !left.iter().any(|t| t == OWNER_TAG || t.starts_with("lxcop-")),
        "no operator tag left: {left:?}"
    );
    assert_eq!(cfg.get("description").map(str::trim_end), Some("keep me"));
}

#[tokio::test]
async fn a_foreign_container_on_the_wanted_vmid_is_left_untouched() {
    let w = World::new("foreign", &["pve1"], |c| c).await;
    w.hand_made(250).await;
    let before = w.config("pve1", 250).await;
    w.container("squatter", json!({"nodeRef": w.nodes[0], "vmid": 250}))
        .await;
    let ct = w
        .wait("squatter", "stall on the conflict", 60, |ct| {
            reason(ct, "Stalled").as_deref() == Some("Conflict")
        })
        .await;
    let st = ct.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    let created = st.conditions.iter().find(|c| c.type_ == "Created").unwrap();
    assert!(
        created.message.contains("did not create") && created.message.contains("250"),
        "{}",
        created.message
    );
    assert_eq!(
        w.config("pve1", 250).await,
        before,
        "config untouched (digest included)"
    );
    assert_eq!(
        w.operator_writes(250),
        Vec::<String>::new(),
        "no mutating call on VMID 250"
    );
    assert!(w.events("squatter").await.iter().any(|(r, _)| r == "Conflict"));
    // Deleting the object leaves the foreign container alone.
    w.delete("squatter").await;
    assert!(w.sim.admin().container(250).is_some());
    assert_eq!(w.operator_writes(250), Vec::<String>::new());
}

#[tokio::test]
async fn a_chosen_vmid_taken_before_the_create_is_given_up_for_another() {
    // The operator chose VMID 250 (recorded in status, nothing created yet) and someone made a
    // guest there before the create: without spec.vmid that is a lost race, not a conflict.
    let w = World::new("raced", &["pve1"], |c| c).await;
    w.hand_made(250).await;
    let before = w.config("pve1", 250).await;
    // Held at Resolve by a template that does not exist yet, while its status gets the VMID
    // (written as the operator writes it, so the operator's own apply can clear it).
    let template = format!("{}-later", w.ns);
    w.container("racer", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    w.wait("racer", "wait for its template", 30, |ct| {
        reason(ct, "Resolved").as_deref() == Some("TemplateNotFound")
    })
    .await;
    w.api()
        .patch_status(
            "racer",
            &kube::api::PatchParams::apply("lxc-operator").force(),
            &kube::api::Patch::Apply(json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1",
                "kind": "LxcContainer", "status": {"vmid": 250}})),
        )
        .await
        .unwrap();
    let mut t = serde_json::to_value(w.template().await).unwrap();
    t["metadata"] = json!({"name": template});
    t.as_object_mut().unwrap().remove("status");
    support::apply(&w.kube, t).await;
    let ct = w.ready("racer").await;
    assert_ne!(vmid(&ct), 250, "another VMID");
    assert!(w.sim.admin().container(vmid(&ct)).is_some());
    assert!(
        w.events("racer").await.iter().any(|(r, _)| r == "VmidTaken"),
        "the lost race is told"
    );
    assert_eq!(w.config("pve1", 250).await, before, "the other guest untouched");
    assert_eq!(w.operator_writes(250), Vec::<String>::new());
    assert_eq!(
        w.creates("pve1"),
        2,
        "the hand-made one, and one create on the new VMID"
    );
    w.delete("racer").await;
    assert!(w.sim.admin().container(250).is_some());
}

#[tokio::test]
async fn nodes_of_one_cluster_share_one_vmid_space_whatever_their_endpoint() {
    let w = World::new("onespace", &["pve1", "pve2"], |c| c).await;
    // A second way into the same cluster: another endpoint (same server, other host name).
    let other = w.sim.url().replace("127.0.0.1", "localhost");
    assert_ne!(other, w.sim.url());
    let third = format!("{}-pve2-b", w.ns);
    support::apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode",
            "metadata": {"name": third},
            "spec": {"endpoint": other, "nodeName": "pve2", "pollIntervalSeconds": 5,
                     "credentialsSecretRef": {"name": "token", "namespace": w.ns},
                     "tls": {"fingerprintSha256": w.sim.fingerprint_sha256()},
                     "vmidRange": {"min": 200, "max": 299}}}),
    )
    .await;
    let nodes = kube::Api::<lxc_operator::crd::ProxmoxNode>::all(w.kube.clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut spaces = Vec::new();
        for n in [&w.nodes[0], &third] {
            spaces.push(nodes.get(n).await.unwrap().status.and_then(|s| s.cluster_name));
        }
        if spaces.iter().all(|s| s.as_deref() == Some("pve-sim")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster names: {spaces:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Allocations through both endpoints at once share one lock: no two pick one VMID.
    let names: Vec<String> = (0..8).map(|i| format!("ct-{i}")).collect();
    futures::future::join_all(names.iter().enumerate().map(|(i, n)| {
        let node = if i % 2 == 0 {
            w.nodes[0].clone()
        } else {
            third.clone()
        };
        w.container(n, json!({"nodeRef": node}))
    }))
    .await;
    let mut vmids = std::collections::BTreeSet::new();
    for n in &names {
        vmids.insert(vmid(&w.ready(n).await));
    }
    assert_eq!(vmids.len(), names.len(), "distinct VMIDs: {vmids:?}");
    let refused = w
        .sim
        .admin()
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/lxc") && r.status != 200)
        .count();
    assert_eq!(
        refused, 0,
        "no create refused on a VMID taken through the other endpoint"
    );
    for n in &names {
        assert!(
            w.events(n).await.iter().all(|(r, _)| r != "VmidTaken"),
            "{n} lost no race"
        );
    }
}

#[tokio::test]
async fn twenty_containers_over_three_nodes_get_distinct_vmids() {
    let w = World::new("many", &["pve1", "pve2", "pve3"], |c| c).await;
    let selector = json!({"site": w.ns});
    let names: Vec<String> = (0..20).map(|i| format!("ct-{i:02}")).collect();
    let started = std::time::Instant::now();
    futures::future::join_all(names.iter().map(|n| {
        w.container(
            n,
            json!({"nodeSelector": selector, "resources": {"memoryMiB": 256}, "network": [{"name": "eth0"}]}),
        )
    }))
    .await;
    let mut vmids = BTreeSet::new();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for n in &names {
        let ct = w.ready(n).await;
        vmids.insert(vmid(&ct));
        *per_node.entry(ct.status.unwrap().node.unwrap()).or_default() += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(vmids.len(), 20, "no VMID clash: {vmids:?}");
    assert_eq!(w.sim.admin().containers().len(), 20, "no duplicate container");
    assert_eq!(per_node.len(), 3, "spread over the three nodes: {per_node:?}");
    let calls: Vec<usize> = vmids
        .iter()
        .map(|v| w.sim.admin().count_requests_for(*v))
        .collect();
    let writes: Vec<usize> = vmids.iter().map(|v| w.operator_writes(*v).len()).collect();
    let mut by_endpoint: BTreeMap<String, usize> = BTreeMap::new();
    for r in w.sim.admin().requests() {
        if r.vmid.is_some_and(|v| vmids.contains(&v)) {
            let path = r.path.replace(&r.vmid.unwrap().to_string(), "{vmid}");
            let path = path
                .split('/')
                .map(|p| if p.starts_with("pve") { "{node}" } else { p })
                .collect::<Vec<_>>()
                .join("/");
            *by_endpoint.entry(format!("{} {path}", r.method)).or_default() += 1;
        }
    }
    println!("per endpoint (20 containers): {by_endpoint:#?}");
    println!(
        "20 containers Ready in {:.1}s over {per_node:?}; pve-sim calls per container: min {} avg {:.1} max {}; \
         mutating calls per container: min {} max {}; total requests {}",
        elapsed.as_secs_f64(),
        calls.iter().min().unwrap(),
        calls.iter().sum::<usize>() as f64 / 20.0,
        calls.iter().max().unwrap(),
        writes.iter().min().unwrap(),
        writes.iter().max().unwrap(),
        w.sim.admin().requests().len()
    );
    assert!(
        writes.iter().all(|n| *n == 2),
        "create + start per container, nothing else: {writes:?}"
    );
    // Issue 17's budget (at most 8 calls per container besides task polls) is a performance
    // figure: `lxc-scale-bench` measures it. Here it is printed (4-5 when this test runs alone;
    // under the whole binary's load, polls that show a just-started container late wake it for
    // more reads), and what must hold at any load is asserted: one create and one start each
    // (above) and no nextid (below).
    assert!(
        !by_endpoint.contains_key("GET /cluster/nextid"),
        "the create's own answer confirms a VMID: {by_endpoint:#?}"
    );
    // Steady state: the three ProxmoxNodes reach one endpoint; each polls its node, the
    // cluster-wide reads are made once a round, and a Ready container is only read: by the config
    // sweep (40 s interval, three reads) or once more for a late status, never written.
    let count = |path: &str| {
        w.sim
            .admin()
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with(path))
            .count()
    };
    let seq = w.sim.admin().requests().len();
    let (resources, statuses) = (count("/cluster/resources"), count("/nodes/pve"));
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let resources = count("/cluster/resources") - resources;
    let statuses = count("/nodes/pve") - statuses;
    let window: Vec<_> = w.sim.admin().requests().into_iter().skip(seq).collect();
    let mut per_ct: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for r in window
        .iter()
        .filter(|r| r.vmid.is_some_and(|v| vmids.contains(&v)))
    {
        per_ct
            .entry(r.vmid.unwrap())
            .or_default()
            .push(format!("{} {}", r.method, r.path));
    }
    println!(
        "steady 11 s: /cluster/resources {resources}, node reads {statuses}, containers read {per_ct:?}"
    );
    assert!(statuses >= 6, "each node polled at least twice: {statuses}");
    assert!(
        resources * 3 <= statuses,
        "one cluster-wide read per round, not one per node: {resources} vs {statuses} node reads"
    );
    assert!(
        per_ct
            .values()
            .all(|calls| calls.iter().all(|c| c.starts_with("GET "))),
        "a Ready container is only read (the sweep, a late status), never written: {per_ct:#?}"
    );
    // The API server, as the operator used it (the whole test binary: every test shares one
    // operator): reconciles read nodes and templates from the watch caches, never by GET.
    let reconciles = support::RECONCILES
        .lock()
        .unwrap()
        .get("LxcContainer")
        .copied()
        .unwrap_or(1);
    let api = support::API_REQUESTS.lock().unwrap().clone();
    let non_watch: u64 = api
        .iter()
        .filter(|((verb, _), _)| verb != "watch")
        .map(|(_, n)| n)
        .sum();
    println!(
        "API-server requests (not watches) per LxcContainer reconcile: {:.2} over {reconciles} reconciles; {api:?}",
        non_watch as f64 / reconciles as f64
    );
    for resource in ["proxmoxnodes", "lxctemplates"] {
        assert_eq!(
            support::api_requests("get", resource),
            0,
            "{resource} read from the cache: {api:?}"
        );
    }
}

#[tokio::test]
async fn drift_is_corrected_and_a_vanished_container_comes_back() {
    let w = World::new("drift", &["pve1"], |c| c).await;
    w.container(
        "steady",
        json!({"nodeRef": w.nodes[0], "resources": {"memoryMiB": 768}, "network": [{"name": "eth0"}]}),
    )
    .await;
    let ct = w.ready("steady").await;
    let id = vmid(&ct);
    let uid = ct.metadata.uid.clone().unwrap();
    let root = w.root();
    // Behind the operator's back: memory changed, swap set (the spec leaves swap unset), stopped.
    let cfg = root.container_config("pve1", id).await.unwrap();
    root.update_container_config(
        "pve1",
        id,
        &cfg.digest,
        vec![("memory".into(), "256".into()), ("swap".into(), "64".into())],
        &[],
    )
    .await
    .unwrap();
    let upid = root
        .container_power("pve1", id, lxc_operator::proxmox::api::PowerAction::Stop)
        .await
        .unwrap();
    root.wait_task(&upid, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    w.wait("steady", "correct the drift", 40, |_| {
        w.sim.admin().container(id).is_some_and(|c| c.status == "running")
    })
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while w.config("pve1", id).await.get("memory") != Some("768") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let cfg = w.config("pve1", id).await;
    assert_eq!(cfg.get("memory"), Some("768"), "memory drift corrected");
    assert_eq!(
        cfg.get("swap"),
        Some("64"),
        "a field the spec leaves unset is not fought"
    );
    w.ready("steady").await;
    let events = w.events("steady").await;
    assert!(events.iter().any(|(r, _)| r == "DriftCorrected"), "{events:?}");
    let trail = support::audit().await.by_object(&uid, 100).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|r| r.intent.operation == "update container config"
                && r.intent.params.to_string().contains("768")),
        "the correction is audited"
    );

    // Deleted behind our back: recreated on the same VMID, and reported. (The operator may
    // start it again between our stop and destroy: repeat until the destroy goes through.)
    for attempt in 0.. {
        let stop = root
            .container_power("pve1", id, lxc_operator::proxmox::api::PowerAction::Stop)
            .await;
        if let Ok(upid) = stop {
            let _ = root.wait_task(&upid, std::time::Duration::from_secs(10)).await;
        }
        match root.destroy_container("pve1", id).await {
            Ok(upid) => {
                root.wait_task(&upid, std::time::Duration::from_secs(10))
                    .await
                    .unwrap();
                break;
            }
            Err(e) if attempt < 20 => eprintln!("destroy refused ({e}); again"),
            Err(e) => {
                let log: Vec<String> = w
                    .sim
                    .admin()
                    .requests()
                    .iter()
                    .rev()
                    .take(40)
                    .map(|r| format!("{} {} {} {:?}", r.method, r.path, r.status, r.identity))
                    .collect();
                panic!(
                    "could not destroy behind the operator's back: {e}\n{}",
                    log.join("\n")
                )
            }
        }
    }
    w.wait("steady", "be recreated", 40, |_| {
        w.sim.admin().container(id).is_some_and(|c| c.status == "running")
    })
    .await;
    let ct = w.ready("steady").await;
    assert_eq!(vmid(&ct), id, "same VMID");
    let events = w.events("steady").await;
    assert!(events.iter().any(|(r, _)| r == "Recreating"), "{events:?}");
}

#[tokio::test]
async fn missing_pieces_are_named_and_picked_up_when_they_appear() {
    let w = World::new("missing", &["pve1"], |c| c).await;
    w.container("early", json!({"nodeRef": "no-such-node"})).await;
    let ct = w
        .wait("early", "name the missing node", 20, |ct| {
            reason(ct, "Resolved").as_deref() == Some("NodeNotFound")
        })
        .await;
    let resolved = ct
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Resolved")
        .unwrap();
    assert!(resolved.message.contains("no-such-node"), "{}", resolved.message);
    assert_eq!(
        reason(&w.api().get("early").await.unwrap(), "Ready").as_deref(),
        Some("NodeNotFound")
    );
    // A template that does not exist yet, then appears: the watch brings the container on.
    w.container(
        "later",
        json!({"nodeRef": w.nodes[0], "templateRef": "tmpl-later"}),
    )
    .await;
    w.wait("later", "name the missing template", 20, |ct| {
        reason(ct, "Resolved").as_deref() == Some("TemplateNotFound")
    })
    .await;
    let mut t = serde_json::to_value(w.template().await).unwrap();
    t["metadata"] = json!({"name": "tmpl-later"});
    t.as_object_mut().unwrap().remove("status");
    support::apply(&w.kube, t).await;
    w.ready("later").await;
    // A namespace the node does not allow.
    kube::Api::<lxc_operator::crd::ProxmoxNode>::all(w.kube.clone())
        .patch(
            &w.nodes[0],
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"allowedNamespaces": ["somewhere-else"]}})),
        )
        .await
        .unwrap();
    w.container("fenced", json!({"nodeRef": w.nodes[0]})).await;
    w.wait("fenced", "be refused by namespace", 20, |ct| {
        reason(ct, "Resolved").as_deref() == Some("NamespaceNotAllowed")
    })
    .await;
    assert!(w.sim.admin().containers().len() == 1, "only `later` was created");
}

#[tokio::test]
async fn proxmox_faults_end_in_convergence_without_duplicates() {
    use pve_sim::faults::{ErrorKind, ErrorRule, LatencyRule, Match};
    let w = World::new("faults", &["pve1"], |c| c).await;
    let admin = w.sim.admin();
    admin.add_error_rule(ErrorRule {
        on: Match {
            path_prefix: "/nodes/pve1/lxc".into(),
            method: None,
        },
        rate: 0.25,
        kind: ErrorKind::Unavailable,
        message: None,
    });
    admin.add_latency(LatencyRule {
        on: Match {
            path_prefix: "/".into(),
            method: None,
        },
        ms: 40,
    });
    // The first VMID the allocator will pick is held locked for a while.
    admin.lock_ct(pve_sim::admin::LockRequest {
        vmid: 200,
        seconds: 3.0,
        lock: None,
    });
    let names = ["f-1", "f-2", "f-3", "f-4"];
    for n in names {
        w.container(n, json!({"nodeRef": w.nodes[0], "network": [{"name": "eth0"}]}))
            .await;
    }
    let mut vmids = BTreeSet::new();
    for n in names {
        vmids.insert(vmid(&w.ready(n).await));
    }
    assert_eq!(vmids.len(), 4);
    assert_eq!(w.sim.admin().containers().len(), 4, "no duplicate");
    let injected = w
        .sim
        .admin()
        .requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert!(injected > 0, "faults were injected");
    for id in vmids {
        let creates = w
            .sim
            .admin()
            .requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && r.path == "/nodes/pve1/lxc" && r.vmid == Some(id) && r.status == 200
            })
            .count();
        assert_eq!(creates, 1, "VMID {id} created once");
    }
}

#[tokio::test]
async fn what_the_node_policy_does_not_allow_ends_before_any_proxmox_call() {
    let w = World::new("policy", &["pve1"], |c| c).await;
    kube::Api::<lxc_operator::crd::ProxmoxNode>::all(w.kube.clone())
        .patch(
            &w.nodes[0],
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"policy": {"maxMemoryMiB": 1024}}})),
        )
        .await
        .unwrap();
    let node = json!(w.nodes[0]);
    let lxc_calls = || {
        w.sim
            .admin()
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/nodes/pve1/lxc") || r.path.starts_with("/cluster/nextid"))
            .count()
    };
    let before = lxc_calls();
    // Too much memory, and (by the safe default) a privileged container.
    w.container(
        "greedy",
        json!({"nodeRef": node, "resources": {"memoryMiB": 2048}}),
    )
    .await;
    w.container("privileged", json!({"nodeRef": node, "unprivileged": false}))
        .await;
    let greedy = w
        .wait("greedy", "be denied by the policy", 20, |ct| {
            reason(ct, "Resolved").as_deref() == Some("PolicyDenied")
        })
        .await;
    let message = condition_message(&greedy, "Resolved");
    assert!(
        message.contains("spec.resources.memoryMiB") && message.contains("maxMemoryMiB = 1024"),
        "names the field and the rule: {message}"
    );
    assert_eq!(reason(&greedy, "Stalled").as_deref(), Some("PolicyDenied"));
    let privileged = w
        .wait("privileged", "be denied by the policy", 20, |ct| {
            reason(ct, "Resolved").as_deref() == Some("PolicyDenied")
        })
        .await;
    assert!(condition_message(&privileged, "Resolved").contains("allowPrivileged"));
    assert_eq!(lxc_calls(), before, "no Proxmox call about a denied container");
    assert!(w.sim.admin().containers().is_empty());
    assert!(
        greedy.status.as_ref().and_then(|s| s.vmid).is_none(),
        "not even a VMID"
    );
    // Within the policy, it goes through.
    w.patch_spec("greedy", json!({"resources": {"memoryMiB": 512}}))
        .await;
    w.ready("greedy").await;
}

fn condition_message(ct: &lxc_operator::crd::LxcContainer, type_: &str) -> String {
    ct.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_deleted_node_waits_for_its_containers_and_holds_its_secret() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, DeleteParams};
    use lxc_operator::crd::ProxmoxNode;

    let w = World::new("nodedel", &["pve1"], |c| c).await;
    let node = w.nodes[0].clone();
    let nodes = Api::<ProxmoxNode>::all(w.kube.clone());
    let secrets = Api::<Secret>::namespaced(w.kube.clone(), &w.ns);
    w.container("stays", json!({"nodeRef": node})).await;
    let ct = w.ready("stays").await;
    let id = vmid(&ct);
    // A cordon wakes the Ready container too: it stays Ready, and says so.
    nodes
        .patch(
            &node,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"cordoned": true}})),
        )
        .await
        .unwrap();
    w.wait("stays", "say its node is cordoned", 30, |ct| {
        ct.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Resolved" && c.message.contains("cordoned"))
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await;
    // The node and the Secret it references carry the operator's finalizers.
    assert!(
        nodes
            .get(&node)
            .await
            .unwrap()
            .finalizers()
            .contains(&"lxc.infrahaus.dev/node".into())
    );
    let token = secrets.get("token").await.unwrap();
    assert!(
        token
            .finalizers()
            .contains(&"lxc.infrahaus.dev/node-secret".into())
    );

    // Secret first, then the node (the file order of examples/): both stay.
    secrets.delete("token", &DeleteParams::default()).await.unwrap();
    nodes.delete(&node, &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let blocked = loop {
        let n = nodes.get(&node).await.expect("the node waits for its container");
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
        if let Some(c) = ready.filter(|c| c.reason == "DeletionBlocked") {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never DeletionBlocked: {:?}",
            n.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(blocked.status, "False");
    assert!(
        blocked.message.contains("1 LxcContainer ") && blocked.message.contains(&format!("{}/stays", w.ns)),
        "{}",
        blocked.message
    );
    // The container, Ready until now, hears of it.
    w.wait("stays", "told its node is being deleted", 30, |ct| {
        reason(ct, "Ready").as_deref() == Some("NodeDeleting")
    })
    .await;
    assert!(
        secrets.get_opt("token").await.unwrap().is_some(),
        "the Secret is held"
    );

    // Deleting the container still reaches Proxmox through the deleted node and its Secret.
    w.delete("stays").await;
    assert!(w.sim.admin().container(id).is_none(), "destroyed in Proxmox");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while nodes.get_opt(&node).await.unwrap().is_some() || secrets.get_opt("token").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node or Secret never went"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_secret_no_node_references_any_more_is_released() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, DeleteParams, Patch, PatchParams};
    use lxc_operator::crd::ProxmoxNode;

    let w = World::new("secretref", &["pve1"], |c| c).await;
    let secrets = Api::<Secret>::namespaced(w.kube.clone(), &w.ns);
    let held = |s: &Secret| s.finalizers().contains(&"lxc.infrahaus.dev/node-secret".into());
    let token = secrets.get("token").await.unwrap();
    let mut copy: Secret = serde_json::from_value(json!({"metadata": {"name": "token2"}})).unwrap();
    copy.data = token.data.clone();
    secrets.create(&Default::default(), &copy).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !held(&secrets.get("token").await.unwrap()) {
        assert!(tokio::time::Instant::now() < deadline, "token never held");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        !held(&secrets.get("token2").await.unwrap()),
        "no node references token2 yet"
    );
    Api::<ProxmoxNode>::all(w.kube.clone())
        .patch(
            &w.nodes[0],
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"credentialsSecretRef": {"name": "token2", "namespace": w.ns}}})),
        )
        .await
        .unwrap();
    // The new Secret is held, the old one released (and deletable at once).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while held(&secrets.get("token").await.unwrap()) || !held(&secrets.get("token2").await.unwrap()) {
        assert!(tokio::time::Instant::now() < deadline, "references never moved");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    secrets.delete("token", &DeleteParams::default()).await.unwrap();
    assert!(secrets.get_opt("token").await.unwrap().is_none());
}

#[tokio::test]
async fn a_template_that_cannot_be_downloaded_names_why_on_the_container() {
    let w = World::new("tmplwhy", &["pve1"], |c| c).await;
    // The simulator's default token lacks Sys.AccessNetwork, so the download is refused.
    let template = format!("{}-alpine", w.ns);
    support::apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
            "metadata": {"name": template},
            "spec": {"osTemplate": {"volid": "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz",
                "source": {"url": {"url": "https://images.example.org/alpine-3.20-default_20240908_amd64.tar.xz",
                    "checksum": "9d2c3c5ad7c6d5e1c1a0b9e1e7f4b0a6c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8",
                    "checksumAlgorithm": "sha256"}}}}}),
    )
    .await;
    w.container("waits", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    let ct = w
        .wait("waits", "say why the template is missing", 30, |ct| {
            reason(ct, "Resolved").as_deref() == Some("TemplateNotReady")
        })
        .await;
    let resolved = ct
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Resolved")
        .unwrap();
    assert!(
        resolved.message.contains("Sys.AccessNetwork"),
        "{}",
        resolved.message
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = w.events("waits").await;
        if events
            .iter()
            .any(|(r, m)| r == "TemplateNotReady" && m.contains("Sys.AccessNetwork"))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no Event: {events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(w.creates("pve1"), 0, "nothing created");
}

#[tokio::test]
async fn an_address_wait_after_a_restart_counts_from_that_start() {
    let w = World::new("addrwait", &["pve1"], |c| c).await;
    w.container(
        "dhcp",
        json!({"nodeRef": w.nodes[0], "network": [{"name": "eth0", "ipv4": {"mode": "Dhcp"}}]}),
    )
    .await;
    let id = vmid(&w.ready("dhcp").await);
    // Powered=True is now older than the operator's address timeout (5 s in these tests).
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    // From now on a lease takes 3 s after each start, as a real DHCP client's does.
    w.sim.admin().set_dhcp_delay(3);
    // Rebooted behind the operator's back: it never saw the container stopped, so Powered
    // stays True with its old transition time.
    let root = w.root();
    let upid = root
        .container_power("pve1", id, lxc_operator::proxmox::api::PowerAction::Reboot)
        .await
        .unwrap();
    root.wait_task(&upid, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    // Any change makes the operator look again at once, addresses included.
    w.patch_spec("dhcp", json!({"description": "rebooted"})).await;
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let ct = w
        .wait("dhcp", "be Ready with its new lease", 30, |ct| {
            if let Some(r) = reason(ct, "Discovered") {
                seen.lock().unwrap().insert(r);
            }
            ct.status.as_ref().is_some_and(|s| {
                s.observed_generation == ct.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .await;
    let seen = seen.into_inner().unwrap();
    let events = w.events("dhcp").await;
    assert!(
        !events.iter().any(|(r, _)| r == "AddressTimeout") && !seen.contains("AddressTimeout"),
        "a 3 s wait after this start is no timeout: {seen:?} {events:?}"
    );
    assert!(
        seen.contains("WaitingForAddress"),
        "it did wait for the lease: {seen:?}"
    );
    assert!(ct.status.unwrap().ip.is_some_and(|ip| ip.starts_with("10.99.")));
}

#[tokio::test]
async fn max_concurrent_tasks_counts_tasks_until_they_end() {
    use kube::api::{Api, Patch, PatchParams};
    use lxc_operator::crd::ProxmoxNode;

    // Tasks of 1.5 s, two at a time: six containers' creates and starts queue for the slots
    // instead of all running at once (the limit used to count only the calls that start them).
    let w = World::new("slots", &["pve1"], |c| c.with_task_duration_ms(1500)).await;
    Api::<ProxmoxNode>::all(w.kube.clone())
        .patch(
            &w.nodes[0],
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"maxConcurrentTasks": 2}})),
        )
        .await
        .unwrap();
    let names: Vec<String> = (0..6).map(|i| format!("ct-{i}")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|n| w.container(n, json!({"nodeRef": w.nodes[0]}))),
    )
    .await;
    // A template download is a task like the others: applied while both slots are taken and
    // containers wait for one, it waits too.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    'full: loop {
        for n in &names {
            let ct = w.api().get(n).await.unwrap();
            if reason(&ct, "Ready").as_deref() == Some("WaitingForTaskSlot") {
                break 'full;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no container ever waited for a slot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let template = format!("{}-alpine", w.ns);
    support::apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
               "spec": {"osTemplate": {"volid": "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz",
                                       "source": {"appliance": "alpine-3.22-default_20250617_amd64.tar.xz"}}}}),
    )
    .await;
    for n in &names {
        w.ready(n).await;
    }
    let templates: Api<lxc_operator::crd::LxcTemplate> = Api::all(w.kube.clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let t = templates.get(&template).await.unwrap();
        let ready = t.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "template never Ready: {:?}",
            t.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        w.sim
            .admin()
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/aplinfo")),
        "the template was downloaded"
    );
    assert_eq!(
        w.sim.admin().peak_running_tasks("pve1"),
        2,
        "at most two tasks at once (creates, starts and the download), and the two used"
    );
    // Waiting for a slot costs no Proxmox call: the slot is claimed before the walk reads
    // anything (each container waited several seconds).
    let per_container: BTreeMap<String, usize> = w
        .sim
        .admin()
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/lxc/"))
        .filter(|r| !r.path.contains("/tasks/"))
        .filter_map(|r| Some(r.path.split('/').nth(4)?.to_string()))
        .fold(BTreeMap::new(), |mut m, vmid| {
            *m.entry(vmid).or_default() += 1;
            m
        });
    println!("container reads per VMID: {per_container:?}");
    // 2 each alone (config and interfaces once Ready); a config sweep (every 40 s here) may
    // add 2 more. Reading while waiting gave up to 12.
    assert!(
        per_container.values().all(|&n| n <= 6),
        "reads while waiting for a slot: {per_container:?}"
    );
}

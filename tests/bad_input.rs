//! The bad-input suite (issue 17): objects the schema cannot catch end in a condition naming
//! the problem, with no Proxmox mutation and no hot loop; and injection payloads in every string
//! field of LxcContainer/LxcTemplate that reaches Proxmox or the SSH host are refused by the
//! API server or reach Proxmox as literal parameter values.
//!
//! CI size: the reconciles of the blocked containers are counted over 30 s;
//! `BAD_INPUT_FULL=1` (`make proof`) counts over 120 s.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams, PostParams};
use lxc_operator::crd::{LxcContainer, LxcTemplate, ProxmoxNode};
use serde_json::{Value, json};
use support::{CONTAINER_RECONCILES_BY_REASON, World, apply};

/// The two tests share one in-process operator and count its reconciles: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn window() -> Duration {
    match std::env::var("BAD_INPUT_FULL").is_ok_and(|v| v == "1") {
        true => Duration::from_secs(120),
        false => Duration::from_secs(30),
    }
}

/// At most this many reconciles per blocked container per minute. Alone, this binary measures
/// about 5 (the 10 s backstop of a blocked container and the odd wake-up of a node probe); in a
/// full `make test` run up to 50 were seen (not understood yet: see the session notes). A hot
/// loop (a zero-delay requeue, an own status write waking itself) makes hundreds.
const MAX_RECONCILES_PER_MINUTE: f64 = 90.0;

/// Container reconciles halted with one of these reasons (the blocked cases' own: a leftover
/// object of another test in this binary reconciling meanwhile is not counted against them),
/// and all container reconciles by reason (printed).
fn container_reconciles(reasons: &BTreeSet<&str>) -> (u64, BTreeMap<String, u64>) {
    let all = CONTAINER_RECONCILES_BY_REASON.lock().unwrap().clone();
    let ours = all
        .iter()
        .filter(|(r, _)| reasons.contains(r.as_str()))
        .map(|(_, n)| n)
        .sum();
    (ours, all)
}

/// Mutating requests the operator (the API token) sent to this world's simulator.
fn mutations(w: &World) -> Vec<String> {
    w.sim
        .admin()
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.identity.as_deref() == Some(w.sim.token_id()))
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect()
}

/// One bad input: its world, the container, and what its condition must say.
struct Case {
    what: &'static str,
    w: World,
    reasons: &'static [&'static str],
    words: Vec<String>,
}

/// The first condition (not Ready, which repeats it) whose reason is one of `reasons`.
fn naming(ct: &LxcContainer, reasons: &[&str]) -> Option<(String, String, String)> {
    ct.status.as_ref()?.conditions.iter().find_map(|c| {
        (c.type_ != "Ready" && reasons.contains(&c.reason.as_str()))
            .then(|| (c.type_.clone(), c.reason.clone(), c.message.clone()))
    })
}

async fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    // A template whose file content comes from a ConfigMap that does not exist.
    let w = World::new("bad-cm", &["pve1"], |c| c).await;
    let template = format!("{}-cm", w.ns);
    apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
            "metadata": {"name": template},
            "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                     "files": [{"path": "/etc/app.conf",
                        "contentFrom": {"configMapKeyRef": {"name": "absent-map", "namespace": w.ns, "key": "app.conf"}}}]}}),
    )
    .await;
    w.container("ct", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    cases.push(Case {
        what: "template references a missing ConfigMap",
        words: vec!["absent-map".into()],
        w,
        reasons: &["TemplateNotReady", "InvalidContent"],
    });

    // A node whose credentials Secret lacks tokenSecret.
    let w = World::new("bad-secret", &["pve1"], |c| c).await;
    apply(
        &w.kube,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "no-secret", "namespace": w.ns},
               "stringData": {"tokenId": w.sim.token_id()}}),
    )
    .await;
    Api::<ProxmoxNode>::all(w.kube.clone())
        .patch(
            &w.nodes[0],
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"credentialsSecretRef": {"name": "no-secret", "namespace": w.ns}}}),
            ),
        )
        .await
        .unwrap();
    w.container("ct", json!({"nodeRef": w.nodes[0]})).await;
    cases.push(Case {
        what: "node Secret lacks a key",
        words: vec!["no-secret".into(), "tokenSecret".into()],
        w,
        reasons: &["NodeNotReady"],
    });

    // A VMID taken by a container made by hand.
    let w = World::new("bad-vmid", &["pve1"], |c| c).await;
    w.hand_made(250).await;
    w.container("ct", json!({"nodeRef": w.nodes[0], "vmid": 250}))
        .await;
    cases.push(Case {
        what: "VMID taken by a foreign container",
        words: vec!["250".into()],
        w,
        reasons: &["Conflict"],
    });

    // A static address outside the bridge's subnet (the host has 192.168.50.2/24 on vmbr0).
    let w = World::new("bad-subnet", &["pve1"], |mut c| {
        c.bridge_cidrs.insert("vmbr0".into(), "192.168.50.2/24".into());
        c
    })
    .await;
    w.container(
        "ct",
        json!({"nodeRef": w.nodes[0], "network": [{"name": "eth0", "bridge": "vmbr0",
               "ipv4": {"mode": "Static", "address": "10.1.2.3/24", "gateway": "10.1.2.1"}}]}),
    )
    .await;
    cases.push(Case {
        what: "static IP outside the bridge's subnet",
        words: vec!["10.1.2.3".into(), "192.168.50.0/24".into(), "vmbr0".into()],
        w,
        reasons: &["AddressOutsideSubnet"],
    });

    // A template that is on no node, asked for on a cordoned node.
    let w = World::new("bad-cordon", &["pve1"], |c| c).await;
    let template = format!("{}-absent", w.ns);
    apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
            "metadata": {"name": template},
            "spec": {"osTemplate": {"volid": "local:vztmpl/absent-os_1.0_amd64.tar.zst"}}}),
    )
    .await;
    Api::<ProxmoxNode>::all(w.kube.clone())
        .patch(
            &w.nodes[0],
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cordoned": true}})),
        )
        .await
        .unwrap();
    w.container("ct", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    let node = w.nodes[0].clone();
    cases.push(Case {
        what: "template missing on a cordoned node",
        words: vec![node],
        w,
        reasons: &["NodeCordoned", "TemplateNotOnNode"],
    });

    // A bridge the node does not have.
    let w = World::new("bad-bridge", &["pve1"], |c| c).await;
    w.container(
        "ct",
        json!({"nodeRef": w.nodes[0], "network": [{"name": "eth0", "bridge": "vmbr9"}]}),
    )
    .await;
    cases.push(Case {
        what: "bridge missing on the node",
        words: vec!["vmbr9".into(), "pve1".into()],
        w,
        reasons: &["BridgeNotFound"],
    });

    // A 4 GiB root disk on a 2 GiB storage.
    let w = World::new("bad-storage", &["pve1"], |mut c| {
        for s in c.storages.iter_mut().filter(|s| s.id == "local-lvm") {
            s.total = 2 << 30;
        }
        c
    })
    .await;
    w.container("ct", json!({"nodeRef": w.nodes[0], "rootfs": {"sizeGiB": 4}}))
        .await;
    cases.push(Case {
        what: "storage without room",
        words: vec!["local-lvm".into()],
        w,
        reasons: &["InsufficientStorage"],
    });
    cases
}

#[tokio::test]
async fn bad_inputs_end_in_a_named_condition_without_mutation_or_hot_loop() {
    let _serial = SERIAL.lock().await;
    let cases = cases().await;
    // Each ends in its condition.
    let mut found = Vec::new();
    for c in &cases {
        let ct =
            // The condition may first name an earlier stage (a node not yet probed) before the
            // verdict that names the problem: wait for that verdict.
            c.w.wait("ct", &format!("blocked ({})", c.what), 90, |ct| {
                naming(ct, c.reasons).is_some_and(|(_, _, message)| {
                    c.words.iter().all(|w| message.contains(w.as_str()))
                })
            })
            .await;
        let (type_, reason, message) = naming(&ct, c.reasons).unwrap();
        for word in &c.words {
            assert!(
                message.contains(word.as_str()),
                "{}: {type_} {reason}: {message:?} does not name {word}",
                c.what
            );
        }
        found.push(format!("{}: {type_}={reason}: {message}", c.what));
    }
    // Then none reconciles more than a few times a minute, and none mutates anything.
    let window = window();
    let reasons: BTreeSet<&str> = cases.iter().flat_map(|c| c.reasons.iter().copied()).collect();
    let (before, all_before) = container_reconciles(&reasons);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let (after, all_after) = container_reconciles(&reasons);
    let reconciles = after - before;
    let others: BTreeMap<&String, u64> = all_after
        .iter()
        .map(|(r, n)| (r, n - all_before.get(r).copied().unwrap_or_default()))
        .filter(|(r, n)| *n > 0 && !reasons.contains(r.as_str()))
        .collect();
    if !others.is_empty() {
        println!("  other container reconciles meanwhile, by reason: {others:?}");
    }
    let per_minute = reconciles as f64 / cases.len() as f64 / (started.elapsed().as_secs_f64() / 60.0);
    println!("figures:");
    for f in &found {
        println!("  {f}");
    }
    println!(
        "  reconciles over {:.0?}: {reconciles} for {} blocked containers ({per_minute:.1} per container per minute)",
        started.elapsed(),
        cases.len()
    );
    let mut mutated = BTreeMap::new();
    for c in &cases {
        // Still blocked the same way at the end of the window.
        let ct = c.w.api().get("ct").await.unwrap();
        assert!(
            naming(&ct, c.reasons).is_some(),
            "{}: no longer blocked: {:?}",
            c.what,
            ct.status
        );
        let m = mutations(&c.w);
        println!("  {}: {} Proxmox mutations", c.what, m.len());
        if !m.is_empty() {
            mutated.insert(c.what, m);
        }
    }
    assert!(mutated.is_empty(), "Proxmox mutations: {mutated:#?}");
    assert!(
        per_minute <= MAX_RECONCILES_PER_MINUTE,
        "{per_minute:.1} reconciles per blocked container per minute"
    );
}

/// Payloads aimed at a shell, an argument parser, a path or a property-string parser.
fn payloads() -> Vec<(&'static str, String)> {
    let mut p: Vec<(&'static str, String)> = [
        ("semicolon", "a;reboot"),
        ("semicolon-space", "x; rm -rf / #"),
        ("dollar-paren", "$(reboot)"),
        ("dollar-brace", "${IFS}reboot"),
        ("backticks", "`reboot`"),
        ("newline", "a\nreboot"),
        ("carriage-return", "a\rreboot"),
        ("leading-dash", "-rf"),
        ("double-dash", "--purge=1"),
        ("dotdot", "../../etc/shadow"),
        ("dotdot-abs", "/root/../etc/shadow"),
        ("pipe", "a|reboot"),
        ("ampersand", "a&&reboot"),
        ("redirect", "a>/etc/passwd"),
        ("quote", "a'b\"c"),
        ("backslash", "a\\nb"),
        ("comma-prop", "a,bridge=vmbr1"),
        ("equals-prop", "name=eth9"),
        ("glob", "*"),
        ("space", "a b"),
        ("tab", "a\tb"),
        ("percent", "%0Areboot"),
        ("ampersand-form", "a&delete=net0"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    p.push(("nul", "a\0reboot".into()));
    p.push(("very-long", "a".repeat(70_000)));
    // Unicode look-alikes: a fullwidth semicolon, a Cyrillic "а", a fullwidth solidus.
    p.push(("lookalike-semicolon", "a\u{FF1B}reboot".into()));
    p.push(("lookalike-letter", "vmbr\u{0430}".into()));
    p.push(("lookalike-slash", "\u{FF0F}etc\u{FF0F}passwd".into()));
    p.push(("rtl-override", "a\u{202E}toober".into()));
    p
}

/// Every string field of LxcContainer/LxcTemplate whose value reaches Proxmox or the SSH host,
/// as (kind, field, a value the field takes, a spec putting `v` there).
#[allow(clippy::type_complexity)]
fn fields() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Box<dyn Fn(&str) -> Value>,
)> {
    vec![
        (
            "LxcContainer",
            "hostname",
            "web-1",
            Box::new(|v| json!({"hostname": v})),
        ),
        (
            "LxcContainer",
            "description",
            "plain text",
            Box::new(|v| json!({"description": v})),
        ),
        (
            "LxcContainer",
            "tags[]",
            "web",
            Box::new(|v| json!({"tags": [v]})),
        ),
        ("LxcContainer", "pool", "prod", Box::new(|v| json!({"pool": v}))),
        (
            "LxcContainer",
            "rootfs.storage",
            "local-lvm",
            Box::new(|v| json!({"rootfs": {"storage": v}})),
        ),
        (
            "LxcContainer",
            "mountPoints[].path",
            "/srv/data",
            Box::new(|v| json!({"mountPoints": [{"path": v, "sizeGiB": 1}]})),
        ),
        (
            "LxcContainer",
            "mountPoints[].storage",
            "local-lvm",
            Box::new(|v| json!({"mountPoints": [{"path": "/data", "storage": v, "sizeGiB": 1}]})),
        ),
        (
            "LxcContainer",
            "network[].name",
            "eth1",
            Box::new(|v| json!({"network": [{"name": v}]})),
        ),
        (
            "LxcContainer",
            "network[].bridge",
            "vmbr1",
            Box::new(|v| json!({"network": [{"name": "eth0", "bridge": v}]})),
        ),
        (
            "LxcContainer",
            "network[].hwaddr",
            "BC:24:11:00:00:01",
            Box::new(|v| json!({"network": [{"name": "eth0", "hwaddr": v}]})),
        ),
        (
            "LxcContainer",
            "network[].ipv4.address",
            "10.0.0.5/24",
            Box::new(|v| json!({"network": [{"name": "eth0", "ipv4": {"mode": "Static", "address": v}}]})),
        ),
        (
            "LxcContainer",
            "network[].ipv4.gateway",
            "10.0.0.1",
            Box::new(
                |v| json!({"network": [{"name": "eth0", "ipv4": {"mode": "Static", "address": "10.0.0.2/24", "gateway": v}}]}),
            ),
        ),
        (
            "LxcContainer",
            "network[].ipv6.address",
            "fd00::5/64",
            Box::new(|v| json!({"network": [{"name": "eth0", "ipv6": {"mode": "Static", "address": v}}]})),
        ),
        (
            "LxcContainer",
            "network[].ipv6.gateway",
            "fd00::1",
            Box::new(
                |v| json!({"network": [{"name": "eth0", "ipv6": {"mode": "Static", "address": "fd00::2/64", "gateway": v}}]}),
            ),
        ),
        (
            "LxcContainer",
            "dns.nameservers[]",
            "1.1.1.1",
            Box::new(|v| json!({"dns": {"nameservers": [v]}})),
        ),
        (
            "LxcContainer",
            "dns.searchDomain",
            "example.org",
            Box::new(|v| json!({"dns": {"searchDomain": v}})),
        ),
        (
            "LxcContainer",
            "nodeRef",
            "other-node",
            Box::new(|v| json!({"nodeRef": v})),
        ),
        (
            "LxcContainer",
            "templateRef",
            "other-template",
            Box::new(|v| json!({"templateRef": v})),
        ),
        (
            "LxcContainer",
            "provisioning.files[].path",
            "/etc/app.conf",
            Box::new(|v| json!({"provisioning": {"files": [{"path": v, "content": "x"}]}})),
        ),
        (
            "LxcContainer",
            "provisioning.files[].owner",
            "www-data:www-data",
            Box::new(
                |v| json!({"provisioning": {"files": [{"path": "/etc/x", "content": "x", "owner": v}]}}),
            ),
        ),
        (
            "LxcContainer",
            "provisioning.files[].mode",
            "0600",
            Box::new(|v| json!({"provisioning": {"files": [{"path": "/etc/x", "content": "x", "mode": v}]}})),
        ),
        (
            "LxcContainer",
            "provisioning.packages.apt[]",
            "nginx",
            Box::new(|v| json!({"provisioning": {"packages": {"apt": [v]}}})),
        ),
        (
            "LxcContainer",
            "provisioning.packages.pip[]",
            "requests",
            Box::new(|v| json!({"provisioning": {"packages": {"pip": [v]}}})),
        ),
        (
            "LxcContainer",
            "provisioning.scripts[].name",
            "setup",
            Box::new(|v| json!({"provisioning": {"scripts": [{"name": v, "content": "true"}]}})),
        ),
        (
            "LxcContainer",
            "provisioning.scripts[].interpreter",
            "/bin/bash",
            Box::new(
                |v| json!({"provisioning": {"scripts": [{"name": "s", "content": "true", "interpreter": v}]}}),
            ),
        ),
        (
            "LxcContainer",
            "provisioning.scripts[].env[].name",
            "APP_PORT",
            Box::new(
                |v| json!({"provisioning": {"scripts": [{"name": "s", "content": "true", "env": [{"name": v, "value": "x"}]}]}}),
            ),
        ),
        (
            "LxcContainer",
            "provisioning.files[].content",
            "port=80",
            Box::new(|v| json!({"provisioning": {"files": [{"path": "/etc/x", "content": v}]}})),
        ),
        (
            "LxcContainer",
            "provisioning.scripts[].env[].value",
            "8080",
            Box::new(
                |v| json!({"provisioning": {"scripts": [{"name": "s", "content": "true", "env": [{"name": "V", "value": v}]}]}}),
            ),
        ),
        (
            "LxcTemplate",
            "osTemplate.volid",
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            Box::new(|v| json!({"osTemplate": {"volid": v}})),
        ),
        (
            "LxcTemplate",
            "osTemplate.source.appliance",
            "debian-12-standard_12.7-1_amd64.tar.zst",
            Box::new(
                |v| json!({"osTemplate": {"volid": "local:vztmpl/x.tar.zst", "source": {"appliance": v}}}),
            ),
        ),
        (
            "LxcTemplate",
            "osTemplate.source.url.url",
            "https://example.org/t.tar.zst",
            Box::new(
                |v| json!({"osTemplate": {"volid": "local:vztmpl/x.tar.zst", "source": {"url": {"url": v, "checksum": "0000000000000000000000000000000000000000000000000000000000000000", "checksumAlgorithm": "sha256"}}}}),
            ),
        ),
        (
            "LxcTemplate",
            "defaults.tags[]",
            "base",
            Box::new(
                |v| json!({"osTemplate": {"volid": "local:vztmpl/x.tar.zst"}, "defaults": {"tags": [v]}}),
            ),
        ),
        (
            "LxcTemplate",
            "provisioning.files[].path",
            "/etc/app.conf",
            Box::new(
                |v| json!({"osTemplate": {"volid": "local:vztmpl/x.tar.zst"}, "files": [{"path": v, "content": "x"}]}),
            ),
        ),
        (
            "LxcTemplate",
            "provisioning.packages.apt[]",
            "nginx",
            Box::new(
                |v| json!({"osTemplate": {"volid": "local:vztmpl/x.tar.zst"}, "packages": {"apt": [v]}}),
            ),
        ),
    ]
}

/// Whether the API server accepts `spec` for a `kind` object (a server-side dry run: schema
/// and CEL rules judged, nothing stored).
async fn accepted(w: &World, kind: &str, name: &str, spec: Value) -> Result<(), String> {
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let result = match kind {
        "LxcContainer" => {
            let mut spec = spec;
            if spec.get("templateRef").is_none() {
                spec["templateRef"] = json!(w.template);
            }
            if spec.get("nodeRef").is_none() {
                spec["nodeRef"] = json!(w.nodes[0]);
            }
            let obj: LxcContainer = match serde_json::from_value(json!({
                "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
                "metadata": {"name": name, "namespace": w.ns}, "spec": spec}))
            {
                Ok(o) => o,
                Err(e) => return Err(format!("not even a valid object: {e}")),
            };
            w.api().create(&dry, &obj).await.map(|_| ())
        }
        _ => {
            let obj: LxcTemplate = match serde_json::from_value(json!({
                "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
                "metadata": {"name": name}, "spec": spec}))
            {
                Ok(o) => o,
                Err(e) => return Err(format!("not even a valid object: {e}")),
            };
            Api::<LxcTemplate>::all(w.kube.clone())
                .create(&dry, &obj)
                .await
                .map(|_| ())
        }
    };
    result.map_err(|e| e.to_string())
}

#[tokio::test]
async fn injection_payloads_are_refused_or_reach_proxmox_as_literal_values() {
    let _serial = SERIAL.lock().await;
    let w = World::new("inject", &["pve1"], |c| c).await;
    let payloads = payloads();
    let fields = fields();
    let mut accepted_pairs: Vec<(&str, &str, &str, String)> = Vec::new();
    let mut refused = 0;
    for (kind, field, benign, patch) in &fields {
        // The field itself is reachable: a plain value is accepted, so a refusal below is the
        // payload's.
        if let Err(e) = accepted(&w, kind, "probe", patch(benign)).await {
            panic!("{kind}.spec.{field} = {benign:?} refused: {e}");
        }
        for (label, payload) in &payloads {
            match accepted(&w, kind, "probe", patch(payload)).await {
                Err(_) => refused += 1,
                Ok(()) => accepted_pairs.push((kind, field, label, payload.clone())),
            }
        }
    }
    println!(
        "figures: {} fields x {} payloads: {refused} refused by the API server, {} accepted",
        fields.len(),
        payloads.len(),
        accepted_pairs.len()
    );
    let mut by_field: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, field, label, _) in &accepted_pairs {
        by_field.entry(field).or_default().push(label);
    }
    for (field, labels) in &by_field {
        println!("  accepted in {field}: {labels:?}");
    }
    // What the API server accepts must be inert. Two ways for a value to travel:
    // - to Proxmox only, as one API parameter (free text, a pool name, a NIC name inside the
    //   `net[n]` property string): shown below to arrive as the literal value;
    // - to the SSH host as one argument of a package manager (after `--`), quoted for the login
    //   shell: shown below through the SSH stand-in.
    let to_proxmox = ["description", "pool", "network[].name"];
    let to_ssh_argv = ["provisioning.packages.apt[]", "provisioning.packages.pip[]"];
    // - into the container as data: a file's bytes, an environment variable's value.
    let to_ssh_data = [
        "provisioning.files[].content",
        "provisioning.scripts[].env[].value",
    ];
    let dangerous: Vec<String> = accepted_pairs
        .iter()
        .filter(|(_, field, _, _)| {
            !to_proxmox.contains(field) && !to_ssh_argv.contains(field) && !to_ssh_data.contains(field)
        })
        .map(|(kind, field, label, _)| format!("{kind}.spec.{field} <- {label}"))
        .collect();
    assert!(
        dangerous.is_empty(),
        "payloads accepted in fields that reach Proxmox property strings, paths or the SSH host \
         other than as a literal value: {dangerous:#?}"
    );
    let mut literal = 0;
    let proxmox: Vec<&(&str, &str, &str, String)> = accepted_pairs
        .iter()
        .filter(|(kind, field, _, _)| *kind == "LxcContainer" && to_proxmox.contains(field))
        .collect();
    for (i, (_, field, label, payload)) in proxmox.iter().enumerate() {
        let name = format!("p{i}");
        let spec = match *field {
            "description" => json!({"nodeRef": w.nodes[0], "hostname": name, "description": payload}),
            "pool" => json!({"nodeRef": w.nodes[0], "hostname": name, "pool": payload}),
            _ => json!({"nodeRef": w.nodes[0], "hostname": name, "network": [{"name": payload}]}),
        };
        w.container(&name, spec).await;
        let started = Instant::now();
        let create = loop {
            let found = w.sim.admin().requests().into_iter().find(|r| {
                r.method == "POST" && r.path == "/nodes/pve1/lxc" && r.params.get("hostname") == Some(&name)
            });
            if let Some(r) = found {
                break r;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let st = w.api().get(&name).await.unwrap().status;
                panic!("{field} <- {label}: no create call; status {st:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let sent = |k: &str| create.params.get(k).cloned().unwrap_or_default();
        let arrived = match *field {
            "description" => sent("description").starts_with(payload.as_str()),
            "pool" => sent("pool") == *payload,
            _ => sent("net0").starts_with(&format!("name={payload},")),
        };
        assert!(
            arrived,
            "{field} <- {label}: did not reach Proxmox as the literal value: {:?}",
            create.params
        );
        let known = [
            "node",
            "vmid",
            "ostemplate",
            "hostname",
            "cores",
            "memory",
            "swap",
            "rootfs",
            "net0",
            "unprivileged",
            "tags",
            "description",
            "features",
            "onboot",
            "start",
            "pool",
        ];
        let extra: Vec<&String> = create
            .params
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        assert!(extra.is_empty(), "{field} <- {label}: added parameters {extra:?}");
        literal += 1;
    }
    println!("  {literal} accepted values reached Proxmox as literal parameter values");

    // Package names over SSH: the accepted apt payloads (an absolute redirect target made
    // relative, so a failure could not touch this host) reach the stand-in's apt-get as one
    // argument each, and nothing is redirected.
    let apt: Vec<String> = accepted_pairs
        .iter()
        .filter(|(_, field, _, _)| *field == "provisioning.packages.apt[]")
        .map(|(_, _, _, p)| p.replace("/etc/passwd", "lxcop-pwned"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let pip = accepted_pairs
        .iter()
        .filter(|(_, field, _, _)| *field == "provisioning.packages.pip[]")
        .count();
    let data = |f: &str| -> Vec<(String, String)> {
        accepted_pairs
            .iter()
            .filter(|(_, field, _, _)| *field == f)
            .map(|(_, _, label, p)| (label.to_string(), p.clone()))
            .collect()
    };
    let contents = data("provisioning.files[].content");
    let values = data("provisioning.scripts[].env[].value");
    {
        let (sw, roots) = World::with_ssh("inject-ssh", None).await;
        let files: Vec<Value> = contents
            .iter()
            .map(|(label, p)| json!({"path": format!("/root/file-{label}"), "content": p}))
            .collect();
        let env: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, (_, p))| json!({"name": format!("P{i}"), "value": p}))
            .collect();
        // `$PCT_ROOT`: the stand-in's container root (it runs scripts unchrooted).
        let script: String = values
            .iter()
            .enumerate()
            .map(|(i, (label, _))| format!("printf '%s' \"$P{i}\" > \"$PCT_ROOT/root/env-{label}\"\n"))
            .collect();
        sw.container(
            "pkgs",
            json!({"nodeRef": sw.nodes[0], "network": [{"name": "eth0"}],
                   "provisioning": {"packages": {"apt": apt}, "files": files,
                                    "scripts": [{"name": "env", "content": script, "env": env}]}}),
        )
        .await;
        let ct = sw.ready("pkgs").await;
        let vmid = support::vmid(&ct);
        let log = std::fs::read_to_string(roots.join(vmid.to_string()).join("var/log/pve-sim-packages.log"))
            .unwrap_or_default();
        for p in &apt {
            assert!(
                log.lines().any(|l| l == format!("apt-get install {p}")),
                "{p:?} did not reach apt-get as one argument: {log}"
            );
        }
        let pwned: Vec<_> = walk(&roots)
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "lxcop-pwned"))
            .collect();
        assert!(pwned.is_empty(), "a redirect ran: {pwned:?}");
        let root = roots.join(vmid.to_string()).join("root");
        for (label, p) in &contents {
            let got = std::fs::read(root.join(format!("file-{label}"))).unwrap_or_default();
            assert_eq!(
                got,
                p.as_bytes(),
                "file content {label} not written byte for byte"
            );
        }
        for (label, p) in &values {
            let got = std::fs::read(root.join(format!("env-{label}"))).unwrap_or_default();
            assert_eq!(got, p.as_bytes(), "environment value {label} not passed as data");
        }
        println!(
            "  {} accepted apt package names reached apt-get over SSH as single arguments \
             ({pip} pip names take the same argv path: `pip install -- <name>`); {} file contents \
             and {} environment values arrived byte for byte",
            apt.len(),
            contents.len(),
            values.len()
        );
    }
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

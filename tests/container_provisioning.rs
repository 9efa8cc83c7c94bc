//! Containers provisioned over SSH (the test world's OpenSSH server with pve-sim's `pct`
//! stand-in as the Proxmox host), and the examples applied with kubectl, end to end.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use lxc_operator::crd::LxcContainer;
use lxc_operator::pipeline::ownership::parse_tags;
use lxc_operator::proxmox::property::{Net, Volume};
use serde_json::{Value, json};
use support::{World, reason, vmid};

/// The examples, pointed at this test's simulator and sshd.
fn examples(sim: &pve_sim::PveSim, ssh: &Value, key: &str) -> Vec<Value> {
    test_world::examples(&test_world::ExampleTarget {
        url: sim.url(),
        fingerprint: sim.fingerprint_sha256(),
        token_secret: sim.token_secret(),
        username: sim.username(),
        password: sim.password(),
        ssh,
        key,
        poll_seconds: 5,
    })
    .expect("examples/")
}

fn has_ready(ct: &LxcContainer) -> bool {
    ct.status.as_ref().is_some_and(|s| {
        s.observed_generation == ct.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_reach_ready_through_kubectl_and_match_proxmox() {
    support::operator();
    let roots = support::scratch("examples");
    let mut cfg = pve_sim::Config::default_with_nodes(&["pve1", "pve2"]).with_task_duration_ms(30);
    cfg.ct_root_dir = Some(roots.clone());
    let sim = pve_sim::PveSim::start(cfg).await.unwrap();
    let (key, ssh) = support::ssh_host_for(&sim, "pve1", &roots);
    let manifests = roots.join("manifests.yaml");
    let docs = examples(&sim, &ssh, &key);
    let yaml: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect();
    std::fs::write(&manifests, yaml.join("---\n")).unwrap();
    let cp = test_world::control_plane();
    let out = cp
        .kubectl()
        .args(["apply", "-f"])
        .arg(&manifests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let containers: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "LxcContainer").collect();
    assert!(
        containers.len() >= 3,
        "the examples hold the web, static and stopped containers"
    );
    let kube = cp.client().await;
    let mut waited = Vec::new();
    for spec_doc in &containers {
        let name = spec_doc["metadata"]["name"].as_str().unwrap();
        let ns = spec_doc["metadata"]["namespace"].as_str().unwrap_or("default");
        let out = cp
            .kubectl()
            .args([
                "wait",
                "--for=condition=Ready",
                "--timeout=120s",
                "-n",
                ns,
                "lxc",
                name,
            ])
            .output()
            .unwrap();
        let ct = Api::<LxcContainer>::namespaced(kube.clone(), ns)
            .get(name)
            .await
            .unwrap();
        assert!(
            out.status.success() && has_ready(&ct),
            "{name}: kubectl wait: {}; status: {}",
            String::from_utf8_lossy(&out.stderr),
            serde_json::to_string_pretty(&ct.status).unwrap()
        );
        waited.push((spec_doc, ct));
    }

    let root = lxc_operator::proxmox::ProxmoxClient::new(lxc_operator::proxmox::ClientConfig::new(
        sim.url(),
        lxc_operator::proxmox::Credentials::Password {
            username: sim.username().into(),
            password: lxc_operator::proxmox::Secret::new(sim.password()),
        },
        lxc_operator::proxmox::TlsTrust::PinnedSha256(
            lxc_operator::proxmox::tls::parse_fingerprint(sim.fingerprint_sha256()).unwrap(),
        ),
    ))
    .unwrap();
    let template = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "LxcTemplate" && d["metadata"]["name"] == name)
            .unwrap()
    };
    for (doc, ct) in &waited {
        let spec = &doc["spec"];
        let t = &template(spec["templateRef"].as_str().unwrap())["spec"]["defaults"];
        let id = vmid(ct);
        let cfg = root.container_config("pve1", id).await.unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap();
        let num = |v: &Value| v.as_i64().map(|n| n.to_string());
        // Each field: the spec's value, else the template's default.
        let pick = |a: &Value, b: &Value| num(a).or(num(b));
        assert_eq!(
            cfg.get("hostname"),
            Some(spec["hostname"].as_str().unwrap_or(name)),
            "{name} hostname"
        );
        assert_eq!(
            cfg.get("cores").map(String::from),
            pick(&spec["resources"]["cores"], &t["cores"]),
            "{name} cores"
        );
        assert_eq!(
            cfg.get("memory").map(String::from),
            pick(&spec["resources"]["memoryMiB"], &t["memoryMiB"]),
            "{name} memory"
        );
        if let Some(swap) = pick(&spec["resources"]["swapMiB"], &t["swapMiB"]) {
            assert_eq!(cfg.get("swap"), Some(swap.as_str()), "{name} swap");
        }
        let rootfs = Volume::parse(cfg.get("rootfs").unwrap()).unwrap();
        let want = pick(&spec["rootfs"]["sizeGiB"], &t["rootfsSizeGiB"]).unwrap_or("4".into());
        assert_eq!(
            rootfs.size_gib().map(|g| g.to_string()),
            Some(want),
            "{name} rootfs"
        );
        if let Some(v) = spec["vmid"].as_u64() {
            assert_eq!(u64::from(id), v, "{name} vmid");
        }
        for (i, nic) in spec["network"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let net = Net::parse(cfg.get(&format!("net{i}")).unwrap()).unwrap();
            assert_eq!(net.name, nic["name"].as_str().unwrap());
            assert_eq!(
                net.bridge.as_deref(),
                Some(nic["bridge"].as_str().unwrap_or("vmbr0"))
            );
            assert_eq!(net.tag.map(i64::from), nic["vlan"].as_i64(), "{name} vlan");
            match nic["ipv4"]["mode"].as_str() {
                Some("Static") => {
                    assert_eq!(net.ip.as_deref(), nic["ipv4"]["address"].as_str());
                    assert_eq!(net.gw.as_deref(), nic["ipv4"]["gateway"].as_str());
                }
                _ => assert_eq!(net.ip.as_deref(), Some("dhcp")),
            }
            if nic["ipv6"]["mode"] == "Static" {
                assert_eq!(net.ip6.as_deref(), nic["ipv6"]["address"].as_str());
            }
        }
        for (i, mp) in spec["mountPoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let v = Volume::parse(cfg.get(&format!("mp{i}")).unwrap()).unwrap();
            assert_eq!(v.mp.as_deref(), mp["path"].as_str());
            assert_eq!(v.size_gib().map(|g| g as i64), mp["sizeGiB"].as_i64());
        }
        let tags: BTreeSet<String> = parse_tags(cfg.get("tags").unwrap()).into_iter().collect();
        for tag in spec["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(t["tags"].as_array().into_iter().flatten())
        {
            assert!(tags.contains(tag.as_str().unwrap()), "{name} tag {tag}");
        }
        let running = sim.admin().container(id).unwrap().status == "running";
        assert_eq!(running, spec["powerState"] != "Stopped", "{name} power");
    }

    // The web example was provisioned: files with content and mode, packages, the script.
    let (_, web) = waited
        .iter()
        .find(|(d, _)| d["metadata"]["name"] == "web-1")
        .unwrap();
    let ct_root = roots.join(vmid(web).to_string());
    let motd = ct_root.join("etc/motd");
    assert_eq!(
        std::fs::read_to_string(&motd).unwrap(),
        "Managed by lxc-operator.\n"
    );
    assert_eq!(
        std::fs::metadata(&motd).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let index = std::fs::read_to_string(ct_root.join("var/www/html/index.html")).unwrap();
    assert!(index.contains("hello from lxc-operator"));
    let packages = std::fs::read_to_string(ct_root.join("var/log/pve-sim-packages.log")).unwrap();
    assert!(
        packages.contains("nginx") && packages.contains("curl"),
        "{packages}"
    );
    let steps = &web.status.as_ref().unwrap().provisioned_steps;
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "file:/etc/motd",
            "file:/var/www/html/index.html",
            "packages:apt",
            "script:enable-nginx"
        ]
    );
    let services = &web.status.as_ref().unwrap().services;
    assert_eq!(
        services.first().map(|s| s.name.as_str()),
        Some("nginx.service"),
        "{services:?}"
    );

    // `kubectl delete -f` in file order: the namespace, the Secrets and the node go first,
    // the containers last. Nothing hangs: each container is handled through the node (kept by
    // its finalizer until no container is placed on it, and its Secrets by theirs), then the
    // node and the Secrets go. `Delete` containers are destroyed in Proxmox, `Retain` ones stay.
    let out = cp
        .kubectl()
        .args(["delete", "--wait=false", "-f"])
        .arg(&manifests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut left = Vec::new();
        for doc in docs.iter().filter(|d| d["kind"] != "Namespace") {
            let (kind, name) = (
                doc["kind"].as_str().unwrap(),
                doc["metadata"]["name"].as_str().unwrap(),
            );
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            let out = cp
                .kubectl()
                .args(["get", "--ignore-not-found", "-o", "name", "-n", ns, kind, name])
                .output()
                .unwrap();
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !found.is_empty() {
                left.push(found);
            }
        }
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still there after kubectl delete: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (doc, ct) in &waited {
        let kept = sim.admin().container(vmid(ct)).is_some();
        let retain = doc["spec"]["deletionPolicy"] == "Retain";
        assert_eq!(
            kept, retain,
            "{}: left in Proxmox only with Retain",
            doc["metadata"]["name"]
        );
    }
    // This API server runs no namespace controller (no kube-controller-manager): the
    // namespace stays Terminating here, with nothing of ours left in it.
}

#[tokio::test]
async fn provisioning_runs_each_step_once_and_keeps_credentials_in_their_secret() {
    let (w, roots) = World::with_ssh("prov", None).await;
    const SECRET: &str = "s3cr3t-Value-7f1d";
    const LEAKY: &str = "tok-4242-from-env";
    let template = format!("{}-app", w.ns);
    let script = |n: u32| format!("echo run >> \"$PCT_ROOT/var/log/{{name}}.runs\"\necho version {n}\n");
    let template_spec = |first: &str, fail: bool| {
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
            "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                "files": [{"path": "/etc/app.conf", "mode": "0600", "content": "port=8080\n"}],
                "packages": {"apt": ["nginx"]},
                "scripts": [
                    {"name": "first", "content": first.replace("{name}", "first")},
                    {"name": "second", "recordOutput": fail,
                     "env": if fail {
                        json!([{"name": "GREETING", "value": "hi there"}, {"name": "DB_TOKEN", "value": LEAKY}])
                     } else {
                        json!([{"name": "GREETING", "value": "hi there"}])
                     },
                     "content": format!("{}echo \"$GREETING\" > \"$PCT_ROOT/var/log/greeting\"\n{}",
                        script(1).replace("{name}", "second"),
                        if fail {
                            "echo generated password=GeneratedPw-991; echo \"token is $DB_TOKEN\"\n\
                             echo about to fail; echo broken >&2; exit 7\n"
                        } else { "" })},
                    {"name": "credentials", "content": format!(
                        "mkdir -p \"$PCT_ROOT/etc/infrahaus/credentials\"\nprintf 'USER=admin\\nPASSWORD={SECRET}\\n' > \"$PCT_ROOT/etc/infrahaus/credentials/nginx.env\"\n")}
                ],
                "services": [{"name": "nginx.service", "ports": [80]}]}})
    };
    support::apply(&w.kube, template_spec(&script(1), false)).await;
    w.container("app", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    let ct = w.ready("app").await;
    let id = vmid(&ct);
    let ct_root = roots.join(id.to_string());
    let runs = |n: &str| {
        std::fs::read_to_string(ct_root.join(format!("var/log/{n}.runs")))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!((runs("first"), runs("second")), (1, 1));
    assert_eq!(
        std::fs::read_to_string(ct_root.join("var/log/greeting")).unwrap(),
        "hi there\n"
    );
    assert_eq!(
        std::fs::metadata(ct_root.join("etc/app.conf"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let st = ct.status.clone().unwrap();
    assert_eq!(st.provisioned_steps.len(), 5, "{:?}", st.provisioned_steps);
    assert_eq!(
        st.credentials_secret_ref.as_ref().map(|r| r.name.as_str()),
        Some("app-credentials")
    );
    let secret = Api::<Secret>::namespaced(w.kube.clone(), &w.ns)
        .get("app-credentials")
        .await
        .unwrap();
    let data = secret.data.clone().unwrap();
    assert_eq!(
        data.get("nginx.PASSWORD").map(|b| b.0.as_slice()),
        Some(SECRET.as_bytes())
    );
    assert_eq!(
        data.get("nginx.USER").map(|b| b.0.as_slice()),
        Some(b"admin".as_slice())
    );
    let owner = &secret.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("LxcContainer", ct.metadata.uid.as_deref().unwrap())
    );

    // Another reconcile (seen by its config read in the simulator) runs nothing.
    let config_path = format!("/nodes/pve1/lxc/{id}/config");
    let config_reads = || {
        w.sim
            .admin()
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == config_path)
            .count()
    };
    let reads_before = config_reads();
    w.api()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"poke": "1"}}})),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while config_reads() == reads_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poke never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((runs("first"), runs("second")), (1, 1), "nothing ran again");

    // A changed script re-runs that script only.
    support::apply(&w.kube, template_spec(&script(2), false)).await;
    w.wait("app", "re-run the changed script", 60, |_| runs("first") == 2)
        .await;
    w.ready("app").await;
    assert_eq!(runs("second"), 1, "the unchanged script did not run");
    let packages = std::fs::read_to_string(ct_root.join("var/log/pve-sim-packages.log")).unwrap();
    assert_eq!(
        packages.matches("install").count(),
        1,
        "packages installed once: {packages}"
    );

    // A failing script: its exit code and output tail in the condition.
    support::apply(&w.kube, template_spec(&script(2), true)).await;
    let ct = w
        .wait("app", "report the failing step", 60, |ct| {
            reason(ct, "Provisioned").as_deref() == Some("StepFailed")
        })
        .await;
    let cond = ct
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Provisioned")
        .unwrap()
        .clone();
    assert!(
        cond.message.contains("script:second") && cond.message.contains("7"),
        "{}",
        cond.message
    );
    assert!(
        cond.message.contains("broken") && cond.message.contains("about to fail"),
        "{}",
        cond.message
    );
    // Kept because the script opts in, with what it generated and its secret env redacted.
    for leaked in ["GeneratedPw-991", LEAKY] {
        assert!(!cond.message.contains(leaked), "{leaked} in {}", cond.message);
    }
    assert!(cond.message.contains("password=<redacted>"), "{}", cond.message);
    let trail = support::audit()
        .await
        .by_object(ct.metadata.uid.as_deref().unwrap(), 200)
        .await
        .unwrap();
    let trail_text = serde_json::to_string(&trail).unwrap();
    assert!(
        trail_text.contains("about to fail"),
        "the audit row keeps the redacted tail"
    );
    for leaked in ["GeneratedPw-991", LEAKY] {
        assert!(!trail_text.contains(leaked), "{leaked} in the audit trail");
        assert!(
            w.events("app").await.iter().all(|(_, m)| !m.contains(leaked)),
            "{leaked} in an Event"
        );
    }

    // The credential never left its Secret: not in logs, status, Events or the audit trail.
    let logs = support::logs();
    assert!(
        logs.contains("provisioning step failed"),
        "the operator's log was captured: {} bytes: {:.3000}",
        logs.len(),
        logs
    );
    assert!(!logs.contains(SECRET), "no secret in the operator's log");
    let status = serde_json::to_string(&w.api().get("app").await.unwrap().status).unwrap();
    assert!(!status.contains(SECRET));
    let events = w.events("app").await;
    assert!(
        events
            .iter()
            .all(|(r, m)| !r.contains(SECRET) && !m.contains(SECRET))
    );
    let trail = support::audit()
        .await
        .by_object(ct.metadata.uid.as_deref().unwrap(), 200)
        .await
        .unwrap();
    assert!(!trail.is_empty());
    assert!(
        !serde_json::to_string(&trail).unwrap().contains(SECRET),
        "no secret in the audit trail"
    );
    let all = Api::<k8s_openapi::api::core::v1::Event>::all(w.kube.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(!serde_json::to_string(&all.items).unwrap().contains(SECRET));
}

/// `spec.ssh.mode: HostCommand` reaches the SSH layer: the node's key is restricted to the host
/// command, which refuses anything but its own requests, so provisioning finishes only if the
/// operator speaks that protocol (a Direct-mode command line would be refused).
#[tokio::test]
async fn a_host_command_node_provisions_through_the_forced_command() {
    let (w, roots) = World::with_ssh("hostcmd", None).await;
    let (key, mut ssh) = support::ssh_host_command_for(&w.sim, "pve1", &roots);
    support::apply(
        &w.kube,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssh", "namespace": w.ns},
               "stringData": {"key": key}}),
    )
    .await;
    ssh["privateKeySecretRef"] = json!({"name": "ssh", "namespace": w.ns, "key": "key"});
    Api::<lxc_operator::crd::ProxmoxNode>::all(w.kube.clone())
        .patch(
            &w.nodes[0],
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ssh": ssh}})),
        )
        .await
        .unwrap();
    let template = format!("{}-hc", w.ns);
    support::apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
            "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                "files": [{"path": "/etc/hc/app.conf", "mode": "0640", "content": "port=8080\n"}],
                "scripts": [{"name": "greet", "env": [{"name": "GREETING", "value": "hi there"}],
                    "content": "echo \"$GREETING\" > \"$PCT_ROOT/var/log/greeting\"\n"}]}}),
    )
    .await;
    w.container("app", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    let ct = w.ready("app").await;
    let ct_root = roots.join(vmid(&ct).to_string());
    assert_eq!(
        std::fs::read_to_string(ct_root.join("etc/hc/app.conf")).unwrap(),
        "port=8080\n"
    );
    assert_eq!(
        std::fs::read_to_string(ct_root.join("var/log/greeting")).unwrap(),
        "hi there\n"
    );
    assert_eq!(ct.status.unwrap().provisioned_steps.len(), 2);
}

#[tokio::test]
async fn a_changed_host_key_is_refused_and_named() {
    // A pin that is not the server's key.
    let (w, roots) = World::with_ssh(
        "hostkey",
        Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    let template = format!("{}-files", w.ns);
    support::apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
               "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                        "files": [{"path": "/etc/pinned", "content": "x\n"}]}}),
    )
    .await;
    w.container("pinned", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    let ct = w
        .wait("pinned", "refuse the host key", 60, |ct| {
            reason(ct, "Provisioned").as_deref() == Some("HostKeyMismatch")
        })
        .await;
    assert_eq!(reason(&ct, "Stalled").as_deref(), Some("HostKeyMismatch"));
    assert!(
        !roots.join(vmid(&ct).to_string()).join("etc/pinned").exists(),
        "nothing pushed"
    );
}

#[tokio::test]
async fn a_step_that_keeps_failing_is_given_up_after_five_tries_and_runs_in_the_background() {
    let (w, roots) = World::with_ssh("giveup", None).await;
    let template = format!("{}-flaky", w.ns);
    let apply_template = |script: &str| {
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
               "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                        "scripts": [{"name": "flaky", "content": script}]}})
    };
    // A slow first run: the reconcile that starts it returns while it runs.
    support::apply(
        &w.kube,
        apply_template("echo run >> \"$PCT_ROOT/var/log/flaky.runs\"\nsleep 4\nexit 3\n"),
    )
    .await;
    w.container("flaky", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    w.wait("flaky", "say its steps run in the background", 60, |ct| {
        reason(ct, "Provisioned").as_deref() == Some("Provisioning")
    })
    .await;
    let ct = w
        .wait("flaky", "give the step up", 150, |ct| {
            reason(ct, "Stalled").as_deref() == Some("StepFailed")
        })
        .await;
    let cond = ct
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Provisioned")
        .unwrap()
        .clone();
    assert!(
        cond.message.contains("failed 5 times in a row"),
        "{}",
        cond.message
    );
    let runs_file = roots.join(vmid(&ct).to_string()).join("var/log/flaky.runs");
    let runs = || {
        std::fs::read_to_string(&runs_file)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(runs(), 5);
    // Given up: no sixth try, whatever wakes it.
    w.patch_spec("flaky", json!({"description": "poke"})).await;
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    assert_eq!(runs(), 5, "not run again while unchanged");
    // A changed step is tried again, and goes through.
    support::apply(
        &w.kube,
        apply_template("echo run >> \"$PCT_ROOT/var/log/flaky.runs\"\n"),
    )
    .await;
    w.ready("flaky").await;
    assert_eq!(runs(), 6);
}

#[tokio::test]
async fn a_credentials_secret_someone_else_owns_is_never_taken_over() {
    let (w, _roots) = World::with_ssh("secretconflict", None).await;
    let template = format!("{}-creds", w.ns);
    support::apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
               "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                        "scripts": [{"name": "credentials", "content":
                            "mkdir -p \"$PCT_ROOT/etc/infrahaus/credentials\"\nprintf 'PASSWORD=from-the-container\\n' > \"$PCT_ROOT/etc/infrahaus/credentials/nginx.env\"\n"}],
                        "services": [{"name": "nginx.service", "ports": [80]}]}}),
    )
    .await;
    // Someone's Secret already has the name the operator would use.
    support::apply(
        &w.kube,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "squat-credentials", "namespace": w.ns},
               "stringData": {"mine": "keep me"}}),
    )
    .await;
    w.container("squat", json!({"nodeRef": w.nodes[0], "templateRef": template}))
        .await;
    let ct = w
        .wait("squat", "refuse to take the Secret over", 90, |ct| {
            reason(ct, "Discovered").as_deref() == Some("SecretConflict")
        })
        .await;
    assert_eq!(reason(&ct, "Stalled").as_deref(), Some("SecretConflict"));
    let secret = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(w.kube.clone(), &w.ns)
        .get("squat-credentials")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["mine"],
        "untouched: no credential written into it"
    );
    assert_eq!(data["mine"].0, b"keep me");
    assert!(secret.metadata.owner_references.unwrap_or_default().is_empty());
}

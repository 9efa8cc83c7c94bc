//! `make demo`: a world of its own — etcd + kube-apiserver, pve-sim with three nodes and
//! realistic task durations, the SSH stand-in — and the operator as a process, running with the
//! Helm chart's ServiceAccount token (so the demo proves the chart's RBAC), with `examples/`
//! applied. It prints a line per object as it changes until everything is Ready, then how to
//! reach it and what to try. Ctrl-C stops everything it started.
//!
//! Environment: `BACKENDS=real` uses PostgreSQL and Redis instead of the embedded SQLite audit
//! trail and in-process locks; `DEMO_EXIT_WHEN_READY=1` stops once everything is Ready (CI);
//! `DEMO_TIMEOUT` (seconds, default 300) bounds the wait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use test_world::{CHART, kubectl};

/// Where the operator runs and its Lease lives (the examples' Secrets live there too).
const NAMESPACE: &str = "lxc-operator";
const KINDS: [&str; 3] = ["ProxmoxNode", "LxcTemplate", "LxcContainer"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let exit_when_ready = std::env::var("DEMO_EXIT_WHEN_READY").is_ok_and(|v| v == "1");
    let real_backends = std::env::var("BACKENDS").is_ok_and(|v| v == "real");
    let timeout = Duration::from_secs(
        std::env::var("DEMO_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    );
    let say = |what: &str| println!("[{:6.1}s] {what}", started.elapsed().as_secs_f64());

    say("starting etcd and kube-apiserver");
    let cp = tokio::task::spawn_blocking(test_world::control_plane).await?;
    let admin = cp.client().await;
    let dir = test_world::scratch_dir("demo")?;
    kubectl(cp, &["create", "namespace", NAMESPACE], None)?;

    let (kubeconfig, sa) = test_world::chart_identity(cp, &admin, NAMESPACE, "demo", &dir).await?;
    say(&format!(
        "CRDs and RBAC applied from {CHART} (helm template); the operator runs as ServiceAccount {NAMESPACE}/{sa}"
    ));

    say("starting pve-sim (pve1, pve2, pve3) and the SSH stand-in");
    let roots = dir.join("roots");
    std::fs::create_dir_all(&roots)?;
    let mut cfg = pve_sim::Config::default_with_nodes(&["pve1", "pve2", "pve3"]);
    for (task, ms) in [
        ("vzcreate", 4000),
        ("vzstart", 2000),
        ("vzshutdown", 1500),
        ("vzstop", 1000),
    ] {
        cfg.task_durations_ms.insert(task.into(), ms);
    }
    cfg.task_durations_ms.insert("default".into(), 1000);
    cfg.ct_root_dir = Some(roots.clone());
    let sim = pve_sim::PveSim::start(cfg).await?;
    let (key, ssh) = test_world::authorize_pve_host(sim.admin_url(), "pve1", &dir.join("ssh-home"), false)?;

    let listen = format!("127.0.0.1:{}", test_world::free_port());
    let page = format!("127.0.0.1:{}", test_world::free_port());
    let mut operator = start_operator(&kubeconfig, &listen, &page, &dir, real_backends)?;
    say(&format!(
        "operator started ({}; log: {})",
        if real_backends {
            "PostgreSQL audit trail, Redis locks"
        } else {
            "embedded SQLite audit trail, in-process locks"
        },
        dir.join("operator.log").display()
    ));

    let docs = test_world::examples(&test_world::ExampleTarget {
        url: sim.url(),
        fingerprint: sim.fingerprint_sha256(),
        token_secret: sim.token_secret(),
        username: sim.username(),
        password: sim.password(),
        ssh: &ssh,
        key: &key,
        poll_seconds: 5,
    })?;
    let manifests = dir.join("examples.yaml");
    let yaml: Vec<String> = docs
        .iter()
        .map(serde_yaml_ng::to_string)
        .collect::<Result<_, _>>()?;
    std::fs::write(&manifests, yaml.join("---\n"))?;
    kubectl(cp, &["apply", "-f", manifests.to_str().unwrap_or_default()], None)?;
    let wanted: Vec<(String, String)> = docs
        .iter()
        .filter(|d| KINDS.contains(&d["kind"].as_str().unwrap_or_default()))
        .map(|d| {
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            let ns = d["metadata"]["namespace"].as_str();
            let name = d["metadata"]["name"].as_str().unwrap_or_default();
            let key = match (kind.as_str(), ns) {
                ("LxcContainer", ns) => format!("{}/{name}", ns.unwrap_or("default")),
                _ => name.to_string(),
            };
            (kind, key)
        })
        .collect();
    say(&format!(
        "applied examples/: {} objects to bring to Ready",
        wanted.len()
    ));

    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    loop {
        let states = states(&admin).await?;
        let ready = wanted
            .iter()
            .filter(|w| states.get(w).is_some_and(|s| s == "Ready"))
            .count();
        for w in &wanted {
            let now = states.get(w).cloned().unwrap_or_else(|| "Pending".into());
            if seen.get(w) != Some(&now) {
                let was = seen.insert(w.clone(), now.clone());
                let change = match was {
                    Some(was) => format!("{was} → {now}"),
                    None => now,
                };
                say(&format!(
                    "{ready}/{} Ready · {} {}: {change}",
                    wanted.len(),
                    w.0,
                    w.1
                ));
            }
        }
        if ready == wanted.len() {
            break;
        }
        if let Ok(Some(status)) = operator.try_wait() {
            bail!(
                "the operator exited ({status}); its log: {}",
                dir.join("operator.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "not all Ready after {}s; the operator's log: {}",
                timeout.as_secs(),
                dir.join("operator.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let web = wanted
        .iter()
        .find(|w| w.0 == "LxcContainer")
        .map(|w| w.1.clone())
        .unwrap_or_else(|| "default/web-1".into());
    let (ns, name) = web.split_once('/').unwrap_or(("default", &web));
    println!(
        "\nall {} objects Ready in {:.1}s\n\n  status page  http://{page}/\n  metrics      http://{listen}/metrics\n  \
         export KUBECONFIG={}\n  kubectl      {}\n\nthings to try (in another terminal, after the export):\n  \
         kubectl -n {ns} patch lxc {name} --type merge -p '{{\"spec\":{{\"resources\":{{\"memoryMiB\":2048}}}}}}'   # scale memory\n  \
         kubectl -n {ns} patch lxc {name} --type merge -p '{{\"spec\":{{\"powerState\":\"Stopped\"}}}}'   # stop it\n  \
         kubectl -n {ns} delete lxc {name}   # delete it (and its Proxmox container)\n\nstop: Ctrl-C (everything this started stops with it)\n",
        wanted.len(),
        started.elapsed().as_secs_f64(),
        cp.kubeconfig.display(),
        cp.binaries.kubectl.display(),
    );
    if exit_when_ready {
        operator.kill()?;
        return Ok(());
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {
                let states = states(&admin).await.unwrap_or_default();
                for (k, now) in &states {
                    if seen.get(k) != Some(now) {
                        let was = seen.insert(k.clone(), now.clone()).unwrap_or_else(|| "new".into());
                        say(&format!("{} {}: {was} → {now}", k.0, k.1));
                    }
                }
                for k in seen.keys().filter(|k| !states.contains_key(k)).cloned().collect::<Vec<_>>() {
                    seen.remove(&k);
                    say(&format!("{} {}: gone", k.0, k.1));
                }
            }
        }
    }
    say("stopping");
    operator.kill()?;
    Ok(())
}

/// Starts `lxc-operator run` (built beside this program) with `kubeconfig`.
fn start_operator(
    kubeconfig: &Path,
    listen: &str,
    page: &str,
    dir: &Path,
    real_backends: bool,
) -> anyhow::Result<std::process::Child> {
    let binary = std::env::var_os("LXC_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("lxc-operator")))
                .unwrap_or_else(|| PathBuf::from("lxc-operator"))
        });
    let log = std::fs::File::create(dir.join("operator.log"))?;
    let mut cmd = std::process::Command::new(&binary);
    cmd.args([
        "run",
        "--listen",
        listen,
        "--status-listen",
        page,
        "--namespace",
        NAMESPACE,
        "--identity",
        "demo",
    ])
    .env("KUBECONFIG", kubeconfig)
    .env("LXC_OPERATOR_LEASE_SECONDS", "15")
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    if real_backends {
        cmd.env("LXC_OPERATOR_DATABASE_URL", test_world::postgres().url())
            .env("LXC_OPERATOR_REDIS_URL", test_world::redis().url());
    } else {
        cmd.arg("--sqlite-path").arg(dir.join("audit.db"));
    }
    cmd.spawn()
        .with_context(|| format!("start {} (built by `make demo`)", binary.display()))
}

/// Every node, template and container by (kind, name or namespace/name), with what it is now:
/// `Ready`, or the reason the Ready condition gives.
async fn states(client: &kube::Client) -> anyhow::Result<BTreeMap<(String, String), String>> {
    let mut out = BTreeMap::new();
    for (kind, plural, namespaced) in [
        ("ProxmoxNode", "proxmoxnodes", false),
        ("LxcTemplate", "lxctemplates", false),
        ("LxcContainer", "lxccontainers", true),
    ] {
        let resource = ApiResource {
            group: "lxc.infrahaus.dev".into(),
            version: "v1alpha1".into(),
            api_version: "lxc.infrahaus.dev/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        for obj in api.list(&ListParams::default()).await? {
            let name = obj.metadata.name.clone().unwrap_or_default();
            let key = match (namespaced, &obj.metadata.namespace) {
                (true, Some(ns)) => format!("{ns}/{name}"),
                _ => name,
            };
            out.insert((kind.to_string(), key), state(&obj));
        }
    }
    Ok(out)
}

fn state(obj: &DynamicObject) -> String {
    let status = &obj.data["status"];
    let current = status["observedGeneration"].as_i64() == obj.metadata.generation
        || status["observedGeneration"].is_null();
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    match ready {
        Some(c) if c["status"] == "True" && current => "Ready".into(),
        Some(c) => c["reason"].as_str().unwrap_or("Pending").to_string(),
        None => status["phase"].as_str().unwrap_or("Pending").to_string(),
    }
}

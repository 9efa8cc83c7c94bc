//! One run: the world, N containers, the measurements, the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use test_world::kubectl;

use crate::Args;
use crate::probes::{self, is_task_poll};
use crate::procs::{Watched, memory_kib};

const NAMESPACE: &str = "lxc-operator";
const TENANT: &str = "bench";
const TEMPLATE: &str = "bench-debian";
/// pve-sim's `--realistic` durations (`pve_sim::config::REALISTIC_TASK_MS`, `set_realistic`).
const CREATE_S: f64 = 8.0;
const START_S: f64 = 1.5;
const STORAGE_ALLOC_S: f64 = 1.0;

/// The requests the benchmark itself sends, by "VERB resource", to take them out of the API
/// server's counts.
#[derive(Default)]
struct Own(Mutex<BTreeMap<String, f64>>);

impl Own {
    fn add(&self, key: &str, n: f64) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_insert(0.0) += n;
    }
    fn take(&self) -> BTreeMap<String, f64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "lxc.infrahaus.dev".into(),
        version: "v1alpha1".into(),
        api_version: "lxc.infrahaus.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn say(started: Instant, what: &str) {
    println!("[{:7.1}s] {what}", started.elapsed().as_secs_f64());
}

pub async fn run(n: usize, args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let machine = machine();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for bin in [&args.operator_bin, &args.pve_sim_bin] {
        if !bin.exists() {
            bail!(
                "{} not found: build it first (`cargo build --release --bin lxc-operator -p lxc-operator -p pve-sim -p lxc-bench`, or `make bench-scale`)",
                bin.display()
            );
        }
    }
    let profile = if args.operator_bin.to_string_lossy().contains("/release/") {
        "release"
    } else {
        "debug"
    };
    say(
        started,
        &format!("N={n}: starting etcd + kube-apiserver, PostgreSQL, Redis (test world)"),
    );
    let cp = tokio::task::spawn_blocking(test_world::control_plane).await?;
    let pg = tokio::task::spawn_blocking(|| test_world::postgres().url()).await?;
    let redis = tokio::task::spawn_blocking(|| test_world::redis().url()).await?;
    let admin = cp.client().await;
    let dir = test_world::scratch_dir("bench")?;

    // The API server's own requests (its identity lease, ...) over a quiet window, to take out
    // of the operator's counts by rate.
    let m0 = apiserver_metrics(&admin).await?;
    let b0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.baseline_seconds)).await;
    let baseline = diff(&m0, &apiserver_metrics(&admin).await?);
    let baseline_secs = b0.elapsed().as_secs_f64();

    for ns in [NAMESPACE, TENANT] {
        kubectl(cp, &["create", "namespace", ns], None)?;
    }
    let (kubeconfig, _) = test_world::chart_identity(cp, &admin, NAMESPACE, "bench", &dir).await?;

    say(
        started,
        &format!("starting pve-sim ({} nodes, --realistic)", args.nodes),
    );
    let nodes: Vec<String> = (1..=args.nodes).map(|i| format!("pve{i}")).collect();
    let sim_log = dir.join("pve-sim.log");
    let mut sim_cmd = Command::new(&args.pve_sim_bin);
    sim_cmd
        .args(["--listen", "127.0.0.1:0", "--admin-listen"])
        .arg(format!("127.0.0.1:{}", test_world::free_port()))
        .args(["--nodes", &nodes.join(","), "--realistic"]);
    let mut sim = Watched::spawn("pve-sim", sim_cmd, &sim_log, true)?;
    let info: Value = serde_json::from_str(&sim.first_line(&sim_log, Duration::from_secs(60))?)?;
    let field = |k: &str| {
        info[k]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("pve-sim printed no {k}"))
    };
    let (sim_url, admin_url) = (field("url")?, field("admin_url")?);

    apply_world(
        &admin,
        &nodes,
        &sim_url,
        &field("fingerprint_sha256")?,
        &field("token_id")?,
        &field("token_secret")?,
        args,
    )
    .await?;

    let metrics_addr = format!("127.0.0.1:{}", test_world::free_port());
    let op_log = dir.join("operator.log");
    let mut op_cmd = Command::new(&args.operator_bin);
    op_cmd
        .args([
            "run",
            "--listen",
            &metrics_addr,
            "--namespace",
            NAMESPACE,
            "--identity",
            "bench",
        ])
        .args(["--container-concurrency", &args.container_concurrency.to_string()])
        .env("KUBECONFIG", &kubeconfig)
        .env("LXC_OPERATOR_DATABASE_URL", &pg)
        .env("LXC_OPERATOR_REDIS_URL", &redis)
        .env("LXC_OPERATOR_LOG_FORMAT", "text");
    let mut operator = Watched::spawn("lxc-operator", op_cmd, &op_log, false)?;
    say(
        started,
        &format!(
            "operator started ({profile} build, --container-concurrency {}, PostgreSQL + Redis; log: {})",
            args.container_concurrency,
            op_log.display()
        ),
    );

    // Nodes and template Ready before the containers come.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let not_ready = not_ready_infra(&admin).await?;
        if not_ready.is_empty() {
            break;
        }
        operator.check_alive(&op_log)?;
        if Instant::now() > deadline {
            bail!(
                "not Ready after 120 s: {not_ready:?}; the operator's log: {}",
                op_log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    say(started, "nodes and template Ready");

    let own = Own::default();
    let cts = Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        TENANT,
        &resource("LxcContainer", "lxccontainers"),
    );
    let pve_before = probes::pve_stats(&admin_url).await?;
    let api_before = apiserver_metrics(&admin).await?;
    let applied = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let cts = cts.clone();
            async move {
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
                    "metadata": {"name": format!("ct-{i:05}"), "namespace": TENANT},
                    "spec": {"nodeSelector": {"bench": "scale"}, "templateRef": TEMPLATE, "network": [{"name": "eth0"}]},
                }))?;
                cts.create(&PostParams::default(), &obj).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    own.add("POST lxccontainers", n as f64);
    say(
        started,
        &format!(
            "{n} containers applied in {:.1}s",
            applied.elapsed().as_secs_f64()
        ),
    );

    let mut last_report = Instant::now();
    let placement = loop {
        let list = cts.list(&ListParams::default()).await?;
        own.add("LIST lxccontainers", 1.0);
        let ready = list.items.iter().filter(|o| is_ready(o)).count();
        if ready == n {
            let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
            for o in &list.items {
                let node = o.data["status"]["node"].as_str().unwrap_or("?").to_string();
                *per_node.entry(node).or_insert(0) += 1;
            }
            break per_node;
        }
        operator.check_alive(&op_log)?;
        if last_report.elapsed() > Duration::from_secs(15) {
            last_report = Instant::now();
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for o in list.items.iter().filter(|o| !is_ready(o)) {
                *reasons.entry(reason(o)).or_insert(0) += 1;
            }
            say(started, &format!("{ready}/{n} Ready; the others: {reasons:?}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let wall = applied.elapsed().as_secs_f64();
    let pve_after = probes::pve_stats(&admin_url).await?;
    let api_after = apiserver_metrics(&admin).await?;
    say(
        started,
        &format!("all {n} Ready after {wall:.1}s; placement {placement:?}"),
    );
    let (hwm_ready, _) = memory_kib(operator.pid());

    let pve_ready = probes::pve_delta(&pve_before, &pve_after);
    let api_ready = operator_requests(
        &api_before,
        &api_after,
        &own.take(),
        &baseline,
        baseline_secs,
        wall,
    );

    // Steady state: nothing changes; what the operator still asks of Proxmox and the API server.
    say(
        started,
        &format!("steady state: watching for {}s", args.steady_seconds),
    );
    let steady_t = Instant::now();
    let pve_s0 = probes::pve_stats(&admin_url).await?;
    let api_s0 = apiserver_metrics(&admin).await?;
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let pve_s1 = probes::pve_stats(&admin_url).await?;
    let api_s1 = apiserver_metrics(&admin).await?;
    let steady_secs = steady_t.elapsed().as_secs_f64();
    operator.check_alive(&op_log)?;
    let pve_steady = probes::pve_delta(&pve_s0, &pve_s1);
    let api_steady = operator_requests(
        &api_s0,
        &api_s1,
        &own.take(),
        &baseline,
        baseline_secs,
        steady_secs,
    );

    // No-op reconciles: an annotation touched on every container (a user change that starts a
    // reconcile but needs nothing of Proxmox); the histogram's delta.
    say(
        started,
        "no-op reconciles: touching an annotation on every container",
    );
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let h0 = probes::reconcile_histogram(&probes::http_get(&metrics_url).await?, "LxcContainer");
    let pve_n0 = probes::pve_stats(&admin_url).await?;
    futures::stream::iter(0..n)
        .map(|i| {
            let cts = cts.clone();
            async move {
                let patch = json!({"metadata": {"annotations": {"bench.lxc.infrahaus.dev/touched": "1"}}});
                cts.patch(
                    &format!("ct-{i:05}"),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let touch_deadline = Instant::now() + Duration::from_secs(60);
    let h1 = loop {
        let h = probes::reconcile_histogram(&probes::http_get(&metrics_url).await?, "LxcContainer");
        if h.1 - h0.1 >= n as f64 || Instant::now() > touch_deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            break probes::reconcile_histogram(&probes::http_get(&metrics_url).await?, "LxcContainer");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let pve_noop = probes::pve_delta(&pve_n0, &probes::pve_stats(&admin_url).await?);
    let noop_count = h1.1 - h0.1;
    let p50 = probes::quantile(&h0.0, &h1.0, 0.5);
    let p99 = probes::quantile(&h0.0, &h1.0, 0.99);
    let (hwm, rss) = memory_kib(operator.pid());
    operator.stop();
    sim.stop();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // The report.
    let c = args.max_concurrent_tasks.unwrap_or(4) as f64;
    let critical = placement
        .values()
        .map(|&k| {
            let k = k as f64;
            (k * (CREATE_S + START_S) / c)
                .max(k * STORAGE_ALLOC_S + (CREATE_S - STORAGE_ALLOC_S) + START_S)
                .max(CREATE_S + START_S)
        })
        .fold(0.0, f64::max);
    let calls: u64 = pve_ready
        .iter()
        .filter(|(k, _)| !is_task_poll(k))
        .map(|(_, v)| v.0)
        .sum();
    let mutating: u64 = pve_ready
        .iter()
        .filter(|(k, v)| !is_task_poll(k) && v.1)
        .map(|(_, v)| v.0)
        .sum();
    let polls: u64 = pve_ready
        .iter()
        .filter(|(k, _)| is_task_poll(k))
        .map(|(_, v)| v.0)
        .sum();
    let steady_calls: u64 = pve_steady.values().map(|v| v.0).sum();
    let steady_mutating: u64 = pve_steady.values().filter(|v| v.1).map(|v| v.0).sum();
    let per_min = |x: f64| x * 60.0 / steady_secs;
    let api_total: f64 = api_ready.values().sum();
    let api_steady_total: f64 = api_steady.values().sum();
    let noop_pve: u64 = pve_noop.values().map(|v| v.0).sum();
    let nf = n as f64;
    let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |s| format!("{:.1} ms", s * 1000.0));

    let mut md = String::new();
    writeln!(md, "# Scale benchmark: N = {n}\n")?;
    writeln!(
        md,
        "Machine: {machine}; load average before: {}; after: {}",
        load_before.trim(),
        load_after.trim()
    )?;
    writeln!(
        md,
        "World: pve-sim process, {} nodes, `--realistic` (create {CREATE_S} s, start {START_S} s, storage allocation {STORAGE_ALLOC_S} s under the storage lock); \
         nodes' maxConcurrentTasks {}; operator {profile} build as a process, `--container-concurrency {}`, PostgreSQL + Redis, the chart's ServiceAccount; \
         no provisioning (the template has no files, packages, scripts or services); 1 GiB root disks on each node's 500 GiB storage.\n",
        args.nodes,
        args.max_concurrent_tasks
            .map_or("4 (the default)".to_string(), |m| m.to_string()),
        args.container_concurrency
    )?;
    writeln!(md, "| Figure | Value | Goal |")?;
    writeln!(md, "|---|---|---|")?;
    writeln!(md, "| Containers | {n} (placed {placement:?}) | |")?;
    writeln!(md, "| Time from apply to all Ready | {wall:.1} s | |")?;
    writeln!(
        md,
        "| Simulated critical path (formula below) | {critical:.1} s | |"
    )?;
    writeln!(
        md,
        "| Operator overhead ratio (wall / critical path) | {:.2} | close to 1 |",
        wall / critical
    )?;
    writeln!(
        md,
        "| Proxmox calls per container (no task-status polls) | {:.2} | ≤ 8 |",
        calls as f64 / nf
    )?;
    writeln!(
        md,
        "| … of which mutating, per container | {:.2} | |",
        mutating as f64 / nf
    )?;
    writeln!(
        md,
        "| Task-status polls per container | {:.2} | |",
        polls as f64 / nf
    )?;
    writeln!(
        md,
        "| API-server requests per container (operator's) | {:.2} | |",
        api_total / nf
    )?;
    writeln!(
        md,
        "| Steady-state Proxmox calls per minute | {:.1} ({:.1} per node) | proportional to nodes |",
        per_min(steady_calls as f64),
        per_min(steady_calls as f64) / args.nodes as f64
    )?;
    writeln!(md, "| … of which mutating | {steady_mutating} | 0 |")?;
    writeln!(
        md,
        "| Steady-state API-server requests per minute (operator's) | {:.1} | |",
        per_min(api_steady_total)
    )?;
    writeln!(
        md,
        "| Operator peak RSS (VmHWM), at all Ready / at the end | {:.1} MiB / {:.1} MiB | ≤ 64 MiB at 1000 |",
        hwm_ready as f64 / 1024.0,
        hwm as f64 / 1024.0
    )?;
    writeln!(
        md,
        "| Operator RSS at the end (VmRSS) | {:.1} MiB | |",
        rss as f64 / 1024.0
    )?;
    writeln!(
        md,
        "| No-op reconciles measured | {noop_count} (Proxmox calls meanwhile: {noop_pve}) | {n} |"
    )?;
    writeln!(
        md,
        "| No-op reconcile latency p50 / p99 | {} / {} | p99 < 20 ms |",
        ms(p50),
        ms(p99)
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "Critical path: per node with k containers and C = maxConcurrentTasks, T(k) = max(k·(create + start)/C, k·alloc + (create − alloc) + start, create + start) \
         (all slots busy; or creates taking turns at the node's storage lock; or one container), and the run's critical path is the largest T over the nodes. \
         It is a lower bound of the simulated task time, so the ratio is ≥ 1 and what is above 1 is the operator's (and the machine's) share; \
         pvestatd's simulated status delay (10 s) is not in it.\n"
    )?;
    writeln!(
        md,
        "Proxmox calls from apply to all Ready (pve-sim `/requests/stats`):\n"
    )?;
    table(&mut md, &pve_ready, nf)?;
    writeln!(md, "\nProxmox calls in the steady state ({steady_secs:.0} s):\n")?;
    table(&mut md, &pve_steady, 1.0)?;
    writeln!(
        md,
        "\nAPI-server requests from apply to all Ready, per container (`apiserver_request_total` by verb and resource; \
         the metric has no user or user-agent label, so the benchmark's own requests (creates, 1 s LISTs) are subtracted \
         and the API server's own background rate, measured over {baseline_secs:.0} s before anything ran, is taken out):\n"
    )?;
    writeln!(md, "| Request | Per container |")?;
    writeln!(md, "|---|---|")?;
    for (k, v) in api_ready.iter().filter(|(_, v)| **v >= 0.5) {
        writeln!(md, "| {k} | {:.2} |", v / nf)?;
    }
    writeln!(
        md,
        "\nAPI-server requests in the steady state ({steady_secs:.0} s):\n"
    )?;
    writeln!(md, "| Request | Count |")?;
    writeln!(md, "|---|---|")?;
    for (k, v) in api_steady.iter().filter(|(_, v)| **v >= 0.5) {
        writeln!(md, "| {k} | {v:.0} |")?;
    }
    println!("\n{md}");
    let result = json!({
        "n": n, "all_ready": true, "wall_seconds": wall, "critical_path_seconds": critical,
        "overhead_ratio": wall / critical, "pve_calls_per_container": calls as f64 / nf,
        "pve_mutating_per_container": mutating as f64 / nf, "task_polls_per_container": polls as f64 / nf,
        "api_requests_per_container": api_total / nf, "steady_pve_calls_per_minute": per_min(steady_calls as f64),
        "steady_pve_mutating": steady_mutating, "peak_rss_kib": hwm, "noop_reconciles": noop_count,
        "noop_p50_seconds": p50, "noop_p99_seconds": p99, "profile": profile,
    });
    println!("RESULT {result}");
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        let file = out.join(format!("scale-{n}.md"));
        std::fs::write(&file, &md)?;
        say(started, &format!("written {}", file.display()));
    }
    Ok(())
}

fn table(md: &mut String, calls: &BTreeMap<String, (u64, bool)>, per: f64) -> anyhow::Result<()> {
    let label = if per == 1.0 { "Count" } else { "Per container" };
    writeln!(md, "| Endpoint | Mutating | {label} |")?;
    writeln!(md, "|---|---|---|")?;
    for (k, (c, m)) in calls {
        let note = if is_task_poll(k) {
            " (task poll, not counted)"
        } else {
            ""
        };
        writeln!(
            md,
            "| `{k}`{note} | {} | {:.2} |",
            if *m { "yes" } else { "no" },
            *c as f64 / per
        )?;
    }
    Ok(())
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")
                .map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!(
        "{nproc} CPUs ({cpu}), {:.1} GiB memory, Linux {} (shared with other work)",
        mem as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

async fn apiserver_metrics(client: &kube::Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Ok(probes::apiserver_requests(&text))
}

fn diff(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// The operator's requests in a window of `secs`: all requests, less the benchmark's own, less
/// the API server's background rate.
fn operator_requests(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    own: &BTreeMap<String, f64>,
    baseline: &BTreeMap<String, f64>,
    baseline_secs: f64,
    secs: f64,
) -> BTreeMap<String, f64> {
    diff(before, after)
        .into_iter()
        .map(|(k, v)| {
            let background = baseline.get(&k).map_or(0.0, |b| b * secs / baseline_secs);
            let mine = own.get(&k).copied().unwrap_or(0.0);
            let left = (v - mine - background).max(0.0);
            (k, left.round())
        })
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn is_ready(obj: &DynamicObject) -> bool {
    let status = &obj.data["status"];
    let current = status["observedGeneration"].as_i64() == obj.metadata.generation;
    current
        && status["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn reason(obj: &DynamicObject) -> String {
    obj.data["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("Pending")
        .to_string()
}

/// The ProxmoxNodes and the template not Ready yet.
async fn not_ready_infra(client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (kind, plural) in [("ProxmoxNode", "proxmoxnodes"), ("LxcTemplate", "lxctemplates")] {
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource(kind, plural));
        for obj in api.list(&ListParams::default()).await? {
            if !is_ready(&obj) {
                out.push(format!(
                    "{kind} {}: {}",
                    obj.metadata.name.clone().unwrap_or_default(),
                    reason(&obj)
                ));
            }
        }
    }
    Ok(out)
}

/// The credentials Secret, the ProxmoxNodes (labelled for the containers' nodeSelector, with
/// VMID ranges of their own) and the template.
#[allow(clippy::too_many_arguments)]
async fn apply_world(
    client: &kube::Client,
    nodes: &[String],
    url: &str,
    fingerprint: &str,
    token_id: &str,
    token_secret: &str,
    args: &Args,
) -> anyhow::Result<()> {
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "pve-credentials", "namespace": NAMESPACE},
        "stringData": {"tokenId": token_id, "tokenSecret": token_secret},
    }))?;
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await?;
    let node_api = Api::<DynamicObject>::all_with(client.clone(), &resource("ProxmoxNode", "proxmoxnodes"));
    for (i, name) in nodes.iter().enumerate() {
        let base = 100_000 * (i as i64 + 1);
        let mut spec = json!({
            "endpoint": url, "nodeName": name,
            "credentialsSecretRef": {"name": "pve-credentials", "namespace": NAMESPACE},
            "tls": {"fingerprintSha256": fingerprint},
            "defaults": {"storage": "local-lvm", "templateStorage": "local", "bridge": "vmbr0"},
            "vmidRange": {"min": base, "max": base + 99_999},
        });
        if let Some(m) = args.max_concurrent_tasks {
            spec["maxConcurrentTasks"] = json!(m);
        }
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode",
            "metadata": {"name": name, "labels": {"bench": "scale"}}, "spec": spec,
        }))?;
        node_api.create(&PostParams::default(), &obj).await?;
    }
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
        "metadata": {"name": TEMPLATE},
        "spec": {
            "osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
            // 1 GiB root disks: 1,000 containers over three nodes fit each node's simulated
            // 500 GiB storage (with 4 GiB, the preflight rightly stops most at InsufficientStorage).
            "defaults": {"cores": 1, "memoryMiB": 512, "rootfsSizeGiB": 1, "unprivileged": true},
        },
    }))?;
    Api::<DynamicObject>::all_with(client.clone(), &resource("LxcTemplate", "lxctemplates"))
        .create(&PostParams::default(), &template)
        .await?;
    Ok(())
}

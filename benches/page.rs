//! The status page at scale: 10,000 `LxcContainer`s in the page's caches and 1,000,000 audit
//! rows in a real PostgreSQL (the test world's). Times the overview, a container page and an
//! audit page over real HTTP (p50, p95, max of many requests each) and the page's memory cost
//! (RSS before and after the caches are loaded), prints a table and writes it, with the
//! machine, to `bench-results/page.txt`. Run with `make bench-page`; not part of `make test`.
//!
//! The caches are loaded directly (`PageCaches::from_stores` and its `ContainerWriter`, the same
//! stores and overview index the watches fill, through the same events) with synthetic objects
//! shaped like the operator's: with status, conditions, VMID, node and address, so every view
//! has its real work to do.

use std::path::Path;
use std::time::{Duration, Instant};

use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use lxc_operator::audit::AuditStore;
use lxc_operator::crd::{LxcContainer, LxcTemplate, ProxmoxNode};
use lxc_operator::page::{PageCaches, PageState};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const CONTAINERS: usize = 10_000;
const AUDIT_ROWS: i64 = 1_000_000;
const NODES: usize = 20;
const REQUESTS: usize = 200;
const PHASES: [&str; 6] = ["Ready", "Ready", "Ready", "Stopped", "Provisioning", "Failed"];

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn node(i: usize) -> ProxmoxNode {
    serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "ProxmoxNode",
        "metadata": {"name": format!("pve{i}"), "uid": format!("node-uid-{i}"), "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"endpoint": format!("https://pve{i}.lan:8006"), "nodeName": format!("pve{i}"),
                 "credentialsSecretRef": {"name": "token", "namespace": "lxc-operator"}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Reachable", "message": "ok",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}
    }))
    .expect("a ProxmoxNode")
}

fn template(i: usize) -> LxcTemplate {
    serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate",
        "metadata": {"name": format!("debian-{i}"), "uid": format!("tpl-uid-{i}"), "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                 "scripts": [{"name": "hello", "content": "echo hello\n"}]}
    }))
    .expect("an LxcTemplate")
}

/// Container `i`: its uid is the one the synthetic audit rows name (`uid-<i>`).
fn container(i: usize) -> LxcContainer {
    let phase = PHASES[i % PHASES.len()];
    let ready = if matches!(phase, "Ready" | "Stopped") {
        "True"
    } else {
        "False"
    };
    let condition = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "Synthetic", "message": "benchmark object",
               "lastTransitionTime": "2026-01-01T00:05:00Z", "observedGeneration": 1})
    };
    serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
        "metadata": {"name": format!("ct-{i}"), "namespace": format!("team-{}", i % 25),
                     "uid": format!("uid-{i}"), "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeRef": format!("pve{}", i % NODES), "templateRef": format!("debian-{}", i % 3),
                 "description": "a container of the benchmark", "tags": ["bench", "web"]},
        "status": {"phase": phase, "node": format!("pve{}", i % NODES), "vmid": 1000 + i,
                   "ip": format!("10.{}.{}.{}/16", i / 65536, (i / 256) % 256, i % 256),
                   "observedGeneration": 1,
                   "conditions": [condition("Ready", ready), condition("Created", "True"),
                                  condition("Configured", "True"), condition("Powered", "True"),
                                  condition("Provisioned", "True"), condition("Discovered", "True")],
                   "provisionedSteps": [{"name": "hello", "digest": "sha256:0123456789abcdef"}]}
    }))
    .expect("an LxcContainer")
}

fn store<K>(objects: Vec<K>) -> reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for o in objects {
        writer.apply_watcher_event(&Event::InitApply(o));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}

async fn fill_audit() -> (AuditStore, Duration) {
    let name = format!("bench_page_{}", std::process::id());
    let mut admin = PgConnection::connect(&test_world::postgres().url())
        .await
        .expect("postgres");
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&mut admin)
        .await
        .expect("drop");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{name}",
        test_world::postgres().port
    );
    let store = AuditStore::connect(Some(&url), Path::new("unused.db"))
        .await
        .expect("audit store");
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let started = Instant::now();
    // One statement, generate_series: both tables, a million calls, in seconds.
    sqlx::query(AssertSqlSafe(format!(
        "WITH i AS (
           INSERT INTO audit_intents (at, actor, object_kind, object_namespace, object_name,
                                      object_uid, generation, phase, operation, node, vmid, params)
           SELECT now() - g * interval '100 milliseconds', 'lxc-operator/bench', 'LxcContainer',
                  'team-' || (g % {CONTAINERS} % 25), 'ct-' || (g % {CONTAINERS}), 'uid-' || (g % {CONTAINERS}),
                  1, 'apply',
                  CASE WHEN g % 2 = 0 THEN 'update container config' ELSE 'start container' END,
                  'pve' || (g % {CONTAINERS} % {NODES}), 1000 + g % {CONTAINERS}, '{{}}'::jsonb
           FROM generate_series(1, {AUDIT_ROWS}) AS g
           RETURNING id, at)
         INSERT INTO audit_outcomes (intent_id, at, outcome, error, error_class, duration_ms)
         SELECT id, at + interval '2 seconds',
                CASE WHEN id % 200 = 0 THEN 'failed' ELSE 'succeeded' END,
                CASE WHEN id % 200 = 0 THEN 'CT is locked' END,
                CASE WHEN id % 200 = 0 THEN 'locked' END, 2000
         FROM i"
    )))
    .execute(&mut conn)
    .await
    .expect("fill the trail");
    sqlx::query("ANALYZE").execute(&mut conn).await.expect("analyze");
    (store, started.elapsed())
}

struct Timing {
    what: &'static str,
    path: String,
    bytes: usize,
    p50: Duration,
    p95: Duration,
    max: Duration,
}

async fn time(client: &reqwest::Client, base: &str, what: &'static str, path: String) -> Timing {
    let url = format!("{base}{path}");
    let mut bytes = 0;
    // Warm-up: the first request of each kind pays for connections and plans.
    for _ in 0..3 {
        client
            .get(&url)
            .send()
            .await
            .expect("GET")
            .bytes()
            .await
            .expect("body");
    }
    let mut times = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let response = client.get(&url).send().await.expect("GET");
        assert!(response.status().is_success(), "{url}: {}", response.status());
        bytes = response.bytes().await.expect("body").len();
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    Timing {
        what,
        path,
        bytes,
        p50: at(0.5),
        p95: at(0.95),
        max: at(1.0),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores available, {mem_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // reqwest is built without a default TLS provider (the operator picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (audit, filled) = fill_audit().await;
    eprintln!("{AUDIT_ROWS} audit calls written in {filled:.1?}");

    let before = rss_kib();
    let (caches, mut containers) = PageCaches::from_stores(
        store((0..NODES).map(node).collect()),
        store((0..3).map(template).collect()),
    );
    // As the page's watch fills them: a listing, applied to the store and the overview's index.
    containers.apply(&Event::Init);
    for i in 0..CONTAINERS {
        containers.apply(&Event::InitApply(container(i)));
    }
    containers.apply(&Event::InitDone);
    let after = rss_kib();
    let per_container = (after.saturating_sub(before) as f64 * 1024.0) / CONTAINERS as f64;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(lxc_operator::page::serve(
        listener,
        PageState::new(caches, audit, None),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let timings = [
        time(&client, &base, "overview (10,000 containers)", "/".into()).await,
        time(
            &client,
            &base,
            "overview, one namespace",
            "/?namespace=team-7".into(),
        )
        .await,
        time(
            &client,
            &base,
            "container page (+ its audit rows)",
            "/containers/team-17/ct-4242".into(),
        )
        .await,
        time(&client, &base, "audit, newest page", "/audit".into()).await,
        time(
            &client,
            &base,
            "audit, deep keyset page",
            format!("/audit?before={}", AUDIT_ROWS / 2),
        )
        .await,
        time(
            &client,
            &base,
            "audit, failed calls",
            "/audit?outcome=failed".into(),
        )
        .await,
    ];

    let mut out = String::new();
    out.push_str(&format!(
        "# lxc-operator status page benchmark (benches/page.rs; `make bench-page`)\n\
         machine: {}\n\
         build: release (cargo bench), page served over HTTP on 127.0.0.1, {REQUESTS} requests per row\n\
         data: {CONTAINERS} LxcContainers, {NODES} ProxmoxNodes, 3 LxcTemplates in the page caches; \
         {AUDIT_ROWS} audit calls in PostgreSQL (filled in {:.1} s)\n\n",
        machine(),
        filled.as_secs_f64()
    ));
    out.push_str(&format!(
        "| {:<36} | {:>9} | {:>9} | {:>9} | {:>9} |\n|{:-<38}|{:-<11}|{:-<11}|{:-<11}|{:-<11}|\n",
        "page", "p50 ms", "p95 ms", "max ms", "KiB", "", "", "", "", ""
    ));
    for t in &timings {
        out.push_str(&format!(
            "| {:<36} | {:>9} | {:>9} | {:>9} | {:>9} |\n",
            t.what,
            ms(t.p50),
            ms(t.p95),
            ms(t.max),
            t.bytes / 1024
        ));
    }
    out.push_str(&format!(
        "\nmemory: RSS {:.1} MiB before the caches were loaded, {:.1} MiB after: {:.1} MiB for \
         {CONTAINERS} containers, about {:.1} KiB per container\n",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        per_container / 1024.0
    ));
    for t in &timings {
        out.push_str(&format!("path {}: {}\n", t.what, t.path));
    }
    print!("{out}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results/page.txt");
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("bench-results/");
    std::fs::write(&path, &out).expect("write the results");
    eprintln!("written to {}", path.display());
}

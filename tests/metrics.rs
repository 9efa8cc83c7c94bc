//! `/metrics` of a real `lxc-operator run` process (Postgres audit, Redis locks, pve-sim, the
//! SSH stand-in) after a provisioned container went Ready: Prometheus' own text parser reads
//! it and promlint finds nothing (`infra/promcheck/`), every family the README lists is there
//! and was fed by the real code paths, and no label names an object.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::{World, apply};

/// The families `/metrics` must carry once a provisioned container is Ready, each fed by the
/// pipeline by then (a family never fed is not written at all, so it fails here).
/// `controller_runtime_reconcile_errors_total` is left out: it appears with the first error.
const FAMILIES: &[&str] = &[
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_time_seconds",
    "controller_runtime_active_workers",
    "workqueue_depth",
    "lxc_operator_reconcile_halts_total",
    "lxc_operator_proxmox_calls_total",
    "lxc_operator_proxmox_call_seconds",
    "lxc_operator_leader",
    "lxc_operator_container_phase_seconds",
    "lxc_operator_container_first_ready_seconds",
    "lxc_operator_proxmox_task_seconds",
    "lxc_operator_locks_held",
    "lxc_operator_lock_wait_seconds",
    "lxc_operator_audit_writes_total",
    "lxc_operator_ssh_sessions_open",
    "lxc_operator_ssh_sessions_opened_total",
    "lxc_operator_provision_steps_total",
    "lxc_operator_build_info",
];

/// Samples by series name (`name{labels}` as written), from the text format.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` (exactly that metric name) whose labels contain `labels`.
fn sum(samples: &BTreeMap<String, f64>, name: &str, labels: &str) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let metric = series.split('{').next().unwrap_or_default();
            metric == name && series.contains(labels)
        })
        .map(|(_, v)| v)
        .sum()
}

/// Runs `promcheck` on `text`: (families as "name type count" lines, problems).
fn promcheck(text: &str) -> (BTreeMap<String, (String, usize)>, String, bool) {
    use std::io::Write;
    let mut child = Command::new(test_world::promcheck().expect("promcheck (infra/test-world/bootstrap.sh)"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promcheck");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let families = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (name, kind, n) = (words.next()?, words.next()?, words.next()?.parse().ok()?);
            Some((name.to_string(), (kind.to_string(), n)))
        })
        .collect();
    (
        families,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn start_operator(ns: &str, port: u16, log: &std::path::Path) -> Child {
    let cp = test_world::control_plane();
    Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args([
            "--namespace",
            ns,
            "--identity",
            "metrics-0",
            "--lease-seconds",
            "3",
        ])
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--database-url={}", test_world::postgres().url()))
        .arg(format!("--redis-url={}", test_world::redis().url()))
        .env_remove("LXC_OPERATOR_REPLICAS")
        .env_remove("LXC_OPERATOR_STATUS_LISTEN")
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lxc-operator")
}

struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn scrape(port: u16) -> String {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_family_parses_lints_clean_and_is_fed_after_a_container_went_ready() {
    let (w, _roots) = World::with_ssh_without_operator("metrics", None).await;
    let template = format!("{}-app", w.ns);
    apply(
        &w.kube,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
            "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                "files": [{"path": "/etc/app.conf", "mode": "0600", "content": "port=8080\n"}],
                "packages": {"apt": ["nginx"]},
                "scripts": [{"name": "hello", "content": "echo hello\n"}]}}),
    )
    .await;
    let dir = support::scratch("metrics-operator");
    let port = test_world::free_port();
    let _operator = Stop(start_operator(&w.ns, port, &dir.join("operator.log")));
    w.container(
        "metered-ct",
        json!({"nodeRef": w.nodes[0], "templateRef": template}),
    )
    .await;
    let ct = w.ready("metered-ct").await;
    let vmid = support::vmid(&ct).to_string();

    let text = scrape(port).await;
    std::fs::write(dir.join("metrics.txt"), &text).unwrap();
    let (families, problems, clean) = promcheck(&text);
    assert!(clean, "promcheck refused /metrics:\n{problems}\n{text}");
    let values = samples(&text);
    for family in FAMILIES {
        let Some((kind, n)) = families.get(*family) else {
            panic!("{family} missing; families: {families:?}");
        };
        assert!(*n > 0, "{family} ({kind}) has no sample:\n{text}");
        let fed_value = match kind.as_str() {
            "HISTOGRAM" => sum(&values, &format!("{family}_count"), ""),
            _ => values
                .iter()
                .filter(|(s, _)| s.split('{').next() == Some(*family))
                .count() as f64,
        };
        assert!(fed_value > 0.0, "{family} ({kind}) was never fed:\n{text}");
    }
    // What the container's life must have fed, by label.
    for (name, labels) in [
        (
            "lxc_operator_proxmox_task_seconds_count",
            r#"task_type="vzcreate""#,
        ),
        (
            "lxc_operator_proxmox_task_seconds_count",
            r#"task_type="vzstart""#,
        ),
        ("lxc_operator_container_phase_seconds_count", ""),
        ("lxc_operator_container_first_ready_seconds_count", ""),
        ("lxc_operator_lock_wait_seconds_count", r#"lock="container""#),
        (
            "lxc_operator_audit_writes_total",
            r#"record="intent",outcome="written""#,
        ),
        (
            "lxc_operator_audit_writes_total",
            r#"record="outcome",outcome="written""#,
        ),
        ("lxc_operator_ssh_sessions_opened_total", ""),
        (
            "lxc_operator_provision_steps_total",
            r#"kind="file",outcome="ran""#,
        ),
        (
            "lxc_operator_provision_steps_total",
            r#"kind="packages",outcome="ran""#,
        ),
        (
            "lxc_operator_provision_steps_total",
            r#"kind="script",outcome="ran""#,
        ),
        ("lxc_operator_leader", ""),
        ("lxc_operator_build_info", r#"version=""#),
    ] {
        assert!(
            sum(&values, name, labels) > 0.0,
            "{name}{{{labels}}} is 0:\n{text}"
        );
    }
    // Nothing is left open once the work is done, and no label names an object.
    assert_eq!(sum(&values, "lxc_operator_ssh_sessions_open", ""), 0.0, "{text}");
    for needle in [w.ns.as_str(), "metered-ct", &format!("\"{vmid}\"")] {
        assert!(!text.contains(needle), "{needle} appears in /metrics:\n{text}");
    }
}

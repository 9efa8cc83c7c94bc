//! `make bench-scale`: the scale benchmark (issue 17). For each N (default 100 and 1000) a
//! world of its own on loopback — etcd + kube-apiserver (CRDs from `crds/`), PostgreSQL and
//! Redis from the test world, pve-sim as a process with three nodes and `--realistic` — and the
//! operator as a process running with the Helm chart's ServiceAccount; N containers applied at
//! once (no provisioning), then measured: time to all Ready, overhead over the simulated
//! critical path, Proxmox and API-server requests per container, steady-state Proxmox calls,
//! peak RSS and no-op reconcile latency. Prints a table, writes `bench-results/scale-<N>.md`
//! and a `RESULT {json}` line. Each N runs in a child process of its own; everything it starts
//! is stopped at its end or by a watchdog, and a hard timeout bounds it.

mod probes;
mod procs;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

#[derive(Clone, Debug)]
pub struct Args {
    pub counts: Vec<usize>,
    pub nodes: usize,
    pub container_concurrency: u16,
    /// `None`: the ProxmoxNodes leave `maxConcurrentTasks` at its default (4).
    pub max_concurrent_tasks: Option<u32>,
    pub steady_seconds: u64,
    pub baseline_seconds: u64,
    pub timeout_seconds: Option<u64>,
    pub out: Option<PathBuf>,
    pub operator_bin: PathBuf,
    pub pve_sim_bin: PathBuf,
    /// The options (not the counts) as given, for the child run of each N.
    pub options: Vec<String>,
}

const USAGE: &str = "lxc-scale-bench [N ...] [--nodes K] [--container-concurrency C] [--max-concurrent-tasks M] \
[--steady-seconds S] [--baseline-seconds S] [--timeout S] [--out DIR|-] [--operator-bin PATH] [--pve-sim-bin PATH]";

fn parse_args() -> anyhow::Result<Args> {
    let beside = |name: &str| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join(name)))
            .unwrap_or_else(|| PathBuf::from(name))
    };
    let mut args = Args {
        counts: Vec::new(),
        nodes: 3,
        container_concurrency: 32,
        max_concurrent_tasks: None,
        steady_seconds: 60,
        baseline_seconds: 10,
        timeout_seconds: None,
        out: Some(test_world::repo_root().join("bench-results")),
        operator_bin: beside("lxc-operator"),
        pve_sim_bin: beside("pve-sim"),
        options: Vec::new(),
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let a = raw[i].as_str();
        let takes_value = a.starts_with("--") && a != "--help";
        let v = if takes_value {
            i += 1;
            raw.get(i)
                .cloned()
                .with_context(|| format!("{a} needs a value\n{USAGE}"))?
        } else {
            String::new()
        };
        if takes_value {
            args.options.push(a.to_string());
            args.options.push(v.clone());
        }
        i += 1;
        match a {
            "--nodes" => args.nodes = v.parse()?,
            "--container-concurrency" => args.container_concurrency = v.parse()?,
            "--max-concurrent-tasks" => args.max_concurrent_tasks = Some(v.parse()?),
            "--steady-seconds" => args.steady_seconds = v.parse()?,
            "--baseline-seconds" => args.baseline_seconds = v.parse()?,
            "--timeout" => args.timeout_seconds = Some(v.parse()?),
            "--out" => args.out = (v != "-").then(|| PathBuf::from(v)),
            "--operator-bin" => args.operator_bin = v.into(),
            "--pve-sim-bin" => args.pve_sim_bin = v.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ if takes_value => bail!("unknown option {a}\n{USAGE}"),
            n => args
                .counts
                .push(n.parse().with_context(|| format!("not a count: {n}\n{USAGE}"))?),
        }
    }
    if args.counts.is_empty() {
        args.counts = vec![100, 1000];
    }
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be 1..=9");
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if args.counts.len() > 1 {
        // One child per N: each gets a fresh control plane, and the watchdogs of the test world
        // stop its servers when it ends.
        let exe = std::env::current_exe()?;
        let mut failed = Vec::new();
        for n in &args.counts {
            let status = std::process::Command::new(&exe)
                .arg(n.to_string())
                .args(&args.options)
                .status()?;
            if !status.success() {
                failed.push(*n);
            }
        }
        if !failed.is_empty() {
            bail!("the runs for N = {failed:?} failed");
        }
        return Ok(());
    }
    let n = args.counts[0];
    // Bounded: the work at 4 tasks per node takes about 2.4 s per container per node's slot;
    // the rest is start-up, the steady minute and the reconcile probe.
    let timeout = Duration::from_secs(
        args.timeout_seconds
            .unwrap_or(240 + args.steady_seconds + (n as u64 * 4) / args.nodes.max(1) as u64 * 2),
    );
    // Last resort if the runtime itself hangs (a blocking start-up): the watchdogs see the exit.
    std::thread::spawn(move || {
        std::thread::sleep(timeout + Duration::from_secs(60));
        eprintln!("lxc-scale-bench: hard timeout, exiting");
        std::process::exit(3);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match tokio::time::timeout(timeout, run::run(n, &args)).await {
            Ok(r) => r,
            Err(_) => bail!(
                "N={n}: not finished within the hard timeout of {}s",
                timeout.as_secs()
            ),
        }
    })
}

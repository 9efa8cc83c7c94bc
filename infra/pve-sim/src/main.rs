//! The `pve-sim` binary: starts the simulator, prints one JSON line with its endpoint and
//! credentials once it accepts, and runs until SIGTERM or SIGINT.

use clap::Parser;
use pve_sim::{Config, PveSim};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Proxmox VE API simulator")]
struct Args {
    /// Address of the HTTPS API listener.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address of the plain-HTTP admin listener.
    #[arg(long, default_value = "127.0.0.1:0")]
    admin_listen: SocketAddr,
    /// Comma-separated node names (overrides the config file's nodes).
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// JSON config file (see `Config`); unset fields take the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for everything random.
    #[arg(long)]
    seed: Option<u64>,
    /// Base directory for per-container root directories (used by host/pct).
    #[arg(long)]
    ct_root_dir: Option<PathBuf>,
    /// Duration of every task type in milliseconds (overrides the config's default).
    #[arg(long)]
    task_ms: Option<u64>,
    /// Realistic task durations and pvestatd's 10 s status delay (`Config::realistic`);
    /// (`--task-ms` then only sets the task types it does not name.)
    #[arg(long)]
    realistic: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = match &args.config {
        Some(path) => serde_json::from_str::<Config>(&std::fs::read_to_string(path)?)?,
        None => Config::default(),
    };
    if !args.nodes.is_empty() {
        let names: Vec<&str> = args.nodes.iter().map(String::as_str).collect();
        cfg.nodes = Config::default_with_nodes(&names).nodes;
    }
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(dir) = args.ct_root_dir {
        cfg.ct_root_dir = Some(dir);
    }
    if args.realistic {
        cfg.set_realistic();
    }
    if let Some(ms) = args.task_ms {
        cfg = cfg.with_task_duration_ms(ms);
    }
    let sim = PveSim::start_on(cfg, args.listen, args.admin_listen).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(sim.endpoint())?)?;
    out.flush()?;
    drop(out);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    sim.shutdown();
    Ok(())
}

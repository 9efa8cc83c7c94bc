//! `lxc-operator run`: wires configuration, coordination, leader election and the web server,
//! and shuts down cleanly on SIGTERM/SIGINT (the lease is released so another replica takes
//! over at once).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::controllers::ControllerSet;
use super::http::{HttpState, router};
use super::leader::{self, LeaderConfig};
use super::metrics::Metrics;
use crate::audit::{AuditStore, Retention};
use crate::cluster::fence::Leadership;
use crate::coordination::Coordinator;

/// Configuration of `lxc-operator run`, from flags or environment.
#[derive(Debug, Clone, clap::Args)]
pub struct RunConfig {
    /// Kubeconfig file; in-cluster configuration when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Redis URL for locks and the VMID cache; in-process coordination when unset.
    #[arg(long, env = "LXC_OPERATOR_REDIS_URL")]
    pub redis_url: Option<String>,
    /// How many replicas of the operator run (the Helm chart sets it from `replicaCount`).
    /// More than one needs Redis: in-process locks only coordinate one process.
    #[arg(long, env = "LXC_OPERATOR_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub replicas: u16,
    /// Postgres URL for the audit trail; the embedded SQLite file when unset.
    #[arg(long, env = "LXC_OPERATOR_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The embedded SQLite audit file, used when no database URL is given.
    #[arg(
        long,
        env = "LXC_OPERATOR_SQLITE_PATH",
        default_value = "/var/lib/lxc-operator/audit.db"
    )]
    pub sqlite_path: PathBuf,
    /// Days of audit trail to keep (0 keeps everything).
    #[arg(long, env = "LXC_OPERATOR_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u64,
    /// Where the web server listens: `/healthz`, `/readyz`, `/metrics`, and `/` saying where
    /// things are (the status page will have an address of its own).
    #[arg(long, env = "LXC_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Where the read-only status page listens (its own listener, on every replica, leader or
    /// not); no page when unset.
    #[arg(long, env = "LXC_OPERATOR_STATUS_LISTEN")]
    pub status_listen: Option<SocketAddr>,
    /// A bearer token the status page requires (`Authorization: Bearer …`); open when unset.
    /// Prefer the environment (from a Secret) to the command line, which `ps` shows.
    #[arg(long, env = "LXC_OPERATOR_STATUS_TOKEN", hide_env_values = true)]
    pub status_token: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LXC_OPERATOR_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "LXC_OPERATOR_NAMESPACE", default_value = "lxc-operator")]
    pub namespace: String,
    /// This replica's identity in the Lease (defaults to the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, env = "LXC_OPERATOR_LEASE_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_seconds: u64,
    /// How many `LxcContainer`s reconcile at once (never two on one container).
    #[arg(long, env = "LXC_OPERATOR_CONTAINER_CONCURRENCY", default_value_t = 16)]
    pub container_concurrency: u16,
    /// Seconds within which every container's Proxmox config is read for drift the node poll
    /// cannot see (NICs, description, DNS, mount points, …), spread evenly; 0 turns it off.
    #[arg(long, env = "LXC_OPERATOR_DRIFT_CHECK_INTERVAL", default_value_t = 300)]
    pub drift_check_interval: u64,
    /// At most this many of those sweep reconciles per second per Proxmox node (each reads the
    /// config, the current status and the interfaces).
    #[arg(long, env = "LXC_OPERATOR_DRIFT_READS_PER_SECOND", default_value_t = 2.0,
          value_parser = positive_rate)]
    pub drift_reads_per_second: f64,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// The configuration cannot work as given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{replicas} replicas need Redis: set --redis-url (LXC_OPERATOR_REDIS_URL), or run one \
         replica. Without Redis the locks and the VMID cache live inside one process, so two \
         replicas would not see each other's locks and could both create a container"
    )]
    ReplicasWithoutRedis { replicas: u16 },
    #[error(
        "--sqlite-path {path}: the directory {parent} does not exist; create it (or mount a \
         volume there), or set --database-url for Postgres. The operator does not create it: \
         a mistyped path would otherwise keep the audit trail somewhere nobody looks"
    )]
    SqliteDirectoryMissing { path: String, parent: String },
}

impl RunConfig {
    /// Refuses configurations that are unsafe before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replicas > 1 && self.redis_url.as_deref().is_none_or(|u| u.trim().is_empty()) {
            return Err(ConfigError::ReplicasWithoutRedis {
                replicas: self.replicas,
            });
        }
        let sqlite = self.database_url.as_deref().is_none_or(|u| u.trim().is_empty());
        if sqlite {
            // A bare file name lives in the working directory, which exists.
            let parent = self.sqlite_path.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(parent) = parent.filter(|p| !p.is_dir()) {
                return Err(ConfigError::SqliteDirectoryMissing {
                    path: self.sqlite_path.display().to_string(),
                    parent: parent.display().to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Sets up `tracing` in the chosen format; text is coloured only on a terminal (a file or a
/// log collector gets no escape codes).
pub fn init_logging(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn kube_client(config: &RunConfig) -> anyhow::Result<kube::Client> {
    let cfg = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(cfg)?)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs the operator until SIGTERM.
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    config.validate()?;
    let client = kube_client(&config).await?;
    // A crashed holder's lock frees itself after this long; it is renewed every third of it.
    let metrics = Metrics::new();
    let observer: crate::observe::Observed = Some(metrics.clone());
    let coordinator = Coordinator::connect(config.redis_url.as_deref(), Duration::from_secs(12))
        .await?
        .observed(observer.clone());
    tracing::info!(backend = coordinator.backend(), "coordination ready");
    let audit = AuditStore::connect(config.database_url.as_deref(), &config.sqlite_path)
        .await?
        .observed(observer.clone());
    tracing::info!(backend = audit.backend(), "audit store ready");
    let retention = Retention {
        keep: (config.audit_retention_days > 0)
            .then(|| Duration::from_secs(config.audit_retention_days * 86_400)),
        ..Retention::default()
    };
    let upkeep_store = audit.clone();
    let upkeep = tokio::spawn(async move { upkeep_store.maintain(retention).await });
    let identity = config.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "lxc-operator".into())
    });
    let leader_config = LeaderConfig {
        namespace: config.namespace.clone(),
        lease_name: "lxc-operator".into(),
        identity,
        lease_duration: Duration::from_secs(config.lease_seconds),
        // Five tries per lease: a renewal proves two thirds of it, so a leader has three tries
        // before its leadership runs out (a whole-second floor would leave short leases one).
        retry_period: Duration::from_secs(config.lease_seconds) / 5,
    };
    let (leading_tx, leading) = watch::channel(false);
    let (ready_tx, ready) = watch::channel(false);
    let leadership = Leadership::elected();
    let (problem_tx, election_problem) = watch::channel(None);
    let election = tokio::spawn(leader::run_reporting(
        client.clone(),
        leader_config.clone(),
        leadership.clone(),
        leading_tx,
        problem_tx,
    ));
    let mut leading_watch = leading.clone();
    let leader_metric = metrics.clone();
    tokio::spawn(async move {
        while leading_watch.changed().await.is_ok() {
            leader_metric.set_leader(*leading_watch.borrow());
        }
    });

    // The page reads caches of its own, started now and kept whatever the leadership.
    let page = match config.status_listen {
        Some(addr) => {
            let caches = crate::page::PageCaches::start(client.clone(), audit.clone());
            let state = crate::page::PageState::new(caches, audit.clone(), config.status_token.as_deref())
                .with_latency(metrics.latency());
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(
                addr = %listener.local_addr()?,
                token = config.status_token.is_some(),
                "status page listening"
            );
            Some(tokio::spawn(crate::page::serve(
                listener,
                state,
                shutdown_signal(),
            )))
        }
        None => None,
    };

    let mut set = ControllerSet::new(client.clone(), audit.clone(), coordinator.clone());
    set.identity = Some(leader_config.identity.clone());
    set.metrics = Some(metrics.clone());
    set.reconcile_metrics = Some(metrics.clone());
    set.observer = observer;
    set.container_concurrency = config.container_concurrency;
    set.drift_sweep = crate::cluster::sweep::SweepSettings {
        interval: Duration::from_secs(config.drift_check_interval),
        reads_per_second: config.drift_reads_per_second,
    };
    set.leadership = leadership.clone();
    let controllers = tokio::spawn(run_controllers_while_leading(set, leading.clone()));

    let state = HttpState {
        metrics,
        coordination_backend: coordinator.backend(),
        audit_backend: audit.backend(),
        leading,
        leadership: leadership.clone(),
        ready,
        election_problem,
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "web server listening");
    ready_tx.send_replace(true);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    tracing::info!("shutting down");
    // Nothing acts after this point, then the lease goes back.
    leadership.revoke();
    controllers.abort();
    upkeep.abort();
    election.abort();
    if let Some(page) = page {
        page.abort();
    }
    if let Err(e) = leader::release(client, &leader_config).await {
        tracing::warn!(error = %e, "could not release the leader lease");
    }
    Ok(())
}

/// Runs the controllers whenever this replica leads, and cancels them the moment it does not:
/// the controllers' future is dropped, so in-flight reconciles stop at their next await instead
/// of running to completion. The loss is noticed three ways, whichever comes first: the election
/// publishes it, or the leadership's validity runs out by the local clock (`lapsed`, which needs
/// no election round, e.g. right after the process was frozen), or a revocation.
pub async fn run_controllers_while_leading(set: ControllerSet, mut leading: watch::Receiver<bool>) {
    let leadership = set.leadership.clone();
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        if !leadership.is_leading() {
            // Published as leading but already lapsed: wait for the loss to be published.
            let _ = leading.wait_for(|l| !*l).await;
            continue;
        }
        tracing::info!("leading: starting controllers");
        let reason = tokio::select! {
            // The losses are checked before the controllers are polled, at every wake-up.
            biased;
            () = leadership.lapsed() => "leadership lapsed",
            _ = leading.wait_for(|l| !*l) => "leadership lost",
            () = set.run(std::future::pending()) => "controllers ended",
        };
        tracing::warn!(reason, "not leading: controllers cancelled");
        if leading.wait_for(|l| !*l).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::RunConfig;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunConfig,
    }

    #[test]
    fn the_drift_sweep_flags_parse_and_refuse_a_rate_that_reads_nothing() {
        let cli = Cli::try_parse_from(["run"]).unwrap();
        assert_eq!(
            (cli.run.drift_check_interval, cli.run.drift_reads_per_second),
            (300, 2.0),
            "defaults"
        );
        let cli = Cli::try_parse_from([
            "run",
            "--drift-check-interval",
            "60",
            "--drift-reads-per-second",
            "0.5",
        ])
        .unwrap();
        assert_eq!(
            (cli.run.drift_check_interval, cli.run.drift_reads_per_second),
            (60, 0.5)
        );
        for bad in ["0", "-1", "NaN", "inf", "fast"] {
            assert!(
                Cli::try_parse_from(["run", "--drift-reads-per-second", bad]).is_err(),
                "{bad}"
            );
        }
    }
}

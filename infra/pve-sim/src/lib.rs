//! pve-sim: a Proxmox VE API simulator for lxc-operator's tests and demo. See the README.
//!
//! ```ignore
//! let sim = pve_sim::PveSim::start(pve_sim::Config::default_with_nodes(&["pve1", "pve2"])).await?;
//! let url = sim.url(); // https://127.0.0.1:PORT
//! sim.admin().expire_tickets();
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod ctroot;
pub mod dispatch;
pub mod effects;
pub mod error;
pub mod faults;
pub mod formats;
pub mod handler;
pub mod percent;
pub mod perms;
pub mod propstr;
pub mod reqlog;
pub mod routes;
pub mod rules;
pub mod server;
pub mod state;
pub mod sync;
pub mod tasks;
pub mod tls;
pub mod validate;
pub mod worker;

pub use admin::{Admin, CtInfo, LockRequest};
pub use config::Config;
pub use faults::{
    ErrorKind, ErrorRule, FaultConfig, InjectedCounts, LatencyRule, LatencySpike, Match, PaddingRule,
    TaskFailure,
};
pub use reqlog::{EndpointCount, LogEntry};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What a client needs to talk to the simulator (also the binary's JSON line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    pub url: String,
    pub fingerprint_sha256: String,
    pub admin_url: String,
    pub username: String,
    pub password: String,
    pub token_id: String,
    pub token_secret: String,
}

/// A running simulator; stops accepting when dropped.
pub struct PveSim {
    sim: Arc<state::Sim>,
    endpoint: Endpoint,
    cert_pem: String,
    stop: watch::Sender<bool>,
}

impl PveSim {
    /// Starts on loopback with OS-chosen ports.
    pub async fn start(cfg: Config) -> anyhow::Result<PveSim> {
        let lo: SocketAddr = ([127, 0, 0, 1], 0).into();
        PveSim::start_on(cfg, lo, lo).await
    }

    /// Starts with the API (HTTPS) and the admin API (HTTP) on the given addresses.
    pub async fn start_on(cfg: Config, api: SocketAddr, admin: SocketAddr) -> anyhow::Result<PveSim> {
        let tls = tls::load_or_generate(&cfg)?;
        if let Some(dir) = &cfg.ct_root_dir {
            std::fs::create_dir_all(dir)?;
        }
        let api_listener = TcpListener::bind(api).await?;
        let admin_listener = TcpListener::bind(admin).await?;
        let endpoint = Endpoint {
            url: format!("https://{}", api_listener.local_addr()?),
            fingerprint_sha256: tls.fingerprint_sha256.clone(),
            admin_url: format!("http://{}", admin_listener.local_addr()?),
            username: cfg.users.first().map(|u| u.userid.clone()).unwrap_or_default(),
            password: cfg.users.first().map(|u| u.password.clone()).unwrap_or_default(),
            token_id: cfg.tokens.first().map(|t| t.tokenid.clone()).unwrap_or_default(),
            token_secret: cfg.tokens.first().map(|t| t.secret.clone()).unwrap_or_default(),
        };
        let sim = Arc::new(state::Sim::new(cfg, tls.fingerprint_sha256.clone()));
        let (stop, rx) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config);
        tokio::spawn(server::serve(
            api_listener,
            Some(acceptor),
            sim.clone(),
            rx.clone(),
        ));
        tokio::spawn(server::serve(admin_listener, None, sim.clone(), rx));
        Ok(PveSim {
            sim,
            endpoint,
            cert_pem: tls.cert_pem,
            stop,
        })
    }

    /// `https://127.0.0.1:PORT` (no `/api2/json`).
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }
    /// `https://127.0.0.1:PORT/api2/json`
    pub fn api_base(&self) -> String {
        format!("{}/api2/json", self.endpoint.url)
    }
    pub fn admin_url(&self) -> &str {
        &self.endpoint.admin_url
    }
    /// `AA:BB:...` SHA-256 of the served certificate.
    pub fn fingerprint_sha256(&self) -> &str {
        &self.endpoint.fingerprint_sha256
    }
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
    pub fn username(&self) -> &str {
        &self.endpoint.username
    }
    pub fn password(&self) -> &str {
        &self.endpoint.password
    }
    /// `root@pam!operator`
    pub fn token_id(&self) -> &str {
        &self.endpoint.token_id
    }
    pub fn token_secret(&self) -> &str {
        &self.endpoint.token_secret
    }
    /// The `Authorization` header value for the default API token.
    pub fn token_header(&self) -> String {
        format!(
            "PVEAPIToken={}={}",
            self.endpoint.token_id, self.endpoint.token_secret
        )
    }
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
    pub fn config(&self) -> &Config {
        &self.sim.cfg
    }
    /// Fault injection, request log, container lookups.
    pub fn admin(&self) -> Admin {
        Admin(self.sim.clone())
    }
    /// Stops accepting and closes open connections.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for PveSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

//! Opening one SSH connection: TCP, key exchange with the host key checked against the pinned
//! fingerprint (a refusal happens inside the key exchange, before any authentication), then
//! public-key authentication; retried with exponential backoff on connection failures only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::error::Error;
use super::host_command::HostMode;
use super::key::{ClientKey, HostKeyFingerprint};

/// Connection retries: `attempts` tries in all, exponential delays from `min_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRetry {
    pub attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for ConnectRetry {
    /// 5 attempts, 2 s, 4 s, 8 s, 16 s apart (with jitter).
    fn default() -> Self {
        Self {
            attempts: 5,
            min_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Where and how to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The pinned host key; any other key is refused before authenticating.
    pub host_key: HostKeyFingerprint,
    /// At most this many commands (SSH sessions) at once on the connection.
    pub max_sessions: usize,
    /// Bound on TCP connect + key exchange + authentication, per attempt.
    pub connect_timeout: Duration,
    pub retry: ConnectRetry,
    /// How container operations reach `pct` on the host: inline as root, or only through the
    /// key's forced command.
    pub mode: HostMode,
}

impl SshConfig {
    /// A config with the default timeouts and retries, in [`HostMode::Direct`];
    /// `host_key_fingerprint` is
    /// `SHA256:<base64>` as `ssh-keygen -lf` prints it.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        host_key_fingerprint: &str,
        max_sessions: usize,
    ) -> Result<Self, Error> {
        Ok(Self {
            host: host.into(),
            port,
            user: user.into(),
            host_key: HostKeyFingerprint::parse(host_key_fingerprint)?,
            max_sessions: max_sessions.max(1),
            connect_timeout: Duration::from_secs(20),
            retry: ConnectRetry::default(),
            mode: HostMode::Direct,
        })
    }
}

/// The client side of the key exchange: accepts exactly the pinned host key and remembers
/// what it was shown otherwise, so the refusal can name it.
pub(super) struct PinnedHostKey {
    expected: HostKeyFingerprint,
    refused: Arc<Mutex<Option<HostKeyFingerprint>>>,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => HostKeyFingerprint::of(key),
            // A host certificate is trusted here only through the pinned key it certifies.
            PublicKeyOrCertificate::Certificate(cert) => {
                HostKeyFingerprint::of(&PublicKey::from(cert.public_key().clone()))
            }
        };
        if presented == self.expected {
            return Ok(true);
        }
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(presented);
        Ok(false)
    }
}

pub(super) type Connection = client::Handle<PinnedHostKey>;

/// A new authenticated connection, after up to `config.retry.attempts` tries.
pub(super) async fn connect(config: &SshConfig, key: &ClientKey) -> Result<Connection, Error> {
    let retry = config.retry;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(retry.min_delay)
        .with_max_delay(retry.max_delay)
        .with_max_times(retry.attempts.saturating_sub(1) as usize)
        .with_jitter();
    let attempt = AtomicU64::new(0);
    let connect = || async {
        let n = attempt.fetch_add(1, Ordering::Relaxed) + 1;
        connect_once(config, key, n as u32).await
    };
    let conn = connect
        .retry(backoff)
        .when(|e: &Error| matches!(e, Error::Connect { .. }))
        .notify(|e, delay| tracing::info!(host = %config.host, error = %e, ?delay, "retrying SSH connect"))
        .await?;
    Ok(conn)
}

async fn connect_once(cfg: &SshConfig, key: &ClientKey, attempt: u32) -> Result<Connection, Error> {
    let connect_error = |message: String| Error::Connect {
        host: cfg.host.clone(),
        port: cfg.port,
        attempts: attempt,
        message,
    };
    let refused = Arc::new(Mutex::new(None));
    let handler = PinnedHostKey {
        expected: cfg.host_key,
        refused: refused.clone(),
    };
    let client_config = Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let handshake = async {
        let mut conn = client::connect(client_config, (cfg.host.as_str(), cfg.port), handler)
            .await
            .map_err(|e| e.to_string())?;
        let hash = conn
            .best_supported_rsa_hash()
            .await
            .map_err(|e| e.to_string())?
            .flatten();
        let auth = conn
            .authenticate_publickey(&cfg.user, PrivateKeyWithHashAlg::new(key.private(), hash))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((conn, auth.success()))
    };
    let outcome = tokio::time::timeout(cfg.connect_timeout, handshake).await;
    if let Some(presented) = refused.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(Error::HostKeyMismatch {
            host: cfg.host.clone(),
            port: cfg.port,
            expected: cfg.host_key.to_string(),
            presented: presented.to_string(),
        });
    }
    match outcome {
        Err(_) => Err(connect_error(format!(
            "no SSH session within {}s",
            cfg.connect_timeout.as_secs()
        ))),
        Ok(Err(message)) => Err(connect_error(message)),
        // A refusal on a connection that then died is a connection problem.
        Ok(Ok((conn, false))) if conn.is_closed() => Err(connect_error("connection closed".into())),
        Ok(Ok((_, false))) => Err(Error::Auth {
            host: cfg.host.clone(),
            port: cfg.port,
            user: cfg.user.clone(),
        }),
        Ok(Ok((conn, true))) => Ok(conn),
    }
}

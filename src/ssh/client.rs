//! One SSH connection to one Proxmox host, reused by every command and reopened when it dies,
//! with at most `max_sessions` commands at once. The host key is checked against the pinned
//! fingerprint during the key exchange, so a wrong host never sees an authentication attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Sig, client};
use tokio::sync::Semaphore;

use super::error::Error;
use super::key::{ClientKey, HostKeyFingerprint};
use super::output::ExecOutput;
use super::quote::command_line;

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
}

impl SshConfig {
    /// A config with the default timeouts and retries; `host_key_fingerprint` is
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
        })
    }
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SshStats {
    /// Connections established (authenticated).
    pub connections: u64,
    /// Commands started (`exec` requests sent).
    pub commands: u64,
}

/// The client side of the key exchange: accepts exactly the pinned host key and remembers
/// what it was shown otherwise, so the refusal can name it.
struct PinnedHostKey {
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

type Connection = client::Handle<PinnedHostKey>;

/// A Proxmox host reached over SSH. Cheap to share (`Arc`); every method may be called
/// concurrently.
pub struct SshHost {
    config: SshConfig,
    key: ClientKey,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    sessions: Semaphore,
    connections: AtomicU64,
    commands: AtomicU64,
}

impl std::fmt::Debug for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHost")
            .field("config", &self.config)
            .field("key", &self.key)
            .finish()
    }
}

impl SshHost {
    /// A host; nothing connects until the first command.
    pub fn new(config: SshConfig, key: ClientKey) -> Self {
        Self {
            sessions: Semaphore::new(config.max_sessions.max(1)),
            config,
            key,
            connection: tokio::sync::Mutex::new(None),
            connections: AtomicU64::new(0),
            commands: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    pub fn stats(&self) -> SshStats {
        SshStats {
            connections: self.connections.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
        }
    }

    /// Connects now (with retries) unless a live connection exists.
    pub async fn connect(&self) -> Result<(), Error> {
        self.live_connection().await.map(drop)
    }

    /// Closes the connection, if any; the next command opens a new one.
    pub async fn disconnect(&self) {
        if let Some(conn) = self.connection.lock().await.take() {
            let _ = conn.disconnect(russh::Disconnect::ByApplication, "", "en").await;
        }
    }

    /// Runs `argv` on the host (each word quoted for the login shell), feeding `stdin` (or
    /// nothing) and waiting at most `timeout`. A non-zero exit is not an error here: see
    /// [`ExecOutput::code`] and [`SshHost::check`].
    pub async fn exec(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let label = argv.first().copied().unwrap_or_default().to_string();
        self.exec_labeled(&label, argv, stdin, timeout).await
    }

    /// A [`CommandFailed`](Error::CommandFailed) naming `operation` with the last 20 lines of
    /// output, unless `output` is a success.
    pub fn check(&self, operation: &str, output: ExecOutput) -> Result<ExecOutput, Error> {
        if output.success() {
            return Ok(output);
        }
        Err(Error::CommandFailed {
            host: self.config.host.clone(),
            operation: operation.to_string(),
            code: output.code,
            tail: output.tail(20),
        })
    }

    /// [`exec`](Self::exec) with an operation name for errors (never the whole command line:
    /// it may carry environment values).
    pub(crate) async fn exec_labeled(
        &self,
        operation: &str,
        argv: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let command = command_line(argv).map_err(|message| Error::InvalidArgument {
            operation: operation.to_string(),
            message,
        })?;
        let _permit = self
            .sessions
            .acquire()
            .await
            .expect("the session semaphore is never closed");
        let channel = self.open_channel(operation).await?;
        self.commands.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(timeout, self.run(channel, operation, command, stdin))
            .await
            .map_err(|_| Error::Timeout {
                host: self.config.host.clone(),
                operation: operation.to_string(),
                after: timeout,
            })?
    }

    /// A session channel on a live connection. A channel that cannot be opened on a
    /// connection that died is retried once on a fresh one: no command was sent yet.
    async fn open_channel(&self, operation: &str) -> Result<russh::Channel<client::Msg>, Error> {
        let mut retried = false;
        loop {
            let conn = self.live_connection().await?;
            match conn.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(e) if !retried => {
                    tracing::debug!(host = %self.config.host, error = %e, "SSH connection lost; reconnecting");
                    self.forget(&conn).await;
                    retried = true;
                }
                Err(e) => return Err(self.session_error(operation, e)),
            }
        }
    }

    async fn forget(&self, dead: &Arc<Connection>) {
        let mut slot = self.connection.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, dead)) {
            *slot = None;
        }
    }

    fn session_error(&self, operation: &str, e: russh::Error) -> Error {
        Error::Session {
            host: self.config.host.clone(),
            operation: operation.to_string(),
            message: e.to_string(),
        }
    }

    /// The current connection, or a new one (the lock is held while connecting, so that
    /// concurrent callers share one connection instead of racing to open several).
    async fn live_connection(&self) -> Result<Arc<Connection>, Error> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let retry = self.config.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let attempt = AtomicU64::new(0);
        let connect = || async {
            let n = attempt.fetch_add(1, Ordering::Relaxed) + 1;
            self.connect_once(n as u32).await
        };
        let conn = connect
            .retry(backoff)
            .when(|e: &Error| matches!(e, Error::Connect { .. }))
            .notify(|e, delay| tracing::info!(host = %self.config.host, error = %e, ?delay, "retrying SSH connect"))
            .await?;
        let conn = Arc::new(conn);
        self.connections.fetch_add(1, Ordering::Relaxed);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn connect_once(&self, attempt: u32) -> Result<Connection, Error> {
        let cfg = &self.config;
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
                .authenticate_publickey(&cfg.user, PrivateKeyWithHashAlg::new(self.key.private(), hash))
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

    /// Sends the command and its standard input, collecting output until the channel closes.
    /// Input is written concurrently with reading, so a command that talks before it has read
    /// everything cannot deadlock on full windows.
    async fn run(
        &self,
        channel: russh::Channel<client::Msg>,
        operation: &str,
        command: String,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, Error> {
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.session_error(operation, e))?;
        let (mut read, write) = channel.split();
        let send_input = async move {
            if let Some(data) = stdin {
                write.data(data).await?;
            }
            write.eof().await
        };
        let collect = async move {
            let mut out = ExecOutput::default();
            let (mut code, mut refused) = (None, false);
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.push_stdout(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => out.push_stderr(&data),
                    ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        code = code.or(Some(128 + signal_number(&signal_name)))
                    }
                    ChannelMsg::Failure => refused = true,
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            (out, code, refused)
        };
        tokio::pin!(send_input, collect);
        let mut input_result = None;
        let (mut out, code, refused) = loop {
            tokio::select! {
                r = &mut send_input, if input_result.is_none() => input_result = Some(r),
                done = &mut collect => break done,
            }
        };
        if refused {
            return Err(Error::Session {
                host: self.config.host.clone(),
                operation: operation.to_string(),
                message: "the server refused to run the command".into(),
            });
        }
        match code {
            Some(code) => {
                out.code = code;
                Ok(out)
            }
            None => Err(Error::Session {
                host: self.config.host.clone(),
                operation: operation.to_string(),
                message: match input_result {
                    Some(Err(e)) => format!("the connection broke while sending input: {e}"),
                    _ => "the connection closed before the command reported an exit status".into(),
                },
            }),
        }
    }
}

/// Linux signal numbers, for commands the server reports as killed by a signal.
fn signal_number(sig: &Sig) -> u32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 127,
    }
}

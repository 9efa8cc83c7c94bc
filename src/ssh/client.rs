//! One SSH connection to one Proxmox host, reused by every command and reopened when it dies,
//! with at most `max_sessions` commands at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::{ChannelMsg, Sig, client};
use tokio::sync::Semaphore;

use super::connect::{Connection, SshConfig, connect};
use super::error::Error;
use super::key::ClientKey;
use super::output::ExecOutput;
use super::quote::command_line;

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SshStats {
    /// Connections established (authenticated).
    pub connections: u64,
    /// Commands started (`exec` requests sent).
    pub commands: u64,
}

/// A Proxmox host reached over SSH. Cheap to share (`Arc`); every method may be called
/// concurrently.
pub struct SshHost {
    config: SshConfig,
    key: ClientKey,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    sessions: Semaphore,
    connections: AtomicU64,
    commands: AtomicU64,
    observer: crate::observe::Observed,
}

/// An open session, reported to the observer as closed when it goes (a cancelled command too).
struct OpenSession<'a>(&'a crate::observe::Observed);

impl<'a> OpenSession<'a> {
    fn open(observer: &'a crate::observe::Observed) -> Self {
        if let Some(o) = observer {
            o.ssh_session(true);
        }
        Self(observer)
    }
}

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        if let Some(o) = self.0 {
            o.ssh_session(false);
        }
    }
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
            observer: None,
        }
    }

    /// Reports each session (one per command) opened and closed to `observer`.
    pub fn observed(mut self, observer: crate::observe::Observed) -> Self {
        self.observer = observer;
        self
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
        self.exec_command(operation, command, stdin, timeout).await
    }

    /// Sends `command` as it is (already quoted, or a host-command request), feeding `stdin`
    /// and waiting at most `timeout`; a command still running then is abandoned (see
    /// [`SshHost::abandon`]).
    pub(crate) async fn exec_command(
        &self,
        operation: &str,
        command: String,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        // The wait for a session slot and a reconnect count inside the deadline: a step never
        // waits longer than its own timeout, and until the command is sent nothing ran.
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || Error::Timeout {
            host: self.config.host.clone(),
            operation: operation.to_string(),
            after: timeout,
        };
        let _permit = tokio::time::timeout_at(deadline, self.sessions.acquire())
            .await
            .map_err(|_| timed_out())?
            .expect("the session semaphore is never closed");
        let channel = tokio::time::timeout_at(deadline, self.open_channel(operation))
            .await
            .map_err(|_| timed_out())??;
        self.commands.fetch_add(1, Ordering::Relaxed);
        let _session = OpenSession::open(&self.observer);
        let (read, write) = channel.split();
        let ran = tokio::time::timeout_at(deadline, self.run(read, &write, operation, command, stdin)).await;
        if ran.is_err() {
            self.abandon(&write).await;
        }
        ran.map_err(|_| timed_out())?
    }

    /// Gives up on a command that outlived the wait: the channel is closed, so the command's
    /// output goes nowhere. Closing does not stop it, and OpenSSH refuses a `signal` request
    /// both for a root login (no privilege-separated child: "session signalling requires
    /// privilege separation") and for a forced command: what stops a container operation is
    /// the host command's own deadline, which passes before the operator stops waiting.
    async fn abandon(&self, write: &russh::ChannelWriteHalf<client::Msg>) {
        let _ = tokio::time::timeout(Duration::from_secs(5), write.close()).await;
    }

    /// A session channel on a live connection. A channel that cannot be opened on a
    /// connection that died is retried once on a fresh one: no command was sent yet.
    async fn open_channel(&self, operation: &str) -> Result<russh::Channel<client::Msg>, Error> {
        let mut retried = false;
        loop {
            let conn = self.live_connection().await?;
            let opened = tokio::time::timeout(self.config.connect_timeout, conn.channel_open_session()).await;
            let error = match opened {
                Ok(Ok(channel)) => return Ok(channel),
                // A refusal on a live connection (e.g. the server's own session limit) is the
                // server's answer, not a dead connection.
                Ok(Err(e)) if !conn.is_closed() => return Err(self.session_error(operation, e)),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer to a channel request".to_string(),
            };
            tracing::debug!(host = %self.config.host, error, "SSH connection lost; reconnecting");
            self.forget(&conn).await;
            if retried {
                return Err(Error::Session {
                    host: self.config.host.clone(),
                    operation: operation.to_string(),
                    message: error,
                });
            }
            retried = true;
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
        let conn = connect(&self.config, &self.key).await?;
        let conn = Arc::new(conn);
        self.connections.fetch_add(1, Ordering::Relaxed);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends the command and its standard input, collecting output until the channel closes.
    /// Input is written concurrently with reading, so a command that talks before it has read
    /// everything cannot deadlock on full windows.
    async fn run(
        &self,
        mut read: russh::ChannelReadHalf,
        write: &russh::ChannelWriteHalf<client::Msg>,
        operation: &str,
        command: String,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, Error> {
        write
            .exec(true, command)
            .await
            .map_err(|e| self.session_error(operation, e))?;
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

//! Failures of SSH operations, each naming the operation and its host, sorted by [`ErrorKind`].

use std::time::Duration;

/// What kind of failure it was; decides retries here and requeues in the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The server's host key is not the pinned one: refused before authenticating. Retrying
    /// cannot help; someone must check the host (or the pin).
    HostKeyMismatch,
    /// The server refused the client key.
    Auth,
    /// No connection, or it broke: TCP, handshake, a channel on a dead connection.
    Connect,
    /// A command did not finish in time.
    Timeout,
    /// A command ran and exited with a code other than 0.
    CommandFailed,
    /// Something handed in cannot be used (key text, fingerprint, an argument with a NUL byte,
    /// a relative path): fix the spec or the Secret.
    InvalidInput,
    /// Not sent: this replica may no longer act (leadership or the object's lock is gone).
    Fenced,
}

impl ErrorKind {
    /// Whether waiting and trying again may help.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Connect | Self::Timeout)
    }

    /// A stable label for metrics and Events.
    pub fn label(self) -> &'static str {
        match self {
            Self::HostKeyMismatch => "host_key_mismatch",
            Self::Auth => "auth",
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::CommandFailed => "command_failed",
            Self::InvalidInput => "invalid_input",
            Self::Fenced => "fenced",
        }
    }
}

/// A failed SSH operation. Messages never carry key material, file contents, standard input or
/// environment values: commands are named by their program, not their whole argument list.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The private key text could not be read.
    #[error("read the SSH private key: {message}")]
    InvalidKey { message: String },
    /// A pinned host-key fingerprint that is not `SHA256:<base64>`.
    #[error("SSH host-key fingerprint {value:?}: expected SHA256:<unpadded base64 of 32 bytes>")]
    InvalidFingerprint { value: String },
    /// The server presented another host key than the pinned one.
    #[error(
        "connect to {host}:{port}: the host key is {presented}, not the pinned {expected}; \
         refused before authenticating"
    )]
    HostKeyMismatch {
        host: String,
        port: u16,
        expected: String,
        presented: String,
    },
    /// The TCP connection or the SSH handshake failed (after `attempts` tries).
    #[error("connect to {host}:{port} (attempt {attempts}): {message}")]
    Connect {
        host: String,
        port: u16,
        attempts: u32,
        message: String,
    },
    /// The server refused the key for this user.
    #[error("authenticate as {user} on {host}:{port}: the server refused the key")]
    Auth { host: String, port: u16, user: String },
    /// The connection broke or refused a channel while running an operation.
    #[error("{operation} on {host}: {message}")]
    Session {
        host: String,
        operation: String,
        message: String,
    },
    /// The operation did not finish in time.
    #[error("{operation} on {host}: no result after {}s", after.as_secs_f32())]
    Timeout {
        host: String,
        operation: String,
        after: Duration,
    },
    /// The command exited with `code`; `tail` holds its last lines of output.
    #[error("{operation} on {host}: exit code {code}{}", tail_suffix(tail))]
    CommandFailed {
        host: String,
        operation: String,
        code: u32,
        tail: String,
    },
    /// An argument that cannot be passed safely or makes no sense.
    #[error("{operation}: {message}")]
    InvalidArgument { operation: String, message: String },
    /// The command was not sent: this replica may no longer act.
    #[error("{operation}: not sent, {reason}")]
    Fenced { operation: String, reason: String },
}

fn tail_suffix(tail: &str) -> String {
    match tail.trim_end() {
        "" => String::new(),
        t => format!("; last output:\n{t}"),
    }
}

impl Error {
    /// The failure's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidKey { .. } | Self::InvalidFingerprint { .. } | Self::InvalidArgument { .. } => {
                ErrorKind::InvalidInput
            }
            Self::HostKeyMismatch { .. } => ErrorKind::HostKeyMismatch,
            Self::Connect { .. } | Self::Session { .. } => ErrorKind::Connect,
            Self::Auth { .. } => ErrorKind::Auth,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::CommandFailed { .. } => ErrorKind::CommandFailed,
            Self::Fenced { .. } => ErrorKind::Fenced,
        }
    }

    /// The exit code of a failed command.
    pub fn exit_code(&self) -> Option<u32> {
        match self {
            Self::CommandFailed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_command_names_operation_code_and_tail() {
        let e = Error::CommandFailed {
            host: "pve1".into(),
            operation: "pct exec 101 /bin/sh".into(),
            code: 3,
            tail: "line 1\nboom\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "pct exec 101 /bin/sh on pve1: exit code 3; last output:\nline 1\nboom"
        );
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::CommandFailed, Some(3)));
        assert!(!e.kind().is_transient());
    }

    #[test]
    fn kinds_sort_retries() {
        let timeout = Error::Timeout {
            host: "h".into(),
            operation: "op".into(),
            after: Duration::from_secs(2),
        };
        assert!(timeout.kind().is_transient());
        assert_eq!(timeout.to_string(), "op on h: no result after 2s");
        let mismatch = Error::HostKeyMismatch {
            host: "h".into(),
            port: 22,
            expected: "SHA256:a".into(),
            presented: "SHA256:b".into(),
        };
        assert_eq!(mismatch.kind().label(), "host_key_mismatch");
        assert!(!mismatch.kind().is_transient());
    }
}

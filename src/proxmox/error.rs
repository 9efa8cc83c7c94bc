//! The Proxmox client's one error type. Every failure names the operation it belongs to and is
//! sorted into a [`ErrorClass`], which the reconcilers' error policy keys on.

use std::collections::BTreeMap;

/// What kind of failure it was; decides retries here and requeues in the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request never got an answer: connection refused/reset, DNS, TLS, timeout.
    Connect,
    /// The server's TLS certificate is not trusted (wrong pin, unknown CA): retrying cannot help,
    /// and no credential was sent.
    Tls,
    /// The server did not accept the credentials (401).
    Unauthorized,
    /// The credentials lack a privilege (403); see [`Error::missing_privilege`].
    Forbidden,
    /// The object (container, task, node) does not exist.
    NotFound,
    /// The object already exists (e.g. a VMID taken on create).
    AlreadyExists,
    /// The container is locked by another operation; worth retrying shortly.
    Locked,
    /// Proxmox refused the parameters (400), per field.
    InvalidParameters,
    /// The config changed since the digest sent with an update was read: the same request can
    /// never succeed; read the config again and plan anew.
    ConfigChanged,
    /// Any other server-side failure (5xx).
    Server,
    /// A task ran and ended in failure.
    TaskFailed,
    /// The circuit breaker for this endpoint is open: we fail fast without calling.
    CircuitOpen,
}

impl ErrorClass {
    /// Whether waiting and trying again may help (the controllers back off on these).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Connect | Self::Locked | Self::Server | Self::CircuitOpen
        )
    }

    /// A stable label for metrics and Events.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Locked => "locked",
            Self::InvalidParameters => "invalid_parameters",
            Self::ConfigChanged => "config_changed",
            Self::Server => "server",
            Self::TaskFailed => "task_failed",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// A failed Proxmox operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer: connect or timeout.
    #[error("{operation}: cannot reach Proxmox: {message}")]
    Connect {
        operation: String,
        message: String,
        never_sent: bool,
    },
    /// The TLS handshake refused the server's certificate.
    #[error("{operation}: Proxmox's TLS certificate is not trusted: {message}")]
    Tls { operation: String, message: String },
    /// An HTTP error answer from Proxmox.
    #[error("{operation}: Proxmox answered {status}: {message}{}", fields_suffix(.fields))]
    Api {
        operation: String,
        status: u16,
        class: ErrorClass,
        message: String,
        /// Per-parameter messages of a 400 answer.
        fields: BTreeMap<String, String>,
    },
    /// A task that ended with an exit status other than `OK`.
    #[error("{operation}: task {upid} failed: {exit_status}")]
    TaskFailed {
        operation: String,
        upid: String,
        exit_status: String,
        log_tail: Vec<String>,
    },
    /// The breaker is open after repeated connect failures.
    #[error("{operation}: {endpoint} is failing; not calling it again for {retry_in_secs}s")]
    CircuitOpen {
        operation: String,
        endpoint: String,
        retry_in_secs: u64,
    },
    /// The answer could not be read.
    #[error("{operation}: unexpected answer from Proxmox: {message}")]
    Decode { operation: String, message: String },
    /// The answer's body was larger than the client's limit (`ClientConfig::max_body_bytes`);
    /// reading stopped there.
    #[error("{operation}: Proxmox's answer is larger than the limit of {limit_bytes} bytes")]
    BodyTooLarge { operation: String, limit_bytes: usize },
}

fn fields_suffix(fields: &BTreeMap<String, String>) -> String {
    if fields.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.trim_end()))
        .collect();
    format!(" ({})", parts.join("; "))
}

impl Error {
    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Connect { .. } => ErrorClass::Connect,
            Self::Tls { .. } => ErrorClass::Tls,
            Self::Api { class, .. } => *class,
            Self::TaskFailed { .. } => ErrorClass::TaskFailed,
            Self::CircuitOpen { .. } => ErrorClass::CircuitOpen,
            // Unreadable answers are the server's fault, as a 5xx would be.
            Self::Decode { .. } | Self::BodyTooLarge { .. } => ErrorClass::Server,
        }
    }

    /// The privilege a 403 names (`VM.Allocate` of "Permission check failed (/vms/100, VM.Allocate)").
    pub fn missing_privilege(&self) -> Option<&str> {
        match self {
            Self::Api {
                class: ErrorClass::Forbidden,
                message,
                ..
            } => {
                let inner = message.split_once('(')?.1.rsplit_once(')')?.0;
                Some(inner.rsplit_once(", ").map_or(inner, |(_, p)| p).trim())
            }
            _ => None,
        }
    }

    /// The last lines of a failed task's log.
    pub fn log_tail(&self) -> &[String] {
        match self {
            Self::TaskFailed { log_tail, .. } => log_tail,
            _ => &[],
        }
    }
}

/// Sorts an HTTP error answer into a class from its status and Proxmox's wording
/// (see PVE-FACTS §1, §2 and §5: most handler errors are 500s told apart by their text).
pub fn classify(status: u16, message: &str, fields: &BTreeMap<String, String>) -> ErrorClass {
    let text = message.to_ascii_lowercase();
    let any_field = |needle: &str| fields.values().any(|v| v.to_ascii_lowercase().contains(needle));
    match status {
        401 => ErrorClass::Unauthorized,
        403 => ErrorClass::Forbidden,
        404 | 501 => ErrorClass::NotFound,
        _ if text.contains("already exists") || any_field("already exists") => ErrorClass::AlreadyExists,
        _ if text.contains("is locked") || text.contains("can't lock file") => ErrorClass::Locked,
        _ if text.contains("detected modified configuration") => ErrorClass::ConfigChanged,
        _ if text.contains("does not exist") || text.contains("no such task") || any_field("no such") => {
            ErrorClass::NotFound
        }
        400 => ErrorClass::InvalidParameters,
        595 | 596 => ErrorClass::Connect,
        _ => ErrorClass::Server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(status: u16, message: &str) -> ErrorClass {
        classify(status, message, &BTreeMap::new())
    }

    #[test]
    fn proxmox_wording_is_classified() {
        assert_eq!(class_of(401, "authentication failure"), ErrorClass::Unauthorized);
        assert_eq!(
            class_of(403, "Permission check failed (/vms/100, VM.Allocate)"),
            ErrorClass::Forbidden
        );
        assert_eq!(
            class_of(500, "CT 100 already exists on node 'pve'"),
            ErrorClass::AlreadyExists
        );
        assert_eq!(class_of(500, "CT is locked (create)"), ErrorClass::Locked);
        assert_eq!(
            class_of(
                500,
                "detected modified configuration - file changed by other user? Try again."
            ),
            ErrorClass::ConfigChanged
        );
        assert_eq!(
            class_of(
                500,
                "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout"
            ),
            ErrorClass::Locked
        );
        assert_eq!(
            class_of(500, "Configuration file 'nodes/pve/lxc/300.conf' does not exist"),
            ErrorClass::NotFound
        );
        assert_eq!(
            class_of(500, "unable to destroy CT 100 - container is running"),
            ErrorClass::Server
        );
        assert_eq!(class_of(503, "Service Unavailable"), ErrorClass::Server);
        assert_eq!(class_of(595, "Connection refused"), ErrorClass::Connect);
        let mut fields = BTreeMap::new();
        fields.insert("vmid".to_string(), "VM 200 already exists".to_string());
        assert_eq!(
            classify(400, "Parameter verification failed.", &fields),
            ErrorClass::AlreadyExists
        );
        fields.insert(
            "vmid".to_string(),
            "value must have a minimum value of 100".to_string(),
        );
        assert_eq!(
            classify(400, "Parameter verification failed.", &fields),
            ErrorClass::InvalidParameters
        );
    }

    #[test]
    fn the_missing_privilege_is_named() {
        let e = Error::Api {
            operation: "create container".into(),
            status: 403,
            class: ErrorClass::Forbidden,
            message: "Permission check failed (/vms/100, VM.Allocate)".into(),
            fields: BTreeMap::new(),
        };
        assert_eq!(e.missing_privilege(), Some("VM.Allocate"));
        assert!(
            e.to_string()
                .starts_with("create container: Proxmox answered 403")
        );
    }

    #[test]
    fn only_transient_classes_are_retried_by_controllers() {
        assert!(ErrorClass::Locked.is_transient());
        assert!(ErrorClass::Connect.is_transient());
        assert!(!ErrorClass::InvalidParameters.is_transient());
        assert!(!ErrorClass::Forbidden.is_transient());
        assert!(!ErrorClass::AlreadyExists.is_transient());
    }
}

//! API errors and the exact responses PVE gives for them (status, reason phrase, body).

use crate::validate::ParamErrors;
use serde_json::{Value, json};

/// A failed API call, as PVE would report it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400 `Parameter verification failed.` with per-parameter messages.
    #[error("parameter verification failed: {0:?}")]
    Param(ParamErrors),
    /// 500 with the message (a `die "...\n"` in a handler).
    #[error("{0}")]
    Server(String),
    /// 403 `Permission check failed (<what>)`.
    #[error("Permission check failed ({0})")]
    Perm(String),
    /// 401 on /access/ticket: JSON body with `authentication failure`.
    #[error("authentication failure")]
    LoginFailed,
    /// 401 elsewhere: the reason (`No ticket`, `Authentication failed!`, ...) and an empty body.
    #[error("{0}")]
    Unauthorized(String),
    /// 501 with a plain-text body.
    #[error("{0}")]
    NotImplemented(String),
    /// Any other status with a reason and an empty body (595 for an unreachable node, 503).
    #[error("{1}")]
    Status(u16, String),
    /// The guest's config lock file is held: the pipeline waits up to `timeout_ms` for it and
    /// runs the handler again, or answers 500 with `message` (`... got timeout`).
    #[error("{message}")]
    LockBusy {
        vmid: u32,
        timeout_ms: u64,
        message: String,
    },
}

impl ApiError {
    pub fn param(name: &str, msg: impl Into<String>) -> Self {
        ApiError::Param([(name.to_string(), msg.into())].into())
    }

    pub fn server(msg: impl Into<String>) -> Self {
        ApiError::Server(msg.into())
    }

    /// `Configuration file 'nodes/<node>/lxc/<vmid>.conf' does not exist`
    pub fn no_config(node: &str, vmid: u32) -> Self {
        ApiError::Server(format!(
            "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
        ))
    }

    /// `can't lock file '/run/lock/lxc/pve-config-<vmid>.lock' - got timeout`
    pub fn flock_timeout(vmid: u32) -> String {
        format!("can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout")
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Param(_) => 400,
            ApiError::Server(_) | ApiError::LockBusy { .. } => 500,
            ApiError::Perm(_) => 403,
            ApiError::LoginFailed | ApiError::Unauthorized(_) => 401,
            ApiError::NotImplemented(_) => 501,
            ApiError::Status(code, _) => *code,
        }
    }

    /// The reason phrase PVE puts on the status line (the first line of the message).
    pub fn reason(&self) -> String {
        let full = match self {
            ApiError::Param(_) => "Parameter verification failed.".to_string(),
            ApiError::LoginFailed => "authentication failure".to_string(),
            other => other.to_string(),
        };
        full.lines().next().unwrap_or_default().to_string()
    }

    /// The body: JSON for handler errors, empty for auth/proxy failures, text for 501.
    pub fn body(&self) -> Option<Value> {
        match self {
            ApiError::Param(errors) => {
                Some(json!({"errors": errors, "data": null, "message": "Parameter verification failed.\n"}))
            }
            ApiError::Server(msg) | ApiError::LockBusy { message: msg, .. } => {
                Some(json!({"data": null, "message": with_newline(msg)}))
            }
            ApiError::Perm(_) => Some(json!({"data": null, "message": format!("{self}\n")})),
            ApiError::LoginFailed => Some(json!({"data": null, "message": "authentication failure\n"})),
            _ => None,
        }
    }
}

fn with_newline(msg: &str) -> String {
    if msg.ends_with('\n') {
        msg.to_string()
    } else {
        format!("{msg}\n")
    }
}

pub type ApiResult<T = Value> = Result<T, ApiError>;

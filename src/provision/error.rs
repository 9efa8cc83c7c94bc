//! Why provisioning stopped, naming the step.

use crate::ssh::{self, ErrorKind};

/// A provisioning failure; every variant names the step (`file:/etc/motd`, `packages:apt`,
/// `script:setup`, or `marker`/`discover` for the bookkeeping around them).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The step's values cannot be used (checked before anything runs).
    #[error("step {step}: {reason}")]
    Invalid { step: String, reason: String },
    /// The container has none of the programs of the step's package manager.
    #[error("step {step}: the container has no {manager} (looked for {programs})")]
    ManagerMissing {
        step: String,
        manager: String,
        programs: String,
    },
    /// A command of the step ran and failed.
    #[error("step {step}: {program} exited with code {code}{}", tail_suffix(tail))]
    Failed {
        step: String,
        program: String,
        code: u32,
        /// The last lines of its output (both streams).
        tail: String,
    },
    /// The step could not be carried out over SSH (connection, timeout, pct refusing).
    #[error("step {step}: {source}")]
    Ssh {
        step: String,
        #[source]
        source: ssh::Error,
    },
}

fn tail_suffix(tail: &str) -> String {
    match tail.trim_end() {
        "" => String::new(),
        t => format!("; last output:\n{t}"),
    }
}

impl ProvisionError {
    /// The failure's kind, for the error policy and metrics.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } | Self::ManagerMissing { .. } => ErrorKind::InvalidInput,
            Self::Failed { .. } => ErrorKind::CommandFailed,
            Self::Ssh { source, .. } => source.kind(),
        }
    }

    /// The step that failed.
    pub fn step(&self) -> &str {
        match self {
            Self::Invalid { step, .. }
            | Self::ManagerMissing { step, .. }
            | Self::Failed { step, .. }
            | Self::Ssh { step, .. } => step,
        }
    }

    /// The exit code of the command that failed, if one ran to its end.
    pub fn exit_code(&self) -> Option<u32> {
        match self {
            Self::Failed { code, .. } => Some(*code),
            Self::Ssh { source, .. } => source.exit_code(),
            _ => None,
        }
    }

    pub(crate) fn ssh(step: &str) -> impl FnOnce(ssh::Error) -> Self + '_ {
        move |source| Self::Ssh {
            step: step.to_string(),
            source,
        }
    }
}

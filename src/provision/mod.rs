//! Provisioning inside containers: files, packages and scripts (issue 7's pipeline phase 7),
//! then discovery of services, ports and credentials (phase 8's container side).
//!
//! `plan` is pure: the ordered steps with their digests, less those done, and the checks
//! every value passes first; `marker` the record of done steps kept inside the container;
//! `execute` runs the plan against a [`Target`] (in production [`PctTarget`]: `pct` over SSH);
//! `discover` reads what runs; `error` names the step that failed.

pub mod content;
mod discover;
mod error;
mod execute;
mod marker;
pub mod output;
mod plan;
mod target;

pub use discover::{
    CREDENTIALS_DIR, Credentials, Discovery, PortStatus, ServiceStatus, discover, parse_env_file,
    parse_listening_ports, parse_systemctl_show, service_name,
};
pub use error::ProvisionError;
pub use execute::{ProvisionFailure, ProvisionOptions, ProvisionReport, provision};
pub use marker::{MARKER_PATH, parse as parse_marker, render as render_marker};
pub use plan::{Action, BACKUP_SUFFIX, PackageManager, SCRIPTS_DIR, Step, plan, steps, validate};
pub use target::{Fence, PctTarget, Target};

//! Tasks as PVE records them: the task record, the action a task applies when it succeeds, and
//! the UPID format. Running them is `worker.rs`'s job.

/// What a task does when it finishes successfully.
#[derive(Debug, Clone)]
pub enum Action {
    Create {
        vmid: u32,
        start: bool,
    },
    Start {
        vmid: u32,
    },
    Stop {
        vmid: u32,
    },
    Reboot {
        vmid: u32,
    },
    Destroy {
        vmid: u32,
        /// Stop a running container first (else the task fails if it runs by then).
        force: bool,
    },
    Resize {
        vmid: u32,
        disk: String,
        bytes: u64,
    },
    Migrate {
        vmid: u32,
        target: String,
        restart: bool,
    },
    Snapshot {
        vmid: u32,
        name: String,
        description: String,
    },
    DeleteSnapshot {
        vmid: u32,
        name: String,
    },
    Rollback {
        vmid: u32,
        name: String,
        start: bool,
    },
    Download {
        node: String,
        storage: String,
        volid: String,
        size: u64,
    },
}

impl Action {
    pub(crate) fn vmid(&self) -> Option<u32> {
        match self {
            Action::Create { vmid, .. }
            | Action::Start { vmid }
            | Action::Stop { vmid }
            | Action::Reboot { vmid }
            | Action::Destroy { vmid, .. }
            | Action::Resize { vmid, .. }
            | Action::Migrate { vmid, .. }
            | Action::Snapshot { vmid, .. }
            | Action::DeleteSnapshot { vmid, .. }
            | Action::Rollback { vmid, .. } => Some(*vmid),
            Action::Download { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub kind: String,
    pub id: String,
    pub authid: String,
    pub running: bool,
    pub exitstatus: Option<String>,
    pub log: Vec<String>,
    pub(crate) action: Action,
    /// Fail with this message instead of applying the action.
    pub(crate) fail: Option<String>,
    /// The config `lock` value this task set and clears when done.
    pub(crate) lock: Option<String>,
}

/// Parses a UPID (PVE's decoder regex); returns (node, type, id, user).
pub fn parse_upid(upid: &str) -> Option<(String, String, String, String)> {
    let rest = upid.strip_prefix("UPID:")?.strip_suffix(':')?;
    let f: Vec<&str> = rest.split(':').collect();
    let hex = |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = f.len() == 7
        && crate::formats::is_node_name(f[0])
        && hex(f[1], &[8])
        && hex(f[2], &[8, 9])
        && hex(f[3], &[8])
        && !f[4].is_empty()
        && !f[6].is_empty()
        && f[4..].iter().all(|s| !s.contains(['/', ' ']));
    ok.then(|| {
        (
            f[0].to_string(),
            f[4].to_string(),
            f[5].to_string(),
            f[6].to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_parse() {
        let u = "UPID:optiplex2:000137B5:00112EB4:6991F9E1:vzcreate:300:root@pam!opentofu:";
        assert_eq!(
            parse_upid(u),
            Some((
                "optiplex2".into(),
                "vzcreate".into(),
                "300".into(),
                "root@pam!opentofu".into()
            ))
        );
        assert!(parse_upid("UPID:x:1:2:3:a:b:c:").is_none());
        assert!(parse_upid("garbage").is_none());
    }
}

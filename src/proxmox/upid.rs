//! Task identifiers (UPIDs): `UPID:{node}:{pid}:{pstart}:{starttime}:{type}:{id}:{user}:`.

/// The parts of a UPID that the operator uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    /// The node the task runs on (where its status must be asked).
    pub node: String,
    /// Task type, e.g. `vzcreate`, `vzstart`, `download`.
    pub kind: String,
    /// The object, e.g. the VMID.
    pub id: String,
    /// Who started it (`user@realm` or `user@realm!token`).
    pub user: String,
    /// The task's start time (Unix seconds).
    pub start_time: u64,
    raw: String,
}

impl Upid {
    /// Parses a UPID as Proxmox prints it; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("UPID:")?.strip_suffix(':')?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, start, kind, id, user] = parts.as_slice() else {
            return None;
        };
        let hex =
            |v: &str, lens: &[usize]| lens.contains(&v.len()) && v.chars().all(|c| c.is_ascii_hexdigit());
        let node_ok = !node.is_empty() && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !node_ok || !hex(pid, &[8]) || !hex(pstart, &[8, 9]) || !hex(start, &[8]) || kind.is_empty() {
            return None;
        }
        Some(Self {
            node: node.to_string(),
            kind: kind.to_string(),
            id: id.to_string(),
            user: user.to_string(),
            start_time: u64::from_str_radix(start, 16).ok()?,
            raw: s.to_string(),
        })
    }

    /// The UPID as text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl std::fmt::Display for Upid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Whether a stopped task's `exitstatus` means success (`OK` or `WARNINGS: n`).
pub fn exit_status_ok(exit_status: &str) -> bool {
    exit_status == "OK"
        || exit_status
            .strip_prefix("WARNINGS: ")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_upids() {
        let u =
            Upid::parse("UPID:optiplex2:000137B5:00112EB4:6991F9E1:vzcreate:300:root@pam!opentofu:").unwrap();
        assert_eq!(
            (u.node.as_str(), u.kind.as_str(), u.id.as_str()),
            ("optiplex2", "vzcreate", "300")
        );
        assert_eq!(u.user, "root@pam!opentofu");
        assert_eq!(u.start_time, 0x6991F9E1);
        assert!(Upid::parse("UPID:pve:000137B5:100112EB4:6991F9E1:download:t.tar.zst:root@pam:").is_some());
    }

    #[test]
    fn refuses_what_is_not_a_upid() {
        for bad in [
            "",
            "UPID:pve:000137B5:00112EB4:6991F9E1:vzcreate:300:root@pam",
            "UPID:pve:137B5:00112EB4:6991F9E1:vzcreate:300:root@pam:",
            "UPID:pve:000137B5:00112EB4:6991F9E1::300:root@pam:",
            "UPID:p/e:000137B5:00112EB4:6991F9E1:vzcreate:300:root@pam:",
            "TASK:pve:000137B5:00112EB4:6991F9E1:vzcreate:300:root@pam:",
        ] {
            assert_eq!(Upid::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn success_is_ok_or_warnings() {
        assert!(exit_status_ok("OK"));
        assert!(exit_status_ok("WARNINGS: 2"));
        assert!(!exit_status_ok("0"));
        assert!(!exit_status_ok("WARNINGS: "));
        assert!(!exit_status_ok("unable to create CT 100 - no space left"));
        assert!(!exit_status_ok("unexpected status"));
    }
}

//! Mode and owner of a file pushed into a container, checked before anything is sent.

/// Mode and owner of a pushed file (`pct push --perms --user --group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePerms {
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    pub user: Option<String>,
    pub group: Option<String>,
}

impl FilePerms {
    /// From the spec's forms: `mode` as octal text (`0644`, `644`), `owner` as `user`,
    /// `user:group` or `:group` (names or numbers); empty owner means "leave as pct makes it".
    pub fn parse(mode: &str, owner: &str) -> Result<Self, String> {
        let digits = mode.strip_prefix("0o").unwrap_or(mode);
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!("mode {mode:?} is not octal permission bits like 0644"));
        }
        let mode = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, g),
            None => (owner, ""),
        };
        let part = |name: &str, what: &str| -> Result<Option<String>, String> {
            if name.is_empty() {
                return Ok(None);
            }
            let ok = !name.starts_with('-')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-$".contains(&b));
            match ok {
                true => Ok(Some(name.to_string())),
                false => Err(format!("{what} {name:?} is not a user or group name or number")),
            }
        };
        Ok(Self {
            mode,
            user: part(user, "owner")?,
            group: part(group, "group")?,
        })
    }

    /// `0600 root:root`: for files only root may read (markers, backups, scripts get 0700).
    pub fn root_only(mode: u32) -> Self {
        Self {
            mode,
            user: Some("root".into()),
            group: Some("root".into()),
        }
    }
}

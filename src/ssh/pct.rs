//! `pct exec`, `pct push` and `pct pull` on the Proxmox host, over [`SshHost`].
//!
//! Nothing that comes from a spec is spliced into a shell string: the host-side scripts below
//! are constants that take every value as a positional parameter (`"$1"`), file contents and
//! script texts travel on standard input, and the command line itself is quoted word by word.
//!
//! Files are read with `pct pull` (to a `mktemp` file on the host, then `cat`), not with
//! `pct exec cat`: pull resolves the path inside the container whatever the command's working
//! directory or confinement, which also keeps the pve-sim stand-in (commands unconfined, run
//! in the container root) honest. The one command that needs a path inside the container is
//! the `mkdir -p` for missing parent directories; it runs from `${PCT_ROOT:-/}`, which is `/`
//! in a real container and the container root under the stand-in.

use std::time::Duration;

use super::client::SshHost;
use super::error::Error;
use super::output::ExecOutput;

/// Host side of a push: content on stdin into a private temp file, `pct push`, and on a
/// failure (typically a missing parent directory) `mkdir -p` inside the container and one more
/// push. The temp file is removed however it ends.
const PUSH_SCRIPT: &str = r#"set -eu
vmid=$1 dest=$2 dir=$3
shift 3
tmp=$(mktemp)
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
if ! pct push "$vmid" "$tmp" "$dest" "$@" 2>/dev/null; then
  pct exec "$vmid" -- sh -c 'cd "${PCT_ROOT:-/}" && mkdir -p -- "./$1"' mkdir "$dir"
  pct push "$vmid" "$tmp" "$dest" "$@"
fi
"#;

/// Exit code of [`PULL_SCRIPT`] when the file does not exist in the container.
const PULL_ABSENT: u32 = 3;

/// Host side of a read: `pct pull` into a private temp file, then `cat` it.
const PULL_SCRIPT: &str = r#"set -u
vmid=$1 src=$2
tmp=$(mktemp) || exit 1
trap 'rm -f -- "$tmp"' EXIT
if ! err=$(pct pull "$vmid" "$src" "$tmp" 2>&1 >/dev/null); then
  case $err in *"No such file or directory"*) exit 3 ;; esac
  printf '%s\n' "$err" >&2
  exit 1
fi
cat -- "$tmp"
"#;

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

    fn pct_args(&self) -> Vec<String> {
        let mut args = vec!["--perms".to_string(), format!("{:04o}", self.mode)];
        if let Some(user) = &self.user {
            args.extend(["--user".to_string(), user.clone()]);
        }
        if let Some(group) = &self.group {
            args.extend(["--group".to_string(), group.clone()]);
        }
        args
    }
}

/// An absolute path inside a container: no NUL, no `..` segment (pct confines paths to the
/// container, and nothing here needs to climb).
pub fn check_container_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} is not absolute"));
    }
    if path.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    if path.split('/').any(|seg| seg == "..") {
        return Err(format!("path {path:?} has a '..' segment"));
    }
    if path.ends_with('/') {
        return Err(format!("path {path:?} names a directory"));
    }
    Ok(())
}

/// The parent directory of an absolute path (`/` for `/motd`).
fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl SshHost {
    /// `pct exec <vmid> -- [timeout -s KILL <secs>] [env -- K=V...] argv...` with `stdin`.
    ///
    /// The command is killed inside the container after `timeout` (coreutils or busybox
    /// `timeout`, so no orphan keeps running); the SSH side waits 30 s longer for pct itself.
    /// A kill by the timeout is reported as [`Error::Timeout`]; any other exit code is
    /// returned in the output, for the caller to judge.
    pub async fn pct_exec(
        &self,
        vmid: u32,
        argv: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let operation = format!("pct exec {vmid} {}", argv.first().copied().unwrap_or_default());
        let invalid = |message: String| Error::InvalidArgument {
            operation: operation.clone(),
            message,
        };
        if argv.is_empty() {
            return Err(invalid("no command".into()));
        }
        let vmid_text = vmid.to_string();
        let secs = timeout.as_secs_f64().ceil().max(1.0).to_string();
        let mut words: Vec<String> = ["pct", "exec", &vmid_text, "--", "timeout", "-s", "KILL", &secs]
            .map(String::from)
            .to_vec();
        if !env.is_empty() {
            words.extend(["env".to_string(), "--".to_string()]);
            for (name, value) in env {
                check_env_name(name).map_err(invalid)?;
                words.push(format!("{name}={value}"));
            }
        }
        // `env` would take a program name with '=' for an assignment, `timeout` one with a
        // leading '-' for an option.
        if argv[0].starts_with('-') || argv[0].contains('=') {
            return Err(invalid(format!("program {:?} cannot be run safely", argv[0])));
        }
        words.extend(argv.iter().map(|w| w.to_string()));
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        let out = self
            .exec_labeled(&operation, &words, stdin, timeout + Duration::from_secs(30))
            .await?;
        // 124: timeout's own code; 137 = 128 + KILL (GNU timeout with -s KILL, busybox).
        if matches!(out.code, 124 | 137) && started.elapsed() >= timeout {
            return Err(Error::Timeout {
                host: self.config().host.clone(),
                operation,
                after: timeout,
            });
        }
        Ok(out)
    }

    /// Writes `content` to `dest` inside the container with `perms`, creating missing parent
    /// directories (mode 0755). The content goes on standard input, never on a command line.
    pub async fn pct_push(
        &self,
        vmid: u32,
        content: &[u8],
        dest: &str,
        perms: &FilePerms,
        timeout: Duration,
    ) -> Result<(), Error> {
        let operation = format!("pct push {vmid} {dest:?}");
        check_container_path(dest).map_err(|message| Error::InvalidArgument {
            operation: operation.clone(),
            message,
        })?;
        let vmid_text = vmid.to_string();
        let mut words = vec![
            "sh",
            "-c",
            PUSH_SCRIPT,
            "pct-push",
            &vmid_text,
            dest,
            parent_dir(dest),
        ];
        let args = perms.pct_args();
        words.extend(args.iter().map(String::as_str));
        let out = self
            .exec_labeled(&operation, &words, Some(content), timeout)
            .await?;
        self.check(&operation, out).map(drop)
    }

    /// The content of `path` inside the container, or `None` when there is no such file.
    pub async fn pct_pull(&self, vmid: u32, path: &str, timeout: Duration) -> Result<Option<Vec<u8>>, Error> {
        let operation = format!("pct pull {vmid} {path:?}");
        check_container_path(path).map_err(|message| Error::InvalidArgument {
            operation: operation.clone(),
            message,
        })?;
        let vmid_text = vmid.to_string();
        let words = ["sh", "-c", PULL_SCRIPT, "pct-pull", &vmid_text, path];
        let out = self.exec_labeled(&operation, &words, None, timeout).await?;
        if out.code == PULL_ABSENT {
            return Ok(None);
        }
        let out = self.check(&operation, out)?;
        if out.truncated {
            return Err(Error::InvalidArgument {
                operation,
                message: format!("the file is larger than {} bytes", super::output::MAX_CAPTURE),
            });
        }
        Ok(Some(out.stdout))
    }
}

/// An environment variable name: letters, digits, `_`, not starting with a digit.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(format!("{name:?} is not an environment variable name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_parse_from_spec_forms() {
        assert_eq!(
            FilePerms::parse("0640", "www-data:adm").unwrap(),
            FilePerms {
                mode: 0o640,
                user: Some("www-data".into()),
                group: Some("adm".into())
            }
        );
        let p = FilePerms::parse("755", "1000").unwrap();
        assert_eq!(
            (p.mode, p.user.as_deref(), p.group.as_deref()),
            (0o755, Some("1000"), None)
        );
        assert_eq!(p.pct_args(), ["--perms", "0755", "--user", "1000"]);
        assert_eq!(
            FilePerms::parse("0600", "").unwrap().pct_args(),
            ["--perms", "0600"]
        );
        for (mode, owner) in [
            ("0999", "root"),
            ("rw-r--r--", "root"),
            ("", "root"),
            ("0644", "--perms"),
            ("0644", "root:-x"),
            ("0644", "a b"),
            ("0644", "root;id"),
            ("0644", "$(id)"),
        ] {
            assert!(FilePerms::parse(mode, owner).is_err(), "{mode} {owner}");
        }
    }

    #[test]
    fn container_paths_are_absolute_without_climbing() {
        for ok in ["/etc/motd", "/etc/; touch x", "/a b/$(c)", "/x/-rf"] {
            assert!(check_container_path(ok).is_ok(), "{ok}");
        }
        for bad in ["etc/motd", "", "-rf", "/etc/../root/x", "/..", "/a\0b", "/etc/"] {
            assert!(check_container_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parent_dir("/etc/app/conf"), "/etc/app");
        assert_eq!(parent_dir("/motd"), "/");
    }

    #[test]
    fn env_names_are_plain() {
        assert!(check_env_name("A_1").is_ok());
        assert!(check_env_name("_x").is_ok());
        for bad in ["", "1A", "A=B", "-i", "A B", "A;B"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }
}

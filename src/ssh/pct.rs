//! Container operations over [`SshHost`]: exec, push and pull, each one request to the host
//! command (`infra/host/lxc-operator-host`, see [`super::host_command`]), which runs `pct` on
//! the host under a deadline.
//!
//! Nothing that comes from a spec is spliced into a shell string: requests are words the host
//! never hands to a shell, file contents, script texts and environment values travel on
//! standard input. Environment values never appear in any command line, on the host or in the
//! container: [`ENV_SCRIPT`] reads them from the head of standard input inside the container.

use std::time::{Duration, Instant};

use super::client::SshHost;
use super::error::Error;
use super::host_command::{
    EXIT_ABSENT, EXIT_NOT_REGULAR, EXIT_REFUSED, EXIT_TOO_LARGE, MAX_TRANSFER, REFUSED_PREFIX, REMOTE_GRACE,
    Request, deadline_seconds,
};
use super::output::ExecOutput;
pub use super::perms::FilePerms;

/// Inside the container, ahead of a command that has environment variables: reads `$1`
/// entries `NAME LENGTH\n<LENGTH bytes>` from standard input, exports them and runs the
/// rest of the arguments, which read the rest of standard input. `read` and `dd bs=1` take
/// exactly what they need, so the command's own input stays where it was.
const ENV_SCRIPT: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do
  IFS=' ' read -r name len || exit 125
  case $name in ''|[0-9]*|*[!A-Za-z0-9_]*) exit 125 ;; esac
  case $len in ''|*[!0-9]*) exit 125 ;; esac
  value=$(dd bs=1 count="$len" 2>/dev/null; echo x)
  export "$name=${value%x}"
  n=$((n - 1))
done
exec "$@"
"#;

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

impl SshHost {
    /// Runs `argv` inside the container with `env` added and `stdin` fed.
    ///
    /// The command is killed inside the container after `timeout` (coreutils or busybox
    /// `timeout`, so no orphan keeps running) and `pct` on the host 10 s later; the SSH side
    /// waits [`REMOTE_GRACE`] longer. A kill by the timeout is reported as
    /// [`Error::Timeout`]; any other exit code is returned in the output, for the caller to
    /// judge.
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
        match argv.first() {
            None => return Err(invalid("no command".into())),
            // `timeout` would take a program name with a leading '-' for an option.
            Some(program) if program.is_empty() || program.starts_with('-') => {
                return Err(invalid(format!("program {program:?} cannot be run safely")));
            }
            Some(_) => {}
        }
        let count = env.len().to_string();
        let mut words: Vec<&str> = Vec::with_capacity(argv.len() + 4);
        let mut input = Vec::new();
        if !env.is_empty() {
            words.extend(["sh", "-c", ENV_SCRIPT, "lxc-env", &count]);
            for (name, value) in env {
                check_env_name(name).map_err(invalid)?;
                input.extend(format!("{name} {}\n", value.len()).into_bytes());
                input.extend(value.as_bytes());
            }
        }
        words.extend(argv);
        let input = match (env.is_empty(), stdin) {
            (true, stdin) => stdin,
            (false, stdin) => {
                input.extend(stdin.unwrap_or_default());
                Some(input.as_slice())
            }
        };
        let request = Request::Exec {
            vmid,
            deadline: deadline_seconds(timeout),
            argv: &words,
        };
        let started = Instant::now();
        let out = self.request(&operation, request, input, timeout).await?;
        self.timed_out(&operation, &out, started, timeout)?;
        self.refused(&operation, &out)?;
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
        let invalid = |message: String| Error::InvalidArgument {
            operation: operation.clone(),
            message,
        };
        check_container_path(dest).map_err(invalid)?;
        if content.len() > MAX_TRANSFER {
            return Err(invalid(format!(
                "the content is larger than {MAX_TRANSFER} bytes"
            )));
        }
        let request = Request::Push {
            vmid,
            deadline: deadline_seconds(timeout),
            path: dest,
            perms,
        };
        let started = Instant::now();
        let out = self.request(&operation, request, Some(content), timeout).await?;
        self.timed_out(&operation, &out, started, timeout)?;
        self.refused(&operation, &out)?;
        self.check(&operation, out).map(drop)
    }

    /// The content of `path` inside the container, or `None` when there is no such file; at
    /// most [`MAX_TRANSFER`] bytes (see [`SshHost::pct_pull_limited`]).
    pub async fn pct_pull(&self, vmid: u32, path: &str, timeout: Duration) -> Result<Option<Vec<u8>>, Error> {
        self.pct_pull_limited(vmid, path, MAX_TRANSFER, timeout).await
    }

    /// The content of `path` inside the container, or `None` when there is no such file. Only
    /// a regular file is read (a link, FIFO, device or directory is refused) and only up to
    /// `max_bytes` (at most [`MAX_TRANSFER`]): the host stops reading one byte past it, and a
    /// larger file is refused. Both are [`Error::Refused`].
    pub async fn pct_pull_limited(
        &self,
        vmid: u32,
        path: &str,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        let operation = format!("pct pull {vmid} {path:?}");
        check_container_path(path).map_err(|message| Error::InvalidArgument {
            operation: operation.clone(),
            message,
        })?;
        let max_bytes = max_bytes.clamp(1, MAX_TRANSFER);
        let request = Request::Pull {
            vmid,
            deadline: deadline_seconds(timeout),
            path,
            max_bytes,
        };
        let started = Instant::now();
        let out = self.request(&operation, request, None, timeout).await?;
        self.timed_out(&operation, &out, started, timeout)?;
        self.refused(&operation, &out)?;
        match out.code {
            EXIT_ABSENT => return Ok(None),
            EXIT_NOT_REGULAR | EXIT_TOO_LARGE => {
                return Err(Error::Refused {
                    host: self.config().host.clone(),
                    operation,
                    message: out.tail(1),
                });
            }
            _ => {}
        }
        let out = self.check(&operation, out)?;
        if out.truncated || out.stdout.len() > max_bytes {
            return Err(Error::Refused {
                host: self.config().host.clone(),
                operation,
                message: format!("the file is larger than {max_bytes} bytes"),
            });
        }
        Ok(Some(out.stdout))
    }

    /// Sends `request` in this host's mode and waits [`REMOTE_GRACE`] beyond its deadline.
    async fn request(
        &self,
        operation: &str,
        request: Request<'_>,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let command = request
            .command_line(self.config().mode)
            .map_err(|message| Error::InvalidArgument {
                operation: operation.to_string(),
                message,
            })?;
        self.exec_command(operation, command, stdin, timeout + REMOTE_GRACE)
            .await
    }

    /// [`Error::Timeout`] when the host's `timeout` ended the request: exit code 124 (its own)
    /// or 137 (128 + KILL) once the deadline has passed.
    fn timed_out(
        &self,
        operation: &str,
        out: &ExecOutput,
        started: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        if matches!(out.code, 124 | 137) && started.elapsed() >= timeout {
            return Err(Error::Timeout {
                host: self.config().host.clone(),
                operation: operation.to_string(),
                after: timeout,
            });
        }
        Ok(())
    }

    /// [`Error::Refused`] when the host command refused the request.
    fn refused(&self, operation: &str, out: &ExecOutput) -> Result<(), Error> {
        let stderr = String::from_utf8_lossy(&out.stderr);
        match stderr.strip_prefix(REFUSED_PREFIX) {
            Some(message) if out.code == EXIT_REFUSED => Err(Error::Refused {
                host: self.config().host.clone(),
                operation: operation.to_string(),
                message: message.trim().to_string(),
            }),
            _ => Ok(()),
        }
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
        assert_eq!(FilePerms::parse("0600", "").unwrap().user, None);
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

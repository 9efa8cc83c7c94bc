//! The request protocol of `infra/host/lxc-operator-host`, the one program that performs the
//! three container operations on a host: push a file, pull a bounded regular file, exec an
//! argument vector under a deadline.
//!
//! In [`HostMode::HostCommand`] that program is the forced command of the operator's key and
//! a request travels as the SSH command itself: plain words (`v1 exec 101 30 <base64>...`) that
//! the host splits on spaces, never parses with a shell. In [`HostMode::Direct`] (a login that
//! may run anything, typically root) the same script is sent inline as `sh -c <script>` with
//! the same words as arguments, so both modes share one implementation of the checks, the
//! size bounds and the deadlines.

use std::time::Duration;

use super::perms::FilePerms;
use super::quote;

/// How the operator's commands reach `pct` on a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HostMode {
    /// The login may run anything (root): the host script is sent inline with each request.
    #[default]
    Direct,
    /// The key is restricted to the host command (`command="..."` in `authorized_keys`): only
    /// its requests are sent.
    HostCommand,
}

/// The host command, sent inline in [`HostMode::Direct`]; installed on the host for
/// [`HostMode::HostCommand`] (see `infra/host/README.md`).
pub const HOST_SCRIPT: &str = include_str!("../../infra/host/lxc-operator-host");

/// The largest file pushed or pulled (`MAX_BYTES` in the script).
pub const MAX_TRANSFER: usize = 16 << 20;

/// How long the operator waits beyond a request's own deadline before it gives up: the host
/// kills `pct` at most 10 s after the deadline, so the host side always gives up first and
/// nothing keeps running after the operator stopped waiting.
pub const REMOTE_GRACE: Duration = Duration::from_secs(30);

/// Exit codes of the host command.
pub(super) const EXIT_ABSENT: u32 = 3;
pub(super) const EXIT_NOT_REGULAR: u32 = 4;
pub(super) const EXIT_TOO_LARGE: u32 = 5;
pub(super) const EXIT_REFUSED: u32 = 64;
/// How the host command's refusals begin (on standard error, with [`EXIT_REFUSED`]).
pub(super) const REFUSED_PREFIX: &str = "lxc-operator-host: refused:";

const PROTOCOL: &str = "v1";
/// The longest deadline the host command accepts.
const MAX_SECONDS: u64 = 86_400;

/// One request to the host command.
#[derive(Debug, Clone, Copy)]
pub(super) enum Request<'a> {
    /// Standard input to `path` in the container, with `perms`.
    Push {
        vmid: u32,
        deadline: u64,
        path: &'a str,
        perms: &'a FilePerms,
    },
    /// The regular file `path`, at most `max_bytes`.
    Pull {
        vmid: u32,
        deadline: u64,
        path: &'a str,
        max_bytes: usize,
    },
    /// `argv` in the container, killed after `deadline` seconds.
    Exec {
        vmid: u32,
        deadline: u64,
        argv: &'a [&'a str],
    },
}

/// A deadline in whole seconds as the host command takes it: rounded up, 1..86400.
pub(super) fn deadline_seconds(timeout: Duration) -> u64 {
    (timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)).clamp(1, MAX_SECONDS)
}

impl Request<'_> {
    /// The request's words: all plain ASCII from the protocol's alphabet.
    fn words(&self) -> Result<Vec<String>, String> {
        let head = |verb: &str, vmid: u32, deadline: u64| {
            vec![
                PROTOCOL.to_string(),
                verb.to_string(),
                vmid.to_string(),
                deadline.to_string(),
            ]
        };
        Ok(match *self {
            Request::Push {
                vmid,
                deadline,
                path,
                perms,
            } => {
                let mut words = head("push", vmid, deadline);
                words.push(encode(path)?);
                words.push(format!("{:04o}", perms.mode));
                for name in [&perms.user, &perms.group] {
                    words.push(name.clone().unwrap_or_else(|| "-".into()));
                }
                words
            }
            Request::Pull {
                vmid,
                deadline,
                path,
                max_bytes,
            } => {
                let mut words = head("pull", vmid, deadline);
                words.push(encode(path)?);
                words.push(max_bytes.clamp(1, MAX_TRANSFER).to_string());
                words
            }
            Request::Exec { vmid, deadline, argv } => {
                let mut words = head("exec", vmid, deadline);
                for word in argv {
                    words.push(encode(word)?);
                }
                words
            }
        })
    }

    /// The SSH command that carries the request in `mode`.
    pub(super) fn command_line(&self, mode: HostMode) -> Result<String, String> {
        let words = self.words()?;
        match mode {
            HostMode::HostCommand => Ok(words.join(" ")),
            HostMode::Direct => {
                let mut argv = vec!["sh", "-c", HOST_SCRIPT, "lxc-operator-host"];
                argv.extend(words.iter().map(String::as_str));
                quote::command_line(&argv)
            }
        }
    }
}

/// An argument as the protocol carries it: base64 with padding, `-` for the empty string.
fn encode(word: &str) -> Result<String, String> {
    if word.contains('\0') {
        return Err("an argument contains a NUL byte, which no command argument can carry".into());
    }
    if word.is_empty() {
        return Ok("-".into());
    }
    Ok(base64(word.as_bytes()))
}

/// RFC 4648 base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            match i <= n {
                true => out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("\n\u{ff}", "CsO/"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(encode("").unwrap(), "-");
        assert!(encode("a\0b").is_err());
    }

    #[test]
    fn host_command_requests_are_plain_words() {
        let perms = FilePerms::parse("0640", "app:adm").unwrap();
        let push = Request::Push {
            vmid: 101,
            deadline: 30,
            path: "/etc/a b/$(x)",
            perms: &perms,
        };
        let line = push.command_line(HostMode::HostCommand).unwrap();
        assert_eq!(
            line,
            format!("v1 push 101 30 {} 0640 app adm", base64(b"/etc/a b/$(x)"))
        );
        let argv = ["sh", "-c", "echo \"$1\"; touch /tmp/x", "", "'`;|&"];
        let exec = Request::Exec {
            vmid: 7,
            deadline: 1,
            argv: &argv,
        };
        let line = exec.command_line(HostMode::HostCommand).unwrap();
        assert!(
            line.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" +/=-".contains(&b)),
            "{line}"
        );
        assert_eq!(line.split(' ').count(), 4 + argv.len());
        let pull = Request::Pull {
            vmid: 101,
            deadline: 5,
            path: "/x",
            max_bytes: usize::MAX,
        };
        assert!(
            pull.command_line(HostMode::HostCommand)
                .unwrap()
                .ends_with(" 16777216")
        );
    }

    #[test]
    fn direct_requests_run_the_same_script_inline() {
        let perms = FilePerms::root_only(0o600);
        let push = Request::Push {
            vmid: 101,
            deadline: 30,
            path: "/etc/x",
            perms: &perms,
        };
        let words = shlex::split(&push.command_line(HostMode::Direct).unwrap()).unwrap();
        assert_eq!(words[..4], ["sh", "-c", HOST_SCRIPT, "lxc-operator-host"]);
        let request = push.command_line(HostMode::HostCommand).unwrap();
        assert_eq!(words[4..].join(" "), request);
        assert!(HOST_SCRIPT.contains(&format!("MAX_BYTES={MAX_TRANSFER}\n")));
        assert!(HOST_SCRIPT.contains(&format!("exit {EXIT_REFUSED}\n")));
        // The host kills pct at most PCT_GRACE after the deadline, before the operator gives up.
        assert!(HOST_SCRIPT.contains("\nPCT_GRACE=10\n") && REMOTE_GRACE > Duration::from_secs(10));
    }

    #[test]
    fn deadlines_round_up_within_the_hosts_range() {
        assert_eq!(deadline_seconds(Duration::from_millis(1)), 1);
        assert_eq!(deadline_seconds(Duration::ZERO), 1);
        assert_eq!(deadline_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(deadline_seconds(Duration::from_secs(30)), 30);
        assert_eq!(deadline_seconds(Duration::from_secs(10 << 20)), 86_400);
    }
}

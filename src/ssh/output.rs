//! What a remote command left behind: exit code, standard output and error (bounded), and the
//! interleaved tail that error messages quote.

/// At most this many bytes of each stream are kept (the end of it, when more arrives).
pub const MAX_CAPTURE: usize = 16 << 20;
/// At most this many bytes of interleaved output are kept for [`ExecOutput::tail`].
const MAX_TAIL: usize = 64 << 10;

/// The result of a command that ran to its end.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status; 128 + n for a command killed by signal n that the server reported as
    /// an exit signal (255 when it reported neither).
    pub code: u32,
    /// Standard output (its last [`MAX_CAPTURE`] bytes).
    pub stdout: Vec<u8>,
    /// Standard error (its last [`MAX_CAPTURE`] bytes).
    pub stderr: Vec<u8>,
    /// Whether either stream was longer than [`MAX_CAPTURE`] and lost its beginning.
    pub truncated: bool,
    /// Both streams in arrival order, bounded.
    interleaved: Vec<u8>,
}

impl ExecOutput {
    /// An output from its parts (the interleaved tail is stdout then stderr).
    pub fn new(code: u32, stdout: impl Into<Vec<u8>>, stderr: impl Into<Vec<u8>>) -> Self {
        let mut out = Self {
            code,
            ..Self::default()
        };
        out.push_stdout(&stdout.into());
        out.push_stderr(&stderr.into());
        out
    }

    pub(crate) fn push_stdout(&mut self, data: &[u8]) {
        self.truncated |= append_bounded(&mut self.stdout, data, MAX_CAPTURE);
        append_bounded(&mut self.interleaved, data, MAX_TAIL);
    }

    pub(crate) fn push_stderr(&mut self, data: &[u8]) {
        self.truncated |= append_bounded(&mut self.stderr, data, MAX_CAPTURE);
        append_bounded(&mut self.interleaved, data, MAX_TAIL);
    }

    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The last `lines` lines of output (both streams, in the order they arrived), as text.
    pub fn tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.interleaved);
        let all: Vec<&str> = text.trim_end_matches('\n').lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Output may hold secrets (file contents, credentials): `Debug` shows sizes only.
impl std::fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOutput")
            .field("code", &self.code)
            .field("stdout_bytes", &self.stdout.len())
            .field("stderr_bytes", &self.stderr.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// Appends `data`, dropping the oldest bytes beyond `max`; true when something was dropped.
fn append_bounded(buf: &mut Vec<u8>, data: &[u8], max: usize) -> bool {
    buf.extend_from_slice(data);
    let excess = buf.len().saturating_sub(max);
    if excess > 0 {
        buf.drain(..excess);
    }
    excess > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_in_arrival_order() {
        let mut out = ExecOutput::default();
        out.push_stdout(b"one\ntwo\n");
        out.push_stderr(b"oops\n");
        out.push_stdout(b"three\n");
        assert_eq!(out.tail(3), "two\noops\nthree");
        assert_eq!(out.tail(20), "one\ntwo\noops\nthree");
        assert_eq!(out.stdout, b"one\ntwo\nthree\n");
        assert_eq!(ExecOutput::default().tail(5), "");
    }

    #[test]
    fn streams_are_bounded_and_debug_shows_no_content() {
        let mut out = ExecOutput::new(0, b"secret".to_vec(), Vec::new());
        assert!(!out.truncated);
        out.push_stdout(&vec![b'x'; MAX_CAPTURE]);
        assert!(out.truncated);
        assert_eq!(out.stdout.len(), MAX_CAPTURE);
        assert!(out.stdout.iter().all(|b| *b == b'x'));
        assert!(!format!("{out:?}").contains("secret"));
    }
}

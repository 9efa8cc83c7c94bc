//! The marker file inside the container that records which steps ran with which digest, so a
//! lost or re-created status does not run everything again. One line per step,
//! `<name> <digest>`; the digest never holds a space, so the line splits at its last one.

/// Where the marker lives inside the container (root only, mode 0600).
pub const MARKER_PATH: &str = "/var/lib/lxc-operator/steps";

const HEADER: &str = "# lxc-operator: provisioning steps done in this container (name digest)\n";

/// The `(name, digest)` pairs of a marker; comments and malformed lines are ignored.
pub fn parse(text: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(name, digest)| !name.is_empty() && digest.starts_with("sha256:"))
        .map(|(name, digest)| (name.to_string(), digest.to_string()))
        .collect()
}

/// The marker text for `done` (names hold no line breaks: [`super::plan::validate`]).
pub fn render(done: &[(String, String)]) -> String {
    let mut text = HEADER.to_string();
    for (name, digest) in done {
        text.push_str(name);
        text.push(' ');
        text.push_str(digest);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names_with_spaces() {
        let done = vec![
            ("file:/etc/a b; c".to_string(), "sha256:01ab".to_string()),
            ("packages:apt".to_string(), "sha256:02cd".to_string()),
            ("script:setup".to_string(), "sha256:03ef".to_string()),
        ];
        let text = render(&done);
        assert!(text.starts_with("# lxc-operator"));
        assert_eq!(parse(text.as_bytes()), done);
    }

    #[test]
    fn ignores_what_it_did_not_write() {
        let text = b"# comment\n\nno-digest-here\nscript:x md5:abc\nscript:ok sha256:1\n";
        assert_eq!(parse(text), [("script:ok".to_string(), "sha256:1".to_string())]);
        assert!(parse(b"\xff\xfe").is_empty());
    }
}

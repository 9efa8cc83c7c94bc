//! What of a step's output may be kept (in a condition, an Event, the audit trail): by default
//! nothing of a script's, since a script may print what it generated (a password, a key); with
//! `recordOutput: true` its tail, redacted — private key blocks, the values of `name=value` and
//! `name: value` pairs whose name says secret (`password`, `token`, ...), and the values of the
//! step's environment variables whose names say secret.

use crate::audit::redact::{REDACTED, is_secret_key};

/// What replaces a script's output when it is not recorded.
pub const NOT_RECORDED: &str = "(output not recorded; set recordOutput: true on the script to keep it)";

/// `text` with every secret this module recognises replaced by `<redacted>`; `secrets` are
/// values to scrub wherever they appear.
pub fn redact_output(text: &str, secrets: &[&str]) -> String {
    let mut out = Vec::new();
    let mut in_key = false;
    for line in text.lines() {
        if line.contains("-----BEGIN") && line.contains("PRIVATE KEY") {
            in_key = true;
            out.push(format!("{REDACTED} (private key)"));
        }
        if in_key {
            if line.contains("-----END") {
                in_key = false;
            }
            continue;
        }
        out.push(redact_pairs(line));
    }
    let mut text = out.join("\n");
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, REDACTED);
    }
    text
}

/// A line with the value of each secret-named `name=value` / `name: value` pair masked.
fn redact_pairs(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut result = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        // A name: a run of letters, digits, `_`, `-`, `.`.
        let start = i;
        while i < line.len() && is_name_byte(bytes[i]) {
            i += 1;
        }
        if i == start {
            let ch = line[i..].chars().next().unwrap_or(' ');
            result.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let name = &line[start..i];
        result.push_str(name);
        // Followed by `=` or `:` (with optional spaces around): a pair.
        let mut j = i;
        while j < line.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j < line.len() && (bytes[j] == b'=' || bytes[j] == b':') && is_secret_key(name) {
            j += 1;
            while j < line.len() && bytes[j] == b' ' {
                j += 1;
            }
            let mut end = j;
            while end < line.len()
                && !bytes[end].is_ascii_whitespace()
                && bytes[end] != b','
                && bytes[end] != b';'
            {
                end += 1;
            }
            if end > j {
                result.push_str(&line[i..j]);
                result.push_str(REDACTED);
                i = end;
            }
        }
    }
    result
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_pairs_keys_and_values_are_masked_and_the_rest_kept() {
        let out = "created user app\nDB_PASSWORD=hunter2-xyz\napi_token: abc.def ok\nport=8080\n\
                   -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n\
                   generated s3cr3t-value for you";
        let r = redact_output(out, &["s3cr3t-value"]);
        for gone in ["hunter2-xyz", "abc.def", "b3BlbnNzaC1rZXk", "s3cr3t-value"] {
            assert!(!r.contains(gone), "{gone} leaked: {r}");
        }
        for kept in [
            "created user app",
            "DB_PASSWORD=<redacted>",
            "api_token: <redacted> ok",
            "port=8080",
            "for you",
        ] {
            assert!(r.contains(kept), "{kept} missing: {r}");
        }
        assert!(r.contains("<redacted> (private key)"));
    }

    #[test]
    fn short_values_are_not_scrubbed_everywhere() {
        assert_eq!(redact_output("a b c", &["b"]), "a b c");
    }
}

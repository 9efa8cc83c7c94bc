//! One command line from an argument vector. The SSH `exec` request carries a single string
//! that the login user's shell parses, so every word is quoted (POSIX rules, by `shlex`) and
//! comes back as exactly one argument, whatever characters it holds.

/// Quotes and joins `argv`; refuses a word with a NUL byte, which no argument can carry.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> Result<String, String> {
    if argv.is_empty() {
        return Err("empty command".into());
    }
    shlex::try_join(argv.iter().map(AsRef::as_ref))
        .map_err(|_| "an argument contains a NUL byte, which no command argument can carry".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_comes_back_whole() {
        let words = [
            "pct",
            "exec",
            "; touch /tmp/pwned",
            "$(touch x)",
            "`id`",
            "' ; rm -rf / '",
            "a\nb",
            "&& true",
            "| cat",
            "> out",
            "*",
            "--option",
            "",
            "\"double\"",
            "back\\slash",
            "ünïcødé",
            "tab\there",
            "#comment",
            "~root",
            "{a,b}",
        ];
        let line = command_line(&words).unwrap();
        assert_eq!(shlex::split(&line).unwrap(), words);
    }

    #[test]
    fn refuses_nul_and_empty_commands() {
        assert!(command_line(&["echo", "a\0b"]).is_err());
        assert!(command_line::<&str>(&[]).is_err());
    }
}

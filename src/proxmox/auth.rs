//! Credentials for the Proxmox API and the ticket they may be exchanged for. Secrets never
//! appear in `Debug` output, errors or logs.

use std::time::{Duration, Instant};

/// A secret string: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// An API token: `Authorization: PVEAPIToken=USER@REALM!ID=SECRET`, no CSRF token needed.
    Token { id: String, secret: Secret },
    /// A user and password, exchanged for a ticket (cookie) plus a CSRF token for writes.
    Password { username: String, password: Secret },
}

impl Credentials {
    /// The identity, for logs and conditions (never the secret).
    pub fn identity(&self) -> &str {
        match self {
            Self::Token { id, .. } => id,
            Self::Password { username, .. } => username,
        }
    }

    /// Whether these credentials are `root@pam` with a password, the only identity Proxmox
    /// allows some settings to (feature flags other than nesting, privileged containers).
    pub fn is_root_ticket(&self) -> bool {
        matches!(self, Self::Password { username, .. } if username == "root@pam")
    }
}

/// A ticket and its CSRF token, with the time it was issued.
#[derive(Clone)]
pub struct Ticket {
    pub ticket: Secret,
    pub csrf: Secret,
    pub issued: Instant,
}

impl Ticket {
    /// Whether the ticket should be renewed before use (Proxmox tickets live 2 h).
    pub fn needs_renewal(&self, now: Instant, renew_after: Duration) -> bool {
        now.duration_since(self.issued) >= renew_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let creds = Credentials::Token {
            id: "root@pam!operator".into(),
            secret: Secret::new("s3cr3t-value"),
        };
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains("s3cr3t-value"), "{dbg}");
        assert!(dbg.contains("root@pam!operator"));
        let pw = Credentials::Password {
            username: "root@pam".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{pw:?}").contains("hunter2"));
        assert!(pw.is_root_ticket());
        assert!(!creds.is_root_ticket());
    }

    #[test]
    fn tickets_are_renewed_after_the_configured_age() {
        let t0 = Instant::now();
        let t = Ticket {
            ticket: Secret::new("t"),
            csrf: Secret::new("c"),
            issued: t0,
        };
        assert!(!t.needs_renewal(t0 + Duration::from_secs(10), Duration::from_secs(3600)));
        assert!(t.needs_renewal(t0 + Duration::from_secs(3600), Duration::from_secs(3600)));
    }
}

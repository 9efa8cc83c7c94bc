//! Authentication: tickets (`PVE:<user>:<HEXTIME>::<sig>`), CSRF prevention tokens and API
//! tokens. Tickets are HMAC-signed with a key that "expire all tickets" rotates.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user@realm`
    pub user: String,
    /// Token name for API-token calls (`operator` in `root@pam!operator`).
    pub token: Option<String>,
}

impl Identity {
    /// `user@realm` or `user@realm!token` (the id PVE records in UPIDs and logs).
    pub fn authid(&self) -> String {
        match &self.token {
            Some(t) => format!("{}!{t}", self.user),
            None => self.user.clone(),
        }
    }

    /// True only for a root@pam ticket: tokens are never root (PVE-FACTS §1.6).
    pub fn is_root(&self) -> bool {
        self.user == "root@pam" && self.token.is_none()
    }
}

/// The signing key for tickets and CSRF tokens.
#[derive(Debug, Clone)]
pub struct TicketKey(pub [u8; 32]);

impl TicketKey {
    fn sign(&self, data: &str) -> String {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(data.as_bytes());
        STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn ticket(&self, user: &str, now: u64) -> String {
        let plain = format!("PVE:{user}:{now:08X}");
        format!("{plain}::{}", self.sign(&plain))
    }

    pub fn csrf(&self, user: &str, now: u64) -> String {
        format!("{now:08X}:{}", self.sign(&format!("{now:08X}:{user}")))
    }

    /// The user of a valid, unexpired ticket.
    pub fn verify_ticket(&self, ticket: &str, now: u64, lifetime: u64) -> Option<String> {
        let (plain, sig) = ticket.split_once("::")?;
        let rest = plain.strip_prefix("PVE:")?;
        let (user, time) = rest.rsplit_once(':')?;
        let time = u64::from_str_radix(time, 16).ok()?;
        (self.sign(plain) == sig && fresh(time, now, lifetime)).then(|| user.to_string())
    }

    pub fn verify_csrf(&self, token: &str, user: &str, now: u64, lifetime: u64) -> bool {
        let Some((time, _)) = token.split_once(':') else {
            return false;
        };
        let Ok(t) = u64::from_str_radix(time, 16) else {
            return false;
        };
        fresh(t, now, lifetime) && token == self.csrf(user, t)
    }
}

fn fresh(time: u64, now: u64, lifetime: u64) -> bool {
    // PVE allows a small clock skew into the future.
    time <= now + 300 && now.saturating_sub(time) <= lifetime
}

/// What the request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Ticket(String),
    /// (`user@realm!tokenid`, secret)
    Token(String, String),
}

/// Reads the `PVEAuthCookie` cookie, or `Authorization: PVEAPIToken=...` / `PVEAuthCookie=...`.
pub fn extract(cookie: Option<&str>, authorization: Option<&str>) -> Credentials {
    if let Some(auth) = authorization {
        if let Some(rest) = auth
            .strip_prefix("PVEAPIToken")
            .and_then(|r| r.strip_prefix(['=', ' ']))
        {
            // PVE parses `^(.*)=(.*)$` (greedy): the secret follows the last '='.
            if let Some((id, secret)) = rest.rsplit_once('=') {
                return Credentials::Token(id.trim().to_string(), secret.trim().to_string());
            }
            return Credentials::None;
        }
        if let Some(t) = auth.strip_prefix("PVEAuthCookie=") {
            return Credentials::Ticket(url_decode(t));
        }
    }
    if let Some(c) = cookie {
        for part in c.split(';') {
            if let Some(t) = part.trim().strip_prefix("PVEAuthCookie=") {
                return Credentials::Ticket(url_decode(t));
            }
        }
    }
    Credentials::None
}

fn url_decode(s: &str) -> String {
    crate::percent::decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_roundtrip_expiry_and_rotation() {
        let key = TicketKey([7; 32]);
        let t = key.ticket("root@pam", 1000);
        assert!(t.starts_with("PVE:root@pam:000003E8::"));
        assert_eq!(key.verify_ticket(&t, 1000, 7200).as_deref(), Some("root@pam"));
        assert_eq!(key.verify_ticket(&t, 1000 + 7201, 7200), None);
        assert_eq!(TicketKey([8; 32]).verify_ticket(&t, 1000, 7200), None);
        let forged = t.replace("root@pam", "admin@pam");
        assert_eq!(key.verify_ticket(&forged, 1000, 7200), None);
        let c = key.csrf("root@pam", 1000);
        assert!(key.verify_csrf(&c, "root@pam", 1001, 7200));
        assert!(!key.verify_csrf(&c, "other@pam", 1001, 7200));
    }

    #[test]
    fn extracts_credentials() {
        assert_eq!(
            extract(None, Some("PVEAPIToken=root@pam!op=abc-123")),
            Credentials::Token("root@pam!op".into(), "abc-123".into())
        );
        assert_eq!(
            extract(None, Some("PVEAPIToken root@pam!op=abc")),
            Credentials::Token("root@pam!op".into(), "abc".into())
        );
        assert_eq!(
            extract(Some("a=b; PVEAuthCookie=PVE%3Aroot%40pam%3A1::s+/x"), None),
            Credentials::Ticket("PVE:root@pam:1::s+/x".into())
        );
        assert_eq!(extract(None, None), Credentials::None);
    }
}

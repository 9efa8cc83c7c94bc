//! The operator's client key (read from the text of a Secret) and the pinned host-key
//! fingerprint (`SHA256:<base64>` as `ssh-keygen -lf` prints it).

use std::sync::Arc;

use russh::keys::ssh_key::Fingerprint;
use russh::keys::{HashAlg, PrivateKey, PublicKey};

use super::error::Error;

/// A private key for public-key authentication. `Debug` shows only its algorithm and public
/// fingerprint.
#[derive(Clone)]
pub struct ClientKey(Arc<PrivateKey>);

impl ClientKey {
    /// Reads an unencrypted private key in OpenSSH (`-----BEGIN OPENSSH PRIVATE KEY-----`) or
    /// PEM (PKCS#1, PKCS#8) form, as stored in a Secret.
    pub fn from_text(text: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(text).map_err(|_| Error::InvalidKey {
            message: "the key is not text (expected OpenSSH or PEM)".into(),
        })?;
        let key = russh::keys::decode_secret_key(text, None).map_err(|e| Error::InvalidKey {
            // russh's messages describe the format problem, never the key bytes.
            message: e.to_string(),
        })?;
        Ok(Self(Arc::new(key)))
    }

    /// The public key's fingerprint, `SHA256:...`: identifies the key in logs and pool keys.
    pub fn public_fingerprint(&self) -> String {
        self.0.public_key().fingerprint(HashAlg::Sha256).to_string()
    }

    pub(crate) fn private(&self) -> Arc<PrivateKey> {
        self.0.clone()
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientKey({} {})",
            self.0.algorithm(),
            self.public_fingerprint()
        )
    }
}

/// The SHA-256 fingerprint of a host key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostKeyFingerprint([u8; 32]);

impl HostKeyFingerprint {
    /// Parses `SHA256:<base64>` (unpadded, as `ssh-keygen -lf` prints it; padding tolerated).
    pub fn parse(value: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidFingerprint {
            value: value.to_string(),
        };
        let trimmed = value.trim().trim_end_matches('=');
        if !trimmed.starts_with("SHA256:") {
            return Err(invalid());
        }
        match trimmed.parse::<Fingerprint>() {
            Ok(Fingerprint::Sha256(bytes)) => Ok(Self(bytes)),
            _ => Err(invalid()),
        }
    }

    /// The fingerprint of `key`.
    pub fn of(key: &PublicKey) -> Self {
        match key.fingerprint(HashAlg::Sha256) {
            Fingerprint::Sha256(bytes) => Self(bytes),
            // `fingerprint(Sha256)` always yields the SHA-256 variant.
            other => unreachable!("SHA-256 fingerprint expected, got {other}"),
        }
    }
}

impl std::fmt::Display for HostKeyFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Fingerprint::Sha256(self.0).fmt(f)
    }
}

impl std::fmt::Debug for HostKeyFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKeyFingerprint({self})")
    }
}

/// A key for unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    /// Generated with `ssh-keygen -t ed25519 -N ''` for this test only.
    pub(crate) const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACB+gcxR4FprugltzA4wzd26TR+80a04s8fV8KnGMGYoPQAAAJBL874US/O+
FAAAAAtzc2gtZWQyNTUxOQAAACB+gcxR4FprugltzA4wzd26TR+80a04s8fV8KnGMGYoPQ
AAAEBi3xHlaLOSV7cELdNtUR7+PhoABXevtGcvQX4uIJtMZn6BzFHgWmu6CW3MDjDN3bpN
H7zRrTizx9XwqcYwZig9AAAACnRlc3RAbG9jYWwBAgM=
-----END OPENSSH PRIVATE KEY-----
";
    /// Its public key's fingerprint.
    pub(crate) const KEY_FINGERPRINT: &str = "SHA256:1R+5ShnwdjI+V5nAPyUo3tlC++oIOtuV/bSWiBgGpy4";
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::fixtures::{KEY, KEY_FINGERPRINT};

    #[test]
    fn reads_an_openssh_key_and_hides_it_in_debug() {
        let key = ClientKey::from_text(KEY.as_bytes()).unwrap();
        assert_eq!(key.public_fingerprint(), KEY_FINGERPRINT);
        let debug = format!("{key:?}");
        assert_eq!(debug, format!("ClientKey(ssh-ed25519 {KEY_FINGERPRINT})"));
    }

    #[test]
    fn refuses_text_that_is_no_key() {
        for bad in [
            &b"hello"[..],
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            b"\xff\xfe",
        ] {
            let e = ClientKey::from_text(bad).unwrap_err();
            assert_eq!(e.kind(), super::super::ErrorKind::InvalidInput, "{e}");
        }
    }

    #[test]
    fn fingerprints_parse_in_ssh_keygen_form_only() {
        let key = ClientKey::from_text(KEY.as_bytes()).unwrap();
        let of = HostKeyFingerprint::of(key.private().public_key());
        assert_eq!(of.to_string(), KEY_FINGERPRINT);
        assert_eq!(HostKeyFingerprint::parse(KEY_FINGERPRINT).unwrap(), of);
        assert_eq!(
            HostKeyFingerprint::parse(&format!(" {KEY_FINGERPRINT}= ")).unwrap(),
            of
        );
        for bad in [
            "",
            "SHA256:",
            "SHA256:abc",
            "MD5:aa:bb",
            "sha256:1R+5ShnwdjI+V5nAPyUo3tlC++oIOtuV/bSWiBgGpy4",
            "SHA512:1R+5ShnwdjI+V5nAPyUo3tlC++oIOtuV/bSWiBgGpy4",
            &KEY_FINGERPRINT["SHA256:".len()..],
        ] {
            assert!(HostKeyFingerprint::parse(bad).is_err(), "{bad:?}");
        }
    }
}

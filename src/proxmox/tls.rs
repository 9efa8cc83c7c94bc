//! How the client trusts the Proxmox API's certificate: system roots, a CA bundle, or a pinned
//! SHA-256 fingerprint (the careful way to trust Proxmox's self-signed certificate). Skipping
//! verification exists for throw-away labs and is logged loudly on every client built with it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// Trust settings for one endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// The operating system's root certificates.
    SystemRoots,
    /// PEM-encoded CA certificates.
    CaBundle(String),
    /// The SHA-256 of the server certificate (DER), as 32 bytes.
    PinnedSha256([u8; 32]),
    /// Accept any certificate (never the default).
    InsecureSkipVerify,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SystemRoots => f.write_str("SystemRoots"),
            Self::CaBundle(_) => f.write_str("CaBundle"),
            Self::PinnedSha256(fp) => write!(f, "PinnedSha256({})", format_fingerprint(fp)),
            Self::InsecureSkipVerify => f.write_str("InsecureSkipVerify"),
        }
    }
}

/// Why TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("fingerprint {0:?} is not 32 colon-separated hex bytes")]
    BadFingerprint(String),
    #[error("the CA bundle holds no usable certificate")]
    EmptyCaBundle,
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Parses `AA:BB:...` (32 bytes, either case).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|h| {
            if h.len() == 2 {
                u8::from_str_radix(h, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(|| TlsError::BadFingerprint(text.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| TlsError::BadFingerprint(text.to_string()))
}

/// Formats a fingerprint as Proxmox shows it: upper-case hex bytes joined by `:`.
pub fn format_fingerprint(fp: &[u8]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint_of(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration for the given trust.
pub fn client_config(trust: &TlsTrust) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = match trust {
        TlsTrust::SystemRoots => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::CaBundle(pem) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok);
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::EmptyCaBundle);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::PinnedSha256(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
                check_fingerprint: true,
            }))
            .with_no_client_auth(),
        TlsTrust::InsecureSkipVerify => {
            tracing::warn!("TLS verification is OFF for this Proxmox endpoint (insecureSkipVerify)");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    pin: [0; 32],
                    algorithms: provider.signature_verification_algorithms,
                    check_fingerprint: false,
                }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Accepts exactly the certificate with the pinned fingerprint, and still checks that the server
/// holds its key (the handshake signatures), so a copied certificate is not enough.
#[derive(Debug)]
struct PinnedVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
    check_fingerprint: bool,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_fingerprint || fingerprint_of(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_and_format_both_ways() {
        let text = (0..32)
            .map(|i| format!("{:02x}", i * 7))
            .collect::<Vec<_>>()
            .join(":");
        let fp = parse_fingerprint(&text).unwrap();
        assert_eq!(format_fingerprint(&fp), text.to_uppercase());
        assert!(parse_fingerprint("AA:BB").is_err());
        assert!(parse_fingerprint(&format!("{text}:00")).is_err());
        assert!(parse_fingerprint(&text.replace(':', "")).is_err());
    }

    #[test]
    fn debug_does_not_dump_the_bundle() {
        let dbg = format!(
            "{:?}",
            TlsTrust::CaBundle("-----BEGIN CERTIFICATE-----...".into())
        );
        assert_eq!(dbg, "CaBundle");
    }
}

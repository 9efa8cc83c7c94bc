//! TLS for the API listener: a self-signed certificate generated at start (or PEM files from
//! the config) and its SHA-256 fingerprint in Proxmox's `AA:BB:...` form.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub struct Tls {
    pub server_config: Arc<rustls::ServerConfig>,
    pub cert_pem: String,
    pub fingerprint_sha256: String,
}

/// Uppercase colon-separated hex of the SHA-256 of the DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn load_or_generate(cfg: &crate::config::Config) -> anyhow::Result<Tls> {
    let (certs, key, cert_pem) = match (&cfg.tls_cert_pem, &cfg.tls_key_pem) {
        (Some(cert), Some(key)) => {
            let pem = std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>()?;
            let key =
                PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
            (certs, key, pem)
        }
        (None, None) => {
            let mut names = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            names.extend(cfg.nodes.iter().map(|n| n.name.clone()));
            let ck = rcgen::generate_simple_self_signed(names)?;
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
            (vec![ck.cert.der().clone()], key, ck.cert.pem())
        }
        _ => anyhow::bail!("tls_cert_pem and tls_key_pem must be given together"),
    };
    let fingerprint_sha256 = fingerprint(certs.first().context("no certificate")?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        server_config: Arc::new(server_config),
        cert_pem,
        fingerprint_sha256,
    })
}

//! Certificates and keys for the control plane: a CA, the API server's serving certificate,
//! an admin client certificate in `system:masters`, and the service-account signing key.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// PEM files written for the control plane.
pub struct Pki {
    pub ca_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

/// Writes `ca.crt`, `server.crt/key`, `sa.key/pub` into `dir` and returns the admin credentials.
pub fn write(dir: &Path) -> anyhow::Result<Pki> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lxc-operator test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin.distinguished_name.push(DnType::CommonName, "test-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &ca)?;

    let sa_key = KeyPair::generate()?;

    std::fs::write(dir.join("ca.crt"), ca.pem())?;
    std::fs::write(dir.join("server.crt"), server_cert.pem())?;
    std::fs::write(dir.join("server.key"), server_key.serialize_pem())?;
    std::fs::write(dir.join("sa.key"), sa_key.serialize_pem())?;
    std::fs::write(dir.join("sa.pub"), sa_key.public_key_pem())?;
    Ok(Pki {
        ca_pem: ca.pem(),
        admin_cert_pem: admin_cert.pem(),
        admin_key_pem: admin_key.serialize_pem(),
    })
}

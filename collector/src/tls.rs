//! TLS material: configured certificates in production, or a private CA and
//! server certificate generated on first start (agents pin the CA file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

use crate::config::ServerConfig;

/// Paths of the PEM files in use.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA agents must trust (generated mode only).
    pub ca_cert: Option<PathBuf>,
}

/// Use the configured certificate, or make (once) a CA and a server certificate.
pub fn ensure(cfg: &ServerConfig, data_dir: &Path) -> Result<TlsFiles> {
    if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
        return Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca_cert: None,
        });
    }
    let dir = data_dir.join("tls");
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca_cert: Some(dir.join("ca.pem")),
    };
    if files.cert.exists() && files.key.exists() && dir.join("ca.pem").exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let ca_key = KeyPair::generate().context("generate CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Simpul private CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca = ca_params.self_signed(&ca_key).context("self-sign CA")?;

    let mut names = vec!["localhost".to_string()];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    names.extend(cfg.tls_names.iter().cloned());
    let mut params = CertificateParams::new(names).context("server cert params")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Simpul collector");
    for ip in ["127.0.0.1", "::1"] {
        if let Ok(a) = ip.parse() {
            params.subject_alt_names.push(SanType::IpAddress(a));
        }
    }
    for n in &cfg.tls_names {
        if let Ok(a) = n.parse() {
            params.subject_alt_names.push(SanType::IpAddress(a));
        }
    }
    let key = KeyPair::generate().context("generate server key")?;
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .context("sign server certificate")?;

    write_private(&dir.join("ca.key"), &ca_key.serialize_pem())?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    write_private(&files.key, &key.serialize_pem())?;
    std::fs::write(&files.cert, cert.pem())?;
    tracing::info!(ca = %dir.join("ca.pem").display(), "generated a private CA and server certificate; give ca.pem to agents (collector.ca_cert)");
    Ok(files)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// rustls server configuration from the PEM files (ring provider).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad certificate in {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("bad key in {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

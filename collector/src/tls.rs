//! TLS material: configured certificates in production, or a private CA and
//! server certificate generated on first start (agents pin the CA file).
//!
//! Generated certificates have bounded lives: the CA 10 years, the server
//! certificate 825 days (the CA/Browser Forum's old ceiling, which browsers
//! still enforce for private CAs' leaves in places). The server certificate
//! is re-issued from the CA key at start when it has less than 30 days
//! left, or when an older release made it (no `server.meta.json`): agents
//! keep trusting it because the CA stays. Rotating the CA itself is a
//! planned operation (README, "Certificates").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::config::ServerConfig;

/// Paths of the PEM files in use.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA agents must trust (generated mode only).
    pub ca_cert: Option<PathBuf>,
}

pub const CA_DAYS: i64 = 3650;
pub const SERVER_DAYS: i64 = 825;
/// A server certificate with less left than this is re-issued at start.
pub const RENEW_DAYS: i64 = 30;

/// What was generated, and until when (Unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    ca_not_after: i64,
    server_not_after: i64,
    names: Vec<String>,
}

fn ca_params() -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    p.distinguished_name
        .push(DnType::CommonName, "Simpul private CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    Ok(p)
}

fn server_names(cfg: &ServerConfig) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    names.extend(cfg.tls_names.iter().cloned());
    names
}

/// A server certificate for `names`, signed by the CA key.
fn issue_server(
    names: &[String],
    extra_ips: &[String],
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
    now: OffsetDateTime,
) -> Result<(rcgen::Certificate, KeyPair)> {
    let mut params = CertificateParams::new(names.to_vec()).context("server cert params")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Simpul collector");
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(SERVER_DAYS);
    for ip in ["127.0.0.1", "::1"] {
        if let Ok(a) = ip.parse() {
            params.subject_alt_names.push(SanType::IpAddress(a));
        }
    }
    for n in extra_ips {
        if let Ok(a) = n.parse() {
            params.subject_alt_names.push(SanType::IpAddress(a));
        }
    }
    let key = KeyPair::generate().context("generate server key")?;
    let cert = params
        .signed_by(&key, ca, ca_key)
        .context("sign server certificate")?;
    Ok((cert, key))
}

/// Use the configured certificate, or make (once) a CA and a server
/// certificate, re-issuing the server certificate when it nears its end.
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
    let now = OffsetDateTime::now_utc();
    let meta_path = dir.join("server.meta.json");
    let names = server_names(cfg);
    let have_ca = dir.join("ca.pem").exists() && dir.join("ca.key").exists();
    if have_ca && files.cert.exists() && files.key.exists() {
        let meta: Option<Meta> = std::fs::read_to_string(&meta_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let fresh = meta.as_ref().is_some_and(|m| {
            m.server_not_after - now.unix_timestamp() > RENEW_DAYS * 86_400 && m.names == names
        });
        if fresh {
            if let Some(m) = &meta {
                if m.ca_not_after - now.unix_timestamp() < 365 * 86_400 {
                    tracing::warn!(ca = %dir.join("ca.pem").display(), "the private CA ends within a year: plan its rotation (README, Certificates)");
                }
            }
            return Ok(files);
        }
    }
    crate::store::private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let (ca, ca_key, ca_not_after) = if have_ca {
        // The CA stays (agents pin it): sign with its key under its name.
        // A re-signed copy of the CA certificate with the same key and
        // subject verifies the new server certificate for every agent that
        // holds the original.
        let pem = std::fs::read_to_string(dir.join("ca.key")).context("read ca.key")?;
        let ca_key = KeyPair::from_pem(&pem).context("ca.key is not a key")?;
        let ca = ca_params()?.self_signed(&ca_key).context("CA")?;
        let prev: Option<Meta> = std::fs::read_to_string(&meta_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        match &prev {
            Some(m) => (ca, ca_key, m.ca_not_after),
            None => {
                tracing::warn!(ca = %dir.join("ca.pem").display(), "this private CA was made by an older release and is valid until 4096: rotate it when convenient (README, Certificates)");
                (ca, ca_key, i64::MAX)
            }
        }
    } else {
        let ca_key = KeyPair::generate().context("generate CA key")?;
        let mut p = ca_params()?;
        p.not_before = now - Duration::hours(1);
        p.not_after = now + Duration::days(CA_DAYS);
        let ca = p.self_signed(&ca_key).context("self-sign CA")?;
        write_private(&dir.join("ca.key"), &ca_key.serialize_pem())?;
        std::fs::write(dir.join("ca.pem"), ca.pem())?;
        tracing::info!(ca = %dir.join("ca.pem").display(), "generated a private CA (valid 10 years); give ca.pem to agents (collector.ca_cert)");
        (ca, ca_key, (now + Duration::days(CA_DAYS)).unix_timestamp())
    };
    let (cert, key) = issue_server(&names, &cfg.tls_names, &ca, &ca_key, now)?;
    write_private(&files.key, &key.serialize_pem())?;
    std::fs::write(&files.cert, cert.pem())?;
    let meta = Meta {
        ca_not_after,
        server_not_after: (now + Duration::days(SERVER_DAYS)).unix_timestamp(),
        names,
    };
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta)?)?;
    tracing::info!(cert = %files.cert.display(), days = SERVER_DAYS, "issued the server certificate");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(pem_path: &Path) -> (i64, i64) {
        // openssl is a test dependency of the machine (scripts/setup.sh).
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-startdate", "-enddate", "-in"])
            .arg(pem_path)
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let parse = |k: &str| {
            let line = text.lines().find(|l| l.starts_with(k)).expect(k);
            let v = line.split_once('=').expect("=").1;
            let o = std::process::Command::new("date")
                .args(["-d", v, "+%s"])
                .output()
                .expect("date");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<i64>()
                .expect("secs")
        };
        (parse("notBefore"), parse("notAfter"))
    }

    #[test]
    fn generated_certificates_have_bounded_lives_and_renew() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig::default();
        let files = ensure(&cfg, dir.path()).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (_, ca_end) = dates(files.ca_cert.as_ref().unwrap());
        let (_, server_end) = dates(&files.cert);
        assert!(
            (ca_end - now - CA_DAYS * 86_400).abs() < 7200,
            "CA ends {ca_end}"
        );
        assert!(
            (server_end - now - SERVER_DAYS * 86_400).abs() < 7200,
            "server ends {server_end}"
        );
        // Unchanged on the next start.
        let before = std::fs::read(&files.cert).unwrap();
        ensure(&cfg, dir.path()).unwrap();
        assert_eq!(std::fs::read(&files.cert).unwrap(), before);
        // Near its end it is re-issued, under the same CA, which still
        // verifies it.
        let meta = dir.path().join("tls/server.meta.json");
        let mut m: Meta = serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
        m.server_not_after = now + 86_400;
        std::fs::write(&meta, serde_json::to_string(&m).unwrap()).unwrap();
        let ca_before = std::fs::read(files.ca_cert.as_ref().unwrap()).unwrap();
        ensure(&cfg, dir.path()).unwrap();
        assert_ne!(std::fs::read(&files.cert).unwrap(), before);
        assert_eq!(
            std::fs::read(files.ca_cert.as_ref().unwrap()).unwrap(),
            ca_before
        );
        let verify = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(files.ca_cert.as_ref().unwrap())
            .arg(&files.cert)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
}

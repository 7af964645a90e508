//! The HTTP client the Telegram, WhatsApp and webhook channels share: rustls
//! on the ring provider (never aws-lc-rs), Mozilla's roots plus an optional
//! CA file, optional proxy. Errors never carry the URL: Telegram's has the bot
//! token in it, gateways put tokens in query strings, and errors end up in
//! the log table and on the dashboard.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::NotifyError;

/// Why a send did not succeed, and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SendError {
    pub message: String,
    /// Retrying cannot help (bad token, unknown chat, rejected address).
    pub permanent: bool,
    /// The receiver asked to wait this long (HTTP 429 Retry-After).
    pub retry_after: Option<Duration>,
    /// Recipients done before the failure.
    pub progress: u32,
}

impl SendError {
    pub fn retry(message: impl Into<String>, progress: u32) -> SendError {
        SendError {
            message: message.into(),
            permanent: false,
            retry_after: None,
            progress,
        }
    }
}

/// rustls with ring, Mozilla's roots (webpki-roots) and `ca_cert`'s.
pub(crate) fn tls_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("ca_cert {}: {e}", path.display()))?;
        let mut n = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_cert {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_cert {}: {e}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("ca_cert {}: no certificate in it", path.display()));
        }
    }
    // The ring provider explicitly: the process default may be unset, or be
    // another one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

pub(crate) fn client(
    location: &str,
    timeout_secs: u64,
    proxy: Option<&str>,
    ca_cert: Option<&Path>,
) -> Result<reqwest::Client, NotifyError> {
    let bad = |m: String| NotifyError::Config(format!("{location}: {m}"));
    let tls = tls_config(ca_cert).map_err(bad)?;
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(timeout_secs))
        .connect_timeout(Duration::from_secs(timeout_secs.min(10)))
        .user_agent(concat!("simpul-collector/", env!("CARGO_PKG_VERSION")));
    b = match proxy {
        Some(p) => b.proxy(reqwest::Proxy::all(p).map_err(|e| bad(format!("proxy: {e}")))?),
        None => b.no_proxy(),
    };
    b.build().map_err(|e| bad(e.to_string()))
}

/// A transport error (connect, TLS, timeout), with its causes, without
/// the URL.
pub(crate) fn transport_error(e: reqwest::Error, progress: u32) -> SendError {
    let timeout = e.is_timeout();
    let mut message = with_causes(e);
    if timeout {
        message.push_str(" (timed out: the receiver may have acted on it)");
    }
    SendError::retry(message, progress)
}

/// `e` with its chain of causes, without URLs.
pub(crate) fn with_causes(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// A non-2xx answer. 4xx is permanent (the request itself is wrong) except
/// 408, 425 and 429; 5xx and the rest are worth retrying.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    progress: u32,
) -> SendError {
    let code = status.as_u16();
    let permanent = status.is_client_error() && !matches!(code, 408 | 425 | 429);
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let snippet = super::truncate_chars(body.trim(), 300);
    SendError {
        message: if snippet.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {snippet}")
        },
        permanent,
        retry_after,
        progress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_http_status_classification() {
        let mut h = HeaderMap::new();
        let e = status_error(StatusCode::BAD_REQUEST, &h, "chat not found", 1);
        assert!(e.permanent);
        assert_eq!(e.progress, 1);
        assert_eq!(e.message, "HTTP 400 Bad Request: chat not found");
        for code in [408, 425, 429, 500, 502, 503] {
            let e = status_error(StatusCode::from_u16(code).unwrap(), &h, "", 0);
            assert!(!e.permanent, "{code}");
        }
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        let e = status_error(StatusCode::TOO_MANY_REQUESTS, &h, "", 0);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    }
}

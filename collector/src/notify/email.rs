//! E-mail over SMTP (lettre on tokio, rustls with ring): plain, STARTTLS or
//! TLS, optional credentials, one message to all recipients.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{EmailConfig, EmailTls};
use super::http::SendError;
use super::{secret, Notification, NotifyError, Rendered};

pub(crate) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
}

impl Email {
    pub fn new(name: &str, cfg: &EmailConfig) -> Result<Email, NotifyError> {
        let loc = format!("notify.email.{name}");
        let bad = |m: String| NotifyError::Config(format!("{loc}: {m}"));
        let params = || -> Result<TlsParameters, NotifyError> {
            let mut b = TlsParameters::builder(cfg.host.clone());
            if let Some(path) = &cfg.ca_cert {
                let pem = std::fs::read(path)
                    .map_err(|e| bad(format!("ca_cert {}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| bad(format!("ca_cert {}: {e}", path.display())))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| bad(format!("TLS: {e}")))
        };
        let tls = match cfg.tls {
            EmailTls::None => Tls::None,
            EmailTls::Starttls => Tls::Required(params()?),
            EmailTls::Tls => Tls::Wrapper(params()?),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port())
            .tls(tls)
            .timeout(Some(Duration::from_secs(cfg.timeout_secs)))
            .hello_name(ClientId::Domain(
                cfg.hello_name
                    .clone()
                    .unwrap_or_else(|| "simpul-collector".into()),
            ));
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            b = b.credentials(Credentials::new(
                secret(user, &format!("{loc}.username"))?,
                secret(password, &format!("{loc}.password"))?,
            ));
        }
        let from = cfg
            .from
            .parse()
            .map_err(|e| bad(format!("from {:?}: {e}", cfg.from)))?;
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| bad(format!("to {t:?}: {e}"))))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        Ok(Email {
            transport: b.build(),
            from,
            to,
            subject_prefix: cfg.subject_prefix.clone(),
        })
    }

    /// One SMTP transaction for every recipient: all or nothing, so
    /// `progress` goes from 0 to 1.
    pub async fn send(
        &self,
        n: &Notification,
        r: &Rendered,
        progress: u32,
    ) -> Result<u32, SendError> {
        if progress >= 1 {
            return Ok(progress);
        }
        let subject = if self.subject_prefix.is_empty() {
            r.headline.clone()
        } else {
            format!("{} {}", self.subject_prefix, r.headline)
        };
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            m = m.to(to.clone());
        }
        let body = format!("{}\n\n{}\n", r.headline, r.details);
        let message = m.body(Body::new(body)).map_err(|e| SendError {
            message: format!(
                "cannot build the message for incident {}: {e}",
                n.incident_id
            ),
            permanent: true,
            retry_after: None,
            progress,
        })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(1),
            Err(e) => Err(SendError {
                permanent: e.is_permanent(),
                message: smtp_error(&e),
                retry_after: None,
                progress,
            }),
        }
    }
}

/// A file sent along (the monthly reports).
pub(crate) struct Attachment {
    pub name: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Email {
    /// One message with `attachments` to `to` (empty: the channel's own
    /// recipients): a text part and the files (MIME multipart/mixed).
    pub async fn send_files(
        &self,
        to: &[String],
        subject: &str,
        body: &str,
        attachments: Vec<Attachment>,
    ) -> Result<(), String> {
        use lettre::message::{MultiPart, SinglePart};
        let subject = if self.subject_prefix.is_empty() {
            subject.to_string()
        } else {
            format!("{} {subject}", self.subject_prefix)
        };
        let mut m = Message::builder().from(self.from.clone()).subject(subject);
        if to.is_empty() {
            for t in &self.to {
                m = m.to(t.clone());
            }
        } else {
            for t in to {
                let mb: Mailbox = t.parse().map_err(|e| format!("recipient {t:?}: {e}"))?;
                m = m.to(mb);
            }
        }
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body.to_string()));
        for a in attachments {
            let ct = ContentType::parse(a.content_type)
                .map_err(|e| format!("content type {}: {e}", a.content_type))?;
            parts = parts.singlepart(lettre::message::Attachment::new(a.name).body(a.bytes, ct));
        }
        let message = m
            .multipart(parts)
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| smtp_error(&e))
    }
}

/// lettre's error with its causes (never the password: lettre does not
/// put credentials in errors).
fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let mut out = format!("SMTP: {e}");
    let mut cur = std::error::Error::source(e);
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

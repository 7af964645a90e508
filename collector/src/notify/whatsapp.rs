//! A WhatsApp HTTP gateway, described by configuration (method, URL,
//! headers, a JSON or form body template with placeholders, phones): the
//! Indonesian gateways (Fonnte, Wablas, WAHA, ...) all take roughly this.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use super::config::{WhatsAppConfig, WhatsAppFormat};
use super::http::{self, SendError};
use super::{secret, Notification, NotifyError, Rendered};

/// Placeholders a template may use.
pub(crate) const PLACEHOLDERS: &[&str] = &[
    "title", "body", "text", "severity", "agency", "node", "state", "kind", "incident", "phone",
    "phones",
];

pub(crate) struct WhatsApp {
    client: reqwest::Client,
    method: Method,
    url: String,
    headers: HeaderMap,
    format: WhatsAppFormat,
    body_template: String,
    phones: Vec<String>,
    /// One request for all phones (`{{phones}}`), else one per phone.
    batch: bool,
    success_pointer: Option<String>,
}

impl WhatsApp {
    pub fn new(name: &str, cfg: &WhatsAppConfig) -> Result<WhatsApp, NotifyError> {
        let loc = format!("notify.whatsapp.{name}");
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let v = secret(v, &format!("{loc}.headers.{k}"))?;
            let bad = |m: String| NotifyError::Config(format!("{loc}.headers.{k}: {m}"));
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| bad(e.to_string()))?,
                HeaderValue::from_str(&v).map_err(|e| bad(e.to_string()))?,
            );
        }
        let uses_phone = cfg.url.contains("{{phone}}") || cfg.body_template.contains("{{phone}}");
        Ok(WhatsApp {
            client: http::client(
                &loc,
                cfg.timeout_secs,
                cfg.proxy.as_deref(),
                cfg.ca_cert.as_deref(),
            )?,
            method: Method::from_bytes(cfg.method.to_ascii_uppercase().as_bytes())
                .map_err(|e| NotifyError::Config(format!("{loc}.method: {e}")))?,
            url: secret(&cfg.url, &format!("{loc}.url"))?,
            headers,
            format: cfg.format,
            body_template: cfg.body_template.clone(),
            phones: cfg.phones.iter().map(|p| p.trim().to_string()).collect(),
            batch: !uses_phone,
            success_pointer: cfg.success_pointer.clone(),
        })
    }

    pub async fn send(
        &self,
        n: &Notification,
        r: &Rendered,
        progress: u32,
    ) -> Result<u32, SendError> {
        let text = r.plain();
        let phones = self.phones.join(",");
        let node = n.node.clone().unwrap_or_else(|| "-".into());
        let incident = n.incident_id.to_string();
        let severity = n.severity.label();
        let state = n.state.label();
        let targets: Vec<&str> = if self.batch {
            vec![phones.as_str()]
        } else {
            self.phones.iter().map(String::as_str).collect()
        };
        let mut done = progress;
        for phone in targets.iter().skip(progress as usize) {
            let value = |name: &str| -> &str {
                match name {
                    "title" => &n.title,
                    "body" => &n.body,
                    "text" => &text,
                    "severity" => severity,
                    "agency" => &n.agency,
                    "node" => &node,
                    "state" => &state,
                    "kind" => &n.kind,
                    "incident" => &incident,
                    "phone" => phone,
                    "phones" => &phones,
                    _ => "",
                }
            };
            let url = fill(&self.url, &value, Escape::Url);
            let mut req = self
                .client
                .request(self.method.clone(), &url)
                .headers(self.headers.clone());
            if !self.body_template.is_empty() {
                let (escape, content_type) = match self.format {
                    WhatsAppFormat::Json => (Escape::Json, "application/json"),
                    WhatsAppFormat::Form => (Escape::Form, "application/x-www-form-urlencoded"),
                };
                if !self.headers.contains_key(CONTENT_TYPE) {
                    req = req.header(CONTENT_TYPE, content_type);
                }
                req = req.body(fill(&self.body_template, &value, escape));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| http::transport_error(e, done))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let answer = resp.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(http::status_error(status, &headers, &answer, done));
            }
            if let Some(p) = &self.success_pointer {
                let ok = serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v.pointer(p).cloned())
                    .is_some_and(|v| truthy(&v));
                if !ok {
                    return Err(SendError::retry(
                        format!(
                            "gateway answered {status} but {p} is not true: {}",
                            super::truncate_chars(answer.trim(), 300)
                        ),
                        done,
                    ));
                }
            }
            done += 1;
        }
        Ok(done)
    }
}

/// Gateways say success as `true`, `"true"`, `"success"`, `"ok"` or `1`.
fn truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_i64() == Some(1),
        serde_json::Value::String(s) => {
            matches!(s.to_ascii_lowercase().as_str(), "true" | "success" | "ok")
        }
        _ => false,
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Escape {
    /// Inside a JSON string: the value without its quotes.
    Json,
    /// application/x-www-form-urlencoded.
    Form,
    /// A URL component: percent-encoded.
    Url,
}

/// Replace `{{name}}` with `value(name)`, escaped for where it lands.
pub(crate) fn fill<'a>(template: &str, value: &dyn Fn(&str) -> &'a str, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if PLACEHOLDERS.contains(&after[..end].trim()) => {
                let v = value(after[..end].trim());
                match escape {
                    Escape::Json => {
                        let quoted = serde_json::to_string(v).unwrap_or_default();
                        out.push_str(&quoted[1..quoted.len() - 1]);
                    }
                    Escape::Form => out.extend(form_urlencoded::byte_serialize(v.as_bytes())),
                    Escape::Url => out.extend(percent_encoding::utf8_percent_encode(
                        v,
                        percent_encoding::NON_ALPHANUMERIC,
                    )),
                }
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first `{{name}}` that is not a known placeholder.
pub(crate) fn unknown_placeholder(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Some(name.to_string());
        }
        rest = &after[end + 2..];
    }
    None
}

fn sample(name: &str) -> &'static str {
    match name {
        "text" | "body" => "line \"one\"\nline two",
        _ => "x",
    }
}

/// `url` with placeholders filled, for validation.
pub(crate) fn sample_url(url: &str) -> String {
    fill(url, &sample, Escape::Url)
}

/// `template` filled JSON-escaped, for validation.
pub(crate) fn sample_json_body(template: &str) -> String {
    fill(template, &sample, Escape::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_whatsapp_templates_escape_for_their_place() {
        let v = |n: &str| -> &str {
            match n {
                "text" => "Node \"dinkes-01\" mati\nsejak 10:00 & belum pulih",
                "phone" => "+62 812",
                _ => "?",
            }
        };
        let json = fill(
            r#"{"target": "{{phone}}", "message": "{{ text }}", "x": "{{unknown}}"}"#,
            &v,
            Escape::Json,
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["target"], "+62 812");
        assert_eq!(
            parsed["message"],
            "Node \"dinkes-01\" mati\nsejak 10:00 & belum pulih"
        );
        assert_eq!(parsed["x"], "{{unknown}}");
        let form = fill("target={{phone}}&message={{text}}", &v, Escape::Form);
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs[0], ("target".into(), "+62 812".into()));
        assert_eq!(
            pairs[1].1,
            "Node \"dinkes-01\" mati\nsejak 10:00 & belum pulih"
        );
        assert_eq!(
            fill("https://g/send?phone={{phone}}", &v, Escape::Url),
            "https://g/send?phone=%2B62%20812"
        );
        assert_eq!(
            unknown_placeholder("a {{phone}} {{pesan}}"),
            Some("pesan".into())
        );
        assert_eq!(unknown_placeholder("a {{phone}} {{ text }}"), None);
    }
}

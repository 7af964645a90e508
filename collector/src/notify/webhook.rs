//! Webhook in Alertmanager's format (version 4), so anything that takes
//! Alertmanager webhooks takes Simpul's incidents.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::config::WebhookConfig;
use super::http::{self, SendError};
use super::{rfc3339, secret, Notification, NotifyError, NotifyState, Rendered};

pub(crate) struct Webhook {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    receiver: String,
    external_url: String,
}

impl Webhook {
    pub fn new(
        name: &str,
        cfg: &WebhookConfig,
        dashboard_url: Option<&str>,
    ) -> Result<Webhook, NotifyError> {
        let loc = format!("notify.webhook.{name}");
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let v = secret(v, &format!("{loc}.headers.{k}"))?;
            let bad = |m: String| NotifyError::Config(format!("{loc}.headers.{k}: {m}"));
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| bad(e.to_string()))?,
                HeaderValue::from_str(&v).map_err(|e| bad(e.to_string()))?,
            );
        }
        Ok(Webhook {
            client: http::client(
                &loc,
                cfg.timeout_secs,
                cfg.proxy.as_deref(),
                cfg.ca_cert.as_deref(),
            )?,
            url: cfg.url.clone(),
            headers,
            receiver: cfg.receiver.clone().unwrap_or_else(|| name.to_string()),
            external_url: dashboard_url.unwrap_or_default().to_string(),
        })
    }

    pub async fn send(
        &self,
        n: &Notification,
        _r: &Rendered,
        progress: u32,
    ) -> Result<u32, SendError> {
        if progress >= 1 {
            return Ok(progress);
        }
        let body = payload(n, &self.receiver, &self.external_url, super::now_ms());
        let resp = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| http::transport_error(e, 0))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(1);
        }
        let headers = resp.headers().clone();
        let answer = resp.text().await.unwrap_or_default();
        Err(http::status_error(status, &headers, &answer, 0))
    }
}

/// The Alertmanager webhook document for one incident transition.
pub(crate) fn payload(
    n: &Notification,
    receiver: &str,
    external_url: &str,
    now_ms: u64,
) -> serde_json::Value {
    let resolved = n.state == NotifyState::Resolved;
    let status = if resolved { "resolved" } else { "firing" };
    // Extra labels first: Simpul's own win on a clash.
    let mut labels: BTreeMap<String, String> = n.labels.clone();
    labels.insert("alertname".into(), n.kind.clone());
    labels.insert("severity".into(), n.severity.as_str().into());
    labels.insert("agency".into(), n.agency.clone());
    if let Some(node) = &n.node {
        labels.insert("node".into(), node.clone());
    }
    labels.insert("incident_id".into(), n.incident_id.to_string());
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    annotations.insert("summary".into(), n.title.clone());
    annotations.insert("description".into(), n.body.clone());
    annotations.insert("simpul_state".into(), n.state.key());
    if let NotifyState::Escalated { level } = n.state {
        annotations.insert("escalation_level".into(), level.to_string());
    }
    let ends_at = if resolved {
        rfc3339(n.ends_at_ms.unwrap_or(now_ms))
    } else {
        // Alertmanager's "not ended".
        "0001-01-01T00:00:00Z".to_string()
    };
    let group_labels = json!({ "incident_id": n.incident_id.to_string() });
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{incident_id=\"{}\"}}", n.incident_id),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(n.starts_at_ms),
            "endsAt": ends_at,
            "generatorURL": external_url,
            "fingerprint": fingerprint(&labels),
        }],
    })
}

/// Prometheus' label-set signature: FNV-1a 64 over sorted names and values,
/// each followed by 0xff; 16 hex digits as Alertmanager prints it.
fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

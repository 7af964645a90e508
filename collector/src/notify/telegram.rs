//! Telegram Bot API: `POST {base_url}/bot{token}/sendMessage` per chat.

use std::time::Duration;

use serde_json::json;

use super::config::TelegramConfig;
use super::http::{self, SendError};
use super::{secret, Notification, NotifyError, Rendered};

/// Telegram refuses longer messages.
const MAX_TEXT: usize = 4096;

pub(crate) struct Telegram {
    client: reqwest::Client,
    /// Holds the token: never logged, never put in an error.
    url: String,
    chat_ids: Vec<String>,
    html: bool,
    ack_button: bool,
}

impl Telegram {
    pub fn new(name: &str, cfg: &TelegramConfig) -> Result<Telegram, NotifyError> {
        let loc = format!("notify.telegram.{name}");
        let token = secret(&cfg.token, &format!("{loc}.token"))?;
        Ok(Telegram {
            client: http::client(
                &loc,
                cfg.timeout_secs,
                cfg.proxy.as_deref(),
                cfg.ca_cert.as_deref(),
            )?,
            url: format!(
                "{}/bot{}/sendMessage",
                cfg.base_url.trim_end_matches('/'),
                token.trim()
            ),
            chat_ids: cfg.chat_ids.clone(),
            html: cfg.parse_mode == "HTML",
            ack_button: cfg.ack_button,
        })
    }

    pub async fn send(
        &self,
        n: &Notification,
        r: &Rendered,
        progress: u32,
    ) -> Result<u32, SendError> {
        let text = text(self.html, r);
        let mut done = progress;
        for chat in self.chat_ids.iter().skip(progress as usize) {
            let mut body = json!({
                "chat_id": chat,
                "text": text,
                "disable_web_page_preview": true,
            });
            if self.html {
                body["parse_mode"] = json!("HTML");
            }
            if self.ack_button && n.state == super::NotifyState::Firing {
                body["reply_markup"] = json!({"inline_keyboard": [[{
                    "text": "Terima / Acknowledge",
                    "callback_data": format!("ack:{}", n.incident_id),
                }]]});
            }
            let resp = self
                .client
                .post(&self.url)
                .json(&body)
                .send()
                .await
                .map_err(|e| http::transport_error(e, done))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let answer = resp.text().await.unwrap_or_default();
            let parsed: Option<serde_json::Value> = serde_json::from_str(&answer).ok();
            let ok = parsed
                .as_ref()
                .and_then(|v| v.get("ok"))
                .and_then(|v| v.as_bool());
            if status.is_success() && ok != Some(false) {
                done += 1;
                continue;
            }
            let mut err = http::status_error(status, &headers, &answer, done);
            if let Some(v) = &parsed {
                if let Some(d) = v.get("description").and_then(|d| d.as_str()) {
                    err.message = format!("chat {chat}: HTTP {}: {d}", status.as_u16());
                }
                if let Some(s) = v
                    .pointer("/parameters/retry_after")
                    .and_then(|s| s.as_u64())
                {
                    err.retry_after = Some(Duration::from_secs(s));
                }
            }
            return Err(err);
        }
        Ok(done)
    }
}

/// The message: bold headline in HTML mode, within Telegram's length limit.
fn text(html: bool, r: &Rendered) -> String {
    if html {
        let head = format!("<b>{}</b>\n\n", escape(&r.headline));
        // Cut the plain details, then escape: never split an entity.
        let room = MAX_TEXT.saturating_sub(head.chars().count());
        let mut details = super::truncate_chars(&r.details, room);
        while escape(&details).chars().count() > room && !details.is_empty() {
            let keep = details.chars().count().saturating_sub(64);
            details = super::truncate_chars(&details, keep);
        }
        head + &escape(&details)
    } else {
        super::truncate_chars(&r.plain(), MAX_TEXT)
    }
}

/// Telegram's HTML mode needs exactly these three escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_telegram_html_is_escaped_and_bounded() {
        let r = Rendered {
            headline: "[KRITIS] GANGGUAN: <node> & co".into(),
            details: "x<y ".repeat(2000),
        };
        let text = text(true, &r);
        assert!(text.starts_with("<b>[KRITIS] GANGGUAN: &lt;node&gt; &amp; co</b>\n\n"));
        assert!(text.chars().count() <= MAX_TEXT);
        assert!(!text.contains("x<y"));
    }
}

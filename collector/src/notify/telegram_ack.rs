//! Acknowledging from Telegram: the "Terima" button under an outage message.
//!
//! The collector long-polls the bot's updates (`getUpdates`) instead of
//! taking a webhook: the NOC server needs no inbound connection from the
//! internet, which a government intranet rarely allows. Only presses in one
//! of the channel's own `chat_ids` count — anyone else who finds the bot is
//! answered "not allowed". An acknowledgement is idempotent (the first one
//! counts), so an update Telegram delivers twice does no harm.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::config::{NotifyConfig, TelegramConfig};
use super::{http, secret, NotifyError};

/// What a press does: acknowledge incident `id` in the name `by`. Returns
/// whether the incident exists.
pub type AckFn =
    Arc<dyn Fn(i64, String) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Start one poller per Telegram channel with `ack_button` on.
///
/// `leading`: whether this collector polls now. Telegram hands a bot's
/// updates to one reader at a time (a second gets 409 Conflict), so of
/// several collectors only the outage detector's leader reads them.
pub fn start(
    cfg: &NotifyConfig,
    ack: AckFn,
    shutdown: crate::server::Shutdown,
    leading: crate::outage::monitor::LeaderGate,
) -> Result<Vec<tokio::task::JoinHandle<()>>, NotifyError> {
    let mut tasks = Vec::new();
    for (name, t) in &cfg.telegram {
        if !t.ack_button {
            continue;
        }
        let poller = Poller::new(name, t)?;
        let (ack, leading) = (ack.clone(), leading.clone());
        let mut stop = shutdown.subscribe();
        // A long poll in flight is dropped on the stop: Telegram keeps the
        // update, and the next start reads it again.
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = poller.run(ack, leading) => {}
                () = stop.wait() => {}
            }
        }));
    }
    Ok(tasks)
}

struct Poller {
    name: String,
    client: reqwest::Client,
    /// `{base}/bot{token}/`: holds the token, never logged.
    base: String,
    chat_ids: Vec<String>,
}

impl Poller {
    fn new(name: &str, cfg: &TelegramConfig) -> Result<Poller, NotifyError> {
        let loc = format!("notify.telegram.{name}");
        let token = secret(&cfg.token, &format!("{loc}.token"))?;
        Ok(Poller {
            name: name.to_string(),
            // Long polls last up to 25 s.
            client: http::client(&loc, 35, cfg.proxy.as_deref(), cfg.ca_cert.as_deref())?,
            base: format!(
                "{}/bot{}/",
                cfg.base_url.trim_end_matches('/'),
                token.trim()
            ),
            chat_ids: cfg.chat_ids.clone(),
        })
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, String> {
        let resp = self
            .client
            .post(format!("{}{method}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{method}: {}", e.without_url()))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("{method}: {}", e.without_url()))?;
        if !status.is_success() || v["ok"] != json!(true) {
            return Err(format!(
                "{method}: HTTP {}: {}",
                status.as_u16(),
                v["description"]
            ));
        }
        Ok(v)
    }

    async fn run(self, ack: AckFn, leading: crate::outage::monitor::LeaderGate) {
        let mut offset: i64 = 0;
        let mut backoff = Duration::from_secs(1);
        loop {
            if !leading() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let body =
                json!({"offset": offset, "timeout": 25, "allowed_updates": ["callback_query"]});
            let updates = match self.call("getUpdates", &body).await {
                Ok(v) => {
                    backoff = Duration::from_secs(1);
                    v
                }
                Err(e) => {
                    tracing::warn!(channel = %self.name, error = %e, "Telegram updates unavailable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
            };
            for u in updates["result"].as_array().into_iter().flatten() {
                if let Some(id) = u["update_id"].as_i64() {
                    offset = offset.max(id + 1);
                }
                if let Some(q) = u.get("callback_query") {
                    self.press(q, &ack).await;
                }
            }
        }
    }

    async fn press(&self, q: &Value, ack: &AckFn) {
        let query_id = q["id"].as_str().unwrap_or_default().to_string();
        let chat = chat_id(&q["message"]["chat"]["id"]);
        let who = who(&q["from"]);
        let answer = match parse_ack(q["data"].as_str().unwrap_or_default()) {
            _ if !self
                .chat_ids
                .iter()
                .any(|c| Some(c.as_str()) == chat.as_deref()) =>
            {
                tracing::warn!(channel = %self.name, chat = ?chat, %who, "Telegram acknowledgement from a chat that is not configured: refused");
                "Tidak diizinkan / Not allowed".to_string()
            }
            None => "Perintah tidak dikenal".to_string(),
            Some(id) => {
                if ack(id, who.clone()).await {
                    tracing::info!(target: "audit", incident = id, by = %who, channel = %self.name, "incident acknowledged from Telegram");
                    format!("Diterima oleh {who}")
                } else {
                    format!("Insiden {id} tidak ada")
                }
            }
        };
        let body = json!({"callback_query_id": query_id, "text": answer});
        if let Err(e) = self.call("answerCallbackQuery", &body).await {
            tracing::warn!(channel = %self.name, error = %e, "cannot answer a Telegram button press");
        }
    }
}

/// `ack:123` → 123.
pub fn parse_ack(data: &str) -> Option<i64> {
    data.strip_prefix("ack:")?
        .parse()
        .ok()
        .filter(|&n: &i64| n > 0)
}

fn chat_id(v: &Value) -> Option<String> {
    v.as_i64()
        .map(|n| n.to_string())
        .or_else(|| v.as_str().map(str::to_string))
}

/// "Budi Santoso (@budi) via Telegram", bounded like dashboard names.
fn who(from: &Value) -> String {
    let first = from["first_name"].as_str().unwrap_or("");
    let last = from["last_name"].as_str().unwrap_or("");
    let name = format!("{first} {last}").trim().to_string();
    let user = from["username"]
        .as_str()
        .map(|u| format!(" (@{u})"))
        .unwrap_or_default();
    let s: String = format!("{name}{user} via Telegram")
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fake Bot API: two button presses (the NOC chat, a stranger), then
    /// nothing; answers recorded.
    #[tokio::test]
    async fn notify_telegram_button_acknowledges_only_from_the_noc_chat() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let answers: Arc<Mutex<Vec<Value>>> = Arc::default();
        let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let polled = served.clone();
        let app = {
            let answers = answers.clone();
            axum::Router::new()
                .route(
                    "/bot1:T/getUpdates",
                    axum::routing::post(move || {
                        let served = served.clone();
                        async move {
                            if served.swap(true, std::sync::atomic::Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                return axum::Json(json!({"ok": true, "result": []}));
                            }
                            let press = |uid: i64, chat: i64, data: &str| {
                                json!({
                                    "update_id": uid,
                                    "callback_query": {"id": format!("q{uid}"), "data": data,
                                        "from": {"first_name": "Budi", "username": "budi"},
                                        "message": {"chat": {"id": chat}}}
                                })
                            };
                            axum::Json(json!({"ok": true, "result": [
                                press(10, -1001, "ack:7"), press(11, 555, "ack:8")
                            ]}))
                        }
                    }),
                )
                .route(
                    "/bot1:T/answerCallbackQuery",
                    axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                        let answers = answers.clone();
                        async move {
                            answers.lock().expect("lock").push(v);
                            axum::Json(json!({"ok": true, "result": true}))
                        }
                    }),
                )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let cfg: NotifyConfig = toml::from_str(&format!(
            "[telegram.noc]\ntoken = \"1:T\"\nchat_ids = [\"-1001\"]\nbase_url = \"http://{addr}\"\n"
        ))
        .expect("config");
        let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
        let ack: AckFn = {
            let acked = acked.clone();
            Arc::new(move |id, by| {
                acked.lock().expect("lock").push((id, by));
                Box::pin(async { true })
            })
        };
        // A follower (another collector leads) does not read the updates.
        let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = {
            let leading = leading.clone();
            Arc::new(move || leading.load(std::sync::atomic::Ordering::SeqCst))
        };
        let tasks = start(&cfg, ack, crate::server::Shutdown::default(), gate).expect("start");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!polled.load(std::sync::atomic::Ordering::SeqCst));
        leading.store(true, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..100 {
            if answers.lock().expect("lock").len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in tasks {
            t.abort();
        }
        assert_eq!(
            *acked.lock().expect("lock"),
            [(7, "Budi (@budi) via Telegram".to_string())]
        );
        let a = answers.lock().expect("lock").clone();
        assert_eq!(a[0]["text"], "Diterima oleh Budi (@budi) via Telegram");
        assert_eq!(a[1]["text"], "Tidak diizinkan / Not allowed");
    }

    #[test]
    fn notify_telegram_ack_data_and_names() {
        assert_eq!(parse_ack("ack:42"), Some(42));
        assert_eq!(parse_ack("ack:-1"), None);
        assert_eq!(parse_ack("ack:x"), None);
        assert_eq!(parse_ack("nope"), None);
        assert_eq!(
            who(&json!({"first_name": "Budi", "last_name": "Santoso", "username": "budi"})),
            "Budi Santoso (@budi) via Telegram"
        );
        assert_eq!(chat_id(&json!(-1001)), Some("-1001".into()));
    }
}

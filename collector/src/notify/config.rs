//! The `[notify]` section of collector.toml: channels by type and name,
//! routes, delivery timings. See the commented example in
//! configs/collector.toml.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;

use super::Severity;
use crate::config::valid_code;
use simpul_proto::Problem;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Local time of the NOC: times in messages, and the default offset of
    /// route windows. `+07:00` WIB, `+08:00` WITA, `+09:00` WIT.
    pub utc_offset: String,
    /// Linked from every message and sent as Alertmanager's `externalURL`.
    pub dashboard_url: Option<String>,
    /// Channels by name (`[notify.telegram.noc]`); names are unique across
    /// types and are what routes refer to.
    pub telegram: BTreeMap<String, TelegramConfig>,
    pub whatsapp: BTreeMap<String, WhatsAppConfig>,
    pub email: BTreeMap<String, EmailConfig>,
    pub webhook: BTreeMap<String, WebhookConfig>,
    /// Every route that matches a notification adds its channels.
    pub routes: Vec<RouteConfig>,
    pub delivery: DeliveryConfig,
}

/// A collector without `[notify]`.
impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            utc_offset: "+07:00".into(),
            dashboard_url: None,
            telegram: BTreeMap::new(),
            whatsapp: BTreeMap::new(),
            email: BTreeMap::new(),
            webhook: BTreeMap::new(),
            routes: Vec::new(),
            delivery: DeliveryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Bot token from @BotFather; `env:NAME` reads it from the environment.
    pub token: String,
    /// Chat ids (`-100…` for groups and channels) or `@channelname`.
    pub chat_ids: Vec<String>,
    #[serde(default = "default_telegram_url")]
    pub base_url: String,
    /// `HTML` (bold headline) or `""` for plain text.
    #[serde(default = "default_parse_mode")]
    pub parse_mode: String,
    #[serde(default = "default_rate_chat")]
    pub rate_per_minute: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// HTTP(S) proxy for reaching the internet from the intranet.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Extra CA certificates (PEM) trusted besides the public roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Outage messages carry a "Terima" button; a press by a member of
    /// one of `chat_ids` acknowledges the incident in their name (the
    /// collector polls the bot's updates; no inbound connection needed).
    #[serde(default = "default_true")]
    pub ack_button: bool,
}

fn default_telegram_url() -> String {
    "https://api.telegram.org".into()
}
fn default_parse_mode() -> String {
    "HTML".into()
}
fn default_rate_chat() -> u32 {
    20
}
fn default_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhatsAppFormat {
    /// `application/json`: placeholders are replaced JSON-escaped.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`: placeholders are percent-encoded.
    Form,
}

/// A generic WhatsApp HTTP gateway (Fonnte, Wablas, WAHA, a local one).
/// Placeholders in `url` and `body_template`: `{{title}}`, `{{body}}`,
/// `{{text}}` (the whole message), `{{severity}}`, `{{agency}}`, `{{node}}`,
/// `{{state}}`, `{{kind}}`, `{{incident}}`, `{{phone}}` (one request per
/// phone) or `{{phones}}` (one request, phones joined with commas).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Sent as is (`Authorization = "env:FONNTE_TOKEN"` reads the environment).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub format: WhatsAppFormat,
    #[serde(default)]
    pub body_template: String,
    pub phones: Vec<String>,
    /// JSON pointer into the gateway's answer that must be `true` for
    /// success (gateways that answer 200 with `{"status": false}`), e.g.
    /// `/status`. Unset: any 2xx is success.
    #[serde(default)]
    pub success_pointer: Option<String>,
    #[serde(default = "default_rate_chat")]
    pub rate_per_minute: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub proxy: Option<String>,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

fn default_method() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain SMTP (a trusted relay on the intranet only). Port 25.
    None,
    /// Plain then STARTTLS, required. Port 587.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS). Port 465.
    Tls,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    /// Default by `tls`: 25, 587 or 465.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: EmailTls,
    #[serde(default)]
    pub username: Option<String>,
    /// `env:NAME` reads it from the environment.
    #[serde(default)]
    pub password: Option<String>,
    /// `"NOC Diskominfo <noc@example.go.id>"` or a bare address.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// EHLO name; default `simpul-collector`.
    #[serde(default)]
    pub hello_name: Option<String>,
    #[serde(default = "default_rate_email")]
    pub rate_per_minute: u32,
    #[serde(default = "default_timeout_email")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

fn default_subject_prefix() -> String {
    "[Simpul]".into()
}
fn default_rate_email() -> u32 {
    30
}
fn default_timeout_email() -> u64 {
    30
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            EmailTls::None => 25,
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
        })
    }
}

/// Alertmanager's webhook format (version 4): whatever consumes
/// Alertmanager webhooks (PagerDuty-like tools, chat bridges, scripts).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The `receiver` field; default the channel name.
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default = "default_rate_webhook")]
    pub rate_per_minute: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub proxy: Option<String>,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

fn default_rate_webhook() -> u32 {
    120
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    Firing,
    Resolved,
    Escalated,
    Acknowledged,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Firing => "firing",
            StateName::Resolved => "resolved",
            StateName::Escalated => "escalated",
            StateName::Acknowledged => "acknowledged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// For logs and error messages.
    #[serde(default)]
    pub name: Option<String>,
    /// Notifications at least this severe.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Agency codes; empty: every agency.
    #[serde(default)]
    pub agencies: Vec<String>,
    /// Notification kinds (`node_down`, `flapping`, ...); empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Which transitions; default firing, resolved, acknowledged.
    /// Escalations go only to routes that list `escalated`.
    #[serde(default = "default_states")]
    pub states: Vec<StateName>,
    /// With `escalated` in `states`: the levels this route is for (its
    /// channels are that level's contacts); empty: every level.
    #[serde(default)]
    pub escalation_levels: Vec<u32>,
    /// Only in this local time window; unset: always.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    pub channels: Vec<String>,
}

fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_states() -> Vec<StateName> {
    vec![
        StateName::Firing,
        StateName::Resolved,
        StateName::Acknowledged,
    ]
}

/// Days of the week, as everywhere in Simpul.
pub use simpul_proto::time_window::Weekday;

/// `from`–`to` local time on `days`. `to` before `from` crosses midnight (the
/// part after midnight belongs to the day it started); `from == to` is the
/// whole day.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Empty: every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// `HH:MM`.
    #[serde(default = "default_midnight")]
    pub from: String,
    #[serde(default = "default_midnight")]
    pub to: String,
    /// Default: `notify.utc_offset`.
    #[serde(default)]
    pub utc_offset: Option<String>,
}

fn default_midnight() -> String {
    "00:00".into()
}

/// Retry, give-up and rate-limit timings. Defaults suit production; tests
/// shorten them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// First retry after about this long, doubling per attempt (with jitter:
    /// each wait is between half and all of the doubled value)...
    pub retry_initial_ms: u64,
    /// ...up to this.
    pub retry_max_ms: u64,
    /// Give up (status `failed`) after this many attempts...
    pub max_attempts: u32,
    /// ...or when the row is this old (an outage message hours late helps
    /// nobody).
    pub give_up_after_secs: u64,
    /// The period `rate_per_minute` counts over (60000; shorter in tests).
    pub rate_window_ms: u64,
    /// Look for due rows at least this often (enqueue wakes the dispatcher
    /// at once; this catches rows written by another process).
    pub poll_ms: u64,
    /// On stop, sends in flight get this long to finish.
    pub stop_grace_ms: u64,
    /// A resolved incident suppresses its messages not yet attempted.
    pub suppress_unsent_on_resolve: bool,
    /// Sent, failed and suppressed rows are deleted after this many days
    /// (0: kept forever).
    pub log_retention_days: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_initial_ms: 5_000,
            retry_max_ms: 600_000,
            max_attempts: 12,
            give_up_after_secs: 3 * 3600,
            rate_window_ms: 60_000,
            poll_ms: 2_000,
            stop_grace_ms: 3_000,
            suppress_unsent_on_resolve: true,
            log_retention_days: 365,
        }
    }
}

/// Fields of channel sections, which also have required fields (a token, a
/// URL): serde's per-field defaults. Sections whose every field has a
/// default use `#[serde(default)]` and one `impl Default` instead.
fn default_true() -> bool {
    true
}

/// (location, message)
pub(crate) type Invalid = (String, String);

impl NotifyConfig {
    /// For `CollectorConfig::problems`: every problem with where it is.
    pub fn validate_all(&self) -> Result<(), Vec<Problem>> {
        self.check()
    }

    /// Every channel name with its type, in a stable order.
    pub fn channel_names(&self) -> Vec<(&str, &'static str)> {
        let mut v: Vec<(&str, &'static str)> = Vec::new();
        v.extend(self.telegram.keys().map(|k| (k.as_str(), "telegram")));
        v.extend(self.whatsapp.keys().map(|k| (k.as_str(), "whatsapp")));
        v.extend(self.email.keys().map(|k| (k.as_str(), "email")));
        v.extend(self.webhook.keys().map(|k| (k.as_str(), "webhook")));
        v
    }

    /// Every problem of `[notify]` with its place: the first thing wrong
    /// with each channel, route and setting.
    pub(crate) fn check(&self) -> Result<(), Vec<Problem>> {
        let mut out: Vec<Problem> = Vec::new();
        let mut push = |r: Result<(), Invalid>| {
            if let Err((place, message)) = r {
                out.push(Problem::new(place, message));
            }
        };
        let bad = |loc: String, msg: String| Err((loc, msg));
        push((|| -> Result<(), Invalid> {
            parse_offset(&self.utc_offset).map_err(|m| ("notify.utc_offset".to_string(), m))?;
            Ok(())
        })());
        push((|| -> Result<(), Invalid> {
            if let Some(u) = &self.dashboard_url {
                check_url(u, false).map_err(|m| ("notify.dashboard_url".to_string(), m))?;
            }
            Ok(())
        })());
        let mut names: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, kind) in self.channel_names() {
            push((|| -> Result<(), Invalid> {
                let loc = format!("notify.{kind}.{name}");
                if !valid_code(name) {
                    return bad(loc, "channel name: letters, digits, '-', '_'".into());
                }
                if let Some(other) = names.insert(name, kind) {
                    return bad(
                        loc,
                        format!("channel name {name:?} is also used by notify.{other}.{name}"),
                    );
                }
                Ok(())
            })());
        }
        for (name, t) in &self.telegram {
            push((|| -> Result<(), Invalid> {
                let loc = format!("notify.telegram.{name}");
                if t.token.trim().is_empty() {
                    return bad(loc, "token is empty".into());
                }
                if t.chat_ids.is_empty() || t.chat_ids.iter().any(|c| c.trim().is_empty()) {
                    return bad(
                        loc,
                        "chat_ids: list at least one chat id, none empty".into(),
                    );
                }
                check_url(&t.base_url, true).map_err(|m| (format!("{loc}.base_url"), m))?;
                if !matches!(t.parse_mode.as_str(), "HTML" | "") {
                    return bad(
                        format!("{loc}.parse_mode"),
                        format!("{:?}: use \"HTML\" or \"\" (plain text)", t.parse_mode),
                    );
                }
                check_http_common(&loc, t.timeout_secs, t.proxy.as_deref(), &t.ca_cert)?;
                Ok(())
            })());
        }
        for (name, w) in &self.whatsapp {
            push((|| -> Result<(), Invalid> {
                let loc = format!("notify.whatsapp.{name}");
                if w.phones.is_empty() || w.phones.iter().any(|p| p.trim().is_empty()) {
                    return bad(
                        format!("{loc}.phones"),
                        "list at least one phone number, none empty".into(),
                    );
                }
                let method = w.method.to_ascii_uppercase();
                if !matches!(method.as_str(), "GET" | "POST" | "PUT") {
                    return bad(
                        format!("{loc}.method"),
                        format!("{:?}: use GET, POST or PUT", w.method),
                    );
                }
                if method != "GET" && w.body_template.trim().is_empty() {
                    return bad(
                        format!("{loc}.body_template"),
                        format!("empty; {method} needs a body"),
                    );
                }
                let uses = |p: &str| w.url.contains(p) || w.body_template.contains(p);
                if !uses("{{phone}}") && !uses("{{phones}}") {
                    return bad(
                        loc,
                        "neither {{phone}} nor {{phones}} appears in url or body_template: \
                         the gateway would not know whom to send to"
                            .into(),
                    );
                }
                for t in [&w.url, &w.body_template] {
                    if let Some(p) = super::whatsapp::unknown_placeholder(t) {
                        return bad(loc, format!("unknown placeholder {{{{{p}}}}}"));
                    }
                }
                let url = super::whatsapp::sample_url(&w.url);
                check_url(&url, true).map_err(|m| (format!("{loc}.url"), m))?;
                if w.format == WhatsAppFormat::Json && !w.body_template.trim().is_empty() {
                    let sample = super::whatsapp::sample_json_body(&w.body_template);
                    if let Err(e) = serde_json::from_str::<serde_json::Value>(&sample) {
                        return bad(
                            format!("{loc}.body_template"),
                            format!(
                                "is not JSON once placeholders are filled in ({e}); \
                                 put placeholders inside strings: \"{{{{text}}}}\""
                            ),
                        );
                    }
                }
                if let Some(p) = &w.success_pointer {
                    if !p.starts_with('/') {
                        return bad(
                            format!("{loc}.success_pointer"),
                            format!("{p:?}: a JSON pointer starts with '/', e.g. \"/status\""),
                        );
                    }
                }
                check_headers(&loc, &w.headers)?;
                check_http_common(&loc, w.timeout_secs, w.proxy.as_deref(), &w.ca_cert)?;
                Ok(())
            })());
        }
        for (name, e) in &self.email {
            push((|| -> Result<(), Invalid> {
                let loc = format!("notify.email.{name}");
                if e.host.trim().is_empty() {
                    return bad(format!("{loc}.host"), "empty".into());
                }
                e.from
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|err| (format!("{loc}.from"), format!("{:?}: {err}", e.from)))?;
                if e.to.is_empty() {
                    return bad(format!("{loc}.to"), "list at least one recipient".into());
                }
                for to in &e.to {
                    to.parse::<lettre::message::Mailbox>()
                        .map_err(|err| (format!("{loc}.to"), format!("{to:?}: {err}")))?;
                }
                if e.username.is_some() != e.password.is_some() {
                    return bad(loc, "username and password go together".into());
                }
                if e.username.is_some() && e.tls == EmailTls::None {
                    return bad(
                        loc,
                        "credentials would cross the network in clear text; use tls = \"starttls\" or \"tls\""
                            .into(),
                    );
                }
                if e.timeout_secs == 0 {
                    return bad(format!("{loc}.timeout_secs"), "must be at least 1".into());
                }
                check_ca(&loc, &e.ca_cert)?;
                Ok(())
            })());
        }
        for (name, w) in &self.webhook {
            push((|| -> Result<(), Invalid> {
                let loc = format!("notify.webhook.{name}");
                check_url(&w.url, true).map_err(|m| (format!("{loc}.url"), m))?;
                check_headers(&loc, &w.headers)?;
                check_http_common(&loc, w.timeout_secs, w.proxy.as_deref(), &w.ca_cert)?;
                Ok(())
            })());
        }
        for (i, r) in self.routes.iter().enumerate() {
            push((|| -> Result<(), Invalid> {
                let loc = match &r.name {
                    Some(n) => format!("notify.routes[{i}] ({n})"),
                    None => format!("notify.routes[{i}]"),
                };
                if r.channels.is_empty() {
                    return bad(loc, "channels: name at least one channel".into());
                }
                for c in &r.channels {
                    if !names.contains_key(c.as_str()) {
                        let known: Vec<&str> = names.keys().copied().collect();
                        return bad(
                            loc,
                            format!(
                                "unknown channel {c:?} (configured: {})",
                                if known.is_empty() {
                                    "none".to_string()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                    }
                }
                for a in &r.agencies {
                    if !valid_code(a) {
                        return bad(loc, format!("agencies: invalid agency code {a:?}"));
                    }
                }
                if r.states.is_empty() {
                    return bad(loc, "states: list at least one state".into());
                }
                let states: BTreeSet<StateName> = r.states.iter().copied().collect();
                if !r.escalation_levels.is_empty() && !states.contains(&StateName::Escalated) {
                    return bad(
                        loc,
                        "escalation_levels needs \"escalated\" in states".into(),
                    );
                }
                if let Some(w) = &r.window {
                    super::routing::Window::parse(w, &self.utc_offset)
                        .map_err(|m| (format!("{loc}.window"), m))?;
                }
                Ok(())
            })());
        }
        let d = &self.delivery;
        push((|| -> Result<(), Invalid> {
            if d.retry_initial_ms == 0 || d.retry_max_ms < d.retry_initial_ms {
                return bad(
                    "notify.delivery".into(),
                    "retry_initial_ms must be > 0 and retry_max_ms at least retry_initial_ms"
                        .into(),
                );
            }
            Ok(())
        })());
        push((|| -> Result<(), Invalid> {
            if d.max_attempts == 0 {
                return bad(
                    "notify.delivery.max_attempts".into(),
                    "must be at least 1".into(),
                );
            }
            Ok(())
        })());
        push((|| -> Result<(), Invalid> {
            if d.rate_window_ms == 0 || d.poll_ms == 0 {
                return bad(
                    "notify.delivery".into(),
                    "rate_window_ms and poll_ms must be > 0".into(),
                );
            }
            Ok(())
        })());
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }
}

/// `+07:00`, `-03:30`, `Z` → seconds east of UTC (the one parser, in proto).
pub(crate) fn parse_offset(s: &str) -> Result<i32, String> {
    simpul_proto::time_window::UtcOffset::parse(s).map(|o| o.seconds())
}

fn check_url(u: &str, required_http: bool) -> Result<(), String> {
    let url = reqwest::Url::parse(u).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
    if required_http && !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{u:?}: only http:// and https:// URLs"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{u:?}: no host"));
    }
    Ok(())
}

fn check_headers(loc: &str, headers: &BTreeMap<String, String>) -> Result<(), Invalid> {
    for (k, v) in headers {
        if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err((
                format!("{loc}.headers"),
                format!("invalid header name {k:?}"),
            ));
        }
        if !v.starts_with("env:") && reqwest::header::HeaderValue::from_str(v).is_err() {
            return Err((
                format!("{loc}.headers.{k}"),
                "invalid header value (control characters?)".into(),
            ));
        }
    }
    Ok(())
}

fn check_http_common(
    loc: &str,
    timeout_secs: u64,
    proxy: Option<&str>,
    ca: &Option<PathBuf>,
) -> Result<(), Invalid> {
    if timeout_secs == 0 {
        return Err((format!("{loc}.timeout_secs"), "must be at least 1".into()));
    }
    if let Some(p) = proxy {
        check_url(p, false).map_err(|m| (format!("{loc}.proxy"), m))?;
    }
    check_ca(loc, ca)
}

fn check_ca(loc: &str, ca: &Option<PathBuf>) -> Result<(), Invalid> {
    if let Some(p) = ca {
        if p.as_os_str().is_empty() {
            return Err((format!("{loc}.ca_cert"), "empty path".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn notify_default_equals_an_empty_section() {
        let empty: NotifyConfig = toml::from_str("").expect("empty section");
        assert_eq!(NotifyConfig::default(), empty);
        assert_eq!(NotifyConfig::default().utc_offset, "+07:00");
    }

    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        notify: NotifyConfig,
    }

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        f.notify
            .check()
            .map_err(|p| simpul_proto::problem::describe(&p))?;
        Ok(f.notify)
    }

    const BASE: &str = r#"
[notify.telegram.noc]
token = "123:abc"
chat_ids = ["-1001"]

[notify.whatsapp.piket]
url = "https://api.fonnte.com/send"
format = "form"
body_template = "target={{phone}}&message={{text}}"
phones = ["08123"]

[notify.email.pimpinan]
host = "mail.example.go.id"
from = "NOC <noc@example.go.id>"
to = ["kadis@example.go.id"]

[notify.webhook.am]
url = "http://127.0.0.1:9093/hook"
"#;

    #[test]
    fn notify_defaults_and_a_valid_config() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.utc_offset, "+07:00");
        assert_eq!(c.telegram["noc"].base_url, "https://api.telegram.org");
        assert_eq!(c.email["pimpinan"].port(), 587);
        assert_eq!(c.delivery.max_attempts, 12);
        let empty: NotifyConfig = toml::from_str("").unwrap();
        empty.check().unwrap();
        assert!(empty.channel_names().is_empty());
    }

    #[test]
    fn notify_config_errors_say_where_and_what() {
        let cases = [
            (
                "[[notify.routes]]\nname = \"malam\"\nchannels = [\"noc\", \"sms\"]\n",
                "notify.routes[0] (malam): unknown channel \"sms\"",
            ),
            (
                "[notify.webhook.x]\nurl = \"not a url\"\n",
                "notify.webhook.x.url: \"not a url\" is not a URL",
            ),
            (
                "[notify.webhook.x]\nurl = \"ftp://h/x\"\n",
                "only http:// and https://",
            ),
            (
                "[notify]\nutc_offset = \"WIB\"\n",
                "notify.utc_offset: \"WIB\" is not a UTC offset like \"+07:00\"",
            ),
            (
                "[[notify.routes]]\nchannels = [\"noc\"]\nwindow = { from = \"07:00\", to = \"16:00\", utc_offset = \"+7\" }\n",
                "notify.routes[0].window: \"+7\" is not a UTC offset",
            ),
            (
                "[[notify.routes]]\nchannels = [\"noc\"]\nwindow = { from = \"7am\" }\n",
                "\"7am\" is not a time of day (HH:MM",
            ),
            (
                "[notify.email.e2]\nhost = \"h\"\nfrom = \"a@b.id\"\nto = []\n",
                "notify.email.e2.to: list at least one recipient",
            ),
            (
                "[notify.whatsapp.w2]\nurl = \"https://g/send\"\nbody_template = \"{\\\"to\\\": \\\"{{phone}}\\\"}\"\nphones = []\n",
                "notify.whatsapp.w2.phones: list at least one phone number",
            ),
            (
                "[notify.whatsapp.w2]\nurl = \"https://g/send\"\nbody_template = \"{\\\"to\\\": {{phone}}}\"\nphones = [\"1\"]\n",
                "is not JSON once placeholders are filled in",
            ),
            (
                "[notify.whatsapp.w2]\nurl = \"https://g/send\"\nbody_template = \"{\\\"m\\\": \\\"{{text}}\\\"}\"\nphones = [\"1\"]\n",
                "neither {{phone}} nor {{phones}}",
            ),
            (
                "[notify.whatsapp.w2]\nurl = \"https://g/send\"\nbody_template = \"{\\\"m\\\": \\\"{{pesan}} {{phone}}\\\"}\"\nphones = [\"1\"]\n",
                "unknown placeholder {{pesan}}",
            ),
            (
                "[notify.telegram.t2]\ntoken = \"x\"\nchat_ids = []\n",
                "notify.telegram.t2: chat_ids",
            ),
            (
                "[notify.webhook.noc]\nurl = \"http://h/x\"\n",
                "also used by notify.telegram.noc",
            ),
            (
                "[notify.email.e2]\nhost = \"h\"\ntls = \"none\"\nfrom = \"a@b.id\"\nto = [\"c@d.id\"]\nusername = \"u\"\npassword = \"p\"\n",
                "clear text",
            ),
            (
                "[notify.email.e2]\nhost = \"h\"\nfrom = \"not an address\"\nto = [\"c@d.id\"]\n",
                "notify.email.e2.from",
            ),
            (
                "[[notify.routes]]\nchannels = [\"noc\"]\nescalation_levels = [1]\n",
                "escalation_levels needs \"escalated\" in states",
            ),
            (
                "[[notify.routes]]\nchannels = [\"noc\"]\nmin_severity = \"urgent\"\n",
                "unknown variant `urgent`",
            ),
            (
                "[notify.delivery]\nretry_initial_ms = 0\n",
                "retry_initial_ms must be > 0",
            ),
        ];
        for (extra, want) in cases {
            let text = format!("{BASE}\n{extra}");
            let e = parse(&text).expect_err(extra);
            assert!(e.contains(want), "{extra}\n→ {e}\nwanted {want}");
        }
    }

    #[test]
    fn notify_offsets_and_times() {
        assert_eq!(parse_offset("+07:00"), Ok(25_200));
        assert_eq!(parse_offset("-03:30"), Ok(-12_600));
        assert_eq!(parse_offset("Z"), Ok(0));
        assert!(parse_offset("+7").is_err());
        assert!(parse_offset("+15:00").is_err());
    }

    /// The commented example in configs/collector.toml, uncommented, is valid.
    #[test]
    fn notify_example_in_collector_toml_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/collector.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text
            .find("# [notify]")
            .expect("configs/collector.toml has a commented [notify] example");
        let mut example = String::new();
        for line in text[start..].lines() {
            // The example ends at the first line that is not a comment.
            let Some(rest) = line.strip_prefix('#') else {
                break;
            };
            // "# key = v" is configuration, "## text" is explanation.
            if rest.starts_with('#') {
                continue;
            }
            example.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            example.push('\n');
        }
        let c = parse(&example).unwrap_or_else(|e| panic!("{e}\n---\n{example}"));
        assert!(!c.routes.is_empty());
        assert_eq!(c.channel_names().len(), 4, "one channel of each type");
    }
}

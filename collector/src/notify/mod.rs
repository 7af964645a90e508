//! Telling people about outages: Telegram, WhatsApp gateways, e-mail and
//! Alertmanager-style webhooks.
//!
//! Why a durable log instead of sending straight from the detector: the
//! detector decides once (a node went down, came back, was escalated) and
//! the collector may restart, a gateway may be down for an hour, a channel may
//! be rate limited during a mass outage. Every message therefore first becomes
//! a row in the `notifications` table of the collector's SQLite file, and a
//! dispatcher sends rows from there. What was sent, what is still waiting and
//! what failed (with the error) stays visible to the NOC.
//!
//! Why the key is `(channel, incident_id, state)`: the detector may enqueue
//! the same transition again (after a restart it re-announces what it
//! believes is open). A duplicate key is a no-op, so re-enqueueing never
//! sends twice, and each channel hears each transition of an incident once.
//!
//! Delivery is **at least once**, deliberately: a missing outage alert costs
//! more than a repeated one. A row is claimed (its attempt counted, its next
//! attempt scheduled) in a committed write *before* the channel call, and
//! marked sent in the write right after the call returns success. A crash or
//! kill between a channel's success and that write (one SQLite commit) makes
//! the next start send that one message again; so does a request that timed
//! out after the receiver had acted on it. Nothing else is ever re-sent:
//! sent, failed and suppressed rows are final, and for channels with several
//! recipients the row records how many already got it (`progress`), so a
//! retry continues with the next recipient.
//!
//! Order per channel and incident is kept (a "resolved" never overtakes its
//! "firing"). A "resolved" arriving while the "firing" on a channel was never
//! attempted (held by the rate limit during a burst, say) suppresses both on
//! that channel: nobody needs to hear about an outage that is already over
//! (`delivery.suppress_unsent_on_resolve`). Resolved and acknowledged go to
//! every channel that was told about the incident, whatever the routes say
//! at that moment (people who were paged at night hear it is over).

mod config;
mod dispatcher;
pub(crate) mod email;
pub(crate) mod http;
mod log;
mod routing;
mod telegram;
pub mod telegram_ack;
#[cfg(test)]
mod tests;
mod webhook;
mod whatsapp;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

pub use config::{
    DeliveryConfig, EmailConfig, EmailTls, NotifyConfig, RouteConfig, StateName, TelegramConfig,
    WebhookConfig, Weekday, WhatsAppConfig, WhatsAppFormat, WindowConfig,
};
pub use dispatcher::ChannelStats;
pub use log::{NotifyLog, PendingRow, SqliteLog};
pub use routing::Router;

/// How bad it is. Ordered: `Critical > Major > Minor > Info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Info,
}

impl Severity {
    fn rank(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Minor => 1,
            Severity::Major => 2,
            Severity::Critical => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
            Severity::Info => "info",
        }
    }

    /// The label people read (Bahasa Indonesia, NOC usage).
    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "KRITIS",
            Severity::Major => "MAYOR",
            Severity::Minor => "MINOR",
            Severity::Info => "INFO",
        }
    }

    /// `critical`, `major`, `minor`, `info`.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "critical" => Severity::Critical,
            "major" => Severity::Major,
            "minor" => Severity::Minor,
            "info" => Severity::Info,
            _ => return None,
        })
    }
}

impl PartialOrd for Severity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Severity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which transition of an incident a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum NotifyState {
    Firing,
    Resolved,
    Escalated { level: u32 },
    Acknowledged,
}

impl NotifyState {
    /// The `state` column: `firing`, `resolved`, `escalated:N`, `acknowledged`.
    pub fn key(&self) -> String {
        match self {
            NotifyState::Escalated { level } => format!("escalated:{level}"),
            other => other.name().as_str().to_string(),
        }
    }

    pub fn name(&self) -> StateName {
        match self {
            NotifyState::Firing => StateName::Firing,
            NotifyState::Resolved => StateName::Resolved,
            NotifyState::Escalated { .. } => StateName::Escalated,
            NotifyState::Acknowledged => StateName::Acknowledged,
        }
    }

    /// The label people read.
    pub fn label(&self) -> String {
        match self {
            NotifyState::Firing => "GANGGUAN".into(),
            NotifyState::Resolved => "PULIH".into(),
            NotifyState::Escalated { level } => format!("ESKALASI {level}"),
            NotifyState::Acknowledged => "DITANGANI".into(),
        }
    }
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// One transition of one incident, as the detector announces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub incident_id: i64,
    pub state: NotifyState,
    pub severity: Severity,
    /// Agency code.
    pub agency: String,
    /// Node id (None for agency-wide alerts).
    pub node: Option<String>,
    /// `node_down`, `group_down`, `flapping`, `allocation_high`,
    /// `agent_health`, `clock_skew`, ...
    pub kind: String,
    /// Bahasa Indonesia, one line.
    pub title: String,
    /// Bahasa Indonesia, a few lines (root cause, affected children, since when).
    pub body: String,
    /// Extra labels for Alertmanager/webhook receivers.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub starts_at_ms: u64,
    pub ends_at_ms: Option<u64>,
}

/// The outage monitor's alerts, as notifications.
impl From<&crate::outage::monitor::Alert> for Notification {
    fn from(a: &crate::outage::monitor::Alert) -> Notification {
        use crate::outage::monitor::AlertState;
        Notification {
            incident_id: a.incident_id,
            state: match a.state {
                AlertState::Firing => NotifyState::Firing,
                AlertState::Resolved => NotifyState::Resolved,
                AlertState::Escalated(level) => NotifyState::Escalated { level },
                AlertState::Acknowledged => NotifyState::Acknowledged,
            },
            // The collector config only allows the four names; anything else
            // is treated as major rather than dropped.
            severity: Severity::parse(&a.severity.to_ascii_lowercase()).unwrap_or(Severity::Major),
            agency: a.agency.clone(),
            node: (!a.node.is_empty()).then(|| a.node.clone()),
            kind: a.kind.clone(),
            title: a.title.clone(),
            body: a.body.clone(),
            labels: a.labels.clone(),
            starts_at_ms: a.starts_at_ms,
            ends_at_ms: a.ends_at_ms,
        }
    }
}

/// Where a log row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting: not yet attempted, held by the rate limit, or retrying.
    Pending,
    Sent,
    /// Gave up (permanent error, too many attempts, too old); see `last_error`.
    Failed,
    /// Deliberately not sent (the incident ended before it could go out).
    Suppressed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Suppressed => "suppressed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "suppressed" => Status::Suppressed,
            _ => return None,
        })
    }
}

/// One row of the notification log, for the API and dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub id: i64,
    pub channel: String,
    pub incident_id: i64,
    /// `firing`, `resolved`, `escalated:N`, `acknowledged`.
    pub state: String,
    pub severity: Severity,
    pub agency: String,
    pub node: Option<String>,
    pub kind: String,
    pub title: String,
    pub status: Status,
    pub attempts: u32,
    /// Recipients of this channel that already got it (multi-recipient channels).
    pub progress: u32,
    pub last_error: Option<String>,
    pub created_ms: u64,
    pub last_attempt_ms: Option<u64>,
    /// When a pending row is due next.
    pub next_attempt_ms: u64,
    pub sent_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notification settings: {0}")]
    Config(String),
    #[error("cannot open the notification log in {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
    #[error("notification log: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("notification log: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot encode notification: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot start the notification dispatcher: {0}")]
    Start(std::io::Error),
}

/// Shared by the [`Notifier`] and its handles.
struct Shared {
    log: Mutex<Box<dyn NotifyLog>>,
    router: Router,
    delivery: DeliveryConfig,
    wake: Arc<tokio::sync::Notify>,
    stats: Arc<Mutex<BTreeMap<String, ChannelStats>>>,
}

/// Enqueue from anywhere (connection tasks, the detector's thread).
#[derive(Clone)]
pub struct NotifyHandle {
    shared: Arc<Shared>,
}

impl NotifyHandle {
    /// See [`Notifier::enqueue`].
    pub fn enqueue(&self, n: &Notification) -> Result<usize, NotifyError> {
        self.enqueue_at(n, now_ms())
    }

    /// [`Self::enqueue`] with routing evaluated at `now_ms` (time windows) —
    /// for tests and replays.
    pub fn enqueue_at(&self, n: &Notification, now_ms: u64) -> Result<usize, NotifyError> {
        let channels = self.shared.router.channels_for(n, now_ms);
        let new = {
            let mut log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
            log.enqueue(
                n,
                &channels,
                &|c| self.shared.router.has_channel(c),
                // Row times are real times, whatever clock routing used.
                self::now_ms(),
                self.shared.delivery.suppress_unsent_on_resolve,
            )?
        };
        if new > 0 {
            self.shared.wake.notify_one();
        }
        tracing::debug!(incident = n.incident_id, state = %n.state, ?channels, new, "notification enqueued");
        Ok(new)
    }

    /// The outage monitor's [`AlertSink`](crate::outage::monitor::AlertSink):
    /// every alert becomes a durable log row before the monitor marks its
    /// incident notified (a duplicate is fine: it is a no-op).
    pub fn alert_sink(&self) -> crate::outage::monitor::AlertSink {
        let h = self.clone();
        Arc::new(move |a: &crate::outage::monitor::Alert| {
            h.enqueue(&Notification::from(a))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    /// The newest `limit` log rows, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<LogEntry>, NotifyError> {
        let log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.recent(limit, None)
    }

    /// Every log row of one incident, oldest first (the incident record).
    pub fn for_incident(&self, incident_id: i64) -> Result<Vec<LogEntry>, NotifyError> {
        let log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.recent(usize::MAX, Some(incident_id))
    }

    /// Rows per status (`pending`, `sent`, `failed`, `suppressed`).
    pub fn counts(&self) -> Result<BTreeMap<Status, u64>, NotifyError> {
        let log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.counts()
    }

    /// What the dispatcher did per channel since start (sent, retries,
    /// failed, held by the rate limit).
    pub fn stats(&self) -> BTreeMap<String, ChannelStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Ord for Status {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Status {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The running notification component: the log and its dispatcher thread.
pub struct Notifier {
    handle: NotifyHandle,
    shutdown: Arc<dispatcher::Shutdown>,
    thread: Option<JoinHandle<()>>,
}

impl Notifier {
    /// Open/create the log tables in the SQLite file at `db_path` (its own
    /// connections, WAL, busy timeout; the collector's ingest writer uses the
    /// same file) and start the dispatcher on its own thread. Secrets written
    /// as `env:NAME` are read from the environment here.
    pub fn start(cfg: NotifyConfig, db_path: &Path) -> Result<Notifier, NotifyError> {
        Self::start_on(cfg, || {
            Ok(Box::new(log::SqliteLog::open(db_path)?) as Box<dyn NotifyLog>)
        })
    }

    /// [`Self::start`] on the log `open` gives (called twice: one log for
    /// enqueueing, one for the dispatcher), e.g. the control store's
    /// ([`crate::store::ControlStore::notification_log`]).
    pub fn start_on(
        cfg: NotifyConfig,
        open: impl Fn() -> Result<Box<dyn NotifyLog>, NotifyError>,
    ) -> Result<Notifier, NotifyError> {
        cfg.check()
            .map_err(|problems| NotifyError::Config(simpul_proto::problem::describe(&problems)))?;
        let router = Router::new(&cfg)
            .map_err(|(location, message)| NotifyError::Config(format!("{location}: {message}")))?;
        let channels = dispatcher::build_channels(&cfg)?;
        let enqueue_log = open()?;
        let dispatch_log = open()?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let stats = Arc::new(Mutex::new(
            channels
                .keys()
                .map(|name| (name.clone(), ChannelStats::default()))
                .collect(),
        ));
        let shutdown = Arc::new(dispatcher::Shutdown::default());
        let pending = dispatch_log.count_pending()?;
        if pending > 0 {
            tracing::info!(
                pending,
                "notifications pending from a previous run will be sent"
            );
        }
        let dispatcher = dispatcher::Dispatcher::new(
            dispatch_log,
            channels,
            &cfg,
            wake.clone(),
            shutdown.clone(),
            stats.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || dispatcher.run())
            .map_err(NotifyError::Start)?;
        Ok(Notifier {
            handle: NotifyHandle {
                shared: Arc::new(Shared {
                    log: Mutex::new(enqueue_log),
                    router,
                    delivery: cfg.delivery,
                    wake,
                    stats,
                }),
            },
            shutdown,
            thread: Some(thread),
        })
    }

    /// Durable: routes `n` to channels and writes one log row per
    /// (channel, incident_id, state); a duplicate key is a no-op. Returns how
    /// many rows were new. Blocking (one SQLite commit): call it from a
    /// blocking context or `spawn_blocking` in hot async paths.
    pub fn enqueue(&self, n: &Notification) -> Result<usize, NotifyError> {
        self.handle.enqueue(n)
    }

    /// See [`NotifyHandle::enqueue_at`].
    pub fn enqueue_at(&self, n: &Notification, now_ms: u64) -> Result<usize, NotifyError> {
        self.handle.enqueue_at(n, now_ms)
    }

    pub fn handle(&self) -> NotifyHandle {
        self.handle.clone()
    }

    /// The newest `limit` log rows, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<LogEntry>, NotifyError> {
        self.handle.recent(limit)
    }

    /// Every log row of one incident, oldest first.
    pub fn for_incident(&self, incident_id: i64) -> Result<Vec<LogEntry>, NotifyError> {
        self.handle.for_incident(incident_id)
    }

    pub fn stats(&self) -> BTreeMap<String, ChannelStats> {
        self.handle.stats()
    }

    /// Stop claiming rows, give sends in flight `delivery.stop_grace_ms` to
    /// finish, then end the dispatcher thread. Pending rows stay in the log
    /// for the next start. Blocks up to the grace period: from async code
    /// call it in `spawn_blocking`.
    pub fn stop(mut self) {
        self.shutdown_and_join();
    }

    fn shutdown_and_join(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("notification dispatcher panicked");
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // Dropped without stop(): end the thread all the same.
        self.shutdown_and_join();
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Read `env:NAME` secrets from the environment; other values are literal.
pub(crate) fn secret(value: &str, location: &str) -> Result<String, NotifyError> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            NotifyError::Config(format!(
                "{location}: environment variable {name} is not set (value \"env:{name}\")"
            ))
        }),
        None => Ok(value.to_string()),
    }
}

/// Text shared by the channels: what people read.
pub(crate) struct Rendered {
    /// `[KRITIS] GANGGUAN: <title>`
    pub headline: String,
    /// Lines after the headline: body, where/when, dashboard link.
    pub details: String,
}

impl Rendered {
    pub fn new(n: &Notification, utc_offset_secs: i32, dashboard_url: Option<&str>) -> Rendered {
        // The state word goes first unless the title already says it
        // ("PULIH: dinkes-01", "Eskalasi 1: PADAM: ...").
        let title = n.title.to_uppercase();
        let said: &[&str] = match n.state {
            NotifyState::Firing => &["GANGGUAN", "PADAM", "TIDAK STABIL"],
            NotifyState::Resolved => &["PULIH"],
            NotifyState::Escalated { .. } => &["ESKALASI"],
            NotifyState::Acknowledged => &["DITANGANI"],
        };
        let headline = if said.iter().any(|w| title.contains(w)) {
            format!("[{}] {}", n.severity.label(), n.title)
        } else {
            format!("[{}] {}: {}", n.severity.label(), n.state.label(), n.title)
        };
        let mut d = String::new();
        if !n.body.trim().is_empty() {
            d.push_str(n.body.trim_end());
            d.push_str("\n\n");
        }
        d.push_str(&format!("Instansi: {}", n.agency));
        if let Some(node) = &n.node {
            d.push_str(&format!(" · Node: {node}"));
        }
        d.push('\n');
        d.push_str(&format!(
            "Mulai: {}",
            local_time(n.starts_at_ms, utc_offset_secs)
        ));
        if let Some(end) = n.ends_at_ms {
            d.push_str(&format!(" · Selesai: {}", local_time(end, utc_offset_secs)));
        }
        d.push('\n');
        d.push_str(&format!("Insiden #{} ({})", n.incident_id, n.kind));
        if let Some(url) = dashboard_url {
            d.push_str(&format!("\nDasbor: {url}"));
        }
        Rendered {
            headline,
            details: d,
        }
    }

    pub fn plain(&self) -> String {
        format!("{}\n\n{}", self.headline, self.details)
    }
}

/// `2024-05-01 14:03:05 WIB` style: local time at the configured offset.
pub(crate) fn local_time(ms: u64, offset_secs: i32) -> String {
    let Ok(offset) = time::UtcOffset::from_whole_seconds(offset_secs) else {
        return ms.to_string();
    };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let t = t.to_offset(offset);
    let zone = match offset_secs {
        25_200 => "WIB".to_string(),
        28_800 => "WITA".to_string(),
        32_400 => "WIT".to_string(),
        s => {
            let sign = if s < 0 { '-' } else { '+' };
            let a = s.unsigned_abs();
            format!("UTC{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
        }
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// RFC 3339 in UTC with milliseconds, as Alertmanager writes times.
pub(crate) fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Cut `s` to at most `max` characters (not bytes), marking the cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

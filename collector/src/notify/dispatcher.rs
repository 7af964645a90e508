//! The dispatcher: one thread with its own small tokio runtime, sending
//! pending log rows oldest first. One send at a time per channel (keeps a
//! channel's messages in order and its rate limit simple); channels run side
//! by side, so a slow SMTP server does not hold up Telegram.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rand::Rng;
use serde::Serialize;
use tokio::task::JoinSet;

use super::config::{parse_offset, DeliveryConfig, NotifyConfig};
use super::email::Email;
use super::http::SendError;
use super::log::NotifyLog;
use super::telegram::Telegram;
use super::webhook::Webhook;
use super::whatsapp::WhatsApp;
use super::{now_ms, Notification, NotifyError, Rendered};

/// Pending rows looked at per pass (oldest first).
const PENDING_SCAN: usize = 1000;
const PRUNE_EVERY_MS: u64 = 3600 * 1000;

/// What the dispatcher did for one channel since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelStats {
    pub sent: u64,
    /// Failed attempts that will be retried.
    pub retries: u64,
    /// Rows given up on.
    pub failed: u64,
    /// Rows held back by the channel's rate limit (each row counted once).
    pub rate_limited: u64,
}

pub(crate) enum Channel {
    Telegram(Telegram),
    WhatsApp(WhatsApp),
    Email(Email),
    Webhook(Webhook),
}

impl Channel {
    /// Send to the recipients after the first `progress`; returns the new
    /// progress.
    async fn send(&self, n: &Notification, r: &Rendered, progress: u32) -> Result<u32, SendError> {
        match self {
            Channel::Telegram(c) => c.send(n, r, progress).await,
            Channel::WhatsApp(c) => c.send(n, r, progress).await,
            Channel::Email(c) => c.send(n, r, progress).await,
            Channel::Webhook(c) => c.send(n, r, progress).await,
        }
    }
}

pub(crate) struct Slot {
    channel: Arc<Channel>,
    /// 0: unlimited.
    rate: u32,
    /// Start times of the sends in the current rate window.
    recent: VecDeque<u64>,
    busy: bool,
}

impl Slot {
    /// When the channel may send again, if it may not now.
    fn limited(&mut self, now: u64, window: u64) -> Option<u64> {
        if self.rate == 0 {
            return None;
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| t.saturating_add(window) <= now)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.rate as usize {
            self.recent.front().map(|&t| t + window)
        } else {
            None
        }
    }
}

/// Build every configured channel (reads `env:` secrets and CA files).
pub(crate) fn build_channels(cfg: &NotifyConfig) -> Result<BTreeMap<String, Slot>, NotifyError> {
    let mut out = BTreeMap::new();
    let mut add = |name: &str, channel: Channel, rate: u32| {
        out.insert(
            name.to_string(),
            Slot {
                channel: Arc::new(channel),
                rate,
                recent: VecDeque::new(),
                busy: false,
            },
        );
    };
    for (name, c) in &cfg.telegram {
        add(
            name,
            Channel::Telegram(Telegram::new(name, c)?),
            c.rate_per_minute,
        );
    }
    for (name, c) in &cfg.whatsapp {
        add(
            name,
            Channel::WhatsApp(WhatsApp::new(name, c)?),
            c.rate_per_minute,
        );
    }
    for (name, c) in &cfg.email {
        add(
            name,
            Channel::Email(Email::new(name, c)?),
            c.rate_per_minute,
        );
    }
    for (name, c) in &cfg.webhook {
        let w = Webhook::new(name, c, cfg.dashboard_url.as_deref())?;
        add(name, Channel::Webhook(w), c.rate_per_minute);
    }
    Ok(out)
}

/// Tells the dispatcher to stop.
#[derive(Default)]
pub(crate) struct Shutdown {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    async fn wait(&self) {
        while !self.is_set() {
            self.notify.notified().await;
        }
    }
}

/// A finished send.
struct Done {
    id: i64,
    channel: String,
    incident_id: i64,
    state: String,
    attempt: u32,
    created_ms: u64,
    result: Result<u32, SendError>,
}

pub(crate) struct Dispatcher {
    log: Box<dyn NotifyLog>,
    channels: BTreeMap<String, Slot>,
    delivery: DeliveryConfig,
    offset_secs: i32,
    dashboard_url: Option<Arc<str>>,
    wake: Arc<tokio::sync::Notify>,
    shutdown: Arc<Shutdown>,
    stats: Arc<Mutex<BTreeMap<String, ChannelStats>>>,
    /// Rows already counted as held by a rate limit.
    held: HashSet<i64>,
    in_flight: HashSet<i64>,
}

impl Dispatcher {
    pub fn new(
        log: Box<dyn NotifyLog>,
        channels: BTreeMap<String, Slot>,
        cfg: &NotifyConfig,
        wake: Arc<tokio::sync::Notify>,
        shutdown: Arc<Shutdown>,
        stats: Arc<Mutex<BTreeMap<String, ChannelStats>>>,
    ) -> Dispatcher {
        Dispatcher {
            log,
            channels,
            delivery: cfg.delivery.clone(),
            offset_secs: parse_offset(&cfg.utc_offset).unwrap_or(7 * 3600),
            dashboard_url: cfg.dashboard_url.as_deref().map(Arc::from),
            wake,
            shutdown,
            stats,
            held: HashSet::new(),
            in_flight: HashSet::new(),
        }
    }

    /// The thread's body.
    pub fn run(mut self) {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(self.main()),
            Err(e) => {
                tracing::error!(error = %e, "notification dispatcher cannot start its runtime; nothing will be sent")
            }
        }
    }

    async fn main(&mut self) {
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut last_prune = 0u64;
        let poll = self.delivery.poll_ms.max(1);
        loop {
            if self.shutdown.is_set() {
                break;
            }
            let now = now_ms();
            if now.saturating_sub(last_prune) >= PRUNE_EVERY_MS {
                self.prune(now);
                last_prune = now;
            }
            let next = match self.dispatch(now, &mut tasks) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "notification log unreadable; retrying");
                    now + poll
                }
            };
            let wait = Duration::from_millis(next.saturating_sub(now).clamp(1, poll));
            tokio::select! {
                _ = self.shutdown.wait() => break,
                _ = self.wake.notified() => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(done) = done {
                        self.finish(done);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Let sends in flight finish (their rows are claimed: one cut off
        // here goes again after its backoff at the next start).
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.delivery.stop_grace_ms);
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(Ok(done))) => self.finish(done),
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        in_flight = tasks.len(),
                        "notification sends cut off by stop; they go again at the next start"
                    );
                    tasks.abort_all();
                    break;
                }
            }
        }
    }

    fn prune(&mut self, now: u64) {
        let days = u64::from(self.delivery.log_retention_days);
        if days == 0 {
            return;
        }
        match self.log.prune(now.saturating_sub(days * 86_400_000)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "old notification log rows deleted"),
            Err(e) => tracing::warn!(error = %e, "notification log pruning failed"),
        }
    }

    fn stat(&self, channel: &str, f: impl FnOnce(&mut ChannelStats)) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(s.entry(channel.to_string()).or_default());
    }

    /// Exponential backoff with jitter: between half and all of
    /// `initial * 2^(attempt-1)`, capped.
    fn backoff(&self, attempt: u32) -> u64 {
        let exp = attempt.saturating_sub(1).min(32);
        let d = self
            .delivery
            .retry_initial_ms
            .saturating_mul(1u64 << exp)
            .min(self.delivery.retry_max_ms);
        d / 2 + rand::thread_rng().gen_range(0..=d / 2)
    }

    fn give_up(&mut self, id: i64, channel: &str, message: String, progress: u32) {
        tracing::error!(channel, row = id, error = %message, "notification failed; giving up");
        metrics::counter!("simpul_notify_failed_total", "channel" => channel.to_string())
            .increment(1);
        self.stat(channel, |s| s.failed += 1);
        if let Err(e) = self.log.mark_failed(id, &message, progress) {
            tracing::error!(error = %e, row = id, "cannot record a failed notification");
        }
    }

    /// Start every send that may go now; returns when to look again.
    fn dispatch(&mut self, now: u64, tasks: &mut JoinSet<Done>) -> Result<u64, NotifyError> {
        let rows = self.log.pending(PENDING_SCAN)?;
        let mut next = now + self.delivery.poll_ms;
        let mut seen: HashSet<(String, i64)> = HashSet::new();
        let give_up_ms = self.delivery.give_up_after_secs.saturating_mul(1000);
        let window = self.delivery.rate_window_ms;
        for row in rows {
            // An older row of the same incident on this channel is still
            // pending: it goes first.
            if !seen.insert((row.channel.clone(), row.incident_id)) {
                continue;
            }
            if self.in_flight.contains(&row.id) {
                continue;
            }
            let Some(slot) = self.channels.get_mut(&row.channel) else {
                let msg = format!("channel {:?} is no longer configured", row.channel);
                self.give_up(row.id, &row.channel, msg, row.progress);
                continue;
            };
            if slot.busy {
                continue;
            }
            if row.next_attempt_ms > now {
                next = next.min(row.next_attempt_ms);
                continue;
            }
            let last = row
                .last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            if now.saturating_sub(row.created_ms) >= give_up_ms {
                let msg = format!(
                    "not delivered within {} s after {} attempts{last}",
                    self.delivery.give_up_after_secs, row.attempts
                );
                self.give_up(row.id, &row.channel, msg, row.progress);
                continue;
            }
            if row.attempts >= self.delivery.max_attempts {
                let msg = format!("gave up after {} attempts{last}", row.attempts);
                self.give_up(row.id, &row.channel, msg, row.progress);
                continue;
            }
            let slot = self.channels.get_mut(&row.channel).expect("checked above");
            if let Some(free_at) = slot.limited(now, window) {
                next = next.min(free_at);
                if self.held.insert(row.id) {
                    tracing::info!(channel = %row.channel, incident = row.incident_id, state = %row.state, "notification held by the channel's rate limit");
                    metrics::counter!("simpul_notify_rate_limited_total", "channel" => row.channel.clone()).increment(1);
                    self.stat(&row.channel, |s| s.rate_limited += 1);
                }
                continue;
            }
            let n: Notification = match serde_json::from_str(&row.payload) {
                Ok(n) => n,
                Err(e) => {
                    let msg = format!("unreadable payload: {e}");
                    self.give_up(row.id, &row.channel, msg, row.progress);
                    continue;
                }
            };
            let attempt = row.attempts + 1;
            // If this process dies during the call, the row goes again then.
            let retry_at = now + self.backoff(attempt);
            if !self.log.claim(row.id, row.attempts, now, retry_at)? {
                continue;
            }
            let slot = self.channels.get_mut(&row.channel).expect("checked above");
            slot.recent.push_back(now);
            slot.busy = true;
            let channel = slot.channel.clone();
            self.held.remove(&row.id);
            self.in_flight.insert(row.id);
            let offset = self.offset_secs;
            let url = self.dashboard_url.clone();
            let progress = row.progress;
            tracing::debug!(channel = %row.channel, incident = row.incident_id, state = %row.state, attempt, "sending notification");
            tasks.spawn(async move {
                let rendered = Rendered::new(&n, offset, url.as_deref());
                let result = AssertUnwindSafe(channel.send(&n, &rendered, progress))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(SendError::retry("channel code panicked", progress)));
                Done {
                    id: row.id,
                    channel: row.channel,
                    incident_id: row.incident_id,
                    state: row.state,
                    attempt,
                    created_ms: row.created_ms,
                    result,
                }
            });
        }
        Ok(next)
    }

    /// Record how a send ended.
    fn finish(&mut self, d: Done) {
        self.in_flight.remove(&d.id);
        if let Some(slot) = self.channels.get_mut(&d.channel) {
            slot.busy = false;
        }
        let now = now_ms();
        match d.result {
            Ok(progress) => {
                if let Err(e) = self.log.mark_sent(d.id, now, progress) {
                    // The message went out; the row stays pending and will be
                    // sent again (at least once).
                    tracing::error!(error = %e, row = d.id, "cannot record a sent notification");
                    return;
                }
                tracing::info!(channel = %d.channel, incident = d.incident_id, state = %d.state, attempt = d.attempt, "notification sent");
                metrics::counter!("simpul_notify_sent_total", "channel" => d.channel.clone())
                    .increment(1);
                self.stat(&d.channel, |s| s.sent += 1);
            }
            Err(e) => {
                let too_old = now.saturating_sub(d.created_ms)
                    >= self.delivery.give_up_after_secs.saturating_mul(1000);
                if e.permanent {
                    self.give_up(d.id, &d.channel, e.message, e.progress);
                } else if d.attempt >= self.delivery.max_attempts || too_old {
                    let msg = format!("{} (gave up after {} attempts)", e.message, d.attempt);
                    self.give_up(d.id, &d.channel, msg, e.progress);
                } else {
                    let mut delay = self.backoff(d.attempt);
                    if let Some(after) = e.retry_after {
                        delay = delay.max(after.as_millis() as u64);
                    }
                    tracing::warn!(channel = %d.channel, incident = d.incident_id, state = %d.state, attempt = d.attempt, retry_in_ms = delay, error = %e.message, "notification not delivered; will retry");
                    metrics::counter!("simpul_notify_retries_total", "channel" => d.channel.clone())
                        .increment(1);
                    self.stat(&d.channel, |s| s.retries += 1);
                    if let Err(err) = self
                        .log
                        .mark_retry(d.id, now + delay, &e.message, e.progress)
                    {
                        tracing::error!(error = %err, row = d.id, "cannot record a notification retry");
                    }
                }
            }
        }
    }
}

//! The network side of the link: one tokio task on its own thread that keeps a
//! WebSocket to the collector, enrolls or says hello, streams spooled batches
//! with a bounded window of unacknowledged ones, sends heartbeats, deletes
//! batches on ack, and reconnects with exponential backoff and jitter.
//!
//! Every connection starts from the oldest spooled batch: whatever was in
//! flight when a link died is re-sent, and the collector drops batches it
//! already committed. That, not this side, makes delivery exactly-once.
//!
//! # Several collectors
//! With more than one address (`[collector] urls`) every failure of a
//! session — connect, TLS, refusal, a dropped link, a missing reply or ack —
//! moves the next attempt to the next address (after the last, the first),
//! with the same backoff as a reconnect to one collector. The agent then
//! stays on the collector that works: it does not go back to the first on
//! its own. The collectors share one store (one at a time on SQLite, all at
//! once on PostgreSQL and ClickHouse), so any of them is as good as another
//! for the records; going back would only cost a reconnect, a re-sent window
//! and, while the first is still down, a failed attempt every time it is
//! tried — and a first collector that comes back is reached anyway at the
//! next failure, since the list wraps around. The same spool is re-sent to
//! whichever collector answers, and the store's (node, boot, seq) dedup
//! keeps it exactly once.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use simpul_proto::wire::{
    self, AgentMessage, CollectorLink, CollectorMessage, Enroll, Heartbeat, Hello, WireError,
};

use super::FromCollector;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Bytes, Message};
use tokio_tungstenite::WebSocketStream;

use super::health::CpuMeter;
use super::spool::{BatchId, SpoolError};
use super::LinkOptions;
use super::{LinkError, Shared};
use crate::config::{CollectorConfig, CollectorUrl};

/// Unacknowledged batches in flight at most.
pub const WINDOW: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Enrolled/Welcome must come this fast after Enroll/Hello.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// A batch not acknowledged for this long means the collector lost it or the
/// link is silently dead: reconnect and re-send.
const ACK_TIMEOUT: Duration = Duration::from_secs(120);
/// One frame must be written within this; a send stuck on a full TCP buffer
/// of a half-dead link would otherwise never return.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Closing politely is not worth waiting for.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_millis(simpul_proto::wire::RECONNECT_BACKOFF_MAX_MS);
/// After a refusal, retry no faster than this: a refusal is a decision, not
/// a glitch, and repeating it at 2 Hz only floods the collector's log.
const REFUSED_BACKOFF: Duration = Duration::from_secs(5);
/// A connection that lived this long was healthy: start backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Ws = WebSocketStream<Box<dyn Io>>;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect to {addr}: {cause}")]
    Connect { addr: String, cause: io::Error },
    #[error("TLS handshake with {host} failed: {cause}")]
    Tls { host: String, cause: io::Error },
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("WebSocket handshake failed: {0}")]
    Handshake(tungstenite::Error),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("WebSocket error: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("collector refused: {0}")]
    Refused(String),
    #[error("malformed collector message: {0}")]
    Malformed(WireError),
    #[error("unexpected collector message: {0}")]
    Unexpected(String),
    #[error("the collector closed the connection")]
    Closed,
    #[error("no credential in {path} and no collector.enroll_token to enroll with")]
    NoCredential { path: PathBuf },
    #[error("cannot store the credential in {path}: {cause}")]
    StoreCredential { path: PathBuf, cause: io::Error },
}

/// How a session ended without error.
enum SessionEnd {
    /// Enrollment done: reconnect at once with Hello.
    Enrolled,
    /// Stopping, and everything that could be sent is acknowledged.
    Drained,
}

pub(crate) struct ClientCtx {
    pub shared: Arc<Shared>,
    pub cfg: CollectorConfig,
    pub node_id: String,
    pub state_dir: PathBuf,
    pub options: LinkOptions,
    /// The collector addresses, most preferred first (at least one).
    pub urls: Vec<CollectorUrl>,
    /// Index in `urls` of the address tried next, and in use while a
    /// session lives.
    pub current: usize,
    /// Index of the address that last welcomed this agent.
    pub on: Option<usize>,
    /// Times a Welcome came from another address than the previous one.
    pub failovers: u64,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Some(deadline) once [`super::Uplink::stop`] asked to flush and stop.
    pub stop: watch::Receiver<Option<Instant>>,
    pub hostname: String,
}

impl ClientCtx {
    fn credential_path(&self) -> PathBuf {
        self.state_dir.join("credential")
    }

    /// Hand a message to the agent (dropped with a log line when nobody listens).
    fn deliver(&self, msg: FromCollector) {
        match &self.options.inbox {
            Some(tx) => {
                if tx.send(msg).is_err() {
                    tracing::debug!("the agent stopped listening to the collector");
                }
            }
            None => tracing::debug!(?msg, "collector message not used by this agent"),
        }
    }

    fn stopping(&self) -> Option<Instant> {
        *self.stop.borrow()
    }

    /// The address of the current (or next) attempt.
    fn url(&self) -> &CollectorUrl {
        // `current` only ever comes from `next_address`, below the length.
        &self.urls[self.current.min(self.urls.len().saturating_sub(1))]
    }

    /// After a failed session: the next attempt goes to the next address.
    fn next_address(&mut self) {
        if self.urls.len() > 1 {
            let from = self.url().to_url();
            self.current = (self.current + 1) % self.urls.len();
            tracing::warn!(from = %from, to = %self.url().to_url(),
                "trying the next collector address");
        }
    }

    /// A Welcome from the current address: count a move to another one.
    fn welcomed_here(&mut self) {
        match self.on {
            Some(prev) if prev != self.current => {
                self.failovers += 1;
                tracing::warn!(collector = %self.url().to_url(),
                    previous = %self.urls.get(prev).map(CollectorUrl::to_url).unwrap_or_default(),
                    failovers = self.failovers, "failed over to another collector");
            }
            _ => {}
        }
        self.on = Some(self.current);
    }

    /// Which collector the link is on, for the heartbeat's health.
    fn link_health(&self) -> CollectorLink {
        CollectorLink {
            url: self.url().to_url(),
            index: self.current as u32,
            failovers: self.failovers,
        }
    }
}

/// Build the TLS client config trusting only the CA certificates in `path`.
pub(crate) fn tls_config(path: &Path) -> Result<Arc<rustls::ClientConfig>, LinkError> {
    let bad = |message: String| LinkError::CaCert {
        path: path.to_owned(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    // The ring provider explicitly: the process default may be unset, or be
    // another one if this runs inside the collector's process.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// What `state_dir/credential` holds.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCredential {
    node_id: String,
    credential: String,
    agency: String,
}

fn load_credential(path: &Path, node_id: &str) -> Option<StoredCredential> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot read the stored credential");
            return None;
        }
    };
    match serde_json::from_str::<StoredCredential>(&text) {
        Ok(c) if c.node_id == node_id => Some(c),
        Ok(c) => {
            tracing::warn!(file = %path.display(), stored = %c.node_id, configured = %node_id,
                "stored credential belongs to another node id; enrolling again");
            None
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "stored credential is unreadable; enrolling again");
            None
        }
    }
}

/// Write the credential durably, readable by the agent's user only.
fn store_credential(path: &Path, cred: &StoredCredential) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(cred).map_err(io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Exponential backoff with ±25 % jitter, so agents that lost the collector
/// together do not all come back in the same instant.
struct Backoff {
    next: Duration,
    rng: u64,
}

impl Backoff {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        Self {
            next: BACKOFF_MIN,
            rng: seed | 1,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    fn at_least(&mut self, d: Duration) {
        self.next = self.next.max(d);
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let factor = 0.75 + (self.rng % 1000) as f64 / 2000.0;
        base.mul_f64(factor)
    }
}

/// The connection loop; returns when stopped (drained or past the deadline).
pub(crate) async fn run(mut ctx: ClientCtx) {
    let mut backoff = Backoff::new();
    let mut cpu = CpuMeter::new();
    loop {
        if let Some(deadline) = ctx.stopping() {
            if Instant::now() >= deadline || nothing_to_send(&ctx) {
                break;
            }
        }
        let began = Instant::now();
        let mut stop = ctx.stop.clone();
        let result = tokio::select! {
            r = session(&mut ctx, &mut cpu) => r,
            () = deadline_passed(&mut stop) => break,
        };
        match result {
            Ok(SessionEnd::Enrolled) => {
                backoff.reset();
                continue;
            }
            Ok(SessionEnd::Drained) => break,
            Err(SessionError::Refused(reason)) => {
                tracing::error!(collector = %ctx.url().to_url(), node_id = %ctx.node_id, %reason,
                    "collector refused this agent; retrying later");
                backoff.at_least(REFUSED_BACKOFF);
                ctx.next_address();
            }
            Err(e @ SessionError::NoCredential { .. }) => {
                tracing::error!(error = %e, "cannot authenticate to the collector");
                backoff.at_least(BACKOFF_MAX);
            }
            Err(e) => {
                tracing::warn!(collector = %ctx.url().to_url(), error = %e, "collector link down; reconnecting");
                ctx.next_address();
            }
        }
        if began.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::debug!(?delay, "waiting before reconnecting");
        let was_stopping = ctx.stopping().is_some();
        let (mut stop, mut stop2) = (ctx.stop.clone(), ctx.stop.clone());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = deadline_passed(&mut stop) => break,
            // A stop cuts the wait short: one more try to deliver the rest.
            () = stop_requested(&mut stop2), if !was_stopping => {}
        }
    }
}

/// Stopping and everything sealed is acknowledged (or nothing can be sent).
fn nothing_to_send(ctx: &ClientCtx) -> bool {
    ctx.shared.writer_done() && ctx.shared.lock_spool().is_empty()
}

/// Resolves once a stop is requested (or the Uplink is gone).
async fn stop_requested(stop: &mut watch::Receiver<Option<Instant>>) {
    loop {
        if stop.borrow_and_update().is_some() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves when a stop deadline is set and has passed (or the Uplink is gone).
async fn deadline_passed(stop: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let d = *stop.borrow_and_update();
        if let Some(d) = d {
            tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn session(ctx: &mut ClientCtx, cpu: &mut CpuMeter) -> Result<SessionEnd, SessionError> {
    let json = ctx.cfg.json_debug;
    let cred_path = ctx.credential_path();
    let cred = load_credential(&cred_path, &ctx.node_id);
    if cred.is_none() && ctx.cfg.enroll_token.is_none() {
        // Checked before connecting: there would be nothing to say.
        return Err(SessionError::NoCredential { path: cred_path });
    }
    let mut ws = connect(ctx).await?;
    let Some(cred) = cred else {
        let token = ctx.cfg.enroll_token.clone().unwrap_or_default();
        let enroll = AgentMessage::Enroll(Enroll {
            node_id: ctx.node_id.clone(),
            token,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            hostname: ctx.hostname.clone(),
        });
        send(&mut ws, to_message(&enroll, json)).await?;
        return match first_reply(&mut ws, "enrollment reply").await? {
            CollectorMessage::Enrolled {
                node_id,
                credential,
                agency,
                policy_key,
            } => {
                if node_id != ctx.node_id {
                    tracing::warn!(sent = %ctx.node_id, got = %node_id, "collector enrolled another node id than asked");
                }
                let stored = StoredCredential {
                    node_id: ctx.node_id.clone(),
                    credential,
                    agency: agency.clone(),
                };
                store_credential(&cred_path, &stored).map_err(|cause| {
                    SessionError::StoreCredential {
                        path: cred_path.clone(),
                        cause,
                    }
                })?;
                tracing::info!(node_id = %ctx.node_id, %agency, file = %cred_path.display(), "enrolled; credential stored");
                ctx.deliver(FromCollector::PolicyKey(policy_key));
                // Each connection opens with exactly one of Enroll/Hello; the
                // next one is a plain Hello with the new credential.
                close(&mut ws).await;
                Ok(SessionEnd::Enrolled)
            }
            CollectorMessage::Refused { reason } => Err(SessionError::Refused(reason)),
            other => Err(SessionError::Unexpected(format!(
                "{other:?} in reply to Enroll"
            ))),
        };
    };
    let (inventory_version, policy_version) = ctx.shared.control.versions();
    let hello = AgentMessage::Hello(Hello {
        node_id: ctx.node_id.clone(),
        credential: cred.credential,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        hostname: ctx.hostname.clone(),
        boot_epoch: ctx.shared.boot_epoch,
        protocols: vec![wire::PROTOCOL_VERSION],
        features: ctx.options.features.clone(),
        inventory_version,
        policy_version,
    });
    send(&mut ws, to_message(&hello, json)).await?;
    let heartbeat = match first_reply(&mut ws, "Welcome").await? {
        CollectorMessage::Welcome {
            heartbeat_interval_ms,
            agency,
            protocol,
            policy_key,
            features,
            ..
        } => {
            if protocol != wire::PROTOCOL_VERSION {
                return Err(SessionError::Unexpected(format!(
                    "the collector picked protocol {protocol}; this agent speaks {}",
                    wire::PROTOCOL_VERSION
                )));
            }
            tracing::info!(collector = %ctx.url().to_url(), index = ctx.current, node_id = %ctx.node_id, %agency, "connected to the collector");
            ctx.welcomed_here();
            ctx.deliver(FromCollector::PolicyKey(policy_key));
            ctx.shared.control.welcomed(features);
            // The collector's interval wins: its liveness timeout is built on it.
            if heartbeat_interval_ms > 0 {
                Duration::from_millis(heartbeat_interval_ms.clamp(100, 300_000))
            } else {
                Duration::from_millis(ctx.cfg.heartbeat_interval_ms)
            }
        }
        CollectorMessage::Refused { reason } => return Err(SessionError::Refused(reason)),
        other => {
            return Err(SessionError::Unexpected(format!(
                "{other:?} in reply to Hello"
            )))
        }
    };
    stream(&mut ws, ctx, heartbeat, cpu).await
}

async fn connect(ctx: &ClientCtx) -> Result<Ws, SessionError> {
    let url = ctx.url();
    let addr = format!("{}:{}", url.host, url.port);
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| SessionError::Timeout("TCP connect"))?
    .map_err(|cause| SessionError::Connect {
        addr: addr.clone(),
        cause,
    })?;
    // Small frames (heartbeats, acks) must not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match &ctx.tls {
        None => Box::new(tcp),
        Some(tls) => {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|_| SessionError::ServerName(url.host.clone()))?;
            let tls = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| SessionError::Timeout("TLS handshake"))?
            .map_err(|cause| SessionError::Tls {
                host: url.host.clone(),
                cause,
            })?;
            Box::new(tls)
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(wire::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(wire::MAX_MESSAGE_BYTES));
    let (ws, _response) = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::client_async_with_config(url.to_url(), io, Some(config)),
    )
    .await
    .map_err(|_| SessionError::Timeout("WebSocket handshake"))?
    .map_err(SessionError::Handshake)?;
    Ok(ws)
}

async fn send(ws: &mut Ws, msg: Message) -> Result<(), SessionError> {
    tokio::time::timeout(SEND_TIMEOUT, ws.send(msg))
        .await
        .map_err(|_| SessionError::Timeout("a frame to be sent"))?
        .map_err(SessionError::Ws)
}

async fn close(ws: &mut Ws) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
}

fn to_message(msg: &AgentMessage, json: bool) -> Message {
    if json {
        // Plain data always serializes.
        Message::text(serde_json::to_string(msg).unwrap_or_default())
    } else {
        Message::binary(wire::encode(msg))
    }
}

/// Decode one collector frame; None for control frames.
fn parse(msg: Message) -> Result<Option<CollectorMessage>, SessionError> {
    match msg {
        Message::Binary(b) => wire::decode_collector(&b)
            .map(Some)
            .map_err(SessionError::Malformed),
        Message::Text(t) => wire::decode_json(t.as_str())
            .map(Some)
            .map_err(SessionError::Malformed),
        Message::Close(_) => Err(SessionError::Closed),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
    }
}

async fn first_reply(ws: &mut Ws, what: &'static str) -> Result<CollectorMessage, SessionError> {
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| SessionError::Timeout(what))?;
        match next {
            None => return Err(SessionError::Closed),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => {
                if let Some(msg) = parse(m)? {
                    return Ok(msg);
                }
            }
        }
    }
}

/// A heartbeat with the agent's health now, and a ping the collector
/// answers (the liveness check's frame).
async fn send_heartbeat(
    ws: &mut Ws,
    ctx: &ClientCtx,
    cpu: &mut CpuMeter,
) -> Result<(), SessionError> {
    let mut health = ctx.shared.health.snapshot();
    health.cpu_percent = cpu.sample();
    health.collector = Some(ctx.link_health());
    let hb = AgentMessage::Heartbeat(Heartbeat {
        sent_ms: super::sink::unix_ms(),
        health,
    });
    send(ws, to_message(&hb, ctx.cfg.json_debug)).await?;
    send(ws, Message::Ping(Bytes::new())).await
}

/// Stream batches and heartbeats until the link fails or a stop is drained.
async fn stream(
    ws: &mut Ws,
    ctx: &ClientCtx,
    heartbeat: Duration,
    cpu: &mut CpuMeter,
) -> Result<SessionEnd, SessionError> {
    let json = ctx.cfg.json_debug;
    let shared = &ctx.shared;
    // (batch, when sent); re-sent from the oldest on every new connection.
    let mut in_flight: VecDeque<(BatchId, Instant)> = VecDeque::new();
    let mut cursor: Option<BatchId> = None;
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The collector answers our pings; silence this long means a dead link
    // that TCP would only notice after many minutes of retransmissions.
    let liveness = (heartbeat * 3 + Duration::from_secs(5)).max(Duration::from_secs(10));
    let mut last_rx = Instant::now();
    let mut stop = ctx.stop.clone();
    let mut sent = 0u64;
    // The first heartbeat goes before the spool: after an outage the
    // collector learns the node's health and which collector it is on at
    // once, not after a window of batches it may take long to store (or,
    // on a collector that drops the link mid-window, never).
    ticker.tick().await;
    send_heartbeat(ws, ctx, cpu).await?;
    loop {
        while in_flight.len() < WINDOW {
            let next = shared.lock_spool().next_after(cursor);
            let Some(id) = next else { break };
            cursor = Some(id);
            let batch = {
                let mut sp = shared.lock_spool();
                // The count as it stands now, so the collector can tell a
                // gap the quota made from a forged sequence.
                let r = sp.read_batch(id).map(|mut b| {
                    b.dropped_batches = sp.dropped_batches(id.boot_epoch);
                    b
                });
                shared.publish(&sp);
                r
            };
            let batch = match batch {
                Ok(b) => b,
                Err(SpoolError::Gone(_)) => continue, // acked or dropped meanwhile
                Err(e) => {
                    // Logged; the batch stays spooled and is tried on the next connection.
                    tracing::warn!(batch = %id, error = %e, "cannot send a spooled batch");
                    continue;
                }
            };
            send(ws, to_message(&AgentMessage::Batch(batch), json)).await?;
            in_flight.push_back((id, Instant::now()));
            sent += 1;
            tracing::trace!(batch = %id, "batch sent");
        }
        let states = shared.control.take_states();
        for (i, state) in states.iter().enumerate() {
            let msg = to_message(&AgentMessage::PolicyState(state.clone()), json);
            if let Err(e) = send(ws, msg).await {
                shared.control.put_back(states[i..].to_vec());
                return Err(e);
            }
        }
        for (sha256, offset) in shared.control.take_fetches() {
            // Lost with the connection if it fails: the control thread asks
            // again when no chunk came for a while.
            send(
                ws,
                to_message(&AgentMessage::ListFetch { sha256, offset }, json),
            )
            .await?;
        }
        if ctx.stopping().is_some()
            && in_flight.is_empty()
            && shared.writer_done()
            && shared.lock_spool().next_after(cursor).is_none()
        {
            tracing::info!(batches_sent = sent, "link drained; closing");
            close(ws).await;
            return Ok(SessionEnd::Drained);
        }
        tokio::select! {
            m = ws.next() => {
                last_rx = Instant::now();
                let m = match m {
                    None => return Err(SessionError::Closed),
                    Some(r) => r?,
                };
                match parse(m)? {
                    None => {}
                    Some(CollectorMessage::Ack { boot_epoch, seq }) => {
                        let id = BatchId { boot_epoch, seq };
                        let known = {
                            let mut sp = shared.lock_spool();
                            let k = sp.ack(id);
                            shared.publish(&sp);
                            k
                        };
                        in_flight.retain(|(b, _)| *b != id);
                        if !known {
                            tracing::debug!(batch = %id, "ack for a batch no longer spooled");
                        }
                    }
                    Some(CollectorMessage::Refused { reason }) => return Err(SessionError::Refused(reason)),
                    Some(CollectorMessage::Inventory(inv)) => ctx.deliver(FromCollector::Inventory(inv)),
                    Some(CollectorMessage::Policy(p)) => ctx.deliver(FromCollector::Policy(p)),
                    Some(CollectorMessage::ListChunk { sha256, offset, total, data }) => {
                        ctx.deliver(FromCollector::ListChunk { sha256, offset, total, data })
                    }
                    Some(CollectorMessage::ListUnavailable { sha256, reason }) => {
                        ctx.deliver(FromCollector::ListUnavailable { sha256, reason })
                    }
                    Some(other) => return Err(SessionError::Unexpected(format!("{other:?} while streaming"))),
                }
            }
            () = shared.new_batch.notified() => {}
            () = shared.control.wake.notified() => {}
            _ = ticker.tick() => {
                if last_rx.elapsed() > liveness {
                    return Err(SessionError::Timeout("any frame from the collector"));
                }
                if in_flight.front().is_some_and(|(_, t)| t.elapsed() > ACK_TIMEOUT) {
                    return Err(SessionError::Timeout("a batch acknowledgement"));
                }
                send_heartbeat(ws, ctx, cpu).await?;
            }
            r = stop.changed() => {
                if r.is_err() {
                    return Ok(SessionEnd::Drained); // the Uplink is gone
                }
            }
        }
    }
}

/// This machine's host name, for the collector's registry.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when the name fits, and we stop at the first NUL or the buffer's end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new();
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(375) && d[0] <= Duration::from_millis(625));
        assert!(d[3] >= Duration::from_secs(3));
        // The collector's outage detector counts on this bound.
        let longest = Duration::from_millis(simpul_proto::wire::RECONNECT_WAIT_MAX_MS);
        assert!(d.iter().all(|x| *x <= longest));
        assert!(d[9] >= BACKOFF_MAX.mul_f64(0.75));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(625));
        b.at_least(REFUSED_BACKOFF);
        assert!(b.next_delay() >= REFUSED_BACKOFF.mul_f64(0.75));
    }

    #[test]
    fn credential_round_trip_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("state").join("credential");
        assert!(load_credential(&p, "n1").is_none());
        let c = StoredCredential {
            node_id: "n1".into(),
            credential: "s3cret".into(),
            agency: "dinkes".into(),
        };
        store_credential(&p, &c).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_credential(&p, "n1").unwrap().credential, "s3cret");
        assert!(load_credential(&p, "other").is_none());
        std::fs::write(&p, b"{garbage").unwrap();
        assert!(load_credential(&p, "n1").is_none());
    }

    #[test]
    fn hostname_is_known() {
        assert!(!hostname().is_empty());
    }
}

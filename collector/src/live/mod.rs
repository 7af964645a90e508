//! The dashboard's live feed: a snapshot (the overview and 15 minutes of
//! per-second history) when a page connects, then each second one patch of
//! what changed, computed once per scope (the whole network, or one
//! agency for its officers) and shared by every page of that scope
//! (`delta.rs`), compressed with permessage-deflate when the page offers
//! it (`deflate.rs`). Each message carries its state number; a page that
//! sees a gap reconnects for a new snapshot.
//!
//! Hostile clients get little: messages from the page are capped at 4 KiB
//! (it sends none), a page that answers no ping for a minute is closed, the
//! number of feeds is capped, a page that does not take a message within
//! 10 s is dropped (nothing queues for it), the caller's session is checked again every
//! 30 s (a revoked or expired session ends its feed), and a browser page
//! of another origin is refused.

mod deflate;
pub mod delta;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::api::{overview_end, ApiError};
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::{Overview, SeriesPoint};

const HISTORY_SECS: u64 = 15 * 60;
const WINDOW_SECS: u32 = 5;
/// Open feeds at most (each holds a socket and a little memory).
pub const MAX_FEEDS: usize = 1024;
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENT_FOR: Duration = Duration::from_secs(60);
const RECHECK_EVERY: Duration = Duration::from_secs(30);
const MAX_CLIENT_MESSAGE: usize = 4096;

/// Open feeds of one login or token at most: one credential cannot take
/// every place (a wall of 50 screens on one kiosk token still fits).
pub const MAX_FEEDS_PER_PRINCIPAL: usize = 64;

static FEEDS: AtomicUsize = AtomicUsize::new(0);

/// Open feeds per principal (`Principal::actor`).
static FEEDS_OF: std::sync::Mutex<Option<HashMap<String, usize>>> = std::sync::Mutex::new(None);

/// A place taken for one principal's feed, from before the upgrade until
/// the feed ends (or the upgrade fails).
struct Slot(String);

impl Slot {
    fn take(actor: String) -> Result<Slot, usize> {
        let mut g = FEEDS_OF.lock().unwrap_or_else(|p| p.into_inner());
        let n = g
            .get_or_insert_with(HashMap::new)
            .entry(actor.clone())
            .or_insert(0);
        if *n >= MAX_FEEDS_PER_PRINCIPAL {
            return Err(*n);
        }
        *n += 1;
        Ok(Slot(actor))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = FEEDS_OF.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = g.as_mut() {
            if let Some(n) = m.get_mut(&self.0) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.0);
                }
            }
        }
    }
}

/// One second of the wall: each scope's patch, shared by its pages.
#[derive(Debug, Default)]
pub struct Tick {
    /// By scope (None: the whole network; Some: one agency's officers).
    pub scopes: HashMap<Option<String>, ScopeTick>,
}

/// One scope's second.
#[derive(Debug, Clone)]
pub struct ScopeTick {
    /// The state number after this tick.
    pub seq: u64,
    /// The state pages hold after this tick.
    pub state: Arc<serde_json::Value>,
    /// The delta message, serialised once.
    pub text: Arc<str>,
}

/// Agencies with an officer's feed open (their top sites are computed).
#[derive(Default)]
pub struct Watchers(Mutex<HashMap<String, usize>>);

impl Watchers {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, usize>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
    fn add(&self, a: &str) {
        self.with(|m| *m.entry(a.to_string()).or_default() += 1);
    }
    fn remove(&self, a: &str) {
        self.with(|m| {
            if let Some(n) = m.get_mut(a) {
                *n -= 1;
                if *n == 0 {
                    m.remove(a);
                }
            }
        });
    }
    fn agencies(&self) -> Vec<String> {
        self.with(|m| m.keys().cloned().collect())
    }
}

/// Series history by scope, reused within a second.
#[derive(Default)]
pub struct Snapshots(Mutex<HashMap<Option<String>, Snapshot>>);

/// When a history was read, and its JSON.
type Snapshot = (Instant, Arc<str>);

/// The newest state of each scope, for pages that connect between ticks.
type Latest = HashMap<Option<String>, (Instant, ScopeTick)>;

/// The live feed's shared parts (in `AppState`).
pub struct Live {
    pub tx: tokio::sync::broadcast::Sender<Arc<Tick>>,
    watchers: Watchers,
    snapshots: Snapshots,
    latest: Mutex<Latest>,
    /// One history read at a time: a burst of connecting pages waits for
    /// it and shares it.
    computing: tokio::sync::Mutex<()>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            tx: tokio::sync::broadcast::channel(16).0,
            watchers: Watchers::default(),
            snapshots: Snapshots::default(),
            latest: Mutex::new(HashMap::new()),
            computing: tokio::sync::Mutex::new(()),
        }
    }
}

impl Live {
    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn secs_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The newest complete second's rates of every agency of `state`, in its
/// order, in/out pairs rounded like the rates (charts need no more).
fn points_of(state: &serde_json::Value, points: &HashMap<String, SeriesPoint>) -> Vec<u64> {
    let mut out = Vec::new();
    for a in state["agencies"].as_array().into_iter().flatten() {
        let p = a["code"].as_str().and_then(|c| points.get(c));
        out.push(p.map_or(0, |p| delta::round3(p.in_bps)));
        out.push(p.map_or(0, |p| delta::round3(p.out_bps)));
    }
    out
}

/// Compute the overview every second and publish each scope's patch (only
/// while someone listens).
pub async fn ticker(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = state.shutdown.subscribe();
    let mut streams: HashMap<Option<String>, delta::Stream> = HashMap::new();
    // State numbers never repeat within a run, so a page cannot mistake a
    // new stream for the one it followed.
    let mut next_seq = 1u64;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.wait() => return,
        }
        if state.live.tx.receiver_count() == 0 {
            streams.clear();
            state.live.latest().clear();
            continue;
        }
        let end = overview_end();
        let s = state.clone();
        let watched = state.live.watchers.agencies();
        let computed = tokio::task::spawn_blocking(move || {
            let r = s.flows.reader()?;
            let ov = crate::service::overview(&s, r.as_ref(), end, WINDOW_SECS)?;
            // The chart's point is the newest complete second, like the
            // snapshot's per-second series (the overview is a 5 s average).
            let last = secs_of(end).saturating_sub(1);
            let latest = r.usage_series_since(last)?;
            let mut sites = HashMap::new();
            for a in watched {
                let list = crate::service::agency_sites(r.as_ref(), &a, end)?;
                sites.insert(a, list);
            }
            Ok::<_, crate::store::StoreError>((ov, latest, last, sites))
        })
        .await;
        let (mut ov, latest, last, agency_sites) = match computed {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "live overview failed");
                continue;
            }
            Err(_) => continue,
        };
        // The nodes as the outage detector sees them.
        crate::api::overview_liveness(&state.outage, &mut ov);
        let ts = simpul_proto::time_format::rfc3339(last * 1_000_000_000);
        let mut points = HashMap::new();
        for a in &ov.agencies {
            let (inb, outb) = latest
                .get(&a.code)
                .and_then(|pts| pts.iter().find(|p| p.ts == ts))
                .map_or((0, 0), |p| (p.in_bps, p.out_bps));
            points.insert(
                a.code.clone(),
                SeriesPoint {
                    ts: ts.clone(),
                    in_bps: inb,
                    out_bps: outb,
                },
            );
        }
        let mut views: Vec<(Option<String>, Overview)> = Vec::new();
        for (a, sites) in agency_sites {
            let mut scoped = ov.clone();
            crate::service::scope_overview(&mut scoped, &a, sites);
            views.push((Some(a), scoped));
        }
        views.push((None, ov));
        streams.retain(|k, _| views.iter().any(|(v, _)| v == k));
        let mut tick = Tick::default();
        for (scope, view) in views {
            let Ok(cur) = serde_json::to_value(&view) else {
                continue;
            };
            let (seq, (patch, rates)) = match streams.get_mut(&scope) {
                Some(st) => {
                    let step = st.step(cur);
                    (st.seq, step)
                }
                None => {
                    streams.insert(scope.clone(), delta::Stream::new(next_seq, cur));
                    (next_seq, (None, Vec::new()))
                }
            };
            next_seq = next_seq.max(seq + 1);
            let Some(st) = streams.get(&scope) else {
                continue;
            };
            let msg = json!({
                "type": "delta",
                "seq": seq,
                "base": seq - 1,
                "o": patch.unwrap_or_else(|| json!({})),
                "r": rates,
                "p": points_of(&st.sent, &points),
            });
            tick.scopes.insert(
                scope,
                ScopeTick {
                    seq,
                    state: Arc::new(st.sent.clone()),
                    text: Arc::from(msg.to_string()),
                },
            );
        }
        {
            let mut latest = state.live.latest();
            latest.clear();
            for (k, v) in &tick.scopes {
                latest.insert(k.clone(), (Instant::now(), v.clone()));
            }
        }
        let _ = state.live.tx.send(Arc::new(tick));
    }
}

/// A browser page may open the feed only from this collector's own origin
/// (its Origin's host and port are the Host it asked).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser (curl, a script with a bearer token).
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

fn refuse(status: StatusCode, msg: String) -> Response {
    ApiError(status, msg).into_response()
}

/// `GET /api/v1/live`: the WebSocket handshake, done here rather than by
/// axum's extractor so the feed can negotiate permessage-deflate.
pub async fn upgrade(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    mut req: Request,
) -> Response {
    let headers = req.headers().clone();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade (Sec-WebSocket-Key) is required".into(),
        );
    };
    if !is_upgrade || !version_ok {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade (version 13) is required".into(),
        );
    }
    if !same_origin(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the live feed is for pages of this collector only (Origin differs from Host)".into(),
        );
    }
    if FEEDS.load(Ordering::Relaxed) >= MAX_FEEDS {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_FEEDS} live feeds are open; try again later"),
        );
    }
    let slot = match Slot::take(p.actor()) {
        Ok(s) => s,
        Err(n) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{n} live feeds are open with this login or token (at most {MAX_FEEDS_PER_PRINCIPAL}); close some first"),
            )
        }
    };
    let offer = deflate::negotiate(
        headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    // Taken now, so the answer says deflate only when a compressor is free.
    let deflater = offer.and_then(deflate::Deflater::take);
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    // What identified the caller, to check it again while the feed runs.
    let mut creds = HeaderMap::new();
    for h in [header::COOKIE, header::AUTHORIZATION] {
        if let Some(v) = headers.get(&h) {
            creds.insert(h, v.clone());
        }
    }
    let compressed = deflater.is_some();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_CLIENT_MESSAGE))
                    .max_frame_size(Some(MAX_CLIENT_MESSAGE))
                    .read_buffer_size(4096)
                    .write_buffer_size(16 * 1024);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                let out = Out {
                    ws,
                    deflate: deflater,
                };
                feed(out, state, p, creds, peer).await;
            }
            Err(e) => tracing::debug!(peer = %peer, error = %e, "live upgrade failed"),
        }
    });
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(o) = offer.filter(|_| compressed) {
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(o.response()),
        );
    }
    res
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The page's socket and, when negotiated, its compressor.
struct Out {
    ws: Ws,
    deflate: Option<deflate::Deflater>,
}

/// A page that takes longer than this to accept one message is dropped:
/// nothing is queued for it meanwhile (it skips ticks, then resyncs).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

impl Out {
    async fn send_text(&mut self, text: &str) -> bool {
        let msg = match &mut self.deflate {
            Some(d) => match d.compress(text.as_bytes()) {
                Ok(z) => {
                    let mut f = Frame::message(z, OpCode::Data(OpData::Text), true);
                    f.header_mut().rsv1 = true;
                    Message::Frame(f)
                }
                Err(_) => return false,
            },
            None => Message::Text(text.into()),
        };
        self.send(msg).await
    }

    async fn send(&mut self, msg: Message) -> bool {
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, self.ws.send(msg)).await,
            Ok(Ok(()))
        )
    }
}

struct FeedGuard {
    state: AppState,
    agency: Option<String>,
}

impl FeedGuard {
    fn new(state: &AppState, agency: Option<String>) -> FeedGuard {
        FEEDS.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("simpul_live_feeds").increment(1.0);
        if let Some(a) = &agency {
            state.live.watchers.add(a);
        }
        FeedGuard {
            state: state.clone(),
            agency,
        }
    }
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        FEEDS.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("simpul_live_feeds").decrement(1.0);
        if let Some(a) = &self.agency {
            self.state.live.watchers.remove(a);
        }
    }
}

/// The 15 minutes of per-second history of a scope (JSON), from the cache
/// if it is less than a second old.
async fn history(state: &AppState, agency: Option<String>) -> Option<Arc<str>> {
    let fresh = |state: &AppState| {
        let g = state
            .live
            .snapshots
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        g.get(&agency)
            .filter(|(at, _)| at.elapsed() < Duration::from_secs(1))
            .map(|(_, s)| s.clone())
    };
    if let Some(s) = fresh(state) {
        return Some(s);
    }
    let _one = state.live.computing.lock().await;
    if let Some(s) = fresh(state) {
        return Some(s);
    }
    let end = overview_end();
    let s = state.clone();
    let scope = agency.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let r = s.flows.reader()?;
        let mut series = r.usage_series_since(secs_of(end).saturating_sub(HISTORY_SECS))?;
        if let Some(a) = &scope {
            series.retain(|k, _| k == a);
        }
        Ok::<_, crate::store::StoreError>(json!(series).to_string())
    })
    .await;
    let text: Arc<str> = match computed {
        Ok(Ok(t)) => Arc::from(t),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "live history failed");
            return None;
        }
        Err(_) => return None,
    };
    let mut g = state
        .live
        .snapshots
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    g.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(1));
    g.insert(agency, (Instant::now(), text.clone()));
    Some(text)
}

/// How long a connecting page waits for its scope's first state.
const FIRST_STATE_WAIT: Duration = Duration::from_secs(5);

/// The scope's state to start from: the newest tick's if it is fresh,
/// otherwise the next one.
async fn first_state(
    state: &AppState,
    rx: &mut tokio::sync::broadcast::Receiver<Arc<Tick>>,
    scope: &Option<String>,
) -> Option<ScopeTick> {
    if let Some((at, t)) = state.live.latest().get(scope) {
        if at.elapsed() < Duration::from_millis(1500) {
            return Some(t.clone());
        }
    }
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(tick) => {
                    if let Some(t) = tick.scopes.get(scope) {
                        return Some(t.clone());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    };
    tokio::time::timeout(FIRST_STATE_WAIT, wait)
        .await
        .ok()
        .flatten()
}

async fn feed(
    mut out: Out,
    state: AppState,
    p: Principal,
    creds: HeaderMap,
    peer: std::net::SocketAddr,
) {
    let agency = p.role.agency().map(str::to_string);
    let _guard = FeedGuard::new(&state, agency.clone());
    // Subscribe first so no tick falls between the snapshot and the stream.
    let mut rx = state.live.tx.subscribe();
    let mut stop = state.shutdown.subscribe();
    let Some(first) = first_state(&state, &mut rx, &agency).await else {
        return;
    };
    let Some(series) = history(&state, agency.clone()).await else {
        return;
    };
    let snap = format!(
        r#"{{"type":"snapshot","seq":{},"overview":{},"series":{series}}}"#,
        first.seq, first.state
    );
    if !out.send_text(&snap).await {
        return;
    }
    let mut seq = first.seq;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.reset();
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(tick) => {
                    let Some(t) = tick.scopes.get(&agency) else { continue };
                    // Older than the snapshot: the page has it already.
                    if t.seq <= seq {
                        continue;
                    }
                    seq = t.seq;
                    if !out.send_text(&t.text).await {
                        return;
                    }
                }
                // A slow page skips ticks rather than slowing everyone;
                // the next patch does not follow on from its state, and
                // the page reconnects for a new snapshot.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            incoming = out.ws.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > SILENT_FOR {
                    let _ = out.send(Message::Close(None)).await;
                    return;
                }
                if !out.send(Message::Ping(Vec::new().into())).await {
                    return;
                }
            }
            _ = recheck.tick() => {
                let still = crate::auth::identify(&state, &creds, Some(peer)).await;
                if !matches!(still, Ok(Some(_))) {
                    let _ = out
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(4401),
                            reason: "session ended".into(),
                        })))
                        .await;
                    return;
                }
            }
            () = stop.wait() => {
                let _ = out.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(header::HOST, "noc.example.go.id:8443".parse().unwrap());
        h.insert(
            header::ORIGIN,
            "https://noc.example.go.id:8443".parse().unwrap(),
        );
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
    }
}

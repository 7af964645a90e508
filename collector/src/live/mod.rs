//! The dashboard's live feed: one overview per second, computed once and
//! broadcast to every open page (an agency officer's page gets its agency
//! only); a snapshot with 15 minutes of per-second history when a page
//! connects, computed at most once a second per scope however many pages
//! connect at once.
//!
//! Hostile clients get little: messages from the page are capped at 4 KiB
//! (it sends none), a page that answers no ping for a minute is closed, the
//! number of feeds is capped, the caller's session is checked again every
//! 30 s (a revoked or expired session ends its feed), and a browser page
//! of another origin is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

/// One second of the wall, for every scope.
#[derive(Debug)]
pub struct Tick {
    /// The whole network's overview (admin, operator, viewer).
    pub overview: Overview,
    /// Each agency's newest complete second.
    pub points: HashMap<String, SeriesPoint>,
    /// Top sites of the agencies whose officers are watching.
    pub agency_sites: HashMap<String, Vec<crate::store::OverviewSite>>,
    /// The unscoped message, serialised once.
    pub text: Arc<str>,
}

impl Tick {
    /// The message for one caller.
    fn message_for(&self, agency: Option<&str>) -> Option<String> {
        let Some(a) = agency else {
            return Some(self.text.to_string());
        };
        let mut ov = self.overview.clone();
        let sites = self.agency_sites.get(a).cloned().unwrap_or_default();
        crate::service::scope_overview(&mut ov, a, sites);
        let points: HashMap<&String, &SeriesPoint> =
            self.points.iter().filter(|(k, _)| *k == a).collect();
        serde_json::to_string(&json!({"type": "tick", "overview": ov, "points": points})).ok()
    }
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

/// Snapshots by scope, reused within a second.
#[derive(Default)]
pub struct Snapshots(Mutex<HashMap<Option<String>, Snapshot>>);

/// When a snapshot was made, and its text.
type Snapshot = (Instant, Arc<str>);

/// The live feed's shared parts (in `AppState`).
pub struct Live {
    pub tx: tokio::sync::broadcast::Sender<Arc<Tick>>,
    watchers: Watchers,
    snapshots: Snapshots,
    /// One snapshot computation at a time: a burst of connecting pages
    /// waits for it and shares it.
    computing: tokio::sync::Mutex<()>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            tx: tokio::sync::broadcast::channel(16).0,
            watchers: Watchers::default(),
            snapshots: Snapshots::default(),
            computing: tokio::sync::Mutex::new(()),
        }
    }
}

fn secs_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Compute the overview every second and publish it (only while someone listens).
pub async fn ticker(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = state.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.wait() => return,
        }
        if state.live.tx.receiver_count() == 0 {
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
        let Ok(text) =
            serde_json::to_string(&json!({"type": "tick", "overview": ov, "points": points}))
        else {
            continue;
        };
        let _ = state.live.tx.send(Arc::new(Tick {
            overview: ov,
            points,
            agency_sites,
            text: Arc::from(text),
        }));
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

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers) {
        return ApiError(
            StatusCode::FORBIDDEN,
            "the live feed is for pages of this collector only (Origin differs from Host)".into(),
        )
        .into_response();
    }
    if FEEDS.load(Ordering::Relaxed) >= MAX_FEEDS {
        return ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_FEEDS} live feeds are open; try again later"),
        )
        .into_response();
    }
    let slot = match Slot::take(p.actor()) {
        Ok(s) => s,
        Err(n) => {
            return ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{n} live feeds are open with this login or token (at most {MAX_FEEDS_PER_PRINCIPAL}); close some first"),
            )
            .into_response()
        }
    };
    // What identified the caller, to check it again while the feed runs.
    let mut creds = HeaderMap::new();
    for h in [header::COOKIE, header::AUTHORIZATION] {
        if let Some(v) = headers.get(&h) {
            creds.insert(h, v.clone());
        }
    }
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            feed(socket, state, p, creds, peer).await
        })
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

/// The snapshot for a scope, from the cache if it is less than a second old.
async fn snapshot(state: &AppState, agency: Option<String>) -> Option<Arc<str>> {
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
        let mut ov = crate::service::overview(&s, r.as_ref(), end, WINDOW_SECS)?;
        crate::api::overview_liveness(&s.outage, &mut ov);
        let end_secs = secs_of(end);
        let mut series = r.usage_series_since(end_secs.saturating_sub(HISTORY_SECS))?;
        if let Some(a) = &scope {
            let sites = crate::service::agency_sites(r.as_ref(), a, end)?;
            crate::service::scope_overview(&mut ov, a, sites);
            series.retain(|k, _| k == a);
        }
        Ok::<_, crate::store::StoreError>(
            json!({"type": "snapshot", "overview": ov, "series": series}).to_string(),
        )
    })
    .await;
    let text: Arc<str> = match computed {
        Ok(Ok(t)) => Arc::from(t),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "live snapshot failed");
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

async fn feed(
    mut socket: WebSocket,
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
    let Some(snap) = snapshot(&state, agency.clone()).await else {
        return;
    };
    if socket
        .send(Message::Text(snap.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.reset();
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(tick) => {
                    let Some(text) = tick.message_for(agency.as_deref()) else { continue };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                // A slow page skips ticks rather than slowing everyone.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > SILENT_FOR {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            _ = recheck.tick() => {
                let still = crate::auth::identify(&state, &creds, Some(peer)).await;
                if !matches!(still, Ok(Some(_))) {
                    let _ = socket
                        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code: 4401,
                            reason: "session ended".into(),
                        })))
                        .await;
                    return;
                }
            }
            () = stop.wait() => {
                let _ = socket.send(Message::Close(None)).await;
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

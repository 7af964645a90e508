//! One agent connection: the WebSocket upgrade, authentication (enroll or
//! hello, with protocol negotiation), then batches, heartbeats and policy
//! states in, acknowledgements, the inventory and signed policies out.
//! Anything hostile or malformed closes the connection with a logged
//! reason; nothing of a refused batch is written.
//!
//! The upgrade is done here rather than by axum's extractor so the session
//! owns the transport: on a collector shutdown it sends a WebSocket Close
//! and then shuts the TLS stream down (close_notify), so agents see an
//! orderly end, not a cut connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use simpul_proto::inventory::Inventory;
use simpul_proto::wire::{self, feature, AgentMessage, Batch, CollectorMessage};
use simpul_proto::UNKNOWN;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::ingest::WriteJob;
use crate::state::AppState;
use crate::store::{AuthError, BatchOutcome};

type Ws = WebSocketStream<Budget<TokioIo<hyper::upgrade::Upgraded>>>;

/// Bytes a connection may send before it has authenticated: a Hello or an
/// Enroll is a few hundred bytes, so anything near this is an attack on
/// memory, refused before it is buffered.
const PRE_AUTH_BYTES: u64 = 16 * 1024;
/// No budget: the connection has authenticated.
const UNLIMITED: u64 = u64::MAX;

/// The transport with a read budget until the agent authenticates.
pub struct Budget<S> {
    inner: S,
    left: Arc<std::sync::atomic::AtomicU64>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Budget<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::sync::atomic::Ordering;
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        let left = self.left.load(Ordering::Relaxed);
        if n > 0 && left != UNLIMITED {
            if n > left {
                return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                    "more than {PRE_AUTH_BYTES} bytes before authentication"
                ))));
            }
            self.left.store(left - n, Ordering::Relaxed);
        }
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Budget<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Node status is persisted at most this often per node (heartbeats are more frequent).
const SEEN_PERSIST_EVERY: Duration = Duration::from_secs(2);
/// Bounds on what one batch may hold.
const MAX_RECORDS_PER_BATCH: usize = 200_000;
const MAX_STRING: usize = 512;
/// A blocked attempt's target: a DNS name (at most 253 bytes written out) or
/// `address:port` (at most 53 bytes: `[IPv6]:65535`).
const MAX_TARGET: usize = 253;
/// Closing politely on shutdown is not worth waiting longer for.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /api/v1/agent` on the TLS listener: the WebSocket handshake.
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let headers = req.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return bad_request("a WebSocket upgrade (Sec-WebSocket-Key) is required");
    };
    if !is_upgrade || !version_ok {
        return bad_request("a WebSocket upgrade (version 13) is required");
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let max = state.config.server.max_message_bytes;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(max))
                    .max_frame_size(Some(max))
                    .read_buffer_size(16 * 1024)
                    .write_buffer_size(16 * 1024);
                let budget = Arc::new(std::sync::atomic::AtomicU64::new(PRE_AUTH_BYTES));
                let io = Budget {
                    inner: TokioIo::new(upgraded),
                    left: budget.clone(),
                };
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                session(ws, addr, state, budget).await;
            }
            Err(e) => tracing::debug!(peer = %addr, error = %e, "agent upgrade failed"),
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
    res
}

fn bad_request(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

/// Who is on the other end, once authenticated.
struct Peer {
    node_id: String,
    agency: String,
    version: String,
    hostname: String,
    address: String,
    /// The protocol version of the session.
    protocol: u8,
    json: bool,
    wants_inventory: bool,
    wants_policy: bool,
    /// Fetches named lists by hash (`feature::LISTS`).
    wants_lists: bool,
    inventory_version: u64,
    policy_version: u64,
    /// Records naming another agency were logged once this session.
    warned_foreign: bool,
}

/// Connection bookkeeping that must happen however the session ends.
struct Connected {
    state: AppState,
    node: Option<String>,
    /// The session's id in `AgentSessions`.
    session: Option<u64>,
}

impl Connected {
    fn new(state: &AppState) -> Connected {
        metrics::gauge!("simpul_agent_connections").increment(1.0);
        Connected {
            state: state.clone(),
            node: None,
            session: None,
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!("simpul_agent_connections").decrement(1.0);
        let (Some(node), Some(id)) = (&self.node, self.session) else {
            return;
        };
        // A session a newer one replaced leaves the node to it.
        if self.state.agents.remove(node, id) {
            self.state.nodes.disconnected(node);
            self.state.outage.closed(node);
        }
    }
}

async fn session(
    mut ws: Ws,
    addr: SocketAddr,
    state: AppState,
    budget: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut guard = Connected::new(&state);
    let mut shutdown = state.shutdown.subscribe();
    let peer = tokio::select! {
        p = authenticate(&mut ws, addr, &state) => p,
        () = shutdown.wait() => Err((2, "the collector is stopping".to_string())),
    };
    let (mut peer, enrolled) = match peer {
        Ok(p) => p,
        Err((version, reason)) => {
            metrics::counter!("simpul_agent_refused_total").increment(1);
            tracing::warn!(peer = %addr, %reason, "agent refused");
            refuse(&mut ws, version, &reason).await;
            finish(&mut ws).await;
            return;
        }
    };
    // Authenticated: batches may be as large as the config allows.
    budget.store(UNLIMITED, std::sync::atomic::Ordering::Relaxed);
    guard.node = Some(peer.node_id.clone());
    let mut registered = state.agents.register(&peer.node_id, &addr.to_string());
    if registered.replaced {
        tracing::warn!(node = %peer.node_id, peer = %addr, "a second session with the same credential: the older one is closed");
        crate::auth::audit(
            &state,
            crate::store::NewAudit {
                actor: format!("node:{}", peer.node_id),
                address: addr.ip().to_string(),
                action: "node.session_replaced".into(),
                target: peer.node_id.clone(),
                detail: "{}".into(),
                outcome: "ok".into(),
            },
        )
        .await;
    }
    guard.session = Some(registered.id);
    if let Some(msg) = enrolled {
        if let Err(e) = send_as(&mut ws, peer.protocol, peer.json, &msg).await {
            tracing::warn!(node = %peer.node_id, error = %e, "cannot send the credential to the enrolling agent");
            state.agents.remove(&peer.node_id, registered.id);
            return;
        }
    }
    tracing::info!(node = %peer.node_id, agency = %peer.agency, peer = %addr, version = %peer.version, protocol = peer.protocol, "agent connected");
    state
        .nodes
        .connected(&peer.node_id, &peer.agency, &peer.address);
    state.outage.opened(&peer.node_id, &peer.agency);
    state.outage.heartbeat(&peer.node_id, &peer.agency);
    persist_seen(&state, &peer, None);
    let reason = stream(&mut ws, &mut peer, &state, &mut registered.kicked).await;
    match &reason {
        Ok(()) => tracing::info!(node = %peer.node_id, "agent disconnected"),
        Err(r) => {
            tracing::warn!(node = %peer.node_id, peer = %addr, reason = %r, "agent connection closed");
            refuse(&mut ws, peer.protocol, r).await;
        }
    }
    finish(&mut ws).await;
}

/// Close the WebSocket and shut the transport down (TLS close_notify).
async fn finish(ws: &mut Ws) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = ws.close(None).await;
        let _ = ws.get_mut().shutdown().await;
    })
    .await;
}

async fn refuse(ws: &mut Ws, version: u8, reason: &str) {
    let msg = CollectorMessage::Refused {
        reason: reason.to_string(),
    };
    if let Ok(frame) = wire::encode_collector(version, &msg) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::binary(frame))).await;
    }
}

/// Decode one frame; `Ok(None)` for frames that carry no message (ping/pong).
fn decode(msg: Message) -> Result<Option<(u8, AgentMessage, bool)>, String> {
    match msg {
        Message::Binary(b) => wire::decode_agent(&b)
            .map(|(v, m)| Some((v, m, false)))
            .map_err(|e| e.to_string()),
        Message::Text(t) => wire::decode_json(t.as_str())
            .map(|m| Some((wire::PROTOCOL_VERSION, m, true)))
            .map_err(|e| e.to_string()),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
        Message::Close(_) => Err("closed by agent".into()),
    }
}

async fn send(ws: &mut Ws, peer: &Peer, msg: &CollectorMessage) -> Result<(), String> {
    send_as(ws, peer.protocol, peer.json, msg).await
}

async fn send_as(
    ws: &mut Ws,
    version: u8,
    json: bool,
    msg: &CollectorMessage,
) -> Result<(), String> {
    let frame = if json {
        Message::text(serde_json::to_string(msg).unwrap_or_default())
    } else {
        Message::binary(wire::encode_collector(version, msg).map_err(|e| e.to_string())?)
    };
    ws.send(frame)
        .await
        .map_err(|e| format!("send failed: {e}"))
}

type Refusal = (u8, String);

/// The authenticated peer, and for an enrollment the `Enrolled` message the
/// caller sends once the session is registered.
type Authenticated = (Peer, Option<CollectorMessage>);

async fn authenticate(
    ws: &mut Ws,
    addr: SocketAddr,
    state: &AppState,
) -> Result<Authenticated, Refusal> {
    let refuse2 = |m: String| (wire::OLDEST_PROTOCOL_VERSION, m);
    let first = tokio::time::timeout(AUTH_TIMEOUT, ws.next())
        .await
        .map_err(|_| refuse2("no Hello/Enroll within 10 s".to_string()))?
        .ok_or_else(|| refuse2("connection closed before Hello".into()))?
        .map_err(|e| refuse2(format!("websocket error: {e}")))?;
    let (version, msg, json) = decode(first)
        .map_err(refuse2)?
        .ok_or_else(|| refuse2("expected Hello or Enroll first".into()))?;
    let refuse = |m: String| (version, m);
    match msg {
        AgentMessage::Enroll(e) => {
            check_id(&e.node_id).map_err(refuse)?;
            let (node_id, token) = (e.node_id.clone(), e.token.clone());
            let control = state.control.clone();
            let (credential, enrolled) = tokio::task::spawn_blocking(move || {
                control.enroll(&node_id, &token).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| refuse(e.to_string()))?
            .map_err(refuse)?;
            let agency = node_agency(state, &e.node_id, &enrolled);
            let msg = CollectorMessage::Enrolled {
                node_id: e.node_id.clone(),
                credential,
                agency: agency.clone(),
                policy_key: state.policies.public_key(),
            };
            tracing::info!(node = %e.node_id, %agency, "node enrolled");
            crate::auth::audit(
                state,
                crate::store::NewAudit {
                    actor: format!("node:{}", e.node_id),
                    address: addr.ip().to_string(),
                    action: "node.enroll".into(),
                    target: e.node_id.clone(),
                    detail: serde_json::json!({"agency": agency, "hostname": clip(&e.hostname), "agent_version": clip(&e.agent_version)}).to_string(),
                    outcome: "ok".into(),
                },
            )
            .await;
            let peer = Peer {
                node_id: e.node_id,
                agency,
                version: clip(&e.agent_version),
                hostname: clip(&e.hostname),
                address: addr.to_string(),
                protocol: version,
                json,
                wants_inventory: false,
                wants_policy: false,
                wants_lists: false,
                inventory_version: 0,
                policy_version: 0,
                warned_foreign: false,
            };
            // Sent by the caller once the session is registered: the agent
            // may open its next session as soon as it has the credential.
            Ok((peer, Some(msg)))
        }
        AgentMessage::Hello(h) => {
            check_id(&h.node_id).map_err(refuse)?;
            let node_id = h.node_id.clone();
            let credential = h.credential.clone();
            let control = state.control.clone();
            let enrolled = tokio::task::spawn_blocking(move || {
                control
                    .authenticate(&node_id, &credential)
                    .map_err(|e| match e {
                        // One answer for both, so node ids cannot be
                        // enumerated by trying them.
                        AuthError::UnknownNode(_) | AuthError::BadCredential(_) => {
                            "unknown node or wrong credential".to_string()
                        }
                        other => other.to_string(),
                    })
            })
            .await
            .map_err(|e| refuse(e.to_string()))?
            .map_err(refuse)?;
            let agency = node_agency(state, &h.node_id, &enrolled);
            // The newest version both speak; a version-2 Hello lists only 2.
            let protocol = h
                .protocols
                .iter()
                .copied()
                .filter(|v| (wire::OLDEST_PROTOCOL_VERSION..=wire::PROTOCOL_VERSION).contains(v))
                .max()
                .ok_or_else(|| {
                    refuse(format!(
                        "no common protocol version (agent: {:?}; collector: {}-{})",
                        h.protocols,
                        wire::OLDEST_PROTOCOL_VERSION,
                        wire::PROTOCOL_VERSION
                    ))
                })?;
            let offered: Vec<String> = [feature::INVENTORY, feature::POLICY, feature::LISTS]
                .into_iter()
                .filter(|f| protocol >= 3 && h.features.iter().any(|x| x == f))
                .map(str::to_string)
                .collect();
            let msg = CollectorMessage::Welcome {
                node_id: h.node_id.clone(),
                agency: agency.clone(),
                heartbeat_interval_ms: state.config.nodes.heartbeat_interval_ms,
                protocol,
                features: offered.clone(),
                policy_key: state.policies.public_key(),
            };
            send_as(ws, version, json, &msg).await.map_err(refuse)?;
            // Flows the node's previous boots left running end now (their
            // final records would have come before this Hello otherwise).
            let _ = state.writer.try_send(WriteJob::CloseInterim {
                node_id: h.node_id.clone(),
                boot_epoch: h.boot_epoch,
            });
            Ok((
                Peer {
                    node_id: h.node_id,
                    agency,
                    version: clip(&h.agent_version),
                    hostname: clip(&h.hostname),
                    address: addr.to_string(),
                    protocol,
                    json,
                    wants_inventory: offered.iter().any(|f| f == feature::INVENTORY),
                    wants_policy: offered.iter().any(|f| f == feature::POLICY),
                    wants_lists: offered.iter().any(|f| f == feature::LISTS),
                    inventory_version: h.inventory_version,
                    policy_version: h.policy_version,
                    warned_foreign: false,
                },
                None,
            ))
        }
        other => Err(refuse(format!(
            "expected Hello or Enroll first, got {}",
            kind(&other)
        ))),
    }
}

/// The agency a node speaks for: the inventory's, else the one it enrolled
/// with (a node enrolled before the inventory listed it).
fn node_agency(state: &AppState, node: &str, enrolled: &str) -> String {
    match state.inventory.node(node) {
        Some(n) => {
            if n.agency != enrolled {
                tracing::warn!(node, inventory = %n.agency, enrolled, "the inventory puts the node in another agency than it enrolled for; the inventory wins");
            }
            n.agency
        }
        None => {
            tracing::warn!(node, agency = enrolled, "node is not in the inventory: it gets no inventory and no policy; add it to inventory.toml");
            enrolled.to_string()
        }
    }
}

fn kind(m: &AgentMessage) -> &'static str {
    match m {
        AgentMessage::Enroll(_) => "Enroll",
        AgentMessage::Hello(_) => "Hello",
        AgentMessage::Batch(_) => "Batch",
        AgentMessage::Heartbeat(_) => "Heartbeat",
        AgentMessage::PolicyState(_) => "PolicyState",
        AgentMessage::ListFetch { .. } => "ListFetch",
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if simpul_proto::valid_code(id) {
        Ok(())
    } else {
        Err(format!("invalid node id {:?}", clip(id)))
    }
}

/// Text an agent sent, fit to show: 64 characters, control characters and
/// bidi overrides replaced.
fn clip(s: &str) -> String {
    simpul_proto::problem::clean_text(s, 64)
}

type PendingAck = oneshot::Receiver<Result<BatchOutcome, String>>;

/// Send the node its inventory and policy if it holds other versions.
async fn push(ws: &mut Ws, peer: &mut Peer, state: &AppState) -> Result<(), String> {
    if peer.wants_inventory {
        let inv: Arc<Inventory> = state.inventory.current();
        if inv.version != peer.inventory_version {
            if let Some(slice) = simpul_core::inventory::for_node(&inv, &peer.node_id) {
                send(ws, peer, &CollectorMessage::Inventory(slice)).await?;
                peer.inventory_version = inv.version;
                tracing::info!(node = %peer.node_id, version = inv.version, "inventory sent");
            }
        }
    }
    if peer.wants_policy {
        if let Some(p) = state.policies.latest(&peer.agency) {
            // Also when the node holds a newer version than this collector
            // knows (a collector restored from an older copy of its data,
            // a node moved to another agency): the agent refuses it as a
            // replay and reports it, where sending nothing would leave the
            // node shown as applied while it enforces what no version here
            // says.
            if p.policy.version != peer.policy_version {
                send(ws, peer, &CollectorMessage::Policy(p.signed())).await?;
                peer.policy_version = p.policy.version;
                tracing::info!(node = %peer.node_id, version = p.policy.version, "policy sent");
            }
        }
    }
    Ok(())
}

async fn stream(
    ws: &mut Ws,
    peer: &mut Peer,
    state: &AppState,
    kicked: &mut tokio::sync::watch::Receiver<Option<String>>,
) -> Result<(), String> {
    // Acks go out in batch order as the writer commits them, while reading goes on.
    let mut pending: FuturesOrdered<PendingAck> = FuturesOrdered::new();
    let mut pending_ids: std::collections::VecDeque<(u64, u64)> = Default::default();
    let mut last_persist = Instant::now();
    let silence = Duration::from_secs(state.config.nodes.down_after_secs.max(1) * 3);
    let mut inventory = state.inventory.subscribe();
    let mut policies = state.policies.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    push(ws, peer, state).await?;
    loop {
        tokio::select! {
            frame = tokio::time::timeout(silence, ws.next()) => {
                let frame = match frame {
                    Err(_) => return Err("agent silent past three heartbeat timeouts".into()),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => return Err(format!("websocket error: {e}")),
                    Ok(Some(Ok(f))) => f,
                };
                if let Message::Close(_) = frame {
                    return Ok(());
                }
                let Some((_, msg, _)) = decode(frame)? else { continue };
                match msg {
                    AgentMessage::Batch(mut batch) => {
                        validate(&batch)?;
                        let bounds = record_bounds(state, &peer.node_id);
                        let out = apply_bounds(&mut batch, &bounds);
                        if out.total() > 0 {
                            for (reason, n) in [("future", out.future), ("past", out.past), ("rate", out.rate)] {
                                if n > 0 {
                                    metrics::counter!("simpul_records_refused_total", "reason" => reason).increment(n);
                                }
                            }
                            tracing::warn!(node = %peer.node_id, batch = %format!("{}/{}", batch.boot_epoch, batch.seq), future = out.future, past = out.past, rate = out.rate, "records outside what can be true were not stored (agent clock? forged?)");
                            state.nodes.refused(&peer.node_id, out.total());
                        }
                        let foreign = foreign_records(&batch, &peer.agency);
                        if foreign > 0 {
                            metrics::counter!("simpul_records_foreign_agency_total").increment(foreign as u64);
                            if !peer.warned_foreign {
                                peer.warned_foreign = true;
                                tracing::warn!(node = %peer.node_id, agency = %peer.agency, records = foreign, "records name another agency than the inventory gives this node; they are stored under the node's agency (an agent still on an older inventory, or a forged claim)");
                            }
                        }
                        state.nodes.heard(&peer.node_id);
                        let (tx, rx) = oneshot::channel();
                        pending_ids.push_back((batch.boot_epoch, batch.seq));
                        state
                            .writer
                            .send(WriteJob::Batch {
                                node_id: peer.node_id.clone(),
                                agency: peer.agency.clone(),
                                strict_seq: peer.protocol >= 3,
                                batch: Box::new(batch),
                                done: tx,
                            })
                            .map_err(|_| "collector is shutting down".to_string())?;
                        pending.push_back(rx);
                    }
                    AgentMessage::Heartbeat(hb) => {
                        state.nodes.heartbeat(&peer.node_id, hb.sent_ms, &hb.health);
                        state.outage.heartbeat_with_health(
                            &peer.node_id,
                            &peer.agency,
                            hb.sent_ms,
                            &hb.health,
                        );
                        if last_persist.elapsed() >= SEEN_PERSIST_EVERY {
                            last_persist = Instant::now();
                            persist_seen(state, peer, Some(hb.health));
                        }
                    }
                    AgentMessage::PolicyState(s) => {
                        if let Some(e) = &s.error {
                            if e.len() > 4096 || s.problems.len() > 1000 {
                                return Err("policy state too large".into());
                            }
                        }
                        tracing::info!(node = %peer.node_id, version = s.version, state = s.state.name(), error = s.error.as_deref().unwrap_or(""), "policy state");
                        let policies = state.policies.clone();
                        let node = peer.node_id.clone();
                        let _ = tokio::task::spawn_blocking(move || policies.set_state(&node, &s)).await;
                    }
                    AgentMessage::ListFetch { sha256, offset } => {
                        if !peer.wants_lists {
                            return Err("ListFetch without the lists feature".into());
                        }
                        send_list_chunk(ws, peer, state, sha256, offset).await?;
                    }
                    other => return Err(format!("unexpected {} after authentication", kind(&other))),
                }
            }
            Some(done) = pending.next(), if !pending.is_empty() => {
                let (boot_epoch, seq) = pending_ids.pop_front().unwrap_or((0, 0));
                match done {
                    Ok(Ok(BatchOutcome::SequenceGap { expected, got, dropped })) => {
                        metrics::counter!("simpul_batches_refused_total", "reason" => "sequence").increment(1);
                        return Err(format!(
                            "batch {boot_epoch}/{got}: sequence gap (expected {expected}; the agent reports {dropped} more dropped batches); neither stored nor acknowledged (if this collector's database was restored from a backup: `simpul-collector accept-gap --node {}`)", peer.node_id
                        ));
                    }
                    Ok(Ok(_)) => send(ws, peer, &CollectorMessage::Ack { boot_epoch, seq }).await?,
                    Ok(Err(e)) => return Err(format!("storage error, batch {boot_epoch}/{seq} not stored: {e}")),
                    Err(_) => return Err("writer stopped".into()),
                }
            }
            Ok(()) = kicked.changed() => {
                let why = kicked.borrow().clone().unwrap_or_else(|| "ended by the collector".into());
                return Err(why);
            }
            Ok(()) = inventory.changed() => {
                // A node moved to another agency speaks for the new one
                // from now on, in this session too.
                if let Some(n) = state.inventory.node(&peer.node_id) {
                    if n.agency != peer.agency {
                        tracing::info!(node = %peer.node_id, from = %peer.agency, to = %n.agency, "node moved to another agency by the inventory");
                        peer.agency = n.agency;
                        peer.warned_foreign = false;
                    }
                }
                push(ws, peer, state).await?
            }
            Ok(()) = policies.changed() => push(ws, peer, state).await?,
            () = shutdown.wait() => {
                // Acknowledge what is committed; the rest is re-sent to the
                // next collector run, which drops what it already has.
                while let Ok(Some(Ok(Ok(BatchOutcome::Stored | BatchOutcome::Duplicate)))) = tokio::time::timeout(Duration::from_millis(500), pending.next()).await {
                    let (boot_epoch, seq) = pending_ids.pop_front().unwrap_or((0, 0));
                    send(ws, peer, &CollectorMessage::Ack { boot_epoch, seq }).await?;
                }
                return Ok(());
            }
        }
    }
}

/// One chunk of a list the node's policy names (a hash no policy of its
/// agency names is not served: the node has no business with it).
async fn send_list_chunk(
    ws: &mut Ws,
    peer: &Peer,
    state: &AppState,
    sha256: String,
    offset: u64,
) -> Result<(), String> {
    let named = state
        .policies
        .latest(&peer.agency)
        .is_some_and(|p| p.policy.blocking.lists.values().any(|r| r.sha256 == sha256));
    let reply = if !named {
        CollectorMessage::ListUnavailable {
            reason: "no policy of this node's agency names this list".into(),
            sha256: simpul_proto::problem::clean_text(&sha256, 80),
        }
    } else {
        let lists = state.lists.clone();
        let sha = sha256.clone();
        let read =
            tokio::task::spawn_blocking(move || lists.chunk(&sha, offset, wire::LIST_CHUNK_BYTES))
                .await
                .map_err(|e| format!("list read: {e}"))?;
        match read {
            Ok((total, data)) => {
                metrics::counter!("simpul_list_bytes_sent_total").increment(data.len() as u64);
                metrics::counter!("simpul_list_chunks_sent_total").increment(1);
                if offset + data.len() as u64 == total {
                    tracing::info!(node = %peer.node_id, sha256 = %sha256, bytes = total, "list sent to the end");
                }
                CollectorMessage::ListChunk {
                    sha256,
                    offset,
                    total,
                    data,
                }
            }
            Err(e) => CollectorMessage::ListUnavailable {
                sha256,
                reason: e.to_string(),
            },
        }
    };
    send(ws, peer, &reply).await
}

fn persist_seen(state: &AppState, peer: &Peer, health: Option<simpul_proto::wire::Health>) {
    let control = state.control.clone();
    let (node, address, version, hostname) = (
        peer.node_id.clone(),
        peer.address.clone(),
        peer.version.clone(),
        peer.hostname.clone(),
    );
    tokio::task::spawn_blocking(move || {
        if let Err(e) = control.node_seen(
            &node,
            &address,
            &version,
            &hostname,
            health.as_ref(),
            SystemTime::now(),
        ) {
            tracing::warn!(node = %node, error = %e, "cannot record node status");
        }
    });
}

/// Times of a record (Unix ns) that could be true: it ends no earlier than
/// it starts. Bounds against the collector's clock are [`Bounds`]: they drop
/// single records, never the batch (a refused batch stays in the agent's
/// spool and is re-sent for ever).
fn plausible_times(first_seen: u64, last_seen: u64) -> bool {
    first_seen <= last_seen
}

/// What a stored record may claim: not ending more than a day after the
/// collector's now (a clock that far ahead is broken, and a record dated
/// 2100 would pin a retention chunk for ever), not starting before what
/// retention keeps, and for per-second counters no more than twice the
/// node's uplink (or 100 Gbit/s when the inventory names none).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub earliest_ns: u64,
    pub latest_ns: u64,
    /// Bytes one counter second may hold, each way.
    pub max_bytes_per_sec: u64,
}

impl Bounds {
    pub fn new(now_ns: u64, retention_days: u32, uplink_bps: Option<u64>) -> Bounds {
        const DAY_NS: u64 = 86_400 * 1_000_000_000;
        let bps = uplink_bps.filter(|b| *b > 0).unwrap_or(100_000_000_000);
        Bounds {
            earliest_ns: now_ns.saturating_sub((u64::from(retention_days) + 1) * DAY_NS),
            latest_ns: now_ns.saturating_add(DAY_NS),
            max_bytes_per_sec: bps.saturating_mul(2) / 8,
        }
    }

    fn time_ok(&self, first_ns: u64, last_ns: u64) -> bool {
        first_ns >= self.earliest_ns && last_ns <= self.latest_ns
    }
}

/// Records a batch may not keep, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub future: u64,
    pub past: u64,
    pub rate: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.future + self.past + self.rate
    }
}

/// Take out the records outside `b`; what is left is stored.
pub fn apply_bounds(batch: &mut Batch, b: &Bounds) -> Dropped {
    let mut d = Dropped::default();
    let judge = |first: u64, last: u64, d: &mut Dropped| {
        if last > b.latest_ns {
            d.future += 1;
            false
        } else if first < b.earliest_ns {
            d.past += 1;
            false
        } else {
            true
        }
    };
    batch
        .flows
        .retain(|f| judge(f.first_seen, f.last_seen, &mut d));
    batch
        .blocked
        .retain(|a| judge(a.first_seen, a.last_seen, &mut d));
    batch.counters.retain(|c| {
        let ns = c.ts.saturating_mul(1_000_000_000);
        if !b.time_ok(ns, ns) {
            if ns > b.latest_ns {
                d.future += 1;
            } else {
                d.past += 1;
            }
            false
        } else if c.bytes_in > b.max_bytes_per_sec || c.bytes_out > b.max_bytes_per_sec {
            d.rate += 1;
            false
        } else {
            true
        }
    });
    d
}

/// The bounds for a node's records now.
fn record_bounds(state: &AppState, node: &str) -> Bounds {
    let now_ns = u64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    )
    .unwrap_or(u64::MAX);
    let uplink = state
        .inventory
        .node(node)
        .and_then(|n| n.uplink)
        .map(|c| c.down_bps.max(c.up_bps));
    Bounds::new(now_ns, state.config.storage.flow_retention_days, uplink)
}

/// Records whose agency is neither `agency` nor unknown. The store files
/// every record of a session under the node's agency whatever the record
/// says, so these are counted, never refused: an agent attributes with the
/// inventory it holds, which lags a move at the collector by a batch or two,
/// and a batch refused for that would be re-sent and refused for ever.
fn foreign_records(batch: &Batch, agency: &str) -> usize {
    let foreign = |a: &str| a != agency && a != UNKNOWN;
    batch.flows.iter().filter(|f| foreign(&f.agency)).count()
        + batch.counters.iter().filter(|c| foreign(&c.agency)).count()
        + batch.blocked.iter().filter(|b| foreign(&b.agency)).count()
}

/// Refuse a batch that is absurd, before any of it is written.
fn validate(batch: &Batch) -> Result<(), String> {
    let records = batch.flows.len() + batch.counters.len() + batch.blocked.len();
    if records > MAX_RECORDS_PER_BATCH {
        return Err(format!(
            "batch {}/{} holds {records} records (limit {MAX_RECORDS_PER_BATCH})",
            batch.boot_epoch, batch.seq,
        ));
    }
    for f in &batch.flows {
        let long = [
            Some(f.proto.as_str()),
            Some(f.agency.as_str()),
            Some(f.unit.as_str()),
            f.sni.as_deref(),
            f.http_host.as_deref(),
            f.dns_query.as_deref(),
            f.site.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|s| s.len() > MAX_STRING);
        if long {
            return Err(format!(
                "batch {}/{}: a string field exceeds {MAX_STRING} bytes",
                batch.boot_epoch, batch.seq
            ));
        }
        if !plausible_times(f.first_seen, f.last_seen) {
            return Err(format!(
                "batch {}/{}: flow {} ends before it starts",
                batch.boot_epoch, batch.seq, f.flow_id
            ));
        }
    }
    for c in &batch.counters {
        if c.unit.len() > MAX_STRING || c.agency.len() > MAX_STRING {
            return Err(format!(
                "batch {}/{}: unit name too long",
                batch.boot_epoch, batch.seq
            ));
        }
    }
    for (i, b) in batch.blocked.iter().enumerate() {
        validate_blocked(b).map_err(|why| {
            format!(
                "batch {}/{}: blocked attempt {i} (target {:?}): {why}",
                batch.boot_epoch,
                batch.seq,
                clip(&b.target)
            )
        })?;
    }
    Ok(())
}

/// One blocked attempt; the error says what is wrong with it.
fn validate_blocked(b: &simpul_proto::BlockedAttempt) -> Result<(), String> {
    if b.target.is_empty() {
        return Err("target is empty".into());
    }
    if b.target.len() > MAX_TARGET {
        return Err(format!(
            "target of {} bytes (limit {MAX_TARGET})",
            b.target.len()
        ));
    }
    for (name, v) in [
        ("agency", &b.agency),
        ("unit", &b.unit),
        ("rule", &b.rule),
        ("list", &b.list),
        ("proto", &b.proto),
    ] {
        if v.len() > MAX_STRING {
            return Err(format!("{name} of {} bytes (limit {MAX_STRING})", v.len()));
        }
    }
    if b.attempts == 0 {
        return Err("attempts is 0 (a record is at least one attempt)".into());
    }
    if !plausible_times(b.first_seen, b.last_seen) {
        return Err(format!(
            "last_seen {} is before first_seen {}",
            b.last_seen, b.first_seen
        ));
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::{BlockMethod, BlockedAttempt};

    fn attempt() -> BlockedAttempt {
        BlockedAttempt {
            first_seen: 1_764_236_140_000_000_000,
            last_seen: 1_764_236_140_500_000_000,
            client: "10.1.1.20".parse().unwrap(),
            agency: "dinkes".into(),
            unit: "sekretariat".into(),
            method: BlockMethod::Sni,
            target: "slot88.example".into(),
            server: Some("198.51.100.7".parse().unwrap()),
            port: Some(443),
            proto: "tcp".into(),
            rule: "slot88.example".into(),
            list: "judi".into(),
            attempts: 3,
        }
    }

    fn check(a: BlockedAttempt) -> Result<(), String> {
        let batch = Batch {
            boot_epoch: 1,
            seq: 9,
            sealed_ms: 0,
            flows: vec![],
            counters: vec![],
            blocked: vec![attempt(), a],
            dropped_records: 0,
            dropped_batches: 0,
        };
        validate(&batch)
    }

    #[test]
    fn blocked_attempts_are_validated() {
        assert_eq!(check(attempt()), Ok(()));
        let unknown = BlockedAttempt {
            agency: UNKNOWN.into(),
            unit: UNKNOWN.into(),
            ..attempt()
        };
        assert_eq!(check(unknown), Ok(()));
        let v6 = BlockedAttempt {
            method: BlockMethod::Address,
            target: "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535".into(),
            ..attempt()
        };
        assert_eq!(check(v6), Ok(()));
        let longest_name = BlockedAttempt {
            target: format!("{}.example", "a".repeat(MAX_TARGET - 8)),
            ..attempt()
        };
        assert_eq!(check(longest_name), Ok(()));
        let same_instant = BlockedAttempt {
            first_seen: 5,
            last_seen: 5,
            ..attempt()
        };
        assert_eq!(check(same_instant), Ok(()));

        let refused = |a: BlockedAttempt, why: &str| {
            let e = check(a).expect_err(why);
            assert!(
                e.starts_with("batch 1/9: blocked attempt 1 (target ") && e.contains(why),
                "{why:?} not in {e:?}"
            );
        };
        // Another agency's name is counted, never refused (the store files
        // the record under the node's agency).
        let other = BlockedAttempt {
            agency: "bappeda".into(),
            ..attempt()
        };
        assert_eq!(check(other.clone()), Ok(()));
        let batch = Batch {
            boot_epoch: 1,
            seq: 9,
            sealed_ms: 0,
            flows: vec![],
            counters: vec![],
            blocked: vec![attempt(), other],
            dropped_records: 0,
            dropped_batches: 0,
        };
        assert_eq!(foreign_records(&batch, "dinkes"), 1);
        assert_eq!(foreign_records(&batch, "bappeda"), 1);
        refused(
            BlockedAttempt {
                target: "a".repeat(MAX_TARGET + 1),
                ..attempt()
            },
            "target of 254 bytes (limit 253)",
        );
        refused(
            BlockedAttempt {
                target: String::new(),
                ..attempt()
            },
            "target is empty",
        );
        for (field, set) in [
            (
                "unit",
                (|a: &mut BlockedAttempt, v| a.unit = v) as fn(&mut BlockedAttempt, String),
            ),
            ("rule", |a, v| a.rule = v),
            ("list", |a, v| a.list = v),
            ("proto", |a, v| a.proto = v),
        ] {
            let mut a = attempt();
            set(&mut a, "x".repeat(MAX_STRING + 1));
            refused(a, &format!("{field} of 513 bytes (limit 512)"));
        }
        refused(
            BlockedAttempt {
                attempts: 0,
                ..attempt()
            },
            "attempts is 0",
        );
        refused(
            BlockedAttempt {
                first_seen: 10,
                last_seen: 9,
                ..attempt()
            },
            "last_seen 9 is before first_seen 10",
        );
        // A hostile target is clipped in the reason, not echoed whole.
        let e = check(BlockedAttempt {
            target: "z".repeat(100_000),
            ..attempt()
        })
        .unwrap_err();
        assert!(e.len() < 300, "{} bytes", e.len());
    }

    #[test]
    fn records_outside_what_can_be_true_are_dropped_not_the_batch() {
        const S: u64 = 1_000_000_000;
        let now = 1_800_000_000 * S;
        let b = Bounds::new(now, 30, Some(100_000_000));
        let mut batch = Batch {
            boot_epoch: 1,
            seq: 1,
            sealed_ms: 0,
            flows: vec![],
            counters: vec![],
            blocked: vec![
                attempt(),
                BlockedAttempt {
                    first_seen: 4_102_444_800 * S,
                    last_seen: 4_102_444_800 * S,
                    ..attempt()
                },
            ],
            dropped_records: 0,
            dropped_batches: 0,
        };
        let counter = |ts: u64, bytes: u64| simpul_proto::CounterSample {
            ts,
            agency: "dinkes".into(),
            unit: "u".into(),
            scope: simpul_proto::TrafficScope::Internet,
            bytes_in: bytes,
            bytes_out: 0,
            packets_in: 1,
            packets_out: 0,
        };
        batch.counters = vec![
            counter(1_800_000_000, 12_500_000),
            // 2^53 bytes in a second: 72 Pbit/s on a 100 Mbit/s router.
            counter(1_800_000_000, 1 << 53),
            // A year and a day before now: older than retention.
            counter(1_800_000_000 - 400 * 86_400, 10),
            counter(1_800_000_000 + 2 * 86_400, 10),
        ];
        batch.blocked[0].first_seen = now - S;
        batch.blocked[0].last_seen = now;
        let d = apply_bounds(&mut batch, &b);
        assert_eq!(
            d,
            Dropped {
                future: 2,
                past: 1,
                rate: 1
            }
        );
        assert_eq!((batch.counters.len(), batch.blocked.len()), (1, 1));
        assert_eq!(batch.counters[0].bytes_in, 12_500_000);
    }

    #[test]
    fn sequence_gaps_need_reported_drops() {
        use crate::store::sequence_check;
        // In order, a re-send, and a gap the drops explain.
        assert_eq!(sequence_check(10, 0, 11, 0, true), None);
        assert_eq!(
            sequence_check(10, 0, 10, 0, true),
            Some(BatchOutcome::Duplicate)
        );
        assert_eq!(sequence_check(10, 2, 14, 5, true), None);
        // A forged jump to the end of the sequence is refused...
        assert_eq!(
            sequence_check(10, 0, u64::MAX, 0, true),
            Some(BatchOutcome::SequenceGap {
                expected: 11,
                got: u64::MAX,
                dropped: 0
            })
        );
        // ...as is a gap larger than the new drops, or drops going back.
        assert!(matches!(
            sequence_check(10, 2, 15, 5, true),
            Some(BatchOutcome::SequenceGap { .. })
        ));
        assert!(matches!(
            sequence_check(10, 5, 11, 4, true),
            Some(BatchOutcome::SequenceGap { .. })
        ));
        // A protocol-2 agent reports no drops: its gaps are not held against it.
        assert_eq!(sequence_check(10, 0, 20, 0, false), None);
    }

    #[test]
    fn record_limit_counts_blocked_attempts() {
        let batch = Batch {
            boot_epoch: 1,
            seq: 1,
            sealed_ms: 0,
            flows: vec![],
            counters: vec![],
            blocked: vec![attempt(); MAX_RECORDS_PER_BATCH + 1],
            dropped_records: 0,
            dropped_batches: 0,
        };
        let e = validate(&batch).unwrap_err();
        assert!(e.contains("limit 200000"), "{e}");
    }
}

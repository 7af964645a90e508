//! One agent connection: authenticate (enroll or hello), then accept batches
//! and heartbeats. Anything hostile or malformed closes the connection with a
//! logged reason; nothing of a refused batch is written.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use simpul_proto::wire::{self, AgentMessage, Batch, CollectorMessage};
use simpul_proto::UNKNOWN;
use tokio::sync::oneshot;

use crate::ingest::WriteJob;
use crate::state::AppState;
use crate::store::BatchOutcome;

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Node status is persisted at most this often per node (heartbeats are more frequent).
const SEEN_PERSIST_EVERY: Duration = Duration::from_secs(2);
/// Bounds on what one batch may hold.
const MAX_RECORDS_PER_BATCH: usize = 200_000;
const MAX_STRING: usize = 512;

/// Who is on the other end, once authenticated.
struct Peer {
    node_id: String,
    agency: String,
    version: String,
    hostname: String,
    address: String,
}

pub async fn session(mut socket: WebSocket, addr: SocketAddr, state: AppState) {
    metrics::gauge!("simpul_agent_connections").increment(1.0);
    let peer = match authenticate(&mut socket, addr, &state).await {
        Ok(p) => p,
        Err(reason) => {
            metrics::counter!("simpul_agent_refused_total").increment(1);
            tracing::warn!(peer = %addr, %reason, "agent refused");
            refuse(&mut socket, &reason).await;
            metrics::gauge!("simpul_agent_connections").decrement(1.0);
            return;
        }
    };
    tracing::info!(node = %peer.node_id, agency = %peer.agency, peer = %addr, version = %peer.version, "agent connected");
    state
        .nodes
        .connected(&peer.node_id, &peer.agency, &peer.address);
    persist_seen(&state, &peer, None);
    let reason = stream(&mut socket, &peer, &state).await;
    match &reason {
        Ok(()) => tracing::info!(node = %peer.node_id, "agent disconnected"),
        Err(r) => {
            tracing::warn!(node = %peer.node_id, peer = %addr, reason = %r, "agent connection closed");
            refuse(&mut socket, r).await;
        }
    }
    state.nodes.disconnected(&peer.node_id);
    metrics::gauge!("simpul_agent_connections").decrement(1.0);
}

async fn refuse(socket: &mut WebSocket, reason: &str) {
    let msg = CollectorMessage::Refused {
        reason: reason.to_string(),
    };
    let _ = socket
        .send(Message::Binary(wire::encode(&msg).into()))
        .await;
    let _ = socket.send(Message::Close(None)).await;
}

/// Decode one frame; `Ok(None)` for frames that carry no message (ping/pong).
fn decode(msg: Message) -> Result<Option<AgentMessage>, String> {
    match msg {
        Message::Binary(b) => wire::decode(&b).map(Some).map_err(|e| e.to_string()),
        Message::Text(t) => wire::decode_json(t.as_str())
            .map(Some)
            .map_err(|e| e.to_string()),
        Message::Ping(_) | Message::Pong(_) => Ok(None),
        Message::Close(_) => Err("closed by agent".into()),
    }
}

async fn send(socket: &mut WebSocket, msg: &CollectorMessage, json: bool) -> Result<(), String> {
    let frame = if json {
        Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
    } else {
        Message::Binary(wire::encode(msg).into())
    };
    socket
        .send(frame)
        .await
        .map_err(|e| format!("send failed: {e}"))
}

async fn authenticate(
    socket: &mut WebSocket,
    addr: SocketAddr,
    state: &AppState,
) -> Result<Peer, String> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv())
        .await
        .map_err(|_| "no Hello/Enroll within 10 s".to_string())?
        .ok_or("connection closed before Hello")?
        .map_err(|e| format!("websocket error: {e}"))?;
    let json = matches!(first, Message::Text(_));
    let msg = decode(first)?.ok_or("expected Hello or Enroll first")?;
    let store = state.store.clone();
    match msg {
        AgentMessage::Enroll(e) => {
            check_id(&e.node_id)?;
            let (tx, rx) = oneshot::channel();
            state
                .writer
                .send(WriteJob::Enroll {
                    node_id: e.node_id.clone(),
                    token: e.token.clone(),
                    done: tx,
                })
                .map_err(|_| "collector is shutting down".to_string())?;
            let (credential, agency) = rx.await.map_err(|_| "writer stopped".to_string())??;
            send(
                socket,
                &CollectorMessage::Enrolled {
                    node_id: e.node_id.clone(),
                    credential,
                    agency: agency.clone(),
                },
                json,
            )
            .await?;
            tracing::info!(node = %e.node_id, %agency, "node enrolled");
            state.audit(&format!(
                "node {} enrolled for agency {agency} from {addr}",
                e.node_id
            ));
            Ok(Peer {
                node_id: e.node_id,
                agency,
                version: clip(&e.agent_version),
                hostname: clip(&e.hostname),
                address: addr.to_string(),
            })
        }
        AgentMessage::Hello(h) => {
            check_id(&h.node_id)?;
            let node_id = h.node_id.clone();
            let credential = h.credential.clone();
            let agency = tokio::task::spawn_blocking(move || {
                store
                    .reader()
                    .map_err(|e| e.to_string())?
                    .authenticate(&node_id, &credential)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
            send(
                socket,
                &CollectorMessage::Welcome {
                    node_id: h.node_id.clone(),
                    agency: agency.clone(),
                    heartbeat_interval_ms: state.config.nodes.heartbeat_interval_ms,
                },
                json,
            )
            .await?;
            Ok(Peer {
                node_id: h.node_id,
                agency,
                version: clip(&h.agent_version),
                hostname: clip(&h.hostname),
                address: addr.to_string(),
            })
        }
        other => Err(format!(
            "expected Hello or Enroll first, got {}",
            kind(&other)
        )),
    }
}

fn kind(m: &AgentMessage) -> &'static str {
    match m {
        AgentMessage::Enroll(_) => "Enroll",
        AgentMessage::Hello(_) => "Hello",
        AgentMessage::Batch(_) => "Batch",
        AgentMessage::Heartbeat(_) => "Heartbeat",
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if crate::config::valid_code(id) {
        Ok(())
    } else {
        Err(format!("invalid node id {:?}", clip(id)))
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

type PendingAck = oneshot::Receiver<Result<BatchOutcome, String>>;

async fn stream(socket: &mut WebSocket, peer: &Peer, state: &AppState) -> Result<(), String> {
    let json = false;
    // Acks go out in batch order as the writer commits them, while reading goes on.
    let mut pending: FuturesOrdered<PendingAck> = FuturesOrdered::new();
    let mut pending_ids: std::collections::VecDeque<(u64, u64)> = Default::default();
    let mut last_persist = Instant::now();
    let silence = Duration::from_secs(state.config.nodes.down_after_secs.max(1) * 3);
    loop {
        tokio::select! {
            frame = tokio::time::timeout(silence, socket.recv()) => {
                let frame = match frame {
                    Err(_) => return Err("agent silent past three heartbeat timeouts".into()),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => return Err(format!("websocket error: {e}")),
                    Ok(Some(Ok(f))) => f,
                };
                if let Message::Close(_) = frame {
                    return Ok(());
                }
                let Some(msg) = decode(frame)? else { continue };
                match msg {
                    AgentMessage::Batch(batch) => {
                        validate(&batch, &peer.agency)?;
                        state.nodes.heard(&peer.node_id);
                        let (tx, rx) = oneshot::channel();
                        pending_ids.push_back((batch.boot_epoch, batch.seq));
                        state
                            .writer
                            .send(WriteJob::Batch {
                                node_id: peer.node_id.clone(),
                                agency: peer.agency.clone(),
                                batch: Box::new(batch),
                                done: tx,
                            })
                            .map_err(|_| "collector is shutting down".to_string())?;
                        pending.push_back(rx);
                    }
                    AgentMessage::Heartbeat(hb) => {
                        state.nodes.heartbeat(&peer.node_id, hb.sent_ms, &hb.health);
                        if last_persist.elapsed() >= SEEN_PERSIST_EVERY {
                            last_persist = Instant::now();
                            persist_seen(state, peer, Some(hb.health));
                        }
                    }
                    other => return Err(format!("unexpected {} after authentication", kind(&other))),
                }
            }
            Some(done) = pending.next(), if !pending.is_empty() => {
                let (boot_epoch, seq) = pending_ids.pop_front().unwrap_or((0, 0));
                match done {
                    Ok(Ok(_)) => send(socket, &CollectorMessage::Ack { boot_epoch, seq }, json).await?,
                    Ok(Err(e)) => return Err(format!("storage error, batch {boot_epoch}/{seq} not stored: {e}")),
                    Err(_) => return Err("writer stopped".into()),
                }
            }
        }
    }
}

fn persist_seen(state: &AppState, peer: &Peer, health: Option<simpul_proto::wire::Health>) {
    let _ = state.writer.try_send(WriteJob::NodeSeen {
        node_id: peer.node_id.clone(),
        address: peer.address.clone(),
        version: peer.version.clone(),
        hostname: peer.hostname.clone(),
        health: health.map(Box::new),
        at_secs: crate::state::now_secs(),
    });
}

/// Refuse a batch that speaks for another agency or is absurd, before any of it is written.
fn validate(batch: &Batch, agency: &str) -> Result<(), String> {
    if batch.flows.len() + batch.counters.len() > MAX_RECORDS_PER_BATCH {
        return Err(format!(
            "batch {}/{} holds {} records (limit {MAX_RECORDS_PER_BATCH})",
            batch.boot_epoch,
            batch.seq,
            batch.flows.len() + batch.counters.len()
        ));
    }
    let allowed = |a: &str| a == agency || a == UNKNOWN;
    for f in &batch.flows {
        if !allowed(&f.agency) {
            return Err(format!(
                "batch {}/{}: flow record for agency {:?} but this node speaks for {agency:?}",
                batch.boot_epoch,
                batch.seq,
                clip(&f.agency)
            ));
        }
        let long = [
            Some(f.proto.as_str()),
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
        if f.last_seen < f.first_seen {
            return Err(format!(
                "batch {}/{}: flow {} ends before it starts",
                batch.boot_epoch, batch.seq, f.flow_id
            ));
        }
    }
    for c in &batch.counters {
        if !allowed(&c.agency) {
            return Err(format!(
                "batch {}/{}: counters for agency {:?} but this node speaks for {agency:?}",
                batch.boot_epoch,
                batch.seq,
                clip(&c.agency)
            ));
        }
        if c.unit.len() > MAX_STRING {
            return Err(format!(
                "batch {}/{}: unit name too long",
                batch.boot_epoch, batch.seq
            ));
        }
    }
    Ok(())
}

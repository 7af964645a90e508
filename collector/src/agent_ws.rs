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
/// A blocked attempt's target: a DNS name (at most 253 bytes written out) or
/// `address:port` (at most 53 bytes: `[IPv6]:65535`).
const MAX_TARGET: usize = 253;

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
    state.outage.opened(&peer.node_id, &peer.agency);
    state.outage.heartbeat(&peer.node_id, &peer.agency);
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
    state.outage.closed(&peer.node_id);
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

/// Times of a record (Unix ns) that could be true: it ends no earlier than
/// it starts. There is deliberately no bound against the collector's clock: a
/// refused batch stays in the agent's spool and is re-sent forever, so an
/// agent with a wrong clock would stop reporting altogether.
fn plausible_times(first_seen: u64, last_seen: u64) -> bool {
    first_seen <= last_seen
}

/// Refuse a batch that speaks for another agency or is absurd, before any of it is written.
fn validate(batch: &Batch, agency: &str) -> Result<(), String> {
    let records = batch.flows.len() + batch.counters.len() + batch.blocked.len();
    if records > MAX_RECORDS_PER_BATCH {
        return Err(format!(
            "batch {}/{} holds {records} records (limit {MAX_RECORDS_PER_BATCH})",
            batch.boot_epoch, batch.seq,
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
        if !plausible_times(f.first_seen, f.last_seen) {
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
    for (i, b) in batch.blocked.iter().enumerate() {
        validate_blocked(b, agency, allowed(&b.agency)).map_err(|why| {
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
fn validate_blocked(
    b: &simpul_proto::BlockedAttempt,
    agency: &str,
    agency_ok: bool,
) -> Result<(), String> {
    if !agency_ok {
        return Err(format!(
            "for agency {:?} but this node speaks for {agency:?}",
            clip(&b.agency)
        ));
    }
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
        };
        validate(&batch, "dinkes")
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
        refused(
            BlockedAttempt {
                agency: "bappeda".into(),
                ..attempt()
            },
            "for agency \"bappeda\" but this node speaks for \"dinkes\"",
        );
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
    fn record_limit_counts_blocked_attempts() {
        let batch = Batch {
            boot_epoch: 1,
            seq: 1,
            sealed_ms: 0,
            flows: vec![],
            counters: vec![],
            blocked: vec![attempt(); MAX_RECORDS_PER_BATCH + 1],
            dropped_records: 0,
        };
        let e = validate(&batch, "dinkes").unwrap_err();
        assert!(e.contains("limit 200000"), "{e}");
    }
}

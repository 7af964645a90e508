//! The dashboard's live feed: one overview per second, computed once and
//! broadcast to every open page; a snapshot with 15 minutes of per-second
//! history when a page connects.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::api::overview_end;
use crate::state::AppState;

const HISTORY_SECS: u64 = 15 * 60;
const WINDOW_SECS: u32 = 5;

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
        if state.live.receiver_count() == 0 {
            continue;
        }
        let end = overview_end();
        let s = state.clone();
        let ov = tokio::task::spawn_blocking(move || {
            let r = s.flows.reader()?;
            let ov = crate::service::overview(&s, r.as_ref(), end, WINDOW_SECS)?;
            // The chart's point is the newest complete second, like the
            // snapshot's per-second series (the overview is a 5 s average).
            let last = secs_of(end).saturating_sub(1);
            let latest = r.usage_series_since(last)?;
            Ok::<_, crate::store::StoreError>((ov, latest, last))
        })
        .await;
        let (mut ov, latest, last) = match ov {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "live overview failed");
                continue;
            }
            Err(_) => continue,
        };
        // The nodes as the outage detector sees them.
        crate::api::overview_liveness(&state.outage, &mut ov);
        let value = match serde_json::to_value(&ov) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let ts = simpul_proto::time_format::rfc3339(last * 1_000_000_000);
        let mut points = serde_json::Map::new();
        if let Some(list) = value.get("agencies").and_then(|a| a.as_array()) {
            for a in list {
                if let Some(code) = a.get("code").and_then(|c| c.as_str()) {
                    let (inb, outb) = latest
                        .get(code)
                        .and_then(|pts| pts.iter().find(|p| p.ts == ts))
                        .map_or((0, 0), |p| (p.in_bps, p.out_bps));
                    points.insert(
                        code.to_string(),
                        json!({"ts": ts, "in_bps": inb, "out_bps": outb}),
                    );
                }
            }
        }
        let msg = json!({"type": "tick", "overview": value, "points": points}).to_string();
        let _ = state.live.send(Arc::from(msg));
    }
}

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.on_upgrade(move |socket| feed(socket, state))
}

async fn feed(mut socket: WebSocket, state: AppState) {
    // Subscribe first so no tick falls between the snapshot and the stream.
    let mut rx = state.live.subscribe();
    let mut stop = state.shutdown.subscribe();
    let end = overview_end();
    let s = state.clone();
    let snapshot = tokio::task::spawn_blocking(move || {
        let r = s.flows.reader()?;
        let mut ov = crate::service::overview(&s, r.as_ref(), end, WINDOW_SECS)?;
        crate::api::overview_liveness(&s.outage, &mut ov);
        let end_secs = end
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let series = r.usage_series_since(end_secs.saturating_sub(HISTORY_SECS))?;
        Ok::<_, crate::store::StoreError>(
            json!({"type": "snapshot", "overview": ov, "series": series}),
        )
    })
    .await;
    let snapshot = match snapshot {
        Ok(Ok(s)) => s.to_string(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "live snapshot failed");
            return;
        }
        Err(_) => return,
    };
    if socket.send(Message::Text(snapshot.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(text) => {
                    if socket.send(Message::Text(text.to_string().into())).await.is_err() {
                        return;
                    }
                }
                // A slow page skips ticks rather than slowing everyone.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            () = stop.wait() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

//! What one open wall costs on the wire: `CLIENTS` live-feed clients on a
//! running collector (the province demo in bench/live.sh), each counting
//! the bytes it reads from its socket (after permessage-deflate, as a
//! browser receives them), rebuilding the overview from the snapshot and
//! the patches like dashboard/live.js, and checking that no patch is
//! missed. Reports the first message (handshake answer + snapshot) and the
//! steady state per client after `WARMUP` seconds.
//!
//! Run with `cargo run --release -p simpul-demo --example live_bytes --
//! ADDR TOKEN [CLIENTS] [SECS] [--plain | --per-message]` (`--plain`: offer
//! no deflate; `--per-message`: ask for no context takeover, i.e. each
//! message compressed on its own, as compressed binary frames inflated with
//! the browser's DecompressionStream would be).
//! One JSON line.

// A benchmark: a failed unwrap is a broken benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

#[path = "../../collector/tests/common/live_client.rs"]
mod live_client;

use std::time::{Duration, Instant};

use live_client::{LiveClient, Mirror};
use serde_json::json;

const WARMUP: Duration = Duration::from_secs(5);

struct Figures {
    first_bytes: u64,
    steady_bytes: u64,
    steady_text: u64,
    secs: f64,
    deltas: u64,
    full_overview: usize,
    nodes: usize,
    agencies: usize,
    deflate: bool,
}

async fn one(
    addr: std::net::SocketAddr,
    token: String,
    secs: u64,
    offer: Option<&'static str>,
) -> Figures {
    let mut c = LiveClient::connect(addr, &token, offer).await.unwrap();
    let mut m = Mirror::default();
    assert_eq!(m.take(&c.next_text().await.unwrap()).unwrap(), "snapshot");
    let first_bytes = c.wire_bytes;
    let warm = Instant::now() + WARMUP;
    while Instant::now() < warm {
        m.take(&c.next_text().await.unwrap()).unwrap();
    }
    let (w0, t0, d0, s0) = (c.wire_bytes, c.text_bytes, m.deltas, Instant::now());
    let end = s0 + Duration::from_secs(secs);
    while Instant::now() < end {
        let text = c.next_text().await.unwrap();
        m.take(&text).unwrap();
    }
    Figures {
        first_bytes,
        steady_bytes: c.wire_bytes - w0,
        steady_text: c.text_bytes - t0,
        secs: s0.elapsed().as_secs_f64(),
        deltas: m.deltas - d0,
        full_overview: m.overview.to_string().len(),
        nodes: m.overview["nodes"].as_array().map_or(0, Vec::len),
        agencies: m.overview["agencies"].as_array().map_or(0, Vec::len),
        deflate: c.deflate,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let offer = if args.iter().any(|a| a == "--plain") {
        None
    } else if args.iter().any(|a| a == "--per-message") {
        Some(live_client::PER_MESSAGE_OFFER)
    } else {
        Some(live_client::BROWSER_OFFER)
    };
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let addr: std::net::SocketAddr = pos[0].parse().unwrap();
    let token = pos[1].clone();
    let clients: usize = pos.get(2).map_or(10, |v| v.parse().unwrap());
    let secs: u64 = pos.get(3).map_or(60, |v| v.parse().unwrap());
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(one(addr, token.clone(), secs, offer)))
        .collect();
    let mut figs = Vec::new();
    for t in tasks {
        figs.push(t.await.unwrap());
    }
    let per_sec: Vec<f64> = figs
        .iter()
        .map(|f| f.steady_bytes as f64 / f.secs)
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let f0 = &figs[0];
    println!(
        "{}",
        json!({
            "clients": clients,
            "secs": secs,
            "deflate": f0.deflate,
            "nodes": f0.nodes,
            "agencies": f0.agencies,
            "first_message_bytes": mean(&figs.iter().map(|f| f.first_bytes as f64).collect::<Vec<_>>()).round(),
            "steady_bytes_per_sec": (mean(&per_sec) * 10.0).round() / 10.0,
            "steady_bytes_per_sec_max": (per_sec.iter().cloned().fold(0.0, f64::max) * 10.0).round() / 10.0,
            "inflated_bytes_per_sec": (mean(&figs.iter().map(|f| f.steady_text as f64 / f.secs).collect::<Vec<_>>()) * 10.0).round() / 10.0,
            "deltas_per_sec": (mean(&figs.iter().map(|f| f.deltas as f64 / f.secs).collect::<Vec<_>>()) * 100.0).round() / 100.0,
            "full_overview_bytes": f0.full_overview,
        })
    );
}

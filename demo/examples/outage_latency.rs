//! Detection and delivery latency of node outages, over many cuts.
//!
//! A real collector (in-process, default detection settings, a webhook
//! channel) and `NODES` real agent links (`simpul_agent::link::Uplink`,
//! TLS WebSocket, heartbeats every 2 s). Each link goes through a small TCP
//! relay that can black-hole it: the connection stays open and goes silent,
//! as when a rural link dies. Every node is cut once, at a random moment;
//! the latencies from the cut to detection (the incident's `detected_ms`)
//! and to the webhook's arrival go into HDR histograms.
//!
//! Prints one JSON object. Run with `cargo run --release -p
//! simpul-demo --example outage_latency -- [NODES]` (bench/outage.sh).

// A benchmark or tool on synthetic, known-good input: a failed unwrap is a
// broken benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use simpul_agent::link::{HealthState, LinkOptions, Uplink};
use simpul_collector::config::CollectorConfig;
use simpul_collector::server::Collector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A TCP relay to `upstream` that can be black-holed.
async fn relay(upstream: SocketAddr, cut: Arc<AtomicBool>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut dr, mut dw) = down.into_split();
                let (mut ur, mut uw) = up.into_split();
                let c1 = cut.clone();
                let a = tokio::spawn(async move { pump(&mut dr, &mut uw, &c1).await });
                let b = tokio::spawn(async move { pump(&mut ur, &mut dw, &cut).await });
                let _ = tokio::join!(a, b);
            });
        }
    });
    Ok(addr)
}

async fn pump(
    r: &mut (impl AsyncReadExt + Unpin),
    w: &mut (impl AsyncWriteExt + Unpin),
    cut: &AtomicBool,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::Relaxed) {
            // Black hole: swallow, never answer, never close.
            continue;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Webhook receiver: node → arrival time of its first "firing".
async fn webhook(arrivals: Arc<Mutex<HashMap<String, Instant>>>) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |body: String| {
            let arrivals = arrivals.clone();
            async move {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    if v["status"] == "firing" {
                        if let Some(node) = v["alerts"][0]["labels"]["node"].as_str() {
                            let mut a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
                            a.entry(node.to_string()).or_insert_with(Instant::now);
                        }
                    }
                }
                "ok"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let nodes: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // reqwest is built without a default crypto provider (ring only here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let hook = webhook(arrivals.clone()).await?;
    let cfg_text = format!(
        // Every link comes from 127.0.0.1: lift the per-address cap.
        "[server]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\nmax_connections = 4096\nmax_connections_per_address = 4096\n[storage]\ndata_dir = \"{}\"\n[notify]\n[notify.webhook.noc]\nurl = \"http://{hook}/alerts\"\nrate_per_minute = 100000\n[[notify.routes]]\nchannels = [\"noc\"]\n",
        dir.path().join("data").display()
    );
    let cfg = CollectorConfig::parse(&cfg_text, std::path::Path::new("bench.toml"))?;
    let collector = Collector::start(cfg).await?;
    // The inventory: one agency and the benchmark's nodes.
    let inventory = simpul_proto::Inventory {
        agencies: vec![simpul_proto::inventory::Agency {
            code: "dinkes".into(),
            ..Default::default()
        }],
        nodes: (0..nodes)
            .map(|i| simpul_proto::inventory::Node {
                id: format!("node-{i:04}"),
                agency: "dinkes".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    collector.state.inventory.set(&inventory)?;
    let tls = collector
        .tls_addr
        .ok_or_else(|| anyhow::anyhow!("no TLS listener"))?;
    let http = collector
        .http_addr
        .ok_or_else(|| anyhow::anyhow!("no HTTP listener"))?;
    let ca = dir.path().join("data/tls/ca.pem");

    let mut links = Vec::new();
    let mut cuts = Vec::new();
    for i in 0..nodes {
        let node = format!("node-{i:04}");
        let token = collector.enrollment_token(&node).await?;
        let cut = Arc::new(AtomicBool::new(false));
        let via = relay(tls, cut.clone()).await?;
        let mut c = simpul_agent::config::CollectorConfig::new(format!(
            "wss://127.0.0.1:{}/api/v1/agent",
            via.port()
        ));
        c.enroll_token = Some(token);
        c.ca_cert = Some(ca.clone());
        let state = dir.path().join(&node);
        let (uplink, sink) = tokio::task::block_in_place(|| {
            Uplink::start(
                &c,
                &node,
                &state,
                Arc::new(HealthState::new()),
                LinkOptions::default(),
            )
        })?;
        links.push((uplink, sink));
        cuts.push((node, cut));
    }
    // Wait until every node is up (the startup grace has passed too). The
    // API needs a login: an operator's token.
    let (api_token, _) =
        collector
            .state
            .access
            .create_api_token(&simpul_collector::store::NewApiToken {
                name: "outage-bench",
                role: &simpul_collector::auth::Role::Operator,
                kiosk: false,
                created_by: "bench",
                now_ms: now_ms(),
                expires_ms: None,
            })?;
    let client = reqwest::Client::new();
    let all_up = async {
        loop {
            let nodes_json: serde_json::Value = client
                .get(format!("http://{http}/api/v1/nodes"))
                .bearer_auth(&api_token)
                .send()
                .await?
                .json()
                .await?;
            let up = nodes_json
                .as_array()
                .map_or(0, |a| a.iter().filter(|n| n["liveness"] == "up").count());
            if up == nodes {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_up).await??;
    tokio::time::sleep(Duration::from_secs(13)).await;

    // Cut each node once, at random moments spread over 20 s.
    let mut cut_at: HashMap<String, (Instant, u64)> = HashMap::new();
    let spread = Duration::from_secs(20);
    let mut order: Vec<usize> = (0..nodes).collect();
    use rand::seq::SliceRandom;
    order.shuffle(&mut rand::thread_rng());
    let start = Instant::now();
    for (k, i) in order.iter().enumerate() {
        let jitter = rand::random::<u64>() % 1000;
        let at = start + spread * k as u32 / nodes as u32 + Duration::from_millis(jitter);
        tokio::time::sleep_until(at.into()).await;
        let (node, flag) = &cuts[*i];
        flag.store(true, Ordering::Relaxed);
        cut_at.insert(node.clone(), (Instant::now(), now_ms()));
    }
    // Wait for every alert (or give up after a minute).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if arrivals.lock().map(|a| a.len()).unwrap_or(0) >= nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let incidents: serde_json::Value = client
        .get(format!("http://{http}/api/v1/incidents?from=0&limit=10000"))
        .bearer_auth(&api_token)
        .send()
        .await?
        .json()
        .await?;
    // Five significant digits: exact to the millisecond around 10 000 ms.
    let mut detect = Histogram::<u64>::new(5)?;
    let mut deliver = Histogram::<u64>::new(5)?;
    // From the last heartbeat (the incident's start) to DOWN: the silence
    // the detector waited, which should be `down_after_secs` to the ms.
    let mut silence = Histogram::<u64>::new(5)?;
    let mut missing = 0;
    let arrived = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    for (node, (t, wall)) in &cut_at {
        match arrived.get(node) {
            Some(a) => deliver.record(a.duration_since(*t).as_millis() as u64)?,
            None => missing += 1,
        }
        if let Some(inc) = incidents.as_array().and_then(|l| {
            l.iter()
                .find(|i| i["node_id"] == node.as_str() && i["kind"] != "unreachable")
        }) {
            if let Some(d) = inc["detected_ms"].as_u64() {
                detect.record(d.saturating_sub(*wall))?;
                if let Some(s) = inc["started_ms"].as_u64() {
                    silence.record(d.saturating_sub(s))?;
                }
            }
        }
    }
    let pct = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
    let out = serde_json::json!({
        "nodes": nodes,
        "cuts": cut_at.len(),
        "alerts_missing": missing,
        "heartbeat_interval_ms": 2000,
        "down_after_secs": 10,
        "detect_ms": { "p50": pct(&detect, 0.5), "p90": pct(&detect, 0.9), "p99": pct(&detect, 0.99), "max": detect.max(), "min": detect.min() },
        "silence_ms": { "p50": pct(&silence, 0.5), "p99": pct(&silence, 0.99), "max": silence.max(), "min": silence.min() },
        "deliver_ms": { "p50": pct(&deliver, 0.5), "p90": pct(&deliver, 0.9), "p99": pct(&deliver, 0.99), "max": deliver.max(), "min": deliver.min() },
    });
    println!("{out}");
    for (u, _s) in links {
        tokio::task::block_in_place(|| u.stop_within(Duration::from_millis(100)));
    }
    collector.stop().await;
    Ok(())
}

//! How many agents one collector core can watch: heartbeats through the
//! same path live agents take after the socket (decode, the node registry,
//! the outage monitor's queue and detector), as fast as they go.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use simpul_proto::wire::{self, AgentMessage, Health, Heartbeat, InterfaceHealth};

use super::monitor::{AlertSink, OutageMonitor};
use crate::config::NodesConfig;
use crate::state::NodeRegistry;
use crate::store::{Store, StoreConfig};

#[derive(Debug, Serialize)]
pub struct HeartbeatReport {
    pub nodes: usize,
    pub seconds: f64,
    pub heartbeats: u64,
    pub heartbeats_per_sec: f64,
    /// Agents at one heartbeat per 2 s this rate serves.
    pub agents_at_2s: f64,
    pub dropped: u64,
    pub frame_bytes: usize,
}

pub fn bench_heartbeats(dir: &Path, nodes: usize, secs: f64) -> anyhow::Result<HeartbeatReport> {
    let store = Store::open(dir, StoreConfig::default())?;
    let names: Vec<String> = (0..nodes).map(|i| format!("node-{i:06}")).collect();
    let known: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), "dinkes".to_string()))
        .collect();
    let sink: AlertSink = Arc::new(|_| Ok(()));
    let monitor = OutageMonitor::start(
        &NodesConfig::default(),
        &store,
        known,
        crate::inventory::Topology::default(),
        sink,
    )?;
    let registry = NodeRegistry::default();
    for n in &names {
        registry.connected(n, "dinkes", "10.0.0.1:40000");
    }
    let frame = wire::encode(&AgentMessage::Heartbeat(Heartbeat {
        sent_ms: 1_764_236_141_000,
        health: Health {
            agent_version: "0.1.0".into(),
            uptime_secs: 86_400,
            cpu_percent: 3.5,
            rss_bytes: 12 << 20,
            interfaces: vec![InterfaceHealth {
                name: "eth1".into(),
                frames: 123_456_789,
                kernel_drops: 12,
                queue_drops: 0,
            }],
            packets: 123_456_789,
            bytes: 98_765_432_100,
            decode_errors: 3,
            active_flows: 1_500,
            flows_evicted: 0,
            inventory_version: 3,
            name_lanes: Vec::new(),
            collector: None,
            name_block: None,
            ipfix: None,
            spool_batches: 0,
            spool_bytes: 0,
            spool_quota_bytes: 1 << 30,
            spool_dropped_records: 0,
            policy_version: 7,
            policy_failures: 0,
        },
    }));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut sent: u64 = 0;
    'feed: loop {
        for n in &names {
            let Ok(AgentMessage::Heartbeat(hb)) = wire::decode::<AgentMessage>(&frame) else {
                anyhow::bail!("heartbeat frame does not decode");
            };
            registry.heartbeat(n, hb.sent_ms, &hb.health);
            // Backpressure for the measurement only: live agents' heartbeats
            // are dropped (and counted) when the queue is full.
            while sent - monitor.stats.processed.load(Ordering::Relaxed) > 100_000 {
                std::thread::sleep(Duration::from_micros(200));
            }
            // The agent's clock as sent now (the frame's own time is fixed,
            // and a skewed clock would turn the run into a condition storm).
            monitor.heartbeat_with_health(n, "dinkes", crate::state::now_ms(), &hb.health);
            sent += 1;
            if sent.is_multiple_of(4096) && Instant::now() >= deadline {
                break 'feed;
            }
        }
    }
    while monitor.stats.processed.load(Ordering::Relaxed) < sent
        && started.elapsed() < Duration::from_secs_f64(secs * 3.0)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let processed = monitor.stats.processed.load(Ordering::Relaxed);
    let dropped = monitor.stats.dropped_inputs.load(Ordering::Relaxed);
    monitor.stop();
    let rate = processed as f64 / elapsed;
    Ok(HeartbeatReport {
        nodes,
        seconds: elapsed,
        heartbeats: processed,
        heartbeats_per_sec: rate,
        agents_at_2s: rate * 2.0,
        dropped,
        frame_bytes: frame.len(),
    })
}

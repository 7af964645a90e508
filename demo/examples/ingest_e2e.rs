//! End-to-end ingest: real agent links over TLS WebSocket into a real
//! collector, records per second from the first send to the last durable
//! acknowledgement.
//!
//! A collector in this process (TLS listener, SQLite file in a temporary
//! directory, `synchronous=FULL`) and `NODES` agents, each the agent's own
//! link (`simpul_agent::link::Uplink`: spool, client, wire protocol 3):
//! 1. every agent enrolls with a one-time token and keeps its credential,
//!    as in the field, and its link is stopped;
//! 2. each agent's spool is filled with `RECORDS / NODES` flow records in
//!    batches of `BATCH` (plus per-second counters), as a spool fills while
//!    the collector is unreachable — the agents' disk writes stay out of the
//!    measurement;
//! 3. the clock starts, every link starts (TLS, Hello with the stored
//!    credential) and sends its spool as fast as the collector's acks allow
//!    (a window of unacknowledged batches); the clock stops when the last
//!    agent's spool is empty — an agent deletes a batch only on the
//!    collector's ack, and the collector acks only after the commit.
//!
//! Then the store is read back: every flow record stored once (row count),
//! every counter sample applied once (byte sums), every batch's sequence
//! seen. Prints one JSON object (bench/ingest.sh). Run with `cargo run
//! --release -p simpul-demo --example ingest_e2e -- [NODES] [RECORDS] [BATCH]`.

// A benchmark on synthetic, known-good input: a failed unwrap is a broken
// benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use simpul_agent::link::{HealthState, LinkOptions, Spool, Uplink};
use simpul_collector::config::CollectorConfig;
use simpul_collector::server::Collector;
use simpul_proto::wire::Batch;
use simpul_proto::{CounterSample, EndReason, FlowRecord, RecordKind, SiteSource, TrafficScope};

const AGENCIES: usize = 10;
const UNITS: usize = 4;

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Deterministic synthetic traffic (SplitMix64) for one node.
struct Gen {
    state: u64,
    node: usize,
    next_flow: u64,
    sites: Arc<Vec<String>>,
}

impl Gen {
    fn rand(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Small indexes much more common, as busy hosts and popular sites are.
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.rand() % n;
        let b = self.rand() % n;
        (a * b) / n
    }

    fn record(&mut self, agency: &str, now_ns: u64) -> FlowRecord {
        let unit = self.rand() % UNITS as u64;
        let host = 1 + self.skewed(250) as u8;
        let src_ip = IpAddr::V4(Ipv4Addr::new(10, self.node as u8, unit as u8, host));
        let dst_ip = if self.rand().is_multiple_of(5) {
            IpAddr::V4(Ipv4Addr::new(10, 200, (self.rand() % 8) as u8, 7))
        } else {
            IpAddr::V4(Ipv4Addr::from(
                0x6700_0000 + self.skewed(20_000) as u32 * 97,
            ))
        };
        let (site, source) = match self.rand() % 10 {
            0..=4 => (true, Some(SiteSource::Sni)),
            5 => (true, Some(SiteSource::Quic)),
            6 => (true, Some(SiteSource::Dns)),
            _ => (false, None),
        };
        let site = site.then(|| {
            let i = self.skewed(self.sites.len() as u64) as usize;
            self.sites[i].clone()
        });
        let udp = source == Some(SiteSource::Quic) || self.rand().is_multiple_of(8);
        self.next_flow += 1;
        let last_seen = now_ns - self.rand() % 5_000_000_000;
        FlowRecord {
            flow_id: self.next_flow,
            kind: RecordKind::Final,
            end_reason: if udp { EndReason::Idle } else { EndReason::Fin },
            proto: if udp { "udp" } else { "tcp" }.into(),
            src_ip,
            src_port: Some(1024 + (self.rand() % 60_000) as u16),
            dst_ip,
            dst_port: Some(if udp {
                443
            } else {
                80 + (self.rand() % 2) as u16 * 363
            }),
            vlan: None,
            vlan_inner: None,
            packets_up: 1 + self.rand() % 200,
            bytes_up: 60 + self.rand() % 200_000,
            packets_down: 1 + self.rand() % 800,
            bytes_down: 60 + self.rand() % 2_000_000,
            first_seen: last_seen - self.rand() % 30_000_000_000,
            last_seen,
            tcp_flags_up: (!udp).then_some(0x1b),
            tcp_flags_down: (!udp).then_some(0x1b),
            sni: if source == Some(SiteSource::Sni) {
                site.clone()
            } else {
                None
            },
            http_host: None,
            dns_query: if source == Some(SiteSource::Dns) {
                site.clone()
            } else {
                None
            },
            site,
            site_source: source,
            agency: agency.to_string(),
            unit: format!("unit{unit}"),
            scope: if dst_ip.to_string().starts_with("10.") {
                TrafficScope::Intranet
            } else {
                TrafficScope::Internet
            },
        }
    }
}

/// What one node's spool holds: its batches' flow count and counter bytes.
struct Filled {
    flows: u64,
    batches: u64,
    counter_bytes_in: u64,
}

/// Fill `state/spool` with `flows` records in batches of `per_batch`, as
/// the agent's spool writer would (boot epoch, seq 1, 2, 3…).
fn fill_spool(
    state: &Path,
    node: usize,
    agency: &str,
    flows: usize,
    per_batch: usize,
    sites: Arc<Vec<String>>,
) -> anyhow::Result<Filled> {
    let (mut spool, _) = Spool::open(&state.join("spool"), 4 << 30)?;
    let mut gen = Gen {
        state: 0x5eed ^ (node as u64) << 32,
        node,
        next_flow: 0,
        sites,
    };
    let boot_epoch = unix_ns();
    let mut done = 0;
    let mut seq = 0;
    let mut counter_bytes_in = 0;
    while done < flows {
        let n = per_batch.min(flows - done);
        let now_ns = unix_ns();
        let records: Vec<FlowRecord> = (0..n).map(|_| gen.record(agency, now_ns)).collect();
        let ts = now_ns / 1_000_000_000 - 1;
        let mut counters = Vec::new();
        for unit in 0..UNITS {
            for scope in [TrafficScope::Internet, TrafficScope::Intranet] {
                let bytes_in = gen.rand() % 10_000_000;
                counter_bytes_in += bytes_in;
                counters.push(CounterSample {
                    ts,
                    agency: agency.to_string(),
                    unit: format!("unit{unit}"),
                    scope,
                    bytes_in,
                    bytes_out: gen.rand() % 1_000_000,
                    packets_in: gen.rand() % 10_000,
                    packets_out: gen.rand() % 5_000,
                });
            }
        }
        seq += 1;
        let batch = Batch {
            boot_epoch,
            seq,
            sealed_ms: now_ns / 1_000_000,
            flows: records,
            counters,
            blocked: Vec::new(),
            dropped_records: 0,
            dropped_batches: 0,
        };
        spool
            .push(batch)
            .ok_or_else(|| anyhow::anyhow!("spool refused a batch"))?;
        done += n;
    }
    Ok(Filled {
        flows: done as u64,
        batches: seq,
        counter_bytes_in,
    })
}

fn link_config(
    port: u16,
    ca: &Path,
    token: Option<String>,
) -> simpul_agent::config::CollectorConfig {
    let mut c =
        simpul_agent::config::CollectorConfig::new(format!("wss://127.0.0.1:{port}/api/v1/agent"));
    c.enroll_token = token;
    c.ca_cert = Some(ca.to_owned());
    c
}

fn start_link(
    c: &simpul_agent::config::CollectorConfig,
    node: &str,
    state: &Path,
) -> anyhow::Result<Uplink> {
    let (uplink, _sink) = Uplink::start(
        c,
        node,
        state,
        Arc::new(HealthState::new()),
        LinkOptions::default(),
    )?;
    Ok(uplink)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let nodes = arg(1, 50).max(1);
    let records = arg(2, 2_000_000);
    let per_batch = arg(3, 1000).max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let cfg_text = format!(
        // Every link comes from 127.0.0.1: lift the per-address cap.
        "[server]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\nmax_connections = 4096\nmax_connections_per_address = 4096\n[storage]\ndata_dir = \"{}\"\n",
        data.display()
    );
    let cfg = CollectorConfig::parse(&cfg_text, Path::new("bench.toml"))?;
    let collector = Collector::start(cfg).await?;
    let agency = |i: usize| format!("agency{:02}", i % AGENCIES);
    let node_id = |i: usize| format!("node-{i:04}");
    let inventory = simpul_proto::Inventory {
        agencies: (0..AGENCIES)
            .map(|a| simpul_proto::inventory::Agency {
                code: agency(a),
                ..Default::default()
            })
            .collect(),
        nodes: (0..nodes)
            .map(|i| simpul_proto::inventory::Node {
                id: node_id(i),
                agency: agency(i),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    collector.state.inventory.set(&inventory)?;
    let port = collector
        .tls_addr
        .ok_or_else(|| anyhow::anyhow!("no TLS listener"))?
        .port();
    let ca = data.join("tls/ca.pem");
    let states: Vec<PathBuf> = (0..nodes).map(|i| dir.path().join(node_id(i))).collect();

    // 1. Enrollment: a one-time token each; the agent stores its credential.
    let mut enrolling = Vec::new();
    for (i, state) in states.iter().enumerate() {
        let token = collector.enrollment_token(&node_id(i)).await?;
        let c = link_config(port, &ca, Some(token));
        enrolling.push(tokio::task::block_in_place(|| {
            start_link(&c, &node_id(i), state)
        })?);
    }
    let enrolled = async {
        while !states.iter().all(|s| s.join("credential").exists()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), enrolled).await?;
    tokio::task::block_in_place(|| {
        for u in enrolling {
            u.stop_within(Duration::from_millis(500));
        }
    });

    // 2. Spools filled while the links are down (not measured).
    let sites: Arc<Vec<String>> = Arc::new(
        (0..3000)
            .map(|i| match i % 4 {
                0 => format!("layanan{i}.kupangkota.go.id"),
                1 => format!("cdn{i}.googlevideo.com"),
                2 => format!("api{i}.whatsapp.net"),
                _ => format!("static{i}.example.co.id"),
            })
            .collect(),
    );
    let per_node = records / nodes;
    let fills: Vec<Filled> = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = states
                .iter()
                .enumerate()
                .map(|(i, state)| {
                    let sites = sites.clone();
                    let agency = agency(i);
                    s.spawn(move || fill_spool(state, i, &agency, per_node, per_batch, sites))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<anyhow::Result<Vec<_>>>()
        })
    })?;
    let sent_flows: u64 = fills.iter().map(|f| f.flows).sum();
    let sent_batches: u64 = fills.iter().map(|f| f.batches).sum();
    let sent_counter_bytes: u64 = fills.iter().map(|f| f.counter_bytes_in).sum();

    // 3. Measured: links start, deliver, and their spools drain on acks.
    let started = Instant::now();
    let links: Vec<Uplink> = tokio::task::block_in_place(|| {
        states
            .iter()
            .enumerate()
            .map(|(i, state)| start_link(&link_config(port, &ca, None), &node_id(i), state))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let drained = async {
        while links.iter().any(|l| l.spool_stats().batches > 0) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(600), drained).await?;
    let seconds = started.elapsed().as_secs_f64();
    tokio::task::block_in_place(|| {
        for l in links {
            l.stop_within(Duration::from_millis(500));
        }
    });
    collector.stop().await;

    // The store, read back.
    let db = rusqlite::Connection::open(data.join("simpul.db"))?;
    let stored_flows: u64 = db.query_row("SELECT count(*) FROM flows", [], |r| r.get(0))?;
    let stored_counter_bytes: u64 =
        db.query_row("SELECT coalesce(sum(bytes_in), 0) FROM usage_1h", [], |r| {
            r.get(0)
        })?;
    let stored_batches: u64 =
        db.query_row("SELECT coalesce(sum(max_seq), 0) FROM streams", [], |r| {
            r.get(0)
        })?;
    let exact = stored_flows == sent_flows
        && stored_counter_bytes == sent_counter_bytes
        && stored_batches == sent_batches;
    let out = serde_json::json!({
        "nodes": nodes,
        "records": sent_flows,
        "batches": sent_batches,
        "records_per_batch": per_batch,
        "seconds": seconds,
        "records_per_sec": sent_flows as f64 / seconds,
        "stored_records": stored_flows,
        "stored_batches": stored_batches,
        "counter_bytes_sent": sent_counter_bytes,
        "counter_bytes_stored": stored_counter_bytes,
        "exact": exact,
    });
    println!("{out}");
    if !exact {
        anyhow::bail!("stored data differs from what was sent: {out}");
    }
    Ok(())
}

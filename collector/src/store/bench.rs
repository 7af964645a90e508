//! Ingest throughput benchmark over realistic synthetic traffic.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use simpul_proto::wire::Batch;
use simpul_proto::{CounterSample, EndReason, FlowRecord, RecordKind, SiteSource, TrafficScope};

use super::{NodeBatches, Store, StoreConfig, StoreError};

const AGENCIES: usize = 40;
const UNITS: usize = 4;
const RECORDS_PER_BATCH: usize = 1000;
/// Batches per `ingest_many` call: what 200k records/s from 40 nodes delivers
/// in the server's ~50 ms grouping window.
pub(crate) const BATCHES_PER_CALL: usize = 10;
/// Share of flows that run past the active timeout and send an interim
/// record before their final one, in percent.
const LONG_FLOW_PERCENT: u64 = 10;

/// Ingest `records` flow records (batches of 1000 from 40 nodes of 40
/// agencies, ~10% long flows sending an interim record first, plus each
/// batch's per-second counters) into a fresh store in `dir`, in calls of
/// 10 batches (`BATCHES_PER_CALL`), and return flow records per second of
/// ingest time (record generation excluded). Run it in release mode.
pub fn bench_ingest(dir: &Path, records: usize) -> Result<f64, StoreError> {
    bench_ingest_with(dir, records, BATCHES_PER_CALL).map(|(rate, _)| rate)
}

/// As [`bench_ingest`] with a chosen group size; also returns the slowest
/// call. Like the server should, it checkpoints from a second thread once a
/// second (`Store::checkpoint`), so the writer never copies the WAL itself.
pub fn bench_ingest_with(
    dir: &Path,
    records: usize,
    batches_per_call: usize,
) -> Result<(f64, Duration), StoreError> {
    let store = Store::open(dir, StoreConfig::default())?;
    let stop = Arc::new(AtomicBool::new(false));
    let checkpointer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // A failed checkpoint only leaves the WAL longer for the next.
                let _ = store.checkpoint();
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };
    let result = run(&store, records, batches_per_call);
    stop.store(true, Ordering::Relaxed);
    let _ = checkpointer.join();
    result
}

fn run(
    store: &Store,
    records: usize,
    batches_per_call: usize,
) -> Result<(f64, Duration), StoreError> {
    let mut w = store.writer()?;
    // The registry is not part of ingest: agencies are just codes here.
    let defs: Vec<String> = (0..AGENCIES).map(|a| format!("agency{a:02}")).collect();
    let nodes: Vec<String> = (0..AGENCIES).map(|a| format!("node-{a:02}")).collect();
    let mut gen = Generator::new();
    let mut done = 0usize;
    let mut busy = Duration::ZERO;
    let mut slowest = Duration::ZERO;
    while done < records {
        let mut batches = Vec::with_capacity(batches_per_call);
        for _ in 0..batches_per_call.max(1) {
            let n = RECORDS_PER_BATCH.min(records - done);
            if n == 0 {
                break;
            }
            batches.push(gen.batch(n));
            done += n;
        }
        let groups: Vec<NodeBatches<'_>> = batches
            .iter()
            .map(|(node, b)| NodeBatches {
                node_id: &nodes[*node],
                strict_seq: true,
                agency: &defs[*node],
                batches: std::slice::from_ref(b),
            })
            .collect();
        let t = Instant::now();
        w.ingest_many(&groups)?;
        let dt = t.elapsed();
        busy += dt;
        slowest = slowest.max(dt);
    }
    // The top-N fold deferred by the last calls is part of the cost.
    let t = Instant::now();
    w.fold_aggregates()?;
    busy += t.elapsed();
    Ok((done as f64 / busy.as_secs_f64().max(1e-9), slowest))
}

/// Deterministic synthetic traffic (SplitMix64), so runs compare.
pub(crate) struct Generator {
    state: u64,
    /// Simulated packet clock, ns: advances 5 µs per record (200k records/s).
    clock: u64,
    next_flow: [u64; AGENCIES],
    seq: [u64; AGENCIES],
    /// Long flows awaiting their final record: (node, interim record).
    open: Vec<(usize, FlowRecord)>,
    next_node: usize,
    sites: Vec<String>,
}

impl Generator {
    pub(crate) fn new() -> Self {
        let mut sites = Vec::new();
        for i in 0..3000 {
            sites.push(match i % 4 {
                0 => format!("layanan{i}.kupangkota.go.id"),
                1 => format!("cdn{i}.googlevideo.com"),
                2 => format!("api{i}.whatsapp.net"),
                _ => format!("static{i}.example.co.id"),
            });
        }
        Self {
            state: 0x5eed,
            clock: 1_764_236_140_000_000_000,
            next_flow: [1; AGENCIES],
            seq: [0; AGENCIES],
            open: Vec::new(),
            next_node: 0,
            sites,
        }
    }

    fn rand(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Skewed pick in 0..n: small indexes are much more common, like sites
    /// and busy hosts are.
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.rand() % n;
        let b = self.rand() % n;
        (a * b) / n
    }

    /// One node's next batch of `n` records: (node index, batch).
    pub(crate) fn batch(&mut self, n: usize) -> (usize, Batch) {
        let node = self.next_node;
        self.next_node = (self.next_node + 1) % AGENCIES;
        self.seq[node] += 1;
        let mut flows = Vec::with_capacity(n);
        // Close the long flows this node opened in its previous batch.
        let mut i = 0;
        while i < self.open.len() && flows.len() < n {
            if self.open[i].0 == node {
                let (_, mut rec) = self.open.swap_remove(i);
                rec.kind = RecordKind::Final;
                rec.end_reason = EndReason::Fin;
                rec.bytes_up += 1000 + self.rand() % 50_000;
                rec.bytes_down += 5000 + self.rand() % 500_000;
                rec.packets_up += 10;
                rec.packets_down += 40;
                rec.last_seen = self.clock;
                flows.push(rec);
            } else {
                i += 1;
            }
        }
        while flows.len() < n {
            self.clock += 5_000;
            let rec = self.record(node);
            if self.rand() % 100 < LONG_FLOW_PERCENT {
                let mut interim = rec.clone();
                interim.kind = RecordKind::Interim;
                interim.end_reason = EndReason::Active;
                self.open.push((node, interim.clone()));
                flows.push(interim);
            } else {
                flows.push(rec);
            }
        }
        let ts = self.clock / 1_000_000_000;
        let mut counters = Vec::new();
        for unit in 0..UNITS {
            for scope in [TrafficScope::Internet, TrafficScope::Intranet] {
                counters.push(CounterSample {
                    ts,
                    agency: format!("agency{node:02}"),
                    unit: format!("unit{unit}"),
                    scope,
                    bytes_in: self.rand() % 10_000_000,
                    bytes_out: self.rand() % 1_000_000,
                    packets_in: self.rand() % 10_000,
                    packets_out: self.rand() % 5_000,
                });
            }
        }
        let batch = Batch {
            boot_epoch: 1,
            seq: self.seq[node],
            sealed_ms: self.clock / 1_000_000,
            flows,
            counters,
            blocked: Vec::new(),
            dropped_records: 0,
            dropped_batches: 0,
        };
        (node, batch)
    }

    fn record(&mut self, node: usize) -> FlowRecord {
        let unit = (self.rand() % UNITS as u64) as u8;
        let host = 1 + self.skewed(250) as u8;
        let src_ip = IpAddr::V4(Ipv4Addr::new(10, node as u8, unit, host));
        let intranet = self.rand().is_multiple_of(5);
        let dst_ip = if intranet {
            IpAddr::V4(Ipv4Addr::new(
                10,
                200,
                (self.rand() % 8) as u8,
                (self.rand() % 64) as u8,
            ))
        } else {
            let r = self.skewed(20_000) as u32;
            IpAddr::V4(Ipv4Addr::from(0x6700_0000 + r * 97))
        };
        let (site, site_source) = match self.rand() % 10 {
            0..=4 => {
                let s = self.skewed(self.sites.len() as u64) as usize;
                (Some(self.sites[s].clone()), Some(SiteSource::Sni))
            }
            5 => {
                let s = self.skewed(self.sites.len() as u64) as usize;
                (Some(self.sites[s].clone()), Some(SiteSource::Quic))
            }
            6 => {
                let s = self.skewed(self.sites.len() as u64) as usize;
                (Some(self.sites[s].clone()), Some(SiteSource::Dns))
            }
            _ => (None, None),
        };
        let udp = site_source == Some(SiteSource::Quic) || self.rand().is_multiple_of(8);
        let flow_id = self.next_flow[node];
        self.next_flow[node] += 1;
        let duration = self.rand() % 30_000_000_000;
        FlowRecord {
            flow_id,
            kind: RecordKind::Final,
            end_reason: if udp { EndReason::Idle } else { EndReason::Fin },
            proto: if udp { "udp" } else { "tcp" }.into(),
            src_ip,
            src_port: Some(32768 + (self.rand() % 28000) as u16),
            dst_ip,
            dst_port: Some(if udp {
                443
            } else {
                [443, 80, 8080][(self.rand() % 3) as usize]
            }),
            vlan: Some(100 + u16::from(unit)),
            vlan_inner: None,
            packets_up: 5 + self.rand() % 200,
            bytes_up: 400 + self.rand() % 100_000,
            packets_down: 5 + self.rand() % 800,
            bytes_down: 400 + self.rand() % 2_000_000,
            first_seen: self.clock.saturating_sub(duration),
            last_seen: self.clock,
            tcp_flags_up: (!udp).then_some(0x1b),
            tcp_flags_down: (!udp).then_some(0x1b),
            sni: site
                .clone()
                .filter(|_| site_source != Some(SiteSource::Dns)),
            http_host: None,
            dns_query: site
                .clone()
                .filter(|_| site_source == Some(SiteSource::Dns)),
            site,
            site_source,
            agency: format!("agency{node:02}"),
            unit: format!("unit{unit}"),
            scope: if intranet {
                TrafficScope::Intranet
            } else {
                TrafficScope::Internet
            },
        }
    }
}

/// The batches the store comparison tests (memory, ClickHouse against
/// SQLite) feed every store alike.
#[cfg(test)]
pub(crate) mod comparison {
    use simpul_proto::wire::Batch;
    use simpul_proto::{BlockMethod, BlockedAttempt};

    use super::Generator;

    fn attempt(i: u64, agency: &str, last_seen: u64) -> BlockedAttempt {
        BlockedAttempt {
            first_seen: last_seen - 1_000_000,
            last_seen,
            client: format!("10.0.0.{}", i % 7).parse().unwrap(),
            agency: agency.into(),
            unit: "unit0".into(),
            method: if i.is_multiple_of(2) {
                BlockMethod::Sni
            } else {
                BlockMethod::Dns
            },
            target: format!("site{}.example", i % 5),
            server: None,
            port: Some(443),
            proto: "tcp".into(),
            rule: "example".into(),
            list: if i.is_multiple_of(3) { "judi" } else { "ads" }.into(),
            attempts: (i % 3 + 1) as u32,
        }
    }

    /// 40 batches of 300 records (long flows send an interim record first),
    /// counters and blocked attempts, then the first five again.
    pub(crate) fn comparison_batches() -> Vec<(String, String, Batch)> {
        let mut g = Generator::new();
        let mut out = Vec::new();
        for i in 0..40u64 {
            let (node, mut b) = g.batch(300);
            let agency = format!("agency{node:02}");
            let ts = b.flows.last().map_or(0, |f| f.last_seen);
            b.blocked = (0..4).map(|k| attempt(i * 4 + k, &agency, ts)).collect();
            out.push((format!("node-{node:02}"), agency, b));
        }
        let again: Vec<_> = out[..5].to_vec();
        out.extend(again);
        out
    }
}

//! Ingest into ClickHouse and SQLite side by side (`bench/clickhouse.sh`):
//! the same synthetic batches as `bench-ingest` (1000 records, 10 batches a
//! call), acknowledged only after the store's insert returned; then bytes
//! on disk per stored flow and the latency of the overview and top-N
//! queries over what was stored.

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{ClickHouseConfig, ClickHouseFlowStore};
use crate::store::bench::{Generator, BATCHES_PER_CALL};
use crate::store::traits::{FlowReader, FlowStore};
use crate::store::{FlowFilter, NodeBatches, Step, Store, StoreConfig, StoreError};

const RECORDS_PER_BATCH: usize = 1000;
const AGENCIES: usize = 40;

#[derive(Debug, Serialize)]
pub struct StoreFigures {
    pub records_per_sec: f64,
    pub slowest_call_ms: f64,
    pub bytes_on_disk: u64,
    pub bytes_per_flow: f64,
    /// Median of 3, ms: the wall's overview (15 min), top 10 hosts and sites
    /// and one agency's minutes over the whole range, a page of 100 flows.
    pub overview_ms: f64,
    pub top_hosts_ms: f64,
    pub top_sites_ms: f64,
    pub usage_ms: f64,
    pub flow_page_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub clickhouse_version: String,
    pub records: usize,
    pub flows: u64,
    pub sqlite: StoreFigures,
    pub clickhouse: StoreFigures,
}

/// Ingest `records` into `store` as `bench-ingest` does: (records/s of
/// ingest time, slowest call, the batches' time range in seconds).
fn ingest(store: &dyn FlowStore, records: usize) -> Result<(f64, Duration, u64, u64), StoreError> {
    let mut w = store.writer()?;
    let defs: Vec<String> = (0..AGENCIES).map(|a| format!("agency{a:02}")).collect();
    let nodes: Vec<String> = (0..AGENCIES).map(|a| format!("node-{a:02}")).collect();
    let mut gen = Generator::new();
    let (mut done, mut busy, mut slowest) = (0usize, Duration::ZERO, Duration::ZERO);
    let (mut first, mut last) = (u64::MAX, 0);
    while done < records {
        let mut batches = Vec::with_capacity(BATCHES_PER_CALL);
        for _ in 0..BATCHES_PER_CALL {
            let n = RECORDS_PER_BATCH.min(records - done);
            if n == 0 {
                break;
            }
            batches.push(gen.batch(n));
            done += n;
        }
        for (_, b) in &batches {
            for f in &b.flows {
                first = first.min(f.last_seen / 1_000_000_000);
                last = last.max(f.last_seen / 1_000_000_000);
            }
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
    let t = Instant::now();
    w.fold_aggregates()?;
    busy += t.elapsed();
    Ok((
        done as f64 / busy.as_secs_f64().max(1e-9),
        slowest,
        first,
        last + 1,
    ))
}

fn median_ms(mut f: impl FnMut() -> Result<(), StoreError>) -> Result<f64, StoreError> {
    let mut v = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[1])
}

fn queries(r: &dyn FlowReader, first: u64, last: u64) -> Result<[f64; 5], StoreError> {
    let now = UNIX_EPOCH + Duration::from_secs(last);
    Ok([
        median_ms(|| r.traffic(now, 5).map(|_| ()))?,
        median_ms(|| r.top_hosts(None, first, last, 10).map(|_| ()))?,
        median_ms(|| r.top_sites(None, first, last, 10).map(|_| ()))?,
        median_ms(|| r.usage("agency00", first, last, Step::Minute).map(|_| ()))?,
        median_ms(|| {
            r.flow_page(&FlowFilter {
                from: first,
                to: last,
                limit: 100,
                ..FlowFilter::default()
            })
            .map(|_| ())
        })?,
    ])
}

#[derive(Deserialize)]
struct N {
    n: u64,
}

/// Run both: SQLite in `sqlite_dir` (fresh), ClickHouse at `url` in a
/// fresh database `db` (dropped first).
pub fn bench_clickhouse(
    url: &str,
    db: &str,
    sqlite_dir: &Path,
    records: usize,
) -> Result<BenchReport, StoreError> {
    let cfg = StoreConfig {
        flow_retention_days: 36_500,
        blocked_retention_days: 36_500,
        ..StoreConfig::default()
    };
    // SQLite, with its checkpointer beside the writer as the server runs it.
    let sqlite = Store::open(sqlite_dir, cfg.clone())?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cp = {
        let (s, stop) = (sqlite.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = s.checkpoint();
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let s_res = ingest(&sqlite, records);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = cp.join();
    let (s_rate, s_slow, first, last) = s_res?;
    while sqlite.checkpoint()? > 0 {}
    // The database file once every WAL frame is in it (the WAL file keeps
    // its size for reuse; it is not data).
    let s_bytes = std::fs::metadata(sqlite.path()).map_or(0, |m| m.len());
    let s_q = queries(FlowStore::reader(&sqlite)?.as_ref(), first, last)?;

    let client = super::Client::new(url, Duration::from_secs(600))?;
    client.exec(&format!("DROP DATABASE IF EXISTS {db}"))?;
    let ch = ClickHouseFlowStore::open(
        &ClickHouseConfig {
            url: url.to_string(),
            database: db.to_string(),
            timeout_secs: 600,
            ..ClickHouseConfig::default()
        },
        &cfg,
    )?;
    let (c_rate, c_slow, _, _) = ingest(&ch, records)?;
    // Bytes after the merges ClickHouse would do in the background anyway.
    for t in super::schema::RETAINED
        .iter()
        .map(|t| t.name)
        .chain(["streams"])
    {
        client.exec(&format!("OPTIMIZE TABLE {db}.{t} FINAL"))?;
    }
    let rows = |sql: &str| -> Result<u64, StoreError> {
        Ok(client.rows::<N>(sql)?.first().map_or(0, |r| r.n))
    };
    let c_bytes = rows(&format!(
        "SELECT toUInt64(sum(bytes_on_disk)) AS n FROM system.parts \
         WHERE database = '{db}' AND active"
    ))?;
    let flows = rows(&format!(
        "SELECT uniqExact(node, boot, flow_id) AS n FROM {db}.flow_records"
    ))?;
    let c_q = queries(ch.reader()?.as_ref(), first, last)?;
    let figures = |rate: f64, slow: Duration, bytes: u64, q: [f64; 5]| StoreFigures {
        records_per_sec: rate,
        slowest_call_ms: slow.as_secs_f64() * 1000.0,
        bytes_on_disk: bytes,
        bytes_per_flow: bytes as f64 / flows.max(1) as f64,
        overview_ms: q[0],
        top_hosts_ms: q[1],
        top_sites_ms: q[2],
        usage_ms: q[3],
        flow_page_ms: q[4],
    };
    #[derive(Deserialize)]
    struct V {
        v: String,
    }
    let clickhouse_version = client
        .rows::<V>("SELECT version() AS v")?
        .pop()
        .map_or_else(String::new, |v| v.v);
    Ok(BenchReport {
        clickhouse_version,
        records,
        flows,
        sqlite: figures(s_rate, s_slow, s_bytes, s_q),
        clickhouse: figures(c_rate, c_slow, c_bytes, c_q),
    })
}

//! Flows generated inside ClickHouse (`INSERT … SELECT … FROM numbers(N)`)
//! for the 100 M-flow figure (`bench/clickhouse.sh` with `GENERATE=N`):
//! ingest through the collector would take hours on one machine, and the
//! figure is about reading, so the rows are written as the writer would
//! write them (every column, the same identities, the views firing on the
//! inserts) with the distributions of `bench-ingest`'s generator, then the
//! store's reader is timed on them.
//!
//! Shape: `nodes` agents (one agency each, four units, hosts skewed over
//! 250 per unit), in batches of 1000 records taking turns, over `hours`
//! ending at an hour boundary; ~80 % internet flows to 20 000 skewed
//! peers, 3000 sites skewed (SNI 50 %, QUIC 10 %, DNS 10 %, none 30 %).
//! Per-second counters (8 per agency and second: 4 units × 2 scopes) for
//! the last hour only, which feed the 1 min / 1 h views as ingest would;
//! the earlier minutes and hours are written to the rollups pre-summed (one
//! row per agency, unit, scope and step), since a day of per-second rows
//! of 1000 agencies would be 700 M rows (so only the last hour's steps have
//! peaks and p95).

use std::collections::HashMap;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{ClickHouseConfig, ClickHouseFlowStore, Client};
use crate::store::traits::FlowStore;
use crate::store::{FlowFilter, Step, StoreConfig, StoreError};

const NS: u64 = 1_000_000_000;
/// Rows per INSERT … SELECT: a bounded statement (the HTTP timeout, the
/// server's memory); ClickHouse cuts each into blocks of ~1 M rows.
const CHUNK: u64 = 10_000_000;
/// The generated hours end here (2025-11-28 00:00 UTC).
const END: u64 = 1_764_288_000;

#[derive(Debug, Serialize)]
pub struct GeneratedReport {
    pub clickhouse_version: String,
    pub flows: u64,
    pub nodes: u32,
    pub hours: u32,
    pub generate_secs: f64,
    pub flow_rows: u64,
    pub bytes_on_disk: u64,
    /// Every table (rollups and counters included) and the flow records'
    /// table alone.
    pub bytes_per_flow: f64,
    pub flow_table_bytes_per_flow: f64,
    /// Median of 3, ms.
    pub overview_ms: f64,
    pub top_hosts_ms: f64,
    pub top_sites_ms: f64,
    pub top_hosts_last_hour_ms: f64,
    pub usage_minutes_ms: f64,
    pub newest_flows_ms: f64,
    pub newest_flows_one_agency_ms: f64,
    pub biggest_flows_last_hour_ms: f64,
}

/// `k`-th 16-bit slice of hash `h` (0..=3).
fn r16(h: &str, k: u32) -> String {
    format!("bitAnd(bitShiftRight({h}, {}), 65535)", 16 * k)
}

/// A skewed pick in 0..n from two 16-bit randoms (small values common).
fn skewed(a: &str, b: &str, n: u64) -> String {
    format!("intDiv(({a} % {n}) * ({b} % {n}), {n})")
}

fn flows_sql(db: &str, offset: u64, count: u64, total: u64, nodes: u32, hours: u32) -> String {
    let span = u64::from(hours) * 3600 * NS;
    let start = (END - u64::from(hours) * 3600) * NS;
    let (h1, h2, h3) = ("h1", "h2", "h3");
    let site = skewed(&r16(h1, 0), &r16(h1, 1), 3000);
    let host = skewed(&r16(h2, 0), &r16(h2, 1), 250);
    let peer = skewed(&r16(h3, 0), &r16(h3, 1), 20_000);
    let k = format!("{} % 10", r16(h2, 3));
    let u = format!("{} % 4", r16("h4", 2));
    format!(
        "INSERT INTO {db}.flow_records (node, boot, seq, idx, fid, flow_id, is_final, restart, \
         end_reason, proto, src_ip, src_port, dst_ip, dst_port, vlan, vlan_inner, packets_up, \
         bytes_up, packets_down, bytes_down, first_seen, last_seen, tcp_flags_up, \
         tcp_flags_down, sni, http_host, dns_query, site, site_source, agency, unit, scope, \
         local_ip, peer_ip, has_site, credit, credit_agency, minute, host_up, host_down, new_flow) \
         SELECT node, toUInt64(1), seq, idx, \
           toInt64(bitAnd(cityHash64(node, flow_id), 9223372036854775807)), flow_id, \
           toUInt8(1), toUInt8(0), toUInt8(if(udp, 0, 1)), if(udp, 'udp', 'tcp'), \
           local, CAST(32768 + {p1} % 28000 AS Nullable(UInt16)), peer_ip, \
           CAST(if(udp, 443, arrayElement([443, 80, 8080], {p2} % 3 + 1)) AS Nullable(UInt16)), \
           CAST(100 + unit_i AS Nullable(UInt16)), NULL, \
           pu, bu, pd, bd, last_seen - {p3} * 457763, last_seen, \
           if(udp, NULL, toUInt8(27)), \
           if(udp, NULL, toUInt8(27)), \
           if(kind <= 5, site_name, NULL), \
           NULL, \
           if(kind = 6, site_name, NULL), \
           if(kind <= 6, site_name, NULL), \
           toUInt8(multiIf(kind <= 4, 0, kind = 5, 1, kind = 6, 3, 255)), \
           agency, concat('unit', toString(unit_i)), toUInt8(intranet), local, peer_ip, \
           toUInt8(kind <= 6), toUInt8(1), agency, intDiv(last_seen, 60000000000) * 60, \
           bu, bd, toUInt8(1) \
         FROM (SELECT *, \
           concat('4', lower(hex(toUInt32(167772160 + node_i * 1024 + unit_i * 256 + 1 + {host})))) \
             AS local, \
           if(intranet, concat('4', lower(hex(toUInt32(180879360 + ({p4} % 8) * 256 + {p5} % 64)))), \
              concat('4', lower(hex(toUInt32(1728053248 + {peer} * 97))))) AS peer_ip, \
           multiIf(site_i % 4 = 0, concat('layanan', toString(site_i), '.kupangkota.go.id'), \
                   site_i % 4 = 1, concat('cdn', toString(site_i), '.googlevideo.com'), \
                   site_i % 4 = 2, concat('api', toString(site_i), '.whatsapp.net'), \
                   concat('static', toString(site_i), '.example.co.id')) AS site_name, \
           (kind = 5 OR {p6} % 8 = 0) AS udp \
         FROM (SELECT n, h1, h2, h3, h4, intDiv(n, 1000) AS b, b % {nodes} AS node_i, \
           concat('node-', toString(node_i)) AS node, concat('agency', toString(node_i)) AS agency, \
           intDiv(b, {nodes}) + 1 AS seq, toUInt32(n % 1000) AS idx, \
           (seq - 1) * 1000 + idx + 1 AS flow_id, \
           {start} + intDiv(n * {per}, 1000) AS last_seen, \
           {k} AS kind, {site} AS site_i, {u} AS unit_i, toUInt8({i} % 5 = 0) AS intranet, \
           5 + {q1} % 200 AS pu, 400 + {q2} % 100000 AS bu, 5 + {q3} % 800 AS pd, \
           400 + bitAnd(h4, 4294967295) % 2000000 AS bd \
         FROM (SELECT number + {offset} AS n, cityHash64(n) AS h1, cityHash64(n, 1) AS h2, \
           cityHash64(n, 2) AS h3, cityHash64(n, 5) AS h4 FROM numbers({count}))))",
        p1 = r16(h1, 2),
        p2 = r16(h1, 3),
        p3 = r16(h2, 2),
        p4 = "bitShiftRight(h4, 13)",
        p5 = r16(h3, 2),
        p6 = "bitShiftRight(h4, 29)",
        i = r16("h4", 3),
        q1 = r16(h1, 2),
        q2 = "bitShiftRight(h2, 20)",
        q3 = r16(h3, 1),
        // ns per 1000 records, so the span is exact at any N.
        per = span.saturating_mul(1000) / total.max(1),
    )
}

/// Per-second counters of the last hour (identities as an agent's: one
/// batch a second per node), and the earlier steps pre-summed.
fn counter_sql(db: &str, nodes: u32, hours: u32) -> Vec<String> {
    let last_hour = END - 3600;
    let start = END - u64::from(hours) * 3600;
    let vals = |h: &str, mult: u64| {
        format!(
            "toUInt64(bitAnd({h}, 16777215) % 10000000 * {mult}), \
             toUInt64(bitShiftRight({h}, 24) % 1000000 * {mult}), \
             toUInt64(bitShiftRight({h}, 44) % 10000 * {mult}), \
             toUInt64(bitShiftRight({h}, 50) % 5000 * {mult})"
        )
    };
    let mut out = vec![format!(
        "INSERT INTO {db}.usage_1s (agency, ts, unit, scope, node, boot, seq, idx, bytes_in, \
         bytes_out, packets_in, packets_out) \
         SELECT concat('agency', toString(node_i)), {last_hour} + sec, \
           concat('unit', toString(intDiv(k, 2))), toUInt8(k % 2), \
           concat('node-', toString(node_i)), toUInt64(1), toUInt64(1000000 + sec), toUInt32(k), {} \
         FROM (SELECT number % {nodes} AS node_i, intDiv(number, {nodes}) % 8 AS k, \
           intDiv(number, {nodes} * 8) AS sec, cityHash64(number, 3) AS h \
           FROM numbers({}))",
        vals("h", 1),
        u64::from(nodes) * 8 * 3600
    )];
    for (table, step) in [("usage_1m", 60u64), ("usage_1h", 3600)] {
        let steps = (last_hour - start) / step;
        if steps == 0 {
            continue;
        }
        out.push(format!(
            "INSERT INTO {db}.{table} (agency, ts, unit, scope, node, boot, seq, bytes_in, \
             bytes_out, packets_in, packets_out) \
             SELECT concat('agency', toString(node_i)), {start} + st * {step}, \
               concat('unit', toString(intDiv(k, 2))), toUInt8(k % 2), \
               concat('node-', toString(node_i)), toUInt64(1), toUInt64(0), {} \
             FROM (SELECT number % {nodes} AS node_i, intDiv(number, {nodes}) % 8 AS k, \
               intDiv(number, {nodes} * 8) AS st, cityHash64(number, 4) AS h \
               FROM numbers({}))",
            vals("h", step / 2),
            u64::from(nodes) * 8 * steps
        ));
    }
    out
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

#[derive(Deserialize)]
struct N {
    n: u64,
}

#[derive(Deserialize)]
struct V {
    v: String,
}

/// Write `flows` flows and their counters, fold and merge them; the
/// seconds it took, also noted in the database's `meta` for `--reuse`.
fn generate(
    client: &Client,
    store: &ClickHouseFlowStore,
    db: &str,
    flows: u64,
    nodes: u32,
    hours: u32,
) -> Result<f64, StoreError> {
    let t = Instant::now();
    let mut off = 0;
    while off < flows {
        let n = CHUNK.min(flows - off);
        client.exec(&flows_sql(db, off, n, flows, nodes, hours))?;
        off += n;
        eprintln!("generated {off} of {flows} flows");
    }
    for s in counter_sql(db, nodes, hours) {
        client.exec(&s)?;
    }
    // The folded rollups of it all, as a server running for a while would
    // have them (`rollups.rs`); then the peaks of the minutes with
    // per-second counters, as a writer opening folds them.
    super::rollups::fold_all(client, db, 0)?;
    store.writer()?.fold_aggregates()?;
    // As a server running for a while would have them: parts merged, one
    // partition at a time (a merge needs room for one partition's copy).
    #[derive(Deserialize)]
    struct P {
        table: String,
        partition: String,
    }
    let parts: Vec<P> = client.rows(&format!(
        "SELECT DISTINCT table, partition FROM system.parts \
         WHERE database = '{db}' AND active ORDER BY table, partition"
    ))?;
    for p in parts {
        if p.partition.chars().all(|c| c.is_ascii_digit()) {
            client.exec(&format!(
                "OPTIMIZE TABLE {db}.{} PARTITION {} FINAL",
                p.table, p.partition
            ))?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    client.exec(&format!(
        "INSERT INTO {db}.meta VALUES ('bench_flows', {flows}), ('bench_nodes', {nodes}), \
         ('bench_hours', {hours}), ('bench_generate_ms', {})",
        (secs * 1000.0) as u64
    ))?;
    Ok(secs)
}

/// The generation seconds of a kept database made with the same
/// arguments, or None when there is none (or it differs).
fn kept_generation(
    client: &Client,
    db: &str,
    flows: u64,
    nodes: u32,
    hours: u32,
) -> Result<Option<f64>, StoreError> {
    #[derive(Deserialize)]
    struct Kv {
        key: String,
        value: u64,
    }
    let exists = client
        .rows::<N>(&format!(
            "SELECT count() AS n FROM system.tables WHERE database = {} AND name = 'meta'",
            super::client::lit(db)
        ))?
        .first()
        .is_some_and(|r| r.n > 0);
    if !exists {
        return Ok(None);
    }
    let kv: HashMap<String, u64> = client
        .rows::<Kv>(&format!(
            "SELECT key, max(value) AS value FROM {db}.meta GROUP BY key"
        ))?
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let same = kv.get("bench_flows") == Some(&flows)
        && kv.get("bench_nodes") == Some(&u64::from(nodes))
        && kv.get("bench_hours") == Some(&u64::from(hours));
    Ok(if same {
        kv.get("bench_generate_ms").map(|ms| *ms as f64 / 1000.0)
    } else {
        None
    })
}

/// Generate `flows` flow records of `nodes` agents over `hours` into a fresh
/// database `db` at `url`, then time the reader. The database is dropped
/// afterwards unless `keep`.
pub fn bench_generated(
    url: &str,
    db: &str,
    flows: u64,
    nodes: u32,
    hours: u32,
    keep: bool,
    reuse: bool,
) -> Result<GeneratedReport, StoreError> {
    let nodes = nodes.max(1);
    let hours = hours.max(2);
    let client = Client::new(url, Duration::from_secs(3600))?;
    // A kept database of the same shape is timed again as it is: at 100 M
    // the generation takes most of an hour and does not change with the
    // reader's code.
    let kept = if reuse {
        kept_generation(&client, db, flows, nodes, hours)?
    } else {
        None
    };
    if kept.is_none() {
        client.exec(&format!("DROP DATABASE IF EXISTS {db}"))?;
    }
    let store = ClickHouseFlowStore::open(
        &ClickHouseConfig {
            url: url.to_string(),
            database: db.to_string(),
            timeout_secs: 3600,
            ..ClickHouseConfig::default()
        },
        &StoreConfig {
            flow_retention_days: 36_500,
            blocked_retention_days: 36_500,
            ..StoreConfig::default()
        },
    )?;
    let generate_secs = match kept {
        Some(secs) => secs,
        None => generate(&client, &store, db, flows, nodes, hours)?,
    };
    let one = |sql: &str| -> Result<u64, StoreError> {
        Ok(client.rows::<N>(sql)?.first().map_or(0, |r| r.n))
    };
    let flow_rows = one(&format!("SELECT count() AS n FROM {db}.flow_records"))?;
    let bytes_on_disk = one(&format!(
        "SELECT toUInt64(sum(bytes_on_disk)) AS n FROM system.parts \
         WHERE database = '{db}' AND active"
    ))?;
    let flow_bytes = one(&format!(
        "SELECT toUInt64(sum(bytes_on_disk)) AS n FROM system.parts \
         WHERE database = '{db}' AND active AND table = 'flow_records'"
    ))?;
    let r = store.reader()?;
    let (first, last) = (END - u64::from(hours) * 3600, END);
    let now = UNIX_EPOCH + Duration::from_secs(last);
    let page = |from: u64, agency: Option<&str>, sort| FlowFilter {
        from,
        to: last,
        limit: 100,
        agency: agency.map(str::to_string),
        sort,
        ..FlowFilter::default()
    };
    let time = crate::store::FlowSort::Time;
    let report = GeneratedReport {
        clickhouse_version: client
            .rows::<V>("SELECT version() AS v")?
            .pop()
            .map_or_else(String::new, |v| v.v),
        flows,
        nodes,
        hours,
        generate_secs,
        flow_rows,
        bytes_on_disk,
        bytes_per_flow: bytes_on_disk as f64 / flows.max(1) as f64,
        flow_table_bytes_per_flow: flow_bytes as f64 / flows.max(1) as f64,
        overview_ms: median_ms(|| r.traffic(now, 5).map(|_| ()))?,
        top_hosts_ms: median_ms(|| r.top_hosts(None, first, last, 10).map(|_| ()))?,
        top_sites_ms: median_ms(|| r.top_sites(None, first, last, 10).map(|_| ()))?,
        top_hosts_last_hour_ms: median_ms(|| r.top_hosts(None, last - 3600, last, 10).map(|_| ()))?,
        usage_minutes_ms: median_ms(|| {
            r.usage(
                "agency1",
                last - 86_400.min(last - first),
                last,
                Step::Minute,
            )
            .map(|_| ())
        })?,
        newest_flows_ms: median_ms(|| r.flow_page(&page(first, None, time)).map(|_| ()))?,
        newest_flows_one_agency_ms: median_ms(|| {
            r.flow_page(&page(first, Some("agency7"), time)).map(|_| ())
        })?,
        biggest_flows_last_hour_ms: median_ms(|| {
            r.flow_page(&page(last - 3600, None, crate::store::FlowSort::Bytes))
                .map(|_| ())
        })?,
    };
    if !keep {
        client.exec(&format!("DROP DATABASE IF EXISTS {db}"))?;
    }
    Ok(report)
}

//! Tables and materialized views, for ClickHouse 18.16 and later (Debian
//! bookworm's package): MergeTree engines, `PARTITION BY`, materialized
//! views writing `TO` a table, `FINAL`. Nothing newer: no table TTL (19.6),
//! no LowCardinality, no query parameters.
//!
//! Every data table is a ReplacingMergeTree whose sorting key ends in the
//! row's identity (node, boot, seq and the row's place in the batch), so a
//! batch written twice (see `mod.rs`) collapses to one copy; readers use
//! `FINAL`, which applies the collapse before ClickHouse has merged.
//!
//! The rollups (1 min and 1 h usage, top hosts and sites per minute) are
//! materialized views over the insert blocks. They group by the batch
//! identity too: a view sees one insert block and sums within it, and only
//! a whole batch is reproducible (a re-sent batch brings the same rows, but
//! may share its insert with other batches than the first time). So a rollup
//! row is one batch's sum for one minute/hour and key; a batch of 1000
//! records of one second gives one row per unit and scope instead of one per
//! second and counter. Such rows barely shrink, so the writer folds them
//! into one row per step and key (`rollups.rs`), which readers use.
//!
//! Retention: 18.16 has no TTL, so every table is partitioned by day (the
//! hourly rollup by 30 days) and `Writer::apply_retention` drops the
//! partitions wholly past their table's retention (data lives up to one
//! partition longer than the setting).

use super::client::Client;
use crate::store::StoreError;

/// This code's schema; a database with a newer one is refused.
/// 2: the peak tables (`usage_peak_1m`, `usage_peak_1h`).
/// 3: the folded rollups (`rollups.rs`), filled from the views' tables on
/// upgrade.
/// 4: `streams.dropped_records`, the records each boot's agent said its
/// spool dropped, so far (added to an older database by ALTER: the boots
/// before it count 0, as nothing kept them).
/// 5: top hosts and sites folded per hour and per day (`rollups::COARSE`),
/// filled from the minutes' folds on upgrade.
/// 6: `flow_index` (each record's time, size and identity, sorted by time)
/// replaces `flow_times`, which had no size: the biggest flows of a range
/// are ranked from it instead of from every column of `flow_records`.
/// Filled from `flow_records` on upgrade.
pub const VERSION: u64 = 6;

const DAY: u64 = 86_400;
const NS: u64 = 1_000_000_000;

/// A table with retention: its name, the partition length in seconds and
/// the unit of its partitioned time column (1: seconds, NS: nanoseconds).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub part_secs: u64,
    pub time_unit: u64,
}

pub const FLOWS: Table = Table {
    name: "flow_records",
    part_secs: DAY,
    time_unit: NS,
};
/// Every flow record's time, size (its flow's bytes both ways so far) and
/// identity, sorted by time (`flow_records` is sorted by identity): the
/// newest page reads its last rows only, the biggest flows page the range's
/// rows of five narrow columns.
pub const FLOW_INDEX: Table = Table {
    name: "flow_index",
    part_secs: DAY,
    time_unit: NS,
};
pub const BLOCKED: Table = Table {
    name: "blocked",
    part_secs: DAY,
    time_unit: NS,
};
pub const USAGE_1S: Table = Table {
    name: "usage_1s",
    part_secs: DAY,
    time_unit: 1,
};
pub const USAGE_1M: Table = Table {
    name: "usage_1m",
    part_secs: DAY,
    time_unit: 1,
};
pub const USAGE_1H: Table = Table {
    name: "usage_1h",
    part_secs: 30 * DAY,
    time_unit: 1,
};
pub const PEAK_1M: Table = Table {
    name: "usage_peak_1m",
    part_secs: DAY,
    time_unit: 1,
};
pub const PEAK_1H: Table = Table {
    name: "usage_peak_1h",
    part_secs: 30 * DAY,
    time_unit: 1,
};
pub const TOP_HOSTS: Table = Table {
    name: "top_hosts_1m",
    part_secs: DAY,
    time_unit: 1,
};
pub const TOP_SITES: Table = Table {
    name: "top_sites_1m",
    part_secs: DAY,
    time_unit: 1,
};

/// The folded rollups (`rollups.rs`), each with the views' table it folds
/// (whose retention it keeps).
pub const FOLDED: [(Table, Table); 8] = [
    (
        Table {
            name: super::rollups::USAGE_1M,
            part_secs: DAY,
            time_unit: 1,
        },
        USAGE_1M,
    ),
    (
        Table {
            name: super::rollups::USAGE_1H,
            part_secs: 30 * DAY,
            time_unit: 1,
        },
        USAGE_1H,
    ),
    (
        Table {
            name: super::rollups::HOSTS,
            part_secs: DAY,
            time_unit: 1,
        },
        TOP_HOSTS,
    ),
    (
        Table {
            name: super::rollups::SITES,
            part_secs: DAY,
            time_unit: 1,
        },
        TOP_SITES,
    ),
    // The coarse folds of hosts and sites (`rollups::COARSE`), in weeks
    // and months: few rows each.
    (
        Table {
            name: super::rollups::HOSTS_1H,
            part_secs: 7 * DAY,
            time_unit: 1,
        },
        TOP_HOSTS,
    ),
    (
        Table {
            name: super::rollups::SITES_1H,
            part_secs: 7 * DAY,
            time_unit: 1,
        },
        TOP_SITES,
    ),
    (
        Table {
            name: super::rollups::HOSTS_1D,
            part_secs: 30 * DAY,
            time_unit: 1,
        },
        TOP_HOSTS,
    ),
    (
        Table {
            name: super::rollups::SITES_1D,
            part_secs: 30 * DAY,
            time_unit: 1,
        },
        TOP_SITES,
    ),
];

/// Index granularity of the tables the NOC wall reads for a few recent
/// seconds or minutes of every agency. They are ordered by agency first
/// (an agency's own pages read a narrow range), so a time range across all
/// agencies reads a granule or two per agency: with ClickHouse's default
/// of 8192 rows that was 4 M rows for a 15-minute overview at 500 agents,
/// with 256 it is 128 k (and an agency's own range reads no more). Set
/// when a table is created: a database made before keeps its 8192.
const FINE: u32 = 256;

fn part(t: Table, col: &str) -> String {
    format!("intDiv({col}, {})", t.part_secs * t.time_unit)
}

/// The statements, in order; every one is idempotent.
fn statements(db: &str) -> Vec<String> {
    let id = "node String, boot UInt64, seq UInt64";
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.meta (key String, value UInt64) \
             ENGINE = ReplacingMergeTree(value) ORDER BY key"
        ),
        // High-water marks, written after each call's data (see mod.rs),
        // with what the boot's agent said it dropped up to the mark: the
        // most batches, and the records summed over its stored batches.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.streams ({id}, dropped UInt64, \
             {STREAMS_RECORDS} UInt64) \
             ENGINE = ReplacingMergeTree(seq) ORDER BY (node, boot)"
        ),
        // One row per stored flow record, holding the flow's state after it
        // (the latest row of a flow, by (seq, idx), is the flow), and what
        // it credits to the top hosts/sites: the growth since the previous
        // record, at the record's minute, under the sending node's agency.
        // Ip columns are sortable keys ("4"+8 hex or "6"+32 hex digits) so
        // ORDER BY and ranges follow address order.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.flow_records ({id}, idx UInt32, fid Int64, \
             flow_id UInt64, is_final UInt8, restart UInt8, end_reason UInt8, proto String, \
             src_ip String, src_port Nullable(UInt16), dst_ip String, dst_port Nullable(UInt16), \
             vlan Nullable(UInt16), vlan_inner Nullable(UInt16), packets_up UInt64, bytes_up UInt64, \
             packets_down UInt64, bytes_down UInt64, first_seen UInt64, last_seen UInt64, \
             tcp_flags_up Nullable(UInt8), tcp_flags_down Nullable(UInt8), sni Nullable(String), \
             http_host Nullable(String), dns_query Nullable(String), site Nullable(String), \
             site_source UInt8, agency String, unit String, scope UInt8, \
             local_ip String, peer_ip String, has_site UInt8, \
             credit UInt8, credit_agency String, minute UInt64, host_up UInt64, host_down UInt64, \
             new_flow UInt8) \
             ENGINE = ReplacingMergeTree() PARTITION BY {} \
             ORDER BY (node, boot, flow_id, seq, idx)",
            part(FLOWS, "last_seen")
        ),
        // Sorted by time first, the identity after it: a row's time is part
        // of what its identity determines (a batch written again brings the
        // same rows), so a second copy still collapses onto the first.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.flow_index (last_seen UInt64, {id}, idx UInt32, \
             flow_id UInt64, agency String, bytes UInt64) \
             ENGINE = ReplacingMergeTree() PARTITION BY {} \
             ORDER BY (last_seen, node, boot, seq, idx)",
            part(FLOW_INDEX, "last_seen")
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.flow_index_mv TO {db}.flow_index AS \
             SELECT last_seen, node, boot, seq, idx, flow_id, agency, \
             bytes_up + bytes_down AS bytes FROM {db}.flow_records"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.blocked ({id}, idx UInt32, first_seen UInt64, \
             last_seen UInt64, client String, agency String, unit String, method UInt8, \
             target String, server Nullable(String), port Nullable(UInt16), proto String, \
             rule String, list String, attempts UInt32) \
             ENGINE = ReplacingMergeTree() PARTITION BY {} \
             ORDER BY (agency, last_seen, node, boot, seq, idx)",
            part(BLOCKED, "last_seen")
        ),
        // Per-second counters as the agents send them: the 1 s rollup.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.usage_1s (agency String, ts UInt64, unit String, \
             scope UInt8, {id}, idx UInt32, bytes_in UInt64, bytes_out UInt64, \
             packets_in UInt64, packets_out UInt64) \
             ENGINE = ReplacingMergeTree() PARTITION BY {} \
             ORDER BY (agency, ts, unit, scope, node, boot, seq, idx) \
             SETTINGS index_granularity = {FINE}",
            part(USAGE_1S, "ts")
        ),
        rollup_table(db, USAGE_1M),
        rollup_view(db, USAGE_1M, 60),
        rollup_table(db, USAGE_1H),
        rollup_view(db, USAGE_1H, 3600),
        // Written by the writer's fold (`peaks.rs`): the latest fold of a
        // step replaces the ones before.
        peak_table(db, PEAK_1M),
        peak_table(db, PEAK_1H),
        // The folds (`rollups.rs`): one row per step and key, the latest
        // fold replacing the ones before.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{} (agency String, ts UInt64, unit String, \
             scope UInt8, bytes_in UInt64, bytes_out UInt64, packets_in UInt64, \
             packets_out UInt64, version UInt64) \
             ENGINE = ReplacingMergeTree(version) PARTITION BY {} \
             ORDER BY (agency, ts, unit, scope) SETTINGS index_granularity = {FINE}",
            FOLDED[0].0.name,
            part(FOLDED[0].0, "ts")
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{} (agency String, ts UInt64, unit String, \
             scope UInt8, bytes_in UInt64, bytes_out UInt64, packets_in UInt64, \
             packets_out UInt64, version UInt64) \
             ENGINE = ReplacingMergeTree(version) PARTITION BY {} \
             ORDER BY (agency, ts, unit, scope)",
            FOLDED[1].0.name,
            part(FOLDED[1].0, "ts")
        ),
        hosts_fold_table(db, FOLDED[2].0),
        sites_fold_table(db, FOLDED[3].0),
        hosts_fold_table(db, FOLDED[4].0),
        sites_fold_table(db, FOLDED[5].0),
        hosts_fold_table(db, FOLDED[6].0),
        sites_fold_table(db, FOLDED[7].0),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.top_hosts_1m (agency String, minute UInt64, \
             unit String, host String, {id}, bytes_up UInt64, bytes_down UInt64, flows UInt64) \
             ENGINE = ReplacingMergeTree() PARTITION BY {} \
             ORDER BY (agency, minute, unit, host, node, boot, seq)",
            part(TOP_HOSTS, "minute")
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.top_hosts_1m_mv TO {db}.top_hosts_1m AS \
             SELECT credit_agency AS agency, minute, unit, local_ip AS host, node, boot, seq, \
             sum(host_up) AS bytes_up, sum(host_down) AS bytes_down, sum(new_flow) AS flows \
             FROM {db}.flow_records WHERE credit = 1 \
             GROUP BY agency, minute, unit, host, node, boot, seq"
        ),
        // source: the best (lowest) site source code, 255 for none. (The
        // filter is on has_site: `site` there would mean the alias.)
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.top_sites_1m (agency String, minute UInt64, \
             site String, {id}, bytes UInt64, flows UInt64, source UInt8) \
             ENGINE = ReplacingMergeTree() PARTITION BY {} \
             ORDER BY (agency, minute, site, node, boot, seq)",
            part(TOP_SITES, "minute")
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.top_sites_1m_mv TO {db}.top_sites_1m AS \
             SELECT credit_agency AS agency, minute, assumeNotNull(site) AS site, node, boot, seq, \
             sum(host_up + host_down) AS bytes, sum(new_flow) AS flows, min(site_source) AS source \
             FROM {db}.flow_records WHERE credit = 1 AND has_site = 1 \
             GROUP BY agency, minute, site, node, boot, seq"
        ),
    ]
}

/// A fold of top hosts per minute, hour or day (`minute`: the step's start).
fn hosts_fold_table(db: &str, t: Table) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{} (agency String, minute UInt64, unit String, \
         host String, bytes_up UInt64, bytes_down UInt64, flows UInt64, version UInt64) \
         ENGINE = ReplacingMergeTree(version) PARTITION BY {} \
         ORDER BY (agency, minute, unit, host) SETTINGS index_granularity = {FINE}",
        t.name,
        part(t, "minute")
    )
}

/// A fold of top sites per minute, hour or day.
fn sites_fold_table(db: &str, t: Table) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{} (agency String, minute UInt64, site String, \
         bytes UInt64, flows UInt64, source UInt8, version UInt64) \
         ENGINE = ReplacingMergeTree(version) PARTITION BY {} \
         ORDER BY (agency, minute, site) SETTINGS index_granularity = {FINE}",
        t.name,
        part(t, "minute")
    )
}

fn rollup_table(db: &str, t: Table) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{} (agency String, ts UInt64, unit String, scope UInt8, \
         node String, boot UInt64, seq UInt64, bytes_in UInt64, bytes_out UInt64, \
         packets_in UInt64, packets_out UInt64) \
         ENGINE = ReplacingMergeTree() PARTITION BY {} \
         ORDER BY (agency, ts, unit, scope, node, boot, seq)",
        t.name,
        part(t, "ts")
    )
}

fn peak_table(db: &str, t: Table) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{} (agency String, ts UInt64, max_in UInt64, \
         max_out UInt64, sketch_in String, sketch_out String, version UInt64) \
         ENGINE = ReplacingMergeTree(version) PARTITION BY {} ORDER BY (agency, ts)",
        t.name,
        part(t, "ts")
    )
}

fn rollup_view(db: &str, t: Table, step: u64) -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name}_mv TO {db}.{name} AS \
         SELECT agency, intDiv(ts, {step}) * {step} AS ts, unit, scope, node, boot, seq, \
         sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out, \
         sum(packets_in) AS packets_in, sum(packets_out) AS packets_out \
         FROM {db}.usage_1s GROUP BY agency, ts, unit, scope, node, boot, seq",
        name = t.name
    )
}

#[derive(serde::Deserialize)]
struct Version {
    v: u64,
}

/// The schema version the database holds (0: none yet).
pub fn version(c: &Client, db: &str) -> Result<u64, StoreError> {
    let rows: Vec<Version> = c.rows(&format!(
        "SELECT toUInt64(max(value)) AS v FROM {db}.meta WHERE key = 'schema'"
    ))?;
    Ok(rows.first().map_or(0, |r| r.v))
}

/// Create what is missing; refuse a database a newer collector wrote.
pub fn migrate(c: &Client, db: &str) -> Result<(), StoreError> {
    if !db.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') || db.is_empty() {
        return Err(StoreError::Invalid {
            what: "storage.clickhouse.database",
            value: db.to_string(),
            reason: "must be letters, digits and _",
        });
    }
    for s in statements(db) {
        c.exec(&s)?;
    }
    add_streams_records(c, db)?;
    retire_flow_times(c, db, db)?;
    check_version(c, db)
}

/// Drop version 5's `flow_times` and its view (its rows are refilled into
/// `flow_index` by `fill_flow_index`). `flow_index_mv` already takes every
/// insert, so no record written meanwhile is missed; a crash before the
/// refill leaves the version at 5, so the next opening refills.
fn retire_flow_times(c: &Client, db: &str, local: &str) -> Result<(), StoreError> {
    c.exec(&format!("DROP TABLE IF EXISTS {local}.flow_times_mv"))?;
    c.exec(&format!("DROP TABLE IF EXISTS {local}.flow_times"))?;
    if db != local {
        c.exec(&format!("DROP TABLE IF EXISTS {db}.flow_times"))?;
    }
    Ok(())
}

/// Fill `flow_index` from the records of a database older than version 6,
/// an hour at a time (a year's database would not fit one request's
/// timeout). A row written twice (by the view and here) collapses: it has
/// one identity.
fn fill_flow_index(c: &Client, db: &str) -> Result<(), StoreError> {
    #[derive(serde::Deserialize)]
    struct Hour {
        h: u64,
    }
    let hour = 3600 * NS;
    let hours: Vec<Hour> = c.rows(&format!(
        "SELECT DISTINCT intDiv(last_seen, {hour}) AS h FROM {db}.flow_records ORDER BY h"
    ))?;
    tracing::info!(
        db,
        hours = hours.len(),
        "filling flow_index from flow_records"
    );
    for Hour { h } in hours {
        c.exec(&format!(
            "INSERT INTO {db}.flow_index SELECT last_seen, node, boot, seq, idx, flow_id, \
             agency, bytes_up + bytes_down AS bytes FROM {db}.flow_records \
             WHERE last_seen >= {} AND last_seen < {}",
            h * hour,
            (h + 1) * hour
        ))?;
    }
    Ok(())
}

/// The column version 4 added to `streams`.
const STREAMS_RECORDS: &str = "dropped_records";

#[derive(serde::Deserialize)]
struct Found {
    n: u64,
}

/// Give a `streams` table of a database older than version 4 its
/// `dropped_records` column (18.16 has no ADD COLUMN IF NOT EXISTS, so the
/// server's catalogue is asked first). A Distributed table over the shards'
/// tables needs it as well: it reads the columns it declares.
fn add_streams_records(c: &Client, db: &str) -> Result<(), StoreError> {
    let found: Vec<Found> = c.rows(&format!(
        "SELECT count() AS n FROM system.columns \
         WHERE database = '{db}' AND table = 'streams' AND name = '{STREAMS_RECORDS}'"
    ))?;
    if found.first().is_some_and(|f| f.n > 0) {
        return Ok(());
    }
    c.exec(&format!(
        "ALTER TABLE {db}.streams ADD COLUMN {STREAMS_RECORDS} UInt64 DEFAULT 0"
    ))
}

/// Every table, with what a Distributed table over it shards by.
const SHARDED: [(&str, &str); 20] = [
    ("flow_index", "cityHash64(node)"),
    ("meta", "cityHash64(key)"),
    ("streams", "cityHash64(node)"),
    ("flow_records", "cityHash64(node)"),
    ("blocked", "cityHash64(node)"),
    ("usage_1s", "cityHash64(node)"),
    ("usage_1m", "cityHash64(node)"),
    ("usage_1h", "cityHash64(node)"),
    ("top_hosts_1m", "cityHash64(node)"),
    ("top_sites_1m", "cityHash64(node)"),
    ("usage_peak_1m", "cityHash64(agency)"),
    ("usage_peak_1h", "cityHash64(agency)"),
    ("usage_1m_f", "cityHash64(agency)"),
    ("usage_1h_f", "cityHash64(agency)"),
    ("top_hosts_1m_f", "cityHash64(agency)"),
    ("top_sites_1m_f", "cityHash64(agency)"),
    ("top_hosts_1h_f", "cityHash64(agency)"),
    ("top_sites_1h_f", "cityHash64(agency)"),
    ("top_hosts_1d_f", "cityHash64(agency)"),
    ("top_sites_1d_f", "cityHash64(agency)"),
];

/// A cluster: every table and view on each shard in `local`, and on each
/// shard Distributed tables in `db` over them (any shard can serve the
/// collector). Statement by statement through each shard's URL: ON CLUSTER
/// would need ZooKeeper. Rows of one node go to one shard, so a batch
/// written twice collapses there (FINAL is applied per shard) and the
/// views see a batch whole; a peak row's agency, likewise.
pub fn migrate_cluster(
    main: &Client,
    shards: &[Client],
    db: &str,
    local: &str,
    cluster: &str,
) -> Result<(), StoreError> {
    for name in [db, local, cluster] {
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return Err(StoreError::Invalid {
                what: "storage.clickhouse",
                value: name.to_string(),
                reason: "database and cluster names must be letters, digits and _",
            });
        }
    }
    for shard in shards {
        for s in statements(local) {
            shard.exec(&s)?;
        }
        add_streams_records(shard, local)?;
        shard.exec(&format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
        for (t, key) in SHARDED {
            shard.exec(&format!(
                "CREATE TABLE IF NOT EXISTS {db}.{t} AS {local}.{t} \
                 ENGINE = Distributed({cluster}, {local}, {t}, {key})"
            ))?;
        }
        add_streams_records(shard, db)?;
        retire_flow_times(shard, db, local)?;
    }
    check_version(main, db)
}

fn check_version(c: &Client, db: &str) -> Result<(), StoreError> {
    let found = version(c, db)?;
    if found > VERSION {
        return Err(StoreError::SchemaTooNew {
            found: found as i64,
            supported: VERSION as i64,
        });
    }
    if found < VERSION {
        if found > 0 && found < 3 {
            // The views' tables of an older database, folded once.
            super::rollups::fold_all(c, db, 0)?;
        } else if found > 0 && found < 5 {
            // Its minutes' folds into the hours and days version 5 added.
            super::rollups::fold_coarse_all(c, db, 0)?;
        }
        if found > 0 && found < 6 {
            fill_flow_index(c, db)?;
        }
        c.insert(
            &format!("{db}.meta"),
            format!("{{\"key\":\"schema\",\"value\":{VERSION}}}\n").as_bytes(),
        )?;
    }
    Ok(())
}

/// Every table with retention, with its setting's name.
pub const RETAINED: [Table; 10] = [
    FLOWS, BLOCKED, USAGE_1S, USAGE_1M, USAGE_1H, TOP_HOSTS, TOP_SITES, PEAK_1M, PEAK_1H,
    FLOW_INDEX,
];

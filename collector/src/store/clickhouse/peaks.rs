//! Peaks and p95 per minute and per hour (`usage_peak_1m`, `usage_peak_1h`),
//! as the SQLite store keeps them (`store::peaks`): per agency and step the
//! highest one-second total and a sketch of every second's total, so a
//! usage answer over any range the rollups serve reads one row per step
//! instead of the seconds.
//!
//! A second's total is a sum over nodes and batches, which a materialized
//! view cannot see whole (it sees one insert block), so the writer folds
//! them: the minutes a call's counters touched are remembered, and a fold
//! recomputes each such minute from `usage_1s` FINAL (a batch written twice
//! counts once) and then each touched hour by merging its minutes'
//! sketches (a second belongs to one minute, so this equals the sketch of
//! the hour's seconds). A recomputed row replaces the one before it
//! (ReplacingMergeTree by fold version; readers use FINAL), so folding
//! again, or after a crash, changes nothing.
//!
//! Known limit: the minutes to fold live in the writer's memory. A writer
//! opening refolds the last two hours of counters; a crash loses the
//! refold of older minutes that late batches touched just before it (their
//! peaks stay as folded before).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use simpul_core::sketch::Sketch;

use super::client::{lit, Client};
use crate::store::peaks::{from_seconds, StepPeaks};
use crate::store::StoreError;

pub const MINUTE_TABLE: &str = "usage_peak_1m";
pub const HOUR_TABLE: &str = "usage_peak_1h";

/// Steps per query at most (the statement stays far below ClickHouse's
/// 256 KiB `max_query_size`).
const CHUNK: usize = 2000;

/// (agency, minute start)
pub type Minute = (String, u64);

#[derive(Serialize, Deserialize)]
struct PeakRow {
    agency: String,
    ts: u64,
    max_in: u64,
    max_out: u64,
    /// `Sketch::to_bytes`, hex.
    sketch_in: String,
    sketch_out: String,
    #[serde(default)]
    version: u64,
}

impl PeakRow {
    fn new(agency: &str, ts: u64, p: &StepPeaks, version: u64) -> PeakRow {
        PeakRow {
            agency: agency.to_string(),
            ts,
            max_in: p.max[0],
            max_out: p.max[1],
            sketch_in: hex::encode(p.sketch[0].to_bytes()),
            sketch_out: hex::encode(p.sketch[1].to_bytes()),
            version,
        }
    }

    fn peaks(&self, table: &'static str) -> Result<StepPeaks, StoreError> {
        let sketch = |h: &str| {
            let bytes = hex::decode(h).map_err(|e| StoreError::Corrupt {
                table,
                detail: format!("sketch is not hex: {e}"),
            })?;
            Sketch::decode(&bytes).map_err(|e| StoreError::Corrupt {
                table,
                detail: e.to_string(),
            })
        };
        Ok(StepPeaks {
            max: [self.max_in, self.max_out],
            sketch: [sketch(&self.sketch_in)?, sketch(&self.sketch_out)?],
        })
    }
}

#[derive(Deserialize)]
struct SecondRow {
    agency: String,
    ts: u64,
    i: u64,
    o: u64,
}

fn steps_list(steps: &[(&str, u64)]) -> String {
    steps
        .iter()
        .map(|(a, ts)| format!("({}, {ts})", lit(a)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `agency IN (…)` of a chunk's steps: lets the key index (agency first)
/// skip the other agencies' rows.
fn agencies(steps: &[(&str, u64)]) -> String {
    let set: BTreeSet<&str> = steps.iter().map(|s| s.0).collect();
    let list: Vec<String> = set.into_iter().map(lit).collect();
    format!("agency IN ({})", list.join(", "))
}

fn insert(c: &Client, db: &str, table: &str, rows: &[PeakRow]) -> Result<(), StoreError> {
    let mut body = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut body, r)?;
        body.push(b'\n');
    }
    c.insert(&format!("{db}.{table}"), &body)
}

/// Recompute the peak rows of `minutes` and of their hours.
pub fn fold(
    c: &Client,
    db: &str,
    minutes: &BTreeSet<Minute>,
    version: u64,
) -> Result<(), StoreError> {
    let all: Vec<(&str, u64)> = minutes.iter().map(|(a, m)| (a.as_str(), *m)).collect();
    for chunk in all.chunks(CHUNK) {
        let lo = chunk.iter().map(|s| s.1).min().unwrap_or(0);
        let hi = chunk.iter().map(|s| s.1).max().unwrap_or(0) + 60;
        let seconds: Vec<SecondRow> = c.rows(&format!(
            "SELECT agency, ts, sum(bytes_in) AS i, sum(bytes_out) AS o FROM {db}.usage_1s FINAL \
             WHERE {} AND ts >= {lo} AND ts < {hi} AND (agency, intDiv(ts, 60) * 60) IN ({}) \
             GROUP BY agency, ts",
            agencies(chunk),
            steps_list(chunk)
        ))?;
        let mut per_agency: HashMap<String, Vec<(i64, [u64; 2])>> = HashMap::new();
        for s in seconds {
            per_agency
                .entry(s.agency)
                .or_default()
                .push((s.ts as i64, [s.i, s.o]));
        }
        let mut rows = Vec::new();
        for (agency, secs) in &per_agency {
            for (ts, p) in from_seconds(secs.iter().copied(), 60) {
                rows.push(PeakRow::new(agency, ts as u64, &p, version));
            }
        }
        insert(c, db, MINUTE_TABLE, &rows)?;
    }
    let hours: BTreeSet<(&str, u64)> = all.iter().map(|(a, m)| (*a, m / 3600 * 3600)).collect();
    let hours: Vec<(&str, u64)> = hours.into_iter().collect();
    for chunk in hours.chunks(CHUNK) {
        let lo = chunk.iter().map(|s| s.1).min().unwrap_or(0);
        let hi = chunk.iter().map(|s| s.1).max().unwrap_or(0) + 3600;
        let mins: Vec<PeakRow> = c.rows(&format!(
            "SELECT agency, ts, max_in, max_out, sketch_in, sketch_out FROM {db}.{MINUTE_TABLE} \
             FINAL WHERE {} AND ts >= {lo} AND ts < {hi} \
             AND (agency, intDiv(ts, 3600) * 3600) IN ({})",
            agencies(chunk),
            steps_list(chunk)
        ))?;
        let mut merged: BTreeMap<(String, u64), StepPeaks> = BTreeMap::new();
        for m in mins {
            let p = m.peaks(MINUTE_TABLE)?;
            let h = merged.entry((m.agency, m.ts / 3600 * 3600)).or_default();
            for d in 0..2 {
                h.max[d] = h.max[d].max(p.max[d]);
                h.sketch[d].merge(&p.sketch[d]);
            }
        }
        let rows: Vec<PeakRow> = merged
            .iter()
            .map(|((a, ts), p)| PeakRow::new(a, *ts, p, version))
            .collect();
        insert(c, db, HOUR_TABLE, &rows)?;
    }
    Ok(())
}

/// The minutes with counters in the last two hours before the newest one
/// (what a writer opening refolds).
pub fn recent_minutes(c: &Client, db: &str) -> Result<BTreeSet<Minute>, StoreError> {
    #[derive(Deserialize)]
    struct M {
        agency: String,
        m: u64,
    }
    let rows: Vec<M> = c.rows(&format!(
        "SELECT DISTINCT agency, intDiv(ts, 60) * 60 AS m FROM {db}.usage_1s \
         WHERE ts >= (SELECT max(ts) FROM {db}.usage_1s) - 7200"
    ))?;
    Ok(rows.into_iter().map(|r| (r.agency, r.m)).collect())
}

/// The stored steps of one agency over `[from, to)`, at most `limit`.
pub fn read_steps(
    c: &Client,
    db: &str,
    agency: &str,
    (from, to): (u64, u64),
    step_secs: u64,
    limit: usize,
) -> Result<BTreeMap<i64, StepPeaks>, StoreError> {
    let table = if step_secs == 60 {
        MINUTE_TABLE
    } else {
        HOUR_TABLE
    };
    let rows: Vec<PeakRow> = c.rows(&format!(
        "SELECT agency, ts, max_in, max_out, sketch_in, sketch_out FROM {db}.{table} FINAL \
         WHERE agency = {} AND ts >= {from} AND ts < {to} ORDER BY ts LIMIT {limit}",
        lit(agency)
    ))?;
    rows.iter()
        .map(|r| Ok((r.ts as i64, r.peaks(table)?)))
        .collect()
}

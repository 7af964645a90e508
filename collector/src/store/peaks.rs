//! Peaks and percentiles of an agency's per-second rate, kept per minute and
//! per hour beside the byte rollups (`usage_peak_1m`, `usage_peak_1h`):
//! one-minute averages hide bursts (2.8 Mbit/s for a few seconds against a
//! 2 Mbit/s allocation averages ~600 kbit/s), and the per-second rows live
//! only an hour.
//!
//! Per step and direction a row holds the highest one-second total of the
//! agency (all units and scopes) and a percentile sketch of those totals
//! (`simpul_core::sketch`), so a p95 over any range is a merge of the steps'
//! sketches. A second's total grows while counters arrive (several nodes,
//! several batches): ingest reads the total before the call from `usage_1s`,
//! takes that value out of the step's sketch and puts the new one in, in the
//! same transaction as the counters, so every sketch holds exactly its
//! seconds' totals. The peak only grows, so it is a plain max.
//!
//! Known limit: counters that arrive after their second's per-second rows
//! were deleted (an hour) cannot replace the earlier total, so they are added
//! as a second of their own (the step's peak then is a lower bound).

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use simpul_core::sketch::{exact_quantile, Sketch};

use super::codec::floor;
use super::query::{UsagePoint, UsageSeries};
use super::{StoreError, USAGE_1S_RETENTION_SECS};

/// The peak tables and their step, shortest first.
pub(crate) const TABLES: [(&str, i64); 2] = [("usage_peak_1m", 60), ("usage_peak_1h", 3600)];

/// A usage series has at most this many steps with traffic: the answer
/// holds one point per such step and the range's p95 merges one sketch per
/// step. Two years of hours (the hourly retention) fit; a month of minutes
/// does not (ask hours).
pub const MAX_USAGE_STEPS: usize = 20_000;

const LIMIT: i64 = MAX_USAGE_STEPS as i64 + 1;

/// The percentile reported beside the average and the peak.
const PERCENTILE: f64 = 0.95;

/// A series of `points` steps with traffic (read with a limit one above the
/// cap), refused when over it.
pub(crate) fn check_points(points: usize) -> Result<(), StoreError> {
    if points > MAX_USAGE_STEPS {
        return Err(StoreError::Invalid {
            what: "usage range",
            value: format!("more than {MAX_USAGE_STEPS} steps with traffic"),
            reason: "too many steps for one answer: ask a larger step or a shorter range",
        });
    }
    Ok(())
}

/// One step of one agency: the highest second and the sketch of every
/// second, per direction ([in, out]), in bytes per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepPeaks {
    pub max: [u64; 2],
    pub sketch: [Sketch; 2],
}

impl StepPeaks {
    fn add_second(&mut self, v: [u64; 2]) {
        for (d, v) in v.into_iter().enumerate() {
            self.max[d] = self.max[d].max(v);
            self.sketch[d].add(v);
        }
    }
}

/// Steps built from per-second totals (agency, all units): the 1 s step, the
/// in-memory store, the backfill at migration.
pub(crate) fn from_seconds(
    seconds: impl IntoIterator<Item = (i64, [u64; 2])>,
    step_secs: i64,
) -> BTreeMap<i64, StepPeaks> {
    let mut out: BTreeMap<i64, StepPeaks> = BTreeMap::new();
    for (ts, v) in seconds {
        out.entry(floor(ts, step_secs)).or_default().add_second(v);
    }
    out
}

fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: e.to_string(),
    }
}

fn decode(table: &'static str, b: &[u8]) -> Result<Sketch, StoreError> {
    Sketch::decode(b).map_err(|e| corrupt(table, e))
}

fn table_name(step_secs: i64) -> Option<&'static str> {
    TABLES.iter().find(|t| t.1 == step_secs).map(|t| t.0)
}

/// Ingest: fold this call's counters, summed per (agency, second) as [in,
/// out] bytes, into the peak rows. Runs before the call's `usage_1s` rows
/// are written: what is stored there is the seconds' total so far.
pub(crate) fn update(
    tx: &Transaction<'_>,
    added: &HashMap<(&str, i64), [i64; 2]>,
) -> Result<(), StoreError> {
    if added.is_empty() {
        return Ok(());
    }
    let mut seconds: Vec<_> = added.iter().collect();
    seconds.sort_unstable_by_key(|(k, _)| *k);
    // Per table: (agency, step) → (max of the new totals, [(old, new)] per direction).
    type Edits<'a> = BTreeMap<(&'a str, i64), ([u64; 2], [Vec<(u64, u64)>; 2])>;
    let mut edits: [Edits<'_>; 2] = Default::default();
    {
        let mut before = tx.prepare_cached(
            "SELECT total(bytes_in), total(bytes_out) FROM usage_1s WHERE agency = ?1 AND ts = ?2",
        )?;
        for (&(agency, ts), add) in seconds {
            let old: [f64; 2] =
                before.query_row(params![agency, ts], |r| Ok([r.get(0)?, r.get(1)?]))?;
            // total() is exact below 2^53, which every stored counter is.
            let old = old.map(|v| v as u64);
            let new = [0, 1].map(|d| old[d].saturating_add(u64::try_from(add[d]).unwrap_or(0)));
            for (t, (_, step)) in TABLES.iter().enumerate() {
                let e = edits[t].entry((agency, floor(ts, *step))).or_default();
                for d in 0..2 {
                    e.0[d] = e.0[d].max(new[d]);
                    if new[d] != old[d] {
                        e.1[d].push((old[d], new[d]));
                    }
                }
            }
        }
    }
    for (t, (table, _)) in TABLES.iter().enumerate() {
        let mut get = tx.prepare_cached(&format!(
            "SELECT max_in, max_out, sketch_in, sketch_out FROM {table} WHERE agency = ?1 AND ts = ?2"
        ))?;
        let mut put = tx.prepare_cached(&format!(
            "INSERT INTO {table} (agency, ts, max_in, max_out, sketch_in, sketch_out)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (agency, ts) DO UPDATE SET max_in = excluded.max_in,
                 max_out = excluded.max_out, sketch_in = excluded.sketch_in,
                 sketch_out = excluded.sketch_out"
        ))?;
        for (&(agency, step), (max, changes)) in &edits[t] {
            let stored: Option<(i64, i64, Vec<u8>, Vec<u8>)> = get
                .query_row(params![agency, step], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let mut p = match stored {
                Some((mi, mo, si, so)) => StepPeaks {
                    max: [mi, mo].map(|v| u64::try_from(v).unwrap_or(0)),
                    sketch: [decode(table, &si)?, decode(table, &so)?],
                },
                None => StepPeaks::default(),
            };
            for d in 0..2 {
                p.max[d] = p.max[d].max(max[d]);
                for &(old, new) in &changes[d] {
                    // False only when the old total predates this row (see
                    // the module comment): the new total is then added.
                    p.sketch[d].remove(old);
                    p.sketch[d].add(new);
                }
            }
            put.execute(params![
                agency,
                step,
                i64::try_from(p.max[0]).unwrap_or(i64::MAX),
                i64::try_from(p.max[1]).unwrap_or(i64::MAX),
                p.sketch[0].to_bytes(),
                p.sketch[1].to_bytes()
            ])?;
        }
    }
    Ok(())
}

/// At the migration that adds the peak tables: the steps the per-second rows
/// still cover whole (those starting at most an hour ago) get their peaks;
/// older steps stay without (their points say so with nulls).
pub(crate) fn backfill(tx: &Transaction<'_>, now_s: i64) -> Result<(), StoreError> {
    let since = now_s - USAGE_1S_RETENTION_SECS as i64;
    let mut per_agency: BTreeMap<String, Vec<(i64, [u64; 2])>> = BTreeMap::new();
    {
        let mut st = tx.prepare(
            "SELECT agency, ts, total(bytes_in), total(bytes_out) FROM usage_1s
             WHERE ts >= ?1 GROUP BY agency, ts",
        )?;
        let mut rows = st.query([floor(since, 60)])?;
        while let Some(r) = rows.next()? {
            let (i, o): (f64, f64) = (r.get(2)?, r.get(3)?);
            per_agency
                .entry(r.get(0)?)
                .or_default()
                .push((r.get(1)?, [i as u64, o as u64]));
        }
    }
    for (table, step) in TABLES {
        let mut put = tx.prepare(&format!(
            "INSERT INTO {table} (agency, ts, max_in, max_out, sketch_in, sketch_out)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ))?;
        for (agency, seconds) in &per_agency {
            for (ts, p) in from_seconds(seconds.iter().copied(), step) {
                if ts < since {
                    continue;
                }
                put.execute(params![
                    agency,
                    ts,
                    i64::try_from(p.max[0]).unwrap_or(i64::MAX),
                    i64::try_from(p.max[1]).unwrap_or(i64::MAX),
                    p.sketch[0].to_bytes(),
                    p.sketch[1].to_bytes()
                ])?;
            }
        }
    }
    Ok(())
}

/// The stored steps of one agency over `[from, to)` (step starts), at most
/// one above the cap (the caller checked its points against it; steps with
/// only zero counters are the rest).
pub(crate) fn read_steps(
    conn: &Connection,
    agency: &str,
    from: i64,
    to: i64,
    step_secs: i64,
) -> Result<BTreeMap<i64, StepPeaks>, StoreError> {
    let Some(table) = table_name(step_secs) else {
        let mut st = conn.prepare_cached(
            "SELECT ts, total(bytes_in), total(bytes_out) FROM usage_1s
             WHERE agency = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY ts LIMIT ?4",
        )?;
        let rows = st.query_map(params![agency, from, to, LIMIT], |r| {
            let (i, o): (f64, f64) = (r.get(1)?, r.get(2)?);
            Ok((r.get::<_, i64>(0)?, [i as u64, o as u64]))
        })?;
        let seconds = rows.collect::<Result<Vec<_>, _>>()?;
        return Ok(from_seconds(seconds, 1));
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT ts, max_in, max_out, sketch_in, sketch_out FROM {table}
         WHERE agency = ?1 AND ts >= ?2 AND ts < ?3 LIMIT ?4"
    ))?;
    let mut rows = st.query(params![agency, from, to, LIMIT])?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let (mi, mo): (i64, i64) = (r.get(1)?, r.get(2)?);
        out.insert(
            r.get(0)?,
            StepPeaks {
                max: [mi, mo].map(|v| u64::try_from(v).unwrap_or(0)),
                sketch: [
                    decode(table, r.get_ref(3)?.as_blob()?)?,
                    decode(table, r.get_ref(4)?.as_blob()?)?,
                ],
            },
        );
    }
    Ok(out)
}

/// One step's sketches, kept with a series (not sent) for what is computed
/// against the allocation afterwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepSketch {
    pub ts: i64,
    pub sketch: [Sketch; 2],
}

/// What the range's steps say about peaks, set on a series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RangePeaks {
    /// The highest one-second rate of the range, bps.
    pub peak_in_bps: Option<u64>,
    pub peak_out_bps: Option<u64>,
    /// The 95th percentile of the range's one-second rates (idle seconds
    /// count as zero), bps; within 1 % of the exact value for minute and
    /// hour steps, exact for one-second steps.
    pub p95_in_bps: Option<u64>,
    pub p95_out_bps: Option<u64>,
    /// Steps with traffic stored before peaks were kept: no peak or p95 of
    /// their own, and their seconds are left out of the range's.
    pub steps_without_peaks: u64,
}

fn bps(bytes_per_sec: f64) -> u64 {
    (bytes_per_sec * 8.0).round() as u64
}

/// Fill the points' peaks and p95 from `steps` and return the range's.
/// `point_ts[i]` is `points[i]`'s step start; `[from, to)` the series' whole
/// steps; seconds from `now_s` on are not counted (they have not happened).
pub(crate) fn apply(
    points: &mut [UsagePoint],
    point_ts: &[i64],
    steps: BTreeMap<i64, StepPeaks>,
    (from, to, step_secs): (i64, i64, i64),
    now_s: i64,
) -> (RangePeaks, Vec<StepSketch>) {
    let elapsed = |ts: i64| (ts + step_secs).min(now_s).saturating_sub(ts).max(0) as u64;
    let mut range = RangePeaks::default();
    let mut seconds = 0u64;
    let mut without = 0u64;
    for (p, &ts) in points.iter_mut().zip(point_ts) {
        match steps.get(&ts) {
            Some(s) => {
                let n = elapsed(ts);
                let p95 = [0, 1].map(|d| {
                    if step_secs == 1 {
                        s.max[d] * 8
                    } else {
                        bps(s.sketch[d].quantile(PERCENTILE, n).min(s.max[d] as f64))
                    }
                });
                p.peak_in_bps = Some(s.max[0] * 8);
                p.peak_out_bps = Some(s.max[1] * 8);
                p.p95_in_bps = Some(p95[0]);
                p.p95_out_bps = Some(p95[1]);
            }
            None => {
                without += 1;
                seconds += elapsed(ts);
            }
        }
    }
    range.steps_without_peaks = without;
    // Seconds the range covers with peaks known (idle steps included): the
    // steps are contiguous, so up to now.
    let total = (to.min(now_s) - from).max(0) as u64;
    let total = total.saturating_sub(seconds);
    let known = !steps.is_empty() || without == 0;
    if known {
        let max = steps
            .values()
            .fold([0u64; 2], |m, s| [m[0].max(s.max[0]), m[1].max(s.max[1])]);
        let p95 = if step_secs == 1 {
            [0, 1].map(|d| {
                let mut v: Vec<u64> = steps
                    .values()
                    .map(|s| s.max[d])
                    .filter(|&v| v > 0)
                    .collect();
                let zeros = total.saturating_sub(v.len() as u64);
                exact_quantile(&mut v, zeros, PERCENTILE) * 8
            })
        } else {
            [0, 1].map(|d| {
                let mut all = Sketch::new();
                steps.values().for_each(|s| all.merge(&s.sketch[d]));
                bps(all.quantile(PERCENTILE, total).min(max[d] as f64))
            })
        };
        range.peak_in_bps = Some(max[0] * 8);
        range.peak_out_bps = Some(max[1] * 8);
        range.p95_in_bps = Some(p95[0]);
        range.p95_out_bps = Some(p95[1]);
    }
    let sketches = steps
        .into_iter()
        .map(|(ts, s)| StepSketch {
            ts,
            sketch: s.sketch,
        })
        .collect();
    (range, sketches)
}

impl UsageSeries {
    /// Seconds of the series above `fraction` of the allocation in force
    /// ([download, upload] bps from each run's start, Unix seconds; runs in
    /// time order), per direction [in, out]. A step counts against the run
    /// in force at its start, or the first run when that began inside the
    /// step (a first policy saved mid-step); steps before any allocation,
    /// and steps stored before peaks were kept, count nothing. Exact for
    /// seconds more than 1 % away from the threshold (the sketch's accuracy).
    pub fn seconds_above(&self, runs: &[(u64, u64, u64)], fraction: f64) -> [u64; 2] {
        let mut out = [0u64; 2];
        for s in &self.sketches {
            let ts = u64::try_from(s.ts).unwrap_or(0);
            let at = runs.partition_point(|r| r.0 <= ts);
            let run = match at.checked_sub(1) {
                Some(i) => runs.get(i),
                None => runs
                    .first()
                    .filter(|r| r.0 < ts.saturating_add(self.step_secs)),
            };
            let Some(&(_, down, up)) = run else {
                continue;
            };
            for (d, alloc) in [down, up].into_iter().enumerate() {
                if alloc > 0 {
                    let threshold = alloc as f64 * fraction / 8.0;
                    out[d] += s.sketch[d].count_above(threshold);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use rusqlite::params;
    use simpul_core::sketch::RELATIVE_ACCURACY;
    use simpul_proto::wire::Batch;
    use simpul_proto::{CounterSample, TrafficScope};

    use super::super::schema::{MIGRATIONS, PEAKS_MIGRATION};
    use super::super::{Reader, Step, Store, StoreConfig, StoreError, Writer, DB_FILE};
    use super::*;

    /// 2025-11-27T09:00:00Z, an hour boundary.
    const T0: u64 = 1_764_234_000;

    fn counter(ts: u64, unit: &str, scope: TrafficScope, bytes_in: u64) -> CounterSample {
        CounterSample {
            ts,
            agency: "dinkes".into(),
            unit: unit.into(),
            scope,
            bytes_in,
            bytes_out: bytes_in / 10,
            packets_in: bytes_in / 1000 + 1,
            packets_out: bytes_in / 10_000 + 1,
        }
    }

    fn batch(seq: u64, counters: Vec<CounterSample>) -> Batch {
        Batch {
            boot_epoch: 1,
            seq,
            sealed_ms: 0,
            flows: Vec::new(),
            counters,
            blocked: Vec::new(),
            dropped_records: 0,
            dropped_batches: 0,
        }
    }

    fn open(dir: &std::path::Path) -> (Store, Writer, Reader) {
        let store = Store::open(dir, StoreConfig::default()).unwrap();
        let w = store.writer().unwrap();
        let r = store.reader().unwrap();
        (store, w, r)
    }

    /// Per-second [in, out] totals of dinkes from the per-second rows.
    fn seconds(r: &Reader, from: i64, to: i64) -> Vec<(i64, [u64; 2])> {
        let mut st = r
            .conn
            .prepare(
                "SELECT ts, total(bytes_in), total(bytes_out) FROM usage_1s
                 WHERE agency = 'dinkes' AND ts >= ?1 AND ts < ?2 GROUP BY ts",
            )
            .unwrap();
        let rows = st
            .query_map(params![from, to], |r| {
                let (i, o): (f64, f64) = (r.get(1)?, r.get(2)?);
                Ok((r.get(0)?, [i as u64, o as u64]))
            })
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_burst_shows_as_the_peak_while_the_average_stays_low() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, mut w, r) = open(dir.path());
        // A minute at 400 kbit/s with 4 seconds at 2.8 Mbit/s, from two
        // units whose seconds add up (the burst is 2.0 + 0.8 Mbit/s).
        let mut counters = Vec::new();
        for i in 0..60 {
            let ts = T0 + i;
            if (20..24).contains(&i) {
                counters.push(counter(ts, "a", TrafficScope::Internet, 250_000));
                counters.push(counter(ts, "b", TrafficScope::Intranet, 100_000));
            } else {
                counters.push(counter(ts, "a", TrafficScope::Internet, 50_000));
            }
        }
        w.ingest("n1", "dinkes", &[batch(1, counters)]).unwrap();
        for step in [Step::Second, Step::Minute, Step::Hour] {
            let u = r.usage("dinkes", T0, T0 + 60, step).unwrap();
            assert_eq!(u.peaks.peak_in_bps, Some(2_800_000), "{step:?}");
            assert_eq!(u.peaks.peak_out_bps, Some(280_000), "{step:?}");
            assert_eq!(u.peaks.steps_without_peaks, 0);
            // 4 of 60 seconds: the p95 (rank 57 of 60) is in the burst too;
            // over the hour's 3600 seconds (60 busy) it is 0.
            let want = if step == Step::Hour { 0.0 } else { 2_800_000.0 };
            let p95 = u.peaks.p95_in_bps.unwrap() as f64;
            assert!(
                (p95 - want).abs() <= want * RELATIVE_ACCURACY,
                "{step:?} {p95}"
            );
            if step != Step::Second {
                let p = &u.points[0];
                assert_eq!(p.peak_in_bps, Some(2_800_000));
                assert!(p.in_bps < 600_000.0, "{step:?}: average {}", p.in_bps);
            }
        }
        // Only the minute's seconds so far count: with step 1h the hour
        // is long over, so its p95 is over 3600 seconds, 60 of them busy.
        let h = r.usage("dinkes", T0, T0 + 3600, Step::Hour).unwrap();
        assert_eq!(h.points[0].p95_in_bps, Some(0));
        assert_eq!(h.points[0].peak_in_bps, Some(2_800_000));
        // Above 95 % of a 2 Mbit/s allocation: the 4 burst seconds, in both
        // resolutions; nothing before the allocation began.
        let m = r.usage("dinkes", T0, T0 + 60, Step::Minute).unwrap();
        assert_eq!(m.seconds_above(&[(T0, 2_000_000, 200_000)], 0.95), [4, 4]);
        assert_eq!(h.seconds_above(&[(T0, 2_000_000, 1_000_000)], 0.95), [4, 0]);
        assert_eq!(
            m.seconds_above(&[(T0 + 60, 2_000_000, 200_000)], 0.95),
            [0, 0]
        );
        // A first allocation saved inside the step counts for it.
        assert_eq!(
            m.seconds_above(&[(T0 + 30, 2_000_000, 200_000)], 0.95),
            [4, 4]
        );
        // Against the run in force at the step's start, not a later one.
        let runs = [
            (T0 - 60, 40_000_000, 200_000),
            (T0 + 30, 2_000_000, 200_000),
        ];
        assert_eq!(m.seconds_above(&runs, 0.95), [0, 4]);
    }

    #[test]
    fn sketches_hold_each_seconds_final_total_however_the_counters_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, mut w, r) = open(dir.path());
        // Three nodes, each second reported in pieces over many calls, out
        // of order, across a minute and an hour boundary.
        let base = T0 + 3600 - 120;
        let mut seq = [0u64; 3];
        let mut x = 0x5eedu64;
        for call in 0..120u64 {
            let node = (call % 3) as usize;
            seq[node] += 1;
            let counters = (0..5)
                .map(|k| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let ts = base + (x >> 33) % 180;
                    let unit = ["a", "b"][(k % 2) as usize];
                    counter(ts, unit, TrafficScope::Internet, (x >> 20) % 3_000_000)
                })
                .collect();
            let node_id = format!("n{node}");
            w.ingest(&node_id, "dinkes", &[batch(seq[node], counters)])
                .unwrap();
        }
        let (from, to) = (base as i64, base as i64 + 180);
        let truth = seconds(&r, from, to);
        assert!(truth.len() > 100);
        for step in [60, 3600] {
            let stored = read_steps(&r.conn, "dinkes", floor(from, step), to, step).unwrap();
            let expect = from_seconds(truth.iter().copied(), step);
            assert_eq!(stored, expect, "step {step}");
        }
        // And the API's range figures agree with the exact ones.
        let u = r.usage("dinkes", base, base + 180, Step::Second).unwrap();
        let mut exact: Vec<u64> = truth.iter().map(|t| t.1[0]).collect();
        let zeros = 180 - exact.len() as u64;
        let want = exact_quantile(&mut exact, zeros, 0.95) * 8;
        assert_eq!(u.peaks.p95_in_bps, Some(want));
        let m = r.usage("dinkes", base, base + 180, Step::Minute).unwrap();
        let got = m.peaks.p95_in_bps.unwrap() as f64;
        assert!((got - want as f64).abs() <= want as f64 * RELATIVE_ACCURACY + 8.0);
        assert_eq!(m.peaks.peak_in_bps, u.peaks.peak_in_bps);
    }

    #[test]
    fn a_database_of_the_previous_schema_keeps_its_history_and_gains_peaks() {
        let dir = tempfile::tempdir().unwrap();
        let now = super::super::codec::secs(SystemTime::now()) as i64;
        let hour = floor(now, 3600);
        let minute = floor(now, 60);
        let old = hour - 2 * 86_400;
        {
            // The previous release's database on a real file, with a day-old
            // hour and minute and the last seconds (per-second rows kept).
            let mut conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..PEAKS_MIGRATION - 1] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", PEAKS_MIGRATION as i64 - 1)
                .unwrap();
            for (table, ts, bytes) in [
                ("usage_1h", old, 3_600_000i64),
                ("usage_1m", old, 60_000),
                ("usage_1s", minute, 70_000),
                ("usage_1s", minute + 1, 10_000),
                ("usage_1m", minute, 80_000),
                ("usage_1h", hour, 80_000),
            ] {
                tx.execute(
                    &format!(
                        "INSERT INTO {table} (agency, ts, unit, scope, bytes_in, bytes_out,
                             packets_in, packets_out) VALUES ('dinkes', ?1, 'a', 0, ?2, 0, 1, 0)"
                    ),
                    params![ts, bytes],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let (_s, mut w, r) = open(dir.path());
        let v: i64 = r
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert!(v >= PEAKS_MIGRATION as i64);
        // Old steps read as before, their peaks unknown (not zero).
        for (step, secs) in [(Step::Minute, 60), (Step::Hour, 3600)] {
            let u = r
                .usage("dinkes", old as u64, (old + secs) as u64, step)
                .unwrap();
            assert_eq!(
                u.total_bytes_in,
                if secs == 60 { 60_000 } else { 3_600_000 }
            );
            assert_eq!(u.points[0].peak_in_bps, None);
            assert_eq!(u.points[0].p95_in_bps, None);
            assert_eq!(u.peaks.steps_without_peaks, 1);
            assert_eq!(u.peaks.peak_in_bps, None);
        }
        // The steps the per-second rows cover were filled at the migration.
        let u = r
            .usage("dinkes", minute as u64, minute as u64 + 60, Step::Minute)
            .unwrap();
        assert_eq!(u.points[0].peak_in_bps, Some(560_000));
        let h = r
            .usage("dinkes", hour as u64, hour as u64 + 3600, Step::Hour)
            .unwrap();
        assert_eq!(h.points[0].peak_in_bps, Some(560_000));
        // A range over both: the old hour is left out and said so.
        let both = r
            .usage("dinkes", old as u64, (hour + 3600) as u64, Step::Hour)
            .unwrap();
        assert_eq!(both.peaks.steps_without_peaks, 1);
        assert_eq!(both.peaks.peak_in_bps, Some(560_000));
        // Ingest goes on from the filled rows: the second grows in place.
        w.ingest(
            "n1",
            "dinkes",
            &[batch(
                1,
                vec![counter(
                    minute as u64 + 1,
                    "b",
                    TrafficScope::Internet,
                    300_000,
                )],
            )],
        )
        .unwrap();
        let stored = read_steps(&r.conn, "dinkes", minute, minute + 60, 60).unwrap();
        let truth = from_seconds(seconds(&r, minute, minute + 60), 60);
        assert_eq!(stored, truth);
        assert_eq!(stored[&minute].max[0], 310_000);
        assert_eq!(stored[&minute].sketch[0].count(), 2);
    }

    #[test]
    fn retention_takes_peaks_with_their_rollups_and_ranges_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, mut w, r) = open(dir.path());
        w.ingest(
            "n1",
            "dinkes",
            &[batch(
                1,
                vec![counter(T0, "a", TrafficScope::Internet, 1000)],
            )],
        )
        .unwrap();
        let count = |t: &str| -> i64 {
            r.conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((count("usage_peak_1m"), count("usage_peak_1h")), (1, 1));
        // 31 days on, the minute goes; the hour stays (two years).
        let st = w
            .apply_retention(UNIX_EPOCH + Duration::from_secs(T0 + 31 * 86_400))
            .unwrap();
        assert_eq!((st.usage_peak_1m, st.usage_peak_1h), (1, 0));
        assert_eq!((count("usage_peak_1m"), count("usage_peak_1h")), (0, 1));
        let st = w
            .apply_retention(UNIX_EPOCH + Duration::from_secs(T0 + 731 * 86_400))
            .unwrap();
        assert_eq!(st.usage_peak_1h, 1);
        // An answer of more steps with traffic than it may hold is refused,
        // saying so; the same range in larger steps is answered.
        let busy: Vec<CounterSample> = (0..MAX_USAGE_STEPS as u64 + 1)
            .map(|i| counter(T0 + i, "a", TrafficScope::Internet, 1000))
            .collect();
        w.ingest("n1", "dinkes", &[batch(2, busy)]).unwrap();
        let end = T0 + MAX_USAGE_STEPS as u64 + 1;
        let e = r.usage("dinkes", 0, end, Step::Second).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Invalid {
                    what: "usage range",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("more than 20000 steps"), "{e}");
        assert!(r.usage("dinkes", T0 + 1, end, Step::Second).is_ok());
        let m = r.usage("dinkes", 0, end, Step::Minute).unwrap();
        assert_eq!(m.points.len(), 334);
        assert_eq!(m.peaks.peak_in_bps, Some(8000));
    }

    #[test]
    fn a_damaged_sketch_is_a_typed_error_naming_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, mut w, r) = open(dir.path());
        w.ingest(
            "n1",
            "dinkes",
            &[batch(
                1,
                vec![counter(T0, "a", TrafficScope::Internet, 1000)],
            )],
        )
        .unwrap();
        w.conn
            .execute("UPDATE usage_peak_1m SET sketch_in = x'0907'", [])
            .unwrap();
        let e = r.usage("dinkes", T0, T0 + 60, Step::Minute).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Corrupt {
                    table: "usage_peak_1m",
                    ..
                }
            ),
            "{e}"
        );
        // Ingest into that minute fails the same way rather than guess.
        let e = w
            .ingest(
                "n1",
                "dinkes",
                &[batch(
                    2,
                    vec![counter(T0 + 1, "a", TrafficScope::Internet, 1000)],
                )],
            )
            .unwrap_err();
        assert!(e.to_string().contains("usage_peak_1m"), "{e}");
    }
}

//! The single writer: sequence checks against the marks it holds, the
//! growth each record credits (from a cache of flow states), inserts, then
//! marks. Why the order and the cache make batches count exactly once: see
//! `mod.rs`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use simpul_proto::{EndReason, FlowRecord, RecordKind};

use super::client::lit;
use super::peaks::{self, Minute};
use super::rollups;
use super::rows::{flow_out, latest_select, Credit, StateRow};
use super::schema::{self, Table};
use super::{ClickHouseFlowStore, WriterSlot};
use crate::store::codec::{block_method_code, scope_code, secs, MAX_COUNT};
use crate::store::traits::FlowWriter;
use crate::store::{sequence_check, BatchOutcome, NodeBatches, RetentionStats, StoreError};

/// Flows whose last record is this much older than the newest record seen
/// leave the cache. A record of a flow that is not cached and started
/// before that horizon is looked up in ClickHouse (long flows after a
/// restart); a later-starting one cannot have been stored before it.
const CACHE_WINDOW_NS: u64 = 3600 * 1_000_000_000;
/// Cached flows at most: past it the horizon moves up to the median last
/// record (more look-ups for long flows, bounded memory at any rate).
const MAX_CACHED: usize = 2_000_000;
/// Rows per insert at most (whole batches only): far below ClickHouse's
/// `max_insert_block_size` (1 048 576), so an insert is one block and a
/// batch is never split between two blocks of a view.
const MAX_INSERT_ROWS: usize = 200_000;
/// Under steady ingest (no idle second for `fold_aggregates`), the peaks
/// of the minutes touched are refolded this often.
const PEAK_FOLD_EVERY: Duration = Duration::from_secs(5);

type FlowKey = (Arc<str>, u64, u64);

/// What ingest needs of a stored flow.
#[derive(Debug, Clone)]
struct State {
    bytes_up: u64,
    bytes_down: u64,
    first_seen: u64,
    last_seen: u64,
    agency: Arc<str>,
    closed: bool,
    restart: bool,
}

impl State {
    fn of(r: &StateRow) -> State {
        State {
            bytes_up: r.x_bytes_up,
            bytes_down: r.x_bytes_down,
            first_seen: r.x_first_seen,
            last_seen: r.x_last_seen,
            agency: r.x_agency.as_str().into(),
            closed: r.x_is_final == 1,
            restart: r.x_restart == 1,
        }
    }
}

pub(super) struct ChWriter {
    s: ClickHouseFlowStore,
    streams: HashMap<(String, u64), StreamMark>,
    cache: HashMap<FlowKey, State>,
    nodes: HashSet<Arc<str>>,
    newest: u64,
    horizon: u64,
    calls: u64,
    /// Minutes whose peaks are to be refolded (`peaks.rs`).
    dirty: BTreeSet<Minute>,
    last_fold: Instant,
    fold_version: u64,
    /// Tests: fail every call after its data, before its marks (a crash
    /// between the insert and the acknowledgement).
    #[cfg(test)]
    pub(super) crash_before_marks: bool,
    _slot: WriterSlot,
}

/// A boot's high-water mark and what its agent said it dropped up to it.
#[derive(Debug, Clone, Copy, Default)]
struct StreamMark {
    seq: u64,
    /// The most batches.
    dropped: u64,
    /// The records, summed over the boot's stored batches (capped as the
    /// SQLite store caps them).
    dropped_records: u64,
}

#[derive(Deserialize)]
struct Mark {
    node: String,
    boot: u64,
    seq: u64,
    dropped: u64,
    dropped_records: u64,
}

#[derive(Serialize)]
struct MarkOut<'a> {
    node: &'a str,
    boot: u64,
    seq: u64,
    dropped: u64,
    dropped_records: u64,
}

#[derive(Serialize)]
struct CounterOut<'a> {
    agency: &'a str,
    ts: u64,
    unit: &'a str,
    scope: u8,
    node: &'a str,
    boot: u64,
    seq: u64,
    idx: u32,
    bytes_in: u64,
    bytes_out: u64,
    packets_in: u64,
    packets_out: u64,
}

#[derive(Serialize)]
struct BlockedOut<'a> {
    node: &'a str,
    boot: u64,
    seq: u64,
    idx: u32,
    first_seen: u64,
    last_seen: u64,
    client: String,
    agency: &'a str,
    unit: &'a str,
    method: u8,
    target: &'a str,
    server: Option<String>,
    port: Option<u16>,
    proto: &'a str,
    rule: &'a str,
    list: &'a str,
    attempts: u32,
}

#[derive(Deserialize)]
struct Max {
    v: u64,
}

/// Rows of one table for one call, cut into inserts at batch boundaries.
#[derive(Default)]
struct Rows {
    inserts: Vec<(Vec<u8>, usize)>,
}

impl Rows {
    fn begin_batch(&mut self) {
        if self
            .inserts
            .last()
            .is_none_or(|(_, n)| *n >= MAX_INSERT_ROWS)
        {
            self.inserts.push((Vec::new(), 0));
        }
    }

    fn push(&mut self, row: &impl Serialize) -> Result<(), StoreError> {
        let last = match self.inserts.last_mut() {
            Some(l) => l,
            None => {
                self.inserts.push((Vec::new(), 0));
                self.inserts.last_mut().ok_or(StoreError::WriterInUse)?
            }
        };
        serde_json::to_writer(&mut last.0, row)?;
        last.0.push(b'\n');
        last.1 += 1;
        Ok(())
    }
}

impl ChWriter {
    pub(super) fn open(s: ClickHouseFlowStore, slot: WriterSlot) -> Result<ChWriter, StoreError> {
        let db = s.db.clone();
        let marks: Vec<Mark> = s.client.rows(&format!(
            "SELECT node, boot, max(seq) AS seq, max(dropped) AS dropped, \
             max(dropped_records) AS dropped_records \
             FROM {db}.streams GROUP BY node, boot"
        ))?;
        let newest = s
            .client
            .rows::<Max>(&format!(
                "SELECT toUInt64(max(last_seen)) AS v FROM {db}.flow_records"
            ))?
            .first()
            .map_or(0, |m| m.v);
        {
            let mut p = rollups::lock(&s.pending);
            p.usage.extend(peaks::recent_minutes(&s.client, &db)?);
            p.add_hosts(rollups::recent_host_minutes(&s.client, &db)?);
        }
        let mut w = ChWriter {
            streams: marks
                .into_iter()
                .map(|m| {
                    let mark = StreamMark {
                        seq: m.seq,
                        dropped: m.dropped,
                        dropped_records: m.dropped_records,
                    };
                    ((m.node, m.boot), mark)
                })
                .collect(),
            cache: HashMap::new(),
            nodes: HashSet::new(),
            newest,
            horizon: newest.saturating_sub(CACHE_WINDOW_NS),
            calls: 0,
            dirty: peaks::recent_minutes(&s.client, &db)?,
            last_fold: Instant::now(),
            fold_version: 0,
            #[cfg(test)]
            crash_before_marks: false,
            s,
            _slot: slot,
        };
        // Readers list the minutes not folded yet: fold the opening's many
        // now (a failure is retried with the next call).
        if let Err(e) = w.fold_peaks() {
            tracing::warn!(error = %e, "cannot fold usage rollups");
        }
        let h = w.horizon;
        for r in w.states_as_of_marks(&format!(
            "(node, boot, flow_id) IN (SELECT node, boot, flow_id FROM {db}.flow_records \
             WHERE last_seen >= {h})"
        ))? {
            let key = (w.node(&r.node), r.boot, r.flow_id);
            w.cache.insert(key, State::of(&r));
        }
        Ok(w)
    }

    fn node(&mut self, n: &str) -> Arc<str> {
        if let Some(a) = self.nodes.get(n) {
            return a.clone();
        }
        let a: Arc<str> = n.into();
        self.nodes.insert(a.clone());
        a
    }

    /// The latest state of the flows `cond` selects, from rows at or below
    /// their stream's mark only: rows of a batch whose marks a crash kept
    /// from being written do not count until the batch comes again.
    fn states_as_of_marks(&self, cond: &str) -> Result<Vec<StateRow>, StoreError> {
        let db = &self.s.db;
        self.s.client.rows(&format!(
            "SELECT {} FROM {db}.flow_records ANY INNER JOIN \
             (SELECT node, boot, max(seq) AS mark FROM {db}.streams GROUP BY node, boot) \
             USING (node, boot) WHERE seq <= mark AND {cond} GROUP BY node, boot, flow_id",
            latest_select()
        ))
    }

    /// Put the stored state of flows that may predate the cache into it.
    fn look_up(&mut self, keys: &HashSet<(&str, u64, u64)>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = keys
            .iter()
            .map(|(n, b, f)| format!("({}, {b}, {f})", lit(n)))
            .collect();
        for chunk in list.chunks(5000) {
            let rows = self
                .states_as_of_marks(&format!("(node, boot, flow_id) IN ({})", chunk.join(", ")))?;
            for r in rows {
                let key = (self.node(&r.node), r.boot, r.flow_id);
                self.cache.insert(key, State::of(&r));
            }
        }
        Ok(())
    }

    fn insert(&self, t: &str, rows: Rows) -> Result<(), StoreError> {
        for (body, _) in rows.inserts {
            self.s.client.insert(&format!("{}.{t}", self.s.db), &body)?;
        }
        Ok(())
    }

    /// Raise the horizon (never lower it: every flow whose last record is
    /// at or after it must stay cached) and drop what falls below.
    fn evict(&mut self) {
        let mut h = self.newest.saturating_sub(CACHE_WINDOW_NS);
        if self.cache.len() > MAX_CACHED {
            let mut seen: Vec<u64> = self.cache.values().map(|s| s.last_seen).collect();
            let mid = seen.len() / 2;
            h = h.max(*seen.select_nth_unstable(mid).1);
        }
        if h > self.horizon {
            self.horizon = h;
            self.cache.retain(|_, st| st.last_seen >= h);
        }
    }
}

impl FlowWriter for ChWriter {
    fn ingest_many(
        &mut self,
        groups: &[NodeBatches<'_>],
    ) -> Result<Vec<Vec<BatchOutcome>>, StoreError> {
        // 1. Outcomes against the marks (and the call's earlier batches).
        let mut staged: HashMap<(String, u64), StreamMark> = HashMap::new();
        let mut out = Vec::with_capacity(groups.len());
        let mut lookups: HashSet<(&str, u64, u64)> = HashSet::new();
        for g in groups {
            let mut outcomes = Vec::with_capacity(g.batches.len());
            for b in g.batches {
                let key = (g.node_id.to_string(), b.boot_epoch);
                let known = staged.get(&key).or_else(|| self.streams.get(&key)).copied();
                if let Some(k) = known {
                    if let Some(o) =
                        sequence_check(k.seq, k.dropped, b.seq, b.dropped_batches, g.strict_seq)
                    {
                        outcomes.push(o);
                        continue;
                    }
                }
                let k = known.unwrap_or_default();
                let records = k.dropped_records.saturating_add(b.dropped_records);
                staged.insert(
                    key,
                    StreamMark {
                        seq: b.seq,
                        dropped: k.dropped.max(b.dropped_batches),
                        dropped_records: records.min(MAX_COUNT as u64),
                    },
                );
                for f in &b.flows {
                    if f.first_seen < self.horizon {
                        lookups.insert((g.node_id, b.boot_epoch, f.flow_id));
                    }
                }
                outcomes.push(BatchOutcome::Stored);
            }
            out.push(outcomes);
        }
        lookups.retain(|(n, b, f)| {
            !self
                .nodes
                .get(*n)
                .is_some_and(|n| self.cache.contains_key(&(n.clone(), *b, *f)))
        });
        self.look_up(&lookups)?;

        // 2. Rows, from the cached states and the call's own changes.
        let mut changed: HashMap<FlowKey, State> = HashMap::new();
        let (mut flows, mut counters, mut blocked) =
            (Rows::default(), Rows::default(), Rows::default());
        let mut newest = self.newest;
        let (mut usage_minutes, mut host_minutes) = (BTreeSet::new(), BTreeSet::new());
        for (g, outcomes) in groups.iter().zip(&out) {
            let node = self.node(g.node_id);
            for (b, o) in g.batches.iter().zip(outcomes) {
                if *o != BatchOutcome::Stored {
                    continue;
                }
                flows.begin_batch();
                counters.begin_batch();
                blocked.begin_batch();
                for (i, f) in b.flows.iter().enumerate() {
                    let key = (node.clone(), b.boot_epoch, f.flow_id);
                    let old = changed.get(&key).or_else(|| self.cache.get(&key));
                    let Some((rec, state, restart, credit)) = apply(old, f, g.agency) else {
                        continue;
                    };
                    newest = newest.max(rec.last_seen);
                    host_minutes.insert((
                        credit.agency.to_string(),
                        rec.last_seen / 1_000_000_000 / 60 * 60,
                    ));
                    flows.push(&flow_out(
                        g.node_id,
                        b.boot_epoch,
                        b.seq,
                        i as u32,
                        &rec,
                        restart,
                        Some(credit),
                    ))?;
                    changed.insert(key, state);
                }
                for (i, c) in b.counters.iter().enumerate() {
                    usage_minutes.insert((g.agency.to_string(), c.ts / 60 * 60));
                    counters.push(&CounterOut {
                        agency: g.agency,
                        ts: c.ts,
                        unit: &c.unit,
                        scope: scope_code(c.scope),
                        node: g.node_id,
                        boot: b.boot_epoch,
                        seq: b.seq,
                        idx: i as u32,
                        bytes_in: c.bytes_in,
                        bytes_out: c.bytes_out,
                        packets_in: c.packets_in,
                        packets_out: c.packets_out,
                    })?;
                }
                for (i, a) in b.blocked.iter().enumerate() {
                    blocked.push(&BlockedOut {
                        node: g.node_id,
                        boot: b.boot_epoch,
                        seq: b.seq,
                        idx: i as u32,
                        first_seen: a.first_seen,
                        last_seen: a.last_seen,
                        client: super::ip_key(a.client),
                        agency: g.agency,
                        unit: &a.unit,
                        method: block_method_code(a.method),
                        target: &a.target,
                        server: a.server.map(super::ip_key),
                        port: a.port,
                        proto: &a.proto,
                        rule: &a.rule,
                        list: &a.list,
                        attempts: a.attempts,
                    })?;
                }
            }
        }

        // 3. Data, then marks; the caches take the call only once both are in.
        // Readers take the call's minutes from the views' tables until they
        // are folded, from before its rows can be seen.
        {
            let mut p = rollups::lock(&self.s.pending);
            p.usage.extend(usage_minutes);
            p.add_hosts(host_minutes);
        }
        self.insert("flow_records", flows)?;
        self.insert("usage_1s", counters)?;
        self.insert("blocked", blocked)?;
        #[cfg(test)]
        if self.crash_before_marks {
            return Err(StoreError::ClickHouse {
                url: self.s.client.url().to_string(),
                detail: "simulated crash before the marks".into(),
            });
        }
        let mut marks = Rows::default();
        for ((node, boot), m) in &staged {
            marks.push(&MarkOut {
                node,
                boot: *boot,
                seq: m.seq,
                dropped: m.dropped,
                dropped_records: m.dropped_records,
            })?;
        }
        self.insert("streams", marks)?;
        for (g, outcomes) in groups.iter().zip(&out) {
            for (b, o) in g.batches.iter().zip(outcomes) {
                if *o == BatchOutcome::Stored {
                    for c in &b.counters {
                        self.dirty.insert((g.agency.to_string(), c.ts / 60 * 60));
                    }
                }
            }
        }
        if self.last_fold.elapsed() >= PEAK_FOLD_EVERY {
            // The call is stored; a failed fold is retried with the next.
            if let Err(e) = self.fold_peaks() {
                tracing::warn!(error = %e, "cannot fold usage peaks");
            }
        }
        self.streams.extend(staged);
        self.cache.extend(changed);
        self.newest = newest;
        self.calls += 1;
        if self.calls.is_multiple_of(64) || self.cache.len() > MAX_CACHED {
            self.evict();
        }
        Ok(out)
    }

    fn close_interim(&mut self, node_id: &str, boot_epoch: u64) -> Result<u64, StoreError> {
        let rows =
            self.states_as_of_marks(&format!("node = {} AND boot < {boot_epoch}", lit(node_id)))?;
        let mut recs = Vec::new();
        for r in rows {
            if r.x_is_final == 1 {
                continue;
            }
            let boot = r.boot;
            let (_, _, mut rec) = r.record()?;
            rec.kind = RecordKind::Final;
            rec.end_reason = EndReason::AgentRestart;
            recs.push((boot, rec));
        }
        // The close sorts after every row of the boot written so far (at
        // its mark) and before anything its spool still delivers; written
        // twice, it is the same row.
        let mut body = Rows::default();
        for (boot, rec) in &recs {
            let mark = self
                .streams
                .get(&(node_id.to_string(), *boot))
                .map_or(0, |m| m.seq);
            body.push(&flow_out(node_id, *boot, mark, u32::MAX, rec, true, None))?;
        }
        self.insert("flow_records", body)?;
        let node = self.node(node_id);
        for (boot, rec) in &recs {
            self.cache.insert(
                (node.clone(), *boot, rec.flow_id),
                State {
                    bytes_up: rec.bytes_up,
                    bytes_down: rec.bytes_down,
                    first_seen: rec.first_seen,
                    last_seen: rec.last_seen,
                    agency: rec.agency.as_str().into(),
                    closed: true,
                    restart: true,
                },
            );
        }
        Ok(recs.len() as u64)
    }

    fn fold_aggregates(&mut self) -> Result<u64, StoreError> {
        // The views fold the rest as rows arrive.
        self.fold_peaks()
    }

    fn apply_retention(&mut self, now: SystemTime) -> Result<RetentionStats, StoreError> {
        // Minutes about to lose their seconds get their peaks first.
        self.fold_peaks()?;
        let now_s = secs(now);
        let mut st = RetentionStats::default();
        for (t, days) in schema::RETAINED.iter().zip(self.s.retention) {
            let cut = now_s.saturating_sub(u64::from(days) * 86_400);
            let dropped = self.drop_before(*t, cut)?;
            match t.name {
                "flow_records" => st.flows = dropped,
                "blocked" => st.blocked_attempts = dropped,
                "usage_1s" => st.usage_1s = dropped,
                "usage_1m" => st.usage_1m = dropped,
                "usage_1h" => st.usage_1h = dropped,
                "top_hosts_1m" => st.top_hosts_1m = dropped,
                "usage_peak_1m" => st.usage_peak_1m = dropped,
                "usage_peak_1h" => st.usage_peak_1h = dropped,
                // The flows' time index: counted with the flows.
                "flow_index" => {}
                _ => st.top_sites_1m = dropped,
            }
        }
        // The folds keep their views' tables' retention (counted there).
        for (t, of) in schema::FOLDED {
            let Some(i) = schema::RETAINED.iter().position(|r| r.name == of.name) else {
                continue;
            };
            let cut = now_s.saturating_sub(u64::from(self.s.retention[i]) * 86_400);
            self.drop_before(t, cut)?;
        }
        Ok(st)
    }
}

#[derive(Deserialize)]
struct Part {
    partition: String,
    rows: u64,
}

impl ChWriter {
    /// Refold the peaks of the minutes touched since the last fold: the
    /// number of minutes.
    fn fold_peaks(&mut self) -> Result<u64, StoreError> {
        self.last_fold = Instant::now();
        if self.dirty.is_empty() && {
            let p = rollups::lock(&self.s.pending);
            p.usage.is_empty() && p.hosts.is_empty() && p.coarse.iter().all(|c| c.is_empty())
        } {
            return Ok(0);
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // Later folds replace earlier ones, also across writers.
        self.fold_version = now.max(self.fold_version + 1);
        peaks::fold(&self.s.client, &self.s.db, &self.dirty, self.fold_version)?;
        let n = self.dirty.len() as u64;
        self.dirty.clear();
        // The writer alone adds minutes, and not while it folds.
        let (usage, hosts, coarse) = {
            let p = rollups::lock(&self.s.pending);
            (p.usage.clone(), p.hosts.clone(), p.coarse.clone())
        };
        rollups::fold(
            &self.s.client,
            &self.s.db,
            &usage,
            &hosts,
            self.fold_version,
        )?;
        // After the minutes: an hour is folded from them, a day from its hours.
        let folded = rollups::fold_coarse(
            &self.s.client,
            &self.s.db,
            &coarse,
            now / 1_000_000_000,
            self.fold_version,
        )?;
        let mut p = rollups::lock(&self.s.pending);
        p.usage.retain(|m| !usage.contains(m));
        p.hosts.retain(|m| !hosts.contains(m));
        for (set, done) in p.coarse.iter_mut().zip(&folded) {
            set.retain(|m| !done.contains(m));
        }
        Ok(n)
    }

    /// Drop the partitions of `t` that end at or before `cut` (seconds),
    /// on every shard.
    fn drop_before(&self, t: Table, cut: u64) -> Result<u64, StoreError> {
        let mut dropped = 0;
        for (c, db) in self.s.part_homes() {
            dropped += drop_before_on(c, db, t, cut)?;
        }
        Ok(dropped)
    }
}

fn drop_before_on(c: &super::Client, db: &str, t: Table, cut: u64) -> Result<u64, StoreError> {
    {
        let parts: Vec<Part> = c.rows(&format!(
            "SELECT partition, toUInt64(sum(rows)) AS rows FROM system.parts \
             WHERE database = {} AND table = {} AND active GROUP BY partition",
            lit(db),
            lit(t.name)
        ))?;
        let mut dropped = 0;
        for p in parts {
            let n: u64 = p.partition.parse().map_err(|_| StoreError::Corrupt {
                table: t.name,
                detail: format!("partition {:?} is not a period number", p.partition),
            })?;
            if (n + 1) * t.part_secs <= cut {
                c.exec(&format!("ALTER TABLE {db}.{} DROP PARTITION {n}", t.name))?;
                dropped += p.rows;
            }
        }
        Ok(dropped)
    }
}

/// A record against the flow's stored state, as the other stores do it:
/// None when it changes nothing (the flow ended, or an interim record older
/// than the state); else the new state as stored, as cached, whether it is
/// a restart close still, and what it credits.
fn apply<'a>(
    old: Option<&State>,
    f: &FlowRecord,
    agency: &'a str,
) -> Option<(FlowRecord, State, bool, Credit<'a>)> {
    let is_final = f.kind == RecordKind::Final;
    let mut rec = f.clone();
    match old {
        None => {
            rec.agency = agency.to_string();
            let st = State {
                bytes_up: rec.bytes_up,
                bytes_down: rec.bytes_down,
                first_seen: rec.first_seen,
                last_seen: rec.last_seen,
                agency: agency.into(),
                closed: is_final,
                restart: false,
            };
            let c = Credit {
                agency,
                up: rec.bytes_up,
                down: rec.bytes_down,
                new_flow: true,
            };
            Some((rec, st, false, c))
        }
        Some(old) => {
            if (old.closed && !old.restart) || (!is_final && rec.last_seen < old.last_seen) {
                return None;
            }
            let c = Credit {
                agency,
                up: rec.bytes_up.saturating_sub(old.bytes_up),
                down: rec.bytes_down.saturating_sub(old.bytes_down),
                new_flow: false,
            };
            let still = old.restart && !is_final;
            rec.first_seen = rec.first_seen.min(old.first_seen);
            // A flow stays with the agency it started under.
            rec.agency = old.agency.to_string();
            if still {
                rec.kind = RecordKind::Final;
                rec.end_reason = EndReason::AgentRestart;
            }
            let st = State {
                bytes_up: rec.bytes_up,
                bytes_down: rec.bytes_down,
                first_seen: rec.first_seen,
                last_seen: rec.last_seen,
                agency: old.agency.clone(),
                closed: is_final || still,
                restart: still,
            };
            Some((rec, st, still, c))
        }
    }
}

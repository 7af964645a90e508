//! A flow store in memory: the same contract as the SQLite store (exactly
//! once per (node, boot, seq), interim records updating their flow, top
//! lists crediting only growth, retention), kept in maps. For tests of
//! everything above the store, and as the reference the conformance test
//! holds the SQLite store to. Nothing survives the process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use simpul_proto::{BlockedAttempt, EndReason, FlowRecord, RecordKind, SiteSource};

use super::codec::{scope_code, secs};
use super::search::{row_matches, Tally, TopRows, MAX_INVESTIGATE_SCAN};
use super::traits::{FlowReader, FlowStore, FlowWriter, Traffic};
use super::{
    BatchOutcome, BlockedAgency, BlockedClient, BlockedFilter, BlockedMatch, BlockedRow,
    BlockedSummary, BlockedTarget, FlowFilter, FlowPage, FlowRow, Investigation, NodeBatches,
    OverviewSite, RetentionStats, SeriesPoint, Step, StoreConfig, StoreError, TopAgency, TopHost,
    TopSite, UnitUsage, UsagePoint, UsageSeries, TOP_1M_RETENTION_SECS, USAGE_1H_RETENTION_SECS,
};

const NS: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
struct Flow {
    /// With `node` and the record's flow id, the flow's identity: pages
    /// order ties by it.
    boot: u64,
    node: String,
    record: FlowRecord,
    closed: bool,
    restart_closed: bool,
}

/// (minute, agency, unit, host) → [bytes up, bytes down, flows]
type HostKey = (u64, String, String, IpAddr);
/// (minute, agency, site) → (bytes, flows, best source)
type SiteKey = (u64, String, String);

#[derive(Debug, Default)]
struct Data {
    /// (node, boot) → (highest seq, most batches the agent said it dropped)
    streams: HashMap<(String, u64), (u64, u64)>,
    /// (node, boot, flow id) → the flow.
    flows: HashMap<(String, u64, u64), Flow>,
    /// (agency, second, unit, scope: 0 internet, 1 intranet) →
    /// [bytes in, bytes out, packets in, packets out]
    usage: BTreeMap<(String, u64, String, u8), [u64; 4]>,
    hosts: HashMap<HostKey, [u64; 3]>,
    sites: HashMap<SiteKey, (u64, u64, Option<SiteSource>)>,
    blocked: Vec<(String, BlockedAttempt)>,
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct MemoryFlowStore {
    data: Arc<Mutex<Data>>,
    cfg: StoreConfig,
    writer_open: Arc<AtomicBool>,
}

impl MemoryFlowStore {
    pub fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct MemWriter {
    store: MemoryFlowStore,
}

impl Drop for MemWriter {
    fn drop(&mut self) {
        self.store.writer_open.store(false, Ordering::Release);
    }
}

impl FlowStore for MemoryFlowStore {
    fn writer(&self) -> Result<Box<dyn FlowWriter>, StoreError> {
        if self.writer_open.swap(true, Ordering::AcqRel) {
            return Err(StoreError::WriterInUse);
        }
        Ok(Box::new(MemWriter {
            store: self.clone(),
        }))
    }

    fn reader(&self) -> Result<Box<dyn FlowReader>, StoreError> {
        Ok(Box::new(self.clone()))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

fn minute_of(ns: u64) -> u64 {
    ns / NS / 60 * 60
}

/// The agency-side host of a flow: the initiator unless only the responder
/// is private (as `codec::local_is_src`).
fn local_is_src(r: &FlowRecord) -> bool {
    super::codec::local_is_src(r.src_ip, r.dst_ip)
}

fn credit(d: &mut Data, agency: &str, r: &FlowRecord, up: u64, down: u64, flows: u64) {
    let minute = minute_of(r.last_seen);
    let (host, sent, received) = if local_is_src(r) {
        (r.src_ip, up, down)
    } else {
        (r.dst_ip, down, up)
    };
    let h = d
        .hosts
        .entry((minute, agency.to_string(), r.unit.clone(), host))
        .or_default();
    h[0] += sent;
    h[1] += received;
    h[2] += flows;
    if let Some(site) = &r.site {
        let s = d
            .sites
            .entry((minute, agency.to_string(), site.clone()))
            .or_insert((0, 0, None));
        s.0 += up + down;
        s.1 += flows;
        let rank = |x: Option<SiteSource>| x.map(super::codec::site_source_code);
        if s.2.is_none() || rank(r.site_source) < rank(s.2) && r.site_source.is_some() {
            s.2 = r.site_source;
        }
    }
}

impl FlowWriter for MemWriter {
    fn ingest_many(
        &mut self,
        groups: &[NodeBatches<'_>],
    ) -> Result<Vec<Vec<BatchOutcome>>, StoreError> {
        let mut d = self.store.lock();
        let mut out = Vec::new();
        for g in groups {
            let mut outcomes = Vec::new();
            for b in g.batches {
                let key = (g.node_id.to_string(), b.boot_epoch);
                if let Some(&(max, dropped)) = d.streams.get(&key) {
                    if let Some(o) = crate::store::sequence_check(
                        max,
                        dropped,
                        b.seq,
                        b.dropped_batches,
                        g.strict_seq,
                    ) {
                        outcomes.push(o);
                        continue;
                    }
                }
                let dropped = d.streams.get(&key).map_or(0, |s| s.1);
                d.streams
                    .insert(key, (b.seq, dropped.max(b.dropped_batches)));
                for f in &b.flows {
                    ingest_flow(&mut d, g.node_id, g.agency, b.boot_epoch, f);
                }
                for c in &b.counters {
                    let u = d
                        .usage
                        .entry((
                            g.agency.to_string(),
                            c.ts,
                            c.unit.clone(),
                            scope_code(c.scope),
                        ))
                        .or_default();
                    u[0] += c.bytes_in;
                    u[1] += c.bytes_out;
                    u[2] += c.packets_in;
                    u[3] += c.packets_out;
                }
                for a in &b.blocked {
                    let mut a = a.clone();
                    a.agency = g.agency.to_string();
                    d.blocked.push((g.node_id.to_string(), a));
                }
                outcomes.push(BatchOutcome::Stored);
            }
            out.push(outcomes);
        }
        Ok(out)
    }

    fn close_interim(&mut self, node_id: &str, boot_epoch: u64) -> Result<u64, StoreError> {
        let mut d = self.store.lock();
        let mut n = 0;
        for ((node, boot, _), f) in d.flows.iter_mut() {
            if node == node_id && *boot < boot_epoch && !f.closed {
                f.closed = true;
                f.restart_closed = true;
                f.record.kind = RecordKind::Final;
                f.record.end_reason = EndReason::AgentRestart;
                n += 1;
            }
        }
        Ok(n)
    }

    fn fold_aggregates(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn apply_retention(&mut self, now: SystemTime) -> Result<RetentionStats, StoreError> {
        let cfg = &self.store.cfg;
        let now_s = secs(now);
        let flow_cut = now_s.saturating_sub(u64::from(cfg.flow_retention_days) * 86_400) * NS;
        let blocked_cut = now_s.saturating_sub(u64::from(cfg.blocked_retention_days) * 86_400) * NS;
        let usage_cut = now_s.saturating_sub(USAGE_1H_RETENTION_SECS);
        let top_cut = now_s.saturating_sub(TOP_1M_RETENTION_SECS);
        let mut d = self.store.lock();
        let mut st = RetentionStats::default();
        let before = d.flows.len();
        d.flows.retain(|_, f| f.record.last_seen >= flow_cut);
        st.flows = (before - d.flows.len()) as u64;
        let before = d.blocked.len();
        d.blocked.retain(|(_, a)| a.last_seen >= blocked_cut);
        st.blocked_attempts = (before - d.blocked.len()) as u64;
        let before = d.usage.len();
        d.usage.retain(|k, _| k.1 >= usage_cut);
        st.usage_1s = (before - d.usage.len()) as u64;
        let before = d.hosts.len();
        d.hosts.retain(|k, _| k.0 >= top_cut);
        st.top_hosts_1m = (before - d.hosts.len()) as u64;
        let before = d.sites.len();
        d.sites.retain(|k, _| k.0 >= top_cut);
        st.top_sites_1m = (before - d.sites.len()) as u64;
        Ok(st)
    }
}

fn ingest_flow(d: &mut Data, node: &str, agency: &str, boot: u64, rec: &FlowRecord) {
    let key = (node.to_string(), boot, rec.flow_id);
    let is_final = rec.kind == RecordKind::Final;
    let mut rec = rec.clone();
    rec.agency = agency.to_string();
    match d.flows.get(&key).cloned() {
        None => {
            credit(d, agency, &rec, rec.bytes_up, rec.bytes_down, 1);
            d.flows.insert(
                key,
                Flow {
                    boot,
                    node: node.to_string(),
                    closed: is_final,
                    restart_closed: false,
                    record: rec,
                },
            );
        }
        Some(old) => {
            if (old.closed && !old.restart_closed)
                || (!is_final && rec.last_seen < old.record.last_seen)
            {
                return;
            }
            let up = rec.bytes_up.saturating_sub(old.record.bytes_up);
            let down = rec.bytes_down.saturating_sub(old.record.bytes_down);
            credit(d, agency, &rec, up, down, 0);
            let still = old.restart_closed && !is_final;
            rec.first_seen = rec.first_seen.min(old.record.first_seen);
            // A flow stays with the agency it started under (its node may
            // have moved since); its growth is credited where it happens.
            rec.agency = old.record.agency.clone();
            if still {
                rec.kind = RecordKind::Final;
                rec.end_reason = EndReason::AgentRestart;
            }
            d.flows.insert(
                key,
                Flow {
                    boot,
                    node: node.to_string(),
                    closed: is_final || still,
                    restart_closed: still,
                    record: rec,
                },
            );
        }
    }
}

/// The flows of the filter's range and agency that pass its row conditions.
fn flows_in<'a>(d: &'a Data, f: &'a FlowFilter) -> impl Iterator<Item = &'a Flow> + 'a {
    let (from, to) = (f.from * NS, f.to * NS);
    d.flows.values().filter(move |x| {
        let r = &x.record;
        r.last_seen >= from
            && r.last_seen < to
            && f.agency.as_ref().is_none_or(|a| *a == r.agency)
            && row_matches(f, r)
    })
}

fn blocked_in<'a>(
    d: &'a Data,
    f: &'a BlockedFilter,
) -> impl Iterator<Item = &'a (String, BlockedAttempt)> + 'a {
    let (from, to) = (f.from * NS, f.to * NS);
    d.blocked.iter().filter(move |(node, a)| {
        a.last_seen >= from
            && a.last_seen < to
            && f.agency.as_ref().is_none_or(|x| *x == a.agency)
            && f.node.as_ref().is_none_or(|x| x == node)
            && f.method.is_none_or(|m| m == a.method)
    })
}

fn limit_or(n: usize, default: usize) -> usize {
    if n == 0 {
        default
    } else {
        n.min(super::MAX_BLOCKED)
    }
}

impl FlowReader for MemoryFlowStore {
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn traffic(&self, now: SystemTime, window_secs: u32) -> Result<Traffic, StoreError> {
        let d = self.lock();
        let end = secs(now);
        let start = end.saturating_sub(u64::from(window_secs.max(1)));
        let mut t = Traffic::default();
        for ((agency, ts, _, scope), v) in &d.usage {
            if *ts >= start && *ts < end {
                let a = t.agencies.entry(agency.clone()).or_default();
                let at = if *scope == 0 { 0 } else { 2 };
                a[at] += v[0];
                a[at + 1] += v[1];
            }
        }
        let first_minute = end / 60 * 60 - 14 * 60;
        let mut sites: HashMap<&str, (u64, u64)> = HashMap::new();
        for ((minute, _, site), (bytes, flows, _)) in &d.sites {
            if *minute >= first_minute && *minute <= end {
                let s = sites.entry(site.as_str()).or_default();
                s.0 += bytes;
                s.1 += flows;
            }
        }
        let mut top: Vec<OverviewSite> = sites
            .into_iter()
            .map(|(site, (bytes, flows))| OverviewSite {
                site: site.to_string(),
                bytes,
                flows,
            })
            .collect();
        top.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.site.cmp(&b.site)));
        top.truncate(10);
        t.top_sites = top;
        let mut per_agency: HashMap<&str, u64> = HashMap::new();
        for ((agency, ts, _, _), v) in &d.usage {
            if *ts >= first_minute && *ts < end / 60 * 60 + 60 {
                *per_agency.entry(agency.as_str()).or_default() += v[0] + v[1];
            }
        }
        let mut agencies: Vec<TopAgency> = per_agency
            .into_iter()
            .map(|(code, bytes)| TopAgency {
                code: code.to_string(),
                bytes,
            })
            .collect();
        agencies.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.code.cmp(&b.code)));
        t.top_agencies = agencies;
        Ok(t)
    }

    fn usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<UsageSeries, StoreError> {
        let d = self.lock();
        let s = step.secs();
        let from = from / s * s;
        let to = to.saturating_add(s - 1) / s * s;
        let to = to.max(from);
        let (fs, ts_, ss) = (super::codec::time(from), super::codec::time(to), s as i64);
        let mut buckets: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
        // Every second is kept here: the peaks come from them directly.
        let mut seconds: BTreeMap<i64, [u64; 2]> = BTreeMap::new();
        for ((a, ts, _, scope), v) in d
            .usage
            .range((agency.to_string(), from, String::new(), 0)..)
        {
            if a != agency || *ts >= to {
                break;
            }
            let b = buckets.entry(ts / s * s).or_default();
            b[0] += v[0];
            b[1] += v[1];
            if *scope == 0 {
                b[2] += v[0];
                b[3] += v[1];
            }
            let sec = seconds.entry(*ts as i64).or_default();
            sec[0] += v[0];
            sec[1] += v[1];
        }
        let (mut tin, mut tout) = (0, 0);
        let (points, point_ts): (Vec<UsagePoint>, Vec<i64>) = buckets
            .into_iter()
            .filter(|(_, b)| b[0] + b[1] > 0)
            .map(|(ts, b)| {
                tin += b[0];
                tout += b[1];
                let p = UsagePoint {
                    ts: super::codec::rfc_s(ts as i64),
                    bytes_in: b[0],
                    bytes_out: b[1],
                    in_bps: b[0] as f64 * 8.0 / s as f64,
                    out_bps: b[1] as f64 * 8.0 / s as f64,
                    internet_bytes_in: b[2],
                    internet_bytes_out: b[3],
                    peak_in_bps: None,
                    peak_out_bps: None,
                    p95_in_bps: None,
                    p95_out_bps: None,
                };
                (p, ts as i64)
            })
            .unzip();
        super::peaks::check_points(points.len())?;
        let mut points = points;
        let steps = super::peaks::from_seconds(seconds, ss);
        let now = secs(SystemTime::now()) as i64 + 1;
        let (peaks, sketches) =
            super::peaks::apply(&mut points, &point_ts, steps, (fs, ts_, ss), now);
        Ok(UsageSeries {
            agency: agency.to_string(),
            step_secs: s,
            from: super::codec::rfc_s(from as i64),
            to: super::codec::rfc_s(to as i64),
            points,
            total_bytes_in: tin,
            total_bytes_out: tout,
            peaks,
            sketches,
        })
    }

    fn usage_series_since(
        &self,
        since_sec: u64,
    ) -> Result<HashMap<String, Vec<SeriesPoint>>, StoreError> {
        let d = self.lock();
        let mut per: BTreeMap<(&str, u64), (u64, u64)> = BTreeMap::new();
        for ((agency, ts, _, _), v) in &d.usage {
            if *ts >= since_sec {
                let p = per.entry((agency.as_str(), *ts)).or_default();
                p.0 += v[0];
                p.1 += v[1];
            }
        }
        let mut out: HashMap<String, Vec<SeriesPoint>> = HashMap::new();
        for ((agency, ts), (i, o)) in per {
            out.entry(agency.to_string())
                .or_default()
                .push(SeriesPoint {
                    ts: super::codec::rfc_s(ts as i64),
                    in_bps: i * 8,
                    out_bps: o * 8,
                });
        }
        Ok(out)
    }

    fn top_hosts(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        let d = self.lock();
        let from = from / 60 * 60;
        let mut sums: HashMap<(&str, &str, IpAddr), [u64; 3]> = HashMap::new();
        for ((minute, a, unit, host), v) in &d.hosts {
            if *minute >= from && *minute < to && agency.is_none_or(|x| x == a) {
                let s = sums.entry((a.as_str(), unit.as_str(), *host)).or_default();
                s[0] += v[0];
                s[1] += v[1];
                s[2] += v[2];
            }
        }
        // Ties in bytes go by address, as the stored BLOBs sort.
        let mut rows: Vec<_> = sums.into_iter().collect();
        rows.sort_by(|(ka, a), (kb, b)| (b[0] + b[1]).cmp(&(a[0] + a[1])).then(ka.2.cmp(&kb.2)));
        rows.truncate(limit.min(1000));
        Ok(rows
            .into_iter()
            .map(|((a, unit, host), v)| TopHost {
                host: host.to_string(),
                agency: a.to_string(),
                unit: unit.to_string(),
                bytes_up: v[0],
                bytes_down: v[1],
                flows: v[2],
            })
            .collect())
    }

    fn top_sites(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopSite>, StoreError> {
        let d = self.lock();
        let from = from / 60 * 60;
        let mut sums: HashMap<&str, (u64, u64, Option<SiteSource>)> = HashMap::new();
        for ((minute, a, site), (bytes, flows, source)) in &d.sites {
            if *minute >= from && *minute < to && agency.is_none_or(|x| x == a) {
                let s = sums.entry(site.as_str()).or_insert((0, 0, None));
                s.0 += bytes;
                s.1 += flows;
                let rank = |x: Option<SiteSource>| x.map(super::codec::site_source_code);
                if s.2.is_none() || (source.is_some() && rank(*source) < rank(s.2)) {
                    s.2 = *source;
                }
            }
        }
        let mut out: Vec<TopSite> = sums
            .into_iter()
            .map(|(site, (bytes, flows, site_source))| TopSite {
                site: site.to_string(),
                bytes,
                flows,
                site_source,
            })
            .collect();
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.site.cmp(&b.site)));
        out.truncate(limit.min(1000));
        Ok(out)
    }

    fn flows(&self, f: &FlowFilter) -> Result<Vec<FlowRow>, StoreError> {
        Ok(self.flow_page(f)?.rows)
    }

    fn flow_page(&self, f: &FlowFilter) -> Result<FlowPage, StoreError> {
        if let Some(c) = &f.cursor {
            if c.sort != f.sort {
                return Err(StoreError::Invalid {
                    what: "cursor",
                    value: c.encode(),
                    reason: "belongs to another sort order: start again without it",
                });
            }
        }
        let d = self.lock();
        let mut top = TopRows::new(f);
        for x in flows_in(&d, f) {
            top.offer(
                x.boot,
                FlowRow {
                    node_id: x.node.clone(),
                    record: x.record.clone(),
                },
            );
        }
        Ok(top.page())
    }

    fn investigate(&self, f: &FlowFilter, top: usize) -> Result<Investigation, StoreError> {
        let d = self.lock();
        let mut rows: Vec<&Flow> = flows_in(&d, f).collect();
        rows.sort_by(|a, b| {
            let (ka, kb) = (
                (a.record.last_seen, &a.node, a.boot, a.record.flow_id),
                (b.record.last_seen, &b.node, b.boot, b.record.flow_id),
            );
            kb.cmp(&ka)
        });
        let mut tally = Tally::default();
        let complete = rows.len() as u64 <= MAX_INVESTIGATE_SCAN;
        for x in rows.into_iter().take(MAX_INVESTIGATE_SCAN as usize) {
            tally.scanned += 1;
            tally.add(&x.record);
        }
        Ok(tally.finish(complete, top))
    }

    fn unit_usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<Vec<UnitUsage>, StoreError> {
        let s = step.secs();
        let (from, to) = (from / s * s, to.div_ceil(s) * s);
        let d = self.lock();
        let mut units: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        for ((a, ts, unit, scope), v) in &d.usage {
            if a == agency && *ts >= from && *ts < to {
                let u = units.entry(unit.clone()).or_default();
                u[0] += v[0];
                u[1] += v[1];
                if *scope == 0 {
                    u[2] += v[0];
                    u[3] += v[1];
                }
            }
        }
        let mut out: Vec<UnitUsage> = units
            .into_iter()
            .map(|(unit, v)| UnitUsage {
                unit,
                bytes_in: v[0],
                bytes_out: v[1],
                internet_bytes_in: v[2],
                internet_bytes_out: v[3],
            })
            .collect();
        UnitUsage::sort(&mut out);
        Ok(out)
    }

    fn unit_hosts(
        &self,
        agency: &str,
        unit: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        let mut all = self.top_hosts(Some(agency), from, to, usize::MAX)?;
        all.retain(|h| h.unit == unit);
        all.truncate(limit.min(1000));
        Ok(all)
    }

    fn blocked_matching(
        &self,
        from: u64,
        to: u64,
        agency: Option<&str>,
        m: &BlockedMatch,
        limit: usize,
    ) -> Result<Vec<BlockedRow>, StoreError> {
        let d = self.lock();
        let mut rows: Vec<&(String, BlockedAttempt)> = d
            .blocked
            .iter()
            .filter(|(_, a)| {
                a.last_seen >= from * NS
                    && a.last_seen < to * NS
                    && agency.is_none_or(|x| x == a.agency)
                    && m.matches(a)
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.last_seen));
        Ok(rows
            .into_iter()
            .take(limit.min(super::MAX_BLOCKED))
            .map(|(node, a)| BlockedRow {
                node_id: node.clone(),
                attempt: a.clone(),
            })
            .collect())
    }

    fn blocked(&self, f: &BlockedFilter) -> Result<Vec<BlockedRow>, StoreError> {
        let d = self.lock();
        let mut rows: Vec<&(String, BlockedAttempt)> = blocked_in(&d, f).collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.last_seen));
        Ok(rows
            .into_iter()
            .take(limit_or(f.limit, 100))
            .map(|(node, a)| BlockedRow {
                node_id: node.clone(),
                attempt: a.clone(),
            })
            .collect())
    }

    fn blocked_summary(&self, f: &BlockedFilter) -> Result<BlockedSummary, StoreError> {
        let d = self.lock();
        let n = limit_or(f.limit, 10);
        let mut out = BlockedSummary {
            from: super::codec::rfc_s(f.from as i64),
            to: super::codec::rfc_s(f.to as i64),
            attempts: 0,
            records: 0,
            agencies: Vec::new(),
            targets: Vec::new(),
            clients: Vec::new(),
        };
        let mut agencies: BTreeMap<&str, (u64, HashSet<IpAddr>)> = BTreeMap::new();
        let mut targets: BTreeMap<&str, (u64, HashSet<IpAddr>, &BlockedAttempt)> = BTreeMap::new();
        let mut clients: BTreeMap<(&str, IpAddr), (u64, HashSet<&str>, &BlockedAttempt)> =
            BTreeMap::new();
        for (_, a) in blocked_in(&d, f) {
            let n = u64::from(a.attempts);
            out.attempts += n;
            out.records += 1;
            let e = agencies.entry(a.agency.as_str()).or_default();
            e.0 += n;
            e.1.insert(a.client);
            let t = targets
                .entry(a.target.as_str())
                .or_insert((0, HashSet::new(), a));
            t.0 += n;
            t.1.insert(a.client);
            if a.last_seen > t.2.last_seen {
                t.2 = a;
            }
            let c = clients
                .entry((a.agency.as_str(), a.client))
                .or_insert((0, HashSet::new(), a));
            c.0 += n;
            c.1.insert(a.target.as_str());
            if a.last_seen > c.2.last_seen {
                c.2 = a;
            }
        }
        out.agencies = agencies
            .into_iter()
            .map(|(agency, (attempts, c))| BlockedAgency {
                agency: agency.to_string(),
                attempts,
                clients: c.len() as u64,
            })
            .collect();
        out.agencies
            .sort_by(|a, b| b.attempts.cmp(&a.attempts).then(a.agency.cmp(&b.agency)));
        let rfc = |ns: u64| super::codec::rfc_ns(i64::try_from(ns).unwrap_or(i64::MAX));
        let mut t: Vec<BlockedTarget> = targets
            .into_iter()
            .map(|(target, (attempts, c, last))| BlockedTarget {
                target: target.to_string(),
                attempts,
                clients: c.len() as u64,
                method: last.method,
                rule: last.rule.clone(),
                list: last.list.clone(),
                last_seen: rfc(last.last_seen),
            })
            .collect();
        t.sort_by(|a, b| b.attempts.cmp(&a.attempts).then(a.target.cmp(&b.target)));
        t.truncate(n);
        out.targets = t;
        let mut c: Vec<BlockedClient> = clients
            .into_iter()
            .map(
                |((agency, client), (attempts, targets, last))| BlockedClient {
                    client: client.to_string(),
                    agency: agency.to_string(),
                    unit: last.unit.clone(),
                    attempts,
                    targets: targets.len() as u64,
                    last_seen: rfc(last.last_seen),
                },
            )
            .collect();
        c.sort_by(|a, b| {
            b.attempts
                .cmp(&a.attempts)
                .then(a.agency.cmp(&b.agency))
                .then(a.client.cmp(&b.client))
        });
        c.truncate(n);
        out.clients = c;
        Ok(out)
    }
}

#[cfg(test)]
mod conformance {
    //! The in-memory store and the SQLite store give the same answers to the
    //! same batches (duplicates, interim records, blocked attempts), so tests
    //! on the memory store stand for the real one.

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::store::bench::comparison::comparison_batches;
    use crate::store::{Store, TopSite};
    use simpul_proto::wire::Batch;

    #[test]
    fn memory_and_sqlite_answer_alike() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            aggregate_delay_ms: 0,
            flow_retention_days: 36_500,
            blocked_retention_days: 36_500,
            ..StoreConfig::default()
        };
        let sqlite = Store::open(dir.path(), cfg.clone()).unwrap();
        let memory = MemoryFlowStore::new(cfg);
        let stores: [&dyn FlowStore; 2] = [&sqlite, &memory];
        let mut outcomes = Vec::new();
        for s in stores {
            let mut w = s.writer().unwrap();
            let mut o = Vec::new();
            for (node, agency, b) in comparison_batches() {
                let group = NodeBatches {
                    node_id: &node,
                    agency: &agency,
                    strict_seq: true,
                    batches: std::slice::from_ref(&b),
                };
                o.extend(w.ingest_many(&[group]).unwrap().concat());
            }
            w.fold_aggregates().unwrap();
            outcomes.push(o);
        }
        assert_eq!(outcomes[0], outcomes[1]);
        assert_eq!(
            outcomes[0]
                .iter()
                .filter(|o| **o == BatchOutcome::Duplicate)
                .count(),
            5
        );

        let all = comparison_batches();
        let last = all
            .iter()
            .map(|(_, _, b)| b.sealed_ms / 1000)
            .max()
            .unwrap()
            + 1;
        let first = last - 3600;
        let now = UNIX_EPOCH + Duration::from_secs(last);
        let r: Vec<Box<dyn FlowReader>> = stores.iter().map(|s| s.reader().unwrap()).collect();
        for step in [Step::Second, Step::Minute, Step::Hour] {
            for a in ["agency00", "agency03", "nope"] {
                assert_eq!(
                    r[0].usage(a, first, last, step).unwrap(),
                    r[1].usage(a, first, last, step).unwrap(),
                    "{a} {step:?}"
                );
            }
        }
        assert_eq!(r[0].traffic(now, 5).unwrap(), r[1].traffic(now, 5).unwrap());
        assert_eq!(
            r[0].usage_series_since(last - 60).unwrap(),
            r[1].usage_series_since(last - 60).unwrap()
        );
        for agency in [None, Some("agency01")] {
            assert_eq!(
                r[0].top_hosts(agency, first, last, 20).unwrap(),
                r[1].top_hosts(agency, first, last, 20).unwrap()
            );
            let sites =
                |i: usize| -> Vec<TopSite> { r[i].top_sites(agency, first, last, 20).unwrap() };
            assert_eq!(sites(0), sites(1));
        }
        // Flows of one busy host and one site (fewer than a page), as sets.
        let host = r[0].top_hosts(None, first, last, 1).unwrap()[0]
            .host
            .parse()
            .unwrap();
        let site = r[0].top_sites(Some("agency02"), first, last, 1).unwrap()[0]
            .site
            .clone();
        for filter in [
            FlowFilter {
                from: first,
                to: last,
                host: Some(host),
                limit: 1000,
                ..FlowFilter::default()
            },
            FlowFilter {
                from: first,
                to: last,
                site: Some(site),
                agency: Some("agency02".into()),
                limit: 1000,
                ..FlowFilter::default()
            },
        ] {
            let mut a = r[0].flows(&filter).unwrap();
            let mut b = r[1].flows(&filter).unwrap();
            assert!(!a.is_empty() && a.len() < 1000, "{}", a.len());
            for v in [&mut a, &mut b] {
                v.sort_by(|x, y| {
                    (&x.node_id, x.record.flow_id).cmp(&(&y.node_id, y.record.flow_id))
                });
            }
            assert_eq!(a, b);
        }
        let blocked = BlockedFilter {
            from: first,
            to: last,
            limit: 1000,
            ..BlockedFilter::default()
        };
        let sort = |mut v: Vec<BlockedRow>| {
            v.sort_by(|x, y| {
                (
                    x.attempt.last_seen,
                    &x.node_id,
                    &x.attempt.target,
                    x.attempt.client,
                )
                    .cmp(&(
                        y.attempt.last_seen,
                        &y.node_id,
                        &y.attempt.target,
                        y.attempt.client,
                    ))
            });
            v
        };
        assert_eq!(
            sort(r[0].blocked(&blocked).unwrap()),
            sort(r[1].blocked(&blocked).unwrap())
        );
        let summary = BlockedFilter {
            limit: 3,
            agency: Some("agency04".into()),
            ..blocked
        };
        assert_eq!(
            r[0].blocked_summary(&summary).unwrap(),
            r[1].blocked_summary(&summary).unwrap()
        );
    }

    /// A node the inventory moves to another agency mid-flow: the flow stays
    /// listed under the agency it started in, its later growth counts for
    /// the new one, in both stores.
    #[test]
    fn a_flow_stays_with_the_agency_it_started_under() {
        const T: u64 = 1_800_000_000_000_000_000;
        let rec = |bytes: u64, last: u64| FlowRecord {
            flow_id: 7,
            kind: RecordKind::Interim,
            end_reason: EndReason::Active,
            proto: "icmp".into(),
            src_ip: "10.10.1.10".parse().unwrap(),
            src_port: None,
            dst_ip: "203.0.113.10".parse().unwrap(),
            dst_port: None,
            vlan: None,
            vlan_inner: None,
            packets_up: 1,
            bytes_up: bytes,
            packets_down: 1,
            bytes_down: bytes,
            first_seen: T,
            last_seen: T + last,
            tcp_flags_up: None,
            tcp_flags_down: None,
            sni: None,
            http_host: None,
            dns_query: None,
            site: None,
            site_source: None,
            agency: "unknown".into(),
            unit: "unknown".into(),
            scope: simpul_proto::TrafficScope::Internet,
        };
        let batch = |seq: u64, r: FlowRecord| Batch {
            boot_epoch: 1,
            seq,
            sealed_ms: (r.last_seen / 1_000_000) + 1,
            flows: vec![r],
            counters: vec![],
            blocked: vec![],
            dropped_records: 0,
            dropped_batches: 0,
        };
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            aggregate_delay_ms: 0,
            flow_retention_days: 36_500,
            ..StoreConfig::default()
        };
        let sqlite = Store::open(dir.path(), cfg.clone()).unwrap();
        let memory = MemoryFlowStore::new(cfg);
        for s in [&sqlite as &dyn FlowStore, &memory] {
            let mut w = s.writer().unwrap();
            for (agency, b) in [
                ("dinkes", batch(1, rec(100, 1_000_000_000))),
                ("bappeda", batch(2, rec(250, 120_000_000_000))),
            ] {
                let g = NodeBatches {
                    node_id: "mover-01",
                    agency,
                    strict_seq: true,
                    batches: std::slice::from_ref(&b),
                };
                w.ingest_many(&[g]).unwrap();
            }
            w.fold_aggregates().unwrap();
            let r = s.reader().unwrap();
            let (from, to) = (T / 1_000_000_000 - 60, T / 1_000_000_000 + 600);
            let flows = |agency: &str| {
                r.flows(&FlowFilter {
                    from,
                    to,
                    agency: Some(agency.into()),
                    limit: 10,
                    ..FlowFilter::default()
                })
                .unwrap()
            };
            let dinkes = flows("dinkes");
            assert_eq!(dinkes.len(), 1, "{dinkes:?}");
            assert_eq!(dinkes[0].record.agency, "dinkes");
            assert_eq!(dinkes[0].record.bytes_up, 250);
            assert!(flows("bappeda").is_empty());
            let up = |agency: &str| -> u64 {
                r.top_hosts(Some(agency), from, to, 5)
                    .unwrap()
                    .iter()
                    .map(|h| h.bytes_up)
                    .sum()
            };
            assert_eq!((up("dinkes"), up("bappeda")), (100, 150));
        }
    }
}

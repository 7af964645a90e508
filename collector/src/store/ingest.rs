//! Batch ingest: dedup, flow rows, counters and their rollups, all in one
//! transaction per call.
//!
//! Top hosts/sites crediting, exactly once per byte:
//! - a new flow row is credited later, by [`fold`], with the state it had
//!   when inserted (rows from `folded_row` up to `next_row` are pending);
//! - an update credits, in the same transaction, the growth of the counters
//!   at the minute of the new record; if the row was still pending it also
//!   credits the row's previous state itself and marks it `folded` so the
//!   fold skips it.
//!
//! Folding a few seconds of rows at once turns one UPSERT per flow into one
//! per (minute, host) and (minute, site): the difference between ~60k and
//! well over 200k records/s. Folding is part of an ingest transaction, so a
//! crash can never credit a row twice or lose it.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::{
    params, CachedStatement, OptionalExtension, Statement, Transaction, TransactionBehavior,
};
use serde::Serialize;
use simpul_proto::wire::Batch;
use simpul_proto::{FlowRecord, RecordKind};

use super::codec::{
    add_count, count, end_reason_code, floor, id, id_back, ip_from_blob, local_is_src, scope_code,
    site_key, site_source_code, time, IpBlob, MAX_COUNT,
};
use super::{StoreError, Writer};

/// Rows per chunk, as a shift: chunk = row id >> CHUNK_BITS.
pub(crate) const CHUNK_BITS: u32 = 16;

/// Fold at the latest once this many rows are pending, whatever the delay:
/// bounds the fold's memory and the latency of the call that runs it.
const FOLD_MAX_ROWS: i64 = 1 << 20;

/// What happened to one batch; the server acknowledges both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchOutcome {
    /// Written in this call.
    Stored,
    /// Committed earlier (seq at or below the node boot's high-water mark);
    /// nothing written.
    Duplicate,
}

/// The batches one authenticated node sent.
#[derive(Debug, Clone, Copy)]
pub struct NodeBatches<'a> {
    pub node_id: &'a str,
    /// The node's enrolled agency. Every record and counter is attributed to
    /// it, whatever agency the record names, so a node can never write into
    /// another agency's figures; traffic of subnets its agent does not know
    /// ("unknown") still crossed that agency's router, so it counts there.
    pub agency: &'a str,
    pub batches: &'a [Batch],
}

const INSERT_FLOW: &str = "INSERT INTO flows (id, chunk, stream, flow_id, folded, final,
    end_reason, proto, src_ip, src_port, dst_ip, dst_port, vlan, vlan_inner,
    packets_up, bytes_up, packets_down, bytes_down, first_seen, last_seen,
    tcp_flags_up, tcp_flags_down, sni, http_host, dns_query, site, site_key, site_source,
    agency, unit, scope)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)
ON CONFLICT (stream, flow_id) DO NOTHING";

// Same parameter numbering as INSERT_FLOW (?1 being the existing row's id) so
// one parameter list serves both; chunk, stream and flow id (?2-?4) stay, and
// SQLite accepts values bound to numbers a statement does not use.
const UPDATE_FLOW: &str = "UPDATE flows SET folded = ?5, final = ?6, end_reason = ?7,
    proto = ?8, src_ip = ?9, src_port = ?10, dst_ip = ?11, dst_port = ?12, vlan = ?13,
    vlan_inner = ?14, packets_up = ?15, bytes_up = ?16, packets_down = ?17, bytes_down = ?18,
    first_seen = min(first_seen, ?19), last_seen = ?20, tcp_flags_up = ?21,
    tcp_flags_down = ?22, sni = ?23, http_host = ?24, dns_query = ?25, site = ?26,
    site_key = ?27, site_source = ?28, agency = ?29, unit = ?30, scope = ?31
WHERE id = ?1";

const SELECT_FLOW: &str = "SELECT id, final, folded, bytes_up, bytes_down, last_seen,
    unit, src_ip, dst_ip, site, site_source
    FROM flows WHERE stream = ?1 AND flow_id = ?2";

fn usage_upsert(table: &str) -> String {
    format!(
        "INSERT INTO {table} (agency, ts, unit, scope, bytes_in, bytes_out, packets_in, packets_out)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (agency, ts, unit, scope) DO UPDATE SET
             bytes_in = min(bytes_in + excluded.bytes_in, {MAX_COUNT}),
             bytes_out = min(bytes_out + excluded.bytes_out, {MAX_COUNT}),
             packets_in = min(packets_in + excluded.packets_in, {MAX_COUNT}),
             packets_out = min(packets_out + excluded.packets_out, {MAX_COUNT})"
    )
}

/// (bucket start, agency, unit, scope)
type UsageKey<'a> = (i64, &'a str, &'a str, u8);

fn add_into<const N: usize>(acc: &mut [i64; N], v: [i64; N]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a = add_count(*a, b);
    }
}

/// Strings → small ids, so the top-N maps hash integers and allocate each
/// distinct agency, unit and site once.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), i);
        i
    }
}

/// Top-N credits waiting to be written: keys are (minute, agency, unit, host)
/// and (minute, agency, site) with interned strings.
#[derive(Default)]
struct TopSums {
    names: Interner,
    hosts: HashMap<(i64, u32, u32, IpBlob), [i64; 3]>,
    /// (best source rank, u8::MAX = none; bytes; flows)
    sites: HashMap<(i64, u32, u32), (u8, i64, i64)>,
}

/// One credit: what a flow row (or the growth of one) adds.
struct Credit<'r> {
    last_seen_ns: i64,
    agency: &'r str,
    unit: &'r str,
    src: IpBlob,
    dst: IpBlob,
    local_is_src: bool,
    site: Option<&'r str>,
    site_source: Option<u8>,
    bytes_up: i64,
    bytes_down: i64,
    flows: i64,
}

impl TopSums {
    fn credit(&mut self, c: Credit<'_>) {
        if c.bytes_up == 0 && c.bytes_down == 0 && c.flows == 0 {
            return;
        }
        let minute = floor(c.last_seen_ns.div_euclid(1_000_000_000), 60);
        let agency = self.names.id(c.agency);
        let unit = self.names.id(c.unit);
        let (host, up, down) = if c.local_is_src {
            (c.src, c.bytes_up, c.bytes_down)
        } else {
            (c.dst, c.bytes_down, c.bytes_up)
        };
        add_into(
            self.hosts.entry((minute, agency, unit, host)).or_default(),
            [up, down, c.flows],
        );
        if let Some(site) = c.site {
            let site = self.names.id(site);
            let e = self
                .sites
                .entry((minute, agency, site))
                .or_insert((u8::MAX, 0, 0));
            e.0 = e.0.min(c.site_source.unwrap_or(u8::MAX));
            e.1 = add_count(e.1, add_count(c.bytes_up, c.bytes_down));
            e.2 = add_count(e.2, c.flows);
        }
    }

    /// Keys are sorted first so each b-tree is walked in order.
    fn write(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let n = &self.names.names;
        let mut hosts: Vec<_> = self.hosts.iter().collect();
        hosts.sort_unstable_by(|a, b| {
            let (ka, kb) = (a.0, b.0);
            (ka.0, &n[ka.1 as usize], &n[ka.2 as usize], ka.3).cmp(&(
                kb.0,
                &n[kb.1 as usize],
                &n[kb.2 as usize],
                kb.3,
            ))
        });
        let mut st = tx.prepare_cached(&format!(
            "INSERT INTO top_hosts_1m (minute, agency, unit, host, bytes_up, bytes_down, flows)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (minute, agency, unit, host) DO UPDATE SET
                 bytes_up = min(bytes_up + excluded.bytes_up, {MAX_COUNT}),
                 bytes_down = min(bytes_down + excluded.bytes_down, {MAX_COUNT}),
                 flows = min(flows + excluded.flows, {MAX_COUNT})"
        ))?;
        for (&(minute, agency, unit, host), [up, down, flows]) in hosts {
            st.execute(params![
                minute,
                n[agency as usize],
                n[unit as usize],
                host.as_slice(),
                up,
                down,
                flows
            ])?;
        }
        let mut sites: Vec<_> = self.sites.iter().collect();
        sites.sort_unstable_by(|a, b| {
            let (ka, kb) = (a.0, b.0);
            (ka.0, &n[ka.1 as usize], &n[ka.2 as usize]).cmp(&(
                kb.0,
                &n[kb.1 as usize],
                &n[kb.2 as usize],
            ))
        });
        let mut st = tx.prepare_cached(&format!(
            "INSERT INTO top_sites_1m (minute, agency, site, site_source, bytes, flows)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (minute, agency, site) DO UPDATE SET
                 site_source = CASE
                     WHEN site_source IS NULL THEN excluded.site_source
                     WHEN excluded.site_source IS NULL THEN site_source
                     ELSE min(site_source, excluded.site_source) END,
                 bytes = min(bytes + excluded.bytes, {MAX_COUNT}),
                 flows = min(flows + excluded.flows, {MAX_COUNT})"
        ))?;
        for (&(minute, agency, site), &(rank, bytes, flows)) in sites {
            let source = (rank != u8::MAX).then_some(rank);
            st.execute(params![
                minute,
                n[agency as usize],
                n[site as usize],
                source,
                bytes,
                flows
            ])?;
        }
        Ok(())
    }
}

/// State of one ingest call.
struct Call<'a> {
    next_row: i64,
    folded_row: i64,
    /// chunk → (min, max) last_seen of the rows this call wrote.
    chunks: HashMap<i64, (i64, i64)>,
    usage_1s: HashMap<UsageKey<'a>, [i64; 4]>,
    /// Credits of updated flows (new rows wait for the fold).
    top: TopSums,
}

impl Call<'_> {
    fn touch_chunk(&mut self, row: i64, last_seen: i64) {
        let e = self
            .chunks
            .entry(row >> CHUNK_BITS)
            .or_insert((last_seen, last_seen));
        e.0 = e.0.min(last_seen);
        e.1 = e.1.max(last_seen);
    }
}

fn read_state(tx: &Transaction<'_>, name: &str) -> Result<i64, StoreError> {
    Ok(tx
        .prepare_cached("SELECT value FROM ingest_state WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

fn write_state(tx: &Transaction<'_>, name: &str, value: i64) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE ingest_state SET value = ?2 WHERE name = ?1")?
        .execute(params![name, value])?;
    Ok(())
}

pub static T: [std::sync::atomic::AtomicU64; 6] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 6];
impl Writer {
    /// Store the batches of one node in one transaction; see
    /// [`Writer::ingest_many`].
    pub fn ingest(
        &mut self,
        node_id: &str,
        agency: &str,
        batches: &[Batch],
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let mut out = self.ingest_many(&[NodeBatches {
            node_id,
            agency,
            batches,
        }])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Store the batches of several nodes in ONE transaction (one WAL sync):
    /// the server should group everything that arrived within its ~50 ms
    /// window, from all nodes, into one call. Returns the outcome of every
    /// batch, in the given order. Acknowledge only after `Ok`: on `Err`
    /// nothing was written.
    ///
    /// Dedup is per (node, boot_epoch) by high-water mark: a batch whose seq
    /// is at or below the highest committed one is a duplicate. Batches are
    /// applied in seq order whatever order they are given in, so a shuffled
    /// group does not turn its own lower seqs into "duplicates" that were
    /// never stored.
    ///
    /// Usage counters are visible to readers on return; top hosts/sites of
    /// new flows after the next fold (at most `aggregate_delay_ms` later
    /// while ingest continues; see [`Writer::fold_aggregates`]).
    pub fn ingest_many(
        &mut self,
        groups: &[NodeBatches<'_>],
    ) -> Result<Vec<Vec<BatchOutcome>>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut call = Call {
            next_row: read_state(&tx, "next_row")?,
            folded_row: read_state(&tx, "folded_row")?,
            chunks: HashMap::new(),
            usage_1s: HashMap::new(),
            top: TopSums::default(),
        };
        let first_row = call.next_row;
        let mut outcomes = Vec::with_capacity(groups.len());
        {
            let mut st = FlowStmts {
                insert: tx.prepare_cached(INSERT_FLOW)?,
                update: tx.prepare_cached(UPDATE_FLOW)?,
                select: tx.prepare_cached(SELECT_FLOW)?,
            };
            let t = Instant::now();
            for g in groups {
                outcomes.push(ingest_group(&tx, &mut st, &mut call, g)?);
            }
            T[0].fetch_add(
                t.elapsed().as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let t = Instant::now();
        write_usage(&tx, &call.usage_1s)?;
        call.top.write(&tx)?;
        let mut st = tx.prepare_cached(
            "INSERT INTO flow_chunks (chunk, min_last_seen, max_last_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (chunk) DO UPDATE SET
                 min_last_seen = min(min_last_seen, excluded.min_last_seen),
                 max_last_seen = max(max_last_seen, excluded.max_last_seen)",
        )?;
        for (chunk, (lo, hi)) in &call.chunks {
            st.execute(params![chunk, lo, hi])?;
        }
        drop(st);
        T[1].fetch_add(
            t.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        T[4].fetch_add(
            call.top.hosts.len() as u64 * 1_000_000 + call.top.sites.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let t = Instant::now();
        if call.next_row != first_row {
            write_state(&tx, "next_row", call.next_row)?;
        }
        let pending = call.next_row - call.folded_row;
        let due = self.last_fold.elapsed().as_millis() >= u128::from(self.cfg.aggregate_delay_ms);
        if pending > 0 && (due || pending >= FOLD_MAX_ROWS) {
            fold(&tx, call.folded_row, call.next_row)?;
        }
        T[2].fetch_add(
            t.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let t = Instant::now();
        tx.commit()?;
        T[3].fetch_add(
            t.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if pending > 0 && (due || pending >= FOLD_MAX_ROWS) {
            self.last_fold = Instant::now();
        }
        Ok(outcomes)
    }

    /// Credit all pending flow rows to the top hosts/sites tables now. The
    /// writer thread should call this when ingest goes idle (e.g. once a
    /// second without batches) so the top lists catch up with the last
    /// batches; ingest does it by itself every `aggregate_delay_ms`.
    pub fn fold_aggregates(&mut self) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let from = read_state(&tx, "folded_row")?;
        let to = read_state(&tx, "next_row")?;
        let n = if to > from { fold(&tx, from, to)? } else { 0 };
        tx.commit()?;
        self.last_fold = Instant::now();
        Ok(n)
    }
}

/// Credit flow rows [from, to) not credited by an update yet, and move the
/// watermark. Returns the rows credited.
fn fold(tx: &Transaction<'_>, from: i64, to: i64) -> Result<u64, StoreError> {
    let mut top = TopSums::default();
    let mut n = 0u64;
    {
        let mut st = tx.prepare_cached(
            "SELECT last_seen, agency, unit, src_ip, dst_ip, site, site_source,
                    bytes_up, bytes_down
             FROM flows WHERE id >= ?1 AND id < ?2 AND folded = 0",
        )?;
        let mut rows = st.query(params![from, to])?;
        while let Some(r) = rows.next()? {
            let src = ip_from_blob(r.get_ref(3)?.as_blob()?, "flows")?;
            let dst = ip_from_blob(r.get_ref(4)?.as_blob()?, "flows")?;
            top.credit(Credit {
                last_seen_ns: r.get(0)?,
                agency: r.get_ref(1)?.as_str()?,
                unit: r.get_ref(2)?.as_str()?,
                src: IpBlob::new(src),
                dst: IpBlob::new(dst),
                local_is_src: local_is_src(src, dst),
                site: r.get_ref(5)?.as_str_or_null()?,
                site_source: r.get::<_, Option<u8>>(6)?,
                bytes_up: r.get(7)?,
                bytes_down: r.get(8)?,
                flows: 1,
            });
            n += 1;
        }
    }
    T[5].fetch_add(
        top.hosts.len() as u64 * 1_000_000 + top.sites.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    top.write(tx)?;
    write_state(tx, "folded_row", to)?;
    Ok(n)
}

struct FlowStmts<'c> {
    insert: CachedStatement<'c>,
    update: CachedStatement<'c>,
    select: CachedStatement<'c>,
}

fn ingest_group<'a>(
    tx: &Transaction<'_>,
    st: &mut FlowStmts<'_>,
    call: &mut Call<'a>,
    g: &NodeBatches<'a>,
) -> Result<Vec<BatchOutcome>, StoreError> {
    let mut outcomes = vec![BatchOutcome::Duplicate; g.batches.len()];
    let mut order: Vec<usize> = (0..g.batches.len()).collect();
    order.sort_by_key(|&i| (g.batches[i].boot_epoch, g.batches[i].seq));
    let mut find = tx
        .prepare_cached("SELECT id, max_seq FROM streams WHERE node_id = ?1 AND boot_epoch = ?2")?;
    let mut create = tx.prepare_cached(
        "INSERT INTO streams (node_id, boot_epoch, max_seq, dropped_records)
         VALUES (?1, ?2, ?3, ?4) RETURNING id",
    )?;
    let mut advance = tx.prepare_cached(&format!(
        "UPDATE streams SET max_seq = ?2,
             dropped_records = min(dropped_records + ?3, {MAX_COUNT})
         WHERE id = ?1"
    ))?;
    for i in order {
        let b = &g.batches[i];
        let known: Option<(i64, i64)> = find
            .query_row(params![g.node_id, id(b.boot_epoch)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let stream = match known {
            Some((_, max)) if b.seq <= id_back(max) => continue,
            Some((stream, _)) => {
                advance.execute(params![stream, id(b.seq), count(b.dropped_records)])?;
                stream
            }
            None => create.query_row(
                params![
                    g.node_id,
                    id(b.boot_epoch),
                    id(b.seq),
                    count(b.dropped_records)
                ],
                |r| r.get(0),
            )?,
        };
        for rec in &b.flows {
            ingest_flow(st, call, stream, g.agency, rec)?;
        }
        for c in &b.counters {
            let key = (time(c.ts), g.agency, c.unit.as_str(), scope_code(c.scope));
            let v = [
                count(c.bytes_in),
                count(c.bytes_out),
                count(c.packets_in),
                count(c.packets_out),
            ];
            add_into(call.usage_1s.entry(key).or_default(), v);
        }
        outcomes[i] = BatchOutcome::Stored;
    }
    Ok(outcomes)
}

/// A record's column values, bound straight into the statement (no
/// parameter slice of trait objects: this runs once per record).
struct Values<'r> {
    stream: i64,
    flow_id: i64,
    is_final: bool,
    rec: &'r FlowRecord,
    src: IpBlob,
    dst: IpBlob,
    site_key: Option<String>,
    bytes_up: i64,
    bytes_down: i64,
    last_seen: i64,
    agency: &'r str,
}

impl Values<'_> {
    /// Parameter numbers as in INSERT_FLOW / UPDATE_FLOW.
    fn bind(&self, st: &mut Statement<'_>, row: i64, folded: bool) -> rusqlite::Result<()> {
        let r = self.rec;
        st.raw_bind_parameter(1, row)?;
        st.raw_bind_parameter(2, row >> CHUNK_BITS)?;
        st.raw_bind_parameter(3, self.stream)?;
        st.raw_bind_parameter(4, self.flow_id)?;
        st.raw_bind_parameter(5, folded)?;
        st.raw_bind_parameter(6, self.is_final)?;
        st.raw_bind_parameter(7, end_reason_code(r.end_reason))?;
        st.raw_bind_parameter(8, &r.proto)?;
        st.raw_bind_parameter(9, self.src.as_slice())?;
        st.raw_bind_parameter(10, r.src_port)?;
        st.raw_bind_parameter(11, self.dst.as_slice())?;
        st.raw_bind_parameter(12, r.dst_port)?;
        st.raw_bind_parameter(13, r.vlan)?;
        st.raw_bind_parameter(14, r.vlan_inner)?;
        st.raw_bind_parameter(15, count(r.packets_up))?;
        st.raw_bind_parameter(16, self.bytes_up)?;
        st.raw_bind_parameter(17, count(r.packets_down))?;
        st.raw_bind_parameter(18, self.bytes_down)?;
        st.raw_bind_parameter(19, time(r.first_seen))?;
        st.raw_bind_parameter(20, self.last_seen)?;
        st.raw_bind_parameter(21, r.tcp_flags_up)?;
        st.raw_bind_parameter(22, r.tcp_flags_down)?;
        st.raw_bind_parameter(23, &r.sni)?;
        st.raw_bind_parameter(24, &r.http_host)?;
        st.raw_bind_parameter(25, &r.dns_query)?;
        st.raw_bind_parameter(26, &r.site)?;
        st.raw_bind_parameter(27, &self.site_key)?;
        st.raw_bind_parameter(28, r.site_source.map(site_source_code))?;
        st.raw_bind_parameter(29, self.agency)?;
        st.raw_bind_parameter(30, &r.unit)?;
        st.raw_bind_parameter(31, scope_code(r.scope))
    }
}

fn ingest_flow(
    st: &mut FlowStmts<'_>,
    call: &mut Call<'_>,
    stream: i64,
    agency: &str,
    rec: &FlowRecord,
) -> Result<(), StoreError> {
    let v = Values {
        stream,
        flow_id: id(rec.flow_id),
        is_final: rec.kind == RecordKind::Final,
        rec,
        src: IpBlob::new(rec.src_ip),
        dst: IpBlob::new(rec.dst_ip),
        site_key: rec.site.as_deref().map(site_key),
        bytes_up: count(rec.bytes_up),
        bytes_down: count(rec.bytes_down),
        last_seen: time(rec.last_seen),
        agency,
    };
    let (is_final, flow_id, last_seen) = (v.is_final, v.flow_id, v.last_seen);
    let (bytes_up, bytes_down, src, dst) = (v.bytes_up, v.bytes_down, v.src, v.dst);
    let row = call.next_row;
    // Most flows arrive once, as a final record: try the insert first and
    // only look at the stored row when the flow is already known.
    v.bind(&mut st.insert, row, false)?;
    if st.insert.raw_execute()? == 1 {
        call.next_row += 1;
        call.touch_chunk(row, last_seen);
        return Ok(());
    }
    let mut old = st.select.query(params![stream, flow_id])?;
    let Some(o) = old.next()? else {
        return Err(StoreError::Corrupt {
            table: "flows",
            detail: format!("flow {flow_id} of stream {stream} conflicts but cannot be read"),
        });
    };
    let (old_row, was_final, folded): (i64, bool, bool) = (o.get(0)?, o.get(1)?, o.get(2)?);
    let (old_up, old_down, old_last): (i64, i64, i64) = (o.get(3)?, o.get(4)?, o.get(5)?);
    // A closed flow never changes again, and an interim record older than
    // the stored one (re-sent out of order) would move counters backwards.
    if was_final || (!is_final && last_seen < old_last) {
        return Ok(());
    }
    let pending = old_row >= call.folded_row && !folded;
    if pending {
        // The fold has not credited the row yet and now never will: credit
        // its stored state here, where that state is still known.
        let (osrc, odst) = (
            ip_from_blob(o.get_ref(7)?.as_blob()?, "flows")?,
            ip_from_blob(o.get_ref(8)?.as_blob()?, "flows")?,
        );
        call.top.credit(Credit {
            last_seen_ns: old_last,
            agency,
            unit: o.get_ref(6)?.as_str()?,
            src: IpBlob::new(osrc),
            dst: IpBlob::new(odst),
            local_is_src: local_is_src(osrc, odst),
            site: o.get_ref(9)?.as_str_or_null()?,
            site_source: o.get::<_, Option<u8>>(10)?,
            bytes_up: old_up,
            bytes_down: old_down,
            flows: 1,
        });
    }
    drop(old);
    v.bind(&mut st.update, old_row, folded || pending)?;
    st.update.raw_execute()?;
    call.touch_chunk(old_row, last_seen);
    // Interim counters are cumulative: only the growth is new traffic.
    call.top.credit(Credit {
        last_seen_ns: last_seen,
        agency,
        unit: &rec.unit,
        src,
        dst,
        local_is_src: local_is_src(rec.src_ip, rec.dst_ip),
        site: rec.site.as_deref(),
        site_source: rec.site_source.map(site_source_code),
        bytes_up: (bytes_up - old_up).max(0),
        bytes_down: (bytes_down - old_down).max(0),
        flows: 0,
    });
    Ok(())
}

/// Per-second sums of the call, rolled up into minutes and hours here so all
/// three resolutions commit together and always agree.
fn write_usage(
    tx: &Transaction<'_>,
    s1: &HashMap<UsageKey<'_>, [i64; 4]>,
) -> Result<(), StoreError> {
    let mut m1: HashMap<UsageKey<'_>, [i64; 4]> = HashMap::new();
    let mut h1: HashMap<UsageKey<'_>, [i64; 4]> = HashMap::new();
    for (k, v) in s1 {
        add_into(m1.entry((floor(k.0, 60), k.1, k.2, k.3)).or_default(), *v);
        add_into(h1.entry((floor(k.0, 3600), k.1, k.2, k.3)).or_default(), *v);
    }
    for (table, rows) in [("usage_1s", s1), ("usage_1m", &m1), ("usage_1h", &h1)] {
        let mut rows: Vec<_> = rows.iter().collect();
        rows.sort_unstable_by_key(|(k, _)| (k.1, k.0, k.2, k.3));
        let mut st = tx.prepare_cached(&usage_upsert(table))?;
        for ((ts, agency, unit, scope), [bi, bo, pi, po]) in rows {
            st.execute(params![agency, ts, unit, scope, bi, bo, pi, po])?;
        }
    }
    Ok(())
}

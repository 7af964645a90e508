//! Batch ingest: dedup, flow rows, counters and their rollups, blocked
//! attempts, all in one transaction per call.
//!
//! Flow rows go to the open chunk of the node's agency (see schema.rs); the
//! chunk's new addresses and sites go to `flow_terms`.
//!
//! Top hosts/sites crediting, exactly once per byte:
//! - a new flow row is credited later, by [`fold`], with the state it had
//!   when inserted (a chunk's rows from `folded` up to `rows` are pending);
//! - an update credits, in the same transaction, the growth of the counters
//!   at the minute of the new record; if the row was still pending it also
//!   credits the row's previous state itself and marks it `folded` so the
//!   fold skips it.
//!
//! Folding seconds' worth of rows at once turns two UPSERTs per flow into one
//! per (minute, host) and (minute, site) per fold: per-flow UPSERTs cost as
//! much as inserting the flow itself (measured ~5 µs per record). The fold
//! runs inside an ingest transaction (or its own) and its watermark commits
//! with it, so a crash never credits a row twice or loses one.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::{params, CachedStatement, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;
use simpul_proto::wire::Batch;
use simpul_proto::{FlowRecord, RecordKind};

use super::codec::{
    add_count, count, floor, id, id_back, local_is_src, scope_code, site_key, site_source_code,
    time, IpBlob, MAX_COUNT,
};
use super::record::{self, View};
use super::{StoreError, Writer};

/// `flows.state` bits.
pub(crate) const STATE_FINAL: i64 = 1;
pub(crate) const STATE_FOLDED: i64 = 2;
/// Closed by the collector when the node's next boot said Hello (the agent
/// was killed): final, but records its old boot's spool still delivers may
/// update it (their counters are the truth).
pub(crate) const STATE_RESTART: i64 = 4;

/// Rows per chunk, as a shift: chunk = row id >> CHUNK_BITS. 65536 rows of
/// one agency: a query reads a whole chunk in some 20 ms, and a chunk's
/// addresses and sites repeat enough that `flow_terms` gets about one entry
/// per four rows (one per 1.3 rows with 16384-row chunks).
pub(crate) const CHUNK_BITS: u32 = 16;
pub(crate) const CHUNK_ROWS: i64 = 1 << CHUNK_BITS;

/// Fold at the latest once this many rows are pending, whatever the delay:
/// bounds the fold's memory and the latency it adds to the call that runs
/// it (a few hundred ms at this size; acks wait for it).
const FOLD_MAX_ROWS: i64 = 1 << 18;

/// What happened to one batch; the server acknowledges both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchOutcome {
    /// Written in this call.
    Stored,
    /// Committed earlier (seq at or below the node boot's high-water mark);
    /// nothing written.
    Duplicate,
    /// Refused: `seq` jumps further ahead of the boot's high-water mark than
    /// the batches the agent says its spool dropped (a forged or broken
    /// sequence would otherwise make every later batch a "duplicate").
    /// Nothing written.
    SequenceGap {
        expected: u64,
        got: u64,
        dropped: u64,
    },
}

/// The outcome of a batch of a known stream: duplicate, in order (with the
/// gap the reported drops explain), or a gap nothing explains. Pure.
pub fn sequence_check(
    max_seq: u64,
    dropped_seen: u64,
    seq: u64,
    dropped_batches: u64,
    strict: bool,
) -> Option<BatchOutcome> {
    if seq <= max_seq {
        return Some(BatchOutcome::Duplicate);
    }
    let explained = dropped_batches.saturating_sub(dropped_seen);
    let gap = seq - max_seq - 1;
    if strict && (dropped_batches < dropped_seen || gap > explained) {
        return Some(BatchOutcome::SequenceGap {
            expected: max_seq + 1,
            got: seq,
            dropped: explained,
        });
    }
    None
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
    /// Check sequence gaps against the drops the agent reports (protocol 3).
    pub strict_seq: bool,
    pub batches: &'a [Batch],
}

const INSERT_FLOW: &str = "INSERT INTO flows (id, stream, flow_id, state, last_seen, rec)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (stream, flow_id) DO NOTHING";

const UPDATE_FLOW: &str = "UPDATE flows SET state = ?2, last_seen = ?3, rec = ?4 WHERE id = ?1";

fn select_flow() -> String {
    format!(
        "SELECT f.id, f.state, f.rec, c.folded
         FROM flows f JOIN flow_chunks c ON c.chunk = f.id >> {CHUNK_BITS}
         WHERE f.stream = ?1 AND f.flow_id = ?2"
    )
}

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

impl Credit<'_> {
    /// A whole stored record's credit.
    fn of<'v>(v: &View<'v>, flows: i64) -> Credit<'v> {
        Credit {
            last_seen_ns: time(v.last_seen),
            agency: v.agency,
            unit: v.unit,
            src: IpBlob::new(v.src_ip),
            dst: IpBlob::new(v.dst_ip),
            local_is_src: local_is_src(v.src_ip, v.dst_ip),
            site: v.site,
            site_source: v.site_source.map(site_source_code),
            bytes_up: count(v.bytes_up),
            bytes_down: count(v.bytes_down),
            flows,
        }
    }
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

/// A `flow_terms` entry: an address (BLOB) or a site key (TEXT). BLOB and
/// TEXT never compare equal in SQLite, so both kinds share the column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Term {
    Ip(IpBlob),
    Site(String),
}

/// Terms known to be stored for the chunks still open, so a repeated address
/// or site costs a hash lookup (no allocation) instead of an
/// `INSERT OR IGNORE`. Only filled after a commit, emptied on a failed call.
#[derive(Debug, Default)]
pub(crate) struct TermCache {
    chunks: HashMap<i64, ChunkTerms>,
}

impl TermCache {
    pub(crate) fn forget(&mut self, chunk: i64) {
        self.chunks.remove(&chunk);
    }
}

#[derive(Debug, Default)]
struct ChunkTerms {
    ips: std::collections::HashSet<IpBlob>,
    /// Sites as the records spell them (the key is derived only on a miss).
    sites: std::collections::HashSet<String>,
}

/// A chunk written by this call.
struct ChunkState {
    /// Ids used (offset of the next row).
    rows: i64,
    min_last_seen: i64,
    max_last_seen: i64,
    /// False for an older chunk whose flow was only updated.
    new_rows: bool,
}

/// State of one ingest call.
struct Call<'a, 'w> {
    /// Open chunk per agency of this call.
    open: HashMap<&'a str, i64>,
    chunks: HashMap<i64, ChunkState>,
    cache: &'w TermCache,
    /// Terms of this call not in the cache: (chunk, term, site as spelled).
    new_terms: std::collections::HashSet<(i64, Term, Option<String>)>,
    new_rows: i64,
    usage_1s: HashMap<UsageKey<'a>, [i64; 4]>,
    /// Credits of updated flows (new rows wait for the fold).
    top: TopSums,
}

impl Call<'_, '_> {
    fn ip_term(&mut self, chunk: i64, ip: IpBlob) {
        let known = self
            .cache
            .chunks
            .get(&chunk)
            .is_some_and(|t| t.ips.contains(&ip));
        if !known {
            self.new_terms.insert((chunk, Term::Ip(ip), None));
        }
    }

    fn site_term(&mut self, chunk: i64, site: &str) {
        let known = self
            .cache
            .chunks
            .get(&chunk)
            .is_some_and(|t| t.sites.contains(site));
        if !known {
            self.new_terms
                .insert((chunk, Term::Site(site_key(site)), Some(site.to_owned())));
        }
    }

    fn touch(&mut self, chunk: i64, rows: Option<i64>, last_seen: i64) {
        let e = self.chunks.entry(chunk).or_insert(ChunkState {
            rows: 0,
            min_last_seen: last_seen,
            max_last_seen: last_seen,
            new_rows: false,
        });
        if let Some(rows) = rows {
            e.rows = rows;
            e.new_rows = true;
        }
        e.min_last_seen = e.min_last_seen.min(last_seen);
        e.max_last_seen = e.max_last_seen.max(last_seen);
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
            strict_seq: true,
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
    /// Flows and usage counters are visible to readers on return, and so are
    /// the top hosts/sites of new flows while traffic is light; under heavy
    /// traffic those follow at the next fold (at most `aggregate_delay_ms`
    /// later while ingest continues; see [`Writer::fold_aggregates`]).
    /// Close the flows `node_id` left running in boots before `boot_epoch`:
    /// an agent that was killed never sent their final records. The last
    /// record kept becomes final with end reason `agent_restart`; no byte
    /// changes, so no aggregate changes either.
    pub fn close_interim(&mut self, node_id: &str, boot_epoch: u64) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut closed = 0u64;
        {
            let mut streams =
                tx.prepare_cached("SELECT id, boot_epoch FROM streams WHERE node_id = ?1")?;
            let earlier: Vec<i64> = streams
                .query_map([node_id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|(_, b)| id_back(*b) < boot_epoch)
                .map(|(s, _)| s)
                .collect();
            let mut open = tx.prepare_cached(
                "SELECT id, flow_id, rec FROM flows WHERE stream = ?1 AND state & 1 = 0",
            )?;
            let mut close = tx
                .prepare_cached("UPDATE flows SET state = state | 1 | 4, rec = ?2 WHERE id = ?1")?;
            let mut buf = Vec::new();
            for stream in earlier {
                let rows: Vec<(i64, i64, Vec<u8>)> = open
                    .query_map([stream], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                for (row, flow_id, rec) in rows {
                    let mut record = record::decode(&rec)?.to_record(id_back(flow_id), true)?;
                    record.end_reason = simpul_proto::EndReason::AgentRestart;
                    buf.clear();
                    let agency = record.agency.clone();
                    record::encode(&record, &agency, &mut buf);
                    close.execute(params![row, &buf[..]])?;
                    closed += 1;
                }
            }
        }
        tx.commit()?;
        Ok(closed)
    }

    pub fn ingest_many(
        &mut self,
        groups: &[NodeBatches<'_>],
    ) -> Result<Vec<Vec<BatchOutcome>>, StoreError> {
        let result = self.ingest_tx(groups);
        if result.is_err() {
            // Terms of the failed call may be cached as stored; forget all.
            self.terms.chunks.clear();
        }
        result
    }

    fn ingest_tx(
        &mut self,
        groups: &[NodeBatches<'_>],
    ) -> Result<Vec<Vec<BatchOutcome>>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut call = Call {
            open: HashMap::new(),
            chunks: HashMap::new(),
            cache: &self.terms,
            new_terms: Default::default(),
            new_rows: 0,
            usage_1s: HashMap::new(),
            top: TopSums::default(),
        };
        let mut outcomes = Vec::with_capacity(groups.len());
        {
            let mut st = FlowStmts {
                insert: tx.prepare_cached(INSERT_FLOW)?,
                update: tx.prepare_cached(UPDATE_FLOW)?,
                select: tx.prepare_cached(&select_flow())?,
                buf: Vec::with_capacity(256),
            };
            for g in groups {
                outcomes.push(ingest_group(&tx, &mut st, &mut call, g)?);
            }
        }
        write_usage(&tx, &call.usage_1s)?;
        call.top.write(&tx)?;
        write_chunks(&tx, &call.chunks)?;
        let mut terms: Vec<_> = call.new_terms.into_iter().collect();
        terms.sort_unstable();
        {
            let mut st = tx
                .prepare_cached("INSERT OR IGNORE INTO flow_terms (chunk, term) VALUES (?1, ?2)")?;
            for (chunk, term, _) in &terms {
                match term {
                    Term::Ip(ip) => st.execute(params![chunk, ip.as_slice()])?,
                    Term::Site(s) => st.execute(params![chunk, s])?,
                };
            }
        }
        self.pending_rows += call.new_rows;
        let due = self
            .last_fold
            .is_none_or(|t| t.elapsed().as_millis() >= u128::from(self.cfg.aggregate_delay_ms));
        let eager =
            u64::try_from(self.pending_rows).is_ok_and(|n| n <= self.cfg.aggregate_eager_rows);
        let fold_now =
            due || self.pending_rows >= FOLD_MAX_ROWS || (eager && self.pending_rows > 0);
        if fold_now {
            fold(&tx)?;
        }
        let full: Vec<i64> = call
            .chunks
            .iter()
            .filter(|(_, c)| c.rows >= CHUNK_ROWS)
            .map(|(&chunk, _)| chunk)
            .collect();
        tx.commit()?;
        if fold_now {
            self.last_fold = Some(Instant::now());
            self.pending_rows = 0;
        }
        for (chunk, term, site) in terms {
            let cached = self.terms.chunks.entry(chunk).or_default();
            match (term, site) {
                (Term::Ip(ip), _) => cached.ips.insert(ip),
                (Term::Site(_), Some(site)) => cached.sites.insert(site),
                (Term::Site(_), None) => false,
            };
        }
        // Full chunks get no more rows (updates add the odd term, and
        // INSERT OR IGNORE covers those).
        for chunk in full {
            self.terms.chunks.remove(&chunk);
        }
        Ok(outcomes)
    }

    /// Credit all pending flow rows to the top hosts/sites tables now. The
    /// writer thread should call this when ingest goes idle (e.g. after a
    /// second without batches) so the top lists include the last batches;
    /// while ingest runs it folds by itself every `aggregate_delay_ms`.
    pub fn fold_aggregates(&mut self) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = fold(&tx)?;
        tx.commit()?;
        self.last_fold = Some(Instant::now());
        self.pending_rows = 0;
        Ok(n)
    }
}

fn write_chunks(tx: &Transaction<'_>, chunks: &HashMap<i64, ChunkState>) -> Result<(), StoreError> {
    let mut grow = tx.prepare_cached(
        "UPDATE flow_chunks SET rows = ?2,
             min_last_seen = min(coalesce(min_last_seen, ?3), ?3),
             max_last_seen = max(coalesce(max_last_seen, ?4), ?4)
         WHERE chunk = ?1",
    )?;
    let mut widen = tx.prepare_cached(
        "UPDATE flow_chunks SET max_last_seen = max(coalesce(max_last_seen, ?2), ?2)
         WHERE chunk = ?1",
    )?;
    for (chunk, c) in chunks {
        if c.new_rows {
            grow.execute(params![chunk, c.rows, c.min_last_seen, c.max_last_seen])?;
        } else {
            widen.execute(params![chunk, c.max_last_seen])?;
        }
    }
    Ok(())
}

/// The chunk the next row of `agency` goes to, and its offset; opens a new
/// chunk when the agency has none or its last one is full.
fn open_chunk(
    tx: &Transaction<'_>,
    agency: &str,
    full: Option<i64>,
) -> Result<(i64, i64), StoreError> {
    if full.is_none() {
        let last: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT chunk, rows FROM flow_chunks WHERE agency = ?1
                 ORDER BY chunk DESC LIMIT 1",
            )?
            .query_row([agency], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((chunk, rows)) = last.filter(|&(_, rows)| rows < CHUNK_ROWS) {
            return Ok((chunk, rows));
        }
    }
    let chunk = read_state(tx, "next_chunk")?;
    write_state(tx, "next_chunk", chunk + 1)?;
    tx.prepare_cached(
        "INSERT INTO flow_chunks (chunk, agency, rows, folded) VALUES (?1, ?2, 0, 0)",
    )?
    .execute(params![chunk, agency])?;
    Ok((chunk, 0))
}

/// Credit every pending flow row (not credited by an update yet) and move
/// the chunks' watermarks. Returns the rows credited.
fn fold(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let pending: Vec<(i64, i64, i64)> = {
        let mut st =
            tx.prepare_cached("SELECT chunk, folded, rows FROM flow_chunks WHERE folded < rows")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut top = TopSums::default();
    let mut n = 0u64;
    {
        let mut st = tx
            .prepare_cached("SELECT rec FROM flows WHERE id >= ?1 AND id < ?2 AND state & 2 = 0")?;
        for &(chunk, from, to) in &pending {
            let base = chunk << CHUNK_BITS;
            let mut rows = st.query(params![base + from, base + to])?;
            while let Some(r) = rows.next()? {
                let v = record::decode(r.get_ref(0)?.as_blob()?)?;
                top.credit(Credit::of(&v, 1));
                n += 1;
            }
        }
    }
    top.write(tx)?;
    let mut st = tx.prepare_cached("UPDATE flow_chunks SET folded = ?2 WHERE chunk = ?1")?;
    for &(chunk, _, to) in &pending {
        st.execute(params![chunk, to])?;
    }
    Ok(n)
}

struct FlowStmts<'c> {
    insert: CachedStatement<'c>,
    update: CachedStatement<'c>,
    select: CachedStatement<'c>,
    /// Reused for every record's encoding.
    buf: Vec<u8>,
}

fn ingest_group<'a>(
    tx: &Transaction<'_>,
    st: &mut FlowStmts<'_>,
    call: &mut Call<'a, '_>,
    g: &NodeBatches<'a>,
) -> Result<Vec<BatchOutcome>, StoreError> {
    let mut outcomes = vec![BatchOutcome::Duplicate; g.batches.len()];
    let mut order: Vec<usize> = (0..g.batches.len()).collect();
    order.sort_by_key(|&i| (g.batches[i].boot_epoch, g.batches[i].seq));
    let mut find = tx.prepare_cached(
        "SELECT id, max_seq, dropped_batches, accept_gap FROM streams
         WHERE node_id = ?1 AND boot_epoch = ?2",
    )?;
    let mut create = tx.prepare_cached(
        "INSERT INTO streams (node_id, boot_epoch, max_seq, dropped_records, dropped_batches)
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
    )?;
    let mut advance = tx.prepare_cached(&format!(
        "UPDATE streams SET max_seq = ?2,
             dropped_records = min(dropped_records + ?3, {MAX_COUNT}),
             dropped_batches = max(dropped_batches, ?4), accept_gap = 0
         WHERE id = ?1"
    ))?;
    for i in order {
        let b = &g.batches[i];
        let known: Option<(i64, i64, i64, i64)> = find
            .query_row(params![g.node_id, id(b.boot_epoch)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let stream = match known {
            Some((stream, max, dropped, accept_gap)) => {
                // `simpul-collector accept-gap`: the next gap is accepted once.
                let strict = g.strict_seq && accept_gap == 0;
                if let Some(o) = sequence_check(
                    id_back(max),
                    id_back(dropped),
                    b.seq,
                    b.dropped_batches,
                    strict,
                ) {
                    outcomes[i] = o;
                    continue;
                }
                advance.execute(params![
                    stream,
                    id(b.seq),
                    count(b.dropped_records),
                    id(b.dropped_batches)
                ])?;
                stream
            }
            // A boot never seen starts wherever it starts: its first
            // batches may be gone (quota), or the collector's database
            // restored from before them.
            None => create.query_row(
                params![
                    g.node_id,
                    id(b.boot_epoch),
                    id(b.seq),
                    count(b.dropped_records),
                    id(b.dropped_batches)
                ],
                |r| r.get(0),
            )?,
        };
        for rec in &b.flows {
            ingest_flow(tx, st, call, stream, g.agency, rec)?;
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
        super::blocked::insert(tx, stream, g.agency, &b.blocked)?;
        outcomes[i] = BatchOutcome::Stored;
    }
    Ok(outcomes)
}

fn ingest_flow<'a>(
    tx: &Transaction<'_>,
    st: &mut FlowStmts<'_>,
    call: &mut Call<'a, '_>,
    stream: i64,
    agency: &'a str,
    rec: &FlowRecord,
) -> Result<(), StoreError> {
    let flow_id = id(rec.flow_id);
    let is_final = rec.kind == RecordKind::Final;
    let last_seen = time(rec.last_seen);
    let chunk = match call.open.get(agency) {
        Some(&c) if call.chunks.get(&c).is_none_or(|s| s.rows < CHUNK_ROWS) => c,
        full => {
            let (c, rows) = open_chunk(tx, agency, full.copied())?;
            call.open.insert(agency, c);
            call.touch(c, Some(rows), last_seen);
            c
        }
    };
    let offset = call.chunks.get(&chunk).map_or(0, |s| s.rows);
    st.buf.clear();
    record::encode(rec, agency, &mut st.buf);
    // Most flows arrive once, as a final record: try the insert first and
    // only look at the stored row when the flow is already known.
    let state = if is_final { STATE_FINAL } else { 0 };
    let inserted = st.insert.execute(params![
        (chunk << CHUNK_BITS) | offset,
        stream,
        flow_id,
        state,
        last_seen,
        &st.buf[..]
    ])?;
    if inserted == 1 {
        call.new_rows += 1;
        call.touch(chunk, Some(offset + 1), last_seen);
        add_terms(call, chunk, rec);
        return Ok(());
    }
    let mut old = st.select.query(params![stream, flow_id])?;
    let Some(o) = old.next()? else {
        return Err(StoreError::Corrupt {
            table: "flows",
            detail: format!("flow {flow_id} of stream {stream} conflicts but cannot be read"),
        });
    };
    let (old_row, old_state, chunk_folded): (i64, i64, i64) = (o.get(0)?, o.get(1)?, o.get(3)?);
    let prev = record::decode(o.get_ref(2)?.as_blob()?)?;
    // A closed flow never changes again (unless the collector closed it at
    // a restart), and an interim record older than the stored one (re-sent
    // out of order) would move counters backwards.
    let restart_closed = old_state & STATE_RESTART != 0;
    if (old_state & STATE_FINAL != 0 && !restart_closed)
        || (!is_final && rec.last_seen < prev.last_seen)
    {
        return Ok(());
    }
    let pending = (old_row & (CHUNK_ROWS - 1)) >= chunk_folded && old_state & STATE_FOLDED == 0;
    if pending {
        // The fold has not credited the row yet and now never will: credit
        // its stored state here, where that state is still known.
        call.top.credit(Credit::of(&prev, 1));
    }
    // Interim counters are cumulative: only the growth is new traffic.
    call.top.credit(Credit {
        last_seen_ns: last_seen,
        agency,
        unit: &rec.unit,
        src: IpBlob::new(rec.src_ip),
        dst: IpBlob::new(rec.dst_ip),
        local_is_src: local_is_src(rec.src_ip, rec.dst_ip),
        site: rec.site.as_deref(),
        site_source: rec.site_source.map(site_source_code),
        bytes_up: (count(rec.bytes_up) - count(prev.bytes_up)).max(0),
        bytes_down: (count(rec.bytes_down) - count(prev.bytes_down)).max(0),
        flows: 0,
    });
    st.buf.clear();
    // A flow stays with the agency it started under, whose chunk holds its
    // row (its node may have moved since); the growth above is credited
    // where it happens.
    let row_agency = prev.agency;
    // A late interim record of a flow closed at the restart keeps it closed.
    let still_restart_closed = restart_closed && !is_final;
    if prev.first_seen < rec.first_seen || still_restart_closed {
        let mut merged = rec.clone();
        // The flow started when its first record said, whatever later ones say.
        merged.first_seen = prev.first_seen.min(rec.first_seen);
        if still_restart_closed {
            merged.end_reason = simpul_proto::EndReason::AgentRestart;
        }
        record::encode(&merged, row_agency, &mut st.buf);
    } else {
        record::encode(rec, row_agency, &mut st.buf);
    }
    drop(old);
    let state = state
        | if still_restart_closed {
            STATE_FINAL | STATE_RESTART
        } else {
            0
        }
        | if pending {
            STATE_FOLDED
        } else {
            old_state & STATE_FOLDED
        };
    st.update
        .execute(params![old_row, state, last_seen, &st.buf[..]])?;
    let old_chunk = old_row >> CHUNK_BITS;
    call.touch(old_chunk, None, last_seen);
    add_terms(call, old_chunk, rec);
    Ok(())
}

fn add_terms(call: &mut Call<'_, '_>, chunk: i64, rec: &FlowRecord) {
    call.ip_term(chunk, IpBlob::new(rec.src_ip));
    call.ip_term(chunk, IpBlob::new(rec.dst_ip));
    if let Some(site) = &rec.site {
        call.site_term(chunk, site);
    }
}

/// Per-second sums of the call, rolled up into minutes and hours here so all
/// three resolutions commit together and always agree; the peaks too, read
/// against the per-second rows before this call's are added.
fn write_usage(
    tx: &Transaction<'_>,
    s1: &HashMap<UsageKey<'_>, [i64; 4]>,
) -> Result<(), StoreError> {
    let mut m1: HashMap<UsageKey<'_>, [i64; 4]> = HashMap::new();
    let mut h1: HashMap<UsageKey<'_>, [i64; 4]> = HashMap::new();
    let mut seconds: HashMap<(&str, i64), [i64; 2]> = HashMap::new();
    for (k, v) in s1 {
        add_into(m1.entry((floor(k.0, 60), k.1, k.2, k.3)).or_default(), *v);
        add_into(h1.entry((floor(k.0, 3600), k.1, k.2, k.3)).or_default(), *v);
        add_into(seconds.entry((k.1, k.0)).or_default(), [v[0], v[1]]);
    }
    super::peaks::update(tx, &seconds)?;
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

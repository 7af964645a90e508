//! The SQLite side of `search.rs`: flow pages, investigations, unit
//! figures and blocked attempts of an address, network, site or unit.
//!
//! Flows have no index on address or site (schema.rs says why): a read
//! picks the chunks of its time range and agency (`flow_chunks`), skips
//! those whose `flow_terms` lack the address, network or site, and decodes
//! the rest. Sorting by bytes and filters the terms cannot narrow read
//! every row of the range, so both are bounded (`MAX_PAGE_SCAN`).

use std::collections::HashMap;

use rusqlite::{params, params_from_iter, types::Value, Transaction};

use super::codec::{floor, id_back, ip_from_blob, site_range, time, IpBlob};
use super::ingest::{CHUNK_BITS, STATE_FINAL};
use super::query::u;
use super::record;
use super::search::{
    has_row_conditions, row_matches, too_broad, BlockedMatch, FlowPage, FlowSort, Investigation,
    Tally, TopRows, UnitUsage, MAX_INVESTIGATE_SCAN, MAX_PAGE_SCAN,
};
use super::{BlockedRow, FlowFilter, FlowRow, Reader, Step, StoreError, TopHost};

/// What a scan shows its visitor, which answers whether to go on.
enum Seen {
    /// The next chunk's newest last_seen (ns), before its rows are read.
    Chunk(i64),
    /// A matching row: its agent's boot and the flow.
    Row(u64, Box<FlowRow>),
    /// A chunk's newest rows ended at this last_seen with rows left at it:
    /// read those too?
    Ties(i64),
}

type Visit<'a> = dyn FnMut(Seen) -> Result<bool, StoreError> + 'a;

const UNIT_HOSTS: &str =
    "SELECT host, total(bytes_up) AS up, total(bytes_down) AS down, total(flows)
     FROM top_hosts_1m
     WHERE agency = ?1 AND unit = ?2 AND minute >= ?3 AND minute < ?4
     GROUP BY host ORDER BY up + down DESC, host LIMIT ?5";

impl Reader {
    /// The first page of [`Reader::flow_page`] (the flows API before paging).
    pub fn flows(&self, f: &FlowFilter) -> Result<Vec<FlowRow>, StoreError> {
        Ok(self.flow_page(f)?.rows)
    }

    /// Flows whose last packet is in [from, to) matching the filter, one row
    /// per flow (its latest record), in `f.sort` order after `f.cursor`.
    pub fn flow_page(&self, f: &FlowFilter) -> Result<FlowPage, StoreError> {
        check_filter(f)?;
        let mut top = TopRows::new(f);
        let mut scanned = 0u64;
        self.scan(f, true, &mut |step| match step {
            // Time order: a chunk whose newest row is older than a full
            // page's oldest adds nothing, nor does any after it.
            Seen::Chunk(max) => Ok(f.sort == FlowSort::Bytes || !top.closed_below(max as u64)),
            Seen::Ties(at) => Ok(top.open_at(at as u64)),
            Seen::Row(boot, row) => {
                scanned += 1;
                if scanned > MAX_PAGE_SCAN {
                    return Err(too_broad(f));
                }
                top.offer(boot, *row);
                Ok(true)
            }
        })?;
        Ok(top.page())
    }

    /// What the flows matching `f` did over its range: totals and the top
    /// `top` hosts, peers, sites and units. Reads the newest chunks first
    /// and stops at `MAX_INVESTIGATE_SCAN` rows (`complete` false).
    pub fn investigate(&self, f: &FlowFilter, top: usize) -> Result<Investigation, StoreError> {
        let f = FlowFilter {
            sort: FlowSort::Time,
            cursor: None,
            ..f.clone()
        };
        check_filter(&f)?;
        let mut tally = Tally::default();
        let mut complete = true;
        self.scan(&f, false, &mut |step| {
            let Seen::Row(_, row) = step else {
                return Ok(true);
            };
            if tally.scanned >= MAX_INVESTIGATE_SCAN {
                complete = false;
                return Ok(false);
            }
            tally.scanned += 1;
            tally.add(&row.record);
            Ok(true)
        })?;
        Ok(tally.finish(complete, top))
    }

    /// Visit the rows matching `f` chunk by chunk, newest chunk first,
    /// until the visitor says stop. `newest_only`: without row conditions
    /// and sorted by time, a chunk's newest page is all a page needs, and
    /// SQL picks it by (last_seen, row id), which needs no join; the rows
    /// it left at the page's oldest instant are read after, when the
    /// visitor says they could enter (rows tie there, and the page order
    /// breaks ties by flow identity, not row id).
    fn scan(
        &self,
        f: &FlowFilter,
        newest_only: bool,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let from_ns = time(f.from).saturating_mul(1_000_000_000);
        let mut to_ns = time(f.to).saturating_mul(1_000_000_000);
        // Time order: rows before the cursor only. Its flow's identity
        // decides at its instant (the bit-cast boot and flow id as SQL sees
        // them: AFTER_CURSOR compares them as unsigned).
        let (c_ls, c_node, c_boot, c_flow) = match (f.sort, &f.cursor) {
            (FlowSort::Time, Some(c)) => {
                to_ns = to_ns.min(time(c.key).saturating_add(1));
                (
                    time(c.key),
                    c.flow.node.as_str(),
                    c.flow.boot as i64,
                    c.flow.flow_id as i64,
                )
            }
            _ => (i64::MAX, "", 0, 0),
        };
        if to_ns <= from_ns {
            return Ok(());
        }
        // One snapshot for all the chunk reads.
        let tx = self.conn.unchecked_transaction()?;
        let chunks = matching_chunks(&tx, f, from_ns, to_ns)?;
        let rows_only = newest_only && f.sort == FlowSort::Time && !has_row_conditions(f);
        let mut scan = tx.prepare_cached(&if rows_only {
            format!(
                "{} ORDER BY last_seen DESC, id DESC LIMIT ?9",
                newest_in_chunk()
            )
        } else {
            newest_in_chunk()
        })?;
        let want = super::search::page_limit(f) as i64 + 1;
        let mut streams = Streams::new(&tx)?;
        for (chunk, max_last_seen) in chunks {
            if !visit(Seen::Chunk(max_last_seen))? {
                break;
            }
            let (lo, hi) = (chunk << CHUNK_BITS, (chunk + 1) << CHUNK_BITS);
            let mut rows = if rows_only {
                scan.query(params![
                    lo, hi, from_ns, to_ns, c_ls, c_node, c_boot, c_flow, want
                ])?
            } else {
                scan.query(params![
                    lo, hi, from_ns, to_ns, c_ls, c_node, c_boot, c_flow
                ])?
            };
            let Some(last) = visit_rows(f, &mut rows, &mut streams, visit)? else {
                return Ok(());
            };
            // A full chunk page: rows at its oldest instant with lower ids
            // were left out, and may rank above those kept.
            if rows_only && last.count >= want && visit(Seen::Ties(last.last_seen))? {
                let mut ties = tx.prepare_cached(&ties_in_chunk())?;
                let mut rows = ties.query(params![
                    lo,
                    last.id,
                    last.last_seen,
                    c_ls,
                    c_node,
                    c_boot,
                    c_flow
                ])?;
                if visit_rows(f, &mut rows, &mut streams, visit)?.is_none() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Bytes per unit of `agency` over [from, to), widened to whole steps.
    pub fn unit_usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<Vec<UnitUsage>, StoreError> {
        let s = time(step.secs());
        let from = floor(time(from), s);
        let to = floor(time(to).saturating_add(s - 1), s).max(from);
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT unit, total(bytes_in) AS i, total(bytes_out) AS o,
                    total(CASE WHEN scope = 0 THEN bytes_in ELSE 0 END),
                    total(CASE WHEN scope = 0 THEN bytes_out ELSE 0 END)
             FROM {} WHERE agency = ?1 AND ts >= ?2 AND ts < ?3
             GROUP BY unit ORDER BY i + o DESC, unit",
            step.table()
        ))?;
        let rows = st.query_map(params![agency, from, to], |r| {
            Ok(UnitUsage {
                unit: r.get(0)?,
                bytes_in: u(r.get(1)?),
                bytes_out: u(r.get(2)?),
                internet_bytes_in: u(r.get(3)?),
                internet_bytes_out: u(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One unit's agency-side hosts by bytes over the minutes overlapping
    /// [from, to) (index `top_hosts_unit`).
    pub fn unit_hosts(
        &self,
        agency: &str,
        unit: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        let mut st = self.conn.prepare_cached(UNIT_HOSTS)?;
        let mut rows = st.query(params![
            agency,
            unit,
            floor(time(from), 60),
            time(to),
            limit.min(super::query::MAX_FLOWS) as i64
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(TopHost {
                host: ip_from_blob(&r.get::<_, Vec<u8>>(0)?, "top_hosts_1m")?.to_string(),
                agency: agency.to_string(),
                unit: unit.to_string(),
                bytes_up: u(r.get(1)?),
                bytes_down: u(r.get(2)?),
                flows: u(r.get(3)?),
            });
        }
        Ok(out)
    }

    /// Blocked attempts in [from, to) of a client network, a target (and
    /// its subdomains) or a unit, newest first. A client network reads
    /// index `blocked_client`; the others the agency's or all attempts of
    /// the range.
    pub fn blocked_matching(
        &self,
        from: u64,
        to: u64,
        agency: Option<&str>,
        m: &BlockedMatch,
        limit: usize,
    ) -> Result<Vec<BlockedRow>, StoreError> {
        if to <= from {
            return Ok(Vec::new());
        }
        let (sql, args) = blocked_query(from, to, agency, m, limit);
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(super::blocked::row_of(r)?);
        }
        Ok(out)
    }
}

/// The node and boot of each stream, read once per scan.
struct Streams<'t> {
    of: rusqlite::CachedStatement<'t>,
    known: HashMap<i64, (String, u64)>,
}

impl<'t> Streams<'t> {
    fn new(tx: &'t Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Streams {
            of: tx.prepare_cached("SELECT node_id, boot_epoch FROM streams WHERE id = ?1")?,
            known: HashMap::new(),
        })
    }

    fn get(&mut self, stream: i64) -> Result<(String, u64), StoreError> {
        if let Some(s) = self.known.get(&stream) {
            return Ok(s.clone());
        }
        let s: (String, i64) = self
            .of
            .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let s = (s.0, id_back(s.1));
        self.known.insert(stream, s.clone());
        Ok(s)
    }
}

/// Where a chunk's rows ended: how many, the last one's id and last_seen.
struct Last {
    count: i64,
    id: i64,
    last_seen: i64,
}

/// Show the rows of one chunk query (`id, stream, flow_id, state, rec,
/// last_seen`) that pass the filter to the visitor. None: it said stop.
fn visit_rows(
    f: &FlowFilter,
    rows: &mut rusqlite::Rows<'_>,
    streams: &mut Streams<'_>,
    visit: &mut Visit<'_>,
) -> Result<Option<Last>, StoreError> {
    let mut last = Last {
        count: 0,
        id: 0,
        last_seen: 0,
    };
    while let Some(r) = rows.next()? {
        last = Last {
            count: last.count + 1,
            id: r.get(0)?,
            last_seen: r.get(5)?,
        };
        let v = record::decode(r.get_ref(4)?.as_blob()?)?;
        let state: i64 = r.get(3)?;
        let record = v.to_record(id_back(r.get(2)?), state & STATE_FINAL != 0)?;
        if !row_matches(f, &record) {
            continue;
        }
        let (node_id, boot) = streams.get(r.get(1)?)?;
        if !visit(Seen::Row(boot, Box::new(FlowRow { node_id, record })))? {
            return Ok(None);
        }
    }
    Ok(Some(last))
}

/// Rows of one chunk (ids ?1..?2) in [?3, ?4) before the cursor.
fn newest_in_chunk() -> String {
    format!(
        "SELECT id, stream, flow_id, state, rec, last_seen FROM flows
         WHERE id >= ?1 AND id < ?2 AND last_seen >= ?3 AND last_seen < ?4 AND {}",
        before_cursor(5)
    )
}

/// The rows at one instant ?3 of a chunk's ids ?1..?2 (those below the
/// rows its newest page kept), before the cursor.
fn ties_in_chunk() -> String {
    format!(
        "SELECT id, stream, flow_id, state, rec, last_seen FROM flows
         WHERE id >= ?1 AND id < ?2 AND last_seen = ?3 AND {}",
        before_cursor(4)
    )
}

/// A row before the cursor (parameters from ?n: last_seen, node, boot,
/// flow id): before its instant, or at it of a flow whose identity is
/// lower. Boots and flow ids are u64 stored bit-cast, so `(x < 0, x)`
/// orders them as unsigned. The stream subqueries run only for rows at the
/// cursor's instant, and once.
fn before_cursor(n: usize) -> String {
    let (ls, node, boot, flow) = (n, n + 1, n + 2, n + 3);
    format!(
        "(last_seen < ?{ls} OR (last_seen = ?{ls} AND (
           stream IN (SELECT id FROM streams WHERE node_id < ?{node}
             OR (node_id = ?{node} AND (boot_epoch < 0, boot_epoch) < (?{boot} < 0, ?{boot})))
           OR (stream IN (SELECT id FROM streams WHERE node_id = ?{node} AND boot_epoch = ?{boot})
             AND (flow_id < 0, flow_id) < (?{flow} < 0, ?{flow})))))"
    )
}

/// The SQL of [`Reader::blocked_matching`] and its parameters, built per
/// call so the planner sees only the conditions it can index.
fn blocked_query(
    from: u64,
    to: u64,
    agency: Option<&str>,
    m: &BlockedMatch,
    limit: usize,
) -> (String, Vec<Value>) {
    // A client's attempts are few beside the range's: with a client, the
    // other terms are written `+x` so that only `blocked_client` can serve
    // (SQLite without statistics would often pick the time index). A host
    // seeks (client, last_seen) exactly; a network reads its client range.
    let (time_col, agency_col) = match m.client {
        Some(n) if !n.is_host() => ("+b.last_seen", "+b.agency"),
        Some(_) => ("b.last_seen", "+b.agency"),
        None => ("b.last_seen", "b.agency"),
    };
    let mut sql = format!("{time_col} >= ? AND {time_col} < ?");
    let mut args = vec![
        Value::Integer(time(from).saturating_mul(1_000_000_000)),
        Value::Integer(time(to).saturating_mul(1_000_000_000)),
    ];
    if let Some(a) = agency {
        sql.push_str(&format!(" AND {agency_col} = ?"));
        args.push(Value::Text(a.to_string()));
    }
    if let Some(n) = m.client {
        let (lo, hi) = n.blob_range();
        if n.is_host() {
            sql.push_str(" AND b.client = ?");
            args.push(Value::Blob(lo));
        } else {
            sql.push_str(" AND b.client >= ? AND b.client <= ?");
            args.push(Value::Blob(lo));
            args.push(Value::Blob(hi));
        }
    }
    if let Some(u) = &m.unit {
        sql.push_str(" AND b.unit = ?");
        args.push(Value::Text(u.clone()));
    }
    if let Some(t) = &m.target {
        // The exact name or any subdomain; LIKE's wildcards escaped.
        let t = t.trim_end_matches('.').to_ascii_lowercase();
        let esc = t
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        sql.push_str(" AND (lower(b.target) = ? OR lower(b.target) LIKE ? ESCAPE '\\')");
        args.push(Value::Text(t));
        args.push(Value::Text(format!("%.{esc}")));
    }
    args.push(Value::Integer(limit.min(super::MAX_BLOCKED) as i64));
    let sql = format!(
        "SELECT {} FROM blocked_attempts b JOIN streams s ON s.id = b.stream
         WHERE {sql} ORDER BY b.last_seen DESC, b.id DESC LIMIT ?",
        super::blocked::ROW_COLUMNS
    );
    (sql, args)
}

/// Refuse what no store can answer: an empty site, a cursor of another sort.
fn check_filter(f: &FlowFilter) -> Result<(), StoreError> {
    if f.site.as_deref().map(|s| s.trim_end_matches('.')) == Some("") {
        return Err(StoreError::Invalid {
            what: "site filter",
            value: f.site.clone().unwrap_or_default(),
            reason: "is empty",
        });
    }
    if let Some(c) = &f.cursor {
        if c.sort != f.sort {
            return Err(StoreError::Invalid {
                what: "cursor",
                value: c.encode(),
                reason: "belongs to another sort order: start again without it",
            });
        }
    }
    Ok(())
}

/// The chunks of [from_ns, to_ns) and the filter's agency whose terms hold
/// its address, network, peer and site, newest first.
fn matching_chunks(
    tx: &Transaction<'_>,
    f: &FlowFilter,
    from_ns: i64,
    to_ns: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut chunks: Vec<(i64, i64)> = {
        let mut st = tx.prepare_cached(
            "SELECT chunk, max_last_seen FROM flow_chunks
             WHERE (?3 IS NULL OR agency = ?3)
               AND max_last_seen >= ?1 AND min_last_seen < ?2",
        )?;
        let rows = st.query_map(params![from_ns, to_ns, f.agency], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    chunks.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut has_ip =
        tx.prepare_cached("SELECT 1 FROM flow_terms WHERE chunk = ?1 AND term = ?2")?;
    let mut has_range = tx.prepare_cached(
        "SELECT 1 FROM flow_terms WHERE chunk = ?1 AND term >= ?2 AND term <= ?3 LIMIT 1",
    )?;
    let mut has_site = tx.prepare_cached(
        "SELECT 1 FROM flow_terms WHERE chunk = ?1 AND term >= ?2 AND term < ?3 LIMIT 1",
    )?;
    let host = f.host.map(IpBlob::new);
    let nets: Vec<(Vec<u8>, Vec<u8>)> = [f.net, f.peer]
        .into_iter()
        .flatten()
        .map(|n| n.blob_range())
        .collect();
    let site = f
        .site
        .as_deref()
        .map(|s| site_range(s.trim_end_matches('.')));
    let mut out = Vec::with_capacity(chunks.len());
    for (chunk, max) in chunks {
        if let Some(h) = &host {
            if !has_ip.exists(params![chunk, h.as_slice()])? {
                continue;
            }
        }
        let mut ok = true;
        for (lo, hi) in &nets {
            if !has_range.exists(params![chunk, lo, hi])? {
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        if let Some((lo, hi)) = &site {
            if !has_site.exists(params![chunk, lo, hi])? {
                continue;
            }
        }
        out.push((chunk, max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FlowCursor, FlowFilter, FlowSort, Net, Store, StoreConfig};

    /// The plan SQLite picks, one detail line per step.
    fn plan(r: &Reader, sql: &str, args: Vec<Value>) -> String {
        let mut st = r
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = st
            .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
    }

    /// 70 000 flows of one agency: two chunks whose time ranges overlap
    /// (arrival order is not time order), many flows per instant and per
    /// byte count. Every page order must still yield each flow once.
    #[test]
    fn pages_cross_chunks_and_return_every_flow_once() {
        use simpul_proto::wire::Batch;
        use simpul_proto::{EndReason, FlowRecord, RecordKind, TrafficScope};
        const N: u64 = 70_000;
        const T0: u64 = 1_764_236_100;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let mut w = store.writer().unwrap();
        let r = store.reader().unwrap();
        let flow = |i: u64| FlowRecord {
            flow_id: i + 1,
            kind: RecordKind::Final,
            end_reason: EndReason::Fin,
            proto: if i.is_multiple_of(10) { "udp" } else { "tcp" }.into(),
            src_ip: format!("10.1.{}.{}", (i / 250) % 4, i % 250)
                .parse()
                .unwrap(),
            src_port: Some(40_000),
            dst_ip: "203.0.113.1".parse().unwrap(),
            dst_port: Some(443),
            vlan: None,
            vlan_inner: None,
            packets_up: 1,
            bytes_up: 100 + (i * 7) % 997,
            packets_down: 1,
            bytes_down: 0,
            // A permutation of 7 000 instants, ten flows each.
            first_seen: T0 * 1_000_000_000,
            last_seen: (T0 + (i * 7919) % (N / 10)) * 1_000_000_000,
            tcp_flags_up: None,
            tcp_flags_down: None,
            sni: None,
            http_host: None,
            dns_query: None,
            site: None,
            site_source: None,
            agency: "dinkes".into(),
            unit: if i.is_multiple_of(7) { "gizi" } else { "umum" }.into(),
            scope: TrafficScope::Internet,
        };
        let batches: Vec<Batch> = (0..N / 5000)
            .map(|b| Batch {
                boot_epoch: 1,
                seq: b + 1,
                sealed_ms: 0,
                flows: (b * 5000..(b + 1) * 5000).map(flow).collect(),
                counters: vec![],
                blocked: vec![],
                dropped_records: 0,
                dropped_batches: 0,
            })
            .collect();
        w.ingest("dinkes-01", "dinkes", &batches).unwrap();
        let chunks: i64 = r
            .conn
            .query_row("SELECT count(*) FROM flow_chunks", [], |x| x.get(0))
            .unwrap();
        assert_eq!(chunks, 2);
        let all = |f: FlowFilter| {
            let mut f = FlowFilter {
                from: T0,
                to: T0 + N,
                limit: 1000,
                ..f
            };
            let mut out = Vec::new();
            loop {
                let page = r.flow_page(&f).unwrap();
                assert!(page.rows.len() <= 1000);
                out.extend(page.rows);
                match page.next {
                    Some(c) => f.cursor = FlowCursor::decode(&c),
                    None => return out,
                }
            }
        };
        let rows = all(FlowFilter::default());
        let ids: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.record.flow_id).collect();
        assert_eq!((rows.len(), ids.len()), (N as usize, N as usize));
        assert!(rows
            .windows(2)
            .all(|w| w[0].record.last_seen >= w[1].record.last_seen));
        let gizi = all(FlowFilter {
            unit: Some("gizi".into()),
            sort: FlowSort::Bytes,
            ..FlowFilter::default()
        });
        let want = (0..N).filter(|i| i % 7 == 0).count();
        let ids: std::collections::BTreeSet<u64> = gizi.iter().map(|r| r.record.flow_id).collect();
        assert_eq!((gizi.len(), ids.len()), (want, want));
        assert!(gizi.iter().all(|r| r.record.unit == "gizi"));
        assert!(gizi
            .windows(2)
            .all(|w| w[0].record.bytes_total() >= w[1].record.bytes_total()));
        // A network and a protocol, by time.
        let udp = all(FlowFilter {
            net: Some(Net::parse("10.1.2.0/24").unwrap()),
            proto: Some("udp".into()),
            ..FlowFilter::default()
        });
        let want = (0..N).filter(|i| i % 10 == 0 && (i / 250) % 4 == 2).count();
        assert_eq!(udp.len(), want);
        let inv = r
            .investigate(
                &FlowFilter {
                    from: T0,
                    to: T0 + N,
                    net: Some(Net::parse("10.1.2.0/24").unwrap()),
                    ..FlowFilter::default()
                },
                5,
            )
            .unwrap();
        assert_eq!(
            inv.flows,
            (0..N).filter(|i| (i / 250) % 4 == 2).count() as u64
        );
        assert!(inv.complete);
        assert_eq!(inv.peers.len(), 1);
        assert_eq!(inv.hosts.len(), 5);
    }

    #[test]
    fn investigation_reads_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let r = store.reader().unwrap();
        let net = Net::parse("10.1.0.0/16").unwrap();
        let by_client = BlockedMatch {
            client: Some(net),
            ..BlockedMatch::default()
        };
        for agency in [None, Some("dinkes")] {
            let (sql, args) = blocked_query(0, 10, agency, &by_client, 10);
            let p = plan(&r, &sql, args);
            assert!(
                p.contains("USING INDEX blocked_client (client>? AND client<?)"),
                "{p}"
            );
            let host = BlockedMatch {
                client: Some(Net::parse("10.1.2.3").unwrap()),
                ..BlockedMatch::default()
            };
            let (sql, args) = blocked_query(0, 10, agency, &host, 10);
            let p = plan(&r, &sql, args);
            assert!(
                p.contains("USING INDEX blocked_client (client=? AND last_seen>? AND last_seen<?)"),
                "{p}"
            );
        }
        // A flow page reads each chunk by row id (no index on last_seen,
        // schema.rs says why), and the cursor's stream lookups by the
        // streams' unique key, never a scan of flows.
        let cursor = || {
            vec![
                Value::Integer(0),
                Value::Integer(1 << 16),
                Value::Integer(0),
                Value::Integer(10),
                Value::Integer(5),
                Value::Text("dinkes-01".into()),
                Value::Integer(-3),
                Value::Integer(7),
            ]
        };
        let mut newest = cursor();
        newest.push(Value::Integer(101));
        for (sql, args) in [
            (
                format!(
                    "{} ORDER BY last_seen DESC, id DESC LIMIT ?9",
                    newest_in_chunk()
                ),
                newest,
            ),
            (newest_in_chunk(), cursor()),
            (ties_in_chunk(), cursor()[..7].to_vec()),
        ] {
            let p = plan(&r, &sql, args);
            assert!(
                p.contains("SEARCH flows USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
                "{p}"
            );
            assert!(!p.contains("SCAN flows"), "{p}");
            assert!(!p.contains("SCAN streams"), "{p}");
        }
        let (sql, args) = blocked_query(0, 10, Some("dinkes"), &BlockedMatch::default(), 10);
        let p = plan(&r, &sql, args);
        assert!(p.contains("USING INDEX blocked_agency_time"), "{p}");
        let p = plan(
            &r,
            UNIT_HOSTS,
            vec![
                Value::Text("dinkes".into()),
                Value::Text("gizi".into()),
                Value::Integer(0),
                Value::Integer(60),
                Value::Integer(10),
            ],
        );
        assert!(p.contains("USING INDEX top_hosts_unit"), "{p}");
        assert!(!p.contains("SCAN top_hosts_1m"), "{p}");
        let sql = format!(
            "SELECT unit, total(bytes_in) FROM {} WHERE agency = ?1 AND ts >= ?2 AND ts < ?3
             GROUP BY unit",
            Step::Minute.table()
        );
        let p = plan(
            &r,
            &sql,
            vec![
                Value::Text("dinkes".into()),
                Value::Integer(0),
                Value::Integer(60),
            ],
        );
        assert!(
            p.contains("SEARCH usage_1m USING PRIMARY KEY (agency=? AND ts>? AND ts<?)"),
            "{p}"
        );
    }
}

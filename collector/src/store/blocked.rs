//! Blocked attempts: rows of `blocked_attempts` (see schema.rs), written by
//! ingest in the batch's transaction and read by `/api/v1/blocked`.

use rusqlite::{params, params_from_iter, types::Value, Transaction};
use serde::{Deserialize, Serialize};
use simpul_proto::{BlockMethod, BlockedAttempt};

use super::codec::{
    block_method_code, block_method_from, ip_from_blob, rfc_ns, rfc_s, time, IpBlob,
};
use super::{Reader, StoreError};

/// Page limit of the list and of each summary list (API.md: max 1000).
pub const MAX_BLOCKED: usize = 1000;

const INSERT: &str = "INSERT INTO blocked_attempts
    (stream, agency, unit, first_seen, last_seen, client, method, target, server, port,
     proto, rule, list, attempts)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Store the blocked attempts of one batch of `stream`, attributed to the
/// node's enrolled `agency` (the caller runs this inside the ingest
/// transaction, after the batch passed dedup).
pub(crate) fn insert(
    tx: &Transaction<'_>,
    stream: i64,
    agency: &str,
    attempts: &[BlockedAttempt],
) -> Result<(), StoreError> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(INSERT)?;
    for a in attempts {
        let client = IpBlob::new(a.client);
        let server = a.server.map(IpBlob::new);
        st.execute(params![
            stream,
            agency,
            a.unit,
            time(a.first_seen),
            time(a.last_seen),
            client.as_slice(),
            block_method_code(a.method),
            a.target,
            server.as_ref().map(IpBlob::as_slice),
            a.port,
            a.proto,
            a.rule,
            a.list,
            // At least 1: validation refuses 0, and a row always is one attempt.
            i64::from(a.attempts.max(1)),
        ])?;
    }
    Ok(())
}

/// `GET /api/v1/blocked` and `/api/v1/blocked/summary` parameters. `from` and
/// `to` are Unix seconds and select records by their last attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockedFilter {
    pub from: u64,
    pub to: u64,
    pub agency: Option<String>,
    pub node: Option<String>,
    pub method: Option<BlockMethod>,
    /// At most [`MAX_BLOCKED`]; 0 means the default (100 rows for the list,
    /// 10 entries per summary list).
    pub limit: usize,
}

/// One stored record: the node that reported it and the record as sent
/// (its `agency` is the node's enrolled agency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedRow {
    pub node_id: String,
    #[serde(flatten)]
    pub attempt: BlockedAttempt,
}

/// Attempts per agency over the summary's range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedAgency {
    pub agency: String,
    pub attempts: u64,
    /// Distinct clients that tried.
    pub clients: u64,
}

/// A target by attempts. `method`, `rule` and `list` are those of its newest
/// record (one target may be stopped by DNS first and by SNI later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedTarget {
    pub target: String,
    pub attempts: u64,
    pub clients: u64,
    pub method: BlockMethod,
    pub rule: String,
    pub list: String,
    pub last_seen: String,
}

/// A client by attempts; `unit` is that of its newest record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedClient {
    pub client: String,
    pub agency: String,
    pub unit: String,
    pub attempts: u64,
    /// Distinct targets it tried.
    pub targets: u64,
    pub last_seen: String,
}

/// `GET /api/v1/blocked/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedSummary {
    pub from: String,
    pub to: String,
    /// Sum of attempts and number of records over the range.
    pub attempts: u64,
    pub records: u64,
    pub agencies: Vec<BlockedAgency>,
    pub targets: Vec<BlockedTarget>,
    pub clients: Vec<BlockedClient>,
}

/// The WHERE clause of a filter and its parameters. Built per call so the
/// planner sees `agency = ?` (index `blocked_agency_time`) or only the time
/// range (`blocked_time`), never an `? IS NULL OR` it cannot index.
fn where_clause(f: &BlockedFilter) -> (String, Vec<Value>) {
    let from_ns = time(f.from).saturating_mul(1_000_000_000);
    let to_ns = time(f.to).saturating_mul(1_000_000_000);
    let mut sql = String::from("b.last_seen >= ? AND b.last_seen < ?");
    let mut args = vec![Value::Integer(from_ns), Value::Integer(to_ns)];
    if let Some(a) = &f.agency {
        sql.push_str(" AND b.agency = ?");
        args.push(Value::Text(a.clone()));
    }
    if let Some(n) = &f.node {
        sql.push_str(" AND b.stream IN (SELECT id FROM streams WHERE node_id = ?)");
        args.push(Value::Text(n.clone()));
    }
    if let Some(m) = f.method {
        sql.push_str(" AND b.method = ?");
        args.push(Value::Integer(block_method_code(m).into()));
    }
    (sql, args)
}

fn limit(f: &BlockedFilter, default: usize) -> i64 {
    match f.limit {
        0 => default as i64,
        n => n.min(MAX_BLOCKED) as i64,
    }
}

/// Sums from `total()` are floats (exact below 2^53, far above any sum of
/// u32 attempts here).
fn u(v: f64) -> u64 {
    v as u64
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The columns of [`ROW_COLUMNS`] as a row.
pub(crate) fn row_of(r: &rusqlite::Row<'_>) -> Result<BlockedRow, StoreError> {
    let server: Option<Vec<u8>> = r.get(8)?;
    let port: Option<i64> = r.get(9)?;
    Ok(BlockedRow {
        node_id: r.get(0)?,
        attempt: BlockedAttempt {
            agency: r.get(1)?,
            unit: r.get(2)?,
            first_seen: nonneg(r.get(3)?),
            last_seen: nonneg(r.get(4)?),
            client: ip_from_blob(&r.get::<_, Vec<u8>>(5)?, "blocked_attempts")?,
            method: block_method_from(r.get(6)?)?,
            target: r.get(7)?,
            server: server
                .map(|b| ip_from_blob(&b, "blocked_attempts"))
                .transpose()?,
            port: port
                .map(|p| {
                    u16::try_from(p).map_err(|_| StoreError::Corrupt {
                        table: "blocked_attempts",
                        detail: format!("port {p}"),
                    })
                })
                .transpose()?,
            proto: r.get(10)?,
            rule: r.get(11)?,
            list: r.get(12)?,
            attempts: u32::try_from(r.get::<_, i64>(13)?).unwrap_or(u32::MAX),
        },
    })
}

/// What [`row_of`] reads, from `blocked_attempts b JOIN streams s`.
pub(crate) const ROW_COLUMNS: &str =
    "s.node_id, b.agency, b.unit, b.first_seen, b.last_seen, b.client, b.method,
     b.target, b.server, b.port, b.proto, b.rule, b.list, b.attempts";

impl Reader {
    /// Blocked attempts whose last attempt is in [from, to), newest first.
    pub fn blocked(&self, f: &BlockedFilter) -> Result<Vec<BlockedRow>, StoreError> {
        if f.to <= f.from {
            return Ok(Vec::new());
        }
        let (cond, mut args) = where_clause(f);
        args.push(Value::Integer(limit(f, 100)));
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT s.node_id, b.agency, b.unit, b.first_seen, b.last_seen, b.client, b.method,
                    b.target, b.server, b.port, b.proto, b.rule, b.list, b.attempts
             FROM blocked_attempts b JOIN streams s ON s.id = b.stream
             WHERE {cond} ORDER BY b.last_seen DESC, b.id DESC LIMIT ?"
        ))?;
        let mut rows = st.query(params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(row_of(r)?);
        }
        Ok(out)
    }

    /// Attempts over [from, to): totals, per agency, and the top targets and
    /// clients by attempts (at most `limit` each, default 10).
    pub fn blocked_summary(&self, f: &BlockedFilter) -> Result<BlockedSummary, StoreError> {
        let mut out = BlockedSummary {
            from: rfc_s(time(f.from)),
            to: rfc_s(time(f.to)),
            attempts: 0,
            records: 0,
            agencies: Vec::new(),
            targets: Vec::new(),
            clients: Vec::new(),
        };
        if f.to <= f.from {
            return Ok(out);
        }
        let (cond, args) = where_clause(f);
        let n = limit(f, 10);
        // One snapshot for the three reads.
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(&format!(
                "SELECT b.agency, total(b.attempts) AS n, count(*), count(DISTINCT b.client)
                 FROM blocked_attempts b WHERE {cond}
                 GROUP BY b.agency ORDER BY n DESC, b.agency"
            ))?;
            let mut rows = st.query(params_from_iter(args.iter()))?;
            while let Some(r) = rows.next()? {
                let attempts = u(r.get(1)?);
                out.attempts = out.attempts.saturating_add(attempts);
                out.records = out.records.saturating_add(nonneg(r.get(2)?));
                out.agencies.push(BlockedAgency {
                    agency: r.get(0)?,
                    attempts,
                    clients: nonneg(r.get(3)?),
                });
            }
        }
        // With exactly one max() in the query, SQLite takes the bare columns
        // (method, rule, list; unit) from the row holding that maximum: the
        // newest record of the group.
        {
            let mut st = tx.prepare_cached(&format!(
                "SELECT b.target, total(b.attempts) AS n, count(DISTINCT b.client),
                        max(b.last_seen), b.method, b.rule, b.list
                 FROM blocked_attempts b WHERE {cond}
                 GROUP BY b.target ORDER BY n DESC, b.target LIMIT ?"
            ))?;
            let mut a = args.clone();
            a.push(Value::Integer(n));
            let mut rows = st.query(params_from_iter(a))?;
            while let Some(r) = rows.next()? {
                out.targets.push(BlockedTarget {
                    target: r.get(0)?,
                    attempts: u(r.get(1)?),
                    clients: nonneg(r.get(2)?),
                    last_seen: rfc_ns(r.get(3)?),
                    method: block_method_from(r.get(4)?)?,
                    rule: r.get(5)?,
                    list: r.get(6)?,
                });
            }
        }
        {
            let mut st = tx.prepare_cached(&format!(
                "SELECT b.client, b.agency, total(b.attempts) AS n, count(DISTINCT b.target),
                        max(b.last_seen), b.unit
                 FROM blocked_attempts b WHERE {cond}
                 GROUP BY b.agency, b.client ORDER BY n DESC, b.agency, b.client LIMIT ?"
            ))?;
            let mut a = args;
            a.push(Value::Integer(n));
            let mut rows = st.query(params_from_iter(a))?;
            while let Some(r) = rows.next()? {
                out.clients.push(BlockedClient {
                    client: ip_from_blob(&r.get::<_, Vec<u8>>(0)?, "blocked_attempts")?.to_string(),
                    agency: r.get(1)?,
                    attempts: u(r.get(2)?),
                    targets: nonneg(r.get(3)?),
                    last_seen: rfc_ns(r.get(4)?),
                    unit: r.get(5)?,
                });
            }
        }
        Ok(out)
    }
}

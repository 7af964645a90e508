//! Blocked attempts per category (the rule's list: a named list such as
//! `judi`, or `domains`, `cidrs`, `ports`, `dot`, `doh`, `quic`) over a
//! range: the monthly report's "blocked attempts by category".

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::codec::time;
use super::{BlockedFilter, BlockedRow, Reader, StoreError};

/// One category's attempts over a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedCategory {
    pub category: String,
    pub attempts: u64,
    /// Distinct clients and targets.
    pub clients: u64,
    pub targets: u64,
}

/// Categories by attempts (most first), from rows already read: what a
/// store without its own query answers.
pub fn categories_of(rows: &[BlockedRow]) -> Vec<BlockedCategory> {
    use std::collections::{BTreeMap, HashSet};
    let mut by: BTreeMap<&str, (u64, HashSet<std::net::IpAddr>, HashSet<&str>)> = BTreeMap::new();
    for r in rows {
        let e = by.entry(r.attempt.list.as_str()).or_default();
        e.0 += u64::from(r.attempt.attempts);
        e.1.insert(r.attempt.client);
        e.2.insert(r.attempt.target.as_str());
    }
    let mut out: Vec<BlockedCategory> = by
        .into_iter()
        .map(|(c, (attempts, clients, targets))| BlockedCategory {
            category: c.to_string(),
            attempts,
            clients: clients.len() as u64,
            targets: targets.len() as u64,
        })
        .collect();
    out.sort_by(|a, b| {
        b.attempts
            .cmp(&a.attempts)
            .then(a.category.cmp(&b.category))
    });
    out
}

impl Reader {
    /// Every category with attempts whose last attempt is in [from, to)
    /// (agency and node filters apply; method and limit do not).
    pub fn blocked_categories(
        &self,
        f: &BlockedFilter,
    ) -> Result<Vec<BlockedCategory>, StoreError> {
        if f.to <= f.from {
            return Ok(Vec::new());
        }
        let from_ns = time(f.from).saturating_mul(1_000_000_000);
        let to_ns = time(f.to).saturating_mul(1_000_000_000);
        let mut st = self.conn.prepare_cached(
            "SELECT b.list, total(b.attempts) AS n, count(DISTINCT b.client),
                    count(DISTINCT b.target)
             FROM blocked_attempts b
             WHERE b.last_seen >= ?1 AND b.last_seen < ?2 AND (?3 IS NULL OR b.agency = ?3)
               AND (?4 IS NULL OR b.stream IN (SELECT id FROM streams WHERE node_id = ?4))
             GROUP BY b.list ORDER BY n DESC, b.list",
        )?;
        let mut rows = st.query(params![from_ns, to_ns, f.agency, f.node])?;
        let c = |v: i64| u64::try_from(v).unwrap_or(0);
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(BlockedCategory {
                category: r.get(0)?,
                attempts: r.get::<_, f64>(1)? as u64,
                clients: c(r.get(2)?),
                targets: c(r.get(3)?),
            });
        }
        Ok(out)
    }
}

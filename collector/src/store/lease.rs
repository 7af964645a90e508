//! Leader leases on SQLite (one collector per database file, so the lease
//! only matters across restarts; the statement is the PostgreSQL one, see
//! store/postgres/lease.rs). Expiry is this machine's clock.

use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension};

use super::{Lease, StoreError};

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn try_lease(
    conn: &Connection,
    name: &str,
    holder: &str,
    ttl: Duration,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let now = ms(now);
    let expires = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    Ok(conn
        .prepare_cached(
            "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                 expires_ms = excluded.expires_ms
             WHERE leases.expires_ms < ?4 OR leases.holder = excluded.holder
             RETURNING holder",
        )?
        .query_row(params![name, holder, expires, now], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn release_lease(
    conn: &Connection,
    name: &str,
    holder: &str,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
        params![name, holder],
    )? == 1)
}

pub(crate) fn leases(
    conn: &Connection,
    limit: usize,
    now: SystemTime,
) -> Result<Vec<Lease>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let now = ms(now);
    let mut stmt =
        conn.prepare_cached("SELECT name, holder, expires_ms FROM leases ORDER BY name LIMIT ?1")?;
    let rows = stmt.query_map(params![limit], |r| {
        let expires: i64 = r.get(2)?;
        Ok(Lease {
            name: r.get(0)?,
            holder: r.get(1)?,
            expires_ms: u64::try_from(expires).unwrap_or(0),
            // try_lease takes a lease over once expires_ms < now.
            live: expires >= now,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

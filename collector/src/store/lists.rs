//! Named domain lists on SQLite: their versions (the content is a file named
//! by its hash, `crate::lists`) and where they are synced from.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::traits::{ListSource, ListVersion};
use super::StoreError;

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn save_version(conn: &mut Connection, v: &ListVersion) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if v.state == "current" {
        tx.execute(
            "UPDATE list_versions SET state = 'superseded' WHERE name = ?1 AND state = 'current'",
            [&v.name],
        )?;
    }
    tx.execute(
        "INSERT INTO list_versions (name, version, sha256, domains, stored_bytes, lines, invalid,
             state, hold_reason, origin, created_ms, created_by, comment, decided_ms, decided_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            v.name,
            i(v.version),
            v.sha256,
            i(v.domains),
            i(v.stored_bytes),
            i(v.lines),
            i(v.invalid),
            v.state,
            v.hold_reason,
            v.origin,
            i(v.created_ms),
            v.created_by,
            v.comment,
            v.decided_ms.map(i),
            v.decided_by
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn decide(
    conn: &mut Connection,
    name: &str,
    version: u64,
    confirm: bool,
    by: &str,
    at_ms: u64,
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let held: Option<String> = tx
        .query_row(
            "SELECT state FROM list_versions WHERE name = ?1 AND version = ?2",
            params![name, i(version)],
            |r| r.get(0),
        )
        .optional()?;
    if held.as_deref() != Some("held") {
        return Ok(false);
    }
    if confirm {
        tx.execute(
            "UPDATE list_versions SET state = 'superseded' WHERE name = ?1 AND state = 'current'",
            [name],
        )?;
    }
    tx.execute(
        "UPDATE list_versions SET state = ?3, decided_ms = ?4, decided_by = ?5
         WHERE name = ?1 AND version = ?2",
        params![
            name,
            i(version),
            if confirm { "current" } else { "discarded" },
            i(at_ms),
            by
        ],
    )?;
    tx.commit()?;
    Ok(true)
}

fn version_row(r: &Row<'_>) -> rusqlite::Result<ListVersion> {
    Ok(ListVersion {
        name: r.get(0)?,
        version: u(r.get(1)?),
        sha256: r.get(2)?,
        domains: u(r.get(3)?),
        stored_bytes: u(r.get(4)?),
        lines: u(r.get(5)?),
        invalid: u(r.get(6)?),
        state: r.get(7)?,
        hold_reason: r.get(8)?,
        origin: r.get(9)?,
        created_ms: u(r.get(10)?),
        created_by: r.get(11)?,
        comment: r.get(12)?,
        decided_ms: r.get::<_, Option<i64>>(13)?.map(u),
        decided_by: r.get(14)?,
    })
}

const VERSION_COLUMNS: &str = "name, version, sha256, domains, stored_bytes, lines, invalid, state,
    hold_reason, origin, created_ms, created_by, comment, decided_ms, decided_by";

pub(crate) fn versions(
    conn: &Connection,
    name: Option<&str>,
    limit: usize,
) -> Result<Vec<ListVersion>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match name {
        Some(n) => {
            let mut st = conn.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM list_versions WHERE name = ?1
                 ORDER BY version DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![n, limit], version_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        None => {
            let mut st = conn.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM list_versions
                 ORDER BY name, version DESC LIMIT ?1"
            ))?;
            let rows = st.query_map([limit], version_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(rows)
}

pub(crate) fn open_versions(conn: &Connection) -> Result<Vec<ListVersion>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM list_versions WHERE state IN ('current', 'held')
         ORDER BY name, version DESC"
    ))?;
    let rows = st.query_map([], version_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn set_source(conn: &Connection, s: &ListSource) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO list_sources (name, url, format, interval_secs, max_shrink_percent,
             last_attempt_ms, last_ok_ms, last_error, updated_ms, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, format = excluded.format,
             interval_secs = excluded.interval_secs,
             max_shrink_percent = excluded.max_shrink_percent,
             last_attempt_ms = excluded.last_attempt_ms, last_ok_ms = excluded.last_ok_ms,
             last_error = excluded.last_error, updated_ms = excluded.updated_ms,
             updated_by = excluded.updated_by",
        params![
            s.name,
            s.url,
            s.format,
            i(s.interval_secs),
            s.max_shrink_percent,
            s.last_attempt_ms.map(i),
            s.last_ok_ms.map(i),
            s.last_error,
            i(s.updated_ms),
            s.updated_by
        ],
    )?;
    Ok(())
}

pub(crate) fn remove_source(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM list_sources WHERE name = ?1", [name])? > 0)
}

pub(crate) fn sources(conn: &Connection) -> Result<Vec<ListSource>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT name, url, format, interval_secs, max_shrink_percent, last_attempt_ms,
                last_ok_ms, last_error, updated_ms, updated_by
         FROM list_sources ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok(ListSource {
            name: r.get(0)?,
            url: r.get(1)?,
            format: r.get(2)?,
            interval_secs: u(r.get(3)?),
            max_shrink_percent: r.get(4)?,
            last_attempt_ms: r.get::<_, Option<i64>>(5)?.map(u),
            last_ok_ms: r.get::<_, Option<i64>>(6)?.map(u),
            last_error: r.get(7)?,
            updated_ms: u(r.get(8)?),
            updated_by: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

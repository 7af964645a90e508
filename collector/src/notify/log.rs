//! The durable notification log: the `notifications` table in the collector's
//! SQLite file, or in the control store's PostgreSQL database when several
//! collectors share one (`store::postgres::PgNotifyLog`). Every write is its
//! own committed transaction before anything depends on it (see the module
//! docs of `notify` for the delivery argument).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use super::{LogEntry, Notification, NotifyError, NotifyState, Severity, Status};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A pending row, as the dispatcher needs it.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub id: i64,
    pub channel: String,
    pub incident_id: i64,
    pub state: String,
    pub payload: String,
    pub attempts: u32,
    pub progress: u32,
    pub next_attempt_ms: u64,
    pub created_ms: u64,
    pub last_error: Option<String>,
}

/// The log's operations, one implementation per database.
pub trait NotifyLog: Send {
    /// Write the rows for `n`: one per channel in `routed`, plus (for
    /// resolved / acknowledged) every configured channel already told about
    /// the incident. See the module docs for suppression. Returns new rows;
    /// a (channel, incident, state) already logged is not written again.
    fn enqueue(
        &mut self,
        n: &Notification,
        routed: &BTreeSet<String>,
        configured: &dyn Fn(&str) -> bool,
        now_ms: u64,
        suppress_unsent: bool,
    ) -> Result<usize, NotifyError>;
    /// Pending rows, oldest first (due or not: the dispatcher needs the
    /// older rows of an incident to keep order).
    fn pending(&self, limit: usize) -> Result<Vec<PendingRow>, NotifyError>;
    fn count_pending(&self) -> Result<u64, NotifyError>;
    /// Count an attempt before making it, and schedule the next one in case
    /// this process dies during the call. False: the row is no longer
    /// pending (suppressed meanwhile), or (several dispatchers on one
    /// database) another dispatcher claimed attempt `attempts + 1` first.
    fn claim(
        &self,
        id: i64,
        attempts: u32,
        now_ms: u64,
        retry_at_ms: u64,
    ) -> Result<bool, NotifyError>;
    fn mark_sent(&self, id: i64, now_ms: u64, progress: u32) -> Result<(), NotifyError>;
    fn mark_retry(
        &self,
        id: i64,
        next_ms: u64,
        error: &str,
        progress: u32,
    ) -> Result<(), NotifyError>;
    fn mark_failed(&self, id: i64, error: &str, progress: u32) -> Result<(), NotifyError>;
    /// Delete final rows created before `before_ms`.
    fn prune(&self, before_ms: u64) -> Result<usize, NotifyError>;
    fn counts(&self) -> Result<BTreeMap<Status, u64>, NotifyError>;
    /// Newest first, or (for one incident) oldest first.
    fn recent(&self, limit: usize, incident: Option<i64>) -> Result<Vec<LogEntry>, NotifyError>;
}

/// The log in the collector's SQLite file.
pub struct SqliteLog {
    conn: Connection,
}

impl SqliteLog {
    /// Open (creating if needed) the database at `path` and its
    /// notification tables.
    pub fn open(path: &Path) -> Result<SqliteLog, NotifyError> {
        let open_err = |source| NotifyError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode stayed {mode:?}, WAL needed"
            ))));
        }
        // An enqueued row must survive power loss: the detector will not
        // announce the same transition again unless it restarts.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The tables are the store's (one migration system): opening the
        // log on a fresh file creates the whole schema.
        crate::store::ensure_schema(&mut conn).map_err(|e| {
            NotifyError::Config(format!("the notification log in {}: {e}", path.display()))
        })?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(SqliteLog { conn })
    }
}

impl NotifyLog for SqliteLog {
    /// Write the rows for `n`: one per channel in `routed`, plus (for
    /// resolved / acknowledged) every configured channel already told about
    /// the incident. See the module docs for suppression. Returns new rows.
    fn enqueue(
        &mut self,
        n: &Notification,
        routed: &BTreeSet<String>,
        configured: &dyn Fn(&str) -> bool,
        now_ms: u64,
        suppress_unsent: bool,
    ) -> Result<usize, NotifyError> {
        let payload = serde_json::to_string(n)?;
        let state = n.state.key();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut channels = routed.clone();
        let ends = matches!(n.state, NotifyState::Resolved | NotifyState::Acknowledged);

        if suppress_unsent && ends {
            // Messages never attempted that the new state makes moot: all of
            // them when resolved, escalations when acknowledged.
            let (reason, which) = match n.state {
                NotifyState::Resolved => {
                    ("resolved before it could be sent", "state <> 'resolved'")
                }
                _ => (
                    "acknowledged before it could be sent",
                    "state LIKE 'escalated:%'",
                ),
            };
            tx.execute(
                &format!(
                    "UPDATE notifications SET status = 'suppressed', last_error = ?2
                     WHERE incident_id = ?1 AND status = 'pending' AND attempts = 0 AND {which}"
                ),
                params![n.incident_id, reason],
            )?;
        }

        // Channel → whether anything about the incident went (or may have
        // gone) out on it; false: everything on it was suppressed.
        let mut told: BTreeMap<String, bool> = BTreeMap::new();
        if ends {
            let mut st = tx.prepare_cached(
                "SELECT channel, status FROM notifications WHERE incident_id = ?1 AND state <> ?2",
            )?;
            let rows = st.query_map(params![n.incident_id, state], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (channel, status) = row?;
                let reached = status == "sent" || status == "pending";
                *told.entry(channel).or_insert(false) |= reached;
            }
            for (c, reached) in &told {
                if *reached && configured(c) {
                    channels.insert(c.clone());
                }
            }
        }

        let mut new = 0;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO notifications
                    (channel, incident_id, state, severity, payload, status,
                     next_attempt_ms, last_error, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (channel, incident_id, state) DO NOTHING",
            )?;
            for c in &channels {
                // Nobody on this channel heard of the incident (all of it was
                // suppressed): do not tell them it ended.
                let moot = suppress_unsent && ends && told.get(c) == Some(&false);
                let (status, why) = if moot {
                    (
                        Status::Suppressed,
                        Some("nothing earlier about this incident was sent on this channel"),
                    )
                } else {
                    (Status::Pending, None)
                };
                new += ins.execute(params![
                    c,
                    n.incident_id,
                    state,
                    n.severity.as_str(),
                    payload,
                    status.as_str(),
                    now_ms as i64,
                    why,
                    now_ms as i64,
                ])?;
            }
        }
        tx.commit()?;
        Ok(new)
    }

    /// Pending rows, oldest first (due or not: the dispatcher needs the
    /// older rows of an incident to keep order).
    fn pending(&self, limit: usize) -> Result<Vec<PendingRow>, NotifyError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, channel, incident_id, state, payload, attempts, progress,
                    next_attempt_ms, created_ms, last_error
             FROM notifications WHERE status = 'pending' ORDER BY id LIMIT ?1",
        )?;
        let rows = st.query_map([limit.min(i64::MAX as usize) as i64], |r| {
            Ok(PendingRow {
                id: r.get(0)?,
                channel: r.get(1)?,
                incident_id: r.get(2)?,
                state: r.get(3)?,
                payload: r.get(4)?,
                attempts: r.get(5)?,
                progress: r.get(6)?,
                next_attempt_ms: r.get::<_, i64>(7)?.max(0) as u64,
                created_ms: r.get::<_, i64>(8)?.max(0) as u64,
                last_error: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn count_pending(&self) -> Result<u64, NotifyError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM notifications WHERE status = 'pending'",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Count an attempt before making it, and schedule the next one in case
    /// this process dies during the call. False: the row is no longer
    /// pending (suppressed meanwhile).
    fn claim(
        &self,
        id: i64,
        _attempts: u32,
        now_ms: u64,
        retry_at_ms: u64,
    ) -> Result<bool, NotifyError> {
        let n = self.conn.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_attempt_ms = ?2,
                    next_attempt_ms = ?3
             WHERE id = ?1 AND status = 'pending'",
            params![id, now_ms as i64, retry_at_ms as i64],
        )?;
        Ok(n == 1)
    }

    fn mark_sent(&self, id: i64, now_ms: u64, progress: u32) -> Result<(), NotifyError> {
        self.conn.execute(
            "UPDATE notifications SET status = 'sent', sent_ms = ?2, progress = ?3 WHERE id = ?1",
            params![id, now_ms as i64, progress],
        )?;
        Ok(())
    }

    fn mark_retry(
        &self,
        id: i64,
        next_ms: u64,
        error: &str,
        progress: u32,
    ) -> Result<(), NotifyError> {
        self.conn.execute(
            "UPDATE notifications SET next_attempt_ms = ?2, last_error = ?3, progress = ?4
             WHERE id = ?1 AND status = 'pending'",
            params![id, next_ms as i64, error, progress],
        )?;
        Ok(())
    }

    fn mark_failed(&self, id: i64, error: &str, progress: u32) -> Result<(), NotifyError> {
        self.conn.execute(
            "UPDATE notifications SET status = 'failed', last_error = ?2, progress = ?3
             WHERE id = ?1",
            params![id, error, progress],
        )?;
        Ok(())
    }

    /// Delete final rows created before `before_ms`.
    fn prune(&self, before_ms: u64) -> Result<usize, NotifyError> {
        Ok(self.conn.execute(
            "DELETE FROM notifications WHERE status <> 'pending' AND created_ms < ?1",
            [before_ms as i64],
        )?)
    }

    fn counts(&self) -> Result<BTreeMap<Status, u64>, NotifyError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT status, count(*) FROM notifications GROUP BY status")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (s, n) = row?;
            if let Some(s) = Status::parse(&s) {
                out.insert(s, n.max(0) as u64);
            }
        }
        Ok(out)
    }

    /// Newest first, or (for one incident) oldest first.
    fn recent(&self, limit: usize, incident: Option<i64>) -> Result<Vec<LogEntry>, NotifyError> {
        let sql = format!(
            "SELECT id, channel, incident_id, state, severity, payload, status, attempts,
                    progress, last_error, created_ms, last_attempt_ms, next_attempt_ms, sent_ms
             FROM notifications {} LIMIT ?2",
            if incident.is_some() {
                "WHERE incident_id = ?1 ORDER BY id"
            } else {
                "WHERE ?1 IS NULL ORDER BY id DESC"
            }
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = st.query_map(params![incident, limit], |r| {
            let payload: String = r.get(5)?;
            let severity: String = r.get(4)?;
            let status: String = r.get(6)?;
            Ok((
                payload,
                severity,
                status,
                LogEntry {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    incident_id: r.get(2)?,
                    state: r.get(3)?,
                    severity: Severity::Info,
                    agency: String::new(),
                    node: None,
                    kind: String::new(),
                    title: String::new(),
                    status: Status::Pending,
                    attempts: r.get(7)?,
                    progress: r.get(8)?,
                    last_error: r.get(9)?,
                    created_ms: r.get::<_, i64>(10)?.max(0) as u64,
                    last_attempt_ms: r.get::<_, Option<i64>>(11)?.map(|v| v.max(0) as u64),
                    next_attempt_ms: r.get::<_, i64>(12)?.max(0) as u64,
                    sent_ms: r.get::<_, Option<i64>>(13)?.map(|v| v.max(0) as u64),
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (payload, severity, status, mut e) = row?;
            e.severity = Severity::parse(&severity).unwrap_or(Severity::Info);
            e.status = Status::parse(&status).unwrap_or(Status::Pending);
            if let Ok(n) = serde_json::from_str::<Notification>(&payload) {
                e.agency = n.agency;
                e.node = n.node;
                e.kind = n.kind;
                e.title = n.title;
            }
            out.push(e);
        }
        Ok(out)
    }
}

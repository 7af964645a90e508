//! The notification log on PostgreSQL (the SQLite one: notify/log.rs).
//! Several collectors enqueue and dispatch on one table, so two things the
//! single SQLite writer gave for free are asked for here: an incident's rows
//! are written under a lock on that incident (the suppression rules read
//! what was logged before), and a claim names the attempt it makes, so of
//! two dispatchers that read the same pending row only one sends it.

use std::collections::{BTreeMap, BTreeSet};

use postgres::Row;

use super::{i, u, PgStore};
use crate::notify::{
    LogEntry, Notification, NotifyError, NotifyLog, NotifyState, PendingRow, Severity, Status,
};

/// `ControlStore::notification_log` on PostgreSQL.
pub struct PgNotifyLog {
    pg: PgStore,
}

impl PgNotifyLog {
    pub(super) fn new(pg: PgStore) -> Self {
        PgNotifyLog { pg }
    }
}

/// Advisory locks of the log are (this, incident id): apart from the
/// migration lock's single key.
const LOG_LOCK_CLASS: i32 = 0x4e4f_5449;

fn small(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn pending_row(r: &Row) -> PendingRow {
    PendingRow {
        id: r.get(0),
        channel: r.get(1),
        incident_id: r.get(2),
        state: r.get(3),
        payload: r.get(4),
        attempts: small(r.get(5)),
        progress: small(r.get(6)),
        next_attempt_ms: u(r.get(7)),
        created_ms: u(r.get(8)),
        last_error: r.get(9),
    }
}

fn entry(r: &Row) -> LogEntry {
    let severity: String = r.get(4);
    let payload: String = r.get(5);
    let status: String = r.get(6);
    let mut e = LogEntry {
        id: r.get(0),
        channel: r.get(1),
        incident_id: r.get(2),
        state: r.get(3),
        severity: Severity::parse(&severity).unwrap_or(Severity::Info),
        agency: String::new(),
        node: None,
        kind: String::new(),
        title: String::new(),
        status: Status::parse(&status).unwrap_or(Status::Pending),
        attempts: small(r.get(7)),
        progress: small(r.get(8)),
        last_error: r.get(9),
        created_ms: u(r.get(10)),
        last_attempt_ms: r.get::<_, Option<i64>>(11).map(u),
        next_attempt_ms: u(r.get(12)),
        sent_ms: r.get::<_, Option<i64>>(13).map(u),
    };
    if let Ok(n) = serde_json::from_str::<Notification>(&payload) {
        e.agency = n.agency;
        e.node = n.node;
        e.kind = n.kind;
        e.title = n.title;
    }
    e
}

impl NotifyLog for PgNotifyLog {
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
        let ends = matches!(n.state, NotifyState::Resolved | NotifyState::Acknowledged);
        let incident = n.incident_id;
        let severity = n.severity.as_str().to_owned();
        // `configured` stays on this thread (the router is not Send): ask it
        // about every channel the incident was logged on, then write under
        // the incident's lock. A channel another collector logs in between
        // is one this collector did not route to: it is not added here.
        let configured_now: BTreeSet<String> = {
            let seen: Vec<String> = self.pg.run(move |c| {
                Ok(c.query(
                    "SELECT DISTINCT channel FROM notifications WHERE incident_id = $1",
                    &[&incident],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect())
            })?;
            seen.into_iter().filter(|c| configured(c)).collect()
        };
        let routed = routed.clone();
        let state_s = state.to_string();
        let resolved = matches!(n.state, NotifyState::Resolved);
        let new = self.pg.run(move |c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashint8($2))",
                &[&LOG_LOCK_CLASS, &incident],
            )?;
            if suppress_unsent && ends {
                let (reason, which) = if resolved {
                    ("resolved before it could be sent", "state <> 'resolved'")
                } else {
                    (
                        "acknowledged before it could be sent",
                        "state LIKE 'escalated:%'",
                    )
                };
                tx.execute(
                    &format!(
                        "UPDATE notifications SET status = 'suppressed', last_error = $2
                         WHERE incident_id = $1 AND status = 'pending' AND attempts = 0 AND {which}"
                    ),
                    &[&incident, &reason],
                )?;
            }
            let mut channels = routed;
            let mut told: BTreeMap<String, bool> = BTreeMap::new();
            if ends {
                for r in tx.query(
                    "SELECT channel, status FROM notifications WHERE incident_id = $1 AND state <> $2",
                    &[&incident, &state_s],
                )? {
                    let (channel, status): (String, String) = (r.get(0), r.get(1));
                    let reached = status == "sent" || status == "pending";
                    *told.entry(channel).or_insert(false) |= reached;
                }
                for (ch, reached) in &told {
                    if *reached && configured_now.contains(ch) {
                        channels.insert(ch.clone());
                    }
                }
            }
            let mut new = 0;
            for ch in &channels {
                let moot = suppress_unsent && ends && told.get(ch) == Some(&false);
                let (status, why) = if moot {
                    (
                        Status::Suppressed,
                        Some("nothing earlier about this incident was sent on this channel"),
                    )
                } else {
                    (Status::Pending, None)
                };
                new += tx.execute(
                    "INSERT INTO notifications
                        (channel, incident_id, state, severity, payload, status,
                         next_attempt_ms, last_error, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (channel, incident_id, state) DO NOTHING",
                    &[
                        ch,
                        &incident,
                        &state_s,
                        &severity,
                        &payload,
                        &status.as_str(),
                        &i(now_ms),
                        &why,
                        &i(now_ms),
                    ],
                )?;
            }
            tx.commit()?;
            Ok(usize::try_from(new).unwrap_or(usize::MAX))
        })?;
        Ok(new)
    }

    fn pending(&self, limit: usize) -> Result<Vec<PendingRow>, NotifyError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self.pg.run(move |c| {
            Ok(c.query(
                "SELECT id, channel, incident_id, state, payload, attempts, progress,
                        next_attempt_ms, created_ms, last_error
                 FROM notifications WHERE status = 'pending' ORDER BY id LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(pending_row)
            .collect())
        })?)
    }

    fn count_pending(&self) -> Result<u64, NotifyError> {
        Ok(self.pg.run(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM notifications WHERE status = 'pending'",
                    &[],
                )?
                .get(0);
            Ok(u(n))
        })?)
    }

    fn claim(
        &self,
        id: i64,
        attempts: u32,
        now_ms: u64,
        retry_at_ms: u64,
    ) -> Result<bool, NotifyError> {
        Ok(self.pg.run(move |c| {
            let n = c.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_attempt_ms = $2,
                        next_attempt_ms = $3
                 WHERE id = $1 AND status = 'pending' AND attempts = $4",
                &[&id, &i(now_ms), &i(retry_at_ms), &i64::from(attempts)],
            )?;
            Ok(n == 1)
        })?)
    }

    fn mark_sent(&self, id: i64, now_ms: u64, progress: u32) -> Result<(), NotifyError> {
        Ok(self.pg.run(move |c| {
            c.execute(
                "UPDATE notifications SET status = 'sent', sent_ms = $2, progress = $3 WHERE id = $1",
                &[&id, &i(now_ms), &i64::from(progress)],
            )?;
            Ok(())
        })?)
    }

    fn mark_retry(
        &self,
        id: i64,
        next_ms: u64,
        error: &str,
        progress: u32,
    ) -> Result<(), NotifyError> {
        let error = error.to_owned();
        Ok(self.pg.run(move |c| {
            c.execute(
                "UPDATE notifications SET next_attempt_ms = $2, last_error = $3, progress = $4
                 WHERE id = $1 AND status = 'pending'",
                &[&id, &i(next_ms), &error, &i64::from(progress)],
            )?;
            Ok(())
        })?)
    }

    fn mark_failed(&self, id: i64, error: &str, progress: u32) -> Result<(), NotifyError> {
        let error = error.to_owned();
        Ok(self.pg.run(move |c| {
            c.execute(
                "UPDATE notifications SET status = 'failed', last_error = $2, progress = $3
                 WHERE id = $1",
                &[&id, &error, &i64::from(progress)],
            )?;
            Ok(())
        })?)
    }

    fn prune(&self, before_ms: u64) -> Result<usize, NotifyError> {
        Ok(self.pg.run(move |c| {
            let n = c.execute(
                "DELETE FROM notifications WHERE status <> 'pending' AND created_ms < $1",
                &[&i(before_ms)],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })?)
    }

    fn counts(&self) -> Result<BTreeMap<Status, u64>, NotifyError> {
        Ok(self.pg.run(|c| {
            let mut out = BTreeMap::new();
            for r in c.query(
                "SELECT status, count(*) FROM notifications GROUP BY status",
                &[],
            )? {
                let s: String = r.get(0);
                if let Some(s) = Status::parse(&s) {
                    out.insert(s, u(r.get(1)));
                }
            }
            Ok(out)
        })?)
    }

    fn recent(&self, limit: usize, incident: Option<i64>) -> Result<Vec<LogEntry>, NotifyError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self.pg.run(move |c| {
            let sql = format!(
                "SELECT id, channel, incident_id, state, severity, payload, status, attempts,
                        progress, last_error, created_ms, last_attempt_ms, next_attempt_ms, sent_ms
                 FROM notifications {} LIMIT $2",
                if incident.is_some() {
                    "WHERE incident_id = $1 ORDER BY id"
                } else {
                    "WHERE $1::BIGINT IS NULL ORDER BY id DESC"
                }
            );
            Ok(c.query(&sql, &[&incident, &limit])?
                .iter()
                .map(entry)
                .collect())
        })?)
    }
}

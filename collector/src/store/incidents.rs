//! Incidents and maintenance windows, and availability computed from them.
//!
//! Availability is derived, not counted: a node's day is 100 % minus the
//! parts of it covered by its own outages; time covered by maintenance or by
//! an ancestor's outage (unreachable) is reported beside it, never as the
//! node's fault.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::StoreError;

/// One outage (or unreachable/flapping spell) of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub id: i64,
    pub node_id: String,
    pub agency: String,
    /// `down`, `unreachable` or `flapping`.
    pub kind: String,
    pub severity: String,
    pub root_cause: Option<String>,
    pub children: Vec<String>,
    pub started_ms: u64,
    pub detected_ms: u64,
    pub notified_ms: Option<u64>,
    pub acked_ms: Option<u64>,
    pub acked_by: Option<String>,
    pub escalation: u32,
    pub resolved_ms: Option<u64>,
    pub maintenance: bool,
}

impl Incident {
    pub fn duration_ms(&self, now_ms: u64) -> u64 {
        self.resolved_ms
            .unwrap_or(now_ms)
            .saturating_sub(self.started_ms)
    }
}

/// A new incident.
#[derive(Debug, Clone)]
pub struct NewIncident<'a> {
    pub node_id: &'a str,
    pub agency: &'a str,
    pub kind: &'a str,
    pub severity: &'a str,
    pub root_cause: Option<&'a str>,
    pub children: &'a [String],
    pub started_ms: u64,
    pub detected_ms: u64,
    pub maintenance: bool,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub node_id: Option<String>,
    pub agency: Option<String>,
    pub open_only: bool,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    pub id: i64,
    pub node_id: Option<String>,
    pub agency: Option<String>,
    pub starts_ms: u64,
    pub ends_ms: u64,
    pub reason: String,
    pub created_by: String,
    pub created_ms: u64,
}

impl Maintenance {
    pub fn covers(&self, node: &str, agency: &str, at_ms: u64) -> bool {
        let scope = match (&self.node_id, &self.agency) {
            (Some(n), _) => n == node,
            (None, Some(a)) => a == agency,
            (None, None) => true,
        };
        scope && (self.starts_ms..self.ends_ms).contains(&at_ms)
    }
}

/// One node's availability over `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Availability {
    pub node_id: String,
    pub agency: String,
    pub from_ms: u64,
    pub to_ms: u64,
    /// Own outages outside maintenance.
    pub down_ms: u64,
    /// Silent because an ancestor was down.
    pub unreachable_ms: u64,
    /// Outages inside maintenance windows.
    pub maintenance_ms: u64,
    /// Before the node was enrolled: not counted either way.
    pub unmonitored_ms: u64,
    /// 100 × (1 − down / (period − unmonitored − maintenance − unreachable));
    /// None when nothing of the period was measured (the node was enrolled
    /// after it ended).
    pub availability_pct: Option<f64>,
    pub incidents: u32,
    /// Enrolled but never connected: every measured moment is down.
    pub never_seen: bool,
}

/// A node whose availability is asked for: the period counts from its
/// enrollment, and a node that never connected was never up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpan {
    pub node_id: String,
    pub agency: String,
    pub enrolled_ms: u64,
    pub seen: bool,
}

/// Incidents and maintenance windows, on SQLite ([`SqliteIncidents`]) or
/// PostgreSQL (`postgres::PgIncidents`). One writer per collector (the
/// outage monitor); with several collectors, only the leader opens
/// incidents, and "one open outage per node" is the database's unique
/// index, not the caller's care.
pub trait Incidents: Send {
    /// The open outage (down, group_down, unreachable, flapping) of `node`.
    fn open_for(&self, node: &str) -> Result<Option<Incident>, StoreError>;
    /// The open incident of `node` of a condition `kind` (agent_health, …).
    fn open_for_kind(&self, node: &str, kind: &str) -> Result<Option<Incident>, StoreError>;
    fn get(&self, id: i64) -> Result<Option<Incident>, StoreError>;
    /// Open an incident; if the node already has one open (e.g. from before
    /// a restart, or opened by another collector), that one is returned and
    /// nothing is written.
    fn open(&mut self, n: &NewIncident<'_>) -> Result<(Incident, bool), StoreError>;
    fn set_kind(&mut self, id: i64, kind: &str) -> Result<(), StoreError>;
    fn resolve(&mut self, id: i64, at_ms: u64) -> Result<(), StoreError>;
    fn mark_notified(&mut self, id: i64, at_ms: u64) -> Result<(), StoreError>;
    fn set_escalation(&mut self, id: i64, level: u32) -> Result<(), StoreError>;
    /// Acknowledge (the first acknowledgement counts). `None`: no such incident.
    fn ack(&mut self, id: i64, by: &str, at_ms: u64) -> Result<Option<Incident>, StoreError>;
    /// Unacknowledged open ones first, then newest.
    fn list(&self, f: &IncidentFilter) -> Result<Vec<Incident>, StoreError>;
    /// Open incidents that were notified and not acknowledged.
    fn unacknowledged(&self) -> Result<Vec<Incident>, StoreError>;
    fn add_maintenance(&mut self, m: &Maintenance) -> Result<Maintenance, StoreError>;
    fn maintenance_window(&self, id: i64) -> Result<Option<Maintenance>, StoreError>;
    /// Change a window's times or reason (the caller checks what may change).
    fn update_maintenance(&mut self, m: &Maintenance) -> Result<bool, StoreError>;
    fn delete_maintenance(&mut self, id: i64) -> Result<bool, StoreError>;
    /// Windows that ended before `before_ms` go (retention).
    fn prune_maintenance(&mut self, before_ms: u64) -> Result<usize, StoreError>;
    /// Windows that have not ended at `now_ms`.
    fn open_maintenance_count(&self, now_ms: u64) -> Result<u64, StoreError>;
    /// Windows that end after `from_ms` (current and future, and the past
    /// ones overlapping a report period), by start.
    fn maintenance_since(&self, from_ms: u64) -> Result<Vec<Maintenance>, StoreError>;

    /// Availability of each node over the period (see [`availability`]).
    fn availability(
        &self,
        nodes: &[NodeSpan],
        from_ms: u64,
        to_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<Availability>, StoreError> {
        availability(self, nodes, from_ms, to_ms, now_ms)
    }
}

/// What `ControlStore::incidents` hands out.
pub type IncidentStore = Box<dyn Incidents>;

/// A window must end after it starts.
pub(crate) fn check_window(m: &Maintenance) -> Result<(), StoreError> {
    if m.ends_ms <= m.starts_ms {
        return Err(StoreError::Invalid {
            what: "maintenance window",
            value: format!("{}..{}", m.starts_ms, m.ends_ms),
            reason: "must end after it starts",
        });
    }
    Ok(())
}

/// Incidents in the collector's SQLite file.
pub struct SqliteIncidents {
    conn: Connection,
}

/// Kinds that are outages (one open per node); others are conditions.
const OUTAGE_KINDS: &str = "('down', 'group_down', 'unreachable', 'flapping')";

pub fn is_outage_kind(kind: &str) -> bool {
    matches!(kind, "down" | "group_down" | "unreachable" | "flapping")
}

const COLUMNS: &str = "id, node_id, agency, kind, severity, root_cause, children, started_ms, detected_ms, notified_ms, acked_ms, acked_by, escalation, resolved_ms, maintenance";

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    let children: String = r.get(6)?;
    Ok(Incident {
        id: r.get(0)?,
        node_id: r.get(1)?,
        agency: r.get(2)?,
        kind: r.get(3)?,
        severity: r.get(4)?,
        root_cause: r.get(5)?,
        children: serde_json::from_str(&children).unwrap_or_default(),
        started_ms: u(r.get(7)?),
        detected_ms: u(r.get(8)?),
        notified_ms: r.get::<_, Option<i64>>(9)?.map(u),
        acked_ms: r.get::<_, Option<i64>>(10)?.map(u),
        acked_by: r.get(11)?,
        escalation: u(r.get(12)?) as u32,
        resolved_ms: r.get::<_, Option<i64>>(13)?.map(u),
        maintenance: r.get::<_, i64>(14)? != 0,
    })
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqliteIncidents {
    pub(crate) fn new(conn: Connection) -> Self {
        SqliteIncidents { conn }
    }
}

impl Incidents for SqliteIncidents {
    /// The open outage (down, group_down, unreachable, flapping) of `node`.
    fn open_for(&self, node: &str) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM incidents WHERE node_id = ?1 AND resolved_ms IS NULL AND kind IN {OUTAGE_KINDS}"
        );
        Ok(self.conn.query_row(&sql, [node], from_row).optional()?)
    }

    /// The open incident of `node` of a condition `kind` (agent_health, …).
    fn open_for_kind(&self, node: &str, kind: &str) -> Result<Option<Incident>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM incidents WHERE node_id = ?1 AND resolved_ms IS NULL AND kind = ?2"
        );
        Ok(self
            .conn
            .query_row(&sql, [node, kind], from_row)
            .optional()?)
    }

    fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Open an incident; if the node already has one open (e.g. from before
    /// a restart), that one is returned and nothing is written.
    fn open(&mut self, n: &NewIncident<'_>) -> Result<(Incident, bool), StoreError> {
        let existing = if is_outage_kind(n.kind) {
            self.open_for(n.node_id)?
        } else {
            self.open_for_kind(n.node_id, n.kind)?
        };
        if let Some(existing) = existing {
            return Ok((existing, false));
        }
        let children = serde_json::to_string(n.children).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO incidents (node_id, agency, kind, severity, root_cause, children, started_ms, detected_ms, maintenance)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                n.node_id,
                n.agency,
                n.kind,
                n.severity,
                n.root_cause,
                children,
                i(n.started_ms),
                i(n.detected_ms),
                n.maintenance as i64
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        let inc = self.get(id)?.ok_or(StoreError::Corrupt {
            table: "incidents",
            detail: format!("row {id} vanished after insert"),
        })?;
        Ok((inc, true))
    }

    fn set_kind(&mut self, id: i64, kind: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE incidents SET kind = ?2 WHERE id = ?1",
            params![id, kind],
        )?;
        Ok(())
    }

    fn resolve(&mut self, id: i64, at_ms: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE incidents SET resolved_ms = ?2 WHERE id = ?1 AND resolved_ms IS NULL",
            params![id, i(at_ms)],
        )?;
        Ok(())
    }

    fn mark_notified(&mut self, id: i64, at_ms: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE incidents SET notified_ms = COALESCE(notified_ms, ?2) WHERE id = ?1",
            params![id, i(at_ms)],
        )?;
        Ok(())
    }

    fn set_escalation(&mut self, id: i64, level: u32) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE incidents SET escalation = MAX(escalation, ?2) WHERE id = ?1",
            params![id, level],
        )?;
        Ok(())
    }

    /// Acknowledge (the first acknowledgement counts). `None`: no such incident.
    fn ack(&mut self, id: i64, by: &str, at_ms: u64) -> Result<Option<Incident>, StoreError> {
        self.conn.execute(
            "UPDATE incidents SET acked_ms = ?2, acked_by = ?3 WHERE id = ?1 AND acked_ms IS NULL",
            params![id, i(at_ms), by],
        )?;
        self.get(id)
    }

    fn list(&self, f: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM incidents WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(n) = &f.node_id {
            args.push(n.clone().into());
            sql += &format!(" AND node_id = ?{}", args.len());
        }
        if let Some(a) = &f.agency {
            args.push(a.clone().into());
            sql += &format!(" AND agency = ?{}", args.len());
        }
        if f.open_only {
            sql += " AND resolved_ms IS NULL";
        }
        if let Some(from) = f.from_ms {
            args.push(i(from).into());
            sql += &format!(
                " AND (resolved_ms IS NULL OR resolved_ms >= ?{})",
                args.len()
            );
        }
        if let Some(to) = f.to_ms {
            args.push(i(to).into());
            sql += &format!(" AND started_ms < ?{}", args.len());
        }
        // Unacknowledged open ones first, then newest.
        sql += " ORDER BY (resolved_ms IS NULL AND acked_ms IS NULL) DESC, started_ms DESC";
        args.push(i(f.limit.max(1) as u64).into());
        sql += &format!(" LIMIT ?{}", args.len());
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Open incidents that were notified and not acknowledged.
    fn unacknowledged(&self) -> Result<Vec<Incident>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM incidents WHERE resolved_ms IS NULL AND acked_ms IS NULL AND notified_ms IS NOT NULL"
        ))?;
        let rows = st.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_maintenance(&mut self, m: &Maintenance) -> Result<Maintenance, StoreError> {
        check_window(m)?;
        self.conn.execute(
            "INSERT INTO maintenance (node_id, agency, starts_ms, ends_ms, reason, created_by, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                m.node_id,
                m.agency,
                i(m.starts_ms),
                i(m.ends_ms),
                m.reason,
                m.created_by,
                i(m.created_ms)
            ],
        )?;
        Ok(Maintenance {
            id: self.conn.last_insert_rowid(),
            ..m.clone()
        })
    }

    fn maintenance_window(&self, id: i64) -> Result<Option<Maintenance>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, node_id, agency, starts_ms, ends_ms, reason, created_by, created_ms
                 FROM maintenance WHERE id = ?1",
                [id],
                maintenance_row,
            )
            .optional()?)
    }

    /// Change a window's times or reason (the caller checks what may change).
    fn update_maintenance(&mut self, m: &Maintenance) -> Result<bool, StoreError> {
        check_window(m)?;
        Ok(self.conn.execute(
            "UPDATE maintenance SET starts_ms = ?2, ends_ms = ?3, reason = ?4 WHERE id = ?1",
            params![m.id, i(m.starts_ms), i(m.ends_ms), m.reason],
        )? == 1)
    }

    fn delete_maintenance(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM maintenance WHERE id = ?1", [id])?
            == 1)
    }

    /// Windows that ended before `before_ms` go (retention).
    fn prune_maintenance(&mut self, before_ms: u64) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM maintenance WHERE ends_ms < ?1", [i(before_ms)])?)
    }

    /// Windows that have not ended at `now_ms`.
    fn open_maintenance_count(&self, now_ms: u64) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM maintenance WHERE ends_ms > ?1",
            [i(now_ms)],
            |r| r.get(0),
        )?;
        Ok(u(n))
    }

    /// Windows that end after `from_ms` (current and future, and the past
    /// ones overlapping a report period).
    fn maintenance_since(&self, from_ms: u64) -> Result<Vec<Maintenance>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, node_id, agency, starts_ms, ends_ms, reason, created_by, created_ms
             FROM maintenance WHERE ends_ms > ?1 ORDER BY starts_ms",
        )?;
        let rows = st.query_map([i(from_ms)], maintenance_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Availability of each node over the period, from its incidents and the
/// maintenance windows. Time before a node was enrolled is not measured (it
/// is not "up"), and a node that never connected is down for all the time
/// it was measured.
pub fn availability<S: Incidents + ?Sized>(
    store: &S,
    nodes: &[NodeSpan],
    from_ms: u64,
    to_ms: u64,
    now_ms: u64,
) -> Result<Vec<Availability>, StoreError> {
    let windows = store.maintenance_since(from_ms)?;
    let mut out = Vec::new();
    let end_ms = to_ms.min(now_ms.max(from_ms));
    for n in nodes {
        let (node, agency) = (&n.node_id, &n.agency);
        let start_ms = from_ms.max(n.enrolled_ms).min(end_ms);
        let incidents = store.list(&IncidentFilter {
            node_id: Some(node.clone()),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            limit: 100_000,
            ..Default::default()
        })?;
        let mine: Vec<&Maintenance> = windows
            .iter()
            .filter(|w| match (&w.node_id, &w.agency) {
                (Some(n), _) => n == node,
                (None, Some(a)) => a == agency,
                (None, None) => true,
            })
            .collect();
        let mut a = Availability {
            node_id: node.clone(),
            agency: agency.clone(),
            from_ms,
            to_ms,
            down_ms: 0,
            unreachable_ms: 0,
            maintenance_ms: 0,
            unmonitored_ms: start_ms - from_ms,
            availability_pct: None,
            incidents: 0,
            never_seen: !n.seen,
        };
        for inc in &incidents {
            let start = inc.started_ms.max(start_ms);
            let end = inc.resolved_ms.unwrap_or(now_ms).min(to_ms);
            if inc.resolved_ms.unwrap_or(now_ms).min(to_ms) > inc.started_ms.max(from_ms) {
                a.incidents += 1;
            }
            if end <= start || !n.seen {
                continue;
            }
            if inc.kind == "unreachable" {
                a.unreachable_ms += end - start;
                continue;
            }
            // The part inside maintenance windows is maintenance.
            let covered = covered_ms(start, end, &mine);
            a.maintenance_ms += covered;
            a.down_ms += (end - start) - covered;
        }
        if !n.seen && end_ms > start_ms {
            // Never connected: one outage from enrollment on.
            let covered = covered_ms(start_ms, end_ms, &mine);
            a.maintenance_ms = covered;
            a.down_ms = (end_ms - start_ms) - covered;
        }
        let measured = end_ms
            .saturating_sub(start_ms)
            .saturating_sub(a.maintenance_ms + a.unreachable_ms);
        if measured > 0 {
            a.availability_pct =
                Some(100.0 * (1.0 - a.down_ms.min(measured) as f64 / measured as f64));
        } else if end_ms > start_ms {
            // Measured, but all of it maintenance or unreachable.
            a.availability_pct = Some(100.0);
        }
        out.push(a);
    }
    Ok(out)
}

/// How much of `[start, end)` the windows cover (overlaps counted once).
fn covered_ms(start: u64, end: u64, windows: &[&Maintenance]) -> u64 {
    let mut spans: Vec<(u64, u64)> = windows
        .iter()
        .map(|w| (w.starts_ms.max(start), w.ends_ms.min(end)))
        .filter(|(s, e)| e > s)
        .collect();
    spans.sort_unstable();
    let (mut total, mut cur): (u64, Option<(u64, u64)>) = (0, None);
    for (s, e) in spans {
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = cur {
        total += ce - cs;
    }
    total
}

fn maintenance_row(r: &rusqlite::Row<'_>) -> Result<Maintenance, rusqlite::Error> {
    Ok(Maintenance {
        id: r.get(0)?,
        node_id: r.get(1)?,
        agency: r.get(2)?,
        starts_ms: u(r.get(3)?),
        ends_ms: u(r.get(4)?),
        reason: r.get(5)?,
        created_by: r.get(6)?,
        created_ms: u(r.get(7)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreConfig};

    fn store() -> (tempfile::TempDir, IncidentStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path(), StoreConfig::default()).expect("store");
        let inc = s.incidents().expect("incidents");
        (dir, inc)
    }

    fn new<'a>(node: &'a str, kind: &'a str, start: u64) -> NewIncident<'a> {
        NewIncident {
            node_id: node,
            agency: "dinkes",
            kind,
            severity: "major",
            root_cause: None,
            children: &[],
            started_ms: start,
            detected_ms: start + 10_000,
            maintenance: false,
        }
    }

    #[test]
    fn one_open_incident_per_node_and_ack_once() {
        let (_d, mut s) = store();
        let (a, fresh) = s.open(&new("n1", "down", 1_000)).expect("open");
        assert!(fresh);
        let (b, fresh) = s.open(&new("n1", "down", 5_000)).expect("open again");
        assert!(!fresh);
        assert_eq!(a.id, b.id);
        let acked = s.ack(a.id, "budi", 20_000).expect("ack").expect("exists");
        assert_eq!(acked.acked_by.as_deref(), Some("budi"));
        let again = s.ack(a.id, "sari", 30_000).expect("ack").expect("exists");
        assert_eq!(
            (again.acked_by.as_deref(), again.acked_ms),
            (Some("budi"), Some(20_000))
        );
        assert!(s.ack(999, "x", 1).expect("ack").is_none());
        s.resolve(a.id, 60_000).expect("resolve");
        let (c, fresh) = s
            .open(&new("n1", "down", 70_000))
            .expect("open after resolve");
        assert!(fresh && c.id != a.id);
    }

    #[test]
    fn availability_separates_maintenance_and_unreachable() {
        let (_d, mut s) = store();
        const H: u64 = 3_600_000;
        // Day of 24 h: n1 down 1 h (of which 30 min in maintenance),
        // unreachable 2 h; n2 never down.
        let (a, _) = s.open(&new("n1", "down", 2 * H)).expect("open");
        s.resolve(a.id, 3 * H).expect("resolve");
        let (b, _) = s.open(&new("n1", "unreachable", 10 * H)).expect("open");
        s.resolve(b.id, 12 * H).expect("resolve");
        s.add_maintenance(&Maintenance {
            id: 0,
            node_id: Some("n1".into()),
            agency: None,
            starts_ms: 2 * H + H / 2,
            ends_ms: 4 * H,
            reason: "ganti router".into(),
            created_by: "noc".into(),
            created_ms: 0,
        })
        .expect("maintenance");
        assert!(s
            .add_maintenance(&Maintenance {
                id: 0,
                node_id: None,
                agency: None,
                starts_ms: 5,
                ends_ms: 5,
                reason: String::new(),
                created_by: "noc".into(),
                created_ms: 0,
            })
            .is_err());
        let nodes = vec![span("n1", 0, true), span("n2", 0, true)];
        let av = s
            .availability(&nodes, 0, 24 * H, 30 * H)
            .expect("availability");
        assert_eq!(av[0].down_ms, H / 2);
        assert_eq!(av[0].maintenance_ms, H / 2);
        assert_eq!(av[0].unreachable_ms, 2 * H);
        let expect = 100.0 * (1.0 - 0.5 / 21.5);
        let pct = av[0].availability_pct.expect("measured");
        assert!((pct - expect).abs() < 1e-9, "{av:?}");
        assert_eq!(av[1].availability_pct, Some(100.0));
        assert_eq!(av[1].incidents, 0);
    }

    fn span(node: &str, enrolled_ms: u64, seen: bool) -> NodeSpan {
        NodeSpan {
            node_id: node.into(),
            agency: "dinkes".into(),
            enrolled_ms,
            seen,
        }
    }

    /// The demo's bappeda-02 (enrolled, never connected) showed 97.31 %
    /// over the last 24 h: the hours before the collector existed counted
    /// as up.
    #[test]
    fn time_before_enrollment_is_not_up_and_a_node_never_seen_is_down() {
        let (_d, mut s) = store();
        const H: u64 = 3_600_000;
        // Enrolled at 20 h; the detector opened its outage at 20 h + 10 s.
        let (a, _) = s
            .open(&new("never", "down", 20 * H + 10_000))
            .expect("open");
        let (b, _) = s.open(&new("late", "down", 22 * H)).expect("open");
        s.resolve(b.id, 23 * H).expect("resolve");
        let nodes = vec![
            span("never", 20 * H, false),
            span("late", 20 * H, true),
            span("future", 30 * H, true),
        ];
        let av = s
            .availability(&nodes, 0, 24 * H, 24 * H)
            .expect("availability");
        assert_eq!(av[0].availability_pct, Some(0.0), "{:?}", av[0]);
        assert_eq!(av[0].down_ms, 4 * H);
        assert_eq!(av[0].unmonitored_ms, 20 * H);
        assert!(av[0].never_seen);
        assert_eq!(av[0].incidents, 1);
        // Seen: 1 h down of the 4 h since enrollment.
        assert_eq!(av[1].availability_pct, Some(75.0), "{:?}", av[1]);
        assert_eq!(av[1].unmonitored_ms, 20 * H);
        // Enrolled after the period: nothing to say.
        assert_eq!(av[2].availability_pct, None);
        assert_eq!(av[2].unmonitored_ms, 24 * H);
        // With maintenance over the never-seen node's last hour, that hour
        // is maintenance, the rest down.
        s.add_maintenance(&Maintenance {
            id: 0,
            node_id: Some("never".into()),
            agency: None,
            starts_ms: 23 * H,
            ends_ms: 25 * H,
            reason: "pasang router".into(),
            created_by: "noc".into(),
            created_ms: 0,
        })
        .expect("maintenance");
        let av = s
            .availability(&nodes[..1], 0, 24 * H, 24 * H)
            .expect("availability");
        assert_eq!((av[0].down_ms, av[0].maintenance_ms), (3 * H, H));
        assert_eq!(av[0].availability_pct, Some(0.0));
        s.resolve(a.id, 24 * H).expect("resolve");
    }

    #[test]
    fn listing_puts_unacknowledged_open_incidents_first() {
        let (_d, mut s) = store();
        let (a, _) = s.open(&new("n1", "down", 1_000)).expect("open");
        s.resolve(a.id, 2_000).expect("resolve");
        let (b, _) = s.open(&new("n2", "down", 500)).expect("open");
        let (c, _) = s.open(&new("n3", "down", 3_000)).expect("open");
        s.ack(c.id, "x", 4_000).expect("ack");
        let all = s
            .list(&IncidentFilter {
                limit: 10,
                ..Default::default()
            })
            .expect("list");
        let ids: Vec<i64> = all.iter().map(|i| i.id).collect();
        assert_eq!(ids, [b.id, c.id, a.id]);
        let open = s
            .list(&IncidentFilter {
                open_only: true,
                limit: 10,
                ..Default::default()
            })
            .expect("list");
        assert_eq!(open.len(), 2);
    }
}

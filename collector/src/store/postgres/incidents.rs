//! Incidents and maintenance windows on PostgreSQL: the SQLite store's
//! statements (store/incidents.rs). "One open outage per node" is the
//! partial unique index, so two collectors that open the same outage at
//! once get one row; the loser reads the winner's.

use postgres::types::ToSql;
use postgres::Row;

use super::{i, u, PgStore};
use crate::store::incidents::{check_window, is_outage_kind, Incidents};
use crate::store::{Incident, IncidentFilter, Maintenance, NewIncident, StoreError};

/// `ControlStore::incidents` on PostgreSQL.
pub struct PgIncidents {
    pg: PgStore,
}

impl PgIncidents {
    pub(super) fn new(pg: PgStore) -> Self {
        PgIncidents { pg }
    }
}

const COLUMNS: &str = "id, node_id, agency, kind, severity, root_cause, children, started_ms, detected_ms, notified_ms, acked_ms, acked_by, escalation, resolved_ms, maintenance";
const OUTAGE_KINDS: &str = "('down', 'group_down', 'unreachable', 'flapping')";
const WINDOW_COLUMNS: &str =
    "id, node_id, agency, starts_ms, ends_ms, reason, created_by, created_ms";

fn incident(r: &Row) -> Incident {
    let children: String = r.get(6);
    Incident {
        id: r.get(0),
        node_id: r.get(1),
        agency: r.get(2),
        kind: r.get(3),
        severity: r.get(4),
        root_cause: r.get(5),
        children: serde_json::from_str(&children).unwrap_or_default(),
        started_ms: u(r.get(7)),
        detected_ms: u(r.get(8)),
        notified_ms: r.get::<_, Option<i64>>(9).map(u),
        acked_ms: r.get::<_, Option<i64>>(10).map(u),
        acked_by: r.get(11),
        escalation: u32::try_from(u(r.get(12))).unwrap_or(u32::MAX),
        resolved_ms: r.get::<_, Option<i64>>(13).map(u),
        maintenance: r.get(14),
    }
}

fn window(r: &Row) -> Maintenance {
    Maintenance {
        id: r.get(0),
        node_id: r.get(1),
        agency: r.get(2),
        starts_ms: u(r.get(3)),
        ends_ms: u(r.get(4)),
        reason: r.get(5),
        created_by: r.get(6),
        created_ms: u(r.get(7)),
    }
}

fn open_for_on(
    c: &mut impl postgres::GenericClient,
    node: &str,
) -> Result<Option<Incident>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents WHERE node_id = $1 AND resolved_ms IS NULL AND kind IN {OUTAGE_KINDS}"
    );
    Ok(c.query_opt(&sql, &[&node])?.as_ref().map(incident))
}

fn open_for_kind_on(
    c: &mut impl postgres::GenericClient,
    node: &str,
    kind: &str,
) -> Result<Option<Incident>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incidents WHERE node_id = $1 AND resolved_ms IS NULL AND kind = $2"
    );
    Ok(c.query_opt(&sql, &[&node, &kind])?.as_ref().map(incident))
}

fn get_on(c: &mut impl postgres::GenericClient, id: i64) -> Result<Option<Incident>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM incidents WHERE id = $1");
    Ok(c.query_opt(&sql, &[&id])?.as_ref().map(incident))
}

impl PgIncidents {
    fn update(&self, sql: &'static str, id: i64, v: i64) -> Result<(), StoreError> {
        self.pg.run(move |c| {
            c.execute(sql, &[&id, &v])?;
            Ok(())
        })
    }

    fn list_windows(&self, from_ms: u64) -> Result<Vec<Maintenance>, StoreError> {
        self.pg.run(move |c| {
            let sql = format!(
                "SELECT {WINDOW_COLUMNS} FROM maintenance WHERE ends_ms > $1 ORDER BY starts_ms, id"
            );
            Ok(c.query(&sql, &[&i(from_ms)])?.iter().map(window).collect())
        })
    }
}

impl Incidents for PgIncidents {
    fn open_for(&self, node: &str) -> Result<Option<Incident>, StoreError> {
        let node = node.to_owned();
        self.pg.run(move |c| open_for_on(c, &node))
    }

    fn open_for_kind(&self, node: &str, kind: &str) -> Result<Option<Incident>, StoreError> {
        let (node, kind) = (node.to_owned(), kind.to_owned());
        self.pg.run(move |c| open_for_kind_on(c, &node, &kind))
    }

    fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.pg.run(move |c| get_on(c, id))
    }

    fn open(&mut self, n: &NewIncident<'_>) -> Result<(Incident, bool), StoreError> {
        let outage = is_outage_kind(n.kind);
        let (node, agency, kind, severity) = (
            n.node_id.to_owned(),
            n.agency.to_owned(),
            n.kind.to_owned(),
            n.severity.to_owned(),
        );
        let root = n.root_cause.map(str::to_owned);
        let children = serde_json::to_string(n.children).unwrap_or_else(|_| "[]".into());
        let (started, detected, maintenance) = (i(n.started_ms), i(n.detected_ms), n.maintenance);
        self.pg.run(move |c| {
            let existing = |c: &mut postgres::Client| {
                if outage {
                    open_for_on(c, &node)
                } else {
                    open_for_kind_on(c, &node, &kind)
                }
            };
            if let Some(e) = existing(c)? {
                return Ok((e, false));
            }
            // Another collector may insert between the read and here: the
            // unique index turns ours into nothing, and theirs is the one.
            let row = c.query_opt(
                &format!(
                    "INSERT INTO incidents (node_id, agency, kind, severity, root_cause, children,
                                            started_ms, detected_ms, maintenance)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
                ),
                &[
                    &node,
                    &agency,
                    &kind,
                    &severity,
                    &root,
                    &children,
                    &started,
                    &detected,
                    &maintenance,
                ],
            )?;
            match row {
                Some(r) => Ok((incident(&r), true)),
                None => existing(c)?.map(|e| (e, false)).ok_or(StoreError::Corrupt {
                    table: "incidents",
                    detail: format!("no open incident of {node} after a conflicting insert"),
                }),
            }
        })
    }

    fn set_kind(&mut self, id: i64, kind: &str) -> Result<(), StoreError> {
        let kind = kind.to_owned();
        self.pg.run(move |c| {
            c.execute(
                "UPDATE incidents SET kind = $2 WHERE id = $1",
                &[&id, &kind],
            )?;
            Ok(())
        })
    }

    fn resolve(&mut self, id: i64, at_ms: u64) -> Result<(), StoreError> {
        self.update(
            "UPDATE incidents SET resolved_ms = $2 WHERE id = $1 AND resolved_ms IS NULL",
            id,
            i(at_ms),
        )
    }

    fn mark_notified(&mut self, id: i64, at_ms: u64) -> Result<(), StoreError> {
        self.update(
            "UPDATE incidents SET notified_ms = COALESCE(notified_ms, $2) WHERE id = $1",
            id,
            i(at_ms),
        )
    }

    fn set_escalation(&mut self, id: i64, level: u32) -> Result<(), StoreError> {
        self.update(
            "UPDATE incidents SET escalation = GREATEST(escalation, $2) WHERE id = $1",
            id,
            i64::from(level),
        )
    }

    fn ack(&mut self, id: i64, by: &str, at_ms: u64) -> Result<Option<Incident>, StoreError> {
        let by = by.to_owned();
        self.pg.run(move |c| {
            c.execute(
                "UPDATE incidents SET acked_ms = $2, acked_by = $3 WHERE id = $1 AND acked_ms IS NULL",
                &[&id, &i(at_ms), &by],
            )?;
            get_on(c, id)
        })
    }

    fn list(&self, f: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let f = f.clone();
        self.pg.run(move |c| {
            let mut sql = format!("SELECT {COLUMNS} FROM incidents WHERE TRUE");
            let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
            if let Some(n) = f.node_id {
                args.push(Box::new(n));
                sql += &format!(" AND node_id = ${}", args.len());
            }
            if let Some(a) = f.agency {
                args.push(Box::new(a));
                sql += &format!(" AND agency = ${}", args.len());
            }
            if f.open_only {
                sql += " AND resolved_ms IS NULL";
            }
            if let Some(from) = f.from_ms {
                args.push(Box::new(i(from)));
                sql += &format!(
                    " AND (resolved_ms IS NULL OR resolved_ms >= ${})",
                    args.len()
                );
            }
            if let Some(to) = f.to_ms {
                args.push(Box::new(i(to)));
                sql += &format!(" AND started_ms < ${}", args.len());
            }
            sql += " ORDER BY (resolved_ms IS NULL AND acked_ms IS NULL) DESC, started_ms DESC, id DESC";
            args.push(Box::new(i(f.limit.max(1) as u64)));
            sql += &format!(" LIMIT ${}", args.len());
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
            Ok(c.query(&sql, &refs)?.iter().map(incident).collect())
        })
    }

    fn unacknowledged(&self) -> Result<Vec<Incident>, StoreError> {
        self.pg.run(|c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM incidents
                 WHERE resolved_ms IS NULL AND acked_ms IS NULL AND notified_ms IS NOT NULL
                 ORDER BY id"
            );
            Ok(c.query(&sql, &[])?.iter().map(incident).collect())
        })
    }

    fn add_maintenance(&mut self, m: &Maintenance) -> Result<Maintenance, StoreError> {
        check_window(m)?;
        let m = m.clone();
        self.pg.run(move |c| {
            let row = c.query_one(
                "INSERT INTO maintenance (node_id, agency, starts_ms, ends_ms, reason, created_by, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &m.node_id,
                    &m.agency,
                    &i(m.starts_ms),
                    &i(m.ends_ms),
                    &m.reason,
                    &m.created_by,
                    &i(m.created_ms),
                ],
            )?;
            Ok(Maintenance {
                id: row.get(0),
                ..m
            })
        })
    }

    fn maintenance_window(&self, id: i64) -> Result<Option<Maintenance>, StoreError> {
        self.pg.run(move |c| {
            let sql = format!("SELECT {WINDOW_COLUMNS} FROM maintenance WHERE id = $1");
            Ok(c.query_opt(&sql, &[&id])?.as_ref().map(window))
        })
    }

    fn update_maintenance(&mut self, m: &Maintenance) -> Result<bool, StoreError> {
        check_window(m)?;
        let m = m.clone();
        self.pg.run(move |c| {
            Ok(c.execute(
                "UPDATE maintenance SET starts_ms = $2, ends_ms = $3, reason = $4 WHERE id = $1",
                &[&m.id, &i(m.starts_ms), &i(m.ends_ms), &m.reason],
            )? == 1)
        })
    }

    fn delete_maintenance(&mut self, id: i64) -> Result<bool, StoreError> {
        self.pg
            .run(move |c| Ok(c.execute("DELETE FROM maintenance WHERE id = $1", &[&id])? == 1))
    }

    fn prune_maintenance(&mut self, before_ms: u64) -> Result<usize, StoreError> {
        self.pg.run(move |c| {
            let n = c.execute(
                "DELETE FROM maintenance WHERE ends_ms < $1",
                &[&i(before_ms)],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn open_maintenance_count(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.pg.run(move |c| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM maintenance WHERE ends_ms > $1",
                    &[&i(now_ms)],
                )?
                .get(0);
            Ok(u(n))
        })
    }

    fn maintenance_since(&self, from_ms: u64) -> Result<Vec<Maintenance>, StoreError> {
        self.list_windows(from_ms)
    }
}

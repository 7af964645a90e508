//! `ControlStore` on PostgreSQL: registry, enrollment, inventory, policies,
//! lists (the SQLite counterparts: registry.rs, lists.rs).

use std::time::{Duration, SystemTime};

use postgres::{GenericClient, Row, Transaction};
use simpul_proto::inventory::Inventory;
use simpul_proto::wire::{Health, PolicyOutcome};

use super::{i, u, PgStore};
use crate::store::codec::{nanos, rfc_ns};
use crate::store::registry::{check_code, ct_eq, new_secret, sha256};
use crate::store::traits::{
    ControlStore, DefaultPolicyVersion, ListSource, ListVersion, NodePolicyState, PolicyVersion,
};
use crate::store::{AuthError, IncidentStore, NodeInfo, NodeStatus, StoreError};

impl From<postgres::Error> for AuthError {
    fn from(e: postgres::Error) -> Self {
        AuthError::Store(e.into())
    }
}

fn sync_agencies(tx: &mut Transaction<'_>, inv: &Inventory) -> Result<(), StoreError> {
    tx.execute("UPDATE agencies SET active = FALSE", &[])?;
    for a in &inv.agencies {
        check_code("agency code", &a.code)?;
        tx.execute(
            "INSERT INTO agencies (code, name, active) VALUES ($1, $2, TRUE)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, active = TRUE",
            &[&a.code, &a.display_name()],
        )?;
        tx.execute("DELETE FROM units WHERE agency = $1", &[&a.code])?;
        for un in &a.units {
            check_code("unit code", &un.code)?;
            let name = if un.name.is_empty() {
                &un.code
            } else {
                &un.name
            };
            tx.execute(
                "INSERT INTO units (agency, code, name) VALUES ($1, $2, $3)
                 ON CONFLICT (agency, code) DO UPDATE SET name = excluded.name",
                &[&a.code, &un.code, name],
            )?;
        }
    }
    Ok(())
}

const POLICY_COLS: &str = "p.agency, p.version, p.policy_json, p.signature, p.key_id,
    p.created_ms, p.created_by, p.comment, p.document, p.default_version";

fn policy_row(r: &Row) -> PolicyVersion {
    PolicyVersion {
        agency: r.get(0),
        version: u(r.get(1)),
        policy_json: r.get(2),
        signature: r.get(3),
        key_id: r.get(4),
        created_ms: u(r.get(5)),
        created_by: r.get(6),
        comment: r.get(7),
        document: r.get(8),
        default_version: u(r.get(9)),
    }
}

const LIST_COLS: &str = "name, version, sha256, domains, stored_bytes, lines, invalid, state,
    hold_reason, origin, created_ms, created_by, comment, decided_ms, decided_by";

fn list_row(r: &Row) -> ListVersion {
    ListVersion {
        name: r.get(0),
        version: u(r.get(1)),
        sha256: r.get(2),
        domains: u(r.get(3)),
        stored_bytes: u(r.get(4)),
        lines: u(r.get(5)),
        invalid: u(r.get(6)),
        state: r.get(7),
        hold_reason: r.get(8),
        origin: r.get(9),
        created_ms: u(r.get(10)),
        created_by: r.get(11),
        comment: r.get(12),
        decided_ms: r.get::<_, Option<i64>>(13).map(u),
        decided_by: r.get(14),
    }
}

fn outcome(s: &str) -> Result<PolicyOutcome, StoreError> {
    match s {
        "applied" => Ok(PolicyOutcome::Applied),
        "rejected" => Ok(PolicyOutcome::Rejected),
        "failed" => Ok(PolicyOutcome::Failed),
        other => Err(StoreError::Corrupt {
            table: "node_policy_state",
            detail: format!("state {other:?}"),
        }),
    }
}

fn authenticate_on(
    c: &mut impl GenericClient,
    node_id: &str,
    credential: &str,
) -> Result<String, AuthError> {
    let Some(r) = c.query_opt(
        "SELECT agency, revoked, credential_sha256 FROM nodes WHERE node_id = $1",
        &[&node_id],
    )?
    else {
        return Err(AuthError::UnknownNode(node_id.to_owned()));
    };
    let (agency, revoked, stored): (String, bool, Vec<u8>) = (r.get(0), r.get(1), r.get(2));
    // As on SQLite: the credential first, so only its holder learns of a revocation.
    if !ct_eq(&sha256(credential), &stored) {
        return Err(AuthError::BadCredential(node_id.to_owned()));
    }
    if revoked {
        return Err(AuthError::Revoked(node_id.to_owned()));
    }
    Ok(agency)
}

/// Refusals travel back inside Ok; only store failures are Err.
fn refused<T>(r: Result<T, AuthError>) -> Result<Result<T, AuthError>, StoreError> {
    match r {
        Err(AuthError::Store(e)) => Err(e),
        other => Ok(other),
    }
}

impl ControlStore for PgStore {
    fn check(&self) -> Result<(), StoreError> {
        self.run(|c| {
            c.query_one("SELECT version FROM simpul_schema", &[])?;
            Ok(())
        })
    }

    fn nodes(&self, now: SystemTime, timeout: Duration) -> Result<Vec<NodeInfo>, StoreError> {
        let now_ns = nanos(now);
        let timeout_ns = i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
        self.run(move |c| {
            let rows = c.query(
                "SELECT node_id, agency, hostname, address, agent_version, last_seen,
                        enrolled_at, revoked, last_health_json
                 FROM nodes ORDER BY agency, node_id",
                &[],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let last_seen: Option<i64> = r.get(5);
                let revoked: bool = r.get(7);
                let status = match last_seen {
                    _ if revoked => NodeStatus::Revoked,
                    None => NodeStatus::Never,
                    Some(t) if now_ns.saturating_sub(t) <= timeout_ns => NodeStatus::Up,
                    Some(_) => NodeStatus::Down,
                };
                let health = r
                    .get::<_, Option<String>>(8)
                    .map(|h| serde_json::from_str(&h))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt {
                        table: "nodes",
                        detail: format!("health JSON: {e}"),
                    })?;
                out.push(NodeInfo {
                    node_id: r.get(0),
                    agency: r.get(1),
                    hostname: r.get(2),
                    address: r.get(3),
                    agent_version: r.get(4),
                    status,
                    last_seen: last_seen.map(rfc_ns),
                    enrolled_at: rfc_ns(r.get(6)),
                    revoked,
                    health,
                    liveness: None,
                    policy: None,
                    // Drops are counted per boot beside the flows, in the
                    // flow store: not known here.
                    dropped_records: 0,
                    refused_records: 0,
                });
            }
            Ok(out)
        })
    }

    fn authenticate(&self, node_id: &str, credential: &str) -> Result<String, AuthError> {
        let (n, cred) = (node_id.to_owned(), credential.to_owned());
        self.run(move |c| refused(authenticate_on(c, &n, &cred)))?
    }

    fn create_enrollment_token(
        &self,
        agency: &str,
        node_id: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        check_code("node id", node_id)?;
        let (agency, node_id) = (agency.to_owned(), node_id.to_owned());
        self.run(move |c| {
            let mut tx = c.transaction()?;
            let active: Option<bool> = tx
                .query_opt("SELECT active FROM agencies WHERE code = $1", &[&agency])?
                .map(|r| r.get(0));
            if active != Some(true) {
                return Err(StoreError::UnknownAgency(agency));
            }
            let token = new_secret();
            let now = nanos(SystemTime::now());
            let ttl_ns = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO enrollment_tokens (token_sha256, agency, node_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &&sha256(&token)[..],
                    &agency,
                    &node_id,
                    &now,
                    &now.saturating_add(ttl_ns),
                ],
            )?;
            tx.commit()?;
            Ok(token)
        })
    }

    fn enroll(&self, node_id: &str, token: &str) -> Result<(String, String), AuthError> {
        let (node_id, token) = (node_id.to_owned(), token.to_owned());
        let r = self.run(move |c| {
            let mut tx = c.transaction()?;
            let hash = sha256(&token);
            // FOR UPDATE: two collectors trading the same token at once
            // take turns, and the second sees it used.
            let row = tx.query_opt(
                "SELECT agency, node_id, expires_at, used_at
                 FROM enrollment_tokens WHERE token_sha256 = $1 FOR UPDATE",
                &[&&hash[..]],
            )?;
            let Some(row) = row else {
                return Ok(Err(AuthError::UnknownToken));
            };
            let (agency, token_node, expires_at, used_at): (String, String, i64, Option<i64>) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if token_node != node_id {
                return Ok(Err(AuthError::TokenForOtherNode));
            }
            if used_at.is_some() {
                return Ok(Err(AuthError::TokenUsed));
            }
            let now = nanos(SystemTime::now());
            if now >= expires_at {
                return Ok(Err(AuthError::TokenExpired));
            }
            let credential = new_secret();
            tx.execute(
                "UPDATE enrollment_tokens SET used_at = $2 WHERE token_sha256 = $1",
                &[&&hash[..], &now],
            )?;
            tx.execute(
                "INSERT INTO nodes (node_id, agency, enrolled_at, credential_sha256)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (node_id) DO UPDATE SET agency = excluded.agency,
                     enrolled_at = excluded.enrolled_at,
                     credential_sha256 = excluded.credential_sha256, revoked = FALSE",
                &[&node_id, &agency, &now, &&sha256(&credential)[..]],
            )?;
            tx.commit()?;
            Ok(Ok((credential, agency)))
        })?;
        r
    }

    fn revoke_node(&self, node_id: &str) -> Result<(), StoreError> {
        let node_id = node_id.to_owned();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE nodes SET revoked = TRUE WHERE node_id = $1",
                &[&node_id],
            )?;
            if n == 0 {
                return Err(StoreError::UnknownNode(node_id));
            }
            tx.execute(
                "DELETE FROM enrollment_tokens WHERE node_id = $1 AND used_at IS NULL",
                &[&node_id],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn node_seen(
        &self,
        node_id: &str,
        address: &str,
        version: &str,
        hostname: &str,
        health: Option<&Health>,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let health = health.map(serde_json::to_string).transpose()?;
        let args = (
            node_id.to_owned(),
            address.to_owned(),
            version.to_owned(),
            hostname.to_owned(),
            nanos(at),
        );
        self.run(move |c| {
            let (node_id, address, version, hostname, at) = args;
            // Frequent and replaceable (the next heartbeat says it again):
            // not worth waiting for the WAL flush, as SQLite's NORMAL
            // connection does not.
            let mut tx = c.transaction()?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
            let n = tx.execute(
                "UPDATE nodes SET address = $2, agent_version = $3, hostname = $4,
                     last_seen = greatest(coalesce(last_seen, 0), $5),
                     last_health_json = coalesce($6, last_health_json)
                 WHERE node_id = $1",
                &[&node_id, &address, &version, &hostname, &at, &health],
            )?;
            if n == 0 {
                return Err(StoreError::UnknownNode(node_id));
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn save_inventory(&self, inv: &Inventory, at_ms: u64) -> Result<Inventory, StoreError> {
        let inv = inv.clone();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            // The next version number depends on the last: one saver at a time.
            tx.batch_execute("LOCK TABLE inventory_versions IN EXCLUSIVE MODE")?;
            let latest = tx.query_opt(
                "SELECT version, json FROM inventory_versions ORDER BY version DESC LIMIT 1",
                &[],
            )?;
            let latest: Option<(i64, String)> = latest.map(|r| (r.get(0), r.get(1)));
            if let Some((v, json)) = &latest {
                let stored: Inventory = serde_json::from_str(json)?;
                if stored.same_content(&inv) {
                    sync_agencies(&mut tx, &stored)?;
                    tx.commit()?;
                    return Ok(Inventory {
                        version: u(*v),
                        ..stored
                    });
                }
            }
            let version = latest.map_or(1, |(v, _)| v + 1);
            let saved = Inventory {
                version: u(version),
                ..inv
            };
            tx.execute(
                "INSERT INTO inventory_versions (version, json, created_ms) VALUES ($1, $2, $3)",
                &[&version, &serde_json::to_string(&saved)?, &i(at_ms)],
            )?;
            sync_agencies(&mut tx, &saved)?;
            tx.commit()?;
            Ok(saved)
        })
    }

    fn latest_inventory(&self) -> Result<Option<Inventory>, StoreError> {
        self.run(|c| {
            let json: Option<String> = c
                .query_opt(
                    "SELECT json FROM inventory_versions ORDER BY version DESC LIMIT 1",
                    &[],
                )?
                .map(|r| r.get(0));
            Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
        })
    }

    fn save_policies(
        &self,
        default: Option<&DefaultPolicyVersion>,
        versions: &[PolicyVersion],
    ) -> Result<(), StoreError> {
        let (default, versions) = (default.cloned(), versions.to_vec());
        self.run(move |c| {
            let mut tx = c.transaction()?;
            if let Some(d) = default {
                tx.execute(
                    "INSERT INTO policy_default_versions (version, document, created_ms, created_by, comment)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&i(d.version), &d.document, &i(d.created_ms), &d.created_by, &d.comment],
                )?;
            }
            for p in &versions {
                tx.execute(
                    "INSERT INTO policy_versions
                         (agency, version, policy_json, signature, key_id, created_ms, created_by,
                          comment, document, default_version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &p.agency,
                        &i(p.version),
                        &p.policy_json,
                        &p.signature,
                        &p.key_id,
                        &i(p.created_ms),
                        &p.created_by,
                        &p.comment,
                        &p.document,
                        &i(p.default_version),
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn latest_policies(&self) -> Result<Vec<PolicyVersion>, StoreError> {
        self.run(|c| {
            let sql = format!(
                "SELECT {POLICY_COLS} FROM policy_versions p
                 WHERE p.version = (SELECT max(version) FROM policy_versions q WHERE q.agency = p.agency)
                 ORDER BY p.agency"
            );
            Ok(c.query(&sql, &[])?.iter().map(policy_row).collect())
        })
    }

    fn policy_versions(
        &self,
        agency: &str,
        limit: usize,
    ) -> Result<Vec<PolicyVersion>, StoreError> {
        let agency = agency.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let sql = format!(
                "SELECT {POLICY_COLS} FROM policy_versions p WHERE p.agency = $1
                 ORDER BY p.version DESC LIMIT $2"
            );
            Ok(c.query(&sql, &[&agency, &limit])?
                .iter()
                .map(policy_row)
                .collect())
        })
    }

    fn policy_version(
        &self,
        agency: &str,
        version: u64,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        let agency = agency.to_owned();
        self.run(move |c| {
            let sql = format!(
                "SELECT {POLICY_COLS} FROM policy_versions p WHERE p.agency = $1 AND p.version = $2"
            );
            Ok(c.query_opt(&sql, &[&agency, &i(version)])?
                .as_ref()
                .map(policy_row))
        })
    }

    fn default_policies(&self, limit: usize) -> Result<Vec<DefaultPolicyVersion>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let rows = c.query(
                "SELECT version, document, created_ms, created_by, comment
                 FROM policy_default_versions ORDER BY version DESC LIMIT $1",
                &[&limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| DefaultPolicyVersion {
                    version: u(r.get(0)),
                    document: r.get(1),
                    created_ms: u(r.get(2)),
                    created_by: r.get(3),
                    comment: r.get(4),
                })
                .collect())
        })
    }

    fn set_node_policy_state(&self, s: &NodePolicyState) -> Result<(), StoreError> {
        let problems = serde_json::to_string(&s.problems)?;
        let s = s.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO node_policy_state (node_id, version, state, problems, error, at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (node_id) DO UPDATE SET version = excluded.version,
                     state = excluded.state, problems = excluded.problems,
                     error = excluded.error, at_ms = excluded.at_ms",
                &[
                    &s.node_id,
                    &i(s.version),
                    &s.state.name(),
                    &problems,
                    &s.error,
                    &i(s.at_ms),
                ],
            )?;
            Ok(())
        })
    }

    fn node_policy_states(&self) -> Result<Vec<NodePolicyState>, StoreError> {
        self.run(|c| {
            let rows = c.query(
                "SELECT node_id, version, state, problems, error, at_ms FROM node_policy_state",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(NodePolicyState {
                        node_id: r.get(0),
                        version: u(r.get(1)),
                        state: outcome(r.get(2))?,
                        problems: serde_json::from_str(r.get(3))?,
                        error: r.get(4),
                        at_ms: u(r.get(5)),
                    })
                })
                .collect()
        })
    }

    fn save_list_version(&self, v: &ListVersion) -> Result<(), StoreError> {
        let v = v.clone();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            if v.state == "current" {
                tx.execute(
                    "UPDATE list_versions SET state = 'superseded' WHERE name = $1 AND state = 'current'",
                    &[&v.name],
                )?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO list_versions ({LIST_COLS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ),
                &[
                    &v.name,
                    &i(v.version),
                    &v.sha256,
                    &i(v.domains),
                    &i(v.stored_bytes),
                    &i(v.lines),
                    &i(v.invalid),
                    &v.state,
                    &v.hold_reason,
                    &v.origin,
                    &i(v.created_ms),
                    &v.created_by,
                    &v.comment,
                    &v.decided_ms.map(i),
                    &v.decided_by,
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn decide_list_version(
        &self,
        name: &str,
        version: u64,
        confirm: bool,
        by: &str,
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        let (name, by) = (name.to_owned(), by.to_owned());
        self.run(move |c| {
            let mut tx = c.transaction()?;
            let held: Option<String> = tx
                .query_opt(
                    "SELECT state FROM list_versions WHERE name = $1 AND version = $2 FOR UPDATE",
                    &[&name, &i(version)],
                )?
                .map(|r| r.get(0));
            if held.as_deref() != Some("held") {
                return Ok(false);
            }
            if confirm {
                tx.execute(
                    "UPDATE list_versions SET state = 'superseded' WHERE name = $1 AND state = 'current'",
                    &[&name],
                )?;
            }
            let state = if confirm { "current" } else { "discarded" };
            tx.execute(
                "UPDATE list_versions SET state = $3, decided_ms = $4, decided_by = $5
                 WHERE name = $1 AND version = $2",
                &[&name, &i(version), &state, &i(at_ms), &by],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn list_versions(
        &self,
        name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListVersion>, StoreError> {
        let name = name.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let rows = match name {
                Some(n) => c.query(
                    &format!(
                        "SELECT {LIST_COLS} FROM list_versions WHERE name = $1
                         ORDER BY version DESC LIMIT $2"
                    ),
                    &[&n, &limit],
                )?,
                None => c.query(
                    &format!(
                        "SELECT {LIST_COLS} FROM list_versions ORDER BY name, version DESC LIMIT $1"
                    ),
                    &[&limit],
                )?,
            };
            Ok(rows.iter().map(list_row).collect())
        })
    }

    fn open_list_versions(&self) -> Result<Vec<ListVersion>, StoreError> {
        self.run(|c| {
            let sql = format!(
                "SELECT {LIST_COLS} FROM list_versions WHERE state IN ('current', 'held')
                 ORDER BY name, version DESC"
            );
            Ok(c.query(&sql, &[])?.iter().map(list_row).collect())
        })
    }

    fn set_list_source(&self, s: &ListSource) -> Result<(), StoreError> {
        let s = s.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO list_sources (name, url, format, interval_secs, max_shrink_percent,
                     last_attempt_ms, last_ok_ms, last_error, updated_ms, updated_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (name) DO UPDATE SET url = excluded.url, format = excluded.format,
                     interval_secs = excluded.interval_secs,
                     max_shrink_percent = excluded.max_shrink_percent,
                     last_attempt_ms = excluded.last_attempt_ms, last_ok_ms = excluded.last_ok_ms,
                     last_error = excluded.last_error, updated_ms = excluded.updated_ms,
                     updated_by = excluded.updated_by",
                &[
                    &s.name,
                    &s.url,
                    &s.format,
                    &i(s.interval_secs),
                    &s.max_shrink_percent,
                    &s.last_attempt_ms.map(i),
                    &s.last_ok_ms.map(i),
                    &s.last_error,
                    &i(s.updated_ms),
                    &s.updated_by,
                ],
            )?;
            Ok(())
        })
    }

    fn remove_list_source(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(move |c| Ok(c.execute("DELETE FROM list_sources WHERE name = $1", &[&name])? > 0))
    }

    fn list_sources(&self) -> Result<Vec<ListSource>, StoreError> {
        self.run(|c| {
            let rows = c.query(
                "SELECT name, url, format, interval_secs, max_shrink_percent, last_attempt_ms,
                        last_ok_ms, last_error, updated_ms, updated_by
                 FROM list_sources ORDER BY name",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| ListSource {
                    name: r.get(0),
                    url: r.get(1),
                    format: r.get(2),
                    interval_secs: u(r.get(3)),
                    max_shrink_percent: r.get(4),
                    last_attempt_ms: r.get::<_, Option<i64>>(5).map(u),
                    last_ok_ms: r.get::<_, Option<i64>>(6).map(u),
                    last_error: r.get(7),
                    updated_ms: u(r.get(8)),
                    updated_by: r.get(9),
                })
                .collect())
        })
    }

    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.pg_try_lease(name, holder, ttl)
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        self.pg_release_lease(name, holder)
    }

    fn leases(&self, limit: usize) -> Result<Vec<crate::store::Lease>, StoreError> {
        self.pg_leases(limit)
    }

    fn incidents(&self) -> Result<IncidentStore, StoreError> {
        Ok(Box::new(super::PgIncidents::new(self.clone())))
    }

    fn database_path(&self) -> &std::path::Path {
        // No file: the metrics' size figures read nothing here.
        std::path::Path::new("")
    }

    fn notification_log(
        &self,
    ) -> Result<Box<dyn crate::notify::NotifyLog>, crate::notify::NotifyError> {
        Ok(Box::new(super::PgNotifyLog::new(self.clone())))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

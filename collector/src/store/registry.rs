//! The control store on SQLite: agencies and units (kept in step with the
//! inventory), nodes and enrollment, inventory and policy versions, and
//! what nodes said about their policies.
//!
//! Two connections behind mutexes, beside the flow writer: one with
//! `synchronous=FULL` for what must survive a power cut (tokens,
//! credentials, revocations, inventory, policies) and one with `NORMAL` for
//! the frequent, replaceable node status (last seen, health).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use simpul_proto::inventory::Inventory;
use simpul_proto::wire::{Health, PolicyOutcome};

use super::codec::nanos;
use super::traits::{DefaultPolicyVersion, NodePolicyState, PolicyVersion};
use super::{AuthError, StoreError};

/// Agency codes, unit codes and node ids: `[A-Za-z0-9_-]{1,64}` (API.md), so
/// they are safe in URLs, logs and file names.
pub(crate) fn check_code(what: &'static str, s: &str) -> Result<(), StoreError> {
    if simpul_proto::valid_code(s) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what,
            value: s.chars().take(80).collect(),
            reason: "must be 1-64 characters of A-Z a-z 0-9 _ -",
        })
    }
}

/// 32 random bytes, hex: what tokens and credentials look like on the wire.
pub(super) fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub(super) fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares every byte whatever the first difference, so response time does
/// not tell an attacker how much of a guess was right.
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn authenticate_on(
    conn: &Connection,
    node_id: &str,
    credential: &str,
) -> Result<String, AuthError> {
    let row: Option<(String, bool, Vec<u8>)> = conn
        .prepare_cached("SELECT agency, revoked, credential_sha256 FROM nodes WHERE node_id = ?1")?
        .query_row([node_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((agency, revoked, stored)) = row else {
        return Err(AuthError::UnknownNode(node_id.to_owned()));
    };
    // The credential is checked before the revoked flag so that only its
    // holder learns the node was revoked.
    if !ct_eq(&sha256(credential), &stored) {
        return Err(AuthError::BadCredential(node_id.to_owned()));
    }
    if revoked {
        return Err(AuthError::Revoked(node_id.to_owned()));
    }
    Ok(agency)
}

/// The control connections (see the module docs).
#[derive(Debug)]
pub(crate) struct Control {
    durable: Mutex<Connection>,
    status: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic elsewhere while holding it leaves a usable connection.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Control {
    pub(crate) fn new(durable: Connection, status: Connection) -> Result<Control, StoreError> {
        durable.pragma_update(None, "synchronous", "FULL")?;
        status.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Control {
            durable: Mutex::new(durable),
            status: Mutex::new(status),
        })
    }

    /// The durable connection, for the operator side (`access.rs`).
    pub(crate) fn durable(&self) -> MutexGuard<'_, Connection> {
        lock(&self.durable)
    }

    pub(crate) fn authenticate(
        &self,
        node_id: &str,
        credential: &str,
    ) -> Result<String, AuthError> {
        authenticate_on(&lock(&self.durable), node_id, credential)
    }

    /// Make the agencies and units match the inventory. Agencies missing
    /// from it are kept (nodes and history name them) but no longer active.
    fn sync_agencies(tx: &rusqlite::Transaction<'_>, inv: &Inventory) -> Result<(), StoreError> {
        tx.execute("UPDATE agencies SET active = 0", [])?;
        for a in &inv.agencies {
            check_code("agency code", &a.code)?;
            tx.execute(
                "INSERT INTO agencies (code, name, active) VALUES (?1, ?2, 1)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name, active = 1",
                params![a.code, a.display_name()],
            )?;
            tx.execute("DELETE FROM units WHERE agency = ?1", [&a.code])?;
            for u in &a.units {
                check_code("unit code", &u.code)?;
                let name = if u.name.is_empty() { &u.code } else { &u.name };
                tx.execute(
                    "INSERT OR REPLACE INTO units (agency, code, name) VALUES (?1, ?2, ?3)",
                    params![a.code, u.code, name],
                )?;
            }
        }
        Ok(())
    }

    pub(crate) fn save_inventory(
        &self,
        inv: &Inventory,
        at_ms: u64,
    ) -> Result<Inventory, StoreError> {
        let mut conn = lock(&self.durable);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let latest: Option<(i64, String)> = tx
            .query_row(
                "SELECT version, json FROM inventory_versions ORDER BY version DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((v, json)) = &latest {
            let stored: Inventory = serde_json::from_str(json)?;
            if stored.same_content(inv) {
                Self::sync_agencies(&tx, &stored)?;
                tx.commit()?;
                return Ok(Inventory {
                    version: u64::try_from(*v).unwrap_or(0),
                    ..stored
                });
            }
        }
        let version = latest.map_or(1, |(v, _)| v + 1);
        let saved = Inventory {
            version: u64::try_from(version).unwrap_or(0),
            ..inv.clone()
        };
        tx.execute(
            "INSERT INTO inventory_versions (version, json, created_ms) VALUES (?1, ?2, ?3)",
            params![version, serde_json::to_string(&saved)?, at_ms as i64],
        )?;
        Self::sync_agencies(&tx, &saved)?;
        tx.commit()?;
        Ok(saved)
    }

    pub(crate) fn latest_inventory(&self) -> Result<Option<Inventory>, StoreError> {
        let conn = lock(&self.durable);
        let json: Option<String> = conn
            .query_row(
                "SELECT json FROM inventory_versions ORDER BY version DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    pub(crate) fn save_policies(
        &self,
        default: Option<&DefaultPolicyVersion>,
        versions: &[PolicyVersion],
    ) -> Result<(), StoreError> {
        let mut conn = lock(&self.durable);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(d) = default {
            tx.execute(
                "INSERT INTO policy_default_versions (version, document, created_ms, created_by, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![d.version as i64, d.document, d.created_ms as i64, d.created_by, d.comment],
            )?;
        }
        for p in versions {
            tx.execute(
                "INSERT INTO policy_versions
                     (agency, version, policy_json, signature, key_id, created_ms, created_by, comment,
                      document, default_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    p.agency,
                    p.version as i64,
                    p.policy_json,
                    p.signature,
                    p.key_id,
                    p.created_ms as i64,
                    p.created_by,
                    p.comment,
                    p.document,
                    p.default_version as i64
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn policy_rows(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<PolicyVersion>, StoreError> {
        let conn = lock(&self.durable);
        let mut st = conn.prepare_cached(&format!(
            "SELECT p.agency, p.version, p.policy_json, p.signature, p.key_id, p.created_ms,
                    p.created_by, p.comment, p.document, p.default_version
             FROM policy_versions p {filter}"
        ))?;
        let rows = st.query_map(args, |r| {
            Ok(PolicyVersion {
                agency: r.get(0)?,
                version: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                policy_json: r.get(2)?,
                signature: r.get(3)?,
                key_id: r.get(4)?,
                created_ms: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                created_by: r.get(6)?,
                comment: r.get(7)?,
                document: r.get(8)?,
                default_version: u64::try_from(r.get::<_, i64>(9)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn latest_policies(&self) -> Result<Vec<PolicyVersion>, StoreError> {
        self.policy_rows(
            "WHERE p.version = (SELECT max(version) FROM policy_versions q WHERE q.agency = p.agency)
             ORDER BY p.agency",
            &[],
        )
    }

    pub(crate) fn policy_versions(
        &self,
        agency: &str,
        limit: usize,
    ) -> Result<Vec<PolicyVersion>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.policy_rows(
            "WHERE p.agency = ?1 ORDER BY p.version DESC LIMIT ?2",
            &[&agency, &limit],
        )
    }

    pub(crate) fn policy_version(
        &self,
        agency: &str,
        version: u64,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        Ok(self
            .policy_rows("WHERE p.agency = ?1 AND p.version = ?2", &[&agency, &v])?
            .pop())
    }

    pub(crate) fn default_policies(
        &self,
        limit: usize,
    ) -> Result<Vec<DefaultPolicyVersion>, StoreError> {
        let conn = lock(&self.durable);
        let mut st = conn.prepare_cached(
            "SELECT version, document, created_ms, created_by, comment
             FROM policy_default_versions ORDER BY version DESC LIMIT ?1",
        )?;
        let rows = st.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(DefaultPolicyVersion {
                version: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                document: r.get(1)?,
                created_ms: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                created_by: r.get(3)?,
                comment: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn set_node_policy_state(&self, s: &NodePolicyState) -> Result<(), StoreError> {
        let conn = lock(&self.status);
        conn.execute(
            "INSERT INTO node_policy_state (node_id, version, state, problems, error, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (node_id) DO UPDATE SET version = excluded.version,
                 state = excluded.state, problems = excluded.problems,
                 error = excluded.error, at_ms = excluded.at_ms",
            params![
                s.node_id,
                s.version as i64,
                s.state.name(),
                serde_json::to_string(&s.problems)?,
                s.error,
                s.at_ms as i64
            ],
        )?;
        Ok(())
    }

    pub(crate) fn node_policy_states(&self) -> Result<Vec<NodePolicyState>, StoreError> {
        let conn = lock(&self.status);
        let mut st = conn.prepare_cached(
            "SELECT node_id, version, state, problems, error, at_ms FROM node_policy_state",
        )?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let state: String = r.get(2)?;
            let state = match state.as_str() {
                "applied" => PolicyOutcome::Applied,
                "rejected" => PolicyOutcome::Rejected,
                "failed" => PolicyOutcome::Failed,
                other => {
                    return Err(StoreError::Corrupt {
                        table: "node_policy_state",
                        detail: format!("state {other:?}"),
                    })
                }
            };
            let problems: String = r.get(3)?;
            out.push(NodePolicyState {
                node_id: r.get(0)?,
                version: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                state,
                problems: serde_json::from_str(&problems)?,
                error: r.get(4)?,
                at_ms: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Issue a one-time enrollment token for `node_id` in `agency`, valid for
    /// `ttl`. Only its hash is stored: the returned string is the only copy.
    pub(crate) fn create_enrollment_token(
        &self,
        agency: &str,
        node_id: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        check_code("node id", node_id)?;
        let mut conn = lock(&self.durable);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let active: Option<bool> = tx
            .query_row(
                "SELECT active FROM agencies WHERE code = ?1",
                [agency],
                |r| r.get(0),
            )
            .optional()?;
        if active != Some(true) {
            return Err(StoreError::UnknownAgency(agency.to_owned()));
        }
        let token = new_secret();
        let now = nanos(SystemTime::now());
        let ttl_ns = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO enrollment_tokens
                 (token_sha256, agency, node_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                &sha256(&token)[..],
                agency,
                node_id,
                now,
                now.saturating_add(ttl_ns)
            ],
        )?;
        tx.commit()?;
        Ok(token)
    }

    /// Trade a one-time token for a new credential; returns (credential,
    /// agency). Re-enrolling an existing node (reinstalled agent) replaces its
    /// credential and lifts a revocation: issuing the token was the decision.
    pub(crate) fn enroll(&self, node_id: &str, token: &str) -> Result<(String, String), AuthError> {
        let mut conn = lock(&self.durable);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hash = sha256(token);
        // Looking a token up by its hash is not a timing oracle: an attacker
        // cannot steer which hash bytes a guess produces.
        let row: Option<(String, String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT agency, node_id, expires_at, used_at
                 FROM enrollment_tokens WHERE token_sha256 = ?1",
                [&hash[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((agency, token_node, expires_at, used_at)) = row else {
            return Err(AuthError::UnknownToken);
        };
        // Checked before anything is consumed: someone holding a leaked token
        // under another name must not burn it for the rightful node.
        if token_node != node_id {
            return Err(AuthError::TokenForOtherNode);
        }
        if used_at.is_some() {
            return Err(AuthError::TokenUsed);
        }
        let now = nanos(SystemTime::now());
        if now >= expires_at {
            return Err(AuthError::TokenExpired);
        }
        let credential = new_secret();
        tx.execute(
            "UPDATE enrollment_tokens SET used_at = ?2 WHERE token_sha256 = ?1",
            params![&hash[..], now],
        )?;
        tx.execute(
            "INSERT INTO nodes (node_id, agency, enrolled_at, credential_sha256)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (node_id) DO UPDATE SET agency = excluded.agency,
                 enrolled_at = excluded.enrolled_at,
                 credential_sha256 = excluded.credential_sha256, revoked = 0",
            params![node_id, agency, now, &sha256(&credential)[..]],
        )?;
        tx.commit()?;
        Ok((credential, agency))
    }

    /// Refuse the node from now on, and drop its unused tokens so a pending
    /// one cannot bring it back.
    pub(crate) fn revoke_node(&self, node_id: &str) -> Result<(), StoreError> {
        let mut conn = lock(&self.durable);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("UPDATE nodes SET revoked = 1 WHERE node_id = ?1", [node_id])?;
        if n == 0 {
            return Err(StoreError::UnknownNode(node_id.to_owned()));
        }
        tx.execute(
            "DELETE FROM enrollment_tokens WHERE node_id = ?1 AND used_at IS NULL",
            [node_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Record a Hello or heartbeat. `health: None` keeps the last health
    /// report (a Hello carries none). `last_seen` never moves backwards.
    pub(crate) fn node_seen(
        &self,
        node_id: &str,
        address: &str,
        version: &str,
        hostname: &str,
        health: Option<&Health>,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let health = health.map(serde_json::to_string).transpose()?;
        let conn = lock(&self.status);
        let n = conn
            .prepare_cached(
                "UPDATE nodes SET address = ?2, agent_version = ?3, hostname = ?4,
                     last_seen = max(coalesce(last_seen, 0), ?5),
                     last_health_json = coalesce(?6, last_health_json)
                 WHERE node_id = ?1",
            )?
            .execute(params![
                node_id,
                address,
                version,
                hostname,
                nanos(at),
                health
            ])?;
        if n == 0 {
            return Err(StoreError::UnknownNode(node_id.to_owned()));
        }
        Ok(())
    }

    pub(crate) fn nodes(
        &self,
        now: SystemTime,
        timeout: Duration,
    ) -> Result<Vec<super::NodeInfo>, StoreError> {
        super::query::nodes_on(&lock(&self.status), now, timeout)
    }
}

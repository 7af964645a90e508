//! Agencies, units, nodes and enrollment.

use std::time::{Duration, SystemTime};

use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use simpul_proto::wire::Health;

use super::codec::{nanos, time};
use super::{AuthError, Reader, StoreError, Writer};

/// An agency as configured on the collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyDef {
    pub code: String,
    pub name: String,
    pub alloc_down_bps: u64,
    pub alloc_up_bps: u64,
    #[serde(default)]
    pub units: Vec<UnitDef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitDef {
    pub code: String,
    pub name: String,
}

/// Agency codes, unit codes and node ids: `[A-Za-z0-9_-]{1,64}` (API.md), so
/// they are safe in URLs, logs and file names.
pub(crate) fn check_code(what: &'static str, s: &str) -> Result<(), StoreError> {
    if simpul_agent::config::valid_code(s) {
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
fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares every byte whatever the first difference, so response time does
/// not tell an attacker how much of a guess was right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
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

impl Reader {
    /// Check a connecting agent's `Hello`; returns its agency.
    pub fn authenticate(&self, node_id: &str, credential: &str) -> Result<String, AuthError> {
        authenticate_on(&self.conn, node_id, credential)
    }
}

impl Writer {
    /// Same as [`Reader::authenticate`], for a server that does everything on
    /// the writer thread.
    pub fn authenticate(&self, node_id: &str, credential: &str) -> Result<String, AuthError> {
        authenticate_on(&self.conn, node_id, credential)
    }

    /// Make the agencies and units match the config. Agencies missing from
    /// `defs` are kept (nodes and history name them) but no longer listed.
    pub fn sync_agencies(&mut self, defs: &[AgencyDef]) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        for d in defs {
            check_code("agency code", &d.code)?;
            if !seen.insert(d.code.as_str()) {
                return Err(StoreError::Invalid {
                    what: "agency code",
                    value: d.code.clone(),
                    reason: "appears twice",
                });
            }
            let mut units = std::collections::HashSet::new();
            for u in &d.units {
                check_code("unit code", &u.code)?;
                if !units.insert(u.code.as_str()) {
                    return Err(StoreError::Invalid {
                        what: "unit code",
                        value: format!("{}/{}", d.code, u.code),
                        reason: "appears twice in the agency",
                    });
                }
            }
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("UPDATE agencies SET active = 0", [])?;
        for d in defs {
            tx.execute(
                "INSERT INTO agencies (code, name, alloc_down_bps, alloc_up_bps, active)
                 VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                     alloc_down_bps = excluded.alloc_down_bps,
                     alloc_up_bps = excluded.alloc_up_bps, active = 1",
                params![d.code, d.name, time(d.alloc_down_bps), time(d.alloc_up_bps)],
            )?;
            tx.execute("DELETE FROM units WHERE agency = ?1", [&d.code])?;
            for u in &d.units {
                tx.execute(
                    "INSERT INTO units (agency, code, name) VALUES (?1, ?2, ?3)",
                    params![d.code, u.code, u.name],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Issue a one-time enrollment token for `node_id` in `agency`, valid for
    /// `ttl`. Only its hash is stored: the returned string is the only copy.
    pub fn create_enrollment_token(
        &mut self,
        agency: &str,
        node_id: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        check_code("node id", node_id)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    pub fn enroll(&mut self, node_id: &str, token: &str) -> Result<(String, String), AuthError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    pub fn revoke_node(&mut self, node_id: &str) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    pub fn node_seen(
        &mut self,
        node_id: &str,
        address: &str,
        version: &str,
        hostname: &str,
        health: Option<&Health>,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let health = health.map(serde_json::to_string).transpose()?;
        let n = self
            .conn
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
}

//! Operators, their sessions, API tokens and the audit chain, on the control
//! database's durable connection.
//!
//! Secrets (session cookies, API tokens) are 32 random bytes; only their
//! SHA-256 is stored, so a copy of the database logs nobody in. Passwords
//! arrive here already hashed (argon2id, `auth/password.rs`).
//!
//! The audit log is a hash chain: each row's hash covers the previous row's
//! hash and every field of its own, so changing, removing or reordering a
//! row breaks the chain from that row on (`verify_audit`). Triggers refuse
//! UPDATE and DELETE; someone with write access to the file can drop them,
//! which is what the chain is for.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::auth::Role;

/// An operator account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub display_name: String,
    #[serde(flatten)]
    pub role: Role,
    pub disabled: bool,
    pub created_ms: u64,
    pub password_changed_ms: u64,
}

/// A logged-in browser. The cookie holds a secret; the row its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Names the session in lists and for revocation (not a credential).
    pub id: String,
    pub username: String,
    /// Sent back as `X-CSRF-Token` on state-changing requests.
    #[serde(skip_serializing)]
    pub csrf_token: String,
    pub address: String,
    pub user_agent: String,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    /// Absolute end, whatever the activity.
    pub expires_ms: u64,
    /// Ends after this long without a request (None: a kiosk wall).
    pub idle_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
    /// Opened with this kiosk token (the wall screen) instead of a password:
    /// the token's role applies, and revoking the token ends the session.
    pub token_id: Option<String>,
}

/// What a new session is made of.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub username: &'a str,
    pub address: &'a str,
    pub user_agent: &'a str,
    pub now_ms: u64,
    pub expires_ms: u64,
    pub idle_ms: Option<u64>,
    pub token_id: Option<&'a str>,
}

/// A bearer token for automation (Grafana, scripts) or the wall's kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub role: Role,
    pub kiosk: bool,
    pub created_ms: u64,
    pub created_by: String,
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
    pub last_used_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub name: &'a str,
    pub role: &'a Role,
    pub kiosk: bool,
    pub created_by: &'a str,
    pub now_ms: u64,
    pub expires_ms: Option<u64>,
}

/// One audit row as it is appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAudit {
    /// Who: a username, `node:ID`, `cli:USER`, or what a failed login tried.
    pub actor: String,
    /// From where: the client address, or `cli`.
    pub address: String,
    /// What, as a dotted name: `auth.login`, `maintenance.create`, …
    pub action: String,
    /// On what: a node, an incident, a user, an agency.
    pub target: String,
    /// Details as JSON text.
    pub detail: String,
    /// ok | denied | failed
    pub outcome: String,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: NewAudit,
    /// Hex SHA-256 of the previous row (zeros for the first).
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from_ms: u64,
    pub to_ms: u64,
    pub actor: Option<String>,
    /// Prefix of the action (`auth.` matches every login and logout).
    pub action: Option<String>,
    pub limit: usize,
}

/// What `verify_audit` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AuditCheck {
    /// Every row links to the one before and hashes to what it says.
    Intact { rows: u64, last_hash: String },
    /// The first row that does not.
    Broken { seq: u64, reason: String },
}

pub(crate) fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn sha256(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql_ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn role_of(r: &Row<'_>, name: usize, agency: usize) -> Result<Role, rusqlite::Error> {
    let n: String = r.get(name)?;
    let a: Option<String> = r.get(agency)?;
    Role::parse(&n, a.as_deref()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(name, rusqlite::types::Type::Text, Box::new(e))
    })
}

const USER_COLS: &str =
    "username, display_name, role, agency, disabled, created_ms, password_changed_ms";

fn user_row(r: &Row<'_>) -> Result<User, rusqlite::Error> {
    Ok(User {
        username: r.get(0)?,
        display_name: r.get(1)?,
        role: role_of(r, 2, 3)?,
        disabled: r.get(4)?,
        created_ms: ms(r.get(5)?),
        password_changed_ms: ms(r.get(6)?),
    })
}

pub(crate) fn add_user(
    conn: &Connection,
    user: &User,
    password_hash: &str,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "INSERT INTO users (username, display_name, role, agency, password_hash, disabled,
                            created_ms, password_changed_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (username) DO NOTHING",
        params![
            user.username,
            user.display_name,
            user.role.name(),
            user.role.agency(),
            password_hash,
            user.disabled,
            sql_ms(user.created_ms),
            sql_ms(user.password_changed_ms),
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid {
            what: "username",
            value: user.username.clone(),
            reason: "already exists",
        });
    }
    Ok(())
}

pub(crate) fn user(
    conn: &Connection,
    username: &str,
) -> Result<Option<(User, String)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLS}, password_hash FROM users WHERE username = ?1"
        ))?
        .query_row([username], |r| Ok((user_row(r)?, r.get(7)?)))
        .optional()?)
}

pub(crate) fn users(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let mut st =
        conn.prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
    let rows = st.query_map([], user_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A new password ends every session of the account. Returns false for an
/// unknown user.
pub(crate) fn set_password(
    conn: &mut Connection,
    username: &str,
    password_hash: &str,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE users SET password_hash = ?2, password_changed_ms = ?3 WHERE username = ?1",
        params![username, password_hash, sql_ms(now_ms)],
    )?;
    end_sessions_of(&tx, username, now_ms)?;
    tx.commit()?;
    Ok(n == 1)
}

/// Disabling an account ends its sessions; its API tokens are its own rows
/// and stay until revoked.
pub(crate) fn set_disabled(
    conn: &mut Connection,
    username: &str,
    disabled: bool,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE users SET disabled = ?2 WHERE username = ?1",
        params![username, disabled],
    )?;
    if disabled {
        end_sessions_of(&tx, username, now_ms)?;
    }
    tx.commit()?;
    Ok(n == 1)
}

/// A new role ends the account's sessions: what they were allowed to do
/// is no longer what the account may do.
pub(crate) fn set_role(
    conn: &mut Connection,
    username: &str,
    role: &Role,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE users SET role = ?2, agency = ?3 WHERE username = ?1",
        params![username, role.name(), role.agency()],
    )?;
    end_sessions_of(&tx, username, now_ms)?;
    tx.commit()?;
    Ok(n == 1)
}

fn end_sessions_of(conn: &Connection, username: &str, now_ms: u64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE sessions SET revoked_ms = ?2 WHERE username = ?1 AND revoked_ms IS NULL",
        params![username, sql_ms(now_ms)],
    )?)
}

const SESSION_COLS: &str = "public_id, username, csrf_token, address, user_agent, created_ms,
     last_seen_ms, expires_ms, idle_ms, revoked_ms, token_id";

fn session_row(r: &Row<'_>) -> Result<Session, rusqlite::Error> {
    Ok(Session {
        id: r.get(0)?,
        username: r.get(1)?,
        csrf_token: r.get(2)?,
        address: r.get(3)?,
        user_agent: r.get(4)?,
        created_ms: ms(r.get(5)?),
        last_seen_ms: ms(r.get(6)?),
        expires_ms: ms(r.get(7)?),
        idle_ms: r.get::<_, Option<i64>>(8)?.map(ms),
        revoked_ms: r.get::<_, Option<i64>>(9)?.map(ms),
        token_id: r.get(10)?,
    })
}

/// Returns the cookie secret and the session.
pub(crate) fn create_session(
    conn: &Connection,
    s: &NewSession<'_>,
) -> Result<(String, Session), StoreError> {
    let secret = new_secret();
    let session = Session {
        id: new_secret()[..16].to_string(),
        username: s.username.to_string(),
        csrf_token: new_secret(),
        address: s.address.chars().take(64).collect(),
        user_agent: s.user_agent.chars().take(200).collect(),
        created_ms: s.now_ms,
        last_seen_ms: s.now_ms,
        expires_ms: s.expires_ms,
        idle_ms: s.idle_ms,
        revoked_ms: None,
        token_id: s.token_id.map(str::to_string),
    };
    conn.execute(
        "INSERT INTO sessions (secret_sha256, public_id, username, csrf_token, address,
                               user_agent, created_ms, last_seen_ms, expires_ms, idle_ms, token_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
        params![
            sha256(&secret),
            session.id,
            session.username,
            session.csrf_token,
            session.address,
            session.user_agent,
            sql_ms(session.created_ms),
            sql_ms(session.expires_ms),
            session.idle_ms.map(sql_ms),
            session.token_id,
        ],
    )?;
    Ok((secret, session))
}

/// The session a cookie names and its account (None for a kiosk session),
/// whatever their state: the caller decides whether it is still valid.
pub(crate) fn session(
    conn: &Connection,
    secret: &str,
) -> Result<Option<(Session, Option<User>)>, StoreError> {
    let found: Option<Session> = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE secret_sha256 = ?1"
        ))?
        .query_row([sha256(secret)], session_row)
        .optional()?;
    let Some(s) = found else { return Ok(None) };
    let u = if s.token_id.is_some() {
        None
    } else {
        user(conn, &s.username)?.map(|(u, _)| u)
    };
    Ok(Some((s, u)))
}

pub(crate) fn touch_session(conn: &Connection, id: &str, now_ms: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sessions SET last_seen_ms = max(last_seen_ms, ?2) WHERE public_id = ?1",
        params![id, sql_ms(now_ms)],
    )?;
    Ok(())
}

/// Sessions still open at `now_ms` (of one user, or everyone's).
pub(crate) fn sessions(
    conn: &Connection,
    username: Option<&str>,
    now_ms: u64,
) -> Result<Vec<Session>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {SESSION_COLS} FROM sessions
         WHERE revoked_ms IS NULL AND expires_ms > ?2 AND (?1 IS NULL OR username = ?1)
         ORDER BY last_seen_ms DESC"
    ))?;
    let rows = st.query_map(params![username, sql_ms(now_ms)], session_row)?;
    let list: Vec<Session> = rows.collect::<Result<_, _>>()?;
    Ok(list
        .into_iter()
        .filter(|s| {
            s.idle_ms
                .is_none_or(|i| s.last_seen_ms.saturating_add(i) > now_ms)
        })
        .collect())
}

/// End one session by its public id; false if there was none open.
pub(crate) fn revoke_session(conn: &Connection, id: &str, now_ms: u64) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE sessions SET revoked_ms = ?2 WHERE public_id = ?1 AND revoked_ms IS NULL",
        params![id, sql_ms(now_ms)],
    )? == 1)
}

/// Forget sessions that ended more than a day ago (the audit log keeps the
/// logins and logouts).
pub(crate) fn prune_sessions(conn: &Connection, now_ms: u64) -> Result<usize, StoreError> {
    let day = 86_400_000;
    Ok(conn.execute(
        "DELETE FROM sessions WHERE min(expires_ms, coalesce(revoked_ms, expires_ms)) < ?1",
        params![sql_ms(now_ms.saturating_sub(day))],
    )?)
}

const TOKEN_COLS: &str = "id, name, role, agency, kiosk, created_ms, created_by, expires_ms,
     revoked_ms, last_used_ms";

fn token_row(r: &Row<'_>) -> Result<ApiToken, rusqlite::Error> {
    Ok(ApiToken {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role_of(r, 2, 3)?,
        kiosk: r.get(4)?,
        created_ms: ms(r.get(5)?),
        created_by: r.get(6)?,
        expires_ms: r.get::<_, Option<i64>>(7)?.map(ms),
        revoked_ms: r.get::<_, Option<i64>>(8)?.map(ms),
        last_used_ms: r.get::<_, Option<i64>>(9)?.map(ms),
    })
}

/// Tokens read `spl_<id>_<secret>`: the id finds the row in logs and lists,
/// the whole string is the credential.
pub(crate) fn create_api_token(
    conn: &Connection,
    t: &NewApiToken<'_>,
) -> Result<(String, ApiToken), StoreError> {
    let id = new_secret()[..12].to_string();
    let token = format!("spl_{id}_{}", new_secret());
    conn.execute(
        "INSERT INTO api_tokens (id, token_sha256, name, role, agency, kiosk, created_ms,
                                 created_by, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            id,
            sha256(&token),
            t.name,
            t.role.name(),
            t.role.agency(),
            t.kiosk,
            sql_ms(t.now_ms),
            t.created_by,
            t.expires_ms.map(sql_ms),
        ],
    )?;
    let stored = ApiToken {
        id,
        name: t.name.to_string(),
        role: t.role.clone(),
        kiosk: t.kiosk,
        created_ms: t.now_ms,
        created_by: t.created_by.to_string(),
        expires_ms: t.expires_ms,
        revoked_ms: None,
        last_used_ms: None,
    };
    Ok((token, stored))
}

/// The token a bearer string names, whatever its state.
pub(crate) fn api_token(conn: &Connection, token: &str) -> Result<Option<ApiToken>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_sha256 = ?1"
        ))?
        .query_row([sha256(token)], token_row)
        .optional()?)
}

pub(crate) fn touch_api_token(conn: &Connection, id: &str, now_ms: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1",
        params![id, sql_ms(now_ms)],
    )?;
    Ok(())
}

pub(crate) fn api_tokens(conn: &Connection) -> Result<Vec<ApiToken>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLS} FROM api_tokens ORDER BY created_ms"
    ))?;
    let rows = st.query_map([], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn revoke_api_token(
    conn: &Connection,
    id: &str,
    now_ms: u64,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
        params![id, sql_ms(now_ms)],
    )? == 1)
}

/// The chain hash of one row: the previous hash, then every field with its
/// length, so no two different rows hash alike.
pub fn audit_hash(prev: &[u8], seq: u64, at_ms: u64, e: &NewAudit) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for f in [
        &e.actor, &e.address, &e.action, &e.target, &e.detail, &e.outcome,
    ] {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().into()
}

pub(crate) fn append_audit(
    conn: &mut Connection,
    e: &NewAudit,
    at_ms: u64,
) -> Result<AuditEntry, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev) = match last {
        Some((s, h)) => (ms(s) + 1, h),
        None => (1, vec![0u8; 32]),
    };
    let hash = audit_hash(&prev, seq, at_ms, e);
    tx.execute(
        "INSERT INTO audit (seq, at_ms, actor, address, action, target, detail, outcome,
                            prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            sql_ms(seq),
            sql_ms(at_ms),
            e.actor,
            e.address,
            e.action,
            e.target,
            e.detail,
            e.outcome,
            prev,
            hash.to_vec()
        ],
    )?;
    tx.commit()?;
    Ok(AuditEntry {
        seq,
        at_ms,
        event: e.clone(),
        prev_hash: hex::encode(&prev),
        hash: hex::encode(hash),
    })
}

const AUDIT_COLS: &str =
    "seq, at_ms, actor, address, action, target, detail, outcome, prev_hash, hash";

fn audit_row(r: &Row<'_>) -> Result<(AuditEntry, Vec<u8>, Vec<u8>), rusqlite::Error> {
    let prev: Vec<u8> = r.get(8)?;
    let hash: Vec<u8> = r.get(9)?;
    Ok((
        AuditEntry {
            seq: ms(r.get(0)?),
            at_ms: ms(r.get(1)?),
            event: NewAudit {
                actor: r.get(2)?,
                address: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                detail: r.get(6)?,
                outcome: r.get(7)?,
            },
            prev_hash: hex::encode(&prev),
            hash: hex::encode(&hash),
        },
        prev,
        hash,
    ))
}

/// Newest first.
pub(crate) fn audit(conn: &Connection, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {AUDIT_COLS} FROM audit
         WHERE at_ms >= ?1 AND at_ms < ?2 AND (?3 IS NULL OR actor = ?3)
           AND (?4 IS NULL OR substr(action, 1, length(?4)) = ?4)
         ORDER BY seq DESC LIMIT ?5"
    ))?;
    let rows = st.query_map(
        params![
            sql_ms(f.from_ms),
            sql_ms(f.to_ms),
            f.actor,
            f.action,
            i64::try_from(f.limit).unwrap_or(i64::MAX)
        ],
        |r| audit_row(r).map(|(e, _, _)| e),
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Walk the chain from the first row.
pub(crate) fn verify_audit(conn: &Connection) -> Result<AuditCheck, StoreError> {
    let mut st = conn.prepare(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"))?;
    let mut rows = st.query([])?;
    let mut chain = AuditChainWalk::default();
    while let Some(r) = rows.next()? {
        let (e, stored_prev, stored_hash) = audit_row(r)?;
        if let Err(broken) = chain.step(&e, &stored_prev, stored_hash) {
            return Ok(broken);
        }
    }
    Ok(chain.intact())
}

/// The audit chain's check, row by row in `seq` order, whatever store the
/// rows come from: every backend must judge a chain the same way.
pub(crate) struct AuditChainWalk {
    expected_seq: u64,
    prev: Vec<u8>,
    rows: u64,
}

impl Default for AuditChainWalk {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev: vec![0u8; 32],
            rows: 0,
        }
    }
}

impl AuditChainWalk {
    /// The next stored row with its stored links; `Err` says where and why
    /// the chain is broken.
    pub(crate) fn step(
        &mut self,
        e: &AuditEntry,
        stored_prev: &[u8],
        stored_hash: Vec<u8>,
    ) -> Result<(), AuditCheck> {
        let broken = |reason: String| AuditCheck::Broken { seq: e.seq, reason };
        if e.seq != self.expected_seq {
            return Err(broken(format!(
                "row {} is missing (the next row is {})",
                self.expected_seq, e.seq
            )));
        }
        if stored_prev != self.prev {
            return Err(broken(
                "does not link to the row before it (a row was removed or changed before it)"
                    .into(),
            ));
        }
        let h = audit_hash(&self.prev, e.seq, e.at_ms, &e.event);
        if h[..] != stored_hash[..] {
            return Err(broken(
                "its content does not match its hash (the row was changed)".into(),
            ));
        }
        self.prev = stored_hash;
        self.expected_seq += 1;
        self.rows += 1;
        Ok(())
    }

    pub(crate) fn intact(self) -> AuditCheck {
        AuditCheck::Intact {
            rows: self.rows,
            last_hash: hex::encode(&self.prev),
        }
    }
}

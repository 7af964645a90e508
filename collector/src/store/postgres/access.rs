//! `AccessStore` on PostgreSQL: operators, sessions, API tokens and the
//! audit chain (the SQLite counterpart: store/access.rs, whose hashing and
//! secrets this reuses, so a chain verifies the same on both).

use postgres::{GenericClient, Row};

use super::{i, u, PgStore};
use crate::auth::Role;
use crate::store::access::{
    audit_hash, new_secret, ApiToken, AuditChainWalk, AuditCheck, AuditEntry, AuditFilter,
    NewApiToken, NewAudit, NewSession, Session, User,
};
use crate::store::registry::sha256;
use crate::store::traits::AccessStore;
use crate::store::StoreError;

fn role_of(table: &'static str, name: &str, agency: Option<&str>) -> Result<Role, StoreError> {
    Role::parse(name, agency).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("role {name:?}: {e}"),
    })
}

const USER_COLS: &str =
    "username, display_name, role, agency, disabled, created_ms, password_changed_ms";

fn user_row(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        username: r.get(0),
        display_name: r.get(1),
        role: role_of("users", r.get(2), r.get(3))?,
        disabled: r.get(4),
        created_ms: u(r.get(5)),
        password_changed_ms: u(r.get(6)),
    })
}

const SESSION_COLS: &str = "public_id, username, csrf_token, address, user_agent, created_ms,
     last_seen_ms, expires_ms, idle_ms, revoked_ms, token_id";

fn session_row(r: &Row) -> Session {
    Session {
        id: r.get(0),
        username: r.get(1),
        csrf_token: r.get(2),
        address: r.get(3),
        user_agent: r.get(4),
        created_ms: u(r.get(5)),
        last_seen_ms: u(r.get(6)),
        expires_ms: u(r.get(7)),
        idle_ms: r.get::<_, Option<i64>>(8).map(u),
        revoked_ms: r.get::<_, Option<i64>>(9).map(u),
        token_id: r.get(10),
    }
}

const TOKEN_COLS: &str = "id, name, role, agency, kiosk, created_ms, created_by, expires_ms,
     revoked_ms, last_used_ms";

fn token_row(r: &Row) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: r.get(0),
        name: r.get(1),
        role: role_of("api_tokens", r.get(2), r.get(3))?,
        kiosk: r.get(4),
        created_ms: u(r.get(5)),
        created_by: r.get(6),
        expires_ms: r.get::<_, Option<i64>>(7).map(u),
        revoked_ms: r.get::<_, Option<i64>>(8).map(u),
        last_used_ms: r.get::<_, Option<i64>>(9).map(u),
    })
}

const AUDIT_COLS: &str =
    "seq, at_ms, actor, address, action, target, detail, outcome, prev_hash, hash";

fn audit_row(r: &Row) -> (AuditEntry, Vec<u8>, Vec<u8>) {
    let prev: Vec<u8> = r.get(8);
    let hash: Vec<u8> = r.get(9);
    (
        AuditEntry {
            seq: u(r.get(0)),
            at_ms: u(r.get(1)),
            event: NewAudit {
                actor: r.get(2),
                address: r.get(3),
                action: r.get(4),
                target: r.get(5),
                detail: r.get(6),
                outcome: r.get(7),
            },
            prev_hash: hex::encode(&prev),
            hash: hex::encode(&hash),
        },
        prev,
        hash,
    )
}

fn user_on(
    c: &mut impl GenericClient,
    username: &str,
) -> Result<Option<(User, String)>, StoreError> {
    c.query_opt(
        &format!("SELECT {USER_COLS}, password_hash FROM users WHERE username = $1"),
        &[&username],
    )?
    .map(|r| Ok((user_row(&r)?, r.get(7))))
    .transpose()
}

/// Run `update` and end the account's open sessions, in one transaction.
fn with_sessions_ended(
    c: &mut postgres::Client,
    username: &str,
    now_ms: u64,
    end: bool,
    update: &str,
    arg: &(dyn postgres::types::ToSql + Sync),
    arg2: Option<&(dyn postgres::types::ToSql + Sync)>,
) -> Result<bool, StoreError> {
    let mut tx = c.transaction()?;
    let n = match arg2 {
        Some(a2) => tx.execute(update, &[&username, arg, a2])?,
        None => tx.execute(update, &[&username, arg])?,
    };
    if end {
        tx.execute(
            "UPDATE sessions SET revoked_ms = $2 WHERE username = $1 AND revoked_ms IS NULL",
            &[&username, &i(now_ms)],
        )?;
    }
    tx.commit()?;
    Ok(n == 1)
}

impl AccessStore for PgStore {
    fn add_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        let (user, hash) = (user.clone(), password_hash.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "INSERT INTO users (username, display_name, role, agency, password_hash, disabled,
                                    created_ms, password_changed_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (username) DO NOTHING",
                &[
                    &user.username,
                    &user.display_name,
                    &user.role.name(),
                    &user.role.agency(),
                    &hash,
                    &user.disabled,
                    &i(user.created_ms),
                    &i(user.password_changed_ms),
                ],
            )?;
            if n == 0 {
                return Err(StoreError::Invalid {
                    what: "username",
                    value: user.username,
                    reason: "already exists",
                });
            }
            Ok(())
        })
    }

    fn user(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        let username = username.to_owned();
        self.run(move |c| user_on(c, &username))
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.run(|c| {
            c.query(
                &format!("SELECT {USER_COLS} FROM users ORDER BY username"),
                &[],
            )?
            .iter()
            .map(user_row)
            .collect()
        })
    }

    fn set_password(&self, username: &str, hash: &str, now_ms: u64) -> Result<bool, StoreError> {
        let (username, hash) = (username.to_owned(), hash.to_owned());
        self.run(move |c| {
            with_sessions_ended(
                c,
                &username,
                now_ms,
                true,
                "UPDATE users SET password_hash = $2, password_changed_ms = $3 WHERE username = $1",
                &hash,
                Some(&i(now_ms)),
            )
        })
    }

    fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let username = username.to_owned();
        self.run(move |c| {
            with_sessions_ended(
                c,
                &username,
                now_ms,
                disabled,
                "UPDATE users SET disabled = $2 WHERE username = $1",
                &disabled,
                None,
            )
        })
    }

    fn set_role(&self, username: &str, role: &Role, now_ms: u64) -> Result<bool, StoreError> {
        let username = username.to_owned();
        let (name, agency) = (role.name().to_owned(), role.agency().map(str::to_owned));
        self.run(move |c| {
            with_sessions_ended(
                c,
                &username,
                now_ms,
                true,
                "UPDATE users SET role = $2, agency = $3 WHERE username = $1",
                &name,
                Some(&agency),
            )
        })
    }

    fn create_session(&self, s: &NewSession<'_>) -> Result<(String, Session), StoreError> {
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
        let (hash, row) = (sha256(&secret).to_vec(), session.clone());
        self.run(move |c| {
            c.execute(
                "INSERT INTO sessions (secret_sha256, public_id, username, csrf_token, address,
                                       user_agent, created_ms, last_seen_ms, expires_ms, idle_ms,
                                       token_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)",
                &[
                    &hash,
                    &row.id,
                    &row.username,
                    &row.csrf_token,
                    &row.address,
                    &row.user_agent,
                    &i(row.created_ms),
                    &i(row.expires_ms),
                    &row.idle_ms.map(i),
                    &row.token_id,
                ],
            )?;
            Ok(())
        })?;
        Ok((secret, session))
    }

    fn session(&self, secret: &str) -> Result<Option<(Session, Option<User>)>, StoreError> {
        let hash = sha256(secret).to_vec();
        self.run(move |c| {
            let found = c
                .query_opt(
                    &format!("SELECT {SESSION_COLS} FROM sessions WHERE secret_sha256 = $1"),
                    &[&hash],
                )?
                .map(|r| session_row(&r));
            let Some(s) = found else { return Ok(None) };
            let user = if s.token_id.is_some() {
                None
            } else {
                user_on(c, &s.username)?.map(|(u, _)| u)
            };
            Ok(Some((s, user)))
        })
    }

    fn touch_session(&self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.execute(
                "UPDATE sessions SET last_seen_ms = greatest(last_seen_ms, $2) WHERE public_id = $1",
                &[&id, &i(now_ms)],
            )?;
            Ok(())
        })
    }

    fn sessions(&self, username: Option<&str>, now_ms: u64) -> Result<Vec<Session>, StoreError> {
        let username = username.map(str::to_owned);
        let list = self.run(move |c| {
            Ok(c.query(
                &format!(
                    "SELECT {SESSION_COLS} FROM sessions
                     WHERE revoked_ms IS NULL AND expires_ms > $2
                       AND ($1::TEXT IS NULL OR username = $1)
                     ORDER BY last_seen_ms DESC"
                ),
                &[&username, &i(now_ms)],
            )?
            .iter()
            .map(session_row)
            .collect::<Vec<_>>())
        })?;
        Ok(list
            .into_iter()
            .filter(|s| {
                s.idle_ms
                    .is_none_or(|idle| s.last_seen_ms.saturating_add(idle) > now_ms)
            })
            .collect())
    }

    fn revoke_session(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE sessions SET revoked_ms = $2 WHERE public_id = $1 AND revoked_ms IS NULL",
                &[&id, &i(now_ms)],
            )? == 1)
        })
    }

    fn prune_sessions(&self, now_ms: u64) -> Result<usize, StoreError> {
        let cutoff = i(now_ms.saturating_sub(86_400_000));
        self.run(move |c| {
            Ok(c.execute(
                "DELETE FROM sessions WHERE least(expires_ms, coalesce(revoked_ms, expires_ms)) < $1",
                &[&cutoff],
            )? as usize)
        })
    }

    fn create_api_token(&self, t: &NewApiToken<'_>) -> Result<(String, ApiToken), StoreError> {
        let id = new_secret()[..12].to_string();
        let token = format!("spl_{id}_{}", new_secret());
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
        let (hash, row) = (sha256(&token).to_vec(), stored.clone());
        self.run(move |c| {
            c.execute(
                "INSERT INTO api_tokens (id, token_sha256, name, role, agency, kiosk, created_ms,
                                         created_by, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &row.id,
                    &hash,
                    &row.name,
                    &row.role.name(),
                    &row.role.agency(),
                    &row.kiosk,
                    &i(row.created_ms),
                    &row.created_by,
                    &row.expires_ms.map(i),
                ],
            )?;
            Ok(())
        })?;
        Ok((token, stored))
    }

    fn api_token(&self, token: &str) -> Result<Option<ApiToken>, StoreError> {
        let hash = sha256(token).to_vec();
        self.run(move |c| {
            c.query_opt(
                &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE token_sha256 = $1"),
                &[&hash],
            )?
            .map(|r| token_row(&r))
            .transpose()
        })
    }

    fn touch_api_token(&self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.execute(
                "UPDATE api_tokens SET last_used_ms = $2 WHERE id = $1",
                &[&id, &i(now_ms)],
            )?;
            Ok(())
        })
    }

    fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.run(|c| {
            c.query(
                &format!("SELECT {TOKEN_COLS} FROM api_tokens ORDER BY created_ms"),
                &[],
            )?
            .iter()
            .map(token_row)
            .collect()
        })
    }

    fn revoke_api_token(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &i(now_ms)],
            )? == 1)
        })
    }

    fn append_audit(&self, e: &NewAudit, at_ms: u64) -> Result<AuditEntry, StoreError> {
        let e = e.clone();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            // EXCLUSIVE blocks other appenders (and nothing that only
            // reads) until commit: each collector links to the row the
            // previous one committed, so the chain never forks.
            tx.batch_execute("LOCK TABLE audit IN EXCLUSIVE MODE")?;
            let last = tx.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?;
            let (seq, prev) = match last {
                Some(r) => (u(r.get(0)) + 1, r.get::<_, Vec<u8>>(1)),
                None => (1, vec![0u8; 32]),
            };
            let hash = audit_hash(&prev, seq, at_ms, &e);
            tx.execute(
                &format!("INSERT INTO audit ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
                &[
                    &i(seq),
                    &i(at_ms),
                    &e.actor,
                    &e.address,
                    &e.action,
                    &e.target,
                    &e.detail,
                    &e.outcome,
                    &prev,
                    &hash.to_vec(),
                ],
            )?;
            tx.commit()?;
            Ok(AuditEntry {
                seq,
                at_ms,
                event: e,
                prev_hash: hex::encode(&prev),
                hash: hex::encode(hash),
            })
        })
    }

    fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let f = f.clone();
        self.run(move |c| {
            Ok(c.query(
                &format!(
                    "SELECT {AUDIT_COLS} FROM audit
                     WHERE at_ms >= $1 AND at_ms < $2 AND ($3::TEXT IS NULL OR actor = $3)
                       AND ($4::TEXT IS NULL OR substr(action, 1, length($4)) = $4)
                     ORDER BY seq DESC LIMIT $5"
                ),
                &[
                    &i(f.from_ms),
                    &i(f.to_ms),
                    &f.actor,
                    &f.action,
                    &i64::try_from(f.limit).unwrap_or(i64::MAX),
                ],
            )?
            .iter()
            .map(|r| audit_row(r).0)
            .collect())
        })
    }

    fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        self.run(|c| {
            // A portal over the rows, so a long chain is walked in pages,
            // not loaded whole; REPEATABLE READ sees one moment of it.
            let mut tx = c
                .build_transaction()
                .read_only(true)
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .start()?;
            let portal = tx.bind(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"), &[])?;
            let mut chain = AuditChainWalk::default();
            loop {
                let rows = tx.query_portal(&portal, 1000)?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    let (e, stored_prev, stored_hash) = audit_row(r);
                    if let Err(broken) = chain.step(&e, &stored_prev, stored_hash) {
                        return Ok(broken);
                    }
                }
            }
            Ok(chain.intact())
        })
    }
}

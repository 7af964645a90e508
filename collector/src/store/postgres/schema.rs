//! The control schema on PostgreSQL and its migrations: the SQLite control
//! tables (store/schema.rs, migrations 1-8 as they stand; then incidents,
//! maintenance and notifications), typed the
//! PostgreSQL way (BIGINT, BYTEA, BOOLEAN). `simpul_schema` counts the
//! migrations applied; each runs in one transaction (DDL is transactional
//! here) under an advisory lock, so collectors starting together apply each
//! exactly once. A released migration is never edited.

use postgres::Client;

use crate::store::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the registry, inventory and policy versions, lists, operators,
    // sessions, API tokens, the audit chain.
    r#"
CREATE TABLE agencies (
    code    TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    active  BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE units (
    agency  TEXT NOT NULL REFERENCES agencies(code),
    code    TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (agency, code)
);
CREATE TABLE nodes (
    node_id            TEXT PRIMARY KEY,
    agency             TEXT NOT NULL REFERENCES agencies(code),
    hostname           TEXT,
    address            TEXT,
    agent_version      TEXT,
    enrolled_at        BIGINT NOT NULL,
    last_seen          BIGINT,
    revoked            BOOLEAN NOT NULL DEFAULT FALSE,
    credential_sha256  BYTEA NOT NULL,
    last_health_json   TEXT
);
CREATE TABLE enrollment_tokens (
    token_sha256  BYTEA PRIMARY KEY,
    agency        TEXT NOT NULL REFERENCES agencies(code),
    node_id       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE TABLE inventory_versions (
    version     BIGINT PRIMARY KEY,
    json        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE TABLE policy_versions (
    agency           TEXT NOT NULL,
    version          BIGINT NOT NULL,
    policy_json      TEXT NOT NULL,
    signature        BYTEA NOT NULL,
    key_id           TEXT NOT NULL,
    created_ms       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    comment          TEXT NOT NULL DEFAULT '',
    document         TEXT,
    default_version  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (agency, version)
);
CREATE TABLE policy_default_versions (
    version     BIGINT PRIMARY KEY,
    document    TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    comment     TEXT NOT NULL DEFAULT ''
);
CREATE TABLE node_policy_state (
    node_id   TEXT PRIMARY KEY,
    version   BIGINT NOT NULL,
    state     TEXT NOT NULL,
    problems  TEXT NOT NULL DEFAULT '[]',
    error     TEXT,
    at_ms     BIGINT NOT NULL
);
CREATE TABLE list_versions (
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    domains      BIGINT NOT NULL,
    stored_bytes BIGINT NOT NULL,
    lines        BIGINT NOT NULL,
    invalid      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    hold_reason  TEXT,
    origin       TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    comment      TEXT NOT NULL,
    decided_ms   BIGINT,
    decided_by   TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE list_sources (
    name               TEXT PRIMARY KEY,
    url                TEXT NOT NULL,
    format             TEXT NOT NULL,
    interval_secs      BIGINT NOT NULL,
    max_shrink_percent DOUBLE PRECISION NOT NULL,
    last_attempt_ms    BIGINT,
    last_ok_ms         BIGINT,
    last_error         TEXT,
    updated_ms         BIGINT NOT NULL,
    updated_by         TEXT NOT NULL
);
CREATE TABLE users (
    username             TEXT PRIMARY KEY,
    display_name         TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'agency', 'viewer')),
    agency               TEXT,
    password_hash        TEXT NOT NULL,
    disabled             BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms           BIGINT NOT NULL,
    password_changed_ms  BIGINT NOT NULL,
    CHECK ((role = 'agency') = (agency IS NOT NULL))
);
CREATE TABLE sessions (
    secret_sha256  BYTEA PRIMARY KEY,
    public_id      TEXT NOT NULL UNIQUE,
    username       TEXT NOT NULL,
    csrf_token     TEXT NOT NULL,
    address        TEXT NOT NULL,
    user_agent     TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    last_seen_ms   BIGINT NOT NULL,
    expires_ms     BIGINT NOT NULL,
    idle_ms        BIGINT,
    revoked_ms     BIGINT,
    token_id       TEXT
);
CREATE INDEX sessions_user ON sessions(username);
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    token_sha256  BYTEA NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'agency', 'viewer')),
    agency        TEXT,
    kiosk         BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    expires_ms    BIGINT,
    revoked_ms    BIGINT,
    last_used_ms  BIGINT,
    CHECK ((role = 'agency') = (agency IS NOT NULL))
);
-- Append-only; appends take an EXCLUSIVE lock on the table (access.rs) so
-- collectors append one at a time and the chain cannot fork.
CREATE TABLE audit (
    seq        BIGINT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    address    TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE INDEX audit_time ON audit(at_ms);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Leader leases (lease.rs): who holds `name` until `expires` (the
-- database's clock, so collectors' clocks need not agree).
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    expires  TIMESTAMPTZ NOT NULL
);
"#,
    // 2: incidents, maintenance windows and the notification log (SQLite
    // migrations 3 and 4), so several collectors share outage state.
    r#"
CREATE TABLE incidents (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    node_id      TEXT NOT NULL,
    agency       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    root_cause   TEXT,
    children     TEXT NOT NULL DEFAULT '[]',
    started_ms   BIGINT NOT NULL,
    detected_ms  BIGINT NOT NULL,
    notified_ms  BIGINT,
    acked_ms     BIGINT,
    acked_by     TEXT,
    escalation   BIGINT NOT NULL DEFAULT 0,
    resolved_ms  BIGINT,
    maintenance  BOOLEAN NOT NULL DEFAULT FALSE
);
-- One open outage per node, and one open incident per node and condition:
-- two collectors opening the same outage at once get one row.
CREATE UNIQUE INDEX incidents_one_open ON incidents(
    node_id,
    (CASE WHEN kind IN ('down', 'group_down', 'unreachable', 'flapping') THEN 'outage' ELSE kind END)
) WHERE resolved_ms IS NULL;
CREATE INDEX incidents_time ON incidents(started_ms);
CREATE TABLE maintenance (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    node_id     TEXT,
    agency      TEXT,
    starts_ms   BIGINT NOT NULL,
    ends_ms     BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE INDEX maintenance_time ON maintenance(ends_ms);
CREATE TABLE notifications (
    id               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    channel          TEXT NOT NULL,
    incident_id      BIGINT NOT NULL,
    state            TEXT NOT NULL,
    severity         TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    progress         BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms  BIGINT NOT NULL,
    last_error       TEXT,
    created_ms       BIGINT NOT NULL,
    last_attempt_ms  BIGINT,
    sent_ms          BIGINT,
    UNIQUE (channel, incident_id, state)
);
CREATE INDEX notifications_pending ON notifications (id) WHERE status = 'pending';
CREATE INDEX notifications_incident ON notifications (incident_id);
"#,
];

/// Any number, the same in every collector: the migration lock.
const MIGRATION_LOCK: i64 = 0x5349_4d50_554c;

pub(super) fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS simpul_schema (version BIGINT NOT NULL)")?;
    let current: i64 = match tx.query_opt("SELECT version FROM simpul_schema", &[])? {
        Some(r) => r.get(0),
        None => {
            tx.execute("INSERT INTO simpul_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql)?;
        tx.execute("UPDATE simpul_schema SET version = $1", &[&(n as i64 + 1)])?;
    }
    tx.commit()?;
    Ok(())
}

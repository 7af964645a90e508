//! The database schema and its migrations.
//!
//! Migrations are applied in order inside one transaction each, and
//! `PRAGMA user_version` records how many ran, so opening a database twice (or
//! after a crash halfway) applies exactly the missing ones. A migration is
//! never edited once released: changes go into a new entry.
//!
//! Conventions, chosen for ingest speed and compactness:
//! - Times: Unix seconds for buckets (`ts`, `minute`), Unix nanoseconds for
//!   flow first/last seen and registry instants.
//! - IP addresses: BLOBs of 4 or 16 bytes (compact, and ordered by address,
//!   so subnet range queries are possible later).
//! - Enums as small integers (see `codec.rs`): `scope` 0 internet 1 intranet;
//!   `site_source` 0 sni 1 quic 2 http 3 dns (lower is the better name, the
//!   agent's own preference order); `end_reason` 0 idle 1 fin 2 rst 3 evicted
//!   4 shutdown 5 active 6 agent_restart.
//! - Counters are clamped to 2^53-1 on the way in so SQLite's 64-bit integer
//!   arithmetic can never overflow, whatever a broken agent sends.
//! - Aggregate tables are WITHOUT ROWID with the natural key as primary key:
//!   the UPSERT that adds to them touches one b-tree instead of two.

use std::time::SystemTime;

use rusqlite::Connection;

use super::StoreError;

pub(crate) const MIGRATIONS: &[&str] = &[
    // v1
    r#"
-- Registry ------------------------------------------------------------------

-- Upserted from the collector config at start. An agency that left the config
-- keeps its row (active = 0): nodes and history still name it.
CREATE TABLE agencies (
    code            TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    alloc_down_bps  INTEGER NOT NULL,
    alloc_up_bps    INTEGER NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;

-- Replaced wholesale per agency on every config sync: nothing references units.
CREATE TABLE units (
    agency  TEXT NOT NULL REFERENCES agencies(code),
    code    TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (agency, code)
) WITHOUT ROWID;

-- A row exists once the node enrolled. Only a SHA-256 of the credential is
-- kept: it is 32 random bytes, so a fast hash is enough and a stolen database
-- does not let anyone log in as a node.
CREATE TABLE nodes (
    node_id            TEXT PRIMARY KEY NOT NULL,
    agency             TEXT NOT NULL REFERENCES agencies(code),
    hostname           TEXT,
    address            TEXT,
    agent_version      TEXT,
    enrolled_at        INTEGER NOT NULL,
    last_seen          INTEGER,
    revoked            INTEGER NOT NULL DEFAULT 0,
    credential_sha256  BLOB NOT NULL,
    last_health_json   TEXT
);

-- One-time tokens, stored hashed for the same reason as credentials. Bound to
-- one node id so a leaked token cannot enroll an impostor under another name.
CREATE TABLE enrollment_tokens (
    token_sha256  BLOB PRIMARY KEY NOT NULL,
    agency        TEXT NOT NULL REFERENCES agencies(code),
    node_id       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
) WITHOUT ROWID;

-- Ingest --------------------------------------------------------------------

-- One row per agent boot: the dedup high-water mark (batches with seq <=
-- max_seq were committed, so a re-sent one is acknowledged without writing),
-- and a small integer id that keys the flows of that boot compactly.
-- boot_epoch and max_seq are u64 stored bit-cast.
CREATE TABLE streams (
    id               INTEGER PRIMARY KEY,
    node_id          TEXT NOT NULL,
    boot_epoch       INTEGER NOT NULL,
    max_seq          INTEGER NOT NULL,
    dropped_records  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (node_id, boot_epoch)
);

-- Ingest bookkeeping that commits with the data.
CREATE TABLE ingest_state (
    name   TEXT PRIMARY KEY NOT NULL,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO ingest_state (name, value) VALUES ('next_chunk', 1);

-- One row per flow: interim records update it in place (their counters are
-- cumulative), the final record closes it.
--
-- The hottest table, built for ingest speed (measured, see store/mod.rs):
-- - The record itself is one compact BLOB (record.rs): SQLite's per-row cost
--   grows with the column count, about doubling from 8 to 29 columns.
--   Columns are only what SQL needs: the flow key, `state` (bit 0: the final
--   record arrived; bit 1: an update already credited the row's first state
--   to the top_* tables, see ingest.rs) and last_seen (Unix ns).
-- - A single secondary index. Rows are grouped in chunks of 65536
--   consecutive ids (id = chunk << 16 | offset), each chunk holding one
--   agency's flows in arrival order, so every b-tree is written near its
--   right edge. An index on address or site would cost a b-tree descent and,
--   at commit, a 4 KiB page write per record. Instead `flow_chunks` tells
--   which chunks cover a time range and an agency, `flow_terms` which of them
--   contain an address or a site, and a query reads only those chunks.
CREATE TABLE flows (
    id         INTEGER PRIMARY KEY,
    stream     INTEGER NOT NULL,
    flow_id    INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    rec        BLOB NOT NULL
);
-- Interim and final records of one flow meet here. Flow ids grow per boot, so
-- this index too is written at one point per node.
CREATE UNIQUE INDEX flows_key ON flows(stream, flow_id);

-- `rows` ids of the chunk are used; rows below `folded` (offsets) are
-- credited to the top_* tables. The last_seen range covers every row (an update of an old
-- flow widens it). A chunk is never reopened once full.
CREATE TABLE flow_chunks (
    chunk          INTEGER PRIMARY KEY,
    agency         TEXT NOT NULL,
    rows           INTEGER NOT NULL,
    folded         INTEGER NOT NULL,
    min_last_seen  INTEGER,
    max_last_seen  INTEGER
);
CREATE INDEX flow_chunks_agency ON flow_chunks(agency, chunk);
CREATE INDEX flow_chunks_time ON flow_chunks(max_last_seen);
CREATE INDEX flow_chunks_unfolded ON flow_chunks(chunk) WHERE folded < rows;

-- Which addresses (BLOB, either side) and sites (TEXT site key: lowercased,
-- labels reversed, final dot: "id.go.example.portal.", so a site and all its
-- subdomains are one key range) occur in a chunk: one entry per distinct
-- term per chunk, not per row. Untyped column: no affinity may turn a site
-- key like "123." into a number.
CREATE TABLE flow_terms (
    chunk  INTEGER NOT NULL,
    term   NOT NULL,
    PRIMARY KEY (chunk, term)
) WITHOUT ROWID;

-- Per-second counters per unit and scope, with rollups maintained in the same
-- transaction so every resolution agrees. Agency leads the key: the usage API
-- reads one agency, and the all-agency reads (overview, live feed, retention)
-- walk the distinct agencies with a skip scan (see query.rs).
CREATE TABLE usage_1s (
    agency       TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    unit         TEXT NOT NULL,
    scope        INTEGER NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    packets_in   INTEGER NOT NULL,
    packets_out  INTEGER NOT NULL,
    PRIMARY KEY (agency, ts, unit, scope)
) WITHOUT ROWID;
CREATE TABLE usage_1m (
    agency       TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    unit         TEXT NOT NULL,
    scope        INTEGER NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    packets_in   INTEGER NOT NULL,
    packets_out  INTEGER NOT NULL,
    PRIMARY KEY (agency, ts, unit, scope)
) WITHOUT ROWID;
CREATE TABLE usage_1h (
    agency       TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    unit         TEXT NOT NULL,
    scope        INTEGER NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    packets_in   INTEGER NOT NULL,
    packets_out  INTEGER NOT NULL,
    PRIMARY KEY (agency, ts, unit, scope)
) WITHOUT ROWID;

-- Per-minute top-N material from flow records, credited at the minute of each
-- record's last_seen with only what the record adds to the stored flow row,
-- so a flow's bytes are counted once however many interim records it had.
-- New flow rows are folded in a few seconds at a time rather than per record
-- (one UPSERT per host and minute instead of per flow); see ingest.rs.
-- Minute leads the key: every read is a time range (often all agencies).
-- host is the agency-side address; bytes_up is what it sent.
CREATE TABLE top_hosts_1m (
    minute      INTEGER NOT NULL,
    agency      TEXT NOT NULL,
    unit        TEXT NOT NULL,
    host        BLOB NOT NULL,
    bytes_up    INTEGER NOT NULL,
    bytes_down  INTEGER NOT NULL,
    flows       INTEGER NOT NULL,
    PRIMARY KEY (minute, agency, unit, host)
) WITHOUT ROWID;
-- site_source keeps the best source any flow of that minute named the site by.
CREATE TABLE top_sites_1m (
    minute       INTEGER NOT NULL,
    agency       TEXT NOT NULL,
    site         TEXT NOT NULL,
    site_source  INTEGER,
    bytes        INTEGER NOT NULL,
    flows        INTEGER NOT NULL,
    PRIMARY KEY (minute, agency, site)
) WITHOUT ROWID;
"#,
    // v2
    r#"
-- Blocked attempts (policy enforcement at the edge, proto::BlockedAttempt):
-- one row per agent record, i.e. one client, target and rule over the agent's
-- reporting window with the attempts folded in. Written in the ingest
-- transaction of the batch that carried them, so the (node, boot, seq) dedup
-- of `streams` covers them: a re-sent batch adds nothing.
-- - stream: streams.id, which names the node;
-- - agency: the node's enrolled agency (as for flows, whatever the record
--   says: a node never writes into another agency's figures); unit as sent;
-- - first_seen/last_seen: Unix ns; method: small integer (codec.rs);
-- - client/server: address BLOBs of 4 or 16 bytes.
-- Far fewer rows than flows (attempts are folded by the agent), so a plain
-- table with two time indexes serves every read, aggregates included.
CREATE TABLE blocked_attempts (
    id          INTEGER PRIMARY KEY,
    stream      INTEGER NOT NULL,
    agency      TEXT NOT NULL,
    unit        TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    client      BLOB NOT NULL,
    method      INTEGER NOT NULL,
    target      TEXT NOT NULL,
    server      BLOB,
    port        INTEGER,
    proto       TEXT NOT NULL,
    rule        TEXT NOT NULL,
    list        TEXT NOT NULL,
    attempts    INTEGER NOT NULL
);
-- One agency's attempts over a time range, newest first (agency page, API
-- filter), and its aggregates.
CREATE INDEX blocked_agency_time ON blocked_attempts(agency, last_seen);
-- All agencies over a time range (the wall), and retention.
CREATE INDEX blocked_time ON blocked_attempts(last_seen);
"#,
    // 3: outages. One row per node outage (or unreachable/flapping spell);
    // times in Unix ms. A node has at most one open incident: the partial
    // unique index makes "open one unless open" safe across restarts.
    r#"
CREATE TABLE incidents (
    id           INTEGER PRIMARY KEY,
    node_id      TEXT NOT NULL,
    agency       TEXT NOT NULL,
    -- down | unreachable | flapping
    kind         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    -- For unreachable: the down ancestor. For a grouped down: NULL.
    root_cause   TEXT,
    -- Grouped down: JSON array of the descendants made unreachable.
    children     TEXT NOT NULL DEFAULT '[]',
    -- Last heartbeat before the outage (its real start) and detection.
    started_ms   INTEGER NOT NULL,
    detected_ms  INTEGER NOT NULL,
    notified_ms  INTEGER,
    acked_ms     INTEGER,
    acked_by     TEXT,
    escalation   INTEGER NOT NULL DEFAULT 0,
    resolved_ms  INTEGER,
    -- Started inside a maintenance window: recorded, not alerted.
    maintenance  INTEGER NOT NULL DEFAULT 0
);
-- One open outage per node, and one open incident per node and condition
-- (agent_health, clock_skew, allocation_high) beside it.
CREATE UNIQUE INDEX incidents_one_open ON incidents(
    node_id,
    CASE WHEN kind IN ('down', 'group_down', 'unreachable', 'flapping') THEN 'outage' ELSE kind END
) WHERE resolved_ms IS NULL;
CREATE INDEX incidents_time ON incidents(started_ms);
CREATE TABLE maintenance (
    id          INTEGER PRIMARY KEY,
    -- One of node_id / agency (NULL node and agency: everything).
    node_id     TEXT,
    agency      TEXT,
    starts_ms   INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX maintenance_time ON maintenance(ends_ms);
"#,
    // 4: one inventory, policies at the collector, one migration system.
    r#"
-- Allocations are policy now (policy_versions), not a property of the agency.
ALTER TABLE agencies DROP COLUMN alloc_down_bps;
ALTER TABLE agencies DROP COLUMN alloc_up_bps;

-- The inventory (proto::inventory::Inventory as JSON), one row per version;
-- the newest is in force. A version is added only when the content changes.
CREATE TABLE inventory_versions (
    version     INTEGER PRIMARY KEY,
    json        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

-- Every policy version of every agency, signed. Rows are never changed: a
-- rollback is a new version.
CREATE TABLE policy_versions (
    agency       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    policy_json  TEXT NOT NULL,
    signature    BLOB NOT NULL,
    key_id       TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    comment      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (agency, version)
) WITHOUT ROWID;

-- What each node last reported about a policy version (applied, rejected,
-- failed), with the problems or the error.
CREATE TABLE node_policy_state (
    node_id   TEXT PRIMARY KEY NOT NULL,
    version   INTEGER NOT NULL,
    state     TEXT NOT NULL,
    problems  TEXT NOT NULL DEFAULT '[]',
    error     TEXT,
    at_ms     INTEGER NOT NULL
) WITHOUT ROWID;

-- The notification log (notify/log.rs), formerly created by the notifier
-- with a version table of its own: one migration system from here on.
CREATE TABLE IF NOT EXISTS notifications (
    id               INTEGER PRIMARY KEY,
    channel          TEXT NOT NULL,
    incident_id      INTEGER NOT NULL,
    -- firing | resolved | escalated:N | acknowledged
    state            TEXT NOT NULL,
    severity         TEXT NOT NULL,
    -- The Notification as JSON: what the dispatcher renders and sends.
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    -- Attempts started (counted before the channel call).
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- Recipients of a multi-recipient channel that already got it.
    progress         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    last_attempt_ms  INTEGER,
    sent_ms          INTEGER,
    UNIQUE (channel, incident_id, state)
);
CREATE INDEX IF NOT EXISTS notifications_pending
    ON notifications (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS notifications_incident
    ON notifications (incident_id);
DROP TABLE IF EXISTS notify_schema;
"#,
    // 5: operators, sessions, API tokens, the audit chain.
    r#"
-- Operator accounts. role: admin | operator | agency | viewer; agency only
-- for role agency. password_hash: argon2id in PHC form.
CREATE TABLE users (
    username             TEXT PRIMARY KEY NOT NULL,
    display_name         TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'agency', 'viewer')),
    agency               TEXT,
    password_hash        TEXT NOT NULL,
    disabled             INTEGER NOT NULL DEFAULT 0,
    created_ms           INTEGER NOT NULL,
    password_changed_ms  INTEGER NOT NULL,
    CHECK ((role = 'agency') = (agency IS NOT NULL))
) WITHOUT ROWID;

-- Browser sessions: the cookie's SHA-256, never the cookie. A session opened
-- with a kiosk token (the wall) names the token (token_id; username is the
-- token's name) and has no idle end (idle_ms NULL).
CREATE TABLE sessions (
    secret_sha256  BLOB PRIMARY KEY NOT NULL,
    public_id      TEXT NOT NULL UNIQUE,
    username       TEXT NOT NULL,
    csrf_token     TEXT NOT NULL,
    address        TEXT NOT NULL,
    user_agent     TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    expires_ms     INTEGER NOT NULL,
    idle_ms        INTEGER,
    revoked_ms     INTEGER,
    token_id       TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(username);

-- Bearer tokens (automation, Grafana, the wall's kiosk): SHA-256 only.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    token_sha256  BLOB NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'agency', 'viewer')),
    agency        TEXT,
    kiosk         INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    expires_ms    INTEGER,
    revoked_ms    INTEGER,
    last_used_ms  INTEGER,
    CHECK ((role = 'agency') = (agency IS NOT NULL))
) WITHOUT ROWID;

-- The audit log: append-only, each row's hash covers the previous row's
-- (store/access.rs). The triggers stop mistakes; the chain finds the rest.
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    address    TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE INDEX audit_time ON audit(at_ms);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The most batches of each boot its agent said its spool dropped: a gap in
-- the sequence is accepted only as far as new drops explain it.
ALTER TABLE streams ADD COLUMN dropped_batches INTEGER NOT NULL DEFAULT 0;
"#,
    // 6: policies edited at the NOC: the agency's own document beside the
    // merged, signed policy, and the province-wide default's versions.
    r#"
-- NULL: the version came whole (a policy file); else what the agency
-- overrides, merged over default_version of the default.
ALTER TABLE policy_versions ADD COLUMN document TEXT;
ALTER TABLE policy_versions ADD COLUMN default_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE policy_default_versions (
    version     INTEGER PRIMARY KEY,
    document    TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    comment     TEXT NOT NULL DEFAULT ''
);
"#,
    // 7: an operator lets a node resume after a sequence gap the database
    // cannot explain (restored from a backup taken before the gap).
    r#"
ALTER TABLE streams ADD COLUMN accept_gap INTEGER NOT NULL DEFAULT 0;
"#,
    // 8: named domain lists. Versions by content hash (the content itself is
    // a file under data_dir/lists/, named by the hash); a version is
    // 'current', 'held' (waiting for an administrator: empty or shrunk),
    // 'superseded' or 'discarded'. Sources: a URL synced on a schedule.
    r#"
CREATE TABLE list_versions (
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    domains      INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    lines        INTEGER NOT NULL,
    invalid      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    hold_reason  TEXT,
    origin       TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    comment      TEXT NOT NULL,
    decided_ms   INTEGER,
    decided_by   TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE list_sources (
    name               TEXT PRIMARY KEY,
    url                TEXT NOT NULL,
    format             TEXT NOT NULL,
    interval_secs      INTEGER NOT NULL,
    max_shrink_percent REAL NOT NULL,
    last_attempt_ms    INTEGER,
    last_ok_ms         INTEGER,
    last_error         TEXT,
    updated_ms         INTEGER NOT NULL,
    updated_by         TEXT NOT NULL
);
"#,
    // 9: investigation (search, drill-down). A client's blocked attempts
    // over a range without reading every agency's (search by address or
    // network); one unit's hosts without reading every agency's minutes
    // (agency → unit → host). Both tables take few inserts per second (rows
    // folded by the agent, one per host and minute), so the index costs
    // ingest little.
    r#"
CREATE INDEX blocked_client ON blocked_attempts(client, last_seen);
CREATE INDEX top_hosts_unit ON top_hosts_1m(agency, unit, minute);
"#,
    // 10: peaks. Per agency and minute / hour: the highest one-second total
    // of each direction (bytes) and a percentile sketch of the step's
    // one-second totals (simpul_core::sketch; store/peaks.rs keeps them in
    // step with the counters). Steps stored before have no row: their
    // points say "unknown", not zero. The migration fills the steps the
    // per-second rows still cover whole.
    r#"
CREATE TABLE usage_peak_1m (
    agency      TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    max_in      INTEGER NOT NULL,
    max_out     INTEGER NOT NULL,
    sketch_in   BLOB NOT NULL,
    sketch_out  BLOB NOT NULL,
    PRIMARY KEY (agency, ts)
) WITHOUT ROWID;
CREATE TABLE usage_peak_1h (
    agency      TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    max_in      INTEGER NOT NULL,
    max_out     INTEGER NOT NULL,
    sketch_in   BLOB NOT NULL,
    sketch_out  BLOB NOT NULL,
    PRIMARY KEY (agency, ts)
) WITHOUT ROWID;
"#,
    // 11: leader leases (store/lease.rs): the outage detector's, so the same
    // code leads on SQLite and on a control store shared by several
    // collectors.
    r#"
CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL
) WITHOUT ROWID;
"#,
];

/// The migration that adds the peak tables: the per-second rows it finds
/// are rolled into them right after (`peaks::backfill`).
pub(crate) const PEAKS_MIGRATION: usize = 10;

/// Schema version this code writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening the same directory at once must not
    // both run the same migration.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        if i + 1 == PEAKS_MIGRATION {
            let now = super::codec::time(super::codec::secs(SystemTime::now()));
            super::peaks::backfill(&tx, now)?;
        }
        // user_version lives in the database header and is transactional, so a
        // crash leaves either the old version with no change or both.
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

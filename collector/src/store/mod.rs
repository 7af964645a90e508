//! Collector storage. [`traits`] defines the seams ([`FlowStore`],
//! [`ControlStore`]); this module's [`Store`] implements both on one
//! embedded SQLite database (`simpul.db`, WAL) in the data directory, and
//! [`memory::MemoryFlowStore`] implements the flow side in memory for tests.
//!
//! SQLite specifics: one flow [`Writer`] on a dedicated thread (ingest,
//! retention, [`Writer::fold_aggregates`] when idle), a few [`Reader`]s for
//! queries, [`Store::checkpoint`] about once a second from another thread
//! (WAL lets readers run while the writer commits), and the control
//! connections of `registry.rs`. Every method that writes runs in IMMEDIATE
//! transactions, so a failed call leaves nothing behind and batches are
//! acknowledged only once committed. Ingest speed and its design are in
//! BENCHMARKS.md and `schema.rs`.

pub mod access;
mod bench;
mod bench_search;
mod blocked;
mod categories;
pub mod clickhouse;
mod codec;
mod error;
mod flowscan;
mod incidents;
mod ingest;
mod lease;
mod lists;
pub mod memory;
mod peaks;
pub mod postgres;
mod query;
mod record;
mod registry;
mod retention;
mod schema;
mod search;
#[cfg(test)]
mod tests;
pub mod traits;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

pub use access::{
    ApiToken, AuditCheck, AuditEntry, AuditFilter, NewApiToken, NewAudit, NewSession, Session, User,
};
pub use bench::{bench_ingest, bench_ingest_with};
pub use bench_search::{bench_search, Timed};
pub use blocked::{
    BlockedAgency, BlockedClient, BlockedFilter, BlockedRow, BlockedSummary, BlockedTarget,
    MAX_BLOCKED,
};
pub use categories::{categories_of, BlockedCategory};
pub use error::{AuthError, StoreError};
pub use incidents::{
    Availability, Incident, IncidentFilter, IncidentStore, Incidents, Maintenance, NewIncident,
    NodeSpan, SqliteIncidents,
};
pub use ingest::{sequence_check, BatchOutcome, NodeBatches};
pub use peaks::{RangePeaks, StepSketch, MAX_USAGE_STEPS};
pub use query::{
    AgencyInfo, AgencyUsage, FlowFilter, FlowRow, NodeInfo, NodePolicy, NodeStatus, Overview,
    OverviewSite, SeriesPoint, Step, TopAgency, TopHost, TopSite, UnitInfo, Uplink, UsagePoint,
    UsageSeries,
};
pub use retention::RetentionStats;
pub use search::{
    BlockedMatch, CursorError, FlowCursor, FlowId, FlowPage, FlowSort, HostTally, Investigation,
    Net, PeerTally, SiteTally, UnitTally, UnitUsage, MAX_INVESTIGATE_SCAN, MAX_PAGE_SCAN,
};
pub use traits::{
    AccessStore, ControlStore, DefaultPolicyVersion, FlowReader, FlowStore, FlowWriter, Lease,
    ListSource, ListVersion, NodePolicyState, PolicyVersion, Traffic,
};

/// Database file name inside the data directory.
pub const DB_FILE: &str = "simpul.db";
/// Per-second counters are kept this long (the 15-minute live view and the
/// 1 s usage step need no more; minutes and hours keep the history).
pub const USAGE_1S_RETENTION_SECS: u64 = 3600;
pub const USAGE_1M_RETENTION_SECS: u64 = 30 * 86_400;
pub const USAGE_1H_RETENTION_SECS: u64 = 730 * 86_400;
pub const TOP_1M_RETENTION_SECS: u64 = 30 * 86_400;

/// How long a reader or writer waits for a lock before failing (WAL makes
/// this rare: only checkpoints and concurrent writers contend).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Raw flow records are deleted this many days after their last packet.
    pub flow_retention_days: u32,
    /// Blocked attempts are deleted this many days after their last attempt.
    pub blocked_retention_days: u32,
    /// SQLite page cache of the writer, MiB: holds the open chunks' pages, the
    /// current minutes of the top-N tables and the flow key index, so ingest
    /// rarely reads from disk.
    pub writer_cache_mib: u32,
    /// New flows reach the top hosts/sites tables at most this much later
    /// while ingest runs (see `Writer::fold_aggregates`); 0 folds in every
    /// call. Longer means fewer UPSERTs of the same host or site minute.
    pub aggregate_delay_ms: u64,
    /// While at most this many flow rows are pending, every ingest call folds
    /// them: cheap at that size, and light traffic (most of the day, and
    /// tests) sees its top lists current at once. Only heavier traffic waits
    /// for `aggregate_delay_ms`.
    pub aggregate_eager_rows: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            flow_retention_days: 30,
            blocked_retention_days: 30,
            writer_cache_mib: 256,
            aggregate_delay_ms: 10_000,
            aggregate_eager_rows: 4096,
        }
    }
}

/// Handle on the data directory; cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    cfg: StoreConfig,
    writer_open: Arc<AtomicBool>,
    checkpointer: Mutex<Option<Connection>>,
    control: registry::Control,
}

impl Store {
    /// Let `node`'s agent resume after a sequence gap this database cannot
    /// explain (it was restored from a backup taken before the gap): the
    /// next gap of each of its boots is accepted once. Returns the boots.
    pub fn accept_sequence_gap(&self, node: &str) -> Result<usize, StoreError> {
        Ok(self.inner.control.durable().execute(
            "UPDATE streams SET accept_gap = 1 WHERE node_id = ?1",
            rusqlite::params![node],
        )?)
    }

    /// Create `dir` if needed, open or create `dir/simpul.db`, switch it to
    /// WAL and apply pending migrations.
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<Store, StoreError> {
        private_dir(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let mut conn = open_rw(&path)?;
        // Flows name clients, the registry holds credential hashes: readable
        // by the collector's user only (SQLite gives the WAL and shared-memory
        // files the database file's mode).
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| StoreError::DataDir {
                    path: path.clone(),
                    source,
                },
            )?;
        }
        // WAL is persistent in the file, so readers opened later (read-only,
        // unable to change it) find it already set. This is also the first
        // read of the file: a file that is not a database fails here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path,
                source: rusqlite::Error::InvalidParameterName(format!(
                    "journal_mode stayed {mode:?}, WAL needed"
                )),
            });
        }
        schema::migrate(&mut conn)?;
        let control = registry::Control::new(open_rw(&path)?, open_rw(&path)?)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                cfg,
                writer_open: Arc::new(AtomicBool::new(false)),
                checkpointer: Mutex::new(None),
                control,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// The single writer. A second call while one is alive fails with
    /// [`StoreError::WriterInUse`]: dedup reads a high-water mark and then
    /// writes, and everything else is simpler with one writer.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        if self.inner.writer_open.swap(true, Ordering::AcqRel) {
            return Err(StoreError::WriterInUse);
        }
        let guard = WriterGuard(self.inner.writer_open.clone());
        let conn = open_rw(&self.inner.path)?;
        // The agent deletes a batch once acknowledged, and the server
        // acknowledges once ingest() returns: the commit must survive power
        // loss. In WAL mode synchronous=NORMAL only syncs at checkpoints, so a
        // committed batch could vanish with the last WAL frames; FULL syncs
        // the WAL on every commit.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let cache_kib = i64::from(self.inner.cfg.writer_cache_mib.max(2)) * 1024;
        conn.pragma_update(None, "cache_size", -cache_kib)?;
        // Checkpoints belong on another thread (Store::checkpoint): in the
        // writer they stall ingest for the whole copy and sync. This is only
        // the fallback for a server that never calls it.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
        // Keep the WAL file from staying huge after a burst.
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Writer {
            conn,
            cfg: self.inner.cfg.clone(),
            last_fold: None,
            pending_rows: 0,
            terms: Default::default(),
            _guard: guard,
        })
    }

    /// Copy committed WAL frames into the database file and sync it. Call it
    /// every second or so from any thread but the writer's: it runs beside
    /// ingest (PASSIVE: never waits for the writer or readers), keeping the
    /// WAL short without the writer ever stalling on a checkpoint. Returns
    /// the WAL frames not yet copied (0: the WAL can restart from the top).
    pub fn checkpoint(&self) -> Result<i64, StoreError> {
        // A panic elsewhere while holding the lock leaves a usable connection.
        let mut slot = self
            .inner
            .checkpointer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let conn = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(open_rw(&self.inner.path)?),
        };
        let (log, done): (i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?;
        Ok((log - done).max(0))
    }

    /// A read-write connection for the outage monitor's incidents and
    /// maintenance windows: a few writes a minute beside the ingest writer
    /// (SQLite serialises them; the busy timeout absorbs the wait).
    pub fn incidents(&self) -> Result<IncidentStore, StoreError> {
        let conn = open_rw(&self.inner.path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Box::new(SqliteIncidents::new(conn)))
    }

    /// A new read-only connection for queries. Readers see the last
    /// committed state and never block the writer.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        let path = &self.inner.path;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "cache_size", -32_768i64)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Reader { conn })
    }
}

/// Create `dir` (and parents) readable by this user only.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Apply pending migrations on `conn` (for components that open the
/// database themselves, e.g. the notification log).
pub(crate) fn ensure_schema(conn: &mut Connection) -> Result<(), StoreError> {
    schema::migrate(conn)
}

fn open_rw(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

#[derive(Debug)]
struct WriterGuard(Arc<AtomicBool>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The single read-write connection: ingest, registry changes, retention.
/// `Send`, so it can move to the writer thread.
#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    cfg: StoreConfig,
    /// When the top-N aggregates were last folded (None: not since open, so
    /// the first ingest folds whatever a previous run left pending).
    last_fold: Option<std::time::Instant>,
    pending_rows: i64,
    terms: ingest::TermCache,
    _guard: WriterGuard,
}

/// A read-only connection for API queries. `Send` but not `Sync`: give each
/// query thread (or pool slot) its own.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

impl Reader {
    /// For `/healthz`: the database answers and has the schema this code
    /// writes (another collector version could have migrated it since).
    pub fn check(&self) -> Result<(), StoreError> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if v > schema::VERSION {
            return Err(StoreError::SchemaTooNew {
                found: v,
                supported: schema::VERSION,
            });
        }
        Ok(())
    }
}

impl FlowStore for Store {
    fn writer(&self) -> Result<Box<dyn FlowWriter>, StoreError> {
        Ok(Box::new(Store::writer(self)?))
    }

    fn reader(&self) -> Result<Box<dyn FlowReader>, StoreError> {
        Ok(Box::new(Store::reader(self)?))
    }

    fn maintain(&self) -> Result<(), StoreError> {
        self.checkpoint().map(|_| ())
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

impl FlowWriter for Writer {
    fn ingest_many(
        &mut self,
        groups: &[NodeBatches<'_>],
    ) -> Result<Vec<Vec<BatchOutcome>>, StoreError> {
        Writer::ingest_many(self, groups)
    }

    fn close_interim(&mut self, node_id: &str, boot_epoch: u64) -> Result<u64, StoreError> {
        Writer::close_interim(self, node_id, boot_epoch)
    }

    fn fold_aggregates(&mut self) -> Result<u64, StoreError> {
        Writer::fold_aggregates(self)
    }

    fn apply_retention(
        &mut self,
        now: std::time::SystemTime,
    ) -> Result<RetentionStats, StoreError> {
        Writer::apply_retention(self, now)
    }
}

impl FlowReader for Reader {
    fn check(&self) -> Result<(), StoreError> {
        Reader::check(self)
    }

    fn dropped_records(&self) -> Result<std::collections::HashMap<String, u64>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT node_id, total(dropped_records) FROM streams GROUP BY node_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn traffic(&self, now: std::time::SystemTime, window_secs: u32) -> Result<Traffic, StoreError> {
        Reader::traffic(self, now, window_secs)
    }

    fn usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<UsageSeries, StoreError> {
        Reader::usage(self, agency, from, to, step)
    }

    fn usage_series_since(
        &self,
        since_sec: u64,
    ) -> Result<std::collections::HashMap<String, Vec<SeriesPoint>>, StoreError> {
        Reader::usage_series_since(self, since_sec)
    }

    fn top_hosts(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        Reader::top_hosts(self, agency, from, to, limit)
    }

    fn top_sites(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopSite>, StoreError> {
        Reader::top_sites(self, agency, from, to, limit)
    }

    fn flows(&self, filter: &FlowFilter) -> Result<Vec<FlowRow>, StoreError> {
        Reader::flows(self, filter)
    }

    fn flow_page(&self, filter: &FlowFilter) -> Result<FlowPage, StoreError> {
        Reader::flow_page(self, filter)
    }

    fn investigate(&self, filter: &FlowFilter, top: usize) -> Result<Investigation, StoreError> {
        Reader::investigate(self, filter, top)
    }

    fn unit_usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<Vec<UnitUsage>, StoreError> {
        Reader::unit_usage(self, agency, from, to, step)
    }

    fn unit_hosts(
        &self,
        agency: &str,
        unit: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        Reader::unit_hosts(self, agency, unit, from, to, limit)
    }

    fn blocked_matching(
        &self,
        from: u64,
        to: u64,
        agency: Option<&str>,
        m: &BlockedMatch,
        limit: usize,
    ) -> Result<Vec<BlockedRow>, StoreError> {
        Reader::blocked_matching(self, from, to, agency, m, limit)
    }

    fn blocked(&self, filter: &BlockedFilter) -> Result<Vec<BlockedRow>, StoreError> {
        Reader::blocked(self, filter)
    }

    fn blocked_summary(&self, filter: &BlockedFilter) -> Result<BlockedSummary, StoreError> {
        Reader::blocked_summary(self, filter)
    }

    fn blocked_categories(
        &self,
        filter: &BlockedFilter,
    ) -> Result<Vec<BlockedCategory>, StoreError> {
        Reader::blocked_categories(self, filter)
    }
}

impl ControlStore for Store {
    fn check(&self) -> Result<(), StoreError> {
        Store::reader(self)?.check()
    }

    fn nodes(
        &self,
        now: std::time::SystemTime,
        heartbeat_timeout: Duration,
    ) -> Result<Vec<NodeInfo>, StoreError> {
        self.inner.control.nodes(now, heartbeat_timeout)
    }

    fn authenticate(&self, node_id: &str, credential: &str) -> Result<String, AuthError> {
        self.inner.control.authenticate(node_id, credential)
    }

    fn create_enrollment_token(
        &self,
        agency: &str,
        node_id: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        self.inner
            .control
            .create_enrollment_token(agency, node_id, ttl)
    }

    fn enroll(&self, node_id: &str, token: &str) -> Result<(String, String), AuthError> {
        self.inner.control.enroll(node_id, token)
    }

    fn revoke_node(&self, node_id: &str) -> Result<(), StoreError> {
        self.inner.control.revoke_node(node_id)
    }

    fn node_seen(
        &self,
        node_id: &str,
        address: &str,
        version: &str,
        hostname: &str,
        health: Option<&simpul_proto::wire::Health>,
        at: std::time::SystemTime,
    ) -> Result<(), StoreError> {
        self.inner
            .control
            .node_seen(node_id, address, version, hostname, health, at)
    }

    fn save_inventory(
        &self,
        inv: &simpul_proto::Inventory,
        at_ms: u64,
    ) -> Result<simpul_proto::Inventory, StoreError> {
        self.inner.control.save_inventory(inv, at_ms)
    }

    fn latest_inventory(&self) -> Result<Option<simpul_proto::Inventory>, StoreError> {
        self.inner.control.latest_inventory()
    }

    fn save_policies(
        &self,
        default: Option<&DefaultPolicyVersion>,
        versions: &[PolicyVersion],
    ) -> Result<(), StoreError> {
        self.inner.control.save_policies(default, versions)
    }

    fn latest_policies(&self) -> Result<Vec<PolicyVersion>, StoreError> {
        self.inner.control.latest_policies()
    }

    fn policy_versions(
        &self,
        agency: &str,
        limit: usize,
    ) -> Result<Vec<PolicyVersion>, StoreError> {
        self.inner.control.policy_versions(agency, limit)
    }

    fn policy_version(
        &self,
        agency: &str,
        version: u64,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        self.inner.control.policy_version(agency, version)
    }

    fn default_policies(&self, limit: usize) -> Result<Vec<DefaultPolicyVersion>, StoreError> {
        self.inner.control.default_policies(limit)
    }

    fn set_node_policy_state(&self, s: &NodePolicyState) -> Result<(), StoreError> {
        self.inner.control.set_node_policy_state(s)
    }

    fn node_policy_states(&self) -> Result<Vec<NodePolicyState>, StoreError> {
        self.inner.control.node_policy_states()
    }

    fn save_list_version(&self, v: &ListVersion) -> Result<(), StoreError> {
        lists::save_version(&mut self.inner.control.durable(), v)
    }

    fn decide_list_version(
        &self,
        name: &str,
        version: u64,
        confirm: bool,
        by: &str,
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        lists::decide(
            &mut self.inner.control.durable(),
            name,
            version,
            confirm,
            by,
            at_ms,
        )
    }

    fn list_versions(
        &self,
        name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListVersion>, StoreError> {
        lists::versions(&self.inner.control.durable(), name, limit)
    }

    fn open_list_versions(&self) -> Result<Vec<ListVersion>, StoreError> {
        lists::open_versions(&self.inner.control.durable())
    }

    fn set_list_source(&self, s: &ListSource) -> Result<(), StoreError> {
        lists::set_source(&self.inner.control.durable(), s)
    }

    fn remove_list_source(&self, name: &str) -> Result<bool, StoreError> {
        lists::remove_source(&self.inner.control.durable(), name)
    }

    fn list_sources(&self) -> Result<Vec<ListSource>, StoreError> {
        lists::sources(&self.inner.control.durable())
    }

    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let conn = self.inner.control.durable();
        lease::try_lease(&conn, name, holder, ttl, std::time::SystemTime::now())
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        lease::release_lease(&self.inner.control.durable(), name, holder)
    }

    fn leases(&self, limit: usize) -> Result<Vec<Lease>, StoreError> {
        let conn = self.inner.control.durable();
        lease::leases(&conn, limit, std::time::SystemTime::now())
    }

    fn incidents(&self) -> Result<IncidentStore, StoreError> {
        Store::incidents(self)
    }

    fn database_path(&self) -> &Path {
        self.path()
    }

    fn notification_log(
        &self,
    ) -> Result<Box<dyn crate::notify::NotifyLog>, crate::notify::NotifyError> {
        Ok(Box::new(crate::notify::SqliteLog::open(self.path())?))
    }
}

impl AccessStore for Store {
    fn add_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        access::add_user(&self.inner.control.durable(), user, password_hash)
    }
    fn user(&self, username: &str) -> Result<Option<(User, String)>, StoreError> {
        access::user(&self.inner.control.durable(), username)
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        access::users(&self.inner.control.durable())
    }
    fn set_password(&self, username: &str, hash: &str, now_ms: u64) -> Result<bool, StoreError> {
        access::set_password(&mut self.inner.control.durable(), username, hash, now_ms)
    }
    fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        access::set_disabled(
            &mut self.inner.control.durable(),
            username,
            disabled,
            now_ms,
        )
    }
    fn set_role(
        &self,
        username: &str,
        role: &crate::auth::Role,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        access::set_role(&mut self.inner.control.durable(), username, role, now_ms)
    }
    fn create_session(&self, s: &NewSession<'_>) -> Result<(String, Session), StoreError> {
        access::create_session(&self.inner.control.durable(), s)
    }
    fn session(&self, secret: &str) -> Result<Option<(Session, Option<User>)>, StoreError> {
        access::session(&self.inner.control.durable(), secret)
    }
    fn touch_session(&self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        access::touch_session(&self.inner.control.durable(), id, now_ms)
    }
    fn sessions(&self, username: Option<&str>, now_ms: u64) -> Result<Vec<Session>, StoreError> {
        access::sessions(&self.inner.control.durable(), username, now_ms)
    }
    fn revoke_session(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        access::revoke_session(&self.inner.control.durable(), id, now_ms)
    }
    fn prune_sessions(&self, now_ms: u64) -> Result<usize, StoreError> {
        access::prune_sessions(&self.inner.control.durable(), now_ms)
    }
    fn create_api_token(&self, t: &NewApiToken<'_>) -> Result<(String, ApiToken), StoreError> {
        access::create_api_token(&self.inner.control.durable(), t)
    }
    fn api_token(&self, token: &str) -> Result<Option<ApiToken>, StoreError> {
        access::api_token(&self.inner.control.durable(), token)
    }
    fn touch_api_token(&self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        access::touch_api_token(&self.inner.control.durable(), id, now_ms)
    }
    fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        access::api_tokens(&self.inner.control.durable())
    }
    fn revoke_api_token(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        access::revoke_api_token(&self.inner.control.durable(), id, now_ms)
    }
    fn append_audit(&self, e: &NewAudit, at_ms: u64) -> Result<AuditEntry, StoreError> {
        access::append_audit(&mut self.inner.control.durable(), e, at_ms)
    }
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        access::audit(&self.inner.control.durable(), filter)
    }
    fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        access::verify_audit(&self.inner.control.durable())
    }
}

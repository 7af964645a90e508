//! Collector storage: one SQLite database (`simpul.db`, WAL) in the data
//! directory.
//!
//! Pure and synchronous. The server owns one [`Writer`] on a dedicated thread
//! (ingest, registry changes, retention) and a few [`Reader`]s for queries;
//! WAL lets the readers run while the writer commits. Every method that
//! writes runs in one IMMEDIATE transaction, so a failed call leaves nothing
//! behind and the agent's batches are acknowledged only once committed.

mod bench;
mod codec;
mod error;
pub mod ingest;
mod query;
mod registry;
mod retention;
mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

pub use bench::{bench_ingest, bench_ingest_with};
pub use error::{AuthError, StoreError};
pub use ingest::{BatchOutcome, NodeBatches};
pub use query::{
    AgencyInfo, AgencyUsage, FlowFilter, FlowRow, NodeInfo, NodeStatus, Overview, OverviewSite,
    SeriesPoint, Step, TopAgency, TopHost, TopSite, UnitInfo, Uplink, UsagePoint, UsageSeries,
};
pub use registry::{AgencyDef, UnitDef};
pub use retention::RetentionStats;

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
    /// Central uplink capacity shown on the overview.
    pub uplink_down_bps: u64,
    pub uplink_up_bps: u64,
    /// SQLite page cache of the writer, MiB. The flow indexes are written all
    /// over; keeping their hot pages cached is what keeps ingest fast.
    pub writer_cache_mib: u32,
    /// New flows reach the top hosts/sites tables at most this much later
    /// while ingest runs (see `Writer::fold_aggregates`). Larger folds fewer
    /// times: one UPSERT per host and minute instead of per flow.
    pub aggregate_delay_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            flow_retention_days: 30,
            uplink_down_bps: 1_000_000_000,
            uplink_up_bps: 1_000_000_000,
            writer_cache_mib: 256,
            aggregate_delay_ms: 5000,
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
}

impl Store {
    /// Create `dir` if needed, open or create `dir/simpul.db`, switch it to
    /// WAL and apply pending migrations.
    pub fn open(dir: &Path, cfg: StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let mut conn = open_rw(&path)?;
        // WAL is persistent in the file, so readers opened later (read-only,
        // unable to change it) find it already set.
        if let Ok(ps) = std::env::var("PAGE_SIZE") {
            conn.execute_batch(&format!("PRAGMA page_size={ps}"))?;
        }
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path,
                source: rusqlite::Error::InvalidParameterName(format!(
                    "journal_mode stayed {mode:?}, WAL needed"
                )),
            });
        }
        schema::migrate(&mut conn)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                cfg,
                writer_open: Arc::new(AtomicBool::new(false)),
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
        // Fewer, larger checkpoints: each one syncs the database file.
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            std::env::var("CKPT")
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(4000),
        )?;
        // Keep the WAL file from staying huge after a burst.
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Writer {
            conn,
            cfg: self.inner.cfg.clone(),
            last_fold: std::time::Instant::now(),
            _guard: guard,
        })
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
        Ok(Reader {
            conn,
            cfg: self.inner.cfg.clone(),
        })
    }
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
    last_fold: std::time::Instant,
    _guard: WriterGuard,
}

/// A read-only connection for API queries. `Send` but not `Sync`: give each
/// query thread (or pool slot) its own.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    cfg: StoreConfig,
}

impl Reader {
    /// For `/healthz`: the database answers.
    pub fn check(&self) -> Result<(), StoreError> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if v == schema::VERSION {
            Ok(())
        } else {
            Err(StoreError::SchemaTooNew {
                found: v,
                supported: schema::VERSION,
            })
        }
    }
}

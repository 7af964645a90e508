//! The control store on PostgreSQL, for several collectors sharing one
//! registry, operator list, policy history and audit chain (`[storage.control]
//! backend = "postgres"`). The same [`ControlStore`] and [`AccessStore`]
//! semantics as the SQLite store, statement for statement; what SQLite gets
//! from its single writer (one IMMEDIATE transaction at a time) is asked for
//! explicitly here: row locks on the token being traded, table locks where a
//! new row's number or hash depends on the last one (inventory versions, the
//! audit chain), so two collectors can neither fork the chain nor hand out a
//! number twice.
//!
//! Connections: a few threads, each owning one blocking `postgres::Client`
//! and taking jobs from a shared queue. Not a mutex around a client: that
//! client drives its own runtime with `block_on`, which panics when called
//! from the server's tokio threads (where some control calls are made), and
//! one connection would queue every heartbeat's `node_seen` behind a slow
//! policy save. A job that finds its connection closed reconnects first, so
//! a database restart costs the calls in flight, not the collector.
//!
//! Incidents, maintenance windows and the notification log are here too
//! (`incidents.rs`, `notify_log.rs`), so every collector on the database
//! sees one outage history and one delivery queue. Dropped-record counts
//! per boot stay beside the flows (the flow store's `streams`), which every
//! collector writes through its own flow store.

mod access;
mod control;
mod incidents;
mod lease;
mod notify_log;
mod schema;
pub mod server;
#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use postgres::{Client, NoTls};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Where the control store lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlBackend {
    /// `simpul.db` in the data directory: one collector.
    #[default]
    Sqlite,
    /// A PostgreSQL database several collectors share.
    Postgres,
}

/// `[storage.control]`: `backend`, and with `backend = "postgres"` where
/// the database is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    pub backend: ControlBackend,
    /// `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (libpq form; a
    /// `host=… dbname=…` string works too).
    pub url: String,
    /// Connections (one thread each).
    pub connections: usize,
    /// Connecting, and any one statement, gives up after this long.
    pub timeout_secs: u64,
    /// The outage detector's lease (outage/leader.rs): the leader renews
    /// it every third of this; a follower takes over at most about this
    /// long after the leader dies.
    pub lease_secs: u64,
    /// This collector's name in the lease table, `/healthz` and
    /// `/metrics`; empty: `HOSTNAME:PID`. Unique per collector.
    pub collector_id: String,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            backend: ControlBackend::Sqlite,
            url: String::new(),
            connections: 4,
            timeout_secs: 10,
            lease_secs: 6,
            collector_id: String::new(),
        }
    }
}

pub use incidents::PgIncidents;
pub use notify_log::PgNotifyLog;

impl PostgresConfig {
    /// (key, what is wrong) for the config check; nothing for SQLite.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.backend == ControlBackend::Sqlite {
            return out;
        }
        if self.url.is_empty() {
            out.push((
                "storage.control.url",
                "is required with backend = \"postgres\" (postgresql://USER@HOST:PORT/DB)".into(),
            ));
        } else if let Err(e) = self.url.parse::<postgres::Config>() {
            out.push((
                "storage.control.url",
                format!("is not a PostgreSQL URL: {e}"),
            ));
        }
        if !(1..=64).contains(&self.connections) {
            out.push(("storage.control.connections", "must be 1 to 64".into()));
        }
        if self.timeout_secs == 0 {
            out.push(("storage.control.timeout_secs", "must be at least 1".into()));
        }
        if !(1..=300).contains(&self.lease_secs) {
            out.push(("storage.control.lease_secs", "must be 1 to 300".into()));
        }
        if self.collector_id.len() > 200 || self.collector_id.chars().any(char::is_control) {
            out.push((
                "storage.control.collector_id",
                "must be at most 200 characters, none of them control characters".into(),
            ));
        }
        out
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The server's own words (constraint, lock timeout) say the most.
        let detail = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        StoreError::Postgres(detail)
    }
}

type Job = Box<dyn FnOnce(Result<&mut Client, StoreError>) + Send>;

/// The connection threads (see the module docs).
#[derive(Debug)]
struct Pool {
    jobs: Sender<Job>,
}

fn connect(cfg: &PostgresConfig) -> Result<Client, StoreError> {
    let mut pc: postgres::Config = cfg
        .url
        .parse()
        .map_err(|e| StoreError::Postgres(format!("storage.control.url: {e}")))?;
    pc.connect_timeout(Duration::from_secs(cfg.timeout_secs));
    pc.application_name("simpul-collector");
    let mut c = pc.connect(NoTls)?;
    c.batch_execute(&format!(
        "SET statement_timeout = {}; SET lock_timeout = {}; SET TIME ZONE 'UTC'",
        cfg.timeout_secs * 1000,
        cfg.timeout_secs * 1000
    ))?;
    Ok(c)
}

fn worker(cfg: PostgresConfig, jobs: Receiver<Job>, mut client: Option<Client>) {
    while let Ok(job) = jobs.recv() {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = None;
        }
        let conn = match &mut client {
            Some(c) => Ok(c),
            None => match connect(&cfg) {
                Ok(c) => Ok(client.insert(c)),
                Err(e) => Err(e),
            },
        };
        // A panicking job drops its connection (it may be mid-transaction)
        // and leaves the thread serving the next one.
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn))).is_ok();
        if !ok {
            client = None;
        }
    }
}

impl Pool {
    fn start(cfg: &PostgresConfig) -> Result<Pool, StoreError> {
        // The first connection is made here, so a wrong URL or a database
        // that is down fails the start, not the first request.
        let first = connect(cfg)?;
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut first = Some(first);
        for i in 0..cfg.connections.max(1) {
            let (cfg, rx, client) = (cfg.clone(), rx.clone(), first.take());
            std::thread::Builder::new()
                .name(format!("pg-control-{i}"))
                .spawn(move || worker(cfg, rx, client))
                .map_err(|e| {
                    StoreError::Postgres(format!("cannot start a connection thread: {e}"))
                })?;
        }
        Ok(Pool { jobs: tx })
    }

    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move |c| {
            let _ = tx.send(c.and_then(f));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Postgres("the connection threads are gone".into()))?;
        rx.recv()
            .map_err(|_| StoreError::Postgres("the statement panicked; see the log".into()))?
    }
}

/// The control and access stores on one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Arc<Pool>,
    url: String,
}

impl PgStore {
    /// Connect and apply pending migrations.
    pub fn open(cfg: &PostgresConfig) -> Result<PgStore, StoreError> {
        let pool = Pool::start(cfg)?;
        pool.run(schema::migrate)?;
        Ok(PgStore {
            pool: Arc::new(pool),
            url: redact(&cfg.url),
        })
    }

    /// Where it is, without a password, for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.pool.run(f)
    }
}

/// The URL with any password replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// u64 ↔ BIGINT, as the SQLite store does it.
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

//! The flow store on ClickHouse (`[storage] backend = "clickhouse"`): flow
//! records, blocked attempts, per-second counters and their 1 min / 1 h
//! rollups and per-minute top hosts/sites (materialized views), for
//! deployments that outgrow one SQLite file. The control store stays
//! SQLite. Minimum ClickHouse: 18.16 (Debian bookworm), see `schema.rs`.
//!
//! Exactly once by (node, boot, seq) without transactions:
//! 1. The high-water mark of every (node, boot) lives in ClickHouse
//!    (`streams`) beside the data. The single writer reads the marks when
//!    it opens and keeps them; a batch at or below its mark is a duplicate
//!    and writes nothing, as in SQLite.
//! 2. A call writes its data first (flow records, counters, blocked), then
//!    the marks of its batches; the server acknowledges after both.
//! 3. A crash (or a failed insert) between the data and the marks leaves
//!    rows of batches above their mark. The agent sends those batches again
//!    (never acknowledged); they pass the mark check and are written again.
//!    Every row's sorting key ends in its identity (node, boot, seq, place
//!    in the batch), the tables are ReplacingMergeTree and every read uses
//!    FINAL, so the second copy replaces the first instead of adding to it.
//!    The rollup views group by the batch identity for the same reason
//!    (`schema.rs`).
//! 4. The copies are identical because what a record credits (its growth
//!    over the flow's previous record) is computed from the flow state as
//!    of the marks: the writer's cache only takes a call's changes once its
//!    marks are written, and a writer opening after a crash loads flow state
//!    from rows at or below the marks only (`writer.rs`).
//!
//! Durability: ClickHouse 18.16 acknowledges an insert once the part is
//! written to its files, without fsync (it has no fsync-on-insert
//! setting), so an acknowledged batch survives a collector kill -9 or a
//! ClickHouse restart but not the ClickHouse host losing power.

mod client;
mod peaks;
mod reader;
mod rollups;
mod rows;
pub mod schema;
pub mod server;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_coarse;
mod writer;

pub mod bench;
pub mod generate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use client::Client;

use super::traits::{FlowReader, FlowStore, FlowWriter};
use super::{StoreConfig, StoreError};

/// `[storage.clickhouse]` in collector.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// The HTTP interface, `http://HOST:PORT`.
    pub url: String,
    /// Created if missing.
    pub database: String,
    /// Per request (inserts and queries).
    pub timeout_secs: u64,
    /// Raw flow records and blocked attempts; unset: `[storage]`'s
    /// `flow_retention_days` and `blocked_retention_days`.
    pub flow_retention_days: Option<u32>,
    pub blocked_retention_days: Option<u32>,
    /// Per-second counters (the 1 s step).
    pub usage_1s_retention_days: u32,
    /// The 1 min / 1 h rollups and their peaks and p95.
    pub usage_1m_retention_days: u32,
    pub usage_1h_retention_days: u32,
    /// Top hosts and sites per minute.
    pub top_retention_days: u32,
    /// Spread the flows over this cluster (its name in the servers'
    /// `remote_servers`): every table is created on each shard in
    /// `local_database`, with Distributed tables in `database` over them
    /// (sharded by node, so one node's rows and their duplicates meet on
    /// one shard). Unset: one server.
    pub cluster: Option<String>,
    /// With `cluster`: each shard's HTTP interface (one replica a shard),
    /// `url` among them. Tables are created through these, not ON CLUSTER
    /// (which needs ZooKeeper).
    pub shards: Vec<String>,
    /// With `cluster`: the shards' own tables; unset: `{database}_local`.
    pub local_database: Option<String>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "simpul".into(),
            timeout_secs: 60,
            flow_retention_days: None,
            blocked_retention_days: None,
            usage_1s_retention_days: 30,
            usage_1m_retention_days: 30,
            usage_1h_retention_days: 730,
            top_retention_days: 30,
            cluster: None,
            shards: Vec::new(),
            local_database: None,
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ClickHouseConfig {
    /// Problems, as (key, what is wrong).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(e) = Client::new(&self.url, Duration::from_secs(1)) {
            out.push(("storage.clickhouse.url", e.to_string()));
        }
        if !is_name(&self.database) {
            out.push((
                "storage.clickhouse.database",
                "must be letters, digits and _".into(),
            ));
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            out.push(("storage.clickhouse.timeout_secs", "must be 1..3600".into()));
        }
        for (k, v) in [
            (
                "storage.clickhouse.flow_retention_days",
                self.flow_retention_days,
            ),
            (
                "storage.clickhouse.blocked_retention_days",
                self.blocked_retention_days,
            ),
            (
                "storage.clickhouse.usage_1s_retention_days",
                Some(self.usage_1s_retention_days),
            ),
            (
                "storage.clickhouse.usage_1m_retention_days",
                Some(self.usage_1m_retention_days),
            ),
            (
                "storage.clickhouse.usage_1h_retention_days",
                Some(self.usage_1h_retention_days),
            ),
            (
                "storage.clickhouse.top_retention_days",
                Some(self.top_retention_days),
            ),
        ] {
            if v == Some(0) {
                out.push((k, "must be at least 1".into()));
            }
        }
        match &self.cluster {
            None if !self.shards.is_empty() || self.local_database.is_some() => out.push((
                "storage.clickhouse.cluster",
                "shards and local_database need a cluster".into(),
            )),
            None => {}
            Some(c) => {
                if !is_name(c) {
                    out.push((
                        "storage.clickhouse.cluster",
                        "must be letters, digits and _".into(),
                    ));
                }
                let local = self.local_db();
                if !is_name(&local) || local == self.database {
                    out.push((
                        "storage.clickhouse.local_database",
                        "must be letters, digits and _, and not the database".into(),
                    ));
                }
                let trim = |u: &str| u.trim_end_matches('/').to_string();
                if !self.shards.iter().any(|u| trim(u) == trim(&self.url)) {
                    out.push((
                        "storage.clickhouse.shards",
                        "must list every shard's URL, url among them".into(),
                    ));
                }
                for u in &self.shards {
                    if let Err(e) = Client::new(u, Duration::from_secs(1)) {
                        out.push(("storage.clickhouse.shards", e.to_string()));
                    }
                }
            }
        }
        out
    }

    fn local_db(&self) -> String {
        self.local_database
            .clone()
            .unwrap_or_else(|| format!("{}_local", self.database))
    }

    /// Retention in days per table of `schema::RETAINED`, in its order.
    fn retention(&self, store: &StoreConfig) -> [u32; 10] {
        [
            self.flow_retention_days
                .unwrap_or(store.flow_retention_days),
            self.blocked_retention_days
                .unwrap_or(store.blocked_retention_days),
            self.usage_1s_retention_days,
            self.usage_1m_retention_days,
            self.usage_1h_retention_days,
            self.top_retention_days,
            self.top_retention_days,
            self.usage_1m_retention_days,
            self.usage_1h_retention_days,
            self.flow_retention_days
                .unwrap_or(store.flow_retention_days),
        ]
    }
}

/// See the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClickHouseFlowStore {
    client: Arc<Client>,
    db: Arc<str>,
    /// With a cluster: each shard and its local database (retention drops
    /// partitions there); else empty.
    shards: Arc<Vec<Client>>,
    local_db: Arc<str>,
    retention: [u32; 10],
    writer_open: Arc<AtomicBool>,
    /// Minutes the writer stored but did not fold yet (`rollups.rs`).
    pending: rollups::Shared,
}

impl ClickHouseFlowStore {
    /// Connect, create the database and tables if missing, and check the
    /// schema version.
    pub fn open(cfg: &ClickHouseConfig, store: &StoreConfig) -> Result<Self, StoreError> {
        if let Some((key, why)) = cfg.problems().into_iter().next() {
            return Err(StoreError::Invalid {
                what: key,
                value: why,
                reason: "fix [storage.clickhouse] in collector.toml",
            });
        }
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let mut client = Client::new(&cfg.url, timeout)?;
        let mut shards = Vec::new();
        let local_db = match &cfg.cluster {
            None => {
                schema::migrate(&client, &cfg.database)?;
                cfg.database.clone()
            }
            Some(cluster) => {
                client = client.distributed();
                for u in &cfg.shards {
                    shards.push(Client::new(u, timeout)?);
                }
                let local = cfg.local_db();
                schema::migrate_cluster(&client, &shards, &cfg.database, &local, cluster)?;
                local
            }
        };
        Ok(Self {
            client: Arc::new(client),
            db: cfg.database.as_str().into(),
            shards: Arc::new(shards),
            local_db: local_db.as_str().into(),
            retention: cfg.retention(store),
            writer_open: Arc::new(AtomicBool::new(false)),
            pending: rollups::Shared::default(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &str {
        &self.db
    }

    /// Where a table's parts are: each shard's local database, or the
    /// one server's database.
    pub fn part_homes(&self) -> Vec<(&Client, &str)> {
        if self.shards.is_empty() {
            vec![(&self.client, &self.db)]
        } else {
            self.shards.iter().map(|c| (c, &*self.local_db)).collect()
        }
    }
}

/// Releases the store's single writer slot when the writer goes.
#[derive(Debug)]
struct WriterSlot(Arc<AtomicBool>);

impl Drop for WriterSlot {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl FlowStore for ClickHouseFlowStore {
    fn writer(&self) -> Result<Box<dyn FlowWriter>, StoreError> {
        if self.writer_open.swap(true, Ordering::AcqRel) {
            return Err(StoreError::WriterInUse);
        }
        let slot = WriterSlot(self.writer_open.clone());
        Ok(Box::new(writer::ChWriter::open(self.clone(), slot)?))
    }

    fn reader(&self) -> Result<Box<dyn FlowReader>, StoreError> {
        Ok(Box::new(reader::ChReader::new(self.clone())))
    }

    fn kind(&self) -> &'static str {
        "clickhouse"
    }
}

/// A sortable text key of an address: "4" and 8 hex digits, or "6" and 32;
/// keys compare as `IpAddr`s do.
pub(crate) fn ip_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(a) => format!("4{:08x}", u32::from(a)),
        std::net::IpAddr::V6(a) => format!("6{:032x}", u128::from(a)),
    }
}

pub(crate) fn ip_from_key(k: &str, table: &'static str) -> Result<std::net::IpAddr, StoreError> {
    let bad = || StoreError::Corrupt {
        table,
        detail: format!("address key {k:?}"),
    };
    match (k.get(..1), k.get(1..)) {
        (Some("4"), Some(h)) if h.len() == 8 => u32::from_str_radix(h, 16)
            .map(|v| std::net::IpAddr::V4(v.into()))
            .map_err(|_| bad()),
        (Some("6"), Some(h)) if h.len() == 32 => u128::from_str_radix(h, 16)
            .map(|v| std::net::IpAddr::V6(v.into()))
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

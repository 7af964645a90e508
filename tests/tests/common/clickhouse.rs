//! The collector's flows on ClickHouse in the end-to-end tests: a private
//! clickhouse-server from the collector's own starter
//! (`store::clickhouse::server`, as its store tests use) and a collector.toml
//! switched to it. The control store stays SQLite in the data directory.

#![allow(dead_code)]

use std::time::Duration;

pub use simpul_collector::store::clickhouse::server::TempClickHouse;
use simpul_collector::store::clickhouse::Client;

use super::collector::Collector;

/// A private server on a temporary directory and free ports, removed on drop.
pub fn start() -> TempClickHouse {
    TempClickHouse::start().unwrap_or_else(|e| panic!("the ClickHouse tests need a server: {e}"))
}

/// Point `c`'s flows at `database` on `server` (`[storage] backend`,
/// `[storage.clickhouse]`); takes effect at its next start.
pub fn use_clickhouse(c: &Collector, server: &TempClickHouse, database: &str) {
    let text = std::fs::read_to_string(&c.config).expect("read collector.toml");
    assert!(text.contains("[storage]\n"), "{text}");
    let mut text = text.replacen("[storage]\n", "[storage]\nbackend = \"clickhouse\"\n", 1);
    text.push_str(&format!(
        "[storage.clickhouse]\nurl = \"{}\"\ndatabase = \"{database}\"\n",
        server.url
    ));
    std::fs::write(&c.config, text).expect("write collector.toml");
}

/// The first column of the first row of `sql` as a number (ClickHouse
/// quotes 64-bit integers in JSON).
pub fn number(server: &TempClickHouse, sql: &str) -> u64 {
    let client = Client::new(&server.url, Duration::from_secs(30)).expect("a ClickHouse client");
    let rows: Vec<serde_json::Map<String, serde_json::Value>> =
        client.rows(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let v = rows
        .first()
        .and_then(|r| r.values().next())
        .unwrap_or_else(|| panic!("{sql}: no rows"));
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{sql}: not a number: {v}"))
}

/// Run a statement (`SYSTEM STOP MERGES`, …).
pub fn exec(server: &TempClickHouse, sql: &str) {
    Client::new(&server.url, Duration::from_secs(30))
        .expect("a ClickHouse client")
        .exec(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

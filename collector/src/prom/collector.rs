//! The collector itself: what build runs on which store, how large its
//! database files are, blocked attempts it stored per method and list, and
//! the notification channels it is configured with (their counters start
//! at zero, so a channel that never failed still has a series).

use super::figures::figures;
use super::text::{Exposition, Family, Kind};
use crate::state::AppState;

/// `git describe` of the build, when the build environment set it
/// (`SIMPUL_GIT_DESCRIBE=$(git describe --always --dirty) cargo build`).
pub const GIT_DESCRIBE: &str = match option_env!("SIMPUL_GIT_DESCRIBE") {
    Some(d) => d,
    None => "unknown",
};

const BUILD: Family = Family {
    name: "simpul_collector_build_info",
    kind: Kind::Gauge,
    help: "Always 1: the collector's version, its git describe (unknown when the build did not set SIMPUL_GIT_DESCRIBE) and the flow store backend.",
};
const STORE_SIZE: Family = Family {
    name: "simpul_store_size_bytes",
    kind: Kind::Gauge,
    help: "Size on disk of the collector's SQLite database, by file (database, wal: the write-ahead log not yet checkpointed).",
};
const LEADER: Family = Family {
    name: "simpul_outage_leader",
    kind: Kind::Gauge,
    help: "1 while this collector's outage detector leads (opens incidents, sends alerts), 0 while it follows; collector is its name in the lease (single: one collector on SQLite, which always leads).",
};
const BLOCKED: Family = Family {
    name: "simpul_blocked_attempts_total",
    kind: Kind::Counter,
    help: "Blocked attempts stored since the collector started, by method (dns, sni, quic, http, address, port, dot, doh, quic_protocol) and list (the policy section or named category that matched; other past 64 names).",
};

const NOTIFY_RECORDED: [&str; 4] = [
    "simpul_notify_sent_total",
    "simpul_notify_failed_total",
    "simpul_notify_retries_total",
    "simpul_notify_rate_limited_total",
];

pub fn write(e: &mut Exposition, s: &AppState) {
    e.family(&BUILD).int(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("git", GIT_DESCRIBE),
            ("store", s.flows.kind()),
        ],
        1,
    );
    let collector = s.outage.collector_id().unwrap_or("single");
    e.family(&LEADER).int(
        &[("collector", collector), ("control", s.control.backend())],
        u64::from(s.outage.is_leading()),
    );
    let db = s.control.database_path();
    let wal = {
        let mut p = db.as_os_str().to_owned();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    e.family(&STORE_SIZE)
        .int(&[("file", "database")], size(db))
        .int(&[("file", "wal")], size(&wal));
    e.family(&BLOCKED);
    for ((method, list), n) in figures().blocked() {
        e.family(&BLOCKED)
            .int(&[("method", method), ("list", list.as_str())], n);
    }
    register_channels(s);
}

/// Zero series for every configured channel (the notifier increments the
/// same counters as it sends).
fn register_channels(s: &AppState) {
    for (name, _) in s.config.notify.channel_names() {
        for family in NOTIFY_RECORDED {
            metrics::counter!(family, "channel" => name.to_string()).increment(0);
        }
    }
}

//! collector.toml: every section has defaults (one `impl Default` each); see
//! configs/collector.toml. What the NOC manages lives beside it: the
//! inventory (`[inventory] file`) and the agencies' policies (`[policy]
//! dir`). Validation reports every problem with its place at once; keys of
//! older files say where their content went.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use simpul_proto::problem::describe;
use simpul_proto::time_window::UtcOffset;
use simpul_proto::Problem;

pub use simpul_core::inventory::SEVERITIES;
pub use simpul_proto::valid_code;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: {cause}")]
    Parse {
        path: PathBuf,
        cause: Box<toml::de::Error>,
    },
    #[error("{path}: {}", describe(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub nodes: NodesConfig,
    pub inventory: InventoryConfig,
    pub policy: PolicyConfig,
    /// Who is told about outages, and how (see `notify`).
    pub notify: crate::notify::NotifyConfig,
    /// Operator sessions and login throttling.
    pub auth: crate::auth::AuthConfig,
    /// Monthly reports: made on the 1st, mailed to these recipients.
    pub reports: crate::reports::schedule::ReportsConfig,
    /// NetFlow v5/v9 and IPFIX in (disabled unless `listen` is set).
    pub netflow: crate::netflow::NetflowConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain HTTP for the dashboard and API (keep on loopback or behind a
    /// TLS-terminating proxy). Agents are never accepted here.
    pub listen: Option<SocketAddr>,
    /// HTTPS + WSS: agents, and browsers from other machines.
    pub listen_tls: Option<SocketAddr>,
    /// Certificate chain and key (PEM). When absent, a private CA and a server
    /// certificate are generated under `data_dir/tls/` on first start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Extra DNS names / addresses for the generated server certificate.
    pub tls_names: Vec<String>,
    /// Largest agent message accepted, bytes.
    pub max_message_bytes: usize,
    /// Prometheus `/metrics` without login on its own address (for a
    /// scraper on a management network); on the other listeners it needs
    /// an operator's API token.
    pub metrics_listen: Option<SocketAddr>,
    /// Open connections at most, all listeners together (agents, browsers,
    /// API clients); more wait in the kernel's backlog.
    pub max_connections: usize,
    /// ...and from one client address.
    pub max_connections_per_address: usize,
    /// A client must send its request headers within this.
    pub header_read_timeout_secs: u64,
    /// A connection with nothing read or written this long is closed.
    pub idle_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            listen_tls: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            max_message_bytes: simpul_proto::wire::MAX_MESSAGE_BYTES,
            metrics_listen: None,
            max_connections: 4096,
            max_connections_per_address: 64,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 120,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The embedded database, the TLS material and the policy signing key.
    pub data_dir: PathBuf,
    /// Raw flow records are kept this long.
    pub flow_retention_days: u32,
    /// Blocked attempts are kept this long; unset: as long as flows.
    pub blocked_retention_days: Option<u32>,
    /// Where flows go: "sqlite" (embedded, the default) or "clickhouse"
    /// (`[storage.clickhouse]`; the control store stays SQLite).
    pub backend: StorageBackend,
    pub clickhouse: crate::store::clickhouse::ClickHouseConfig,
    /// The control store: "sqlite" (the default) or "postgres" (`url`).
    pub control: crate::store::postgres::PostgresConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Sqlite,
    Clickhouse,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            flow_retention_days: 30,
            blocked_retention_days: None,
            backend: StorageBackend::Sqlite,
            clickhouse: Default::default(),
            control: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodesConfig {
    /// Agents send a heartbeat this often.
    pub heartbeat_interval_ms: u64,
    /// A node silent this long is DOWN.
    pub down_after_secs: u64,
    /// ...and UP again after this many heartbeats in a row.
    pub up_after_heartbeats: u32,
    /// FLAPPING: this many changes of state within flap_window_secs.
    pub flap_threshold: u32,
    pub flap_window_secs: u64,
    /// Notify the next escalation level when an outage stays
    /// unacknowledged this long (0: never escalate).
    pub escalate_after_mins: u64,
    /// An agency using at least this percent of its internet allocation...
    pub allocation_alert_pct: u32,
    /// ...for this long is alerted (`allocation_high`).
    pub allocation_alert_secs: u64,
    /// An agent clock further than this from the collector's is alerted.
    pub max_clock_skew_ms: u64,
    /// Severity of a node's outages when its inventory entry names none.
    pub default_criticality: String,
}

impl Default for NodesConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 2000,
            down_after_secs: 10,
            up_after_heartbeats: 2,
            flap_threshold: 4,
            flap_window_secs: 600,
            escalate_after_mins: 15,
            allocation_alert_pct: 95,
            allocation_alert_secs: 300,
            max_clock_skew_ms: 5_000,
            default_criticality: "major".into(),
        }
    }
}

/// `[inventory]`: the agencies, units, subnets, intranet and nodes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventoryConfig {
    /// inventory.toml (relative to collector.toml's directory); re-read
    /// when it changes, and every change reaches the agents at once.
    pub file: Option<PathBuf>,
}

/// `[policy]`: where each agency's policy comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// A directory of `<agency>.toml` policies (relative to collector.toml's
    /// directory); re-read when they change. Every change is a new version,
    /// signed and pushed to the agency's nodes.
    pub dir: Option<PathBuf>,
    /// Named domain lists (`[policy.lists]`).
    pub lists: ListsConfig,
}

/// `[policy.lists]`: bounds of uploaded and synced lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListsConfig {
    /// Largest list accepted, bytes, after gzip is undone (a 3 M-domain
    /// TrustPositif-style list is about 70 MB).
    pub max_bytes: u64,
    /// Largest gzip upload, bytes as sent.
    pub max_upload_bytes: u64,
    /// Most domains one list may hold.
    pub max_domains: u64,
    /// A new version losing more than this share of the names is held for
    /// an administrator (a source's own setting wins for its syncs).
    pub max_shrink_percent: f64,
    /// Longest a sync download may take, seconds.
    pub sync_timeout_secs: u64,
}

impl Default for ListsConfig {
    fn default() -> Self {
        ListsConfig {
            max_bytes: 256 << 20,
            max_upload_bytes: 128 << 20,
            max_domains: 10_000_000,
            max_shrink_percent: 20.0,
            sync_timeout_secs: 300,
        }
    }
}

/// Keys of older collector.toml files and where their content went.
const MOVED: &[(&str, &str)] = &[
    (
        "agencies",
        "moved to the inventory file ([inventory] file): agencies, units and subnets are defined once there; allocations (alloc_*_bps) are policy ([policy] dir, one <agency>.toml each)",
    ),
    (
        "uplink",
        "moved to the inventory file: `uplink = { down_bps = …, up_bps = … }`",
    ),
    (
        "nodes.topology",
        "moved to the inventory file: each node's `parent` and `criticality` in `nodes`",
    ),
];

impl CollectorConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate; `path` labels errors, and relative inventory and
    /// policy paths resolve from its directory.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let parse_err = |cause| ConfigError::Parse {
            path: path.to_owned(),
            cause: Box::new(cause),
        };
        let raw: toml::Table = toml::from_str(text).map_err(parse_err)?;
        let moved: Vec<Problem> = MOVED
            .iter()
            .filter(|(key, _)| has_key(&raw, key))
            .map(|(key, why)| Problem::new(*key, *why))
            .collect();
        if !moved.is_empty() {
            return Err(invalid(moved));
        }
        let mut cfg: CollectorConfig = toml::from_str(text).map_err(parse_err)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.inventory.file, &mut cfg.policy.dir]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(invalid(problems))
        }
    }

    /// Every problem of the configuration, with its place.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |place: &str, m: String| out.push(Problem::new(place, m));
        let s = &self.server;
        if s.listen.is_none() && s.listen_tls.is_none() {
            bad("server", "set listen and/or listen_tls".into());
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            bad("server", "tls_cert and tls_key go together".into());
        }
        if let Some(a) = s.listen {
            if !a.ip().is_loopback() {
                bad(
                    "server.listen",
                    format!("plain HTTP may bind a loopback address only (127.0.0.1 or ::1, for a local reverse proxy and tools), not {a}: browsers and agents on the network use listen_tls (HTTPS)"),
                );
            }
        }
        if s.max_connections < 16 || s.max_connections > 1_000_000 {
            bad("server.max_connections", "must be 16..1000000".into());
        }
        if s.max_connections_per_address == 0 || s.max_connections_per_address > s.max_connections {
            bad(
                "server.max_connections_per_address",
                "must be 1..max_connections".into(),
            );
        }
        if !(1..=300).contains(&s.header_read_timeout_secs) {
            bad("server.header_read_timeout_secs", "must be 1..300".into());
        }
        if !(10..=3600).contains(&s.idle_timeout_secs) {
            bad("server.idle_timeout_secs", "must be 10..3600".into());
        }
        if s.max_message_bytes < 4096 || s.max_message_bytes > simpul_proto::wire::MAX_MESSAGE_BYTES
        {
            bad(
                "server.max_message_bytes",
                format!("must be 4096..{}", simpul_proto::wire::MAX_MESSAGE_BYTES),
            );
        }
        if self.storage.flow_retention_days == 0 {
            bad("storage.flow_retention_days", "must be at least 1".into());
        }
        if self.storage.backend == StorageBackend::Clickhouse {
            for (key, why) in self.storage.clickhouse.problems() {
                bad(key, why);
            }
        }
        for (key, why) in self.storage.control.problems() {
            bad(key, why);
        }
        if self.storage.control.backend == crate::store::postgres::ControlBackend::Postgres
            && self.storage.control.lease_secs > self.nodes.down_after_secs
        {
            // A follower takes over within about lease_secs of the leader's
            // death: longer than a heartbeat window, an outage could go
            // unrecorded for longer than it takes to call a node down.
            bad(
                "storage.control.lease_secs",
                format!(
                    "must be at most nodes.down_after_secs ({})",
                    self.nodes.down_after_secs
                ),
            );
        }
        if self.storage.blocked_retention_days == Some(0) {
            bad(
                "storage.blocked_retention_days",
                "must be at least 1".into(),
            );
        }
        let n = &self.nodes;
        if n.heartbeat_interval_ms == 0 || n.down_after_secs * 1000 <= n.heartbeat_interval_ms {
            bad(
                "nodes",
                "down_after_secs must be longer than heartbeat_interval_ms".into(),
            );
        }
        if n.up_after_heartbeats == 0 || n.flap_threshold < 2 || n.flap_window_secs == 0 {
            bad(
                "nodes",
                "up_after_heartbeats ≥ 1, flap_threshold ≥ 2 and flap_window_secs ≥ 1".into(),
            );
        }
        if !SEVERITIES.contains(&n.default_criticality.as_str()) {
            bad(
                "nodes.default_criticality",
                format!(
                    "{:?} is not one of {}",
                    n.default_criticality,
                    SEVERITIES.join(", ")
                ),
            );
        }
        if !(1..=100).contains(&n.allocation_alert_pct) {
            bad("nodes.allocation_alert_pct", "must be 1-100".into());
        }
        if let Err(p) = self.notify.validate_all() {
            out.extend(p);
        }
        out.extend(self.auth.problems());
        out.extend(self.reports.problems(&self.notify));
        out.extend(self.netflow.problems());
        out
    }

    /// The NOC's local time (notifications, reports).
    pub fn utc_offset(&self) -> UtcOffset {
        UtcOffset::parse(&self.notify.utc_offset).unwrap_or(UtcOffset::WIB)
    }
}

/// Whether the dotted `key` ("nodes.topology") is in the table.
fn has_key(table: &toml::Table, key: &str) -> bool {
    match key.split_once('.') {
        None => table.contains_key(key),
        Some((head, rest)) => table
            .get(head)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| has_key(t, rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        CollectorConfig::parse(text, Path::new("/etc/simpul/collector.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_example_collector_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/collector.toml");
        let cfg = CollectorConfig::load(&path).expect("configs/collector.toml is valid");
        let inv = cfg.inventory.file.expect("an inventory file");
        assert!(inv.ends_with("inventory.toml"), "{}", inv.display());
        assert!(inv.exists(), "{}", inv.display());
        assert!(cfg.policy.dir.expect("a policy dir").is_dir());
    }

    #[test]
    fn old_keys_say_where_they_moved() {
        let e = err(
            "[uplink]\ncapacity_down_bps = 1\n[[agencies]]\ncode = \"a\"\nalloc_down_bps = 1\nalloc_up_bps = 1\n[[nodes.topology]]\nnode = \"a\"\n",
        );
        for want in [
            "agencies: moved to the inventory file",
            "alloc_*_bps) are policy",
            "uplink: moved to the inventory file",
            "nodes.topology: moved to the inventory file",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = err(
            "[server]\nlisten_tls = \"0.0.0.0:1\"\ntls_cert = \"c.pem\"\n[nodes]\ndown_after_secs = 1\nflap_threshold = 1\ndefault_criticality = \"urgent\"\n",
        );
        for want in [
            "server: tls_cert and tls_key go together",
            "nodes: down_after_secs",
            "nodes: up_after_heartbeats",
            "nodes.default_criticality: \"urgent\"",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }

    #[test]
    fn plain_http_binds_loopback_only_and_limits_are_sane() {
        let e = err(
            "[server]\nlisten = \"0.0.0.0:8080\"\nmax_connections = 4\nmax_connections_per_address = 0\n[auth]\nsession_idle_minutes = 0\n",
        );
        for want in [
            "server.listen: plain HTTP may bind a loopback address only",
            "server.max_connections: must be 16..1000000",
            "server.max_connections_per_address: must be 1..max_connections",
            "auth.session_idle_minutes: must be 1..1440",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        for ok in ["127.0.0.1:8080", "[::1]:8080"] {
            let c = CollectorConfig::parse(
                &format!("[server]\nlisten = \"{ok}\"\n"),
                Path::new("/etc/simpul/collector.toml"),
            );
            assert!(c.is_ok(), "{ok}");
        }
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = CollectorConfig::parse(
            "[inventory]\nfile = \"inventory.toml\"\n[policy]\ndir = \"/p\"\n",
            Path::new("/etc/simpul/collector.toml"),
        )
        .unwrap();
        assert_eq!(c.nodes.down_after_secs, 10);
        assert_eq!(c.server.listen.unwrap().port(), 8080);
        assert_eq!(
            c.inventory.file,
            Some(PathBuf::from("/etc/simpul/inventory.toml"))
        );
        assert_eq!(c.policy.dir, Some(PathBuf::from("/p")));
    }
}

//! collector.toml: every section has defaults; see configs/collector.toml.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Same errors and same code rules as the agent's configuration.
pub use simpul_agent::config::{valid_code, ConfigError};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub nodes: NodesConfig,
    #[serde(default)]
    pub uplink: UplinkConfig,
    #[serde(default)]
    pub agencies: Vec<AgencyConfig>,
    /// Who is told about outages, and how (see `notify`).
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain HTTP for the dashboard and API (keep on loopback or behind a
    /// TLS-terminating proxy). Agents are never accepted here.
    #[serde(default = "default_listen")]
    pub listen: Option<SocketAddr>,
    /// HTTPS + WSS: agents, and browsers from other machines.
    #[serde(default = "default_listen_tls")]
    pub listen_tls: Option<SocketAddr>,
    /// Certificate chain and key (PEM). When absent, a private CA and a server
    /// certificate are generated under `data_dir/tls/` on first start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Extra DNS names / addresses for the generated server certificate.
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// Largest agent message accepted, bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            listen_tls: default_listen_tls(),
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            max_message_bytes: default_max_message(),
        }
    }
}

fn default_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
}
fn default_listen_tls() -> Option<SocketAddr> {
    Some(SocketAddr::from(([0, 0, 0, 0], 8443)))
}
fn default_max_message() -> usize {
    simpul_proto::wire::MAX_MESSAGE_BYTES
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_flow_retention")]
    pub flow_retention_days: u32,
    /// Blocked attempts are kept this long; unset: as long as flows.
    #[serde(default)]
    pub blocked_retention_days: Option<u32>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            flow_retention_days: default_flow_retention(),
            blocked_retention_days: None,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_flow_retention() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesConfig {
    /// Agents send a heartbeat this often.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    /// A node silent this long is DOWN.
    #[serde(default = "default_down_after")]
    pub down_after_secs: u64,
    /// ...and UP again after this many heartbeats in a row.
    #[serde(default = "default_up_after")]
    pub up_after_heartbeats: u32,
    /// FLAPPING: this many changes of state within flap_window_secs.
    #[serde(default = "default_flap_threshold")]
    pub flap_threshold: u32,
    #[serde(default = "default_flap_window")]
    pub flap_window_secs: u64,
    /// Notify the next escalation level when an outage stays
    /// unacknowledged this long (0: never escalate).
    #[serde(default = "default_escalate_after")]
    pub escalate_after_mins: u64,
    /// An agency using at least this percent of its internet allocation...
    #[serde(default = "default_alloc_pct")]
    pub allocation_alert_pct: u32,
    /// ...for this long is alerted (`allocation_high`).
    #[serde(default = "default_alloc_secs")]
    pub allocation_alert_secs: u64,
    /// An agent clock further than this from the collector's is alerted.
    #[serde(default = "default_max_skew")]
    pub max_clock_skew_ms: u64,
    /// Severity of a node's outages when its topology entry names none.
    #[serde(default = "default_criticality")]
    pub default_criticality: String,
    /// Parents and criticality of nodes (a district hub above the agencies
    /// behind it). A node without an entry has no parent.
    #[serde(default)]
    pub topology: Vec<TopologyEntry>,
}

/// `[[nodes.topology]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyEntry {
    pub node: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// critical, major, minor or info.
    #[serde(default)]
    pub criticality: Option<String>,
}

/// Severities, most severe first.
pub const SEVERITIES: [&str; 4] = ["critical", "major", "minor", "info"];

impl NodesConfig {
    pub fn criticality_of(&self, node: &str) -> &str {
        self.topology
            .iter()
            .find(|t| t.node == node)
            .and_then(|t| t.criticality.as_deref())
            .unwrap_or(&self.default_criticality)
    }

    pub fn parent_of(&self, node: &str) -> Option<&str> {
        self.topology
            .iter()
            .find(|t| t.node == node)
            .and_then(|t| t.parent.as_deref())
    }
}

impl Default for NodesConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: default_heartbeat_ms(),
            down_after_secs: default_down_after(),
            up_after_heartbeats: default_up_after(),
            flap_threshold: default_flap_threshold(),
            flap_window_secs: default_flap_window(),
            escalate_after_mins: default_escalate_after(),
            max_clock_skew_ms: default_max_skew(),
            allocation_alert_pct: default_alloc_pct(),
            allocation_alert_secs: default_alloc_secs(),
            default_criticality: default_criticality(),
            topology: Vec::new(),
        }
    }
}

fn default_up_after() -> u32 {
    2
}
fn default_flap_threshold() -> u32 {
    4
}
fn default_flap_window() -> u64 {
    600
}
fn default_alloc_pct() -> u32 {
    95
}
fn default_alloc_secs() -> u64 {
    300
}
fn default_max_skew() -> u64 {
    5_000
}
fn default_escalate_after() -> u64 {
    15
}
fn default_criticality() -> String {
    "major".into()
}

fn default_heartbeat_ms() -> u64 {
    2000
}
fn default_down_after() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// The central internet uplink Diskominfo buys and divides.
    #[serde(default = "default_uplink")]
    pub capacity_down_bps: u64,
    #[serde(default = "default_uplink")]
    pub capacity_up_bps: u64,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        Self {
            capacity_down_bps: default_uplink(),
            capacity_up_bps: default_uplink(),
        }
    }
}

fn default_uplink() -> u64 {
    1_000_000_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyConfig {
    pub code: String,
    #[serde(default)]
    pub name: String,
    /// Allocated internet bandwidth (download / upload), bits per second.
    pub alloc_down_bps: u64,
    pub alloc_up_bps: u64,
    #[serde(default)]
    pub units: Vec<UnitConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    pub code: String,
    #[serde(default)]
    pub name: String,
}

impl CollectorConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: CollectorConfig = toml::from_str(text).map_err(|cause| ConfigError::Parse {
            path: path.to_owned(),
            cause: Box::new(cause),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |location: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location,
            message,
        };
        if self.server.listen.is_none() && self.server.listen_tls.is_none() {
            return Err(invalid(
                "server".into(),
                "set listen and/or listen_tls".into(),
            ));
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(invalid(
                "server".into(),
                "tls_cert and tls_key go together".into(),
            ));
        }
        if self.nodes.heartbeat_interval_ms == 0
            || self.nodes.down_after_secs * 1000 <= self.nodes.heartbeat_interval_ms
        {
            return Err(invalid(
                "nodes".into(),
                "down_after_secs must be longer than heartbeat_interval_ms".into(),
            ));
        }
        self.notify.validate(path)?;
        let n = &self.nodes;
        if n.up_after_heartbeats == 0 || n.flap_threshold < 2 || n.flap_window_secs == 0 {
            return Err(invalid(
                "nodes".into(),
                "up_after_heartbeats ≥ 1, flap_threshold ≥ 2 and flap_window_secs ≥ 1".into(),
            ));
        }
        if !SEVERITIES.contains(&n.default_criticality.as_str()) {
            return Err(invalid(
                "nodes.default_criticality".into(),
                format!(
                    "{:?} is not one of {}",
                    n.default_criticality,
                    SEVERITIES.join(", ")
                ),
            ));
        }
        let mut topo = std::collections::HashSet::new();
        for (i, t) in n.topology.iter().enumerate() {
            let loc = format!("nodes.topology[{i}] ({})", t.node);
            if !valid_code(&t.node) || !topo.insert(t.node.as_str()) {
                return Err(invalid(loc, "invalid or duplicate node id".into()));
            }
            if let Some(p) = &t.parent {
                if !valid_code(p) || p == &t.node {
                    return Err(invalid(loc, format!("invalid parent {p:?}")));
                }
            }
            if let Some(c) = &t.criticality {
                if !SEVERITIES.contains(&c.as_str()) {
                    return Err(invalid(
                        loc,
                        format!("criticality {c:?} is not one of {}", SEVERITIES.join(", ")),
                    ));
                }
            }
        }
        // A parent chain must end: follow each one at most len hops.
        for t in &n.topology {
            let mut cur = t.parent.as_deref();
            let mut hops = 0;
            while let Some(p) = cur {
                hops += 1;
                if p == t.node || hops > n.topology.len() {
                    return Err(invalid(
                        "nodes.topology".into(),
                        format!("parents of {:?} form a cycle", t.node),
                    ));
                }
                cur = n.parent_of(p);
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut down = 0u64;
        let mut up = 0u64;
        for (i, a) in self.agencies.iter().enumerate() {
            let loc = format!("agencies[{i}] ({})", a.code);
            if !valid_code(&a.code) {
                return Err(invalid(
                    loc,
                    "invalid code (letters, digits, '-', '_')".into(),
                ));
            }
            if !seen.insert(a.code.as_str()) {
                return Err(invalid(loc, "duplicate agency code".into()));
            }
            let mut units = std::collections::HashSet::new();
            for (j, u) in a.units.iter().enumerate() {
                if !valid_code(&u.code) || !units.insert(u.code.as_str()) {
                    return Err(invalid(
                        format!("{loc}.units[{j}]"),
                        format!("invalid or duplicate unit code {:?}", u.code),
                    ));
                }
            }
            down = down.saturating_add(a.alloc_down_bps);
            up = up.saturating_add(a.alloc_up_bps);
        }
        if down > self.uplink.capacity_down_bps || up > self.uplink.capacity_up_bps {
            return Err(invalid(
                "agencies".into(),
                format!(
                    "allocations ({down} bps down, {up} bps up) exceed the uplink ({} / {} bps)",
                    self.uplink.capacity_down_bps, self.uplink.capacity_up_bps
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_collector_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/collector.toml");
        let cfg = CollectorConfig::load(&path).expect("configs/collector.toml is valid");
        assert_eq!(cfg.nodes.parent_of("dinkes-01"), Some("hub-kupang"));
        assert_eq!(cfg.nodes.criticality_of("hub-kupang"), "critical");
        assert_eq!(cfg.nodes.criticality_of("other"), "major");
        let cyclic = "[[nodes.topology]]\nnode = \"a\"\nparent = \"b\"\n[[nodes.topology]]\nnode = \"b\"\nparent = \"a\"\n";
        let e = CollectorConfig::parse(cyclic, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("form a cycle"), "{e}");
        let bad = "[[nodes.topology]]\nnode = \"a\"\ncriticality = \"urgent\"\n";
        let e = CollectorConfig::parse(bad, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nodes.topology[0] (a)") && e.contains("urgent"),
            "{e}"
        );
    }

    #[test]
    fn allocations_above_the_uplink_are_refused() {
        let e = CollectorConfig::parse(
            r#"
[uplink]
capacity_down_bps = 100
capacity_up_bps = 100
[[agencies]]
code = "a"
alloc_down_bps = 60
alloc_up_bps = 10
[[agencies]]
code = "b"
alloc_down_bps = 60
alloc_up_bps = 10
"#,
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("exceed the uplink"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = CollectorConfig::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.nodes.down_after_secs, 10);
        assert_eq!(c.server.listen.unwrap().port(), 8080);
    }
}

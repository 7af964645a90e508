//! agent.toml: every section has defaults, so a minimal file is `[agent] id = "…"`.

use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde::Deserialize;

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
    #[error("{path}: {location}: {message}")]
    Invalid {
        path: PathBuf,
        location: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub capture: CaptureConfig,
    #[serde(default)]
    pub flows: FlowConfig,
    #[serde(default)]
    pub naming: NamingConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub agencies: Vec<AgencyConfig>,
    #[serde(default)]
    pub output: OutputConfig,
    /// The link to the central collector; absent: records only go to `[output]`.
    #[serde(default)]
    pub collector: Option<CollectorConfig>,
    /// Bandwidth and access enforcement through the kernel (tc HTB + nftables).
    #[serde(default)]
    pub enforce: EnforceConfig,
}

/// `[enforce]`: where the agent shapes and filters, and with what policy.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnforceConfig {
    /// LAN-side interface (towards the units): download is shaped on its egress.
    #[serde(default)]
    pub lan_interface: Option<String>,
    /// WAN-side interface (towards the internet): upload is shaped on its egress.
    #[serde(default)]
    pub wan_interface: Option<String>,
    /// Capacity of the uplink; a policy allocating more is refused.
    #[serde(default)]
    pub uplink_down_bps: Option<u64>,
    #[serde(default)]
    pub uplink_up_bps: Option<u64>,
    /// Local policy (TOML or JSON), applied by `run` at start.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// Where the last good policy is kept (`last-good-policy.toml`); it is
    /// applied at start before anything else. Default: /var/lib/simpul-agent.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Addresses that are never capped, blocked or suspended (the collector);
    /// the host of `[collector] url` is added when it is an IP address.
    #[serde(default)]
    pub always_allow: Vec<String>,
    /// Repeats of one blocked attempt (client, target, rule) are folded into
    /// one event per this many seconds; the first is reported at once.
    #[serde(default = "default_attempt_fold_secs")]
    pub attempt_fold_secs: u64,
    /// How long a connection refused because of a blocked TLS/QUIC/HTTP
    /// name stays refused in the kernel (client, server and port).
    #[serde(default = "default_name_block_secs")]
    pub name_block_secs: u64,
    /// The agency's DNS responder (absent: no DNS answering by the agent).
    #[serde(default)]
    pub dns: Option<DnsConfig>,
}

fn default_attempt_fold_secs() -> u64 {
    10
}

fn default_name_block_secs() -> u64 {
    300
}

/// `[enforce.dns]`: the agent answers DNS for its agency, blocks names of the
/// policy and forwards the rest.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Address the responder listens on (UDP and TCP): the router's LAN
    /// address and port 53. Redirected DNS is sent to exactly this address.
    /// A wildcard (`0.0.0.0:53`) only suits a LAN interface with one
    /// address: answers leave from whichever address the kernel picks, and
    /// clients drop answers from an address they did not ask.
    pub listen: std::net::SocketAddr,
    /// Resolver allowed queries are forwarded to.
    pub upstream: std::net::SocketAddr,
    /// Redirect DNS (port 53) from the LAN to other resolvers to this
    /// responder, so hard-coded resolvers cannot bypass the blocklist.
    #[serde(default = "default_true")]
    pub redirect: bool,
    /// Upstream timeout in milliseconds.
    #[serde(default = "default_dns_timeout_ms")]
    pub upstream_timeout_ms: u64,
}

fn default_true() -> bool {
    true
}

fn default_dns_timeout_ms() -> u64 {
    2000
}

impl Default for EnforceConfig {
    fn default() -> Self {
        EnforceConfig {
            lan_interface: None,
            wan_interface: None,
            uplink_down_bps: None,
            uplink_up_bps: None,
            policy_file: None,
            state_dir: None,
            always_allow: Vec::new(),
            attempt_fold_secs: default_attempt_fold_secs(),
            name_block_secs: default_name_block_secs(),
            dns: None,
        }
    }
}

impl EnforceConfig {
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    /// Whether the agent shapes and filters at all.
    pub fn enabled(&self) -> bool {
        self.lan_interface.is_some() || self.wan_interface.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Stable node id (the address code on the cable label).
    #[serde(default = "default_agent_id")]
    pub id: String,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            id: default_agent_id(),
        }
    }
}

fn default_agent_id() -> String {
    "simpul-agent".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interfaces to capture on. Capture the LAN side of the agency router so
    /// each packet is seen once and before NAT.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Socket read buffer per packet; offloaded (GSO/GRO) frames reach 64 KiB + headers.
    #[serde(default = "default_read_buffer")]
    pub read_buffer_size: usize,
    /// Batches between capture and processing threads before the capture drops.
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// Kernel socket receive buffer: absorbs bursts of 64 KiB offloaded frames
    /// while the capture thread is descheduled.
    #[serde(default = "default_socket_buffer")]
    pub socket_buffer_bytes: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            read_buffer_size: default_read_buffer(),
            queue_batches: default_queue_batches(),
            socket_buffer_bytes: default_socket_buffer(),
        }
    }
}

fn default_read_buffer() -> usize {
    67584
}
fn default_socket_buffer() -> usize {
    32 << 20
}
fn default_queue_batches() -> usize {
    1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// A flow with no packet for this long is ended.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// A running flow emits an interim record this often.
    #[serde(default = "default_active")]
    pub active_timeout_secs: u64,
    /// After FIN both ways or RST, trailing ACKs still belong to the flow for this long.
    #[serde(default = "default_linger")]
    pub tcp_close_linger_secs: u64,
    /// Memory cap: beyond this many flows the least recently seen are evicted.
    #[serde(default = "default_max_flows")]
    pub max_flows: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: default_idle(),
            active_timeout_secs: default_active(),
            tcp_close_linger_secs: default_linger(),
            max_flows: default_max_flows(),
        }
    }
}

fn default_idle() -> u64 {
    60
}
fn default_active() -> u64 {
    60
}
fn default_linger() -> u64 {
    2
}
fn default_max_flows() -> usize {
    500_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamingConfig {
    /// (client, server address) → looked-up name entries kept for DNS attribution.
    #[serde(default = "default_dns_cache")]
    pub dns_cache_entries: usize,
    /// Client bytes buffered per flow while looking for a ClientHello / request head.
    #[serde(default = "default_dpi_bytes")]
    pub dpi_max_bytes: usize,
    /// Client payload packets inspected per flow before giving up.
    #[serde(default = "default_dpi_packets")]
    pub dpi_max_packets: u32,
}

impl Default for NamingConfig {
    fn default() -> Self {
        Self {
            dns_cache_entries: default_dns_cache(),
            dpi_max_bytes: default_dpi_bytes(),
            dpi_max_packets: default_dpi_packets(),
        }
    }
}

fn default_dns_cache() -> usize {
    200_000
}
fn default_dpi_bytes() -> usize {
    16 * 1024
}
fn default_dpi_packets() -> u32 {
    12
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Destinations that are the government intranet, not the internet.
    #[serde(default)]
    pub intranet: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyConfig {
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub units: Vec<UnitConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    pub code: String,
    #[serde(default)]
    pub name: String,
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Write final (and interim) flow records here as JSON lines.
    pub flows_jsonl: Option<PathBuf>,
    /// Write per-second counters here as JSON lines.
    pub counters_jsonl: Option<PathBuf>,
    /// Write blocked attempts (enforcement events) here as JSON lines.
    pub blocked_jsonl: Option<PathBuf>,
}

/// `[collector]`: where and how the agent delivers its records.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// `wss://host:port/api/v1/agent` (`ws://` only for tests: no encryption).
    pub url: String,
    /// Node id presented to the collector; empty in the file means `agent.id`
    /// (filled in by [`AgentConfig::parse`]).
    #[serde(default)]
    pub node_id: String,
    /// One-time enrollment token, only used while no credential is stored.
    #[serde(default)]
    pub enroll_token: Option<String>,
    /// PEM file with the collector's CA certificate(s); the only roots trusted.
    /// Required for `wss://`.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Credential and spool (`state_dir/credential`, `state_dir/spool/`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Disk the spool of undelivered batches may use; beyond it the oldest
    /// batches are dropped and counted.
    #[serde(default = "default_spool_quota")]
    pub spool_quota_bytes: u64,
    /// Records are sealed into a batch this often.
    #[serde(default = "default_batch_interval")]
    pub batch_interval_ms: u64,
    /// Heartbeat period until the collector's Welcome names its own.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval_ms: u64,
    /// Send JSON text frames instead of binary ones (debugging only).
    #[serde(default)]
    pub json_debug: bool,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/simpul-agent")
}
fn default_spool_quota() -> u64 {
    512 << 20
}
fn default_batch_interval() -> u64 {
    1000
}
fn default_heartbeat_interval() -> u64 {
    2000
}

/// Smallest spool quota: a few busy batches must fit.
pub const MIN_SPOOL_QUOTA_BYTES: u64 = 1 << 20;

impl CollectorConfig {
    /// A config for `url` with every other key at its default (`node_id`
    /// must still be set); for callers that build the link in code.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_id: node_id.into(),
            enroll_token: None,
            ca_cert: None,
            state_dir: default_state_dir(),
            spool_quota_bytes: default_spool_quota(),
            batch_interval_ms: default_batch_interval(),
            heartbeat_interval_ms: default_heartbeat_interval(),
            json_debug: false,
        }
    }

    /// Check every key; errors are `(key, message)` so callers can place them.
    pub fn check(&self) -> Result<CollectorUrl, (&'static str, String)> {
        let url = CollectorUrl::parse(&self.url).map_err(|m| ("url", m))?;
        if !valid_code(&self.node_id) {
            return Err((
                "node_id",
                format!(
                    "{:?} is not a valid node id (1-64 letters, digits, '-', '_'; defaults to agent.id)",
                    self.node_id
                ),
            ));
        }
        if let Some(t) = &self.enroll_token {
            if t.trim().is_empty() {
                return Err(("enroll_token", "must not be empty when set".into()));
            }
        }
        if url.tls && self.ca_cert.is_none() {
            return Err((
                "ca_cert",
                "required for wss:// (PEM file of the collector's CA)".into(),
            ));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(("state_dir", "must not be empty".into()));
        }
        if self.spool_quota_bytes < MIN_SPOOL_QUOTA_BYTES {
            return Err((
                "spool_quota_bytes",
                format!("must be at least {MIN_SPOOL_QUOTA_BYTES} (1 MiB)"),
            ));
        }
        if !(100..=60_000).contains(&self.batch_interval_ms) {
            return Err(("batch_interval_ms", "must be between 100 and 60000".into()));
        }
        if !(100..=300_000).contains(&self.heartbeat_interval_ms) {
            return Err((
                "heartbeat_interval_ms",
                "must be between 100 and 300000".into(),
            ));
        }
        Ok(url)
    }
}

/// A parsed collector URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorUrl {
    /// `wss://` (true) or `ws://`.
    pub tls: bool,
    /// Host name or address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Path, `/api/v1/agent` when the URL has none.
    pub path: String,
}

impl CollectorUrl {
    /// Parse `ws[s]://host[:port][/path]`; hand-written because the agent
    /// needs no general URL parser for this one shape.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(format!(
                "{url:?} must start with wss:// (or ws:// for tests)"
            ));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(format!(
                "{url:?}: query strings and fragments are not supported"
            ));
        }
        if authority.contains('@') {
            return Err(format!("{url:?}: credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| format!("{url:?}: junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("{url:?}: missing or invalid host"));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{url:?}: invalid port {p:?}"))?,
        };
        let path = if path.is_empty() || path == "/" {
            simpul_proto::wire::AGENT_PATH.to_string()
        } else {
            path.to_string()
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The URL again, normalized (explicit port and path).
    pub fn to_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// A subnet parsed and placed: which agency/unit it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetAssignment {
    pub network: IpNetwork,
    pub agency: usize,
    pub unit: usize,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate; `path` only labels error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: AgentConfig = toml::from_str(text).map_err(|cause| ConfigError::Parse {
            path: path.to_owned(),
            cause: Box::new(cause),
        })?;
        if let Some(c) = cfg.collector.as_mut() {
            if c.node_id.is_empty() {
                c.node_id = cfg.agent.id.clone();
            }
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |location: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location,
            message,
        };
        if self.agent.id.trim().is_empty() {
            return Err(invalid("agent.id".into(), "must not be empty".into()));
        }
        let f = &self.flows;
        if f.idle_timeout_secs == 0 || f.active_timeout_secs == 0 {
            return Err(invalid(
                "flows".into(),
                "idle_timeout_secs and active_timeout_secs must be at least 1".into(),
            ));
        }
        if f.max_flows < 16 {
            return Err(invalid(
                "flows.max_flows".into(),
                "must be at least 16".into(),
            ));
        }
        if self.capture.read_buffer_size < 2048 {
            return Err(invalid(
                "capture.read_buffer_size".into(),
                "must be at least 2048 bytes".into(),
            ));
        }
        if let Some(c) = &self.collector {
            c.check()
                .map_err(|(key, message)| invalid(format!("collector.{key}"), message))?;
        }
        self.intranet_networks(path)?;
        self.subnet_assignments(path)?;
        self.enforce_check(path)?;
        Ok(())
    }

    fn enforce_check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |location: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location,
            message,
        };
        let e = &self.enforce;
        for (key, name) in [
            ("enforce.lan_interface", &e.lan_interface),
            ("enforce.wan_interface", &e.wan_interface),
        ] {
            if let Some(n) = name {
                if !valid_interface_name(n) {
                    return Err(invalid(
                        key.into(),
                        format!("{n:?} is not an interface name (1-15 of letters, digits, '-', '_', '.')"),
                    ));
                }
            }
        }
        if e.enabled() && (e.lan_interface.is_none() || e.wan_interface.is_none()) {
            return Err(invalid(
                "enforce".into(),
                "set both lan_interface and wan_interface (or neither)".into(),
            ));
        }
        if e.lan_interface.is_some() && e.lan_interface == e.wan_interface {
            return Err(invalid(
                "enforce.wan_interface".into(),
                "must differ from lan_interface".into(),
            ));
        }
        for (key, v) in [
            ("enforce.uplink_down_bps", e.uplink_down_bps),
            ("enforce.uplink_up_bps", e.uplink_up_bps),
        ] {
            if v == Some(0) {
                return Err(invalid(key.into(), "must be at least 1".into()));
            }
        }
        for (i, a) in e.always_allow.iter().enumerate() {
            parse_cidr(a).map_err(|m| invalid(format!("enforce.always_allow[{i}]"), m))?;
        }
        if !(1..=3600).contains(&e.attempt_fold_secs) {
            return Err(invalid(
                "enforce.attempt_fold_secs".into(),
                "must be 1-3600 seconds".into(),
            ));
        }
        if !(1..=86_400).contains(&e.name_block_secs) {
            return Err(invalid(
                "enforce.name_block_secs".into(),
                "must be 1-86400 seconds".into(),
            ));
        }
        if let Some(d) = &e.dns {
            if !e.enabled() {
                return Err(invalid(
                    "enforce.dns".into(),
                    "needs lan_interface and wan_interface (the responder blocks by policy)".into(),
                ));
            }
            if d.listen.port() == 0 || d.upstream.port() == 0 {
                return Err(invalid(
                    "enforce.dns".into(),
                    "listen and upstream need a port (53 normally)".into(),
                ));
            }
            if d.listen == d.upstream {
                return Err(invalid(
                    "enforce.dns.upstream".into(),
                    "must not be the responder itself".into(),
                ));
            }
            if d.redirect && d.listen.ip().is_loopback() {
                return Err(invalid(
                    "enforce.dns.listen".into(),
                    format!(
                        "{} is loopback, but redirected DNS arrives at the LAN interface's address: listen on it or on 0.0.0.0",
                        d.listen
                    ),
                ));
            }
            if !(1..=30_000).contains(&d.upstream_timeout_ms) {
                return Err(invalid(
                    "enforce.dns.upstream_timeout_ms".into(),
                    "must be 1-30000".into(),
                ));
            }
        }
        Ok(())
    }

    /// `[enforce] always_allow` plus the collector's address when its URL
    /// names an IP address.
    pub fn always_allowed(&self) -> Vec<IpNetwork> {
        let mut out: Vec<IpNetwork> = self
            .enforce
            .always_allow
            .iter()
            .filter_map(|a| parse_cidr(a).ok())
            .collect();
        if let Some(c) = &self.collector {
            if let Ok(u) = CollectorUrl::parse(&c.url) {
                if let Ok(ip) = u.host.parse::<std::net::IpAddr>() {
                    out.push(IpNetwork::from(ip));
                }
            }
        }
        out
    }

    /// The address → agency/unit map of this config; `path` labels errors.
    pub fn agency_map(&self, path: &Path) -> Result<crate::agency::AgencyMap, ConfigError> {
        let subnets = self.subnet_assignments(path)?;
        let intranet = self.intranet_networks(path)?;
        Ok(crate::agency::AgencyMap::new(
            &self.agencies,
            &subnets,
            intranet,
        ))
    }

    pub fn intranet_networks(&self, path: &Path) -> Result<Vec<IpNetwork>, ConfigError> {
        self.network
            .intranet
            .iter()
            .enumerate()
            .map(|(i, s)| {
                parse_cidr(s).map_err(|message| ConfigError::Invalid {
                    path: path.to_owned(),
                    location: format!("network.intranet[{i}]"),
                    message,
                })
            })
            .collect()
    }

    /// Every unit subnet, checked: valid CIDR, no duplicate codes, no overlap
    /// between units (an address must belong to exactly one unit).
    pub fn subnet_assignments(&self, path: &Path) -> Result<Vec<SubnetAssignment>, ConfigError> {
        let invalid = |location: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location,
            message,
        };
        let mut out: Vec<(SubnetAssignment, String)> = Vec::new();
        let mut agency_codes = std::collections::HashSet::new();
        for (ai, agency) in self.agencies.iter().enumerate() {
            let aloc = format!("agencies[{ai}] ({})", agency.code);
            if !valid_code(&agency.code) {
                return Err(invalid(
                    format!("agencies[{ai}].code"),
                    format!(
                        "{:?} is not a valid code (letters, digits, '-', '_')",
                        agency.code
                    ),
                ));
            }
            if !agency_codes.insert(agency.code.as_str()) {
                return Err(invalid(aloc, "duplicate agency code".into()));
            }
            let mut unit_codes = std::collections::HashSet::new();
            for (ui, unit) in agency.units.iter().enumerate() {
                let uloc = format!("{aloc}.units[{ui}] ({})", unit.code);
                if !valid_code(&unit.code) {
                    return Err(invalid(uloc, "invalid unit code".into()));
                }
                if !unit_codes.insert(unit.code.as_str()) {
                    return Err(invalid(uloc, "duplicate unit code in this agency".into()));
                }
                for (si, s) in unit.subnets.iter().enumerate() {
                    let sloc = format!("{uloc}.subnets[{si}]");
                    let network = parse_cidr(s).map_err(|m| invalid(sloc.clone(), m))?;
                    for (other, oloc) in &out {
                        if overlaps(&other.network, &network) {
                            return Err(invalid(
                                sloc,
                                format!("{network} overlaps {} at {oloc}", other.network),
                            ));
                        }
                    }
                    out.push((
                        SubnetAssignment {
                            network,
                            agency: ai,
                            unit: ui,
                        },
                        sloc,
                    ));
                }
            }
        }
        Ok(out.into_iter().map(|(a, _)| a).collect())
    }
}

fn valid_interface_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Agency, unit and node codes: `[A-Za-z0-9_-]{1,64}`, safe in URLs, logs
/// and file names (the collector checks the same).
pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parse "a.b.c.d/n" or "v6/n"; host bits must be zero so typos are caught.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, String> {
    let net: IpNetwork = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a CIDR: {e}"))?;
    if net.network() != net.ip() {
        return Err(format!(
            "{s:?} has host bits set (did you mean {}/{}?)",
            net.network(),
            net.prefix()
        ));
    }
    Ok(net)
}

pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(text, Path::new("agent.toml"))
    }

    #[test]
    fn minimal_config_has_defaults() {
        let c = parse("[agent]\nid = \"x\"\n").unwrap();
        assert_eq!(c.flows.idle_timeout_secs, 60);
        assert_eq!(c.capture.read_buffer_size, 67584);
    }

    #[test]
    fn overlapping_units_are_refused_with_location() {
        let err = parse(
            r#"
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.0.0/16"]
[[agencies]]
code = "bappeda"
[[agencies.units]]
code = "b"
subnets = ["10.1.2.0/24"]
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("agencies[1] (bappeda).units[0] (b).subnets[0]"),
            "{err}"
        );
        assert!(err.contains("overlaps 10.1.0.0/16"), "{err}");
    }

    #[test]
    fn host_bits_and_garbage_are_refused() {
        let e = parse("[network]\nintranet = [\"10.0.0.1/8\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("host bits"), "{e}");
        let e = parse("[network]\nintranet = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.intranet[0]"), "{e}");
    }

    #[test]
    fn collector_section_defaults_and_node_id() {
        let c = parse("[agent]\nid = \"dinkes-01\"\n[collector]\nurl = \"ws://127.0.0.1:9000\"\n")
            .unwrap();
        let col = c.collector.unwrap();
        assert_eq!(col.node_id, "dinkes-01");
        assert_eq!(col.spool_quota_bytes, 512 << 20);
        assert_eq!(col.batch_interval_ms, 1000);
        assert_eq!(col.heartbeat_interval_ms, 2000);
        assert_eq!(col.state_dir, PathBuf::from("/var/lib/simpul-agent"));
        assert!(!col.json_debug);
        let url = col.check().unwrap();
        assert_eq!(url.to_url(), "ws://127.0.0.1:9000/api/v1/agent");
        assert!(parse("[agent]\nid = \"x\"\n").unwrap().collector.is_none());
    }

    #[test]
    fn collector_errors_name_the_key() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        let m = e("[collector]\nurl = \"https://c:1/\"\n");
        assert!(m.contains("collector.url") && m.contains("wss://"), "{m}");
        let m = e("[collector]\nurl = \"wss://c:1/api/v1/agent\"\n");
        assert!(m.contains("collector.ca_cert"), "{m}");
        let m = e("[collector]\nurl = \"ws://c:99999\"\n");
        assert!(m.contains("invalid port"), "{m}");
        let m = e("[collector]\nurl = \"ws://c\"\nnode_id = \"a b\"\n");
        assert!(m.contains("collector.node_id"), "{m}");
        let m = e("[collector]\nurl = \"ws://c\"\nspool_quota_bytes = 10\n");
        assert!(m.contains("collector.spool_quota_bytes"), "{m}");
        let m = e("[collector]\nurl = \"ws://c\"\nbatch_interval_ms = 0\n");
        assert!(m.contains("collector.batch_interval_ms"), "{m}");
        let m = e("[collector]\nurl = \"ws://c\"\nenroll_token = \" \"\n");
        assert!(m.contains("collector.enroll_token"), "{m}");
        let m = e("[collector]\nurl = \"ws://c\"\nspool = 1\n");
        assert!(m.contains("spool"), "{m}");
    }

    #[test]
    fn collector_urls() {
        let u = CollectorUrl::parse("wss://[::1]:8443/x").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "::1", 8443, "/x")
        );
        assert_eq!(u.to_url(), "wss://[::1]:8443/x");
        let u = CollectorUrl::parse("wss://noc.example.go.id").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/api/v1/agent"));
        assert!(CollectorUrl::parse("ws://:80/").is_err());
        assert!(CollectorUrl::parse("ws://u@h/").is_err());
        assert!(CollectorUrl::parse("ws://h/?a=1").is_err());
        assert!(CollectorUrl::parse("ws://[::1/").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("[flows]\nidle_timeout = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("idle_timeout"), "{e}");
    }

    #[test]
    fn enforce_section_is_checked() {
        let c = parse(
            "[collector]\nurl = \"ws://192.0.2.9:9000\"\n[enforce]\nlan_interface = \"lan0\"\nwan_interface = \"wan0\"\nalways_allow = [\"10.255.0.10/32\"]\n",
        )
        .unwrap();
        assert!(c.enforce.enabled());
        let allowed: Vec<String> = c.always_allowed().iter().map(|n| n.to_string()).collect();
        assert_eq!(allowed, ["10.255.0.10/32", "192.0.2.9/32"]);
        assert_eq!(
            c.enforce.state_dir(),
            PathBuf::from("/var/lib/simpul-agent")
        );
        for (text, place) in [
            ("[enforce]\nlan_interface = \"lan0\"\n", "enforce: set both"),
            (
                "[enforce]\nlan_interface = \"x\"\nwan_interface = \"x\"\n",
                "enforce.wan_interface: must differ",
            ),
            (
                "[enforce]\nlan_interface = \"a b\"\nwan_interface = \"x\"\n",
                "enforce.lan_interface: ",
            ),
            (
                "[enforce]\nuplink_down_bps = 0\n",
                "enforce.uplink_down_bps: ",
            ),
            (
                "[enforce]\nalways_allow = [\"10.0.0.1/8\"]\n",
                "enforce.always_allow[0]: ",
            ),
            ("[enforce]\nname_block_secs = 0\n", "enforce.name_block_secs: "),
            (
                "[enforce.dns]\nlisten = \"0.0.0.0:53\"\nupstream = \"192.0.2.53:53\"\n",
                "enforce.dns: needs lan_interface",
            ),
            (
                "[enforce]\nlan_interface = \"l\"\nwan_interface = \"w\"\n[enforce.dns]\nlisten = \"127.0.0.1:53\"\nupstream = \"192.0.2.53:53\"\n",
                "enforce.dns.listen: 127.0.0.1:53 is loopback",
            ),
            (
                "[enforce]\nlan_interface = \"l\"\nwan_interface = \"w\"\n[enforce.dns]\nlisten = \"10.0.0.1:53\"\nupstream = \"bogus\"\n",
                "line 6, column 12",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(place), "{text}: {e}");
        }
        assert!(!parse("[agent]\nid = \"x\"\n").unwrap().enforce.enabled());
    }
}

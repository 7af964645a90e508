//! agent.toml: settings of this router only. Every section has defaults (one
//! `impl Default` each), so a minimal file is `[agent] id = "…"`.
//!
//! What the NOC decides is not here: the inventory (agencies, units,
//! subnets, the intranet, this node's uplink) and the policy come from the
//! collector over the link, or — for a router without a collector — from the
//! files named in `[standalone]`. Validation reports every problem with its
//! place at once; keys of older files say where their content went.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde::Deserialize;
use simpul_core::cidr::parse_cidr;
use simpul_core::flow::FlowLimits;
use simpul_core::naming::InspectLimits;
use simpul_core::processor::ProcessorConfig;
use simpul_proto::problem::describe;
use simpul_proto::{valid_code, Problem};

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

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub agent: AgentSection,
    pub capture: CaptureConfig,
    pub flows: FlowConfig,
    pub naming: NamingConfig,
    pub output: OutputConfig,
    /// The link to the central collector: records go there, and the
    /// inventory and signed policy come from there.
    pub collector: Option<CollectorConfig>,
    /// A router without a collector: its inventory and policy files.
    pub standalone: Option<StandaloneConfig>,
    /// Bandwidth and access enforcement through the kernel (tc HTB + nftables).
    pub enforce: EnforceConfig,
    /// Flows exported to other tools (`[export.ipfix]`); off unless present.
    pub export: crate::export::ExportConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// Stable node id: the address code on the cable label (Pergub NTT
    /// 115/2019 Pasal 22), as in the inventory.
    pub id: String,
    /// Everything the agent keeps: the credential, the spool of undelivered
    /// batches, the last inventory and the last good policy.
    pub state_dir: PathBuf,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            id: "simpul-agent".into(),
            state_dir: PathBuf::from("/var/lib/simpul-agent"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interfaces to capture on. Capture the LAN side of the agency router so
    /// each packet is seen once and before NAT.
    pub interfaces: Vec<String>,
    /// Socket read buffer per packet; offloaded (GSO/GRO) frames reach 64 KiB + headers.
    pub read_buffer_size: usize,
    /// Batches between capture and processing threads before the capture drops.
    pub queue_batches: usize,
    /// Kernel socket receive buffer: absorbs bursts of 64 KiB offloaded frames
    /// while the capture thread is descheduled.
    pub socket_buffer_bytes: usize,
    /// "auto" (a TPACKET_V3 ring, else pnet), "ring" (fail without one) or "pnet".
    pub method: CaptureMethod,
    /// Ring capture threads per interface (a PACKET_FANOUT group when > 1,
    /// dealt by address pair). With one interface, each thread owns a flow
    /// table of its own; with several, they feed the one processing thread.
    pub threads: usize,
    /// Ring geometry: block size and count, and how long the kernel holds a
    /// block that is not full before handing it over (the capture latency).
    pub ring_block_kib: u32,
    pub ring_blocks: u32,
    pub ring_block_timeout_ms: u32,
}

/// How frames are read off an interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMethod {
    #[default]
    Auto,
    Ring,
    Pnet,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            read_buffer_size: 67_584,
            queue_batches: 1024,
            socket_buffer_bytes: 32 << 20,
            method: CaptureMethod::Auto,
            threads: 1,
            // 16 MiB per ring, mapped (and so resident) whole from the
            // start: idle RSS 23.8 MiB instead of 39.7 with 256 blocks. On
            // this VM at the highest rate tcpreplay reaches (~300 kpps
            // under load 5), 64 blocks still captured everything and 32
            // dropped (bench/ring_rss.sh); 128 keeps twice the smallest
            // clean ring: ~130 ms of a stalled reader at 1 Gbit/s, and
            // 256 ms or more of 2 ms blocks at low rates. A block holds a
            // 64 KiB GRO frame whole.
            ring_block_kib: 128,
            ring_blocks: 128,
            ring_block_timeout_ms: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// A flow with no packet for this long is ended.
    pub idle_timeout_secs: u64,
    /// A running flow emits an interim record this often.
    pub active_timeout_secs: u64,
    /// After FIN both ways or RST, trailing ACKs still belong to the flow for this long.
    pub tcp_close_linger_secs: u64,
    /// Memory cap: beyond this many flows the least recently seen are evicted.
    pub max_flows: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 60,
            active_timeout_secs: 60,
            tcp_close_linger_secs: 2,
            max_flows: 500_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamingConfig {
    /// (client, server address) → looked-up name entries kept for DNS attribution.
    pub dns_cache_entries: usize,
    /// Client bytes buffered per flow while looking for a ClientHello / request head.
    pub dpi_max_bytes: usize,
    /// Client payload packets inspected per flow before giving up.
    pub dpi_max_packets: u32,
}

impl Default for NamingConfig {
    fn default() -> Self {
        Self {
            dns_cache_entries: 200_000,
            dpi_max_bytes: 16 * 1024,
            dpi_max_packets: 12,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Write final (and interim) flow records here as JSON lines.
    pub flows_jsonl: Option<PathBuf>,
    /// Write per-second counters here as JSON lines.
    pub counters_jsonl: Option<PathBuf>,
    /// Write blocked attempts (enforcement events) here as JSON lines.
    pub blocked_jsonl: Option<PathBuf>,
}

/// `[collector]`: where the agent delivers its records and gets its
/// inventory and policy.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// `wss://host:port/api/v1/agent` (`ws://` only for tests: no encryption).
    /// The one-collector form of `urls`.
    pub url: String,
    /// Several collectors, most preferred first: the agent fails over to
    /// the next when one fails and stays on the one that works (see
    /// [`crate::link::client`]). Exclusive with `url`.
    pub urls: Option<Vec<String>>,
    /// One-time enrollment token, only used while no credential is stored.
    pub enroll_token: Option<String>,
    /// PEM file with the collector's CA certificate(s); the only roots trusted.
    /// Required for `wss://`.
    pub ca_cert: Option<PathBuf>,
    /// Disk the spool of undelivered batches may use; beyond it the oldest
    /// batches are dropped and counted.
    pub spool_quota_bytes: u64,
    /// Records are sealed into a batch this often.
    pub batch_interval_ms: u64,
    /// Heartbeat period until the collector's Welcome names its own.
    pub heartbeat_interval_ms: u64,
    /// Send JSON text frames instead of binary ones (debugging only).
    pub json_debug: bool,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            urls: None,
            enroll_token: None,
            ca_cert: None,
            spool_quota_bytes: 512 << 20,
            batch_interval_ms: 1000,
            heartbeat_interval_ms: 2000,
            json_debug: false,
        }
    }
}

/// Most collector addresses an agent takes: a failover walks the list, and
/// a long one only delays finding the collector that answers.
pub const MAX_COLLECTORS: usize = 16;

/// Smallest spool quota: a few busy batches must fit.
pub const MIN_SPOOL_QUOTA_BYTES: u64 = 1 << 20;

impl CollectorConfig {
    /// A config for `url` with every other key at its default; for callers
    /// that build the link in code.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The collector addresses as configured, most preferred first (`urls`,
    /// or `url` alone), unchecked.
    pub fn addresses(&self) -> Vec<&str> {
        match &self.urls {
            Some(urls) => urls.iter().map(String::as_str).collect(),
            None => vec![self.url.as_str()],
        }
    }

    /// Every address parsed, or a problem at its key (`collector.url`,
    /// `collector.urls[i]`); None when any is wrong.
    fn check_addresses(&self, out: &mut Vec<Problem>) -> Option<Vec<CollectorUrl>> {
        let Some(urls) = &self.urls else {
            if self.url.is_empty() {
                out.push(Problem::new(
                    "collector.url",
                    "required: the collector's wss:// address (or urls = [...] for several collectors)",
                ));
                return None;
            }
            return match CollectorUrl::parse(&self.url) {
                Ok(u) => Some(vec![u]),
                Err(m) => {
                    out.push(Problem::new("collector.url", m));
                    None
                }
            };
        };
        let before = out.len();
        if !self.url.is_empty() {
            out.push(Problem::new(
                "collector.urls",
                "set either url (one collector) or urls (several), not both",
            ));
        }
        if urls.is_empty() {
            out.push(Problem::new(
                "collector.urls",
                "must list at least one collector address",
            ));
        }
        if urls.len() > MAX_COLLECTORS {
            out.push(Problem::new(
                "collector.urls",
                format!("at most {MAX_COLLECTORS} collector addresses"),
            ));
        }
        let mut parsed: Vec<CollectorUrl> = Vec::with_capacity(urls.len());
        for (i, text) in urls.iter().enumerate() {
            match CollectorUrl::parse(text) {
                Ok(u) => {
                    if let Some(j) = parsed.iter().position(|p| *p == u) {
                        out.push(Problem::new(
                            format!("collector.urls[{i}]"),
                            format!("the same collector as urls[{j}]"),
                        ));
                    }
                    parsed.push(u);
                }
                Err(m) => out.push(Problem::new(format!("collector.urls[{i}]"), m)),
            }
        }
        (out.len() == before).then_some(parsed)
    }

    /// Check every key; problems are placed under `collector.`. Returns
    /// the collector addresses, most preferred first.
    pub fn check(&self, out: &mut Vec<Problem>) -> Option<Vec<CollectorUrl>> {
        let at = |k: &str| format!("collector.{k}");
        let url = self.check_addresses(out);
        if let Some(t) = &self.enroll_token {
            if t.trim().is_empty() {
                out.push(Problem::new(
                    at("enroll_token"),
                    "must not be empty when set",
                ));
            }
        }
        if url.iter().flatten().any(|u| u.tls) && self.ca_cert.is_none() {
            out.push(Problem::new(
                at("ca_cert"),
                "required for wss:// (PEM file of the collector's CA)",
            ));
        }
        if self.spool_quota_bytes < MIN_SPOOL_QUOTA_BYTES {
            out.push(Problem::new(
                at("spool_quota_bytes"),
                format!("must be at least {MIN_SPOOL_QUOTA_BYTES} (1 MiB)"),
            ));
        }
        if !(100..=60_000).contains(&self.batch_interval_ms) {
            out.push(Problem::new(
                at("batch_interval_ms"),
                "must be between 100 and 60000",
            ));
        }
        if !(100..=300_000).contains(&self.heartbeat_interval_ms) {
            out.push(Problem::new(
                at("heartbeat_interval_ms"),
                "must be between 100 and 300000",
            ));
        }
        url
    }
}

/// `[standalone]`: a router without a collector reads what the NOC would
/// send from files (paths relative to agent.toml's directory).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StandaloneConfig {
    /// The inventory (the collector's file format; this node is the entry
    /// of `nodes` with `agent.id`). Re-read when it changes.
    pub inventory_file: Option<PathBuf>,
    /// The agency's policy (TOML or JSON). Re-read when it changes.
    pub policy_file: Option<PathBuf>,
}

/// `[enforce]`: where the agent shapes and filters.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EnforceConfig {
    /// LAN-side interface (towards the units): download is shaped on its egress.
    pub lan_interface: Option<String>,
    /// WAN-side interface (towards the internet): upload is shaped on its egress.
    pub wan_interface: Option<String>,
    /// Addresses that are never capped, blocked or suspended (the collector);
    /// the host of `[collector] url` is added when it is an IP address.
    pub always_allow: Vec<String>,
    /// Repeats of one blocked attempt (client, target, rule) are folded into
    /// one event per this many seconds; the first is reported at once.
    pub attempt_fold_secs: u64,
    /// How long a connection refused because of a blocked TLS/QUIC/HTTP
    /// name stays refused in the kernel (its 5-tuple: the connection's
    /// retransmissions and late packets, not the server's other sites).
    pub name_block_secs: u64,
    /// Reset both ends of a TCP connection refused by name at once, from
    /// the router (`enforce::reset`); without it only the end whose packet
    /// next crosses the router is reset, and the other may wait out its
    /// timeout. Default true.
    pub name_resets: bool,
    /// The agency's DNS responder (absent: no DNS answering by the agent).
    pub dns: Option<DnsConfig>,
    /// GRO/LRO/TSO/GSO on the two interfaces: `auto` (default) turns them
    /// off only while a class is too slow for a 64 KiB merged packet, `off`
    /// always, `keep` never (see `enforce::offloads`).
    pub offloads: Option<OffloadMode>,
    /// Deprecated spelling of `offloads = "keep"` (true); false was the
    /// default and means the default.
    pub keep_offloads: Option<bool>,
}

/// What the agent does with the shaped interfaces' merging offloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffloadMode {
    #[default]
    Auto,
    Off,
    Keep,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        EnforceConfig {
            lan_interface: None,
            wan_interface: None,
            always_allow: Vec::new(),
            attempt_fold_secs: 10,
            name_block_secs: 120,
            name_resets: true,
            dns: None,
            offloads: None,
            keep_offloads: None,
        }
    }
}

impl EnforceConfig {
    /// Whether the agent shapes and filters at all.
    pub fn enabled(&self) -> bool {
        self.lan_interface.is_some() || self.wan_interface.is_some()
    }

    /// The offload mode, `offloads` first; the deprecated `keep_offloads`
    /// is logged as such (a conflict with `offloads` is a config problem).
    pub fn offload_mode(&self) -> OffloadMode {
        if let Some(keep) = self.keep_offloads {
            tracing::warn!(
                keep_offloads = keep,
                "[enforce] keep_offloads is deprecated: use offloads = \"keep\" (or \"auto\", the default, or \"off\")"
            );
        }
        match (self.offloads, self.keep_offloads) {
            (Some(m), _) => m,
            (None, Some(true)) => OffloadMode::Keep,
            (None, _) => OffloadMode::Auto,
        }
    }
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
    pub listen: SocketAddr,
    /// A second listen address, IPv6 (`listen` then IPv4): IPv6 DNS from
    /// the LAN is answered and redirected here. Absent: IPv6 DNS is neither
    /// answered nor redirected.
    #[serde(default)]
    pub listen6: Option<SocketAddr>,
    /// Resolver allowed queries are forwarded to.
    pub upstream: SocketAddr,
    /// Redirect DNS (port 53) from the LAN to other resolvers to this
    /// responder, so hard-coded resolvers cannot bypass the blocklist.
    #[serde(default = "yes")]
    pub redirect: bool,
    /// Upstream timeout in milliseconds.
    #[serde(default = "dns_timeout_ms")]
    pub upstream_timeout_ms: u64,
}

impl DnsConfig {
    /// Every address the responder listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.listen).chain(self.listen6).collect()
    }

    /// Where the LAN's DNS is redirected, per family.
    pub fn redirect(&self) -> simpul_core::enforce::dns_redirect::DnsRedirect {
        let mut r = simpul_core::enforce::dns_redirect::DnsRedirect { v4: None, v6: None };
        for a in self.listen_addrs() {
            match a {
                SocketAddr::V4(a) => r.v4 = r.v4.or(Some(a)),
                SocketAddr::V6(a) => r.v6 = r.v6.or(Some(a)),
            }
        }
        r
    }
}

// Fields of a section without a Default of its own (listen and upstream
// have no sensible default).
fn yes() -> bool {
    true
}
fn dns_timeout_ms() -> u64 {
    2000
}

/// Keys of older agent.toml files and where their content went.
const MOVED: &[(&str, &str)] = &[
    (
        "agencies",
        "moved to the inventory: at the collector (inventory.toml), or for a router without a collector the file named by [standalone] inventory_file",
    ),
    (
        "network",
        "network.intranet moved to the inventory's `intranet` (at the collector, or [standalone] inventory_file)",
    ),
    (
        "enforce.uplink_down_bps",
        "moved to the inventory: `uplink` of this node's entry in `nodes`",
    ),
    (
        "enforce.uplink_up_bps",
        "moved to the inventory: `uplink` of this node's entry in `nodes`",
    ),
    (
        "enforce.policy_file",
        "moved: with a [collector] the policy comes from it, signed; a router without one sets [standalone] policy_file",
    ),
    (
        "enforce.state_dir",
        "moved to [agent] state_dir (one state directory for everything)",
    ),
    (
        "collector.state_dir",
        "moved to [agent] state_dir (one state directory for everything)",
    ),
    (
        "collector.node_id",
        "the node id is [agent] id (the same id everywhere)",
    ),
];

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

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate; `path` labels errors, and relative `[standalone]`
    /// paths resolve from its directory.
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
        let mut cfg: AgentConfig = toml::from_str(text).map_err(parse_err)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(s) = cfg.standalone.as_mut() {
            for p in [&mut s.inventory_file, &mut s.policy_file]
                .into_iter()
                .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
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
        let mut bad = |place: &str, m: &str| out.push(Problem::new(place, m));
        if !valid_code(&self.agent.id) {
            bad(
                "agent.id",
                "must be 1-64 letters, digits, '-', '_' (the node id of the inventory)",
            );
        }
        if self.agent.state_dir.as_os_str().is_empty() {
            bad("agent.state_dir", "must not be empty");
        }
        let f = &self.flows;
        if f.idle_timeout_secs == 0 || f.active_timeout_secs == 0 {
            bad(
                "flows",
                "idle_timeout_secs and active_timeout_secs must be at least 1",
            );
        }
        if f.max_flows < 16 {
            bad("flows.max_flows", "must be at least 16");
        }
        if self.capture.read_buffer_size < 2048 {
            bad("capture.read_buffer_size", "must be at least 2048 bytes");
        }
        if let Some(c) = &self.collector {
            c.check(&mut out);
            if self.standalone.is_some() {
                out.push(Problem::new(
                    "standalone",
                    "a router with a [collector] takes its inventory and signed policy from it: remove [standalone] (or [collector])",
                ));
            }
        }
        self.enforce_problems(&mut out);
        self.export.check(&mut out);
        out
    }

    fn enforce_problems(&self, out: &mut Vec<Problem>) {
        let mut bad = |place: &str, m: String| out.push(Problem::new(place, m));
        let e = &self.enforce;
        for (key, name) in [
            ("enforce.lan_interface", &e.lan_interface),
            ("enforce.wan_interface", &e.wan_interface),
        ] {
            if let Some(n) = name {
                if !valid_interface_name(n) {
                    bad(
                        key,
                        format!("{n:?} is not an interface name (1-15 of letters, digits, '-', '_', '.')"),
                    );
                }
            }
        }
        if e.enabled() && (e.lan_interface.is_none() || e.wan_interface.is_none()) {
            bad(
                "enforce",
                "set both lan_interface and wan_interface (or neither)".into(),
            );
        }
        if e.lan_interface.is_some() && e.lan_interface == e.wan_interface {
            bad(
                "enforce.wan_interface",
                "must differ from lan_interface".into(),
            );
        }
        if e.keep_offloads == Some(true) && matches!(e.offloads, Some(m) if m != OffloadMode::Keep)
        {
            bad(
                "enforce.keep_offloads",
                "true contradicts offloads; keep only offloads (keep_offloads is deprecated)"
                    .into(),
            );
        }
        for (i, a) in e.always_allow.iter().enumerate() {
            if let Err(m) = parse_cidr(a) {
                bad(&format!("enforce.always_allow[{i}]"), m);
            }
        }
        if !(1..=3600).contains(&e.attempt_fold_secs) {
            bad("enforce.attempt_fold_secs", "must be 1-3600 seconds".into());
        }
        if !(1..=86_400).contains(&e.name_block_secs) {
            bad("enforce.name_block_secs", "must be 1-86400 seconds".into());
        }
        if let Some(d) = &e.dns {
            if !e.enabled() {
                bad(
                    "enforce.dns",
                    "needs lan_interface and wan_interface (the responder blocks by policy)".into(),
                );
            }
            if d.listen.port() == 0 || d.upstream.port() == 0 {
                bad(
                    "enforce.dns",
                    "listen and upstream need a port (53 normally)".into(),
                );
            }
            if d.listen == d.upstream {
                bad(
                    "enforce.dns.upstream",
                    "must not be the responder itself".into(),
                );
            }
            if d.redirect && d.listen.ip().is_loopback() {
                bad(
                    "enforce.dns.listen",
                    format!(
                        "{} is loopback, but redirected DNS arrives at the LAN interface's address: listen on it or on 0.0.0.0",
                        d.listen
                    ),
                );
            }
            if let Some(l6) = d.listen6 {
                if !l6.is_ipv6() || !d.listen.is_ipv4() {
                    bad(
                        "enforce.dns.listen6",
                        format!("{l6}: must be IPv6, with listen IPv4 (one address per family)"),
                    );
                } else if l6.port() == 0 {
                    bad("enforce.dns.listen6", "needs a port (53 normally)".into());
                } else if d.redirect && l6.ip().is_loopback() {
                    bad(
                        "enforce.dns.listen6",
                        format!("{l6} is loopback, but redirected DNS arrives at the LAN interface's address"),
                    );
                }
            }
            if !(1..=30_000).contains(&d.upstream_timeout_ms) {
                bad("enforce.dns.upstream_timeout_ms", "must be 1-30000".into());
            }
        }
    }

    /// The processor's limits from `[flows]`, `[naming]` and `[enforce]`.
    pub fn processor_config(&self) -> ProcessorConfig {
        let f = &self.flows;
        ProcessorConfig {
            flows: FlowLimits::from_secs(
                f.idle_timeout_secs,
                f.active_timeout_secs,
                f.tcp_close_linger_secs,
                f.max_flows,
            ),
            dns_cache_entries: self.naming.dns_cache_entries,
            inspect: InspectLimits {
                max_bytes: self.naming.dpi_max_bytes,
                max_packets: self.naming.dpi_max_packets,
            },
            attempt_fold_secs: self.enforce.attempt_fold_secs,
            name_block_secs: self.enforce.name_block_secs,
        }
    }

    /// `[enforce] always_allow` plus every collector address whose URL
    /// names an IP address: enforcement must never cut the agent off from
    /// the collector it fails over to.
    pub fn always_allowed(&self) -> Vec<IpNetwork> {
        let mut out: Vec<IpNetwork> = self
            .enforce
            .always_allow
            .iter()
            .filter_map(|a| parse_cidr(a).ok())
            .collect();
        if let Some(c) = &self.collector {
            for a in c.addresses() {
                if let Ok(u) = CollectorUrl::parse(a) {
                    if let Ok(ip) = u.host.parse::<std::net::IpAddr>() {
                        let net = IpNetwork::from(ip);
                        if !out.contains(&net) {
                            out.push(net);
                        }
                    }
                }
            }
        }
        out
    }

    /// Where this node enforces, when `[enforce]` names its interfaces.
    pub fn enforce_target(&self) -> Option<simpul_core::enforce::plan::EnforceTarget> {
        let e = &self.enforce;
        Some(simpul_core::enforce::plan::EnforceTarget {
            lan: e.lan_interface.clone()?,
            wan: e.wan_interface.clone()?,
            always_allow: self.always_allowed(),
            dns_redirect: e
                .dns
                .as_ref()
                .filter(|d| d.redirect)
                .map(DnsConfig::redirect),
        })
    }
}

/// Whether the dotted `key` ("enforce.policy_file") is in the table.
fn has_key(table: &toml::Table, key: &str) -> bool {
    match key.split_once('.') {
        None => table.contains_key(key),
        Some((head, rest)) => table
            .get(head)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| has_key(t, rest)),
    }
}

fn valid_interface_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(text, Path::new("/etc/simpul/agent.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_has_defaults() {
        let c = parse("[agent]\nid = \"x\"\n").unwrap();
        assert_eq!(c.flows.idle_timeout_secs, 60);
        assert_eq!(c.capture.read_buffer_size, 67584);
        assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/simpul-agent"));
        assert!(c.collector.is_none() && c.standalone.is_none());
        assert_eq!(c.processor_config().flows.max_flows, 500_000);
    }

    #[test]
    fn old_keys_say_where_they_moved() {
        let e = err(
            "[network]\nintranet = [\"10.0.0.0/8\"]\n[[agencies]]\ncode = \"x\"\n[enforce]\nuplink_down_bps = 1\npolicy_file = \"p.toml\"\nstate_dir = \"/s\"\n[collector]\nurl = \"ws://c\"\nstate_dir = \"/s\"\nnode_id = \"n\"\n",
        );
        for want in [
            "agencies: moved to the inventory",
            "network: network.intranet moved to the inventory",
            "enforce.uplink_down_bps: moved to the inventory",
            "enforce.policy_file: moved",
            "enforce.state_dir: moved to [agent] state_dir",
            "collector.state_dir: moved to [agent] state_dir",
            "collector.node_id: the node id is [agent] id",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        assert!(e.contains("7 problems"), "{e}");
    }

    #[test]
    fn standalone_paths_and_the_collector_exclude_each_other() {
        let c =
            parse("[standalone]\ninventory_file = \"inventory.toml\"\npolicy_file = \"/p.toml\"\n")
                .unwrap();
        let s = c.standalone.unwrap();
        assert_eq!(
            s.inventory_file,
            Some(PathBuf::from("/etc/simpul/inventory.toml"))
        );
        assert_eq!(s.policy_file, Some(PathBuf::from("/p.toml")));
        let e = err("[collector]\nurl = \"ws://c:1\"\n[standalone]\npolicy_file = \"p.toml\"\n");
        assert!(e.contains("standalone: a router with a [collector]"), "{e}");
    }

    #[test]
    fn collector_section_defaults() {
        let c = parse("[agent]\nid = \"dinkes-01\"\n[collector]\nurl = \"ws://127.0.0.1:9000\"\n")
            .unwrap();
        let col = c.collector.unwrap();
        assert_eq!(col.spool_quota_bytes, 512 << 20);
        assert_eq!(col.batch_interval_ms, 1000);
        assert_eq!(col.heartbeat_interval_ms, 2000);
        assert!(!col.json_debug);
        let urls = col.check(&mut Vec::new()).unwrap();
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].to_url(), "ws://127.0.0.1:9000/api/v1/agent");
    }

    #[test]
    fn several_collectors_in_order_all_always_allowed() {
        let c = parse(
            "[collector]\nurls = [\"wss://192.0.2.9:9000/api/v1/agent\", \"wss://noc-b.example.go.id:9001\", \"wss://[2001:db8::7]:9000\"]\nca_cert = \"/ca.pem\"\n[enforce]\nlan_interface = \"lan0\"\nwan_interface = \"wan0\"\nalways_allow = [\"192.0.2.9/32\"]\n",
        )
        .unwrap();
        let col = c.collector.as_ref().unwrap();
        let urls: Vec<String> = col
            .check(&mut Vec::new())
            .unwrap()
            .iter()
            .map(CollectorUrl::to_url)
            .collect();
        assert_eq!(
            urls,
            [
                "wss://192.0.2.9:9000/api/v1/agent",
                "wss://noc-b.example.go.id:9001/api/v1/agent",
                "wss://[2001:db8::7]:9000/api/v1/agent",
            ]
        );
        // Every address that is an IP, once; a name is the admin's to list.
        let allowed: Vec<String> = c.always_allowed().iter().map(|n| n.to_string()).collect();
        assert_eq!(allowed, ["192.0.2.9/32", "2001:db8::7/128"]);
        // The one-address form still works and means a list of one.
        let one = parse("[collector]\nurl = \"ws://127.0.0.1:9000\"\n").unwrap();
        assert_eq!(one.collector.unwrap().addresses(), ["ws://127.0.0.1:9000"]);
    }

    #[test]
    fn collector_address_lists_are_checked() {
        for (text, want) in [
            (
                "[collector]\nurl = \"ws://a:1\"\nurls = [\"ws://b:1\"]\n",
                "collector.urls: set either url (one collector) or urls (several), not both",
            ),
            (
                "[collector]\nurls = []\n",
                "collector.urls: must list at least one collector address",
            ),
            ("[collector]\n", "collector.url: required"),
            (
                "[collector]\nurls = [\"ws://a:1\", \"https://b:1\"]\n",
                "collector.urls[1]: \"https://b:1\" must start with wss://",
            ),
            (
                "[collector]\nurls = [\"ws://a:1\", \"ws://a:1/api/v1/agent\"]\n",
                "collector.urls[1]: the same collector as urls[0]",
            ),
            (
                "[collector]\nurls = [\"ws://a:1\", \"wss://b:1\"]\n",
                "collector.ca_cert: required for wss://",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text}: {want} not in {e}");
        }
        let many: Vec<String> = (0..=MAX_COLLECTORS)
            .map(|i| format!("\"ws://c{i}:1\""))
            .collect();
        let e = err(&format!("[collector]\nurls = [{}]\n", many.join(", ")));
        assert!(e.contains("collector.urls: at most 16"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = err(
            "[agent]\nid = \"a b\"\n[collector]\nurl = \"https://c:1/\"\nspool_quota_bytes = 10\nbatch_interval_ms = 0\nenroll_token = \" \"\n[flows]\nmax_flows = 1\n[enforce]\nlan_interface = \"lan0\"\nalways_allow = [\"10.0.0.1/8\"]\nname_block_secs = 0\n",
        );
        for want in [
            "agent.id: ",
            "collector.url: ",
            "wss://",
            "collector.spool_quota_bytes: ",
            "collector.batch_interval_ms: ",
            "collector.enroll_token: ",
            "flows.max_flows: ",
            "enforce: set both",
            "enforce.always_allow[0]: ",
            "enforce.name_block_secs: ",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        let m = err("[collector]\nurl = \"wss://c:1/api/v1/agent\"\n");
        assert!(m.contains("collector.ca_cert"), "{m}");
        let m = err("[collector]\nurl = \"ws://c:99999\"\n");
        assert!(m.contains("invalid port"), "{m}");
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
        let e = err("[flows]\nidle_timeout = 3\n");
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
        assert_eq!(c.enforce_target().map(|t| t.lan), Some("lan0".into()));
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
            (
                "[enforce]\nlan_interface = \"l\"\nwan_interface = \"w\"\n[enforce.dns]\nlisten = \"10.0.0.1:53\"\nlisten6 = \"10.0.0.2:53\"\nupstream = \"192.0.2.53:53\"\n",
                "enforce.dns.listen6: 10.0.0.2:53: must be IPv6",
            ),
            (
                "[enforce]\nlan_interface = \"l\"\nwan_interface = \"w\"\n[enforce.dns]\nlisten = \"10.0.0.1:53\"\nlisten6 = \"[::1]:53\"\nupstream = \"192.0.2.53:53\"\n",
                "enforce.dns.listen6: [::1]:53 is loopback",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(place), "{text}: {e}");
        }
        assert!(!parse("[agent]\nid = \"x\"\n").unwrap().enforce.enabled());
    }

    #[test]
    fn offload_mode_defaults_to_auto_and_keeps_the_old_key() {
        let mode = |t: &str| parse(t).unwrap().enforce.offload_mode();
        assert_eq!(mode("[agent]\nid = \"x\"\n"), OffloadMode::Auto);
        for (m, want) in [
            ("auto", OffloadMode::Auto),
            ("off", OffloadMode::Off),
            ("keep", OffloadMode::Keep),
        ] {
            assert_eq!(mode(&format!("[enforce]\noffloads = \"{m}\"\n")), want);
        }
        assert_eq!(mode("[enforce]\nkeep_offloads = true\n"), OffloadMode::Keep);
        assert_eq!(
            mode("[enforce]\nkeep_offloads = false\n"),
            OffloadMode::Auto
        );
        assert_eq!(
            mode("[enforce]\nkeep_offloads = true\noffloads = \"keep\"\n"),
            OffloadMode::Keep
        );
        let e = err("[enforce]\nkeep_offloads = true\noffloads = \"off\"\n");
        assert!(e.contains("enforce.keep_offloads: true contradicts"), "{e}");
        let e = err("[enforce]\noffloads = \"on\"\n");
        assert!(e.contains("unknown variant"), "{e}");
    }

    #[test]
    fn dns_listens_and_redirects_per_family() {
        let c = parse(
            "[enforce]\nlan_interface = \"lan0\"\nwan_interface = \"wan0\"\n[enforce.dns]\nlisten = \"10.20.0.1:53\"\nlisten6 = \"[fd20::1]:53\"\nupstream = \"10.255.0.53:53\"\n",
        )
        .unwrap();
        let r = c
            .enforce_target()
            .and_then(|t| t.dns_redirect)
            .expect("redirect");
        assert_eq!(r.v4, Some("10.20.0.1:53".parse().unwrap()));
        assert_eq!(r.v6, Some("[fd20::1]:53".parse().unwrap()));
        let d = c.enforce.dns.expect("dns");
        assert_eq!(d.listen_addrs().len(), 2);
    }

    #[test]
    fn the_example_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let c = AgentConfig::load(&dir.join("agent.toml")).expect("configs/agent.toml");
        assert!(c.collector.is_some());
        let s = AgentConfig::load(&dir.join("agent-standalone.toml"))
            .expect("configs/agent-standalone.toml");
        assert!(s.standalone.is_some());
    }
}

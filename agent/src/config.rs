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
        let cfg: AgentConfig = toml::from_str(text).map_err(|cause| ConfigError::Parse {
            path: path.to_owned(),
            cause: Box::new(cause),
        })?;
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
        self.intranet_networks(path)?;
        self.subnet_assignments(path)?;
        Ok(())
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

fn valid_code(code: &str) -> bool {
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
    fn unknown_keys_are_refused() {
        let e = parse("[flows]\nidle_timeout = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("idle_timeout"), "{e}");
    }
}

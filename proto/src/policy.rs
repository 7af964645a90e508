//! The enforcement policy of one agency: bandwidth allocations, schedules,
//! blocking and suspension.
//!
//! One definition for the agent (which enforces it), the collector (which
//! versions, signs and pushes it) and the local policy file of a standalone
//! router. The same structure reads from TOML and JSON. Values are kept as
//! written (times, CIDRs, ports as text where a typo must be reported with
//! its place); `simpul_core::policy::validate` checks them.
//!
//! The intranet is not here: it is inventory (`crate::inventory`), the same
//! for every agency.
//!
//! Rates are bits per second at the link layer (what the kernel's HTB
//! counts: Ethernet frames including headers), so TCP goodput over a full
//! allocation is about 1448/1514 of it for 1500-byte MTU links.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::time_window::Weekday;

/// A complete policy for one agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Monotonic version assigned by the NOC (the collector sets it; a file
    /// at the collector may leave it out); a node keeps the newest it applied.
    #[serde(default)]
    pub version: u64,
    /// Agency code, as in the inventory.
    pub agency: String,
    /// Fixed UTC offset that schedule times are in: "+07:00" (WIB),
    /// "+08:00" (WITA), "+09:00" (WIT).
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    pub allocation: Allocation,
    /// Time windows with their own rates; outside every window the base
    /// [`Policy::allocation`] applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub blocking: Blocking,
    #[serde(default)]
    pub suspension: Suspension,
}

pub fn default_utc_offset() -> String {
    "+07:00".into()
}

/// Guaranteed `rate_bps`, borrowing up to `ceil_bps` when the parent has spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub rate_bps: u64,
    pub ceil_bps: u64,
}

/// Rates in both directions (download: internet → unit; upload: unit → internet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionRates {
    pub download: Rates,
    pub upload: Rates,
}

/// The agency's share and its units' shares (by unit code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub download: Rates,
    pub upload: Rates,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub units: BTreeMap<String, DirectionRates>,
}

/// A weekly window, e.g. office hours "07:30"–"16:00" Monday to Friday.
/// `start` < `end` on the same day (windows do not cross midnight: split
/// them in two).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    pub days: Vec<Weekday>,
    pub start: String,
    pub end: String,
    /// Agency rates in this window; absent: the base rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Rates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Rates>,
    /// Unit rates in this window; a unit not listed keeps its base rates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub units: BTreeMap<String, DirectionRates>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Proto {
    Tcp,
    Udp,
}

impl L4Proto {
    pub fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// A port (`25`) or an inclusive range (`"6881-6889"`, or `"443"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    Number(u64),
    Text(String),
}

/// Block an application by protocol and destination port(s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortBlock {
    pub proto: L4Proto,
    pub port: PortSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blocking {
    /// Blocked names; a rule covers its subdomains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Exceptions that win over `domains` and categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_domains: Vec<String>,
    /// Blocked destination addresses/networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortBlock>,
    /// Named domain lists (e.g. "judi", "pornografi").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, Vec<String>>,
    /// Categories switched on for this agency: a name of `categories`, or of
    /// a named list held at the collector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enabled_categories: Vec<String>,
    /// The collector's named lists this policy enables, by content: set by
    /// the collector when it signs (a client's value is ignored), fetched
    /// by the agent when the hash changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, ListRef>,
    /// DNS over TLS (TCP 853) and DNS over QUIC (UDP 853).
    #[serde(default)]
    pub block_dot: bool,
    /// Known DNS-over-HTTPS resolver addresses: their port 443 is blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_doh: Vec<String>,
    /// QUIC (UDP 443), so browsers fall back to TCP where SNI is visible.
    #[serde(default)]
    pub block_quic: bool,
    /// Address the DNS responder returns for blocked names (absent: NXDOMAIN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_page: Option<String>,
}

/// A named list at a given content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRef {
    /// SHA-256 (hex) of the list's canonical text: its domains, normalized,
    /// sorted, one a line.
    pub sha256: String,
    /// How many domains it holds.
    pub domains: u64,
    /// The collector's version of the list (for people; the hash decides).
    #[serde(default)]
    pub version: u64,
}

/// Internet cut, intranet and the collector link kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suspension {
    /// The whole agency.
    #[serde(default)]
    pub agency: bool,
    /// Unit codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
    /// RFC 3339 time at which the suspension lapses (absent: until lifted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyParseError {
    #[error("TOML: {0}")]
    Toml(#[from] Box<toml::de::Error>),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{key}: {moved}")]
    Moved {
        key: &'static str,
        moved: &'static str,
    },
}

/// Keys of older policy files and where their content went.
const MOVED: &[(&str, &str)] = &[(
    "intranet",
    "moved to the inventory (inventory.toml `intranet`, at the collector or in [standalone] inventory_file): one intranet list for every agency",
)];

impl Policy {
    pub fn from_toml(text: &str) -> Result<Self, PolicyParseError> {
        toml::from_str(text).map_err(|e| moved_or(PolicyParseError::Toml(Box::new(e))))
    }

    pub fn from_json(text: &str) -> Result<Self, PolicyParseError> {
        serde_json::from_str(text).map_err(|e| moved_or(PolicyParseError::Json(e)))
    }

    /// JSON when the text starts with `{`, TOML otherwise.
    pub fn parse(text: &str) -> Result<Self, PolicyParseError> {
        if text.trim_start().starts_with('{') {
            Self::from_json(text)
        } else {
            Self::from_toml(text)
        }
    }

    /// The policy as JSON (what the collector stores, signs and sends).
    pub fn to_json(&self) -> String {
        // Plain data with string keys always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Every blocked domain: `domains` plus the enabled categories' lists.
    pub fn blocked_domains(&self) -> impl Iterator<Item = &str> {
        let b = &self.blocking;
        b.domains.iter().map(String::as_str).chain(
            b.enabled_categories
                .iter()
                .filter_map(|c| b.categories.get(c))
                .flatten()
                .map(String::as_str),
        )
    }
}

/// A parse error of a file that uses a key that moved elsewhere says where
/// it went instead of "unknown field".
fn moved_or(err: PolicyParseError) -> PolicyParseError {
    let msg = err.to_string();
    for (key, moved) in MOVED {
        if msg.contains(&format!("unknown field `{key}`")) {
            return PolicyParseError::Moved { key, moved };
        }
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
version = 3
agency = "dinkes"
utc_offset = "+08:00"

[allocation]
download = { rate_bps = 40000000, ceil_bps = 50000000 }
upload = { rate_bps = 20000000, ceil_bps = 20000000 }
[allocation.units.a]
download = { rate_bps = 10000000, ceil_bps = 50000000 }
upload = { rate_bps = 5000000, ceil_bps = 20000000 }

[[schedules]]
name = "jam-kantor"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "07:30"
end = "16:00"
download = { rate_bps = 30000000, ceil_bps = 50000000 }

[blocking]
domains = ["judi.example"]
cidrs = ["203.0.113.0/24"]
ports = [{ proto = "tcp", port = 25 }, { proto = "udp", port = "6881-6889" }]
categories = { judi = ["slot.example"] }
enabled_categories = ["judi"]
block_quic = true

[suspension]
units = ["a"]
"#;

    #[test]
    fn toml_and_json_round_trip() {
        let p = Policy::parse(SAMPLE).expect("parse");
        assert_eq!(p.allocation.units["a"].download.rate_bps, 10_000_000);
        assert_eq!(p.blocking.ports[1].port, PortSpec::Text("6881-6889".into()));
        assert_eq!(p.schedules[0].days.len(), 5);
        let json = serde_json::to_string(&p).expect("json");
        assert_eq!(Policy::parse(&json).expect("json parse"), p);
        let toml = p.to_toml().expect("toml");
        assert_eq!(Policy::parse(&toml).expect("toml parse"), p);
        let domains: Vec<&str> = p.blocked_domains().collect();
        assert_eq!(domains, ["judi.example", "slot.example"]);
    }

    #[test]
    fn moved_keys_say_where_they_went() {
        let e = Policy::parse("version = 1\nagency = \"x\"\nintranet = [\"10.0.0.0/8\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("intranet: moved to the inventory"), "{e}");
        let e = Policy::parse(r#"{"version": 1, "agency": "x", "intranet": []}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("intranet: moved to the inventory"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Policy::parse("version = 1\nagency = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}

//! The inventory: agencies, their units and subnets, the intranet, and the
//! nodes (which agency each speaks for, its uplink, its parent).
//!
//! Defined once, at the collector (`inventory.toml`), and sent to each agent
//! over the link ([`crate::wire::CollectorMessage::Inventory`]); a router
//! without a collector reads the same file format locally. Allocations are
//! not here: they are policy ([`crate::policy`]).
//!
//! Values are kept as written (CIDRs as text) so that validation
//! (`simpul_core::inventory`) reports every problem with its place. No
//! field is skipped when empty: the wire encoding (postcard) is positional.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Assigned by the collector; increases with every change. A file may
    /// leave it out.
    #[serde(default)]
    pub version: u64,
    /// Destinations that are the government intranet: never capped,
    /// blocked nor suspended. Every agency subnet is intranet as well.
    #[serde(default)]
    pub intranet: Vec<String>,
    /// The central internet uplink Diskominfo buys and divides.
    #[serde(default)]
    pub uplink: Option<Capacity>,
    #[serde(default)]
    pub agencies: Vec<Agency>,
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// Bits per second each way (link layer, what HTB counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub down_bps: u64,
    pub up_bps: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub units: Vec<Unit>,
}

impl Agency {
    /// The name to show: the name, or the code when it has none.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.code
        } else {
            &self.name
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub code: String,
    #[serde(default)]
    pub name: String,
    /// A subnet belongs to exactly one unit of one agency.
    #[serde(default)]
    pub subnets: Vec<String>,
}

/// One agency router running the agent (the node id is the address code on
/// its cable label, Pergub NTT 115/2019 Pasal 22).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    pub agency: String,
    /// Capacity of the node's own internet uplink: the agency's allocation
    /// on it may not exceed it.
    #[serde(default)]
    pub uplink: Option<Capacity>,
    /// The node its traffic to the collector passes through (a district
    /// hub): when the parent is down, this node is unreachable, not down.
    #[serde(default)]
    pub parent: Option<String>,
    /// Severity of its outages: critical, major, minor or info (absent: the
    /// collector's default).
    #[serde(default)]
    pub criticality: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryParseError {
    #[error("TOML: {0}")]
    Toml(#[from] Box<toml::de::Error>),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Inventory {
    /// JSON when the text starts with `{`, TOML otherwise.
    pub fn parse(text: &str) -> Result<Self, InventoryParseError> {
        if text.trim_start().starts_with('{') {
            Ok(serde_json::from_str(text)?)
        } else {
            toml::from_str(text).map_err(|e| InventoryParseError::Toml(Box::new(e)))
        }
    }

    pub fn agency(&self, code: &str) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.code == code)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Everything but the version: two inventories with the same content
    /// are the same inventory.
    pub fn same_content(&self, other: &Inventory) -> bool {
        let strip = |i: &Inventory| Inventory {
            version: 0,
            ..i.clone()
        };
        strip(self) == strip(other)
    }
}

/// Agency, unit and node codes: `[A-Za-z0-9_-]{1,64}`, safe in URLs, logs
/// and file names.
pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json() {
        let inv = Inventory::parse(
            r#"
intranet = ["10.0.0.0/8"]
[uplink]
down_bps = 1000
up_bps = 500
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.0.0/24"]
[[nodes]]
id = "dinkes-01"
agency = "dinkes"
uplink = { down_bps = 100, up_bps = 50 }
"#,
        )
        .expect("parse");
        assert_eq!(
            inv.node("dinkes-01")
                .and_then(|n| n.uplink)
                .map(|u| u.up_bps),
            Some(50)
        );
        let json = serde_json::to_string(&inv).expect("json");
        assert_eq!(Inventory::parse(&json).expect("back"), inv);
        assert!(Inventory::parse("bogus = 1").is_err());
        assert!(valid_code("dinkes-01") && !valid_code("a b") && !valid_code(""));
    }
}

//! Blocked attempts: who tried to reach what, and which rule said no.
//!
//! The agent reports one record per (client, target, rule) and reporting
//! window, with the number of attempts folded into it, so a client retrying
//! a blocked site every second is one row a minute, not sixty.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where the agent saw the attempt and stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockMethod {
    /// The agent's DNS responder answered NXDOMAIN or the block page.
    Dns,
    /// TLS ClientHello SNI of a blocked name (the connection is reset).
    Sni,
    /// SNI in a QUIC Initial of a blocked name.
    Quic,
    /// HTTP/1.x Host header of a blocked name.
    Http,
    /// Destination address in a blocked CIDR.
    Address,
    /// Blocked protocol/port (an application).
    Port,
    /// DNS over TLS or over QUIC (port 853).
    Dot,
    /// A known DNS-over-HTTPS resolver.
    Doh,
    /// QUIC (UDP 443) while QUIC is blocked.
    QuicProtocol,
}

impl BlockMethod {
    pub const ALL: [BlockMethod; 9] = [
        BlockMethod::Dns,
        BlockMethod::Sni,
        BlockMethod::Quic,
        BlockMethod::Http,
        BlockMethod::Address,
        BlockMethod::Port,
        BlockMethod::Dot,
        BlockMethod::Doh,
        BlockMethod::QuicProtocol,
    ];

    /// The name used in JSON, storage and the API.
    pub fn name(self) -> &'static str {
        match self {
            BlockMethod::Dns => "dns",
            BlockMethod::Sni => "sni",
            BlockMethod::Quic => "quic",
            BlockMethod::Http => "http",
            BlockMethod::Address => "address",
            BlockMethod::Port => "port",
            BlockMethod::Dot => "dot",
            BlockMethod::Doh => "doh",
            BlockMethod::QuicProtocol => "quic_protocol",
        }
    }

    pub fn from_name(name: &str) -> Option<BlockMethod> {
        BlockMethod::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One or more blocked attempts of one client at one target under one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedAttempt {
    /// First and last attempt folded into this record, Unix nanoseconds;
    /// RFC 3339 in JSON.
    #[serde(with = "crate::time_format")]
    pub first_seen: u64,
    #[serde(with = "crate::time_format")]
    pub last_seen: u64,
    /// The agency's side: who tried.
    pub client: IpAddr,
    /// Agency and unit of `client` ("unknown" when no subnet matched).
    pub agency: String,
    pub unit: String,
    pub method: BlockMethod,
    /// What was asked for: the name (DNS, SNI, Host) or `address:port`.
    pub target: String,
    /// The destination, when the attempt got as far as a connection.
    pub server: Option<IpAddr>,
    pub port: Option<u16>,
    /// "tcp", "udp", … as in [`crate::FlowRecord::proto`]; DNS says the
    /// transport the query came over.
    pub proto: String,
    /// The rule that matched, as written in the policy: a domain, a CIDR,
    /// `tcp/25`, `udp/6881-6889`, `dot`, `doh`, `quic`.
    pub rule: String,
    /// Where the rule comes from: `domains`, a category name (e.g. `judi`),
    /// `cidrs`, `ports`, `dot`, `doh`, `quic`.
    pub list: String,
    /// Attempts folded into this record (≥ 1).
    pub attempts: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_and_match_serde() {
        for m in BlockMethod::ALL {
            assert_eq!(BlockMethod::from_name(m.name()), Some(m));
            let json = serde_json::to_string(&m).expect("json");
            assert_eq!(json, format!("\"{}\"", m.name()));
        }
        assert_eq!(BlockMethod::from_name("bogus"), None);
    }
}

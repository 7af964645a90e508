//! The flow record: what the agent knows about one bidirectional conversation.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How the site name of a flow was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteSource {
    /// TLS ClientHello server_name.
    Sni,
    /// HTTP/1.x Host header.
    Http,
    /// SNI inside a QUIC v1 Initial packet.
    Quic,
    /// The name the client looked up in DNS before connecting to this address.
    Dns,
}

/// Whether a record closes the flow or reports a flow that is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// Sent every active timeout while the flow runs; counters are cumulative.
    Interim,
    /// The flow ended; counters are the whole flow's.
    Final,
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No packet for the idle timeout.
    Idle,
    /// Both sides sent FIN.
    Fin,
    /// A side sent RST.
    Rst,
    /// The flow table was full and this flow was the least recently seen.
    Evicted,
    /// Capture ended (end of a pcap file or agent shutdown).
    Shutdown,
    /// Still running (interim records only).
    Active,
    /// The agent stopped without ending the flow (killed, power cut): the
    /// collector closes it when the node's next boot says Hello.
    AgentRestart,
}

/// Where the remote side of a flow lives, seen from the agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficScope {
    /// The remote address is on the public internet.
    Internet,
    /// The remote address is inside a configured intranet CIDR.
    Intranet,
}

/// One flow record. `src` is always the initiator (the side that sent first,
/// or the sender of the SYN where one was seen); "up" is initiator → responder.
///
/// Byte counts are IP-layer bytes (IP total length, as NetFlow octets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Unique per agent boot; interim and final records of one flow share it.
    pub flow_id: u64,
    pub kind: RecordKind,
    pub end_reason: EndReason,
    /// "tcp", "udp", "icmp", "icmpv6", or the IP protocol number as a string.
    pub proto: String,
    pub src_ip: IpAddr,
    pub src_port: Option<u16>,
    pub dst_ip: IpAddr,
    pub dst_port: Option<u16>,
    /// Outer 802.1Q VLAN id (the innermost one of a QinQ stack is in `vlan_inner`).
    pub vlan: Option<u16>,
    pub vlan_inner: Option<u16>,
    pub packets_up: u64,
    pub bytes_up: u64,
    pub packets_down: u64,
    pub bytes_down: u64,
    /// Unix nanoseconds from packet timestamps; RFC 3339 in JSON.
    #[serde(with = "crate::time_format")]
    pub first_seen: u64,
    #[serde(with = "crate::time_format")]
    pub last_seen: u64,
    /// Union of TCP flags seen in each direction (FIN=0x01 … CWR=0x80).
    pub tcp_flags_up: Option<u8>,
    pub tcp_flags_down: Option<u8>,
    pub sni: Option<String>,
    pub http_host: Option<String>,
    /// The name asked in the first DNS query carried by this flow.
    pub dns_query: Option<String>,
    /// The best name for the remote site (SNI > QUIC > HTTP Host > DNS).
    pub site: Option<String>,
    pub site_source: Option<SiteSource>,
    /// The agency and unit of the local side; "unknown" when no subnet matched.
    pub agency: String,
    pub unit: String,
    pub scope: TrafficScope,
}

impl FlowRecord {
    pub fn bytes_total(&self) -> u64 {
        self.bytes_up + self.bytes_down
    }
    pub fn packets_total(&self) -> u64 {
        self.packets_up + self.packets_down
    }
}

/// Label used when an address falls in no configured subnet.
pub const UNKNOWN: &str = "unknown";

/// Display name of an IP protocol number, as used in [`FlowRecord::proto`].
pub fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

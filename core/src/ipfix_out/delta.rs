//! Cumulative flow records → IPFIX delta records.
//!
//! The agent's interim records carry a running flow's counters so far; IPFIX
//! collectors add up delta counters. Each flow's piece is what it counted
//! since its previous export, so nfdump's sum over a long flow's records is
//! its total, whatever number of interim records it had.

use std::collections::HashMap;
use std::net::IpAddr;

use simpul_proto::{EndReason as FlowEnd, FlowRecord, RecordKind, SiteSource, TrafficScope};

use super::elements::{BiflowRecord, EndReason, NamingMethod};

/// What a flow has exported so far.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    packets_up: u64,
    bytes_up: u64,
    packets_down: u64,
    bytes_down: u64,
    last_seen: u64,
}

/// One export of a flow: the counters since its previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub packets_up: u64,
    pub bytes_up: u64,
    pub packets_down: u64,
    pub bytes_down: u64,
    /// Unix ns: the flow's first packet, or the previous piece's last one.
    pub start: u64,
}

/// A flow's identity: its id, and its addresses and ports in case ids are
/// only unique per flow table (a replay over several tables).
type FlowKey = (u64, IpAddr, IpAddr, Option<u16>, Option<u16>);

fn key(r: &FlowRecord) -> FlowKey {
    (r.flow_id, r.src_ip, r.dst_ip, r.src_port, r.dst_port)
}

/// Per running flow, what it exported; bounded.
#[derive(Debug)]
pub struct Deltas {
    sent: HashMap<FlowKey, Sent>,
    cap: usize,
    /// Interim records not exported because `cap` flows were being tracked
    /// (their final record carries the whole flow instead).
    pub interim_skipped: u64,
}

impl Deltas {
    /// Track at most `cap` running flows (the flow table's size is enough).
    pub fn new(cap: usize) -> Self {
        Self {
            sent: HashMap::new(),
            cap,
            interim_skipped: 0,
        }
    }

    /// Running flows with an interim piece exported.
    pub fn tracked(&self) -> usize {
        self.sent.len()
    }

    /// The part of `r` not exported yet; None when nothing is new.
    pub fn take(&mut self, r: &FlowRecord) -> Option<Piece> {
        let prev = match r.kind {
            RecordKind::Final => self.sent.remove(&key(r)),
            RecordKind::Interim => self.sent.get(&key(r)).copied(),
        };
        if r.kind == RecordKind::Interim && prev.is_none() && self.sent.len() >= self.cap {
            self.interim_skipped += 1;
            return None;
        }
        let p = prev.unwrap_or_default();
        let piece = Piece {
            packets_up: r.packets_up.saturating_sub(p.packets_up),
            bytes_up: r.bytes_up.saturating_sub(p.bytes_up),
            packets_down: r.packets_down.saturating_sub(p.packets_down),
            bytes_down: r.bytes_down.saturating_sub(p.bytes_down),
            start: if prev.is_some() {
                p.last_seen
            } else {
                r.first_seen
            },
        };
        if r.kind == RecordKind::Interim {
            self.sent.insert(
                key(r),
                Sent {
                    packets_up: r.packets_up.max(p.packets_up),
                    bytes_up: r.bytes_up.max(p.bytes_up),
                    packets_down: r.packets_down.max(p.packets_down),
                    bytes_down: r.bytes_down.max(p.bytes_down),
                    last_seen: r.last_seen.max(p.last_seen),
                },
            );
        }
        (piece.packets_up + piece.packets_down > 0).then_some(piece)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("flow {flow_id}: protocol {proto:?} is neither a name nor a number 0-255")]
    Protocol { flow_id: u64, proto: String },
    #[error(
        "flow {flow_id}: source {src} and destination {dst} are of different address families"
    )]
    MixedFamilies {
        flow_id: u64,
        src: IpAddr,
        dst: IpAddr,
    },
}

/// IP protocol number of a [`FlowRecord::proto`].
pub fn protocol_number(name: &str) -> Option<u8> {
    match name {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmpv6" => Some(58),
        n => n.parse().ok(),
    }
}

/// The biflow record of one piece of `r`.
pub fn biflow<'a>(r: &'a FlowRecord, p: &Piece) -> Result<BiflowRecord<'a>, RecordError> {
    let protocol = protocol_number(&r.proto).ok_or_else(|| RecordError::Protocol {
        flow_id: r.flow_id,
        proto: r.proto.clone(),
    })?;
    if r.src_ip.is_ipv4() != r.dst_ip.is_ipv4() {
        return Err(RecordError::MixedFamilies {
            flow_id: r.flow_id,
            src: r.src_ip,
            dst: r.dst_ip,
        });
    }
    let end_reason = match (r.kind, r.end_reason) {
        (RecordKind::Interim, _) | (_, FlowEnd::Active) => EndReason::ActiveTimeout,
        (_, FlowEnd::Idle) => EndReason::IdleTimeout,
        (_, FlowEnd::Fin | FlowEnd::Rst) => EndReason::EndOfFlow,
        (_, FlowEnd::Shutdown | FlowEnd::AgentRestart) => EndReason::ForcedEnd,
        (_, FlowEnd::Evicted) => EndReason::LackOfResources,
    };
    let naming = match (r.site.as_ref(), r.site_source) {
        (None, _) | (_, None) => NamingMethod::None,
        (_, Some(SiteSource::Sni)) => NamingMethod::Sni,
        (_, Some(SiteSource::Http)) => NamingMethod::HttpHost,
        (_, Some(SiteSource::Quic)) => NamingMethod::Quic,
        (_, Some(SiteSource::Dns)) => NamingMethod::Dns,
    };
    Ok(BiflowRecord {
        src: r.src_ip,
        dst: r.dst_ip,
        src_port: r.src_port.unwrap_or(0),
        dst_port: r.dst_port.unwrap_or(0),
        protocol,
        tcp_flags: r.tcp_flags_up.unwrap_or(0),
        rev_tcp_flags: r.tcp_flags_down.unwrap_or(0),
        start_ms: p.start / 1_000_000,
        end_ms: r.last_seen.max(p.start) / 1_000_000,
        octets: p.bytes_up,
        packets: p.packets_up,
        rev_octets: p.bytes_down,
        rev_packets: p.packets_down,
        end_reason,
        vlan: r.vlan.unwrap_or(0),
        site: r.site.as_deref().unwrap_or(""),
        naming,
        agency: &r.agency,
        unit: &r.unit,
        scope: match r.scope {
            TrafficScope::Internet => 1,
            TrafficScope::Intranet => 2,
        },
        flow_id: r.flow_id,
    })
}

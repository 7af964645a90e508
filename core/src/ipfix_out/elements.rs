//! The exported information elements: one ordered list from which both the
//! template records and the data records are written.

use std::net::IpAddr;

/// RFC 5103's Private Enterprise Number for reverse (responder → initiator)
/// information elements.
pub const PEN_REVERSE: u32 = 29305;

/// Enterprise number of Simpul's own elements.
///
/// PLACEHOLDER: 32473 is the number IANA reserves for documentation
/// (RFC 5612). A deployment that keeps these elements must request a real
/// Private Enterprise Number from IANA (<https://pen.iana.org>) and put it
/// here; collectors key enterprise elements by (PEN, id), so the change
/// renames them for every consumer.
pub const SIMPUL_PEN: u32 = 32473;

/// Element ids under [`SIMPUL_PEN`].
pub mod simpul {
    /// The site's name (string, variable length, UTF-8).
    pub const SITE_NAME: u16 = 1;
    /// How the name was learned ([`super::NamingMethod`], unsigned8).
    pub const NAMING_METHOD: u16 = 2;
    /// Agency code of the local side (string, variable length).
    pub const AGENCY: u16 = 3;
    /// Unit code of the local side (string, variable length).
    pub const UNIT: u16 = 4;
    /// 1 = internet, 2 = intranet (unsigned8).
    pub const TRAFFIC_SCOPE: u16 = 5;
    /// The agent's flow id: every piece of one flow carries the same
    /// (unsigned64), so a consumer can join them to the agent's records.
    pub const FLOW_ID: u16 = 6;
}

/// Template ids (data sets use them as set ids).
pub const TEMPLATE_V4: u16 = 256;
pub const TEMPLATE_V6: u16 = 257;

/// A field length meaning "variable length" (RFC 7011 §7).
pub const VARLEN: u16 = 65535;

/// Longest site name exported (bytes; longer ones are cut at a character
/// boundary): a DNS name is at most 253, an SNI somewhat more.
pub const MAX_SITE: usize = 255;
/// Longest agency or unit code exported (codes are at most 64).
pub const MAX_CODE: usize = 64;

/// One template field specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Field {
    pub id: u16,
    /// 0 for IANA elements.
    pub pen: u32,
    pub len: u16,
}

impl Field {
    const fn iana(id: u16, len: u16) -> Self {
        Self { id, pen: 0, len }
    }
    const fn reverse(id: u16, len: u16) -> Self {
        Self {
            id,
            pen: PEN_REVERSE,
            len,
        }
    }
    const fn simpul(id: u16, len: u16) -> Self {
        Self {
            id,
            pen: SIMPUL_PEN,
            len,
        }
    }
}

/// How a flow's site name was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NamingMethod {
    None = 0,
    Sni = 1,
    HttpHost = 2,
    Quic = 3,
    Dns = 4,
}

/// flowEndReason values (IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EndReason {
    IdleTimeout = 1,
    ActiveTimeout = 2,
    EndOfFlow = 3,
    ForcedEnd = 4,
    LackOfResources = 5,
}

/// One data record: a biflow (initiator → responder forward, the reverse
/// elements for responder → initiator), counters as deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiflowRecord<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub tcp_flags: u8,
    pub rev_tcp_flags: u8,
    pub start_ms: u64,
    pub end_ms: u64,
    pub octets: u64,
    pub packets: u64,
    pub rev_octets: u64,
    pub rev_packets: u64,
    pub end_reason: EndReason,
    /// 0 = untagged.
    pub vlan: u16,
    /// Empty when no name is known.
    pub site: &'a str,
    pub naming: NamingMethod,
    pub agency: &'a str,
    pub unit: &'a str,
    /// 1 = internet, 2 = intranet.
    pub scope: u8,
    pub flow_id: u64,
}

/// The exported elements, in template order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    // The reverse flags come before the forward ones: nfdump 1.7 reads a
    // reverse element it has no reverse mapping for as the forward element,
    // and the value written last wins there.
    RevTcpFlags,
    TcpFlags,
    Start,
    End,
    Octets,
    Packets,
    RevOctets,
    RevPackets,
    EndReason,
    BiflowDirection,
    Vlan,
    Site,
    Naming,
    Agency,
    Unit,
    Scope,
    FlowId,
}

const ORDER: [Element; 22] = [
    Element::SrcAddr,
    Element::DstAddr,
    Element::SrcPort,
    Element::DstPort,
    Element::Protocol,
    Element::RevTcpFlags,
    Element::TcpFlags,
    Element::Start,
    Element::End,
    Element::Octets,
    Element::Packets,
    Element::RevOctets,
    Element::RevPackets,
    Element::EndReason,
    Element::BiflowDirection,
    Element::Vlan,
    Element::Site,
    Element::Naming,
    Element::Agency,
    Element::Unit,
    Element::Scope,
    Element::FlowId,
];

/// biflowDirection: the source is the initiator (RFC 5103 §6.3).
const INITIATOR: u8 = 1;

impl Element {
    fn field(self, v6: bool) -> Field {
        use Element as E;
        match self {
            E::SrcAddr if v6 => Field::iana(27, 16),
            E::SrcAddr => Field::iana(8, 4),
            E::DstAddr if v6 => Field::iana(28, 16),
            E::DstAddr => Field::iana(12, 4),
            E::SrcPort => Field::iana(7, 2),
            E::DstPort => Field::iana(11, 2),
            E::Protocol => Field::iana(4, 1),
            // tcpControlBits is unsigned16; the flags seen fit the reduced
            // size encoding (RFC 7011 §6.2).
            E::RevTcpFlags => Field::reverse(6, 1),
            E::TcpFlags => Field::iana(6, 1),
            E::Start => Field::iana(152, 8),
            E::End => Field::iana(153, 8),
            E::Octets => Field::iana(1, 8),
            E::Packets => Field::iana(2, 8),
            E::RevOctets => Field::reverse(1, 8),
            E::RevPackets => Field::reverse(2, 8),
            E::EndReason => Field::iana(136, 1),
            E::BiflowDirection => Field::iana(239, 1),
            E::Vlan => Field::iana(58, 2),
            E::Site => Field::simpul(simpul::SITE_NAME, VARLEN),
            E::Naming => Field::simpul(simpul::NAMING_METHOD, 1),
            E::Agency => Field::simpul(simpul::AGENCY, VARLEN),
            E::Unit => Field::simpul(simpul::UNIT, VARLEN),
            E::Scope => Field::simpul(simpul::TRAFFIC_SCOPE, 1),
            E::FlowId => Field::simpul(simpul::FLOW_ID, 8),
        }
    }

    fn write(self, r: &BiflowRecord<'_>, out: &mut Vec<u8>) {
        use Element as E;
        match self {
            E::SrcAddr => write_addr(r.src, out),
            E::DstAddr => write_addr(r.dst, out),
            E::SrcPort => out.extend_from_slice(&r.src_port.to_be_bytes()),
            E::DstPort => out.extend_from_slice(&r.dst_port.to_be_bytes()),
            E::Protocol => out.push(r.protocol),
            E::RevTcpFlags => out.push(r.rev_tcp_flags),
            E::TcpFlags => out.push(r.tcp_flags),
            E::Start => out.extend_from_slice(&r.start_ms.to_be_bytes()),
            E::End => out.extend_from_slice(&r.end_ms.to_be_bytes()),
            E::Octets => out.extend_from_slice(&r.octets.to_be_bytes()),
            E::Packets => out.extend_from_slice(&r.packets.to_be_bytes()),
            E::RevOctets => out.extend_from_slice(&r.rev_octets.to_be_bytes()),
            E::RevPackets => out.extend_from_slice(&r.rev_packets.to_be_bytes()),
            E::EndReason => out.push(r.end_reason as u8),
            E::BiflowDirection => out.push(INITIATOR),
            E::Vlan => out.extend_from_slice(&r.vlan.to_be_bytes()),
            E::Site => write_str(r.site, MAX_SITE, out),
            E::Naming => out.push(r.naming as u8),
            E::Agency => write_str(r.agency, MAX_CODE, out),
            E::Unit => write_str(r.unit, MAX_CODE, out),
            E::Scope => out.push(r.scope),
            E::FlowId => out.extend_from_slice(&r.flow_id.to_be_bytes()),
        }
    }
}

fn write_addr(a: IpAddr, out: &mut Vec<u8>) {
    match a {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Variable-length encoding (RFC 7011 §7): one length byte below 255, else
/// 255 and two length bytes.
fn write_str(s: &str, max: usize, out: &mut Vec<u8>) {
    let s = truncate(s, max).as_bytes();
    if s.len() < 255 {
        out.push(s.len() as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// The template's field specifiers.
pub fn template_fields(v6: bool) -> Vec<Field> {
    ORDER.iter().map(|e| e.field(v6)).collect()
}

/// Append one template record (id, field count, specifiers).
pub(crate) fn write_template(v6: bool, out: &mut Vec<u8>) {
    let id = if v6 { TEMPLATE_V6 } else { TEMPLATE_V4 };
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(ORDER.len() as u16).to_be_bytes());
    for f in template_fields(v6) {
        if f.pen == 0 {
            out.extend_from_slice(&f.id.to_be_bytes());
        } else {
            out.extend_from_slice(&(f.id | 0x8000).to_be_bytes());
        }
        out.extend_from_slice(&f.len.to_be_bytes());
        if f.pen != 0 {
            out.extend_from_slice(&f.pen.to_be_bytes());
        }
    }
}

/// Append one data record.
pub(crate) fn write_record(r: &BiflowRecord<'_>, out: &mut Vec<u8>) {
    for e in ORDER {
        e.write(r, out);
    }
}

/// The largest data record [`write_record`] can produce (IPv6, every
/// string at its cap).
pub const MAX_RECORD: usize = {
    // 16+16 addresses, 2+2 ports, 1 protocol, 1+1 flags, 8+8 times,
    // 4×8 counters, 1 end reason, 1 direction, 2 VLAN, 1 naming, 1 scope,
    // 8 flow id; the strings with their length prefixes.
    101 + (3 + MAX_SITE) + 2 * (1 + MAX_CODE)
};

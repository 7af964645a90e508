//! Frame → [`Packet`]: the fields the flow table and DPI need, from byte slices.
//!
//! Decoding is done by `etherparse`; this module only picks the fields out and
//! sorts failures into [`DecodeError`] reasons so they can be counted.

use std::net::IpAddr;

use etherparse::{err::packet::SliceError, LinkExtSlice, NetSlice, SlicedPacket, TransportSlice};

/// Link-layer framing of the bytes handed to [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II, optionally with 802.1Q/802.1ad tags.
    Ethernet,
    /// Linux "cooked" capture v1 (`tcpdump -i any`).
    LinuxSll,
    /// Bare IPv4/IPv6 without a link header.
    RawIp,
}

impl LinkType {
    /// Map a pcap/pcapng LINKTYPE_ number.
    pub fn from_pcap(linktype: u32) -> Option<Self> {
        match linktype {
            1 => Some(Self::Ethernet),
            113 => Some(Self::LinuxSll),
            12 | 14 | 101 | 228 | 229 => Some(Self::RawIp),
            _ => None,
        }
    }
}

/// Where a packet sits in a fragmented IP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification (16 bit) or IPv6 fragment identification (32 bit).
    pub id: u32,
    /// The fragment with offset 0: it carries the transport header.
    pub first: bool,
}

/// The fields of one IP packet that the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub vlan: Option<u16>,
    pub vlan_inner: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number of the transport (after IPv6 extension headers).
    pub proto: u8,
    /// IP-layer length: IPv4 total length, or IPv6 payload length + 40.
    pub ip_len: u32,
    /// Transport ports for TCP/UDP (and SCTP/UDP-Lite); `None` for non-first fragments
    /// and port-less protocols.
    pub ports: Option<(u16, u16)>,
    pub tcp: Option<TcpInfo>,
    pub fragment: Option<Fragment>,
    /// Transport payload (empty for fragments and port-less protocols).
    pub payload: &'a [u8],
}

/// TCP header fields used for flow state and stream reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    pub flags: u8,
    pub seq: u32,
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Why a frame was not turned into a [`Packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum DecodeError {
    #[error("frame shorter than its headers")]
    Truncated,
    #[error("not IPv4/IPv6 (ARP, LLDP, …)")]
    NotIp,
    #[error("malformed link-layer header")]
    BadLink,
    #[error("malformed IPv4 header")]
    BadIpv4,
    #[error("malformed IPv6 header or extension header")]
    BadIpv6,
    #[error("malformed TCP header")]
    BadTcp,
}

impl DecodeError {
    pub const ALL: [DecodeError; 6] = [
        Self::Truncated,
        Self::NotIp,
        Self::BadLink,
        Self::BadIpv4,
        Self::BadIpv6,
        Self::BadTcp,
    ];

    /// Short stable name for counters and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::NotIp => "not_ip",
            Self::BadLink => "bad_link",
            Self::BadIpv4 => "bad_ipv4",
            Self::BadIpv6 => "bad_ipv6",
            Self::BadTcp => "bad_tcp",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

fn classify(err: &SliceError) -> DecodeError {
    match err {
        SliceError::Len(_) => DecodeError::Truncated,
        SliceError::LinuxSll(_) | SliceError::Macsec(_) => DecodeError::BadLink,
        SliceError::Ip(_) | SliceError::Ipv4(_) | SliceError::Ipv4Exts(_) => DecodeError::BadIpv4,
        SliceError::Ipv6(_) | SliceError::Ipv6Exts(_) => DecodeError::BadIpv6,
        SliceError::Tcp(_) => DecodeError::BadTcp,
    }
}

/// Decode one captured frame.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let sliced = match link {
        LinkType::Ethernet => SlicedPacket::from_ethernet(frame),
        LinkType::LinuxSll => SlicedPacket::from_linux_sll(frame),
        LinkType::RawIp => SlicedPacket::from_ip(frame),
    }
    .map_err(|e| classify(&e))?;

    let mut vlan = None;
    let mut vlan_inner = None;
    for ext in sliced.link_exts.iter() {
        if let LinkExtSlice::Vlan(v) = ext {
            let id = v.vlan_identifier().value();
            if vlan.is_none() {
                vlan = Some(id);
            } else {
                vlan_inner = Some(id);
            }
        }
    }

    let (src, dst, ip_len, payload, fragment) = match sliced.net {
        Some(NetSlice::Ipv4(ref ip)) => {
            let h = ip.header();
            let fragment = if h.is_fragmenting_payload() {
                Some(Fragment {
                    id: u32::from(h.identification()),
                    first: h.fragments_offset().value() == 0,
                })
            } else {
                None
            };
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                u32::from(h.total_len()),
                ip.payload().clone(),
                fragment,
            )
        }
        Some(NetSlice::Ipv6(ref ip)) => {
            let h = ip.header();
            let mut fragment = None;
            for ext in ip.extensions().clone() {
                if let etherparse::Ipv6ExtensionSlice::Fragment(f) = ext {
                    if f.is_fragmenting_payload() {
                        fragment = Some(Fragment {
                            id: f.identification(),
                            first: f.fragment_offset().value() == 0,
                        });
                    }
                }
            }
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                u32::from(h.payload_length()) + 40,
                ip.payload().clone(),
                fragment,
            )
        }
        Some(NetSlice::Arp(_)) | None => return Err(DecodeError::NotIp),
    };
    let proto = payload.ip_number.0;

    let mut packet = Packet {
        vlan,
        vlan_inner,
        src,
        dst,
        proto,
        ip_len,
        ports: None,
        tcp: None,
        fragment,
        payload: &[],
    };

    match sliced.transport {
        Some(TransportSlice::Tcp(ref tcp)) => {
            packet.ports = Some((tcp.source_port(), tcp.destination_port()));
            let raw = tcp.header_slice();
            packet.tcp = Some(TcpInfo {
                flags: raw.get(13).copied().unwrap_or(0),
                seq: tcp.sequence_number(),
            });
            packet.payload = tcp.payload();
        }
        Some(TransportSlice::Udp(ref udp)) => {
            packet.ports = Some((udp.source_port(), udp.destination_port()));
            packet.payload = udp.payload();
        }
        Some(_) => {}
        None => {
            // etherparse leaves the transport of a fragmented datagram alone; the
            // first fragment still carries the ports, which the flow key needs so
            // that later fragments can be credited to the right flow.
            if matches!(fragment, Some(Fragment { first: true, .. })) && has_ports(proto) {
                let p = payload.payload;
                if p.len() >= 4 {
                    packet.ports = Some((
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    ));
                }
                if proto == 6 && p.len() >= 14 {
                    packet.tcp = Some(TcpInfo {
                        flags: p[13],
                        seq: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                    });
                }
            } else if fragment.is_none() && has_ports(proto) && proto != 6 && proto != 17 {
                // SCTP, UDP-Lite, DCCP: ports in the first four bytes.
                let p = payload.payload;
                if p.len() >= 4 {
                    packet.ports = Some((
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    ));
                }
            }
        }
    }
    Ok(packet)
}

/// Protocols whose first four transport bytes are source and destination ports.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn build_tcp(syn: bool) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(110.try_into().unwrap())
            .ipv4([10, 10, 1, 10], [203, 0, 113, 10], 64)
            .tcp(40000, 443, 1000, 64240);
        if syn {
            b = b.syn();
        }
        let payload = b"hello";
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn decodes_vlan_tcp() {
        let f = build_tcp(true);
        let p = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.vlan, Some(110));
        assert_eq!(p.proto, 6);
        assert_eq!(p.ports, Some((40000, 443)));
        assert_eq!(p.ip_len, 20 + 20 + 5);
        assert_eq!(p.tcp.unwrap().flags & TCP_SYN, TCP_SYN);
        assert_eq!(p.payload, b"hello");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let f = build_tcp(false);
        for n in 0..f.len() {
            let r = decode(LinkType::Ethernet, &f[..n]);
            assert!(r.is_err(), "prefix {n} decoded");
        }
    }

    #[test]
    fn arp_is_not_ip() {
        let mut f = vec![0xff; 12];
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0; 28]);
        assert_eq!(decode(LinkType::Ethernet, &f), Err(DecodeError::NotIp));
    }

    #[test]
    fn ipv4_first_fragment_keeps_ports() {
        // 1480-byte first fragment of a UDP datagram (MF set, offset 0).
        let mut ip = vec![
            0x45, 0, 0x05, 0xdc, 0x12, 0x34, 0x20, 0x00, 64, 17, 0, 0, 10, 10, 1, 10, 203, 0, 113,
            10,
        ];
        ip.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35, 0x0f, 0xa8, 0, 0]);
        ip.resize(1500, 0xab);
        let p = decode(LinkType::RawIp, &ip).unwrap();
        assert_eq!(
            p.fragment,
            Some(Fragment {
                id: 0x1234,
                first: true
            })
        );
        assert_eq!(p.ports, Some((40000, 53)));
        assert_eq!(p.ip_len, 1500);
    }
}

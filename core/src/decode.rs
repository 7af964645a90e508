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
    /// The acknowledgment number (meaningful with [`TCP_ACK`]): the
    /// resets for a connection refused by name start from it.
    pub ack: u32,
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
#[inline]
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    // Nearly every frame is Ethernet (at most one 802.1Q tag), unfragmented
    // IPv4 or IPv6 without extension headers, carrying TCP, UDP or ICMP. Those
    // are read directly; anything else, including every frame the fast path
    // is not sure about, goes through etherparse, so results stay identical
    // (`fast_path_matches_etherparse` checks that).
    if link == LinkType::Ethernet {
        if let Some(p) = fast::ethernet(frame) {
            return Ok(p);
        }
    }
    decode_full(link, frame)
}

/// The general decoder (etherparse), for every link type and oddity.
pub fn decode_full(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
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
                ack: tcp.acknowledgment_number(),
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
                        ack: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
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

/// Hand-written decoding of the common case. Returns `None` whenever the
/// frame is anything but a plain, complete, well-formed packet; the caller
/// then asks etherparse, which also classifies the errors.
mod fast {
    use super::{Packet, TcpInfo};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[inline(always)]
    fn be16(d: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
    }

    #[inline]
    pub(super) fn ethernet(frame: &[u8]) -> Option<Packet<'_>> {
        let mut ether_type = be16(frame, 12)?;
        let mut at = 14;
        let mut vlan = None;
        if ether_type == 0x8100 {
            vlan = Some(be16(frame, 14)? & 0x0fff);
            ether_type = be16(frame, 16)?;
            at = 18;
        }
        let ip = frame.get(at..)?;
        let (src, dst, proto, ip_len, l4) = match ether_type {
            0x0800 => ipv4(ip)?,
            0x86dd => ipv6(ip)?,
            _ => return None,
        };
        let mut p = Packet {
            vlan,
            vlan_inner: None,
            src,
            dst,
            proto,
            ip_len,
            ports: None,
            tcp: None,
            fragment: None,
            payload: &[],
        };
        match proto {
            6 => {
                let doff = usize::from(*l4.get(12)? >> 4) * 4;
                if doff < 20 || doff > l4.len() {
                    return None;
                }
                p.ports = Some((be16(l4, 0)?, be16(l4, 2)?));
                p.tcp = Some(TcpInfo {
                    flags: l4[13],
                    seq: u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
                    ack: u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]),
                });
                p.payload = &l4[doff..];
            }
            17 => {
                let ulen = usize::from(be16(l4, 4)?);
                if ulen < 8 || ulen > l4.len() {
                    return None;
                }
                p.ports = Some((be16(l4, 0)?, be16(l4, 2)?));
                p.payload = &l4[8..ulen];
            }
            // ICMP and ICMPv6: etherparse wants their 8-byte header whole.
            1 | 58 if l4.len() >= 8 => {}
            _ => return None,
        }
        Some(p)
    }

    type Net<'a> = (IpAddr, IpAddr, u8, u32, &'a [u8]);

    #[inline(always)]
    fn ipv4(ip: &[u8]) -> Option<Net<'_>> {
        let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
        // Version 4, no options; not a fragment (flags MF and offset zero).
        if h[0] != 0x45 || (u16::from_be_bytes([h[6], h[7]]) & 0x3fff) != 0 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let proto = h[9];
        if total < 20 || total > ip.len() || !matches!(proto, 1 | 6 | 17) {
            return None;
        }
        Some((
            IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
            IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
            proto,
            total as u32,
            &ip[20..total],
        ))
    }

    #[inline(always)]
    fn ipv6(ip: &[u8]) -> Option<Net<'_>> {
        let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
        let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let next = h[6];
        // Any other next header may be an extension header: etherparse's job.
        if h[0] >> 4 != 6 || payload == 0 || 40 + payload > ip.len() || !matches!(next, 6 | 17 | 58)
        {
            return None;
        }
        let addr = |at: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&h[at..at + 16]);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        Some((
            addr(8),
            addr(24),
            next,
            payload as u32 + 40,
            &ip[40..40 + payload],
        ))
    }
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

    /// Frames of every shape the fast path reads, then cut short and with
    /// header bytes flipped: `decode` (fast path first) and `decode_full`
    /// (etherparse only) must agree on each, packet or error.
    #[test]
    fn fast_path_matches_etherparse() {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for vlan in [None, Some(42u16)] {
            for v6 in [false, true] {
                for l4 in 0..3 {
                    let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
                    let ip = match (vlan, v6) {
                        (Some(v), false) => eth.single_vlan(v.try_into().unwrap()).ipv4(
                            [10, 0, 0, 1],
                            [10, 0, 0, 2],
                            64,
                        ),
                        (Some(v), true) => eth
                            .single_vlan(v.try_into().unwrap())
                            .ipv6([1; 16], [2; 16], 64),
                        (None, false) => eth.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64),
                        (None, true) => eth.ipv6([1; 16], [2; 16], 64),
                    };
                    let payload = [7u8; 37];
                    let mut out = Vec::new();
                    match l4 {
                        0 => ip.tcp(1234, 443, 99, 1000).syn().write(&mut out, &payload),
                        1 => ip.udp(5353, 53).write(&mut out, &payload),
                        _ if v6 => ip.icmpv6_echo_request(1, 2).write(&mut out, &payload),
                        _ => ip.icmpv4_echo_request(1, 2).write(&mut out, &payload),
                    }
                    .unwrap();
                    // Ethernet padding after a short packet.
                    let mut padded = out.clone();
                    padded.extend_from_slice(&[0; 9]);
                    frames.push(out);
                    frames.push(padded);
                }
            }
        }
        let mut x: u32 = 0x9e37_79b9;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut checked = 0;
        for f in &frames {
            assert!(
                fast::ethernet(f).is_some(),
                "the fast path skips a plain frame"
            );
            for n in 0..=f.len() {
                assert_eq!(
                    decode(LinkType::Ethernet, &f[..n]),
                    decode_full(LinkType::Ethernet, &f[..n]),
                    "prefix {n} of {f:02x?}"
                );
                checked += 1;
            }
            for _ in 0..3000 {
                let mut m = f.clone();
                for _ in 0..1 + rnd() % 3 {
                    let at = (rnd() as usize) % m.len().min(80);
                    m[at] = match rnd() % 4 {
                        0 => 0,
                        1 => 0xff,
                        _ => rnd() as u8,
                    };
                }
                let cut = m.len() - (rnd() as usize % 4).min(m.len());
                let m = &m[..cut];
                assert_eq!(
                    decode(LinkType::Ethernet, m),
                    decode_full(LinkType::Ethernet, m),
                    "{m:02x?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 50_000);
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

//! TCP resets for a connection refused by name, built from the segment
//! that named the site: one to the client as if from the server, one to
//! the server as if from the client.
//!
//! Why both, and why from the naming segment: the kernel's `reject with
//! tcp reset` answers only the sender of a later packet. A server close by
//! can ACK the ClientHello before the refusal is in; then the client has
//! nothing left to send, only the server's next packet is refused (the
//! server is reset), and the client waits out its own timeout. The naming
//! segment says where each end stands: its ACK number is what the client
//! expects next from the server, its sequence number plus its length what
//! the server expects next from the client. A reset carrying exactly that
//! number is accepted at once (RFC 5961 §3.2); if the other end has moved
//! on meanwhile, the reset falls inside its window and it answers with a
//! challenge ACK, which the kernel's refusal then answers with a reset of
//! the right number.
//!
//! Pure bytes: IPv4 or IPv6 header plus a 20-byte TCP header, checksums
//! filled in, into a caller's buffer (no allocation). Sending is the
//! agent's (`simpul_agent::enforce::reset`).

use std::net::IpAddr;

use crate::guard::{NameBlock, TcpPosition};

/// The longest packet built: an IPv6 header and a TCP header.
pub const MAX_LEN: usize = 40 + TCP_LEN;

const TCP_LEN: usize = 20;
const RST_ACK: u8 = 0x04 | 0x10;
const TTL: u8 = 64;

/// Which end a reset goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Towards {
    /// From the server's address and port to the client's.
    Client,
    /// From the client's address and port to the server's.
    Server,
}

/// The reset to `to` for connection `conn`, whose naming segment (client
/// to server) stood at `at`, written to the start of `buf`; its length.
/// None when the connection is not TCP or its two addresses are of
/// different families.
pub fn build(
    conn: &NameBlock,
    at: TcpPosition,
    to: Towards,
    buf: &mut [u8; MAX_LEN],
) -> Option<usize> {
    if conn.proto != 6 {
        return None;
    }
    let next_from_client = at.seq.wrapping_add(at.len);
    let (src, sport, dst, dport, seq, ack) = match to {
        Towards::Client => (
            conn.server,
            conn.port,
            conn.client,
            conn.client_port,
            at.ack,
            next_from_client,
        ),
        Towards::Server => (
            conn.client,
            conn.client_port,
            conn.server,
            conn.port,
            next_from_client,
            at.ack,
        ),
    };
    let ip_len = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let h = &mut buf[..20];
            // Version 4, 5 words, length 40, don't fragment.
            h[..12].copy_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, TTL, 6, 0, 0]);
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let sum = fold(sum_words(0, h));
            h[10..12].copy_from_slice(&(!sum).to_be_bytes());
            20
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = &mut buf[..40];
            h[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, TCP_LEN as u8, 6, TTL]);
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            40
        }
        _ => return None,
    };
    let (ip, tcp) = buf.split_at_mut(ip_len);
    let tcp = &mut tcp[..TCP_LEN];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = (TCP_LEN as u8 / 4) << 4;
    tcp[13] = RST_ACK;
    tcp[14..20].fill(0);
    // Pseudo-header: both addresses, the protocol and the TCP length.
    let addrs = if ip_len == 20 {
        &ip[12..20]
    } else {
        &ip[8..40]
    };
    let pseudo = sum_words(6 + TCP_LEN as u32, addrs);
    let sum = fold(sum_words(pseudo, tcp));
    tcp[16..18].copy_from_slice(&(!sum).to_be_bytes());
    Some(ip_len + TCP_LEN)
}

/// One's-complement sum of big-endian 16-bit words (an even-length slice).
fn sum_words(start: u32, bytes: &[u8]) -> u32 {
    bytes.chunks_exact(2).fold(start, |s, w| {
        s + u32::from(u16::from_be_bytes([w[0], w[1]]))
    })
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, Ipv6Header, TcpHeader};

    fn conn(client: &str, cport: u16, server: &str, port: u16) -> NameBlock {
        NameBlock {
            client: client.parse().expect("ip"),
            client_port: cport,
            server: server.parse().expect("ip"),
            proto: 6,
            port,
        }
    }

    /// The naming segment: ClientHello of 517 bytes at seq 0xfffffff0 (so
    /// the next number wraps), acknowledging the server's 1000.
    const AT: TcpPosition = TcpPosition {
        seq: 0xffff_fff0,
        ack: 1000,
        len: 517,
    };

    fn tcp_of(b: &[u8]) -> TcpHeader {
        let (t, rest) = TcpHeader::from_slice(b).expect("TCP header");
        assert!(rest.is_empty(), "no payload");
        t
    }

    #[test]
    fn ipv4_resets_reparse_with_valid_checksums_towards_each_end() {
        let c = conn("10.1.1.2", 40001, "198.51.100.10", 443);
        let mut buf = [0u8; MAX_LEN];

        let n = build(&c, AT, Towards::Client, &mut buf).expect("v4");
        assert_eq!(n, 40);
        let (ip, rest) = Ipv4Header::from_slice(&buf[..n]).expect("IPv4 header");
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(
            (ip.source, ip.destination),
            ([198, 51, 100, 10], [10, 1, 1, 2])
        );
        assert_eq!(
            (ip.protocol, ip.total_len, ip.dont_fragment),
            (IpNumber::TCP, 40, true)
        );
        let t = tcp_of(rest);
        assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, &[]).expect("sum"));
        assert_eq!((t.source_port, t.destination_port), (443, 40001));
        assert!(t.rst && t.ack && !t.syn && !t.fin && !t.psh);
        assert_eq!(t.sequence_number, 1000, "what the client expects next");
        assert_eq!(t.acknowledgment_number, 0xffff_fff0u32.wrapping_add(517));
        assert_eq!(t.acknowledgment_number, 501);

        let n = build(&c, AT, Towards::Server, &mut buf).expect("v4");
        let (ip, rest) = Ipv4Header::from_slice(&buf[..n]).expect("IPv4 header");
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(
            (ip.source, ip.destination),
            ([10, 1, 1, 2], [198, 51, 100, 10])
        );
        let t = tcp_of(rest);
        assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, &[]).expect("sum"));
        assert_eq!((t.source_port, t.destination_port), (40001, 443));
        assert!(t.rst && t.ack && !t.syn);
        assert_eq!(t.sequence_number, 501, "what the server expects next");
        assert_eq!(t.acknowledgment_number, 1000);
    }

    #[test]
    fn ipv6_resets_reparse_with_valid_checksums_towards_each_end() {
        let c = conn("fd00:1::2", 51000, "2001:db8::10", 80);
        let mut buf = [0u8; MAX_LEN];
        for (to, src, dst, ports, seq, ack) in [
            (
                Towards::Client,
                "2001:db8::10",
                "fd00:1::2",
                (80, 51000),
                1000,
                501,
            ),
            (
                Towards::Server,
                "fd00:1::2",
                "2001:db8::10",
                (51000, 80),
                501,
                1000,
            ),
        ] {
            let n = build(&c, AT, to, &mut buf).expect("v6");
            assert_eq!(n, MAX_LEN);
            let (ip, rest) = Ipv6Header::from_slice(&buf[..n]).expect("IPv6 header");
            assert_eq!(
                ip.source_addr(),
                src.parse::<std::net::Ipv6Addr>().expect("ip")
            );
            assert_eq!(
                ip.destination_addr(),
                dst.parse::<std::net::Ipv6Addr>().expect("ip")
            );
            assert_eq!(
                (ip.next_header, ip.payload_length, ip.hop_limit),
                (IpNumber::TCP, 20, 64)
            );
            let t = tcp_of(rest);
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv6(&ip, &[]).expect("sum"),
                "{to:?}"
            );
            assert_eq!((t.source_port, t.destination_port), ports);
            assert!(t.rst && t.ack && !t.syn && !t.fin);
            assert_eq!((t.sequence_number, t.acknowledgment_number), (seq, ack));
        }
    }

    #[test]
    fn checksums_hold_for_many_addresses_and_numbers() {
        let mut buf = [0u8; MAX_LEN];
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..500 {
            let c4 = conn(
                &std::net::Ipv4Addr::from(next()).to_string(),
                next() as u16,
                &std::net::Ipv4Addr::from(next()).to_string(),
                next() as u16,
            );
            let at = TcpPosition {
                seq: next(),
                ack: next(),
                len: next() % 1500,
            };
            for to in [Towards::Client, Towards::Server] {
                let n = build(&c4, at, to, &mut buf).expect("v4");
                let (ip, rest) = Ipv4Header::from_slice(&buf[..n]).expect("v4");
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                let t = tcp_of(rest);
                assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, &[]).expect("sum"));
            }
        }
    }

    #[test]
    fn udp_and_mixed_families_get_no_reset() {
        let mut buf = [0u8; MAX_LEN];
        let mut quic = conn("10.1.1.2", 40001, "198.51.100.10", 443);
        quic.proto = 17;
        assert_eq!(build(&quic, AT, Towards::Client, &mut buf), None);
        let mixed = conn("10.1.1.2", 40001, "2001:db8::10", 443);
        assert_eq!(build(&mixed, AT, Towards::Server, &mut buf), None);
    }
}

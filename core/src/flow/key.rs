//! The bidirectional flow key: both directions of a conversation hash alike.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Endpoints stored in canonical order (`lo` ≤ `hi` by address then port), so a
/// packet and its reply find the same entry. Fixed-size arrays keep hashing cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    pub lo_ip: [u8; 16],
    pub hi_ip: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
    pub v6: bool,
    /// 0 = untagged (VLAN 0 is priority tagging, not a VLAN).
    pub vlan: u16,
    pub vlan_inner: u16,
}

/// Hashing the key as five words instead of field by field (the derived impl
/// feeds each address as a length-prefixed slice) is the flow table's hot path.
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_ne_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        state.write_u64(w(&self.lo_ip, 0));
        state.write_u64(w(&self.lo_ip, 8));
        state.write_u64(w(&self.hi_ip, 0));
        state.write_u64(w(&self.hi_ip, 8));
        state.write_u64(
            u64::from(self.lo_port)
                | u64::from(self.hi_port) << 16
                | u64::from(self.vlan) << 32
                | u64::from(self.vlan_inner) << 48,
        );
        state.write_u16(u16::from(self.proto) | u16::from(self.v6) << 8);
    }
}

/// Which endpoint of a [`FlowKey`] a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Lo = 0,
    Hi = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

fn ip_bytes(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, false)
        }
        IpAddr::V6(a) => (a.octets(), true),
    }
}

fn ip_from(bytes: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

impl FlowKey {
    /// Build the key of a packet `src:sport → dst:dport` and say which side sent it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        proto: u8,
        vlan: Option<u16>,
        vlan_inner: Option<u16>,
    ) -> (FlowKey, Side) {
        let (s, v6) = ip_bytes(src);
        let (d, _) = ip_bytes(dst);
        // Big-endian integers order like the byte arrays, in one compare.
        let sender_is_lo = (u128::from_be_bytes(s), sport) <= (u128::from_be_bytes(d), dport);
        let (lo_ip, lo_port, hi_ip, hi_port) = if sender_is_lo {
            (s, sport, d, dport)
        } else {
            (d, dport, s, sport)
        };
        (
            FlowKey {
                lo_ip,
                hi_ip,
                lo_port,
                hi_port,
                proto,
                v6,
                vlan: vlan.unwrap_or(0),
                vlan_inner: vlan_inner.unwrap_or(0),
            },
            if sender_is_lo { Side::Lo } else { Side::Hi },
        )
    }

    pub fn ip(&self, side: Side) -> IpAddr {
        match side {
            Side::Lo => ip_from(&self.lo_ip, self.v6),
            Side::Hi => ip_from(&self.hi_ip, self.v6),
        }
    }

    pub fn port(&self, side: Side) -> u16 {
        match side {
            Side::Lo => self.lo_port,
            Side::Hi => self.hi_port,
        }
    }

    /// True for protocols whose key carries ports.
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, 6 | 17 | 33 | 132 | 136)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_a_key() {
        let a: IpAddr = "10.10.1.10".parse().unwrap();
        let b: IpAddr = "203.0.113.10".parse().unwrap();
        let (k1, s1) = FlowKey::new(a, 40000, b, 443, 6, None, None);
        let (k2, s2) = FlowKey::new(b, 443, a, 40000, 6, None, None);
        assert_eq!(k1, k2);
        assert_ne!(s1, s2);
        assert_eq!(k1.ip(s1), a);
        assert_eq!(k1.port(s2), 443);
    }

    #[test]
    fn same_host_different_ports() {
        let a: IpAddr = "::1".parse().unwrap();
        let (k1, s1) = FlowKey::new(a, 5000, a, 80, 6, Some(10), None);
        let (k2, s2) = FlowKey::new(a, 80, a, 5000, 6, Some(10), None);
        assert_eq!(k1, k2);
        assert_ne!(s1, s2);
        assert_eq!(k1.vlan, 10);
    }
}

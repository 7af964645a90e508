//! Splitting one capture over shards that each run their own
//! [`crate::processor::Processor`]: which shard owns a packet (its address
//! pair, either way round) and which packets the other shards learn DNS
//! answers from, used by the agent's sharded replay; and, for live capture
//! whose shards each tick on their own clock, [`CounterMerge`]: one
//! sample per second and (unit, scope) out of the shards' samples.

use std::collections::BTreeMap;
use std::net::IpAddr;

use simpul_proto::{CounterSample, TrafficScope};

use crate::decode::{self, LinkType, Packet};

/// (second, agency, unit, scope) of a counter sample.
type CounterKey = (u64, String, String, u8);

/// Adds the shards' per-second counter samples up, and hands a second on
/// once every shard has said it is past it ([`CounterMerge::passed`]): a
/// second is then one sample per (unit, scope) whose bytes and packets are
/// the sum of the shards', none counted twice, none lost. A sample for a
/// second already handed on (a packet late into a second its shard had
/// closed, as one processor also emits) goes with the next second handed on.
#[derive(Debug)]
pub struct CounterMerge {
    /// Per shard: every sample of a second before this one was added.
    passed: Vec<u64>,
    pending: BTreeMap<CounterKey, CounterSample>,
}

impl CounterMerge {
    pub fn new(shards: usize) -> Self {
        CounterMerge {
            passed: vec![0; shards.max(1)],
            pending: BTreeMap::new(),
        }
    }

    /// A shard's sample.
    pub fn add(&mut self, c: CounterSample) {
        let scope = match c.scope {
            TrafficScope::Internet => 0,
            TrafficScope::Intranet => 1,
        };
        let key = (c.ts, c.agency.clone(), c.unit.clone(), scope);
        match self.pending.get_mut(&key) {
            Some(m) => {
                m.bytes_in += c.bytes_in;
                m.bytes_out += c.bytes_out;
                m.packets_in += c.packets_in;
                m.packets_out += c.packets_out;
            }
            None => {
                self.pending.insert(key, c);
            }
        }
    }

    /// Shard `shard` has added every sample of the seconds before `second`;
    /// hand on the seconds every shard is past.
    pub fn passed(&mut self, shard: usize, second: u64, out: &mut impl FnMut(CounterSample)) {
        let Some(p) = self.passed.get_mut(shard) else {
            return;
        };
        *p = (*p).max(second);
        let all = self.passed.iter().copied().min().unwrap_or(0);
        let later = self
            .pending
            .split_off(&(all, String::new(), String::new(), 0));
        for (_, c) in std::mem::replace(&mut self.pending, later) {
            out(c);
        }
    }

    /// Hand on everything (every shard has finished).
    pub fn flush(&mut self, out: &mut impl FnMut(CounterSample)) {
        for (_, c) in std::mem::take(&mut self.pending) {
            out(c);
        }
    }

    /// Seconds' samples waiting for a shard.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Which of `count` shards handles a decoded packet: a hash of its two
/// addresses taken in either order, so both directions of a flow, every
/// fragment of a datagram and the port-less orphan flow land together.
#[inline]
pub fn shard_of(p: &Packet<'_>, count: usize) -> usize {
    shard_of_addrs(p.src, p.dst, count)
}

#[inline]
fn shard_of_addrs(a: IpAddr, b: IpAddr, count: usize) -> usize {
    #[inline]
    fn fold(ip: IpAddr) -> u64 {
        match ip {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
            }
        }
    }
    if count <= 1 {
        return 0;
    }
    let h = fold(a)
        .wrapping_add(fold(b))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 32) % count as u64) as usize
}

/// [`shard_of`] of a frame without decoding it: read the addresses where
/// they sit in plain Ethernet (up to two VLAN tags) IPv4/IPv6 frames, and
/// decode anything else. Also says whether the frame may carry DNS (port 53,
/// or unsure), for the other shards to learn from ([`dns_answer_hint`]).
/// Frames that do not decode go to shard 0.
#[inline]
pub fn shard_of_frame(link: LinkType, frame: &[u8], count: usize) -> (usize, bool) {
    if link == LinkType::Ethernet {
        if let Some((src, dst, dns)) = peek_ethernet(frame) {
            return (shard_of_addrs(src, dst, count), dns);
        }
    }
    match decode::decode(link, frame) {
        Ok(p) => (shard_of(&p, count), dns_answer_hint(&p)),
        Err(_) => (0, false),
    }
}

/// (source, destination, may be DNS) of a plain Ethernet IP frame.
#[inline(always)]
fn peek_ethernet(f: &[u8]) -> Option<(IpAddr, IpAddr, bool)> {
    let be16 = |at: usize| Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]));
    let mut at = 12;
    let mut ether_type = be16(at)?;
    for _ in 0..2 {
        if ether_type != 0x8100 && ether_type != 0x88a8 {
            break;
        }
        at += 4;
        ether_type = be16(at)?;
    }
    let ip = f.get(at + 2..)?;
    let port53 = |l4: &[u8]| match l4 {
        [a, b, c, d, ..] => {
            u16::from_be_bytes([*a, *b]) == 53 || u16::from_be_bytes([*c, *d]) == 53
        }
        _ => false,
    };
    match ether_type {
        0x0800 => {
            let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
            if h[0] >> 4 != 4 {
                return None;
            }
            let src = IpAddr::from([h[12], h[13], h[14], h[15]]);
            let dst = IpAddr::from([h[16], h[17], h[18], h[19]]);
            let later_fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let dns = matches!(h[9], 6 | 17) && !later_fragment && ip.get(ihl..).is_none_or(port53);
            Some((src, dst, dns))
        }
        0x86dd => {
            let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let addr = |at: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&h[at..at + 16]);
                IpAddr::from(a)
            };
            let dns = match h[6] {
                6 | 17 => ip.get(40..).is_none_or(port53),
                // ICMPv6 and no-next-header carry no DNS; anything else may be
                // an extension header in front of it.
                58 | 59 => false,
                _ => true,
            };
            Some((addr(8), addr(24), dns))
        }
        _ => None,
    }
}

/// Whether a packet may carry DNS answers worth learning (a response with a
/// question and answers): the other shards learn it too.
#[inline]
pub fn dns_answer_hint(p: &Packet<'_>) -> bool {
    let (sport, dport) = p.ports.unwrap_or((0, 0));
    if sport != 53 && dport != 53 {
        return false;
    }
    let head = match p.proto {
        17 => p.payload,
        6 => p.payload.get(2..).unwrap_or_default(),
        _ => return false,
    };
    // QR set, QDCOUNT > 0, ANCOUNT > 0.
    matches!(head, [_, _, f, _, q0, q1, a0, a1, ..] if f & 0x80 != 0 && (*q0 | *q1) != 0 && (*a0 | *a1) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, vlan: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let r = if vlan {
            b.single_vlan(110u16.try_into().expect("vlan id"))
                .ipv4(src, dst, 64)
                .udp(sport, dport)
                .write(&mut out, &[0u8; 40])
        } else {
            b.ipv4(src, dst, 64)
                .udp(sport, dport)
                .write(&mut out, &[0u8; 40])
        };
        r.expect("build frame");
        out
    }

    fn udp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, &[0u8; 40])
            .expect("build frame");
        out
    }

    /// Both directions land on one shard, the same one a decoded packet
    /// gets, and port 53 is flagged for the other shards.
    #[test]
    fn frames_go_where_their_decoded_packets_go() {
        let mut spread = [0usize; 3];
        for i in 0..200u8 {
            let (a, b) = ([10, 10, i, 7], [203, 0, 113, i.wrapping_mul(7)]);
            let mut v6a = [0xfdu8; 16];
            v6a[15] = i;
            let v6b = [0x20u8; 16];
            for (fwd, back, dns) in [
                (
                    udp(a, b, 40000, 53, false),
                    udp(b, a, 53, 40000, false),
                    true,
                ),
                (
                    udp(a, b, 40000, 443, true),
                    udp(b, a, 443, 40000, true),
                    false,
                ),
                (udp6(v6a, v6b, 5000, 443), udp6(v6b, v6a, 443, 5000), false),
            ] {
                for count in [2, 3] {
                    let (s1, d1) = shard_of_frame(LinkType::Ethernet, &fwd, count);
                    let (s2, d2) = shard_of_frame(LinkType::Ethernet, &back, count);
                    assert_eq!(s1, s2, "both directions, {count} shards");
                    assert_eq!((d1, d2), (dns, dns));
                    let p = decode::decode(LinkType::Ethernet, &fwd).expect("decodes");
                    assert_eq!(s1, shard_of(&p, count));
                    if count == 3 {
                        spread[s1] += 1;
                    }
                }
            }
        }
        assert!(spread.iter().all(|&n| n > 100), "hash spreads: {spread:?}");
    }

    fn sample(ts: u64, unit: &str, bytes_in: u64, packets_in: u64) -> CounterSample {
        CounterSample {
            ts,
            agency: "diskominfo".into(),
            unit: unit.into(),
            scope: TrafficScope::Internet,
            bytes_in,
            bytes_out: 2 * bytes_in,
            packets_in,
            packets_out: 2 * packets_in,
        }
    }

    /// Two shards' samples of one second and unit come out as one sample
    /// with their sum, only once both shards are past that second; a
    /// second neither shard saw traffic in gives nothing.
    #[test]
    fn counter_seconds_are_summed_across_shards_once_all_are_past() {
        let mut m = CounterMerge::new(2);
        let mut out = Vec::new();
        m.add(sample(100, "a", 10, 1));
        m.add(sample(100, "b", 7, 1));
        m.add(sample(101, "a", 5, 1));
        m.passed(0, 102, &mut |c| out.push(c));
        assert!(out.is_empty(), "shard 1 may still add to 100 and 101");
        m.add(sample(100, "a", 20, 2));
        m.passed(1, 101, &mut |c| out.push(c));
        assert_eq!(out, [sample(100, "a", 30, 3), sample(100, "b", 7, 1)]);
        out.clear();
        m.add(sample(101, "a", 1, 1));
        m.passed(1, 102, &mut |c| out.push(c));
        assert_eq!(out, [sample(101, "a", 6, 2)]);
        assert_eq!(m.pending(), 0);
    }

    /// A sample late for a second already handed on is not lost: it goes
    /// with the next second handed on (as one processor would emit it,
    /// after the second's first sample); the totals are the shards' sums.
    #[test]
    fn late_samples_and_the_final_flush_lose_nothing() {
        let mut m = CounterMerge::new(3);
        let mut out = Vec::new();
        for s in 0..3 {
            m.add(sample(50, "a", 100, 10));
            m.passed(s, 51, &mut |c| out.push(c));
        }
        assert_eq!(out, [sample(50, "a", 300, 30)]);
        m.add(sample(50, "a", 1, 1));
        m.add(sample(51, "a", 4, 4));
        m.passed(2, 52, &mut |c| out.push(c));
        assert_eq!(
            out[1..],
            [sample(50, "a", 1, 1)],
            "51 waits for shards 0 and 1"
        );
        m.passed(0, 60, &mut |c| out.push(c));
        assert_eq!(out.len(), 2, "51 waits for shard 1");
        m.add(sample(53, "a", 9, 9));
        m.passed(7, 99, &mut |c| out.push(c));
        m.flush(&mut |c| out.push(c));
        let bytes: u64 = out.iter().map(|c| c.bytes_in).sum();
        let packets: u64 = out.iter().map(|c| c.packets_in + c.packets_out).sum();
        assert_eq!((bytes, packets), (314, 3 * 44));
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn frames_that_do_not_decode_go_to_shard_0() {
        assert_eq!(
            shard_of_frame(LinkType::Ethernet, &[0u8; 10], 4),
            (0, false)
        );
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(shard_of_frame(LinkType::Ethernet, &arp, 4), (0, false));
    }
}

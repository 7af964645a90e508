//! DEMO DATA: per-agency copies of the recorded captures. Every agency of an
//! inventory owns its own subnets (they may not overlap), but the fixtures
//! were all recorded from one client network; so agency number `i` replays
//! them with its clients moved: IPv4 10.A.x.y → 10.(A+i).x.y for the client
//! networks (A = 10, 110, 120) and IPv6 fd00:10:10:… → fd00:10:(10+i):….
//! Past the tenth agency (the province-sized demo, up to [`MAX_AGENCIES`])
//! 110 and 120 move to 130+ and 180+ instead, so no two agencies overlap.
//! Servers (the "internet" 203.0.113.0/24 and 2001:db8::/32, the intranet
//! 10.99.0.0/16) stay where they are. The IPv4 header checksum is kept
//! right; the agent does not check TCP/UDP checksums.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context, Result};
use simpul_core::decode::LinkType;

/// Second octets of the client networks in the fixtures.
const CLIENT_OCTETS: [u8; 3] = [10, 110, 120];

/// Agencies whose addresses do not overlap (10.10-69, 10.110-119 and
/// 10.130-179, 10.120-129 and 10.180-229; 10.99 is the intranet).
pub const MAX_AGENCIES: usize = 60;

/// Where client network `octet` (one of [`CLIENT_OCTETS`]) of agency `i` is.
fn moved(octet: u8, i: u8) -> u8 {
    match (octet, i) {
        (110, 10..) => 130 + (i - 10),
        (120, 10..) => 180 + (i - 10),
        _ => octet + i,
    }
}

/// The client subnets of agency `i` (unit sekretariat, unit bidang-it).
pub fn subnets(i: u8) -> (Vec<String>, Vec<String>) {
    (
        vec![
            format!("{}/24", Ipv4Addr::new(10, moved(10, i), 1, 0)),
            format!("fd00:10:{:x}:1::/64", 0x10 + u16::from(i)),
            format!("{}/24", Ipv4Addr::new(10, moved(110, i), 0, 0)),
        ],
        vec![
            format!("{}/24", Ipv4Addr::new(10, moved(10, i), 2, 0)),
            format!("{}/24", Ipv4Addr::new(10, moved(120, i), 0, 0)),
        ],
    )
}

fn move_v4(b: &mut [u8], i: u8) -> bool {
    if b[0] == 10 && CLIENT_OCTETS.contains(&b[1]) {
        b[1] = moved(b[1], i);
        true
    } else {
        false
    }
}

fn move_v6(b: &mut [u8], i: u8) {
    let a = Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).unwrap_or([0; 16]));
    let s = a.segments();
    if s[0] == 0xfd00 && s[1] == 0x10 && s[2] == 0x10 {
        let moved = Ipv6Addr::new(
            s[0],
            s[1],
            s[2] + u16::from(i),
            s[3],
            s[4],
            s[5],
            s[6],
            s[7],
        );
        b[..16].copy_from_slice(&moved.octets());
    }
}

fn ipv4_checksum(h: &mut [u8]) {
    h[10] = 0;
    h[11] = 0;
    let mut sum: u32 = 0;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let v = !(sum as u16);
    h[10..12].copy_from_slice(&v.to_be_bytes());
}

/// Move the client addresses of one Ethernet frame for agency `i`.
fn rewrite_frame(frame: &mut [u8], i: u8) {
    let mut off = 12;
    loop {
        let Some(et) = frame.get(off..off + 2) else {
            return;
        };
        let et = u16::from_be_bytes([et[0], et[1]]);
        off += 2;
        match et {
            0x8100 | 0x88a8 => off += 2,
            0x0800 => {
                let Some(h) = frame.get_mut(off..) else {
                    return;
                };
                let ihl = usize::from(h.first().map_or(0, |b| b & 0x0f)) * 4;
                if ihl < 20 || h.len() < ihl {
                    return;
                }
                let a = move_v4(&mut h[12..16], i);
                let b = move_v4(&mut h[16..20], i);
                if a || b {
                    ipv4_checksum(&mut h[..ihl]);
                }
                return;
            }
            0x86dd => {
                let Some(h) = frame.get_mut(off..off + 40) else {
                    return;
                };
                move_v6(&mut h[8..24], i);
                move_v6(&mut h[24..40], i);
                return;
            }
            _ => return,
        }
    }
}

/// Write `input` (pcap or pcapng) to `output` (pcap, nanosecond stamps)
/// with agency `i`'s client addresses.
pub fn rewrite_capture(input: &[u8], output: &Path, i: u8) -> Result<()> {
    let mut out = Vec::with_capacity(input.len());
    // pcap global header: nanosecond magic, v2.4, snaplen 262144, Ethernet.
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut frame = Vec::new();
    simpul_agent::capture::file::read_bytes(input, output, |link, ts, f| {
        if link != LinkType::Ethernet {
            return;
        }
        frame.clear();
        frame.extend_from_slice(f);
        rewrite_frame(&mut frame, i);
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    })
    .with_context(|| format!("demo capture for {}", output.display()))?;
    let mut f = std::fs::File::create(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    f.write_all(&out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_move_and_servers_stay() {
        let mut f = vec![0u8; 14 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 12..14 + 16].copy_from_slice(&[10, 10, 1, 10]);
        f[14 + 16..14 + 20].copy_from_slice(&[203, 0, 113, 10]);
        rewrite_frame(&mut f, 2);
        assert_eq!(&f[26..30], &[10, 12, 1, 10]);
        assert_eq!(&f[30..34], &[203, 0, 113, 10]);
        // The checksum of a valid header sums to 0xffff.
        let mut sum: u32 = f[14..34]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        let (a, b) = subnets(2);
        assert_eq!(a[0], "10.12.1.0/24");
        assert_eq!(a[1], "fd00:10:12:1::/64");
        assert_eq!(b[1], "10.122.0.0/24");
        let mut f2 = f.clone();
        f2[14 + 12..14 + 16].copy_from_slice(&[10, 120, 0, 7]);
        rewrite_frame(&mut f2, 59);
        assert_eq!(&f2[26..30], &[10, 229, 0, 7]);
    }

    /// No two agencies of the largest demo share an address.
    #[test]
    fn province_subnets_do_not_overlap() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..MAX_AGENCIES as u8 {
            let (a, b) = subnets(i);
            for s in a.into_iter().chain(b) {
                assert!(!s.starts_with("10.99."), "{s}: the intranet");
                assert!(seen.insert(s.clone()), "{s} twice");
            }
        }
    }
}

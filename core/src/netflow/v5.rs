//! NetFlow v5: a 24-byte header and fixed 48-byte records; the header's
//! sampling field (2 bits mode, 14 bits interval) applies to every record.

use std::net::{IpAddr, Ipv4Addr};

use super::templates::{Cache, Sampling};
use super::{sequence_gap, Decoded, NetflowError, NfFlow, Reader, Version};

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;
/// Cisco's limit; a larger count is a broken or hostile datagram.
pub const MAX_RECORDS: usize = 30;

pub(crate) fn decode(
    cache: &mut Cache,
    exporter: IpAddr,
    data: &[u8],
) -> Result<Decoded, NetflowError> {
    let mut r = Reader::new(data);
    r.u16("version")?;
    let count = usize::from(r.u16("record count")?);
    let uptime = r.u32("sysUptime")?;
    let secs = r.u32("unix_secs")?;
    let nsecs = r.u32("unix_nsecs")?;
    let sequence = r.u32("flow_sequence")?;
    let engine_type = r.u8("engine_type")?;
    let engine_id = r.u8("engine_id")?;
    let sampling = r.u16("sampling_interval")?;
    if count > MAX_RECORDS {
        return Err(NetflowError::Malformed {
            what: "v5 header record count",
            at: 2,
            why: "more than 30 records",
        });
    }
    if r.left() < count * RECORD_LEN {
        return Err(NetflowError::Truncated {
            what: "v5 records",
            at: HEADER_LEN,
            need: count * RECORD_LEN,
            have: r.left(),
        });
    }
    let domain = u32::from(engine_type) << 8 | u32::from(engine_id);
    let interval = u32::from(sampling & 0x3fff).max(1);
    let d = cache.domain(exporter, Version::V5, domain)?;
    let lost = sequence_gap(d.expected, sequence);
    d.expected = Some(sequence.wrapping_add(count as u32));
    d.sampling = Sampling {
        interval,
        algorithm: (sampling >> 14) as u8,
    };
    let export_ms = u64::from(secs) * 1000 + u64::from(nsecs) / 1_000_000;
    let at = |up: u32| export_ms.saturating_sub(u64::from(uptime.wrapping_sub(up)));
    let mut flows = Vec::with_capacity(count);
    for _ in 0..count {
        let b = r.take(RECORD_LEN, "v5 record")?;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let start_ms = at(u32_at(24));
        let end_ms = at(u32_at(28)).max(start_ms);
        flows.push(NfFlow {
            src: IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            dst: IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
            src_port: u16_at(32),
            dst_port: u16_at(34),
            proto: b[38],
            tcp_flags: b[37],
            bytes: u64::from(u32_at(20)),
            packets: u64::from(u32_at(16)),
            rev_bytes: 0,
            rev_packets: 0,
            start_ms,
            end_ms,
            vlan: None,
            input_if: u32::from(u16_at(12)),
            output_if: u32::from(u16_at(14)),
            end_reason: 0,
            sampling: interval,
            domain,
        });
    }
    Ok(Decoded {
        version: Some(Version::V5),
        domain,
        export_secs: u64::from(secs),
        flows,
        lost,
        ..Decoded::default()
    })
}

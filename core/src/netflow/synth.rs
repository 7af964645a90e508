//! A minimal NetFlow v9 exporter: a template of IPv4 flows, an options
//! template announcing the sampling interval, and data. The demo sends it
//! over loopback so its collector shows a sampled exporter; tests use it
//! to drive the real receiver. Not a flow meter: the caller supplies the
//! flows (already sampled: their counts are the ones the exporter saw).

use std::net::Ipv4Addr;

/// Template id of the flow records.
pub const FLOW_TEMPLATE: u16 = 256;
/// Template id of the sampling options.
pub const OPTIONS_TEMPLATE: u16 = 257;

/// (information element, length) of each flow record field.
const FLOW_FIELDS: [(u16, u16); 9] = [
    (8, 4),  // IPV4_SRC_ADDR
    (12, 4), // IPV4_DST_ADDR
    (7, 2),  // L4_SRC_PORT
    (11, 2), // L4_DST_PORT
    (4, 1),  // PROTOCOL
    (1, 8),  // IN_BYTES
    (2, 8),  // IN_PKTS
    (22, 4), // FIRST_SWITCHED (uptime ms)
    (21, 4), // LAST_SWITCHED
];

/// One flow as the exporter counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthFlow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub bytes: u64,
    pub packets: u64,
    /// Unix milliseconds; not after the datagram's export time.
    pub start_ms: u64,
    pub end_ms: u64,
}

/// One exporter's source id, sequence and sampling.
#[derive(Debug, Clone)]
pub struct V9Exporter {
    pub source_id: u32,
    /// One packet in `sampling` counted (sent in the options data).
    pub sampling: u32,
    /// The exporter's boot, Unix ms (uptime fields count from it).
    pub boot_ms: u64,
    seq: u32,
}

impl V9Exporter {
    pub fn new(source_id: u32, sampling: u32, boot_ms: u64) -> V9Exporter {
        V9Exporter {
            source_id,
            sampling,
            boot_ms,
            seq: 0,
        }
    }

    /// Skip `n` datagrams' sequence numbers (as if they were lost on the
    /// way): the collector counts the gap.
    pub fn skip(&mut self, n: u32) {
        self.seq = self.seq.wrapping_add(n);
    }

    /// The next datagram at `now_ms`: with `templates`, the flow and
    /// options templates and the sampling options record first (exporters
    /// repeat them every so often: UDP loses, collectors restart).
    pub fn datagram(&mut self, now_ms: u64, flows: &[SynthFlow], templates: bool) -> Vec<u8> {
        let uptime = |ms: u64| (ms.saturating_sub(self.boot_ms) & 0xffff_ffff) as u32;
        let mut sets = Vec::new();
        let mut records = 0u16;
        if templates {
            let mut t = Vec::new();
            t.extend(FLOW_TEMPLATE.to_be_bytes());
            t.extend((FLOW_FIELDS.len() as u16).to_be_bytes());
            for (ie, len) in FLOW_FIELDS {
                t.extend(ie.to_be_bytes());
                t.extend(len.to_be_bytes());
            }
            sets.push(set(0, t));
            // Scope: the system (1, length 4); then SAMPLING_INTERVAL (34)
            // and SAMPLING_ALGORITHM (35, 1 deterministic).
            let mut o = Vec::new();
            o.extend(OPTIONS_TEMPLATE.to_be_bytes());
            o.extend(4u16.to_be_bytes());
            o.extend(8u16.to_be_bytes());
            for (ie, len) in [(1u16, 4u16), (34, 4), (35, 1)] {
                o.extend(ie.to_be_bytes());
                o.extend(len.to_be_bytes());
            }
            sets.push(set(1, o));
            let mut od = 0u32.to_be_bytes().to_vec();
            od.extend(self.sampling.to_be_bytes());
            od.push(1);
            sets.push(set(OPTIONS_TEMPLATE, od));
            records += 3;
        }
        if !flows.is_empty() {
            let mut d = Vec::new();
            for f in flows {
                d.extend(f.src.octets());
                d.extend(f.dst.octets());
                d.extend(f.src_port.to_be_bytes());
                d.extend(f.dst_port.to_be_bytes());
                d.push(f.proto);
                d.extend(f.bytes.to_be_bytes());
                d.extend(f.packets.to_be_bytes());
                d.extend(uptime(f.start_ms).to_be_bytes());
                d.extend(uptime(f.end_ms).to_be_bytes());
            }
            sets.push(set(FLOW_TEMPLATE, d));
            records = records.saturating_add(u16::try_from(flows.len()).unwrap_or(u16::MAX));
        }
        let mut b = Vec::new();
        b.extend(9u16.to_be_bytes());
        b.extend(records.to_be_bytes());
        b.extend(uptime(now_ms).to_be_bytes());
        b.extend(((now_ms / 1000) as u32).to_be_bytes());
        b.extend(self.seq.to_be_bytes());
        b.extend(self.source_id.to_be_bytes());
        b.extend(sets.concat());
        // v9 counts datagrams.
        self.seq = self.seq.wrapping_add(1);
        b
    }
}

/// A flowset padded to four bytes.
fn set(id: u16, mut content: Vec<u8>) -> Vec<u8> {
    while !content.len().is_multiple_of(4) {
        content.push(0);
    }
    let mut b = Vec::with_capacity(4 + content.len());
    b.extend(id.to_be_bytes());
    b.extend(((4 + content.len()) as u16).to_be_bytes());
    b.extend(content);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netflow::{Decoder, Version};

    #[test]
    fn the_decoder_reads_it_back_with_its_sampling_and_gaps() {
        let boot = 1_700_000_000_000;
        let now = boot + 3_600_000;
        let mut x = V9Exporter::new(7, 100, boot);
        let f = SynthFlow {
            src: Ipv4Addr::new(10, 1, 0, 5),
            dst: Ipv4Addr::new(8, 8, 8, 8),
            src_port: 40000,
            dst_port: 443,
            proto: 6,
            bytes: 1500,
            packets: 3,
            start_ms: now - 9_000,
            end_ms: now - 1_000,
        };
        let mut d = Decoder::default();
        let e = "192.0.2.9".parse().expect("ip");
        let out = d.decode(e, &x.datagram(now, &[f, f], true)).expect("v9");
        assert_eq!(
            (out.version, out.domain, out.flows.len()),
            (Some(Version::V9), 7, 2)
        );
        let r = &out.flows[0];
        assert_eq!(
            (r.bytes, r.packets, r.sampling, r.dst_port),
            (1500, 3, 100, 443)
        );
        assert_eq!((r.start_ms, r.end_ms), (now - 9_000, now - 1_000));
        let info = d.domains_of(e);
        assert_eq!(info.len(), 1, "{info:?}");
        assert_eq!(
            (
                info[0].templates,
                info[0].options_templates,
                info[0].sampling.interval
            ),
            (1, 1, 100)
        );
        x.skip(4);
        let out = d.decode(e, &x.datagram(now, &[f], false)).expect("v9");
        assert_eq!((out.lost, out.flows[0].sampling), (4, 100));
    }
}

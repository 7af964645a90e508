//! Entry points shared by the cargo-fuzz targets (agent/fuzz) and the stable
//! test that replays their inputs, so the fuzzed code is exactly the product's.

use crate::agency::AgencyMap;
use crate::config::AgentConfig;
use crate::decode::LinkType;
use crate::dpi::{dns, http, quic, tls};
use crate::processor::{Processor, RecordSink};
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

/// A small table keeps each fuzz iteration cheap (the default pre-sizes 64k flows).
fn small_config() -> AgentConfig {
    let mut cfg = AgentConfig::default();
    cfg.flows.max_flows = 64;
    cfg.naming.dns_cache_entries = 64;
    cfg
}

struct Discard(u64);

impl RecordSink for Discard {
    fn flow(&mut self, r: FlowRecord) {
        self.0 += r.bytes_total();
    }
    fn counters(&mut self, s: CounterSample) {
        self.0 += s.bytes_in;
    }
    fn blocked(&mut self, b: BlockedAttempt) {
        self.0 += u64::from(b.attempts);
    }
}

/// Every byte-slice parser on `data`, then `data` as a sequence of frames
/// through the whole processor (decode → flows → naming → records).
pub fn decode_and_name(data: &[u8]) {
    let _ = tls::client_hello_sni(data);
    let _ = http::request_host(data);
    let _ = dns::parse(data);
    let _ = dns::parse_tcp(data);
    let mut q = quic::QuicInitialState::default();
    let _ = q.feed(data);

    let cfg = small_config();
    let mut p = Processor::new(&cfg, AgencyMap::new(&[], &[], vec![]), Discard(0));
    // Split the input into frames with a one-byte length prefix each, so one
    // input exercises flow state across packets (reassembly, DNS then connect).
    let mut rest = data;
    let mut ts = 1_700_000_000_000_000_000u64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize * 4).min(tail.len());
        let (frame, next) = tail.split_at(n);
        let link = match len % 3 {
            0 => LinkType::Ethernet,
            1 => LinkType::RawIp,
            _ => LinkType::LinuxSll,
        };
        p.handle_frame(link, ts, frame);
        ts += u64::from(len) * 50_000_000;
        rest = next;
    }
    p.finish();
}

/// A pcap/pcapng file image through the file reader and the processor.
pub fn capture_file(data: &[u8]) {
    let cfg = small_config();
    let mut p = Processor::new(&cfg, AgencyMap::new(&[], &[], vec![]), Discard(0));
    let _ = crate::capture::file::read_bytes(data, std::path::Path::new("fuzz"), |l, ts, f| {
        p.handle_frame(l, ts, f)
    });
    p.finish();
}

//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the stable
//! tests that replay their inputs, so the fuzzed code is exactly the product's.

use crate::agency::AgencyMap;
use crate::decode::LinkType;
use crate::dpi::{dns, http, quic, tls};
use crate::flow::FlowLimits;
use crate::processor::{Processor, ProcessorConfig, RecordSink};
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

/// A small table keeps each fuzz iteration cheap (the default pre-sizes 64k flows).
pub fn small_config() -> ProcessorConfig {
    ProcessorConfig {
        flows: FlowLimits {
            max_flows: 64,
            ..FlowLimits::default()
        },
        dns_cache_entries: 64,
        ..ProcessorConfig::default()
    }
}

/// A sink that only sums what it is given (so nothing is optimised away).
pub struct Discard(pub u64);

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

/// A processor attributing nothing, for fuzzing.
pub fn processor() -> Processor<Discard> {
    Processor::new(&small_config(), AgencyMap::empty(), Discard(0))
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

    let mut p = processor();
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

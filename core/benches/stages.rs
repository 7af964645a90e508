//! Per-stage costs of the packet path: decode, flow update, SNI parse, DNS
//! parse, the sharded replay's dispatch, and the whole processor on a
//! synthetic mix. Run with `cargo bench -p simpul-core`.

// A benchmark or tool on synthetic, known-good input: a failed unwrap is a
// broken benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use simpul_core::agency::AgencyMap;
use simpul_core::decode::{decode, decode_full, LinkType};
use simpul_core::dpi::{quic, tls};
use simpul_core::flow::{FlowKey, FlowLimits, FlowTable};
use simpul_core::processor::ProcessorConfig;
use simpul_core::processor::{Processor, RecordSink};
use simpul_core::shard::shard_of_frame;
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

fn tcp_frame(client: [u8; 4], sport: u16, payload_len: usize, vlan: bool) -> Vec<u8> {
    let payload = vec![0u8; payload_len];
    let mut out = Vec::new();
    if vlan {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(110.try_into().unwrap())
            .ipv4(client, [203, 0, 113, 10], 64)
            .tcp(sport, 443, 1, 64240)
            .ack(1);
        b.write(&mut out, &payload).unwrap();
    } else {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(client, [203, 0, 113, 10], 64)
            .tcp(sport, 443, 1, 64240)
            .ack(1);
        b.write(&mut out, &payload).unwrap();
    }
    out
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let plain = tcp_frame([10, 10, 1, 10], 40000, 512, false);
    let tagged = tcp_frame([10, 10, 1, 10], 40000, 512, true);
    let mut v6 = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6([0xfd; 16], [0x20; 16], 64)
        .udp(5000, 443)
        .write(&mut v6, &[0u8; 1200])
        .unwrap();
    g.bench_function("ipv4_tcp", |b| {
        b.iter(|| decode(LinkType::Ethernet, black_box(&plain)))
    });
    g.bench_function("vlan_ipv4_tcp", |b| {
        b.iter(|| decode(LinkType::Ethernet, black_box(&tagged)))
    });
    g.bench_function("ipv6_udp", |b| {
        b.iter(|| decode(LinkType::Ethernet, black_box(&v6)))
    });
    // The same frames through etherparse alone: what the fast path saves.
    g.bench_function("ipv4_tcp_etherparse", |b| {
        b.iter(|| decode_full(LinkType::Ethernet, black_box(&plain)))
    });
    g.bench_function("ipv6_udp_etherparse", |b| {
        b.iter(|| decode_full(LinkType::Ethernet, black_box(&v6)))
    });
    g.finish();
}

fn bench_flow_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_update");
    g.throughput(Throughput::Elements(1));
    let limits = FlowLimits::default();
    let server: IpAddr = "203.0.113.10".parse().unwrap();
    let keys: Vec<_> = (0..50_000u32)
        .map(|i| {
            let client = IpAddr::from([10, 10, (i >> 8) as u8, i as u8]);
            FlowKey::new(
                client,
                40000 + (i % 20000) as u16,
                server,
                443,
                6,
                None,
                None,
            )
        })
        .collect();
    g.bench_function("existing_flow_50k_table", |b| {
        let mut t = FlowTable::<()>::new(limits);
        for (k, s) in &keys {
            t.observe(*k, *s, 0, 60, Some(0x02), &mut |_| {});
        }
        let mut i = 0usize;
        b.iter(|| {
            let (k, s) = keys[i % keys.len()];
            i += 1;
            black_box(t.observe(k, s, 1, 1500, Some(0x10), &mut |_| {}).created);
        })
    });
    g.finish();
}

fn bench_sni(c: &mut Criterion) {
    let mut g = c.benchmark_group("sni");
    g.throughput(Throughput::Elements(1));
    let hello = include_bytes!("../src/dpi/testdata/client_hello_portal.bin");
    g.bench_function("tls_client_hello", |b| {
        b.iter(|| tls::client_hello_sni(black_box(hello)))
    });
    let http = b"GET /index.html HTTP/1.1\r\nHost: portal.example.go.id\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    g.bench_function("http_host", |b| {
        b.iter(|| simpul_core::dpi::http::request_host(black_box(http)))
    });
    let hex = include_str!("../src/dpi/testdata/rfc9001_a2_client_initial.hex");
    let initial: Vec<u8> = hex
        .split_whitespace()
        .collect::<String>()
        .as_bytes()
        .chunks(2)
        .filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect();
    g.bench_function("quic_initial_decrypt_sni", |b| {
        b.iter(|| quic::QuicInitialState::default().feed(black_box(&initial)))
    });
    g.finish();
}

struct Null;
impl RecordSink for Null {
    fn flow(&mut self, r: FlowRecord) {
        black_box(r);
    }
    fn counters(&mut self, s: CounterSample) {
        black_box(s);
    }
    fn blocked(&mut self, b: BlockedAttempt) {
        black_box(b);
    }
}

fn bench_processor(c: &mut Criterion) {
    let mut g = c.benchmark_group("processor");
    let frames: Vec<Vec<u8>> = (0..4096u32)
        .map(|i| {
            tcp_frame(
                [10, 10, (i >> 8) as u8 % 4, i as u8],
                40000 + (i % 512) as u16,
                [0, 512, 1400][i as usize % 3],
                i % 10 == 0,
            )
        })
        .collect();
    g.throughput(Throughput::Elements(frames.len() as u64));
    let cfg = ProcessorConfig::default();
    g.bench_function("mixed_frames", |b| {
        let mut p = Processor::new(&cfg, AgencyMap::empty(), Null);
        let mut ts = 1_700_000_000_000_000_000u64;
        b.iter(|| {
            for f in &frames {
                ts += 1000;
                p.handle_frame(LinkType::Ethernet, ts, f);
            }
        })
    });
    g.finish();
}

/// The replay profile (bench/compare.sh's IMIX pcap): parsing every DNS
/// message of a port-53 flow is about 7 % of the replay's CPU; the sharded
/// replay's reader deals every frame out by `shard_of_frame`.
fn bench_dns_and_dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns");
    g.throughput(Throughput::Elements(1));
    // www.example.go.id A → 203.0.113.10
    let mut answer = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in ["www", "example", "go", "id"] {
        answer.push(label.len() as u8);
        answer.extend_from_slice(label.as_bytes());
    }
    answer.extend_from_slice(&[0, 0, 1, 0, 1]);
    answer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 203, 0, 113, 10]);
    let zeros = vec![0u8; 512];
    g.bench_function("parse_answer", |b| {
        b.iter(|| simpul_core::dpi::dns::parse(black_box(&answer)))
    });
    g.bench_function("parse_512_zero_bytes", |b| {
        b.iter(|| simpul_core::dpi::dns::parse(black_box(&zeros)))
    });
    g.finish();

    let mut g = c.benchmark_group("shard_of_frame");
    g.throughput(Throughput::Elements(1));
    let plain = tcp_frame([10, 10, 1, 10], 40000, 512, false);
    let tagged = tcp_frame([10, 10, 1, 10], 40000, 512, true);
    g.bench_function("ipv4_tcp_2_shards", |b| {
        b.iter(|| shard_of_frame(LinkType::Ethernet, black_box(&plain), 2))
    });
    g.bench_function("vlan_ipv4_tcp_2_shards", |b| {
        b.iter(|| shard_of_frame(LinkType::Ethernet, black_box(&tagged), 2))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_flow_update,
    bench_sni,
    bench_dns_and_dispatch,
    bench_processor
);
criterion_main!(benches);

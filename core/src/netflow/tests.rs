use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

const EXPORTER: &str = "192.0.2.7";

/// A NetFlow v5 datagram: (src, dst, packets, bytes) per record.
fn v5(seq: u32, sampling: u16, recs: &[(&str, &str, u32, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(5u16.to_be_bytes());
    b.extend((recs.len() as u16).to_be_bytes());
    b.extend(100_000u32.to_be_bytes()); // uptime ms
    b.extend(1_700_000_000u32.to_be_bytes());
    b.extend(0u32.to_be_bytes());
    b.extend(seq.to_be_bytes());
    b.extend([0, 1]);
    b.extend(sampling.to_be_bytes());
    for (s, d, p, o) in recs {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(s), ip(d)) else {
            panic!("v4 only")
        };
        b.extend(s.octets());
        b.extend(d.octets());
        b.extend([0; 4]);
        b.extend(1u16.to_be_bytes());
        b.extend(2u16.to_be_bytes());
        b.extend(p.to_be_bytes());
        b.extend(o.to_be_bytes());
        b.extend(90_000u32.to_be_bytes()); // first: 10 s before export
        b.extend(99_000u32.to_be_bytes());
        b.extend(40000u16.to_be_bytes());
        b.extend(443u16.to_be_bytes());
        b.extend([0, 0x1b, 6, 0]);
        b.extend([0; 8]);
    }
    b
}

/// An IPFIX message around `sets`.
fn ipfix(seq: u32, domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut b = Vec::new();
    b.extend(10u16.to_be_bytes());
    b.extend(((16 + body.len()) as u16).to_be_bytes());
    b.extend(1_700_000_000u32.to_be_bytes());
    b.extend(seq.to_be_bytes());
    b.extend(domain.to_be_bytes());
    b.extend(body);
    b
}

fn set(id: u16, content: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(id.to_be_bytes());
    b.extend(((4 + content.len()) as u16).to_be_bytes());
    b.extend(content);
    b
}

/// Template record: id, then (ie, len) fields.
fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(id.to_be_bytes());
    b.extend((fields.len() as u16).to_be_bytes());
    for (ie, len) in fields {
        b.extend(ie.to_be_bytes());
        b.extend(len.to_be_bytes());
    }
    b
}

const FLOW4: &[(u16, u16)] = &[
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (1, 8),
    (2, 8),
    (152, 8),
    (153, 8),
];

fn flow4(src: &str, dst: &str, bytes: u64, packets: u64) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src), ip(dst)) else {
        panic!("v4 only")
    };
    let mut b = Vec::new();
    b.extend(s.octets());
    b.extend(d.octets());
    b.extend(1234u16.to_be_bytes());
    b.extend(53u16.to_be_bytes());
    b.push(17);
    b.extend(bytes.to_be_bytes());
    b.extend(packets.to_be_bytes());
    b.extend(1_699_999_990_000u64.to_be_bytes());
    b.extend(1_699_999_999_000u64.to_be_bytes());
    b
}

#[test]
fn v5_records_times_sampling_and_gaps() {
    let mut d = Decoder::default();
    let e = ip(EXPORTER);
    let p = v5(
        0,
        0x4000 | 10,
        &[
            ("10.1.0.5", "8.8.8.8", 3, 180),
            ("8.8.8.8", "10.1.0.5", 2, 120),
        ],
    );
    let out = d.decode(e, &p).expect("v5 decodes");
    assert_eq!(out.version, Some(Version::V5));
    assert_eq!(out.flows.len(), 2);
    let f = &out.flows[0];
    assert_eq!(
        (f.src, f.dst, f.packets, f.bytes),
        (ip("10.1.0.5"), ip("8.8.8.8"), 3, 180)
    );
    assert_eq!(
        (f.src_port, f.dst_port, f.proto, f.tcp_flags),
        (40000, 443, 6, 0x1b)
    );
    assert_eq!(f.start_ms, 1_699_999_990_000);
    assert_eq!(f.end_ms, 1_699_999_999_000);
    assert_eq!(f.sampling, 10);
    assert_eq!(
        d.sampling_of(e).map(|s| (s.interval, s.algorithm)),
        Some((10, 1))
    );
    assert_eq!(out.lost, 0);
    // Next datagram should start at flow 2; 5 flows went missing.
    let out = d
        .decode(e, &v5(7, 0, &[("10.1.0.5", "1.1.1.1", 1, 60)]))
        .expect("v5");
    assert_eq!(out.lost, 5);
    assert_eq!(out.flows[0].sampling, 1);
    // Reordered (behind the expected): no loss counted.
    let out = d
        .decode(e, &v5(3, 0, &[("10.1.0.5", "1.1.1.1", 1, 60)]))
        .expect("v5");
    assert_eq!(out.lost, 0);
}

#[test]
fn v5_truncated_and_oversized_counts_are_typed_errors() {
    let mut d = Decoder::default();
    let p = v5(0, 0, &[("10.1.0.5", "8.8.8.8", 3, 180)]);
    let err = d
        .decode(ip(EXPORTER), &p[..p.len() - 1])
        .expect_err("short");
    assert!(
        matches!(
            err,
            NetflowError::Truncated {
                what: "v5 records",
                at: 24,
                need: 48,
                have: 47
            }
        ),
        "{err}"
    );
    let mut big = p.clone();
    big[3] = 31;
    assert!(matches!(
        d.decode(ip(EXPORTER), &big),
        Err(NetflowError::Malformed { .. })
    ));
    assert_eq!(
        d.decode(ip(EXPORTER), &[0, 7, 1, 2]),
        Err(NetflowError::Version(7))
    );
    assert!(matches!(
        d.decode(ip(EXPORTER), &[0]),
        Err(NetflowError::Truncated {
            what: "version",
            ..
        })
    ));
}

#[test]
fn ipfix_template_then_data_and_sequence_in_records() {
    let mut d = Decoder::default();
    let e = ip(EXPORTER);
    let m = ipfix(
        0,
        7,
        &[
            set(2, &template(300, FLOW4)),
            set(
                300,
                &[
                    flow4("10.1.0.5", "8.8.8.8", 1000, 10),
                    flow4("10.1.0.6", "8.8.4.4", 500, 5),
                ]
                .concat(),
            ),
        ],
    );
    let out = d.decode(e, &m).expect("ipfix");
    assert_eq!((out.templates, out.flows.len(), out.lost), (1, 2, 0));
    let f = &out.flows[0];
    assert_eq!(
        (f.bytes, f.packets, f.proto, f.dst_port, f.domain),
        (1000, 10, 17, 53, 7)
    );
    assert_eq!(
        (f.start_ms, f.end_ms),
        (1_699_999_990_000, 1_699_999_999_000)
    );
    // Sequence counts data records: the next message should carry 2.
    let m = ipfix(5, 7, &[set(300, &flow4("10.1.0.5", "8.8.8.8", 1, 1))]);
    assert_eq!(d.decode(e, &m).expect("ipfix").lost, 3);
    // Another domain of the same exporter has its own templates.
    let m = ipfix(0, 8, &[set(300, &flow4("10.1.0.5", "8.8.8.8", 1, 1))]);
    let out = d.decode(e, &m).expect("ipfix");
    assert_eq!((out.flows.len(), out.sets_without_template), (0, 1));
}

#[test]
fn ipfix_padding_and_withdrawal() {
    let mut d = Decoder::default();
    let e = ip(EXPORTER);
    let mut data = flow4("10.1.0.5", "8.8.8.8", 1000, 10);
    data.extend([0, 0, 0]); // padding shorter than a record
    let m = ipfix(0, 1, &[set(2, &template(300, FLOW4)), set(300, &data)]);
    assert_eq!(d.decode(e, &m).expect("ipfix").flows.len(), 1);
    assert_eq!(d.templates_of(e), 1);
    // Withdraw 300 (field count 0).
    let m = ipfix(1, 1, &[set(2, &[1, 44, 0, 0])]);
    assert_eq!(d.decode(e, &m).expect("withdraw").withdrawn, 1);
    assert_eq!(d.templates_of(e), 0);
    let m = ipfix(1, 1, &[set(300, &flow4("10.1.0.5", "8.8.8.8", 1, 1))]);
    assert_eq!(d.decode(e, &m).expect("ipfix").sets_without_template, 1);
    // Withdraw all templates: template id = set id 2.
    let m = ipfix(
        1,
        1,
        &[set(
            2,
            &[template(300, FLOW4), template(301, FLOW4)].concat(),
        )],
    );
    d.decode(e, &m).expect("ipfix");
    assert_eq!(d.templates_of(e), 2);
    let m = ipfix(1, 1, &[set(2, &[0, 2, 0, 0])]);
    assert_eq!(d.decode(e, &m).expect("withdraw all").withdrawn, 2);
    assert_eq!(d.templates_of(e), 0);
}

#[test]
fn ipfix_variable_length_and_enterprise_fields() {
    let mut d = Decoder::default();
    let e = ip(EXPORTER);
    // src, dst, a variable-length string, an enterprise field, bytes,
    // and RFC 5103 reverse bytes.
    let mut t = Vec::new();
    t.extend(300u16.to_be_bytes());
    t.extend(6u16.to_be_bytes());
    for (ie, len) in [(8u16, 4u16), (12, 4), (82, 65535)] {
        t.extend(ie.to_be_bytes());
        t.extend(len.to_be_bytes());
    }
    t.extend((0x8000u16 | 1).to_be_bytes());
    t.extend(4u16.to_be_bytes());
    t.extend(9u32.to_be_bytes()); // someone else's enterprise: ignored
    t.extend(1u16.to_be_bytes());
    t.extend(4u16.to_be_bytes());
    t.extend((0x8000u16 | 1).to_be_bytes());
    t.extend(4u16.to_be_bytes());
    t.extend(29305u32.to_be_bytes());
    let mut rec = vec![10, 1, 0, 5, 8, 8, 8, 8, 3, b'e', b't', b'h'];
    rec.extend(77u32.to_be_bytes());
    rec.extend(1500u32.to_be_bytes());
    rec.extend(900u32.to_be_bytes());
    // The long form of a variable length: 255 then two bytes.
    let mut rec2 = vec![10, 1, 0, 6, 8, 8, 4, 4, 255, 1, 44];
    rec2.extend(vec![b'x'; 300]);
    rec2.extend(0u32.to_be_bytes());
    rec2.extend(42u32.to_be_bytes());
    rec2.extend(0u32.to_be_bytes());
    let m = ipfix(0, 1, &[set(2, &t), set(300, &[rec, rec2].concat())]);
    let out = d.decode(e, &m).expect("ipfix");
    assert_eq!(out.flows.len(), 2);
    assert_eq!((out.flows[0].bytes, out.flows[0].rev_bytes), (1500, 900));
    assert_eq!((out.flows[1].src, out.flows[1].bytes), (ip("10.1.0.6"), 42));
    // A variable field claiming more than is there: a typed error.
    let bad = vec![10, 1, 0, 6, 8, 8, 4, 4, 255, 1, 0, b'x'];
    let m = ipfix(1, 1, &[set(300, &[bad, vec![0; 10]].concat())]);
    assert!(matches!(
        d.decode(e, &m),
        Err(NetflowError::Truncated {
            what: "data record field",
            ..
        })
    ));
}

#[test]
fn ipfix_options_tell_sampling_and_init_time() {
    let mut d = Decoder::default();
    let e = ip(EXPORTER);
    // Options template 400: scope meteringProcessId (143), then
    // systemInitTimeMilliseconds, samplingPacketInterval/Space, algorithm.
    let mut ot = Vec::new();
    ot.extend(400u16.to_be_bytes());
    ot.extend(5u16.to_be_bytes());
    ot.extend(1u16.to_be_bytes());
    for (ie, len) in [(143u16, 4u16), (160, 8), (305, 4), (306, 4), (304, 2)] {
        ot.extend(ie.to_be_bytes());
        ot.extend(len.to_be_bytes());
    }
    let mut od = Vec::new();
    od.extend(1u32.to_be_bytes());
    od.extend(1_699_000_000_000u64.to_be_bytes());
    od.extend(1u32.to_be_bytes());
    od.extend(99u32.to_be_bytes()); // 1 of every 100
    od.extend(1u16.to_be_bytes());
    let up = template(301, &[(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4)]);
    let mut rec = vec![10, 1, 0, 5, 8, 8, 8, 8];
    rec.extend(10u32.to_be_bytes());
    rec.extend(1u32.to_be_bytes());
    rec.extend(5_000u32.to_be_bytes());
    rec.extend(6_000u32.to_be_bytes());
    let m = ipfix(
        0,
        1,
        &[set(3, &ot), set(2, &up), set(400, &od), set(301, &rec)],
    );
    let out = d.decode(e, &m).expect("ipfix");
    assert_eq!((out.templates, out.options_records), (2, 1));
    let f = &out.flows[0];
    assert_eq!(f.sampling, 100);
    assert_eq!(
        (f.start_ms, f.end_ms),
        (1_699_000_005_000, 1_699_000_006_000)
    );
    assert_eq!(
        d.sampling_of(e),
        Some(Sampling {
            interval: 100,
            algorithm: 1
        })
    );
}

/// A NetFlow v9 datagram.
fn v9(seq: u32, source: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(9u16.to_be_bytes());
    b.extend((sets.len() as u16).to_be_bytes());
    b.extend(100_000u32.to_be_bytes());
    b.extend(1_700_000_000u32.to_be_bytes());
    b.extend(seq.to_be_bytes());
    b.extend(source.to_be_bytes());
    b.extend(sets.concat());
    b
}

#[test]
fn v9_templates_options_sampler_and_datagram_sequence() {
    let mut d = Decoder::default();
    let e = ip(EXPORTER);
    let t = template(
        260,
        &[(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4), (48, 1)],
    );
    // Options template 261: scope system (1, len 4), then sampler id,
    // mode and interval.
    let mut ot = Vec::new();
    ot.extend(261u16.to_be_bytes());
    ot.extend(4u16.to_be_bytes());
    ot.extend(12u16.to_be_bytes());
    for (ie, len) in [(1u16, 4u16), (48, 1), (49, 1), (50, 4)] {
        ot.extend(ie.to_be_bytes());
        ot.extend(len.to_be_bytes());
    }
    let mut od = vec![0, 0, 0, 0, 3, 2];
    od.extend(64u32.to_be_bytes());
    od.extend([0, 0]); // padding
    let mut rec = vec![10, 1, 0, 5, 8, 8, 8, 8];
    rec.extend(640u32.to_be_bytes());
    rec.extend(4u32.to_be_bytes());
    rec.extend(90_000u32.to_be_bytes());
    rec.extend(99_000u32.to_be_bytes());
    rec.push(3);
    let p = v9(
        10,
        5,
        &[set(0, &t), set(1, &ot), set(261, &od), set(260, &rec)],
    );
    let out = d.decode(e, &p).expect("v9");
    assert_eq!(
        (out.templates, out.options_records, out.flows.len()),
        (2, 1, 1)
    );
    let f = &out.flows[0];
    assert_eq!((f.bytes, f.packets, f.sampling, f.domain), (640, 4, 64, 5));
    assert_eq!(
        (f.start_ms, f.end_ms),
        (1_699_999_990_000, 1_699_999_999_000)
    );
    // v9 counts datagrams: 11 expected, 14 got, 3 lost.
    let out = d.decode(e, &v9(14, 5, &[set(260, &rec)])).expect("v9");
    assert_eq!(out.lost, 3);
    // Source ids are separate streams.
    let out = d.decode(e, &v9(0, 6, &[set(260, &rec)])).expect("v9");
    assert_eq!((out.lost, out.sets_without_template), (0, 1));
}

#[test]
fn hostile_exporters_fill_their_own_share_only() {
    let mut d = Decoder::new(Limits {
        max_exporters: 2,
        max_templates_per_exporter: 3,
        ..Limits::default()
    });
    let e = ip(EXPORTER);
    let many: Vec<u8> = (300..310).flat_map(|id| template(id, FLOW4)).collect();
    let out = d.decode(e, &ipfix(0, 1, &[set(2, &many)])).expect("ipfix");
    assert_eq!((out.templates, out.templates_refused), (3, 7));
    assert_eq!(d.templates_of(e), 3);
    // A refreshed template does not count twice.
    let out = d
        .decode(e, &ipfix(0, 1, &[set(2, &template(300, FLOW4))]))
        .expect("ipfix");
    assert_eq!((out.templates, out.templates_refused), (1, 0));
    d.decode(ip("192.0.2.8"), &ipfix(0, 1, &[]))
        .expect("second exporter");
    let err = d
        .decode(ip("192.0.2.9"), &ipfix(0, 1, &[]))
        .expect_err("third exporter");
    assert!(
        matches!(err, NetflowError::TooManyExporters { limit: 2, .. }),
        "{err}"
    );
    d.forget(ip("192.0.2.8"));
    d.decode(ip("192.0.2.9"), &ipfix(0, 1, &[]))
        .expect("room again");
    // A template of zero-length records would never end a data set.
    let err = d
        .decode(e, &ipfix(0, 1, &[set(2, &template(320, &[(8, 0)]))]))
        .expect_err("zero");
    assert!(
        matches!(
            err,
            NetflowError::Malformed {
                what: "template",
                ..
            }
        ),
        "{err}"
    );
    // A set longer than the message.
    let mut m = ipfix(0, 1, &[set(2, &template(300, FLOW4))]);
    m[19] = 200;
    assert!(matches!(
        d.decode(e, &m),
        Err(NetflowError::Truncated { what: "set", .. })
    ));
}

/// The datagrams softflowd 1.1.0 sent for tests/fixtures/https.pcapng
/// (134 TCP packets, 39 689 bytes) and download.pcapng sampled 1 in 4.
fn fixture(name: &str) -> Vec<Vec<u8>> {
    let path = format!(
        "{}/tests/fixtures/netflow/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read(&path).expect("fixture");
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= raw.len() {
        let n = usize::from(u16::from_be_bytes([raw[i], raw[i + 1]]));
        out.push(raw[i + 2..i + 2 + n].to_vec());
        i += 2 + n;
    }
    out
}

#[test]
fn softflowd_exports_decode_to_the_capture_totals() {
    for (name, version) in [
        ("sf-v5.bin", Version::V5),
        ("sf-v9.bin", Version::V9),
        ("sf-v10.bin", Version::Ipfix),
        ("sf-v10b.bin", Version::Ipfix),
    ] {
        let mut d = Decoder::default();
        let (mut bytes, mut packets, mut flows) = (0, 0, 0);
        for dg in fixture(name) {
            let out = d
                .decode(ip("127.0.0.1"), &dg)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.version, Some(version));
            assert_eq!((out.lost, out.sets_without_template), (0, 0), "{name}");
            for f in &out.flows {
                bytes += f.bytes + f.rev_bytes;
                packets += f.packets + f.rev_packets;
                assert!(
                    f.start_ms <= f.end_ms && f.end_ms > 1_600_000_000_000,
                    "{name}: {f:?}"
                );
                assert_eq!(f.sampling, 1);
            }
            flows += out.flows.len();
        }
        assert_eq!((bytes, packets), (39_689, 134), "{name}");
        assert!(flows >= 1, "{name}");
    }
    let mut d = Decoder::default();
    let mut sampled = 0;
    for dg in fixture("sf-v9s.bin") {
        let out = d.decode(ip("127.0.0.1"), &dg).expect("v9 sampled");
        sampled += out.flows.len();
        // `softflowd -s 4` says so in options data (samplingInterval 34).
        assert!(out.flows.iter().all(|f| f.sampling == 4), "{:?}", out.flows);
    }
    assert!(sampled >= 1);
}

/// softflowd numbers IPFIX messages by the records sent up to their end
/// (RFC 7011: before their start); neither reading may count a loss on a
/// loss-free export of many messages.
#[test]
fn softflowd_ipfix_sequence_numbers_count_no_phantom_losses() {
    let mut d = Decoder::default();
    let (mut flows, mut lost) = (0, 0);
    let dgs = fixture("sf-imix-v10.bin");
    assert!(dgs.len() > 50);
    for dg in &dgs {
        let out = d.decode(ip("127.0.0.1"), dg).expect("ipfix");
        flows += out.flows.len();
        lost += out.lost;
    }
    assert_eq!(lost, 0);
    assert!(flows > 2000, "{flows}");
    // A message really lost is counted.
    let mut d = Decoder::default();
    let mut lost = 0;
    for (i, dg) in dgs.iter().enumerate() {
        if i != 10 {
            lost += d.decode(ip("127.0.0.1"), dg).expect("ipfix").lost;
        }
    }
    assert!(lost >= 20, "{lost}");
}

/// The fuzz target's seeds and their mutations on stable (what
/// `fuzz/run.sh netflow` starts from): never a panic.
#[test]
fn fuzz_seeds_and_mutations_never_panic() {
    let dir = format!("{}/../fuzz/seeds/netflow", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/seeds/netflow") {
        let seed = std::fs::read(e.expect("entry").path()).expect("seed");
        fuzz(&seed);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut m = seed.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % m.len().max(1);
                if let Some(b) = m.get_mut(i) {
                    *b = (x >> 40) as u8;
                }
            }
            fuzz(&m);
        }
        n += 1;
    }
    assert!(n >= 6, "{n} seeds");
}

proptest! {
    #[test]
    fn any_bytes_are_an_error_or_records_never_a_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz(&data);
    }

    #[test]
    fn every_prefix_of_a_good_datagram_is_handled(cut in 0usize..400, which in 0usize..3) {
        let good = match which {
            0 => v5(0, 0, &[("10.1.0.5", "8.8.8.8", 3, 180), ("10.1.0.6", "8.8.8.8", 3, 180)]),
            1 => ipfix(0, 1, &[set(2, &template(300, FLOW4)), set(300, &flow4("10.1.0.5", "8.8.8.8", 1, 1))]),
            _ => v9(0, 1, &[set(0, &template(300, FLOW4)), set(300, &flow4("10.1.0.5", "8.8.8.8", 1, 1))]),
        };
        let cut = cut.min(good.len());
        let mut d = Decoder::default();
        let _ = d.decode(ip(EXPORTER), &good[..cut]);
        prop_assert!(d.decode(ip(EXPORTER), &good).is_ok());
    }
}

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use simpul_proto::{EndReason as FlowEnd, FlowRecord, RecordKind, SiteSource, TrafficScope};

use super::delta::{biflow, Deltas, RecordError};
use super::elements::{
    simpul, template_fields, truncate, EndReason, MAX_CODE, MAX_RECORD, MAX_SITE, PEN_REVERSE,
    SIMPUL_PEN, TEMPLATE_V4, TEMPLATE_V6, VARLEN,
};
use super::encode::{EncodeError, Encoder, EncoderSettings, SettingsError};
use super::reader::{DataRecord, Message, Reader};
use super::{BiflowRecord, NamingMethod};

const SEC: u64 = 1_000_000_000;

fn settings(max_message: usize) -> EncoderSettings {
    EncoderSettings {
        observation_domain: 7,
        max_message,
        template_refresh_ns: 60 * SEC,
        template_refresh_messages: 0,
    }
}

fn record(src: IpAddr, dst: IpAddr) -> BiflowRecord<'static> {
    BiflowRecord {
        src,
        dst,
        src_port: 51000,
        dst_port: 443,
        protocol: 6,
        tcp_flags: 0x1b,
        rev_tcp_flags: 0x12,
        start_ms: 1_700_000_000_123,
        end_ms: 1_700_000_004_456,
        octets: 1234,
        packets: 10,
        rev_octets: 567_890,
        rev_packets: 400,
        end_reason: EndReason::EndOfFlow,
        vlan: 42,
        site: "www.example.go.id",
        naming: NamingMethod::Sni,
        agency: "dinkes",
        unit: "puskesmas-1",
        scope: 1,
        flow_id: 99,
    }
}

fn v4() -> (IpAddr, IpAddr) {
    (
        Ipv4Addr::new(10, 1, 2, 3).into(),
        Ipv4Addr::new(203, 0, 113, 9).into(),
    )
}

fn v6() -> (IpAddr, IpAddr) {
    (
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().into(),
        "2001:db8:ffff::2".parse::<Ipv6Addr>().unwrap().into(),
    )
}

fn read_all(messages: &[Vec<u8>]) -> (Vec<Message>, Reader) {
    let mut reader = Reader::new();
    let out = messages
        .iter()
        .map(|m| reader.read(m).unwrap_or_else(|e| panic!("{e}: {m:02x?}")))
        .collect();
    (out, reader)
}

fn addr(v: &[u8]) -> IpAddr {
    match v.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(v).unwrap()),
        16 => IpAddr::from(<[u8; 16]>::try_from(v).unwrap()),
        n => panic!("address of {n} bytes"),
    }
}

/// The record as the reader sees it, back in the encoder's terms.
fn decoded(d: &DataRecord) -> BiflowRecord<'_> {
    let v6 = d.template == TEMPLATE_V6;
    let (s, t) = if v6 { (27, 28) } else { (8, 12) };
    let u = |pen, id| {
        d.uint(pen, id)
            .unwrap_or_else(|| panic!("field {pen}/{id}"))
    };
    BiflowRecord {
        src: addr(d.get(0, s).unwrap()),
        dst: addr(d.get(0, t).unwrap()),
        src_port: u(0, 7) as u16,
        dst_port: u(0, 11) as u16,
        protocol: u(0, 4) as u8,
        tcp_flags: u(0, 6) as u8,
        rev_tcp_flags: u(PEN_REVERSE, 6) as u8,
        start_ms: u(0, 152),
        end_ms: u(0, 153),
        octets: u(0, 1),
        packets: u(0, 2),
        rev_octets: u(PEN_REVERSE, 1),
        rev_packets: u(PEN_REVERSE, 2),
        end_reason: match u(0, 136) {
            1 => EndReason::IdleTimeout,
            2 => EndReason::ActiveTimeout,
            3 => EndReason::EndOfFlow,
            4 => EndReason::ForcedEnd,
            5 => EndReason::LackOfResources,
            n => panic!("end reason {n}"),
        },
        vlan: u(0, 58) as u16,
        site: d.text(SIMPUL_PEN, simpul::SITE_NAME).unwrap(),
        naming: match u(SIMPUL_PEN, simpul::NAMING_METHOD) {
            0 => NamingMethod::None,
            1 => NamingMethod::Sni,
            2 => NamingMethod::HttpHost,
            3 => NamingMethod::Quic,
            4 => NamingMethod::Dns,
            n => panic!("naming {n}"),
        },
        agency: d.text(SIMPUL_PEN, simpul::AGENCY).unwrap(),
        unit: d.text(SIMPUL_PEN, simpul::UNIT).unwrap(),
        scope: u(SIMPUL_PEN, simpul::TRAFFIC_SCOPE) as u8,
        flow_id: u(SIMPUL_PEN, simpul::FLOW_ID),
    }
}

#[test]
fn first_message_defines_both_templates_with_reverse_and_enterprise_elements() {
    let mut e = Encoder::new(settings(1352)).unwrap();
    let mut out = Vec::new();
    let (s, d) = v4();
    e.add(&record(s, d), 5 * SEC, &mut out).unwrap();
    e.flush(6 * SEC, &mut out);
    assert_eq!(out.len(), 1);
    let (msgs, reader) = read_all(&out);
    let m = &msgs[0];
    assert_eq!(m.templates, vec![TEMPLATE_V4, TEMPLATE_V6]);
    assert_eq!((m.export_time, m.sequence, m.domain), (6, 0, 7));
    for (id, v6) in [(TEMPLATE_V4, false), (TEMPLATE_V6, true)] {
        let t = reader.template(7, id).unwrap();
        assert_eq!(t, template_fields(v6).as_slice());
        let has = |pen, id| t.iter().any(|f| f.pen == pen && f.id == id);
        assert!(has(PEN_REVERSE, 1) && has(PEN_REVERSE, 2) && has(PEN_REVERSE, 6));
        assert!(t
            .iter()
            .any(|f| f.pen == SIMPUL_PEN && f.id == simpul::SITE_NAME && f.len == VARLEN));
        assert!(has(0, 152) && has(0, 153) && has(0, 239));
    }
    assert_eq!(m.records.len(), 1);
    assert_eq!(decoded(&m.records[0]), record(s, d));
}

#[test]
fn ipv4_and_ipv6_records_read_back_field_for_field() {
    let mut e = Encoder::new(settings(1352)).unwrap();
    let mut out = Vec::new();
    let (a, b) = v4();
    let (c, d) = v6();
    let mut quic = record(c, d);
    quic.protocol = 17;
    quic.naming = NamingMethod::Quic;
    quic.site = "sälj.example";
    quic.vlan = 0;
    quic.scope = 2;
    let mut bare = record(a, b);
    bare.site = "";
    bare.naming = NamingMethod::None;
    let input = [record(a, b), quic, bare.clone(), record(c, d)];
    for r in &input {
        e.add(r, SEC, &mut out).unwrap();
    }
    e.flush(SEC, &mut out);
    let (msgs, _) = read_all(&out);
    let got: Vec<_> = msgs.iter().flat_map(|m| &m.records).collect();
    assert_eq!(got.len(), 4);
    assert_eq!(
        got.iter().map(|r| r.template).collect::<Vec<_>>(),
        [TEMPLATE_V4, TEMPLATE_V6, TEMPLATE_V4, TEMPLATE_V6]
    );
    for (g, want) in got.iter().zip(&input) {
        assert_eq!(&decoded(g), want);
    }
}

#[test]
fn messages_stay_under_the_limit_and_sequence_numbers_count_data_records() {
    let max = EncoderSettings::message_limit(1400);
    assert_eq!(max, 1352);
    let mut e = Encoder::new(settings(max)).unwrap();
    let mut out = Vec::new();
    let long_site = "a".repeat(400);
    let (a, b) = v4();
    let (c, d) = v6();
    for i in 0..1000u64 {
        let (s, t) = if i % 3 == 0 { (c, d) } else { (a, b) };
        let mut r = record(s, t);
        r.flow_id = i;
        if i % 7 == 0 {
            r.site = &long_site;
        }
        e.add(&r, SEC + i, &mut out).unwrap();
    }
    e.flush(2 * SEC, &mut out);
    assert!(out.len() > 50, "{} messages", out.len());
    let (msgs, _) = read_all(&out);
    let mut seen = 0u32;
    for (m, raw) in msgs.iter().zip(&out) {
        assert!(raw.len() <= max, "message of {} bytes", raw.len());
        assert_eq!(m.sequence, seen, "sequence = data records before it");
        seen += m.records.len() as u32;
    }
    assert_eq!(seen, 1000);
    let ids: Vec<u64> = msgs
        .iter()
        .flat_map(|m| &m.records)
        .map(|r| r.uint(SIMPUL_PEN, simpul::FLOW_ID).unwrap())
        .collect();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>(), "in order, none lost");
    let cut = msgs
        .iter()
        .flat_map(|m| &m.records)
        .find_map(|r| {
            r.text(SIMPUL_PEN, simpul::SITE_NAME)
                .filter(|s| s.len() > 20)
        })
        .unwrap();
    assert_eq!(cut.len(), MAX_SITE);
    assert_eq!(e.messages, out.len() as u64);
    assert_eq!(e.records, 1000);
}

#[test]
fn templates_are_resent_by_time_and_by_message_count() {
    let mut s = settings(600);
    s.template_refresh_messages = 3;
    let mut e = Encoder::new(s).unwrap();
    let mut out = Vec::new();
    let (a, b) = v4();
    // One record a message: 10 messages → templates in messages 0, 3, 6, 9.
    for i in 0..10 {
        e.add(&record(a, b), SEC, &mut out).unwrap();
        e.flush(SEC, &mut out);
        assert_eq!(out.len(), i + 1);
    }
    let (msgs, _) = read_all(&out);
    let with: Vec<usize> = (0..10).filter(|&i| !msgs[i].templates.is_empty()).collect();
    assert_eq!(with, [0, 3, 6, 9]);

    // By time: idle, then a template-only message once the interval passed.
    let mut e = Encoder::new(settings(600)).unwrap();
    let mut out = Vec::new();
    e.refresh_if_due(SEC, &mut out);
    assert_eq!(out.len(), 1, "the first templates go out at once");
    e.refresh_if_due(30 * SEC, &mut out);
    assert_eq!(out.len(), 1, "not due yet");
    e.refresh_if_due(61 * SEC, &mut out);
    assert_eq!(out.len(), 2);
    let (msgs, _) = read_all(&out);
    assert!(msgs
        .iter()
        .all(|m| m.records.is_empty() && m.templates.len() == 2));
    assert_eq!(e.template_messages, 2);
}

#[test]
fn settings_that_cannot_hold_a_record_are_refused() {
    assert!(matches!(
        Encoder::new(settings(200)),
        Err(SettingsError::TooSmall { got: 200, .. })
    ));
    assert!(matches!(
        Encoder::new(settings(70_000)),
        Err(SettingsError::TooLarge(70_000))
    ));
    let mut s = settings(1000);
    s.template_refresh_ns = 0;
    assert_eq!(Encoder::new(s).unwrap_err(), SettingsError::NoRefresh);
    // The smallest allowed limit still carries the largest record.
    let min = EncoderSettings::message_limit(EncoderSettings::min_mtu());
    let mut e = Encoder::new(settings(min)).unwrap();
    let long = "x".repeat(300);
    let (c, d) = v6();
    let mut r = record(c, d);
    r.site = &long;
    let code = "c".repeat(MAX_CODE + 5);
    r.agency = &code;
    r.unit = &code;
    let mut out = Vec::new();
    e.add(&r, SEC, &mut out).unwrap();
    e.add(&r, SEC, &mut out).unwrap();
    e.flush(SEC, &mut out);
    assert!(out.iter().all(|m| m.len() <= min));
    let (msgs, _) = read_all(&out);
    assert_eq!(msgs.iter().map(|m| m.records.len()).sum::<usize>(), 2);
    // MAX_RECORD is exact: the largest record is that long.
    let mut one = Vec::new();
    super::elements::write_record(&r, &mut one);
    assert_eq!(one.len(), MAX_RECORD);
}

#[test]
fn mixed_families_are_an_error() {
    let mut e = Encoder::new(settings(1000)).unwrap();
    let (a, _) = v4();
    let (_, d) = v6();
    let mut out = Vec::new();
    assert!(matches!(
        e.add(&record(a, d), SEC, &mut out),
        Err(EncodeError::MixedFamilies { .. })
    ));
    assert_eq!(e.pending(), 0);
}

#[test]
fn truncation_keeps_characters_whole() {
    assert_eq!(truncate("abc", 5), "abc");
    assert_eq!(truncate("aé", 2), "a");
    assert_eq!(truncate("aé", 3), "aé");
}

fn flow(id: u64, kind: RecordKind, up: (u64, u64), down: (u64, u64), last_s: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind,
        end_reason: if kind == RecordKind::Final {
            FlowEnd::Fin
        } else {
            FlowEnd::Active
        },
        proto: "tcp".into(),
        src_ip: Ipv4Addr::new(10, 0, 0, 1).into(),
        src_port: Some(40000),
        dst_ip: Ipv4Addr::new(10, 0, 0, 2).into(),
        dst_port: Some(80),
        vlan: None,
        vlan_inner: None,
        packets_up: up.0,
        bytes_up: up.1,
        packets_down: down.0,
        bytes_down: down.1,
        first_seen: SEC,
        last_seen: last_s * SEC,
        tcp_flags_up: Some(0x02),
        tcp_flags_down: Some(0x12),
        sni: None,
        http_host: Some("intra.go.id".into()),
        dns_query: None,
        site: Some("intra.go.id".into()),
        site_source: Some(SiteSource::Http),
        agency: "dinkes".into(),
        unit: "umum".into(),
        scope: TrafficScope::Intranet,
    }
}

#[test]
fn interim_records_become_deltas_that_sum_to_the_final_totals() {
    let mut d = Deltas::new(10);
    let seq = [
        flow(1, RecordKind::Interim, (10, 1000), (8, 9000), 3),
        flow(1, RecordKind::Interim, (10, 1000), (8, 9000), 3), // nothing new
        flow(1, RecordKind::Interim, (25, 2600), (30, 40000), 5),
        flow(1, RecordKind::Final, (26, 2640), (31, 40040), 6),
    ];
    let pieces: Vec<_> = seq.iter().map(|r| d.take(r)).collect();
    assert!(pieces[1].is_none());
    let p: Vec<_> = pieces.into_iter().flatten().collect();
    assert_eq!(p.len(), 3);
    assert_eq!(p.iter().map(|p| p.packets_up).sum::<u64>(), 26);
    assert_eq!(p.iter().map(|p| p.bytes_up).sum::<u64>(), 2640);
    assert_eq!(p.iter().map(|p| p.packets_down).sum::<u64>(), 31);
    assert_eq!(p.iter().map(|p| p.bytes_down).sum::<u64>(), 40040);
    assert_eq!(
        p.iter().map(|p| p.start / SEC).collect::<Vec<_>>(),
        [1, 3, 5],
        "each piece starts where the previous one ended"
    );
    assert_eq!(d.tracked(), 0, "the final record forgets the flow");
    let b = biflow(&seq[3], &p[2]).unwrap();
    assert_eq!(
        (b.packets, b.octets, b.rev_packets, b.rev_octets),
        (1, 40, 1, 40)
    );
    assert_eq!((b.start_ms, b.end_ms), (5000, 6000));
    assert_eq!(b.end_reason, EndReason::EndOfFlow);
    assert_eq!(b.naming, NamingMethod::HttpHost);
    assert_eq!((b.protocol, b.scope), (6, 2));
    let i = biflow(&seq[0], &p[0]).unwrap();
    assert_eq!(i.end_reason, EndReason::ActiveTimeout);
}

#[test]
fn when_too_many_flows_run_the_final_record_carries_the_whole_flow() {
    let mut d = Deltas::new(1);
    assert!(d
        .take(&flow(1, RecordKind::Interim, (1, 10), (1, 10), 2))
        .is_some());
    // Flow 2 is not tracked: its interim is skipped, its final is whole.
    assert!(d
        .take(&flow(2, RecordKind::Interim, (5, 50), (5, 50), 2))
        .is_none());
    assert_eq!(d.interim_skipped, 1);
    let p = d
        .take(&flow(2, RecordKind::Final, (6, 60), (6, 60), 3))
        .unwrap();
    assert_eq!((p.packets_up, p.bytes_up, p.start), (6, 60, SEC));
    let p = d
        .take(&flow(1, RecordKind::Final, (2, 20), (1, 10), 3))
        .unwrap();
    assert_eq!((p.packets_up, p.bytes_up, p.packets_down), (1, 10, 0));
}

#[test]
fn bad_protocols_and_families_are_typed_errors() {
    let mut r = flow(3, RecordKind::Final, (1, 1), (0, 0), 2);
    r.proto = "sctp?".into();
    let p = Deltas::new(1).take(&r).unwrap();
    assert!(matches!(
        biflow(&r, &p),
        Err(RecordError::Protocol { flow_id: 3, .. })
    ));
    r.proto = "132".into();
    assert_eq!(biflow(&r, &p).unwrap().protocol, 132);
    r.dst_ip = "2001:db8::1".parse().unwrap();
    assert!(matches!(
        biflow(&r, &p),
        Err(RecordError::MixedFamilies { .. })
    ));
}

fn arb_ip(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>().prop_map(IpAddr::from).boxed()
    }
}

prop_compose! {
    fn arb_flow()(
        v6 in any::<bool>(),
        seed in any::<u64>(),
    )(
        src in arb_ip(v6),
        dst in arb_ip(v6),
        ports in any::<(Option<u16>, Option<u16>)>(),
        proto in prop_oneof![Just("tcp".to_string()), Just("udp".to_string()), Just("icmpv6".to_string()), (0u8..=255).prop_map(|n| n.to_string())],
        steps in proptest::collection::vec((0u64..1000, 0u64..2_000_000, 0u64..1000, 0u64..2_000_000), 1..5),
        site in proptest::option::of("\\PC{0,300}"),
        source in prop_oneof![Just(SiteSource::Sni), Just(SiteSource::Http), Just(SiteSource::Quic), Just(SiteSource::Dns)],
        agency in "\\PC{0,80}",
        unit in "[a-z0-9-]{0,70}",
        flags in any::<(Option<u8>, Option<u8>)>(),
        vlan in any::<Option<u16>>(),
        first in 0u64..4_000_000_000 * SEC,
        seed in Just(seed),
    ) -> Vec<FlowRecord> {
        // Cumulative counters: each step adds; the last record is final.
        let mut acc = (0, 0, 0, 0);
        let n = steps.len();
        steps.into_iter().enumerate().map(|(i, s)| {
            acc = (acc.0 + s.0, acc.1 + s.1, acc.2 + s.2, acc.3 + s.3);
            let kind = if i + 1 == n { RecordKind::Final } else { RecordKind::Interim };
            FlowRecord {
                flow_id: seed,
                kind,
                end_reason: if kind == RecordKind::Final { FlowEnd::Idle } else { FlowEnd::Active },
                proto: proto.clone(),
                src_ip: src,
                src_port: ports.0,
                dst_ip: dst,
                dst_port: ports.1,
                vlan,
                vlan_inner: None,
                packets_up: acc.0,
                bytes_up: acc.1,
                packets_down: acc.2,
                bytes_down: acc.3,
                first_seen: first,
                last_seen: first + (i as u64 + 1) * SEC,
                tcp_flags_up: flags.0,
                tcp_flags_down: flags.1,
                sni: None,
                http_host: None,
                dns_query: None,
                site: site.clone(),
                site_source: site.as_ref().map(|_| source),
                agency: agency.clone(),
                unit: unit.clone(),
                scope: TrafficScope::Internet,
            }
        }).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_flows_encode_to_valid_messages_whose_sums_are_the_totals(
        flows in proptest::collection::vec(arb_flow(), 1..40),
        mtu in EncoderSettings::min_mtu()..9000,
        refresh in 0u32..5,
    ) {
        let max = EncoderSettings::message_limit(mtu);
        let mut s = settings(max);
        s.template_refresh_messages = refresh;
        let mut e = Encoder::new(s).unwrap();
        let mut deltas = Deltas::new(1 << 16);
        let mut out = Vec::new();
        // Interleave the flows' records as a flow table would emit them.
        let longest = flows.iter().map(Vec::len).max().unwrap_or(0);
        let mut want = std::collections::HashMap::new();
        for step in 0..longest {
            for (k, f) in flows.iter().enumerate() {
                let Some(r) = f.get(step) else { continue };
                let mut r = r.clone();
                r.flow_id = k as u64;
                if r.kind == RecordKind::Final {
                    want.insert(r.flow_id, (r.packets_up, r.bytes_up, r.packets_down, r.bytes_down));
                }
                if let Some(p) = deltas.take(&r) {
                    let b = biflow(&r, &p).unwrap();
                    e.add(&b, SEC * (step as u64 + 1), &mut out).unwrap();
                }
            }
        }
        e.flush(SEC * 100, &mut out);
        prop_assert_eq!(deltas.tracked(), 0);
        let mut reader = Reader::new();
        let mut seq = 0u32;
        let mut got = std::collections::HashMap::new();
        for (i, raw) in out.iter().enumerate() {
            prop_assert!(raw.len() <= max);
            let m = reader.read(raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(m.sequence, seq);
            if i == 0 {
                prop_assert_eq!(m.templates.len(), 2);
            }
            seq = seq.wrapping_add(m.records.len() as u32);
            for r in &m.records {
                let b = decoded(r);
                prop_assert!(b.site.len() <= MAX_SITE && b.agency.len() <= MAX_CODE);
                let g = got.entry(b.flow_id).or_insert((0, 0, 0, 0));
                *g = (g.0 + b.packets, g.1 + b.octets, g.2 + b.rev_packets, g.3 + b.rev_octets);
            }
        }
        // Flows with no packet at all export nothing.
        want.retain(|_, v| v.0 + v.2 > 0);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn flows_sharing_an_id_but_not_addresses_are_kept_apart() {
    let mut d = Deltas::new(10);
    let a = flow(1, RecordKind::Interim, (10, 100), (10, 100), 2);
    let mut b = a.clone();
    b.src_port = Some(40001);
    assert!(d.take(&a).is_some());
    assert!(d.take(&b).is_some());
    assert_eq!(d.tracked(), 2);
    let mut b_end = flow(1, RecordKind::Final, (12, 120), (10, 100), 3);
    b_end.src_port = Some(40001);
    let p = d.take(&b_end).unwrap();
    assert_eq!((p.packets_up, p.bytes_up), (2, 20));
}

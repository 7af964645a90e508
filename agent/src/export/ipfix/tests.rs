use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use simpul_core::ipfix_out::elements::{simpul, PEN_REVERSE, SIMPUL_PEN};
use simpul_core::ipfix_out::reader::Reader;
use simpul_proto::{EndReason, RecordKind, SiteSource, TrafficScope};

use super::*;

fn flow(id: u64, kind: RecordKind, up: (u64, u64), down: (u64, u64)) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind,
        end_reason: if kind == RecordKind::Final {
            EndReason::Fin
        } else {
            EndReason::Active
        },
        proto: "tcp".into(),
        src_ip: Ipv4Addr::new(10, 9, 0, 2).into(),
        src_port: Some(40000 + id as u16),
        dst_ip: Ipv4Addr::new(203, 0, 113, 80).into(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: up.0,
        bytes_up: up.1,
        packets_down: down.0,
        bytes_down: down.1,
        first_seen: 1_700_000_000_000_000_000,
        last_seen: 1_700_000_005_000_000_000,
        tcp_flags_up: Some(0x1b),
        tcp_flags_down: Some(0x1a),
        sni: Some("layanan.go.id".into()),
        http_host: None,
        dns_query: None,
        site: Some("layanan.go.id".into()),
        site_source: Some(SiteSource::Sni),
        agency: "dinkes".into(),
        unit: "umum".into(),
        scope: TrafficScope::Internet,
    }
}

fn receiver() -> (UdpSocket, String) {
    let r = UdpSocket::bind("127.0.0.1:0").unwrap();
    r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = r.local_addr().unwrap().to_string();
    (r, addr)
}

#[test]
fn a_long_flow_arrives_as_deltas_that_sum_to_its_totals() {
    let (rx, addr) = receiver();
    let mut sink = IpfixSink::start(&IpfixConfig::to(&addr), 1000).unwrap();
    sink.flow(flow(1, RecordKind::Interim, (10, 1_000), (20, 30_000)));
    sink.flow(flow(2, RecordKind::Final, (3, 180), (0, 0)));
    sink.flow(flow(1, RecordKind::Interim, (15, 1_500), (45, 66_000)));
    sink.flow(flow(1, RecordKind::Final, (16, 1_540), (46, 66_040)));
    sink.counters(CounterSample {
        ts: 0,
        agency: "dinkes".into(),
        unit: "umum".into(),
        scope: TrafficScope::Internet,
        bytes_in: 1,
        bytes_out: 1,
        packets_in: 1,
        packets_out: 1,
    });
    let totals = sink.finish();
    assert_eq!((totals.records, totals.send_errors), (4, 0));
    assert_eq!(totals.messages, 1, "four records fit one message");

    let mut buf = [0u8; 65536];
    let n = rx.recv(&mut buf).unwrap();
    let m = Reader::new().read(&buf[..n]).unwrap();
    assert_eq!(m.templates.len(), 2);
    assert_eq!(m.records.len(), 4);
    let mut sum = (0, 0, 0, 0);
    for r in m
        .records
        .iter()
        .filter(|r| r.uint(SIMPUL_PEN, simpul::FLOW_ID) == Some(1))
    {
        sum.0 += r.uint(0, 2).unwrap();
        sum.1 += r.uint(0, 1).unwrap();
        sum.2 += r.uint(PEN_REVERSE, 2).unwrap();
        sum.3 += r.uint(PEN_REVERSE, 1).unwrap();
        assert_eq!(r.text(SIMPUL_PEN, simpul::SITE_NAME), Some("layanan.go.id"));
        assert_eq!(r.uint(SIMPUL_PEN, simpul::NAMING_METHOD), Some(1));
    }
    assert_eq!(sum, (16, 1_540, 46, 66_040));
}

#[test]
fn a_partial_message_goes_out_on_a_tick_after_a_second() {
    let (rx, addr) = receiver();
    let mut sink = IpfixSink::start(&IpfixConfig::to(&addr), 1000).unwrap();
    sink.flow(flow(1, RecordKind::Final, (1, 60), (1, 60)));
    sink.on_tick(Instant::now());
    rx.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 65536];
    assert!(rx.recv(&mut buf).is_err(), "held for more records");
    sink.on_tick(Instant::now() + FLUSH_AFTER);
    rx.set_nonblocking(false).unwrap();
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(Reader::new().read(&buf[..n]).unwrap().records.len(), 1);
    assert_eq!(sink.stats().messages.load(Relaxed), 1);
}

#[test]
fn an_unreachable_collector_is_counted_not_fatal() {
    // A port nobody listens on: the kernel's ICMP answer makes later sends fail.
    let (rx, addr) = receiver();
    drop(rx);
    let mut sink = IpfixSink::start(&IpfixConfig::to(&addr), 1000).unwrap();
    for i in 0..3 {
        sink.flow(flow(i, RecordKind::Final, (1, 60), (1, 60)));
        sink.on_tick(Instant::now() + FLUSH_AFTER);
    }
    let t = sink.finish();
    assert_eq!(t.records, 3);
    assert!(t.send_errors >= 1, "{t:?}");
}

#[test]
fn config_problems_name_their_key() {
    let mut c = IpfixConfig::to("collector.example");
    c.mtu = 100;
    c.template_refresh_secs = 0;
    let mut out = Vec::new();
    c.check("export.ipfix", &mut out);
    let places: Vec<_> = out.iter().map(|p| p.place.as_str()).collect();
    assert_eq!(
        places,
        [
            "export.ipfix.collector",
            "export.ipfix.template_refresh_secs",
            "export.ipfix.mtu"
        ]
    );
    for ok in ["127.0.0.1:4739", "[2001:db8::1]:2055", "nfcapd.noc:9995"] {
        let mut out = Vec::new();
        IpfixConfig::to(ok).check("x", &mut out);
        assert!(out.is_empty(), "{ok}: {out:?}");
    }
    for bad in ["2001:db8::1:2055", "host:0", ":9995", "[::1]"] {
        assert!(split_host_port(bad).is_err(), "{bad}");
    }
}

#[test]
fn agent_toml_takes_the_section_with_defaults_and_names_bad_keys() {
    use crate::config::{AgentConfig, ConfigError};
    let path = std::path::Path::new("agent.toml");
    let c = AgentConfig::parse(
        "[agent]\nid = \"r1\"\n[export.ipfix]\ncollector = \"10.255.0.20:4739\"\n",
        path,
    )
    .unwrap();
    assert_eq!(
        c.export.ipfix,
        Some(IpfixConfig::to("10.255.0.20:4739")),
        "defaults: refresh 60 s / 100 messages, MTU 1400, domain 1"
    );
    assert!(AgentConfig::parse("[agent]\nid = \"r1\"\n", path)
        .unwrap()
        .export
        .ipfix
        .is_none());
    match AgentConfig::parse(
        "[agent]\nid = \"r1\"\n[export.ipfix]\ncollector = \"nowhere\"\nmtu = 9\n",
        path,
    ) {
        Err(ConfigError::Invalid { problems, .. }) => {
            let places: Vec<_> = problems.iter().map(|p| p.place.as_str()).collect();
            assert_eq!(places, ["export.ipfix.collector", "export.ipfix.mtu"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        AgentConfig::parse(
            "[agent]\nid = \"r1\"\n[export.ipfix]\ncollector = \"h:1\"\nmtus = 1\n",
            path
        ),
        Err(ConfigError::Parse { .. })
    ));
}

//! NetFlow in, in process: an unlisted exporter's v5 datagram (sampled 1 in
//! 10) is attributed per flow by the inventory's subnets, stored under each
//! agency with its counts scaled, and visible through the flows API; a
//! datagram that is not NetFlow is counted as a decode error.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use simpul_collector::server::Collector;
use simpul_proto::inventory::{Agency, Inventory, Unit};

fn v5(recs: &[([u8; 4], [u8; 4], u32, u32)]) -> Vec<u8> {
    let now = u32::try_from(simpul_collector::state::now_ms() / 1000).unwrap();
    let mut b = Vec::new();
    b.extend(5u16.to_be_bytes());
    b.extend((recs.len() as u16).to_be_bytes());
    b.extend(100_000u32.to_be_bytes());
    b.extend(now.to_be_bytes());
    b.extend(0u32.to_be_bytes());
    b.extend(0u32.to_be_bytes());
    b.extend([0, 0]);
    b.extend((0x4000u16 | 10).to_be_bytes());
    for (s, d, p, o) in recs {
        b.extend(s);
        b.extend(d);
        b.extend([0; 8]);
        b.extend(p.to_be_bytes());
        b.extend(o.to_be_bytes());
        b.extend(90_000u32.to_be_bytes());
        b.extend(99_000u32.to_be_bytes());
        b.extend(40000u16.to_be_bytes());
        b.extend(443u16.to_be_bytes());
        b.extend([0, 0x1b, 6, 0]);
        b.extend([0; 8]);
    }
    b
}

fn unit(code: &str, subnet: &str) -> Unit {
    Unit {
        code: code.into(),
        name: code.into(),
        subnets: vec![subnet.into()],
    }
}

/// Dinkes (10.10.1.0/24) and Bappeda (10.20.0.0/16) in `c`'s inventory.
fn two_agencies(c: &Collector) {
    let inv = Inventory {
        agencies: vec![
            Agency {
                code: "dinkes".into(),
                name: "Dinkes".into(),
                units: vec![unit("sekretariat", "10.10.1.0/24")],
            },
            Agency {
                code: "bappeda".into(),
                name: "Bappeda".into(),
                units: vec![unit("umum", "10.20.0.0/16")],
            },
        ],
        ..Inventory::default()
    };
    c.state.inventory.set(&inv).unwrap();
}

/// A collector listening for NetFlow on loopback, with the exporter there
/// listed as `node_id` of Dinkes, and Dinkes and Bappeda in its inventory.
async fn with_listed_exporter(dir: &std::path::Path, node_id: &str) -> Collector {
    let mut cfg = base_config(dir);
    cfg.netflow.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.netflow.exporter = vec![simpul_collector::netflow::ExporterConfig {
        address: "127.0.0.1".parse().unwrap(),
        agency: Some("dinkes".into()),
        node_id: Some(node_id.into()),
    }];
    let c = start(cfg, &[], vec![]).await;
    two_agencies(&c);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_exporter_attributed_by_subnets_with_sampling_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path());
    cfg.netflow.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.netflow.accept_unlisted = true;
    let c = start(cfg, &[], vec![]).await;
    two_agencies(&c);
    let to = c.netflow_addr.expect("the NetFlow receiver is bound");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        &v5(&[
            ([10, 10, 1, 5], [8, 8, 8, 8], 3, 180),
            ([8, 8, 4, 4], [10, 20, 0, 9], 2, 120),
            ([1, 1, 1, 1], [2, 2, 2, 2], 1, 60),
        ]),
        to,
    )
    .unwrap();
    sock.send_to(b"\x00\x07not netflow", to).unwrap();

    let mut flows = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, v) = get(&c, "/api/v1/flows?agency=bappeda&from=0").await;
        assert_eq!(status, 200, "{v}");
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            flows = v;
            break;
        }
    }
    let f = &flows[0];
    assert_eq!(f["node_id"], "nf-127-0-0-1", "{flows}");
    assert_eq!(
        (
            f["unit"].as_str(),
            f["bytes_up"].as_u64(),
            f["packets_up"].as_u64()
        ),
        (Some("umum"), Some(1200), Some(20)),
        "{f}"
    );
    assert_eq!(f["src_ip"], "8.8.4.4");
    // The v5 header's sampling, on the flow where NOC staff look.
    assert_eq!(
        (f["origin"].as_str(), f["sampling_interval"].as_u64()),
        (Some("netflow-v5"), Some(10)),
        "{f}"
    );
    let (_, v) = get(&c, "/api/v1/flows?agency=dinkes&from=0").await;
    let f = &v[0];
    assert_eq!(
        (
            f["unit"].as_str(),
            f["bytes_up"].as_u64(),
            f["scope"].as_str()
        ),
        (Some("sekretariat"), Some(1800), Some("internet")),
        "{v}"
    );
    // Neither side in an agency's subnets: filed under "unknown".
    let (_, v) = get(&c, "/api/v1/flows?from=0").await;
    assert_eq!(v.as_array().map(Vec::len), Some(3), "{v}");

    let metrics = c.state.metrics.render();
    for line in [
        "simpul_netflow_records_total{node=\"nf-127-0-0-1\"} 3",
        "simpul_netflow_datagrams_total{node=\"nf-127-0-0-1\"} 2",
        "simpul_netflow_decode_errors_total{node=\"nf-127-0-0-1\",reason=\"version\"} 1",
        "simpul_netflow_sampling_interval{node=\"nf-127-0-0-1\"} 10",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    // Not listed and not in the inventory: its flows are kept, but a
    // forgeable UDP source is never a node the outage monitor watches.
    assert!(c
        .state
        .outage
        .nodes()
        .iter()
        .all(|n| n.node_id != "nf-127-0-0-1"));
    c.stop().await;
}

/// A listed exporter's sampled NetFlow v9 export (options template with
/// the sampling interval, a sequence gap) through the real UDP receiver:
/// the flows API says where each flow came from and the rate its counts
/// were multiplied by; the exporters API shows protocol, rate, templates,
/// gaps per source id and the last export; another agency's officer does
/// not see the exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_v9_export_shows_its_rate_on_flows_and_on_the_exporter() {
    use simpul_core::netflow::synth::{SynthFlow, V9Exporter};

    let dir = tempfile::tempdir().unwrap();
    let c = with_listed_exporter(dir.path(), "dinkes-mt1").await;
    // Before anything is heard the listed exporter is known, protocol not.
    let (_, v) = get(&c, "/api/v1/netflow/exporters").await;
    assert_eq!(
        (v[0]["node_id"].as_str(), v[0]["protocol"].as_str()),
        (Some("dinkes-mt1"), Some("netflow")),
        "{v}"
    );

    let now = simpul_collector::state::now_ms();
    let mut x = V9Exporter::new(7, 100, now - 3_600_000);
    let flow = |last: u8, bytes: u64| SynthFlow {
        src: [10, 10, 1, last].into(),
        dst: [8, 8, 8, 8].into(),
        src_port: 40000,
        dst_port: 443,
        proto: 6,
        bytes,
        packets: 2,
        start_ms: now - 5_000,
        end_ms: now - 1_000,
    };
    let to = c.netflow_addr.expect("the NetFlow receiver is bound");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&x.datagram(now, &[flow(5, 150), flow(6, 90)], true), to)
        .unwrap();
    // Three datagrams lost on the way.
    x.skip(3);
    sock.send_to(&x.datagram(now, &[flow(7, 60)], false), to)
        .unwrap();

    let mut flows = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, v) = get(&c, "/api/v1/flows?agency=dinkes&from=0").await;
        assert_eq!(status, 200, "{v}");
        if v.as_array().is_some_and(|a| a.len() == 3) {
            flows = v;
            break;
        }
    }
    let rows = flows.as_array().expect("three flows stored");
    let mut bytes: Vec<u64> = rows.iter().filter_map(|f| f["bytes_up"].as_u64()).collect();
    bytes.sort_unstable();
    assert_eq!(bytes, [6_000, 9_000, 15_000], "counts × 100: {flows}");
    for f in rows {
        assert_eq!(
            (
                f["node_id"].as_str(),
                f["origin"].as_str(),
                f["sampling_interval"].as_u64()
            ),
            (Some("dinkes-mt1"), Some("netflow-v9"), Some(100)),
            "{f}"
        );
    }
    // So does the CSV export.
    let (status, csv) = get(&c, "/api/v1/flows?agency=dinkes&from=0&format=csv").await;
    assert_eq!(status, 200, "{csv}");
    let table = parse_csv(csv.as_str().unwrap());
    let col = |n: &str| table[0].iter().position(|c| c == n).unwrap();
    assert_eq!(table.len(), 4, "{csv}");
    for line in &table[1..] {
        assert_eq!(
            (
                line[col("origin")].as_str(),
                line[col("sampling_interval")].as_str()
            ),
            ("netflow-v9", "100"),
            "{line:?}"
        );
    }
    // The search's flows say the same.
    let (status, v) = get(&c, "/api/v1/search?q=10.10.1.5&from=0").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["flows"][0]["origin"].as_str(),
            v["flows"][0]["sampling_interval"].as_u64()
        ),
        (Some("netflow-v9"), Some(100)),
        "{v}"
    );

    let (status, v) = get(&c, "/api/v1/netflow/exporters").await;
    assert_eq!(status, 200, "{v}");
    let e = &v[0];
    assert_eq!(
        (
            e["node_id"].as_str(),
            e["agency"].as_str(),
            e["protocol"].as_str(),
            e["monitored"].as_bool()
        ),
        (
            Some("dinkes-mt1"),
            Some("dinkes"),
            Some("netflow-v9"),
            Some(true)
        ),
        "{e}"
    );
    assert_eq!(e["sampling_intervals"], serde_json::json!([100]), "{e}");
    assert_eq!(
        (
            e["templates"].as_u64(),
            e["lost"].as_u64(),
            e["datagrams"].as_u64(),
            e["records"].as_u64()
        ),
        (Some(2), Some(3), Some(2), Some(3)),
        "{e}"
    );
    assert_eq!(e["last_export_ms"].as_u64(), Some(now / 1000 * 1000), "{e}");
    let d = &e["domains"][0];
    assert_eq!(
        (
            d["protocol"].as_str(),
            d["domain"].as_u64(),
            d["sampling_interval"].as_u64(),
            d["templates"].as_u64(),
            d["options_templates"].as_u64(),
            d["lost"].as_u64()
        ),
        (
            Some("netflow-v9"),
            Some(7),
            Some(100),
            Some(1),
            Some(1),
            Some(3)
        ),
        "{e}"
    );

    // Its agency's officer sees it; another agency's does not.
    let mine = bearer(&token(&c, "agency", Some("dinkes")));
    let (status, v) = raw_request(&c, "GET", "/api/v1/netflow/exporters", None, "", &mine).await;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(1)), "{v}");
    let other = bearer(&token(&c, "agency", Some("bappeda")));
    let (status, v) = raw_request(&c, "GET", "/api/v1/netflow/exporters", None, "", &other).await;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(0)), "{v}");
    let (status, _) = raw_request(
        &c,
        "GET",
        "/api/v1/netflow/exporters?agency=dinkes",
        None,
        "",
        &other,
    )
    .await;
    assert_eq!(status, 403);
    c.stop().await;
}

/// An IPFIX message (RFC 7011) around `sets`: `seq` counts the data
/// records the domain sent before it (options records included).
fn ipfix(now_ms: u64, seq: u32, domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body = sets.concat();
    let mut b = Vec::new();
    b.extend(10u16.to_be_bytes());
    b.extend(u16::try_from(16 + body.len()).unwrap().to_be_bytes());
    b.extend(u32::try_from(now_ms / 1000).unwrap().to_be_bytes());
    b.extend(seq.to_be_bytes());
    b.extend(domain.to_be_bytes());
    b.extend(body);
    b
}

fn ipfix_set(id: u16, content: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(id.to_be_bytes());
    b.extend(u16::try_from(4 + content.len()).unwrap().to_be_bytes());
    b.extend(content);
    b
}

/// A template record (set 2), or with `scope` fields an options template
/// record (set 3): its id, then (information element, length) fields.
fn ipfix_template(id: u16, scope: Option<u16>, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(id.to_be_bytes());
    b.extend(u16::try_from(fields.len()).unwrap().to_be_bytes());
    if let Some(s) = scope {
        b.extend(s.to_be_bytes());
    }
    for (ie, len) in fields {
        b.extend(ie.to_be_bytes());
        b.extend(len.to_be_bytes());
    }
    b
}

/// Addresses, ports, protocol, octet and packet counts of `counter` bytes
/// each, flowStart/EndMilliseconds.
fn ipfix_flow_fields(counter: u16) -> [(u16, u16); 9] {
    [
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (1, counter),
        (2, counter),
        (152, 8),
        (153, 8),
    ]
}

fn ipfix_flow(src: [u8; 4], counter: usize, bytes: u64, end_ms: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(src);
    b.extend([8, 8, 8, 8]);
    b.extend(40000u16.to_be_bytes());
    b.extend(443u16.to_be_bytes());
    b.push(6);
    b.extend(&bytes.to_be_bytes()[8 - counter..]);
    b.extend(&2u64.to_be_bytes()[8 - counter..]);
    b.extend((end_ms - 4_000).to_be_bytes());
    b.extend(end_ms.to_be_bytes());
    b
}

/// A listed exporter speaking IPFIX from two observation domains, each
/// with its own templates under the same template id (one with 8-byte
/// counters, one with 4-byte) and its own sampling (domain 11: one packet
/// in 100 as samplingPacketInterval/Space; domain 12: samplingInterval 10,
/// random), domain 11 losing four records on the way: the flows API says
/// IPFIX and each flow's rate, and the exporters API shows protocol,
/// rates, templates and gaps per domain, as it does for v9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfix_export_shows_its_domains_templates_gaps_and_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let c = with_listed_exporter(dir.path(), "dinkes-rb1").await;
    let (_, v) = get(&c, "/api/v1/netflow/exporters").await;
    assert_eq!(
        (v[0]["node_id"].as_str(), v[0]["protocol"].as_str()),
        (Some("dinkes-rb1"), Some("netflow")),
        "{v}"
    );

    let now = simpul_collector::state::now_ms();
    // Scope: observationDomainId (149).
    let templates = |counter: u16, sampling: &[(u16, u16)]| {
        [
            ipfix_set(2, &ipfix_template(256, None, &ipfix_flow_fields(counter))),
            ipfix_set(3, &ipfix_template(300, Some(1), sampling)),
        ]
    };
    let [t11, o11] = templates(8, &[(149, 4), (305, 4), (306, 4)]);
    let [t12, o12] = templates(4, &[(149, 4), (34, 4), (35, 1)]);
    let mut od11 = 11u32.to_be_bytes().to_vec();
    od11.extend(1u32.to_be_bytes());
    od11.extend(99u32.to_be_bytes());
    let mut od12 = 12u32.to_be_bytes().to_vec();
    od12.extend(10u32.to_be_bytes());
    od12.push(2);
    let to = c.netflow_addr.expect("the NetFlow receiver is bound");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let data11 = [
        ipfix_flow([10, 10, 1, 5], 8, 150, now - 1_000),
        ipfix_flow([10, 10, 1, 6], 8, 90, now - 1_000),
    ]
    .concat();
    let sets = [t11, o11, ipfix_set(300, &od11), ipfix_set(256, &data11)];
    sock.send_to(&ipfix(now, 0, 11, &sets), to).unwrap();
    let data12 = ipfix_flow([10, 10, 1, 8], 4, 700, now - 30_000);
    let sets = [t12, o12, ipfix_set(300, &od12), ipfix_set(256, &data12)];
    sock.send_to(&ipfix(now, 0, 12, &sets), to).unwrap();
    // Domain 11 sent three records (the options record and two flows),
    // then four more that were lost on the way.
    let data = ipfix_flow([10, 10, 1, 7], 8, 60, now - 2_000);
    sock.send_to(&ipfix(now, 3 + 4, 11, &[ipfix_set(256, &data)]), to)
        .unwrap();

    let mut flows = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, v) = get(&c, "/api/v1/flows?agency=dinkes&from=0").await;
        assert_eq!(status, 200, "{v}");
        if v.as_array().is_some_and(|a| a.len() == 4) {
            flows = v;
            break;
        }
    }
    let rows = flows.as_array().expect("four flows stored");
    let mut seen: Vec<(String, u64, &str, u64)> = rows
        .iter()
        .map(|f| {
            assert_eq!(f["node_id"], "dinkes-rb1", "{f}");
            (
                f["src_ip"].as_str().unwrap().to_string(),
                f["bytes_up"].as_u64().unwrap(),
                f["origin"].as_str().unwrap(),
                f["sampling_interval"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("10.10.1.5".to_string(), 15_000, "ipfix", 100),
            ("10.10.1.6".to_string(), 9_000, "ipfix", 100),
            ("10.10.1.7".to_string(), 6_000, "ipfix", 100),
            ("10.10.1.8".to_string(), 7_000, "ipfix", 10),
        ],
        "{flows}"
    );

    let (status, v) = get(&c, "/api/v1/netflow/exporters").await;
    assert_eq!(status, 200, "{v}");
    let e = &v[0];
    assert_eq!(
        (
            e["node_id"].as_str(),
            e["agency"].as_str(),
            e["protocol"].as_str(),
            e["monitored"].as_bool()
        ),
        (
            Some("dinkes-rb1"),
            Some("dinkes"),
            Some("ipfix"),
            Some(true)
        ),
        "{e}"
    );
    assert_eq!(e["sampling_intervals"], serde_json::json!([10, 100]), "{e}");
    assert_eq!(
        (
            e["templates"].as_u64(),
            e["lost"].as_u64(),
            e["datagrams"].as_u64(),
            e["records"].as_u64(),
            e["decode_errors"].as_u64()
        ),
        (Some(4), Some(4), Some(3), Some(4), Some(0)),
        "{e}"
    );
    assert_eq!(e["last_export_ms"].as_u64(), Some(now / 1000 * 1000), "{e}");
    let domain = |d: &serde_json::Value| {
        (
            d["protocol"].as_str().map(str::to_string),
            d["domain"].as_u64(),
            d["sampling_interval"].as_u64(),
            d["sampling_algorithm"].as_u64(),
            d["templates"].as_u64(),
            d["options_templates"].as_u64(),
            d["lost"].as_u64(),
            d["datagrams"].as_u64(),
            d["records"].as_u64(),
        )
    };
    let ipfix = Some("ipfix".to_string());
    let domains: Vec<_> = e["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(domain)
        .collect();
    assert_eq!(
        domains,
        [
            (
                ipfix.clone(),
                Some(11),
                Some(100),
                Some(0),
                Some(1),
                Some(1),
                Some(4),
                Some(2),
                Some(3)
            ),
            (
                ipfix,
                Some(12),
                Some(10),
                Some(2),
                Some(1),
                Some(1),
                Some(0),
                Some(1),
                Some(1)
            ),
        ],
        "{e}"
    );
    c.stop().await;
}

//! NetFlow in, in process: an unlisted exporter's v5 datagram (sampled 1 in
//! 10) is attributed per flow by the inventory's subnets, stored under each
//! agency with its counts scaled, and visible through the flows API; a
//! datagram that is not NetFlow is counted as a decode error.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_exporter_attributed_by_subnets_with_sampling_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path());
    cfg.netflow.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.netflow.accept_unlisted = true;
    let c = start(cfg, &[], vec![]).await;
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

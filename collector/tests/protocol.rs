//! The protocol across versions and agent restarts, against a real
//! collector over TLS: an agent of the previous release (protocol 2)
//! enrolls, says Hello and delivers the batches its spool holds byte for
//! byte (tests/fixtures/spool-v1 was written by that release's agent); a
//! node's new boot closes the flows its killed predecessor left running.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::{SinkExt, StreamExt};
use simpul_proto::wire::{self, v2, AgentMessage, Batch, CollectorMessage, Hello};
use simpul_proto::{EndReason, FlowRecord, RecordKind};
use tokio_tungstenite::tungstenite::Message;

use common::{add_node, connect, Ws};

async fn next_v2(ws: &mut Ws) -> v2::CollectorMessage {
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next())
            .await
            .expect("collector answers")
            .expect("open")
            .expect("no error");
        if let Message::Binary(b) = m {
            assert_eq!(b[0], 2, "a version-2 session stays in version-2 frames");
            return v2::decode_collector(&b).expect("a version-2 collector message");
        }
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/spool-v1")
        .join(name)
}

/// The old spool's files, in delivery order.
fn old_spool() -> Vec<Vec<u8>> {
    let mut names: Vec<_> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "batch"))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_one_protocol_version_older_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_config(dir.path());
    // The fixture's records are dated when they were recorded.
    cfg.storage.flow_retention_days = 36_500;
    let c = common::start(cfg, &["diskominfo"], vec![]).await;
    add_node(&c, "diskominfo", "fixture-router");
    let token = c.enrollment_token("fixture-router").await.unwrap();
    let (addr, ca) = (c.tls_addr.unwrap(), c.tls.ca_cert.clone().unwrap());

    // Enroll in version 2: the answer has no policy key (v2 has none).
    let mut ws = connect(addr, &ca).await;
    let enroll = v2::AgentMessage::Enroll(wire::Enroll {
        node_id: "fixture-router".into(),
        token,
        agent_version: "0.1.0".into(),
        hostname: "old".into(),
    });
    ws.send(Message::binary(v2::encode(&enroll))).await.unwrap();
    let credential = match next_v2(&mut ws).await {
        v2::CollectorMessage::Enrolled {
            credential, agency, ..
        } => {
            assert_eq!(agency, "diskominfo");
            credential
        }
        other => panic!("{other:?}"),
    };
    drop(ws);

    let files = old_spool();
    let boot = u64::from_str_radix(
        &std::fs::read_dir(fixture(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".batch"))
            .unwrap()[..16],
        16,
    )
    .unwrap();
    let mut ws = connect(addr, &ca).await;
    let hello = v2::AgentMessage::Hello(v2::Hello {
        node_id: "fixture-router".into(),
        credential,
        agent_version: "0.1.0".into(),
        hostname: "old".into(),
        boot_epoch: boot,
    });
    ws.send(Message::binary(v2::encode(&hello))).await.unwrap();
    assert!(matches!(
        next_v2(&mut ws).await,
        v2::CollectorMessage::Welcome { .. }
    ));
    // The spool payloads are the frames the old agent sends, verbatim.
    for (i, f) in files.iter().enumerate() {
        ws.send(Message::binary(f[64..].to_vec())).await.unwrap();
        assert_eq!(
            next_v2(&mut ws).await,
            v2::CollectorMessage::Ack {
                boot_epoch: boot,
                seq: i as u64 + 1
            }
        );
    }

    // Everything the old agent recorded is stored: each flow once, at its
    // latest record, and every counter.
    let mut latest: BTreeMap<u64, FlowRecord> = BTreeMap::new();
    for line in std::fs::read_to_string(fixture("flows.jsonl"))
        .unwrap()
        .lines()
    {
        let r: FlowRecord = serde_json::from_str(line).unwrap();
        latest.insert(r.flow_id, r);
    }
    let (_, flows) = common::get(
        &c,
        "/api/v1/flows?from=0&to=4102444800&agency=diskominfo&limit=1000",
    )
    .await;
    let stored: BTreeMap<u64, (u64, String)> = flows
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["flow_id"].as_u64().unwrap(),
                (
                    f["bytes_up"].as_u64().unwrap() + f["bytes_down"].as_u64().unwrap(),
                    f["kind"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let want: BTreeMap<u64, (u64, String)> = latest
        .iter()
        .map(|(id, r)| {
            let kind = serde_json::to_value(r.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string();
            (*id, (r.bytes_total(), kind))
        })
        .collect();
    assert_eq!(stored, want);
    let counters: u64 = std::fs::read_to_string(fixture("counters.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["bytes_in"].as_u64().unwrap() + v["bytes_out"].as_u64().unwrap()
        })
        .sum();
    let (_, usage) = common::get(
        &c,
        "/api/v1/agencies/diskominfo/usage?from=0&to=4102444800&step=1h",
    )
    .await;
    assert_eq!(
        usage["total_bytes_in"].as_u64().unwrap() + usage["total_bytes_out"].as_u64().unwrap(),
        counters
    );
    c.stop().await;
}

fn flow(id: u64, kind: RecordKind, bytes: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind,
        end_reason: if kind == RecordKind::Final {
            EndReason::Fin
        } else {
            EndReason::Active
        },
        proto: "tcp".into(),
        src_ip: "10.10.1.10".parse().unwrap(),
        src_port: Some(40_000 + id as u16),
        dst_ip: "203.0.113.10".parse().unwrap(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: 1,
        bytes_up: bytes,
        packets_down: 1,
        bytes_down: 0,
        first_seen: t0() * 1_000_000_000,
        last_seen: t0() * 1_000_000_000 + bytes * 1_000_000,
        tcp_flags_up: Some(2),
        tcp_flags_down: Some(18),
        sni: None,
        http_host: None,
        dns_query: None,
        site: None,
        site_source: None,
        agency: "dinkes".into(),
        unit: "unknown".into(),
        scope: simpul_proto::TrafficScope::Internet,
    }
}

fn batch(boot: u64, seq: u64, flows: Vec<FlowRecord>) -> Batch {
    Batch {
        boot_epoch: boot,
        seq,
        sealed_ms: 1,
        flows,
        counters: vec![],
        blocked: vec![],
        dropped_records: 0,
        dropped_batches: 0,
    }
}

async fn hello(c: &simpul_collector::server::Collector, credential: &str, boot: u64) -> Ws {
    let mut ws = connect(c.tls_addr.unwrap(), c.tls.ca_cert.as_ref().unwrap()).await;
    ws.send(Message::binary(wire::encode(&AgentMessage::Hello(Hello {
        node_id: "dinkes-01".into(),
        credential: credential.into(),
        agent_version: "t".into(),
        hostname: "t".into(),
        boot_epoch: boot,
        protocols: vec![2, 3],
        features: vec![],
        inventory_version: 0,
        policy_version: 0,
    }))))
    .await
    .unwrap();
    match common::next(&mut ws).await {
        CollectorMessage::Welcome { protocol, .. } => {
            assert_eq!(protocol, 3, "the newest both speak")
        }
        other => panic!("{other:?}"),
    }
    ws
}

/// The flow `id` as the API shows it: (kind, end reason, bytes up).
async fn shown(c: &simpul_collector::server::Collector, id: u64) -> (String, String, u64) {
    let (_, flows) = common::get(c, "/api/v1/flows?from=0&to=4102444800&limit=1000").await;
    let f = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow_id"] == id)
        .unwrap_or_else(|| panic!("flow {id} in {flows}"))
        .clone();
    (
        f["kind"].as_str().unwrap().into(),
        f["end_reason"].as_str().unwrap().into(),
        f["bytes_up"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_boot_closes_what_the_killed_one_left_running() {
    for in_memory in [false, true] {
        new_boot_closes(in_memory).await;
    }
}

async fn new_boot_closes(in_memory: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_config(dir.path());
    cfg.storage.flow_retention_days = 36_500;
    let c = if in_memory {
        common::start_in_memory(cfg, &["dinkes"]).await
    } else {
        common::start(cfg, &["dinkes"], vec![]).await
    };
    let credential = common::enroll_credential(&c, "dinkes", "dinkes-01").await;

    // Boot 100 reports flow 7 running and flow 8 ended, then is killed.
    let mut ws = hello(&c, &credential, 100).await;
    common::send_batch(
        &mut ws,
        batch(
            100,
            1,
            vec![
                flow(7, RecordKind::Interim, 100),
                flow(8, RecordKind::Final, 50),
            ],
        ),
    )
    .await;
    drop(ws);
    assert_eq!(shown(&c, 7).await, ("interim".into(), "active".into(), 100));

    // Boot 200 says Hello: flow 7 is closed for it.
    let mut ws = hello(&c, &credential, 200).await;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while shown(&c, 7).await.0 != "final" {
        assert!(std::time::Instant::now() < end, "flow 7 not closed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        shown(&c, 7).await,
        ("final".into(), "agent_restart".into(), 100)
    );
    assert_eq!(shown(&c, 8).await, ("final".into(), "fin".into(), 50));

    // The old boot's spool still delivers: a later interim record updates
    // the counters and the flow stays closed; its real final record wins.
    common::send_batch(
        &mut ws,
        batch(100, 2, vec![flow(7, RecordKind::Interim, 150)]),
    )
    .await;
    assert_eq!(
        shown(&c, 7).await,
        ("final".into(), "agent_restart".into(), 150)
    );
    common::send_batch(
        &mut ws,
        batch(100, 3, vec![flow(7, RecordKind::Final, 200)]),
    )
    .await;
    assert_eq!(shown(&c, 7).await, ("final".into(), "fin".into(), 200));
    c.stop().await;
}

/// A time base two days back, on a 10 000 s boundary: recent enough that the
/// collector's record bounds (not in the future, not before retention)
/// accept it, round enough to read offsets off.
fn t0() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    (now - 2 * 86_400) / 10_000 * 10_000
}

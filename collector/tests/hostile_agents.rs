//! Hostile and malformed agent messages against a real collector (in-process,
//! real TLS, real SQLite): each connection is closed with a reason, the
//! collector keeps serving, and nothing of a refused batch is stored.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{connect, hello, Ws};
use futures_util::{SinkExt, StreamExt};
use simpul_proto::wire::{self, AgentMessage, Batch, CollectorMessage, Enroll, Hello};
use simpul_proto::{BlockMethod, BlockedAttempt, CounterSample, TrafficScope};
use tokio_tungstenite::tungstenite::Message;

/// Read until the collector's Refused and the close; return the reason.
async fn refused(ws: &mut Ws) -> String {
    let mut reason = None;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next())
            .await
            .expect("collector answers within 15 s");
        let Some(Ok(m)) = next else { break };
        match m {
            Message::Binary(b) => {
                if let Ok(CollectorMessage::Refused { reason: r }) = wire::decode_collector(&b) {
                    reason = Some(r);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    reason.expect("collector sent Refused before closing")
}

fn counters(agency: &str, seq: u64) -> Batch {
    Batch {
        boot_epoch: 1,
        seq,
        sealed_ms: 1,
        flows: vec![],
        counters: vec![CounterSample {
            ts: t0(),
            agency: agency.into(),
            unit: "sekretariat".into(),
            scope: TrafficScope::Internet,
            bytes_in: 1000,
            bytes_out: 10,
            packets_in: 1,
            packets_out: 1,
        }],
        blocked: Vec::new(),
        dropped_records: 0,
        dropped_batches: 0,
    }
}

fn blocked(agency: &str) -> BlockedAttempt {
    BlockedAttempt {
        first_seen: t0() * 1_000_000_000,
        last_seen: (t0() + 10) * 1_000_000_000,
        client: "10.1.1.20".parse().unwrap(),
        agency: agency.into(),
        unit: "sekretariat".into(),
        method: BlockMethod::Sni,
        target: "slot88.example".into(),
        server: Some("198.51.100.7".parse().unwrap()),
        port: Some(443),
        proto: "tcp".into(),
        rule: "slot88.example".into(),
        list: "judi".into(),
        attempts: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_close_the_connection_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes", "bappeda"]).await;
    let tls = c.tls_addr.unwrap();
    let ca = c.tls.ca_cert.clone().unwrap();

    // Garbage bytes, a wrong protocol version, a batch before Hello, a bogus credential.
    let cases: Vec<(Message, &str)> = vec![
        (
            Message::Binary(vec![wire::PROTOCOL_VERSION, 0xff, 0xff, 0xff].into()),
            "malformed",
        ),
        (Message::Binary(vec![99, 1, 2, 3].into()), "version 99"),
        (
            Message::Binary(wire::encode(&AgentMessage::Batch(counters("dinkes", 1))).into()),
            "expected Hello or Enroll",
        ),
        (
            Message::Binary(
                wire::encode(&AgentMessage::Hello(Hello {
                    node_id: "ghost-01".into(),
                    credential: "nope".into(),
                    agent_version: "x".into(),
                    hostname: "x".into(),
                    boot_epoch: 1,
                    protocols: vec![wire::PROTOCOL_VERSION],
                    features: vec![],
                    inventory_version: 0,
                    policy_version: 0,
                }))
                .into(),
            ),
            "unknown node",
        ),
        (
            Message::Binary(
                wire::encode(&AgentMessage::Enroll(Enroll {
                    node_id: "../../etc".into(),
                    token: "x".into(),
                    agent_version: "x".into(),
                    hostname: "x".into(),
                }))
                .into(),
            ),
            "invalid node id",
        ),
        (Message::Text("{\"Hello\": 42}".into()), "malformed"),
    ];
    for (msg, expect) in cases {
        let mut ws = connect(tls, &ca).await;
        ws.send(msg).await.unwrap();
        let reason = refused(&mut ws).await;
        assert!(reason.contains(expect), "expected {expect:?} in {reason:?}");
    }

    // An enrolled node whose records name another agency: they are filed
    // under the node's agency (the inventory's), never under the one they
    // claim, and the batch is not refused (an agent a move at the collector
    // has not reached yet sends exactly this, and a refused batch would be
    // re-sent for ever). Another boot and another hour: apart from the rest.
    common::add_node(&c, "bappeda", "bappeda-01");
    let token = c.enrollment_token("bappeda-01").await.unwrap();
    let mut ws = connect(tls, &ca).await;
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Enroll(Enroll {
            node_id: "bappeda-01".into(),
            token,
            agent_version: "t".into(),
            hostname: "t".into(),
        }))
        .into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Binary(b))) = ws.next().await else {
        panic!("no Enrolled")
    };
    let Ok(CollectorMessage::Enrolled { credential, .. }) = wire::decode_collector(&b) else {
        panic!("not Enrolled")
    };
    let mut mixed = counters("bappeda", 1);
    mixed.boot_epoch = 2;
    mixed
        .counters
        .push(counters("dinkes", 1).counters[0].clone());
    for c in &mut mixed.counters {
        c.ts = t0() + 7_200;
    }
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Batch(mixed)).into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Binary(b))) = ws.next().await else {
        panic!("no Ack")
    };
    assert_eq!(
        wire::decode_collector(&b),
        Ok(CollectorMessage::Ack {
            boot_epoch: 2,
            seq: 1
        })
    );

    // Absurd blocked attempts: the whole batch (its good counters too) is
    // refused with the reason.
    let bad: Vec<(BlockedAttempt, &str)> = vec![
        (
            BlockedAttempt {
                target: "a".repeat(254),
                ..blocked("bappeda")
            },
            "target of 254 bytes (limit 253)",
        ),
        (
            BlockedAttempt {
                target: String::new(),
                ..blocked("bappeda")
            },
            "target is empty",
        ),
        (
            BlockedAttempt {
                rule: "r".repeat(10_000),
                ..blocked("bappeda")
            },
            "rule of 10000 bytes (limit 512)",
        ),
        (
            BlockedAttempt {
                list: "l".repeat(513),
                ..blocked("bappeda")
            },
            "list of 513 bytes",
        ),
        (
            BlockedAttempt {
                unit: "u".repeat(513),
                ..blocked("bappeda")
            },
            "unit of 513 bytes",
        ),
        (
            BlockedAttempt {
                attempts: 0,
                ..blocked("bappeda")
            },
            "attempts is 0",
        ),
        (
            BlockedAttempt {
                first_seen: 2_000_000_000_000_000_000,
                ..blocked("bappeda")
            },
            "is before first_seen",
        ),
    ];
    for (attempt, expect) in bad {
        let mut ws = hello(tls, &ca, "bappeda-01", &credential).await;
        let mut batch = counters("bappeda", 1);
        batch.blocked = vec![blocked("bappeda"), attempt];
        ws.send(Message::Binary(
            wire::encode(&AgentMessage::Batch(batch)).into(),
        ))
        .await
        .unwrap();
        let reason = refused(&mut ws).await;
        assert!(
            reason.contains("batch 1/1: blocked attempt 1") && reason.contains(expect),
            "expected {expect:?} in {reason:?}"
        );
    }

    // The same node, behaving: its batch is acknowledged and only it is stored.
    let mut ws = hello(tls, &ca, "bappeda-01", &credential).await;
    let mut good = counters("bappeda", 1);
    // "unknown": a client outside the agent's subnets, behind this router.
    good.blocked = vec![blocked("bappeda"), blocked("unknown")];
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Batch(good.clone())).into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Binary(b))) = ws.next().await else {
        panic!("no Ack")
    };
    assert_eq!(
        wire::decode_collector(&b),
        Ok(CollectorMessage::Ack {
            boot_epoch: 1,
            seq: 1
        })
    );
    // A replay of the same batch is acknowledged again, not stored twice.
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Batch(good)).into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Binary(b))) = ws.next().await else {
        panic!("no Ack")
    };
    assert_eq!(
        wire::decode_collector(&b),
        Ok(CollectorMessage::Ack {
            boot_epoch: 1,
            seq: 1
        })
    );

    let r = c.state.flows.reader().unwrap();
    let to = t0() + 100;
    let b = r
        .usage(
            "bappeda",
            t0() - 1_000,
            to,
            simpul_collector::store::Step::Second,
        )
        .unwrap();
    assert_eq!((b.total_bytes_in, b.total_bytes_out), (1000, 10));
    let d = r
        .usage(
            "dinkes",
            t0() - 1_000,
            to,
            simpul_collector::store::Step::Second,
        )
        .unwrap();
    assert_eq!((d.total_bytes_in, d.total_bytes_out), (0, 0));
    // The mixed batch: both counters under bappeda, nothing under dinkes.
    let hour = |agency: &str| {
        let u = r
            .usage(
                agency,
                t0() + 7_000,
                t0() + 8_000,
                simpul_collector::store::Step::Second,
            )
            .unwrap();
        (u.total_bytes_in, u.total_bytes_out)
    };
    assert_eq!(hour("bappeda"), (2000, 20));
    assert_eq!(hour("dinkes"), (0, 0));
    // Exactly the good batch's two blocked attempts, both under bappeda.
    let all = simpul_collector::store::BlockedFilter {
        from: t0() - 1_000,
        to,
        ..Default::default()
    };
    let rows = r.blocked(&all).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .all(|b| b.node_id == "bappeda-01" && b.attempt.agency == "bappeda"));
    assert_eq!(r.blocked_summary(&all).unwrap().attempts, 6);
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

//! The collector against hostile clients, each case as found by trying it
//! (issue 9): a large message before Hello, slow and idle connections, a
//! revoked node's live session, two sessions with one credential, node-id
//! enumeration, a forged sequence number, records dated in 2100 or claiming
//! petabits.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{connect, enroll_credential, hello, raw_request, send_batch, token, Ws};
use futures_util::{SinkExt, StreamExt};
use simpul_collector::server::Collector;
use simpul_collector::state::now_ms;
use simpul_proto::wire::{self, AgentMessage, Batch, CollectorMessage, Hello};
use simpul_proto::{CounterSample, TrafficScope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// The Refused reason the collector ends a session with (None: it closed
/// without one).
async fn refused_reason(ws: &mut Ws) -> Option<String> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("the collector ends the session within 15 s");
        match m {
            Some(Ok(Message::Binary(b))) => {
                if let Ok(CollectorMessage::Refused { reason }) = wire::decode_collector(&b) {
                    return Some(reason);
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

fn counters(seq: u64, ts: u64, bytes: u64) -> Batch {
    Batch {
        boot_epoch: 1,
        seq,
        sealed_ms: now_ms(),
        flows: vec![],
        counters: vec![CounterSample {
            ts,
            agency: "dinkes".into(),
            unit: "umum".into(),
            scope: TrafficScope::Internet,
            bytes_in: bytes,
            bytes_out: 1,
            packets_in: 1,
            packets_out: 1,
        }],
        blocked: vec![],
        dropped_records: 0,
        dropped_batches: 0,
    }
}

fn now_s() -> u64 {
    now_ms() / 1000
}

fn usage_bytes(c: &Collector, from: u64, to: u64) -> u64 {
    let r = c.state.flows.reader().unwrap();
    r.usage("dinkes", from, to, simpul_collector::store::Step::Second)
        .unwrap()
        .total_bytes_in
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_before_hello_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    let mut ws = connect(c.tls_addr.unwrap(), c.tls.ca_cert.as_ref().unwrap()).await;
    // 1 MiB where a Hello of a few hundred bytes belongs.
    let _ = ws.send(Message::Binary(vec![3u8; 1 << 20].into())).await;
    let reason = refused_reason(&mut ws).await.unwrap_or_default();
    assert!(
        reason.contains("before authentication"),
        "refused as soon as the budget is spent, not after reading it whole: {reason:?}"
    );
    // The collector serves on.
    let (status, _) = common::get(&c, "/healthz").await;
    assert_eq!(status, 200);
    c.stop().await;
}

/// Connections that send headers slowly (or never) are closed after the
/// header timeout, and one address cannot hold more than its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_surplus_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_config(dir.path());
    cfg.server.max_connections_per_address = 8;
    cfg.server.header_read_timeout_secs = 2;
    cfg.server.idle_timeout_secs = 2;
    let c = common::start(cfg, &["dinkes"], vec![]).await;

    // The plain listener (loopback only): a request that never finishes its
    // headers is closed by the header timeout.
    let mut slow = tokio::net::TcpStream::connect(c.http_addr.unwrap())
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();

    // The network-facing listener: eight silent connections from one
    // address take its places...
    let tls = c.tls_addr.unwrap();
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(tokio::net::TcpStream::connect(tls).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...the ninth from the same address is closed at once.
    let mut ninth = tokio::net::TcpStream::connect(tls).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), ninth.read(&mut buf))
        .await
        .expect("a ninth connection from one address is closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // The loopback listener has places of its own: served meanwhile.
    let (status, _) = common::get(&c, "/healthz").await;
    assert_eq!(status, 200, "the loopback listener is not locked out");

    // The silent ones end with the idle timeout, the slow one with the
    // header timeout.
    let started = Instant::now();
    for s in silent.iter_mut().chain(std::iter::once(&mut slow)) {
        let mut buf = [0u8; 256];
        let r = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf))
            .await
            .expect("a connection that never finishes its headers is closed");
        // hyper may answer 408 before closing; either way it ends.
        if let Ok(n) = r {
            if n > 0 {
                let head = String::from_utf8_lossy(&buf[..n]);
                assert!(head.contains("408"), "{head}");
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    // And the address is served again on the network-facing listener.
    let mut again = common::connect(tls, c.tls.ca_cert.as_ref().unwrap()).await;
    let _ = again.close(None).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_a_second_session_end_live_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    let (tls, ca) = (c.tls_addr.unwrap(), c.tls.ca_cert.clone().unwrap());
    let cred = enroll_credential(&c, "dinkes", "dinkes-01").await;

    // A second session with the same credential replaces the first.
    let mut first = hello(tls, &ca, "dinkes-01", &cred).await;
    let mut second = hello(tls, &ca, "dinkes-01", &cred).await;
    let reason = refused_reason(&mut first).await.unwrap_or_default();
    assert!(reason.contains("replaced by a newer session"), "{reason:?}");
    send_batch(&mut second, counters(1, now_s() - 5, 100)).await;

    // Revoked through the API: the live session ends at once.
    let admin = token(&c, "admin", None);
    let (status, v) = raw_request(
        &c,
        "POST",
        "/api/v1/nodes/dinkes-01/revoke",
        None,
        "",
        &format!("Authorization: Bearer {admin}\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let reason = refused_reason(&mut second).await.unwrap_or_default();
    assert!(reason.contains("revoked"), "{reason:?}");

    // Revoked by the command line (another process, the database only):
    // within the collector's poll.
    let cred2 = enroll_credential(&c, "dinkes", "dinkes-02").await;
    let mut live = hello(tls, &ca, "dinkes-02", &cred2).await;
    c.state.control.revoke_node("dinkes-02").unwrap();
    let reason = refused_reason(&mut live).await.unwrap_or_default();
    assert!(reason.contains("revoked"), "{reason:?}");
    // The audit log has the revocation and the replaced session.
    let (_, audit) = common::get(&c, "/api/v1/audit?action=node.").await;
    let text = audit.to_string();
    assert!(
        text.contains("node.revoke") && text.contains("node.session_replaced"),
        "{text}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_node_and_wrong_credential_read_alike() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    let (tls, ca) = (c.tls_addr.unwrap(), c.tls.ca_cert.clone().unwrap());
    let _ = enroll_credential(&c, "dinkes", "dinkes-01").await;
    let mut answers = Vec::new();
    for node in ["dinkes-01", "ghost-99"] {
        let mut ws = connect(tls, &ca).await;
        ws.send(Message::Binary(
            wire::encode(&AgentMessage::Hello(Hello {
                node_id: node.into(),
                credential: "0".repeat(64),
                agent_version: "t".into(),
                hostname: "t".into(),
                boot_epoch: 1,
                protocols: vec![wire::PROTOCOL_VERSION],
                features: vec![],
                inventory_version: 0,
                policy_version: 0,
            }))
            .into(),
        ))
        .await
        .unwrap();
        answers.push(refused_reason(&mut ws).await.unwrap_or_default());
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], "unknown node or wrong credential");
    c.stop().await;
}

/// A batch with seq = 2^64 − 1 in the agent's boot is refused, and the
/// agent's next genuine batch is stored (it was acknowledged as a
/// "duplicate" and lost before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sequence_number_cannot_silence_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    let (tls, ca) = (c.tls_addr.unwrap(), c.tls.ca_cert.clone().unwrap());
    let cred = enroll_credential(&c, "dinkes", "dinkes-01").await;
    let t = now_s() - 10;
    let mut ws = hello(tls, &ca, "dinkes-01", &cred).await;
    send_batch(&mut ws, counters(1, t, 100)).await;
    // The forger (with the credential) jumps to the end of the sequence.
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Batch(counters(u64::MAX, t + 1, 999_999))).into(),
    ))
    .await
    .unwrap();
    let reason = refused_reason(&mut ws).await.unwrap_or_default();
    assert!(reason.contains("sequence gap"), "{reason:?}");
    // The genuine agent goes on with 2, and 5 after its spool dropped
    // two batches (3 and 4) it reports.
    let mut ws = hello(tls, &ca, "dinkes-01", &cred).await;
    send_batch(&mut ws, counters(2, t + 2, 200)).await;
    let mut b5 = counters(5, t + 3, 500);
    b5.dropped_batches = 2;
    send_batch(&mut ws, b5).await;
    assert_eq!(usage_bytes(&c, t - 1, t + 10), 100 + 200 + 500);
    // A gap the drops do not explain is refused.
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Batch(counters(9, t + 4, 1))).into(),
    ))
    .await
    .unwrap();
    let reason = refused_reason(&mut ws).await.unwrap_or_default();
    assert!(reason.contains("sequence gap"), "{reason:?}");
    assert!(reason.contains("accept-gap --node dinkes-01"), "{reason:?}");
    assert_eq!(usage_bytes(&c, t - 1, t + 10), 800);

    // The operator says the gap is real (a database restored from a
    // backup): the node resumes, once; a later unexplained gap is refused.
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = {:?}\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_simpul-collector"))
        .args(["accept-gap", "--node", "dinkes-01", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (The agent's count of dropped batches in this boot stays 2.)
    let genuine = |seq, ts, bytes| Batch {
        dropped_batches: 2,
        ..counters(seq, ts, bytes)
    };
    let mut ws = hello(tls, &ca, "dinkes-01", &cred).await;
    send_batch(&mut ws, genuine(9, t + 4, 1)).await;
    send_batch(&mut ws, genuine(10, t + 5, 2)).await;
    assert_eq!(usage_bytes(&c, t - 1, t + 10), 803);
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Batch(genuine(20, t + 6, 1))).into(),
    ))
    .await
    .unwrap();
    let reason = refused_reason(&mut ws).await.unwrap_or_default();
    assert!(
        reason.contains("sequence gap"),
        "accepted once only: {reason:?}"
    );
    let (_, audit) = common::get(&c, "/api/v1/audit?action=node.accept_gap").await;
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
    c.stop().await;
}

/// Counters dated 2100 or before retention, or claiming 2^53 bytes in a
/// second, are not stored; the rest of their batch is; the node's page
/// counts what was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_records_are_refused_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    let (tls, ca) = (c.tls_addr.unwrap(), c.tls.ca_cert.clone().unwrap());
    let cred = enroll_credential(&c, "dinkes", "dinkes-01").await;
    let mut ws = hello(tls, &ca, "dinkes-01", &cred).await;
    let t = now_s() - 10;
    let mut b = counters(1, t, 100);
    let bad = |ts: u64, bytes: u64| CounterSample {
        ts,
        bytes_in: bytes,
        ..b.counters[0].clone()
    };
    b.counters.extend([
        bad(4_102_444_800, 7),
        bad(t - 400 * 86_400, 7),
        bad(t + 1, 1 << 53),
    ]);
    send_batch(&mut ws, b).await;
    assert_eq!(usage_bytes(&c, t - 1, t + 10), 100);
    assert_eq!(usage_bytes(&c, 4_102_444_700, 4_102_444_900), 0);
    let (_, nodes) = common::get(&c, "/api/v1/nodes").await;
    assert_eq!(nodes[0]["refused_records"], 3, "{nodes}");
    // An agent's loss is on its page.
    let mut lossy = counters(2, t + 2, 1);
    lossy.dropped_records = 42;
    send_batch(&mut ws, lossy).await;
    let (_, nodes) = common::get(&c, "/api/v1/nodes").await;
    assert_eq!(nodes[0]["dropped_records"], 42, "{nodes}");
    c.stop().await;
}

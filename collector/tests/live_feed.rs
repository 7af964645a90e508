//! The live feed as a page receives it: a client that offers
//! permessage-deflate gets it (frames compressed, inflated as a browser
//! does), one that does not gets plain frames; applying the snapshot and
//! every patch, a page ends with exactly the overview `/api/v1/overview`
//! gives for the same second, rates, nodes and top sites included.

// Tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/live_client.rs"]
mod live_client;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use live_client::{LiveClient, Mirror};
use serde_json::Value;
use simpul_proto::wire::{self, AgentMessage, Batch, Health, Heartbeat};
use simpul_proto::{CounterSample, EndReason, FlowRecord, RecordKind, TrafficScope};
use tokio_tungstenite::tungstenite::Message;

fn now_s() -> u64 {
    simpul_collector::state::now_ms() / 1000
}

fn counter(ts: u64, scope: TrafficScope, bytes_in: u64) -> CounterSample {
    CounterSample {
        ts,
        agency: "dinkes".into(),
        unit: "sekretariat".into(),
        scope,
        bytes_in,
        bytes_out: bytes_in / 3,
        packets_in: 10,
        packets_out: 10,
    }
}

fn flow(id: u64, site: &str, t_s: u64, bytes_down: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind: RecordKind::Final,
        end_reason: EndReason::Fin,
        proto: "tcp".into(),
        src_ip: "10.10.1.5".parse().unwrap(),
        src_port: Some(40_000),
        dst_ip: "203.0.113.10".parse().unwrap(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: 10,
        bytes_up: 1000,
        packets_down: 10,
        bytes_down,
        first_seen: (t_s - 2) * 1_000_000_000,
        last_seen: t_s * 1_000_000_000,
        tcp_flags_up: Some(0x1b),
        tcp_flags_down: Some(0x1b),
        sni: Some(site.into()),
        http_host: None,
        dns_query: None,
        site: Some(site.into()),
        site_source: Some(simpul_proto::SiteSource::Sni),
        agency: "dinkes".into(),
        unit: "sekretariat".into(),
        scope: TrafficScope::Internet,
    }
}

/// The node's traffic for `secs` seconds: a batch and a heartbeat each
/// second, rates that move (so patches carry them, rounded).
async fn traffic(mut ws: common::Ws, secs: u64) {
    for i in 0..secs {
        let t = now_s();
        let health = Health {
            agent_version: "t".into(),
            uptime_secs: i,
            cpu_percent: 1.5 + i as f32,
            packets: 1000 * i,
            ..Health::default()
        };
        ws.send(Message::Binary(
            wire::encode(&AgentMessage::Heartbeat(Heartbeat {
                sent_ms: t * 1000,
                health,
            }))
            .into(),
        ))
        .await
        .unwrap();
        let batch = Batch {
            boot_epoch: 1,
            seq: i + 1,
            sealed_ms: t * 1000,
            flows: vec![flow(
                i + 1,
                ["a.example", "b.example"][i as usize % 2],
                t - 1,
                12_345 * (i + 1),
            )],
            counters: vec![
                counter(t - 1, TrafficScope::Internet, 1_234_567 + 98_765 * i),
                counter(t - 1, TrafficScope::Intranet, 54_321 + 1_111 * i),
            ],
            blocked: vec![],
            dropped_records: 0,
            dropped_batches: 0,
        };
        common::send_batch(&mut ws, batch).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    // The node goes away: its state changes once more (down).
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_applying_the_patches_holds_what_the_api_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_config(dir.path());
    cfg.nodes.down_after_secs = 4;
    let c = common::start(cfg, &["dinkes", "bappeda"], vec![]).await;
    let cred = common::enroll_credential(&c, "dinkes", "dinkes-01").await;
    let ws = common::hello(
        c.tls_addr.unwrap(),
        c.tls.ca_cert.as_ref().unwrap(),
        "dinkes-01",
        &cred,
    )
    .await;
    let admin = common::token(&c, "admin", None);
    let addr = c.http_addr.unwrap();

    // A page without deflate gets plain frames, and the same messages.
    let mut plain = LiveClient::connect(addr, &admin, None).await.unwrap();
    assert!(!plain.deflate);
    let mut plain_mirror = Mirror::default();
    assert_eq!(
        plain_mirror.take(&plain.next_text().await.unwrap()),
        Ok("snapshot")
    );

    let mut page = LiveClient::connect(addr, &admin, Some(live_client::BROWSER_OFFER))
        .await
        .unwrap();
    assert!(page.deflate, "permessage-deflate negotiated");
    let mut m = Mirror::default();
    assert_eq!(m.take(&page.next_text().await.unwrap()), Ok("snapshot"));

    let agent = tokio::spawn(traffic(ws, 8));
    let mut moving = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    let equal = loop {
        assert!(
            Instant::now() < deadline,
            "the page never held the API's overview"
        );
        let text = tokio::time::timeout(Duration::from_secs(10), page.next_text())
            .await
            .expect("a message every second")
            .unwrap();
        m.take(&text).unwrap();
        plain_mirror
            .take(&plain.next_text().await.unwrap())
            .unwrap();
        let dinkes = m.overview["agencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == "dinkes")
            .cloned()
            .unwrap();
        if dinkes["in_bps"].as_u64().unwrap_or(0) > 0 {
            moving += 1;
        }
        if !agent.is_finished() {
            continue;
        }
        let (status, api) = common::get(&c, "/api/v1/overview").await;
        assert_eq!(status, 200);
        if api["ts"] == m.overview["ts"] && api == m.overview {
            break api;
        }
    };
    assert!(moving >= 3, "rates reached the page ({moving} seconds)");
    assert!(m.deltas >= 8, "{} patches", m.deltas);
    let node = &equal["nodes"].as_array().unwrap()[0];
    assert_eq!(node["node_id"], "dinkes-01");
    assert_ne!(node["status"], "up", "the node went away: {node}");
    // Counters held back (they go out once a minute) arrived with the change.
    assert!(
        node["health"]["packets"].as_u64().unwrap() >= 5000,
        "{node}"
    );
    let sites: Vec<&Value> = equal["top_sites"].as_array().unwrap().iter().collect();
    assert_eq!(sites.len(), 2, "{sites:?}");
    // Compressed, the wire carried less than the messages.
    assert!(
        page.wire_bytes < page.text_bytes / 2,
        "{} vs {}",
        page.wire_bytes,
        page.text_bytes
    );
    // The plain page followed the same states.
    assert_eq!(
        plain_mirror.seq.map(|s| s >= m.seq.unwrap() - 2),
        Some(true)
    );
    c.stop().await;
}

//! `/api/v1/blocked` and `/api/v1/blocked/summary` against an in-process
//! collector: agents send blocked attempts over the real TLS WebSocket, the
//! API answers over real HTTP.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{enroll, get, send_batch};
use simpul_proto::wire::Batch;
use simpul_proto::{BlockMethod, BlockedAttempt};

const S: u64 = 1_000_000_000;

fn attempt(
    agency: &str,
    client: &str,
    target: &str,
    method: BlockMethod,
    last_seen_s: u64,
    attempts: u32,
) -> BlockedAttempt {
    BlockedAttempt {
        first_seen: (last_seen_s - 10) * S,
        last_seen: last_seen_s * S + 250_000_000,
        client: client.parse().unwrap(),
        agency: agency.into(),
        unit: "sekretariat".into(),
        method,
        target: target.into(),
        server: Some("198.51.100.7".parse().unwrap()),
        port: Some(443),
        proto: "tcp".into(),
        rule: target.into(),
        list: "judi".into(),
        attempts,
    }
}

fn batch(seq: u64, blocked: Vec<BlockedAttempt>) -> Batch {
    Batch {
        boot_epoch: 1,
        seq,
        sealed_ms: 1,
        flows: vec![],
        counters: vec![],
        blocked,
        dropped_records: 0,
        dropped_batches: 0,
    }
}

fn targets(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_api_lists_filters_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes", "bappeda"]).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let mut dns = attempt(
        "dinkes",
        "10.1.1.20",
        "slot88.example",
        BlockMethod::Dns,
        now - 50,
        2,
    );
    dns.server = None;
    dns.port = None;
    dns.proto = "udp".into();
    let mut dinkes = enroll(&c, "dinkes", "dinkes-01").await;
    send_batch(
        &mut dinkes,
        batch(
            1,
            vec![
                attempt(
                    "dinkes",
                    "10.1.1.20",
                    "slot88.example",
                    BlockMethod::Sni,
                    now - 100,
                    3,
                ),
                dns,
                attempt(
                    "dinkes",
                    "10.1.1.21",
                    "dns.google",
                    BlockMethod::Doh,
                    now - 30,
                    1,
                ),
                attempt(
                    "dinkes",
                    "10.1.1.22",
                    "old.example",
                    BlockMethod::Http,
                    now - 7000,
                    9,
                ),
            ],
        ),
    )
    .await;
    let mut bappeda = enroll(&c, "bappeda", "bappeda-01").await;
    let quic = batch(
        1,
        vec![attempt(
            "bappeda",
            "10.2.1.5",
            "slot88.example",
            BlockMethod::Quic,
            now - 20,
            4,
        )],
    );
    send_batch(&mut bappeda, quic.clone()).await;
    // A re-sent batch is acknowledged and adds nothing.
    send_batch(&mut bappeda, quic).await;

    // Default: the last hour, newest first, every field of the record.
    let (status, all) = get(&c, "/api/v1/blocked").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        targets(&all),
        [
            "slot88.example",
            "dns.google",
            "slot88.example",
            "slot88.example"
        ]
    );
    let first = &all[0];
    assert_eq!(first["node_id"], "bappeda-01");
    assert_eq!(first["agency"], "bappeda");
    assert_eq!(first["method"], "quic");
    assert_eq!(first["client"], "10.2.1.5");
    assert_eq!(first["attempts"], 4);
    assert_eq!(
        first["last_seen"],
        simpul_proto::time_format::rfc3339((now - 20) * S + 250_000_000)
    );
    assert_eq!(all[2]["method"], "dns");
    assert_eq!(all[2]["server"], serde_json::Value::Null);
    assert_eq!(all[2]["port"], serde_json::Value::Null);
    let keys: BTreeSet<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // The OpenAPI document describes exactly these fields.
    let (_, doc) = get(&c, "/api/v1/openapi.json").await;
    let documented: BTreeSet<&str> = doc["components"]["schemas"]["Blocked"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, documented);

    // Filters.
    for (query, want) in [
        (
            "agency=dinkes",
            vec!["dns.google", "slot88.example", "slot88.example"],
        ),
        ("node=bappeda-01", vec!["slot88.example"]),
        ("method=doh", vec!["dns.google"]),
        ("method=quic_protocol", vec![]),
        ("limit=1", vec!["slot88.example"]),
        ("agency=bappeda&node=dinkes-01", vec![]),
        ("agency=disdik", vec![]),
    ] {
        let (status, v) = get(&c, &format!("/api/v1/blocked?{query}")).await;
        assert_eq!(status, 200, "{query}: {v}");
        assert_eq!(targets(&v), want, "{query}");
    }
    let (_, week) = get(&c, &format!("/api/v1/blocked?from={}", now - 7 * 86_400)).await;
    assert_eq!(targets(&week).len(), 5);
    assert_eq!(targets(&week)[4], "old.example");
    // RFC 3339 or Unix seconds; [from, to) by last attempt.
    let rfc = |s: u64| simpul_proto::time_format::rfc3339(s * S);
    let (_, range) = get(
        &c,
        &format!("/api/v1/blocked?from={}&to={}", rfc(now - 60), now - 25),
    )
    .await;
    assert_eq!(targets(&range), ["dns.google", "slot88.example"]);

    // Summary: the last 15 minutes by default.
    let (status, s) = get(&c, "/api/v1/blocked/summary").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["attempts"].as_u64(), s["records"].as_u64()),
        (Some(10), Some(4))
    );
    assert_eq!(
        s["agencies"],
        serde_json::json!([
            {"agency": "dinkes", "attempts": 6, "clients": 2},
            {"agency": "bappeda", "attempts": 4, "clients": 1}
        ])
    );
    assert_eq!(s["targets"][0]["target"], "slot88.example");
    assert_eq!(s["targets"][0]["attempts"], 9);
    assert_eq!(s["targets"][0]["clients"], 2);
    assert_eq!(s["targets"][0]["method"], "quic", "the newest record's");
    assert_eq!(s["clients"][0]["client"], "10.1.1.20");
    assert_eq!(s["clients"][0]["attempts"], 5);
    assert_eq!(s["clients"][0]["targets"], 1);
    assert_eq!(s["clients"][0]["unit"], "sekretariat");
    let (_, d) = get(
        &c,
        &format!(
            "/api/v1/blocked/summary?agency=dinkes&from={}&limit=1",
            now - 86_400
        ),
    )
    .await;
    assert_eq!(d["attempts"], 15);
    assert_eq!(d["agencies"].as_array().unwrap().len(), 1);
    assert_eq!(d["targets"].as_array().unwrap().len(), 1);
    assert_eq!(d["targets"][0]["target"], "old.example");
    assert_eq!(d["clients"][0]["client"], "10.1.1.22");

    // Bad parameters: 400 with {"error": "…"} naming the problem.
    for path in ["/api/v1/blocked", "/api/v1/blocked/summary"] {
        for (query, expect) in [
            ("method=bogus", "method: \"bogus\" is not one of dns, sni"),
            ("agency=../etc", "agency: \"../etc\" is not a valid code"),
            ("node=a%20b", "node: \"a b\" is not a valid code"),
            ("limit=0", "limit must be at least 1"),
            ("limit=1001", "limit must be at most 1000"),
            ("limit=lots", "limit"),
            ("from=10&to=10", "from must be before to"),
            (
                "from=yesterday",
                "from: \"yesterday\" is not an RFC 3339 time",
            ),
            ("host=10.0.0.1", "unknown field `host`"),
        ] {
            let (status, v) = get(&c, &format!("{path}?{query}")).await;
            assert_eq!(status, 400, "{path}?{query}: {v}");
            let error = v["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}?{query}: {v}"));
            assert!(error.contains(expect), "{path}?{query}: {error:?}");
        }
    }

    // Every documented GET endpoint answers (the POSTs: outage_api.rs; the
    // WebSockets need an upgrade).
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, ops)| ops.get("get").is_some())
        .filter(|(p, _)| *p != "/api/v1/agent" && *p != "/api/v1/live")
        .map(|(p, _)| p.clone())
        .collect();
    for p in ["/api/v1/blocked", "/api/v1/blocked/summary"] {
        assert!(paths.iter().any(|x| x == p), "openapi lacks {p}");
    }
    // A policy version, for the routes that read one.
    let rates = serde_json::json!({"rate_bps": 10_000_000, "ceil_bps": 20_000_000});
    c.state
        .policies
        .put_default(
            0,
            &serde_json::json!({"allocation": {"download": rates, "upload": rates}}),
            &c.state.inventory,
            "test",
            "seed",
        )
        .map_err(|e| e.to_string())
        .unwrap();
    // A named list, for the routes that read one.
    common::seed_list(&c);
    for p in &paths {
        let path = p
            .replace("{code}", "dinkes")
            .replace("{version}", "1")
            .replace("{list}", "judi");
        let (status, v) = get(&c, &path).await;
        assert_eq!(status, 200, "{p}: {v}");
    }
    let (_, metrics) = get(&c, "/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("simpul_ingest_blocked_records_total"),
        "blocked records are counted"
    );
    c.stop().await;
}

//! The usage API's peaks and p95 against an in-process collector: an agent
//! sends per-second counters over the real TLS WebSocket into SQLite, the
//! API answers over real HTTP.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{bearer, enroll, get, raw_request, send_batch, token};
use simpul_collector::store::PolicyVersion;
use simpul_proto::wire::Batch;
use simpul_proto::{CounterSample, TrafficScope};

fn counter(ts: u64, unit: &str, bytes_in: u64) -> CounterSample {
    CounterSample {
        ts,
        agency: "dinkes".into(),
        unit: unit.into(),
        scope: TrafficScope::Internet,
        bytes_in,
        bytes_out: bytes_in / 10,
        packets_in: bytes_in / 1000 + 1,
        packets_out: bytes_in / 10_000 + 1,
    }
}

fn batch(seq: u64, counters: Vec<CounterSample>) -> Batch {
    Batch {
        boot_epoch: 1,
        seq,
        sealed_ms: 1,
        flows: vec![],
        counters,
        blocked: vec![],
        dropped_records: 0,
        dropped_batches: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_within_a_minute_shows_as_its_peak_beside_a_lower_average() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes", "bappeda"]).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A whole minute that is over.
    let m = now / 60 * 60 - 120;
    // dinkes's 2 Mbit/s down, 1 Mbit/s up allocation, in force since ten
    // minutes before it.
    let policy = r#"{"version": 1, "agency": "dinkes", "allocation": {
        "download": {"rate_bps": 2000000, "ceil_bps": 4000000},
        "upload": {"rate_bps": 1000000, "ceil_bps": 2000000}}}"#;
    c.state
        .control
        .save_policy(&PolicyVersion {
            agency: "dinkes".into(),
            version: 1,
            policy_json: policy.into(),
            signature: vec![0; 64],
            key_id: "test".into(),
            created_ms: (m - 600) * 1000,
            created_by: "test".into(),
            comment: String::new(),
            document: None,
            default_version: 0,
        })
        .unwrap();

    // 400 kbit/s all minute, and 2.8 Mbit/s for 4 seconds: the burst's
    // seconds arrive in two batches (two units), as from a busy agent.
    let mut ws = enroll(&c, "dinkes", "dinkes-01").await;
    let steady: Vec<CounterSample> = (0..60)
        .map(|i| counter(m + i, "sekretariat", 50_000))
        .collect();
    send_batch(&mut ws, batch(1, steady)).await;
    let burst: Vec<CounterSample> = (20..24).map(|i| counter(m + i, "lab", 300_000)).collect();
    send_batch(&mut ws, batch(2, burst)).await;

    let (s, v) = get(
        &c,
        &format!(
            "/api/v1/agencies/dinkes/usage?from={m}&to={}&step=1m",
            m + 60
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let p = &v["points"][0];
    // The average hides the burst; the peak shows it, and so does the p95
    // (rank 57 of 60 seconds: 4 seconds are more than 5 % of the minute),
    // within the sketch's 1 %.
    let avg = p["in_bps"].as_f64().unwrap();
    assert_eq!(avg, (56.0 * 50_000.0 + 4.0 * 350_000.0) * 8.0 / 60.0);
    assert!(avg < 600_000.0, "{v}");
    assert_eq!(p["peak_in_bps"], 2_800_000, "{v}");
    assert_eq!(p["peak_out_bps"], 280_000, "{v}");
    let p95 = p["p95_in_bps"].as_f64().unwrap();
    assert!((p95 - 2_800_000.0).abs() <= 28_000.0, "{v}");
    assert_eq!(v["peak_in_bps"], 2_800_000);
    assert_eq!(v["steps_without_peaks"], 0);
    // Above 95 % of 2 Mbit/s: the 4 burst seconds; upload never reached
    // 95 % of 1 Mbit/s.
    let above = &v["hours_above_95"];
    assert_eq!(above["download"].as_f64().unwrap() * 3600.0, 4.0, "{v}");
    assert_eq!(above["upload"].as_f64().unwrap(), 0.0, "{v}");

    // The hour keeps the same peak; per second, each second is exact.
    let (s, h) = get(
        &c,
        &format!(
            "/api/v1/agencies/dinkes/usage?from={m}&to={}&step=1h",
            m + 60
        ),
    )
    .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["points"][0]["peak_in_bps"], 2_800_000, "{h}");
    assert!(h["points"][0]["in_bps"].as_f64().unwrap() < 20_000.0);
    let (s, sec) = get(
        &c,
        &format!(
            "/api/v1/agencies/dinkes/usage?from={m}&to={}&step=1s",
            m + 60
        ),
    )
    .await;
    assert_eq!(s, 200, "{sec}");
    assert_eq!(sec["points"][20]["peak_in_bps"], 2_800_000, "{sec}");
    assert_eq!(sec["p95_in_bps"], 2_800_000, "{sec}");

    // Before any allocation there is nothing to be above.
    let (_, b) = get(&c, "/api/v1/agencies/bappeda/usage?step=1m").await;
    assert_eq!(b["hours_above_95"], serde_json::Value::Null, "{b}");
    // Another agency's officer sees none of it.
    let t = token(&c, "agency", Some("bappeda"));
    let (s, _) = raw_request(
        &c,
        "GET",
        &format!("/api/v1/agencies/dinkes/usage?from={m}&step=1m"),
        None,
        "",
        &bearer(&t),
    )
    .await;
    assert_eq!(s, 403);
}

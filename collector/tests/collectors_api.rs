//! `GET /api/v1/collectors` over real HTTP: every role (the wall's viewer
//! too: a kiosk is where the NOC sees that nobody alerts) sees which
//! collector answers and who leads outage detection; strangers must log in. One
//! collector on SQLite leads without a lease; on a shared PostgreSQL the
//! lease says who leads, and once its holder dies the answer says nobody
//! does (the lease shown expired) until another collector takes it.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use simpul_collector::config::CollectorConfig;
use simpul_collector::server::Collector;
use simpul_collector::store::postgres::server::TempPostgres;

const PATH: &str = "/api/v1/collectors";
const LEASE_SECS: u64 = 2;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn as_role(c: &Collector, role: &str, agency: Option<&str>) -> (u16, Value) {
    let token = common::token(c, role, agency);
    common::raw_request(c, "GET", PATH, None, "", &common::bearer(&token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_collector_on_sqlite_leads_and_every_role_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;

    let (status, body) = common::get(&c, PATH).await;
    assert_eq!(status, 200, "{body}");
    let me = body["this_collector"].as_str().unwrap();
    assert!(!me.is_empty());
    assert_eq!(body["control"], "sqlite");
    assert_eq!(body["outage_leader"]["collector_id"], me, "{body}");
    assert_eq!(body["outage_leader"]["this_collector"], true);
    assert_eq!(body["outage_leader"]["until_ms"], Value::Null);
    assert_eq!(body["leases"], serde_json::json!([]));

    for (role, agency) in [
        ("operator", None),
        ("agency", Some("dinkes")),
        ("viewer", None),
    ] {
        let (status, body) = as_role(&c, role, agency).await;
        assert_eq!(status, 200, "{role}: {body}");
        assert_eq!(body["outage_leader"]["collector_id"], me, "{role}: {body}");
    }
    let (status, _) = common::raw_request(&c, "GET", PATH, None, "", "").await;
    assert_eq!(status, 401);
    let (status, body) = common::get(&c, &format!("{PATH}?limit=5")).await;
    assert_eq!(status, 400, "{body}");
    c.stop().await;
}

fn config(dir: &Path, url: &str, id: &str) -> CollectorConfig {
    common::postgres_config(dir, url, id, LEASE_SECS, "")
}

/// Ask `c` until `ok` holds for its answer (leases move on their own clock).
async fn answer_when(c: &Collector, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = common::get(c, PATH).await;
        assert_eq!(status, 200, "{body}");
        if ok(&body) {
            return body;
        }
        assert!(Instant::now() < end, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outage_lease_says_who_leads_and_when_nobody_does() {
    let (_pg, url) = tokio::task::spawn_blocking(|| {
        let pg = TempPostgres::start()
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL (scripts/setup.sh): {e}"));
        let url = pg.database("collectors_api").unwrap();
        (pg, url)
    })
    .await
    .unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = common::start(config(dir_a.path(), &url, "noc-a"), &["dinkes"], vec![]).await;

    let body = answer_when(&a, "noc-a leads", |b| {
        b["outage_leader"]["collector_id"] == "noc-a"
    })
    .await;
    assert_eq!(body["this_collector"], "noc-a");
    assert_eq!(body["control"], "postgres");
    let leader = &body["outage_leader"];
    assert_eq!(leader["this_collector"], true);
    assert_eq!(leader["instance"].as_str().unwrap().len(), 16, "{body}");
    assert!(leader["until_ms"].as_u64().unwrap() > now_ms() - 1000);
    let lease = &body["leases"][0];
    assert_eq!(lease["purpose"], "outage-detection");
    assert_eq!(lease["live"], true);
    assert_eq!(
        lease["holder"],
        format!("noc-a#{}", leader["instance"].as_str().unwrap())
    );

    // Dead without a word: once its lease runs out, nobody leads, and the
    // lease is shown expired rather than left out.
    a.abandon_lease();
    let body = answer_when(&a, "nobody leads", |b| b["outage_leader"].is_null()).await;
    assert_eq!(body["leases"][0]["live"], false, "{body}");
    assert_eq!(body["leases"][0]["collector_id"], "noc-a");

    // Another collector takes it over; the first one says so.
    let b = common::start(config(dir_b.path(), &url, "noc-b"), &["dinkes"], vec![]).await;
    let body = answer_when(&a, "noc-b leads", |b| {
        b["outage_leader"]["collector_id"] == "noc-b"
    })
    .await;
    assert_eq!(body["this_collector"], "noc-a");
    assert_eq!(body["outage_leader"]["this_collector"], false);
    assert_eq!(body["leases"][0]["live"], true);
    let body = answer_when(&b, "noc-b says it leads", |b| {
        b["outage_leader"]["this_collector"] == true
    })
    .await;
    assert_eq!(body["this_collector"], "noc-b");
    b.stop().await;
    a.stop().await;
}

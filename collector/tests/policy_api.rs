//! The policy API against a real collector: the province-wide default and
//! each agency's document merged over it, versions with optimistic saves,
//! every problem with its place, preview with a node's plan, rollback, the
//! audit chain, roles — and a connected agent gets each new version signed.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{bearer, raw_request, request, token};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use simpul_collector::server::Collector;
use simpul_proto::inventory::{Agency, Capacity, Inventory, Node, Unit};
use simpul_proto::wire::{self, AgentMessage, CollectorMessage, Hello};
use tokio_tungstenite::tungstenite::Message;

async fn put(c: &Collector, path: &str, body: Value) -> (u16, Value) {
    request(c, "PUT", path, Some("application/json"), &body.to_string()).await
}

async fn post(c: &Collector, path: &str, body: Value) -> (u16, Value) {
    request(c, "POST", path, Some("application/json"), &body.to_string()).await
}

fn inventory() -> Inventory {
    let unit = |code: &str, net: &str| Unit {
        code: code.into(),
        name: code.into(),
        subnets: vec![net.into()],
    };
    let uplink = Some(Capacity {
        down_bps: 200_000_000,
        up_bps: 100_000_000,
    });
    Inventory {
        intranet: vec!["10.0.0.0/8".into()],
        agencies: vec![
            Agency {
                code: "dinkes".into(),
                name: "Dinas Kesehatan".into(),
                units: vec![
                    unit("sekretariat", "10.10.1.0/24"),
                    unit("lab", "10.10.2.0/24"),
                ],
            },
            Agency {
                code: "bappeda".into(),
                name: "Bappeda".into(),
                units: vec![unit("umum", "10.20.1.0/24")],
            },
        ],
        nodes: vec![
            Node {
                id: "dinkes-01".into(),
                agency: "dinkes".into(),
                uplink,
                ..Node::default()
            },
            Node {
                id: "bappeda-01".into(),
                agency: "bappeda".into(),
                uplink,
                ..Node::default()
            },
        ],
        ..Inventory::default()
    }
}

fn rates(rate: u64, ceil: u64) -> Value {
    json!({"rate_bps": rate, "ceil_bps": ceil})
}

fn province_default() -> Value {
    json!({
        "allocation": {"download": rates(50_000_000, 100_000_000), "upload": rates(20_000_000, 40_000_000)},
        "blocking": {"domains": ["judi.example"], "block_dot": true}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_noc_steers_policies_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &[]).await;
    c.state.inventory.set(&inventory()).unwrap();

    // Before any save: version 0, and no policy without a default.
    let (s, v) = request(&c, "GET", "/api/v1/agencies/dinkes/policy", None, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 0);
    assert_eq!(v["effective"], Value::Null);
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("allocation"),
        "{v}"
    );

    // A connected agent of dinkes that takes policies.
    let cred = common::enroll_credential(&c, "dinkes", "dinkes-01").await;
    let mut agent = policy_agent(&c, "dinkes-01", &cred).await;

    // The default: every agency gets its first version.
    let (s, v) = put(
        &c,
        "/api/v1/policy/default",
        json!({"base_version": 0, "policy": province_default(), "comment": "SE 12/2026"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 1);
    let made: Vec<String> = v["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}@{}", a["agency"].as_str().unwrap(), a["version"]))
        .collect();
    assert_eq!(made, ["dinkes@1", "bappeda@1"]);
    let pushed = next_policy(&mut agent).await;
    assert_eq!(
        (pushed.version, pushed.allocation.download.rate_bps),
        (1, 50_000_000)
    );

    // dinkes overrides its download and adds units; the rest follows the default.
    let own = json!({"allocation": {"download": rates(80_000_000, 150_000_000),
        "units": {"lab": {"download": rates(30_000_000, 60_000_000), "upload": rates(5_000_000, 10_000_000)}}}});
    let (s, v) = put(
        &c,
        "/api/v1/agencies/dinkes/policy",
        json!({"base_version": 1, "policy": own, "comment": "surat 045/DINKES/2026", "version": 1}),
    )
    .await;
    assert_eq!(s, 400, "unknown field refused: {v}");
    let (s, v) = put(
        &c,
        "/api/v1/agencies/dinkes/policy",
        json!({"base_version": 1, "policy": own, "comment": "surat 045/DINKES/2026"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["changed"], true);
    assert_eq!(
        v["effective"]["allocation"]["download"]["rate_bps"],
        80_000_000
    );
    assert_eq!(
        v["effective"]["allocation"]["upload"]["rate_bps"],
        20_000_000
    );
    assert_eq!(
        v["effective"]["blocking"]["domains"],
        json!(["judi.example"])
    );
    assert_eq!(
        v["policy"]["allocation"]["download"]["rate_bps"],
        80_000_000
    );
    assert!(
        v["policy"]["blocking"].is_null(),
        "the document holds only the overrides: {v}"
    );
    let pushed = next_policy(&mut agent).await;
    assert_eq!(
        (pushed.version, pushed.allocation.download.rate_bps),
        (2, 80_000_000)
    );
    // The same content again is no new version.
    let (s, v) = put(
        &c,
        "/api/v1/agencies/dinkes/policy",
        json!({"base_version": 2, "policy": own, "comment": "lagi"}),
    )
    .await;
    assert_eq!(
        (s, v["version"].clone(), v["changed"].clone()),
        (200, json!(2), json!(false))
    );

    // A save from a stale page: 409 naming the version in force.
    let (s, v) = put(
        &c,
        "/api/v1/agencies/dinkes/policy",
        json!({"base_version": 1, "policy": {}, "comment": "stale"}),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["current_version"], 2);

    // Every problem, with its place; nothing saved.
    let bad = json!({"allocation": {"download": rates(80_000_000, 150_000_000), "upload": rates(20_000_000, 500_000_000),
        "units": {"lab": {"download": rates(90_000_000, 160_000_000), "upload": rates(1, 1)},
                  "gudang": {"download": rates(1_000, 1_000), "upload": rates(1_000, 1_000)}}},
        "blocking": {"domains": ["not a domain"]}});
    let (s, v) = put(
        &c,
        "/api/v1/agencies/dinkes/policy",
        json!({"base_version": 2, "policy": bad, "comment": "salah"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let places: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["place"].as_str().unwrap())
        .collect();
    for want in [
        "allocation.upload",
        "allocation.units.lab",
        "allocation.units.gudang",
        "blocking.domains",
    ] {
        assert!(
            places.iter().any(|p| p.starts_with(want)),
            "{want} in {places:?}"
        );
    }
    let (s, v) = put(
        &c,
        "/api/v1/agencies/dinkes/policy",
        json!({"base_version": 2, "policy": {"alokasi": {}}, "comment": "typo"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("alokasi"), "{v}");
    let (s, v) = put(
        &c,
        "/api/v1/agencies/dinkes/policy",
        json!({"base_version": 2, "policy": {}, "comment": ""}),
    )
    .await;
    assert_eq!(s, 400, "a comment is required: {v}");
    let (s, _) = put(
        &c,
        "/api/v1/agencies/nowhere/policy",
        json!({"base_version": 0, "policy": {}, "comment": "tidak ada"}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = put(&c, "/api/v1/policy/default", json!({"base_version": 1, "policy": {"allocation": {"units": {}}, "suspension": {"agency": true}}, "comment": "x y z"})).await;
    assert_eq!(s, 422, "{v}");

    // Preview: problems, changes against the version in force, the node's plan.
    let (s, v) = post(&c, "/api/v1/agencies/dinkes/policy/preview", json!({"policy": {"allocation": {"download": rates(60_000_000, 150_000_000)}}, "node": "dinkes-01"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["problems"], json!([]));
    let changes: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        changes.contains(&"allocation.download.rate_bps"),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"allocation.units"),
        "the units go: {changes:?}"
    );
    assert!(v["plan"]["tc"].as_str().unwrap().contains("htb"), "{v}");
    assert!(
        v["plan"]["nft"].as_str().unwrap().contains("judi.example")
            || v["plan"]["nft"].as_str().unwrap().contains("table"),
        "{v}"
    );
    let (s, _) = post(
        &c,
        "/api/v1/agencies/dinkes/policy/preview",
        json!({"policy": {}, "node": "bappeda-01"}),
    )
    .await;
    assert_eq!(s, 404, "a node of another agency");
    let (_, v) = request(&c, "GET", "/api/v1/agencies/dinkes/policy", None, "").await;
    assert_eq!(v["version"], 2, "preview saves nothing");

    // A default change reaches dinkes where it follows the default (upload,
    // blocking) and not where it overrides (download).
    let mut d2 = province_default();
    d2["allocation"]["upload"] = rates(25_000_000, 50_000_000);
    d2["blocking"]["domains"] = json!(["judi.example", "slot.example"]);
    let (s, v) = put(
        &c,
        "/api/v1/policy/default",
        json!({"base_version": 1, "policy": d2, "comment": "SE 13/2026"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let pushed = next_policy(&mut agent).await;
    assert_eq!(pushed.version, 3);
    assert_eq!(pushed.allocation.download.rate_bps, 80_000_000);
    assert_eq!(pushed.allocation.upload.rate_bps, 25_000_000);
    assert_eq!(pushed.blocking.domains, ["judi.example", "slot.example"]);
    // A default some agency cannot take is refused whole, naming it.
    let mut d3 = province_default();
    d3["allocation"]["download"] = rates(50_000_000, 300_000_000);
    let (s, v) = put(
        &c,
        "/api/v1/policy/default",
        json!({"base_version": 2, "policy": d3, "comment": "terlalu besar"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["problems"].to_string().contains("agencies.bappeda"),
        "{v}"
    );
    let (_, v) = request(&c, "GET", "/api/v1/policy/default", None, "").await;
    assert_eq!(v["version"], 2);

    // Versions and rollback (a new version with the old document).
    let (s, v) = request(
        &c,
        "GET",
        "/api/v1/agencies/dinkes/policy/versions",
        None,
        "",
    )
    .await;
    assert_eq!(s, 200);
    let versions: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(v[1]["created_by"], "test-admin");
    assert_eq!(v[1]["comment"], "surat 045/DINKES/2026");
    let (s, v) = request(
        &c,
        "GET",
        "/api/v1/agencies/dinkes/policy/versions/1",
        None,
        "",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["policy"], json!({}));
    assert_eq!(v["effective"]["version"], 1);
    let (s, _) = request(
        &c,
        "GET",
        "/api/v1/agencies/dinkes/policy/versions/99",
        None,
        "",
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = post(
        &c,
        "/api/v1/agencies/dinkes/policy/rollback",
        json!({"version": 1, "base_version": 3, "comment": "kembali"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 4);
    assert_eq!(v["policy"], json!({}));
    // Back to the default's download, with the current default's upload.
    assert_eq!(
        v["effective"]["allocation"]["download"]["rate_bps"],
        50_000_000
    );
    assert_eq!(
        v["effective"]["allocation"]["upload"]["rate_bps"],
        25_000_000
    );
    let pushed = next_policy(&mut agent).await;
    assert_eq!(
        (pushed.version, pushed.allocation.download.rate_bps),
        (4, 50_000_000)
    );
    let (s, v) = post(
        &c,
        "/api/v1/policy/default/rollback",
        json!({"version": 1, "base_version": 2, "comment": "kembali"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 3);

    // Roles: the operator and dinkes's officer read; only the admin writes;
    // the officer reads its own agency only.
    let operator = bearer(&token(&c, "operator", None));
    let officer = bearer(&token(&c, "agency", Some("dinkes")));
    let body = json!({"base_version": 5, "policy": {}, "comment": "coba"}).to_string();
    for (who, h) in [("operator", &operator), ("officer", &officer)] {
        let (s, _) = raw_request(&c, "GET", "/api/v1/agencies/dinkes/policy", None, "", h).await;
        assert_eq!(s, 200, "{who} reads");
        let (s, _) = raw_request(
            &c,
            "PUT",
            "/api/v1/agencies/dinkes/policy",
            Some("application/json"),
            &body,
            h,
        )
        .await;
        assert_eq!(s, 403, "{who} may not write");
    }
    let (s, _) = raw_request(
        &c,
        "GET",
        "/api/v1/agencies/bappeda/policy",
        None,
        "",
        &officer,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = raw_request(
        &c,
        "GET",
        "/api/v1/agencies/bappeda/policy/versions",
        None,
        "",
        &officer,
    )
    .await;
    assert_eq!(s, 403);

    // The audit chain has who, what and why.
    let (_, audit) = request(&c, "GET", "/api/v1/audit?action=policy.", None, "").await;
    let rows = audit.as_array().unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in [
        "policy.default.save",
        "policy.save",
        "policy.rollback",
        "policy.default.rollback",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert!(
        audit.to_string().contains("surat 045/DINKES/2026"),
        "{audit}"
    );

    // Restarted, the collector has the same default and versions.
    let data = dir.path().to_owned();
    c.stop().await;
    let c = common::start(common::base_config(&data), &[], vec![]).await;
    c.state.inventory.set(&inventory()).unwrap();
    let (_, v) = request(&c, "GET", "/api/v1/agencies/dinkes/policy", None, "").await;
    assert_eq!(v["version"], 5, "{v}");
    let (_, v) = request(&c, "GET", "/api/v1/policy/default", None, "").await;
    assert_eq!(v["version"], 3);
    // The usage series carries the allocation in force over its range
    // (for the history chart's lines): the latest version's rates now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (s, u) = request(
        &c,
        "GET",
        &format!("/api/v1/agencies/dinkes/usage?from={}&step=1s", now - 60),
        None,
        "",
    )
    .await;
    assert_eq!(s, 200, "{u}");
    let runs = u["allocation"].as_array().unwrap();
    assert!(!runs.is_empty(), "{u}");
    let (_, p) = request(&c, "GET", "/api/v1/agencies/dinkes/policy", None, "").await;
    assert_eq!(
        runs.last().unwrap()["download"],
        p["effective"]["allocation"]["download"],
        "{u}"
    );
    // An hour before any version: no allocation.
    let (_, u) = request(
        &c,
        "GET",
        &format!(
            "/api/v1/agencies/dinkes/usage?from={}&to={}&step=1m",
            now - 7200,
            now - 3600
        ),
        None,
        "",
    )
    .await;
    assert_eq!(u["allocation"], serde_json::json!([]), "{u}");
    c.stop().await;
}

/// A collector restored from an older copy of its data knows fewer
/// versions than its nodes hold: it still sends its newest, for the agent
/// to refuse as a replay and report (tests/tests/policy_e2e.rs runs this
/// with the real agent), instead of sending nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holding_a_version_this_collector_lacks_gets_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &[]).await;
    c.state.inventory.set(&inventory()).unwrap();
    let (s, v) = put(
        &c,
        "/api/v1/policy/default",
        json!({"base_version": 0, "policy": province_default(), "comment": "SE 12/2026"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let cred = common::enroll_credential(&c, "dinkes", "dinkes-01").await;
    let mut agent = policy_agent_holding(&c, "dinkes-01", &cred, 7).await;
    assert_eq!(next_policy(&mut agent).await.version, 1);
    c.stop().await;
}

/// A session of `node` that asks for policies.
async fn policy_agent(c: &Collector, node: &str, credential: &str) -> common::Ws {
    policy_agent_holding(c, node, credential, 0).await
}

/// A session of `node` that asks for policies, holding `policy_version`.
async fn policy_agent_holding(
    c: &Collector,
    node: &str,
    credential: &str,
    policy_version: u64,
) -> common::Ws {
    let mut ws = common::connect(c.tls_addr.unwrap(), c.tls.ca_cert.as_ref().unwrap()).await;
    ws.send(Message::Binary(
        wire::encode(&AgentMessage::Hello(Hello {
            node_id: node.into(),
            credential: credential.into(),
            agent_version: "t".into(),
            hostname: "t".into(),
            boot_epoch: 1,
            protocols: vec![wire::PROTOCOL_VERSION],
            features: vec![wire::feature::POLICY.into()],
            inventory_version: 0,
            policy_version,
        }))
        .into(),
    ))
    .await
    .unwrap();
    ws
}

/// The next signed policy the collector sends, verified with its key.
async fn next_policy(ws: &mut common::Ws) -> simpul_proto::policy::Policy {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a policy within 10 s")
            .expect("open")
            .expect("frame");
        if let Message::Binary(b) = m {
            if let Ok(CollectorMessage::Policy(signed)) = wire::decode_collector(&b) {
                return simpul_proto::policy::Policy::from_json(&signed.policy_json).unwrap();
            }
        }
    }
}

//! The outage endpoints against an in-process collector: nodes connect over
//! the real TLS WebSocket, send heartbeats and fall silent; incidents,
//! acknowledgements, statistics, availability and maintenance windows are
//! read and written over real HTTP, and checked against the OpenAPI document.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{enroll, get, request, Ws};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use simpul_collector::server::Collector;
use simpul_proto::inventory::Node;
use simpul_proto::wire::{self, AgentMessage, Health, Heartbeat};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Fast heartbeats so the test takes seconds: silence of 2 s is DOWN, a
/// closed link is DOWN after 1 s, nothing goes DOWN in the first 2.5 s.
const HEARTBEAT_MS: u64 = 500;
const DOWN_AFTER_SECS: u64 = 2;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// dinkes-hub (critical) is the parent of dinkes-sd (minor); bappeda-01
/// has no entry (default criticality: major).
async fn collector(dir: &std::path::Path) -> Collector {
    let mut cfg = common::base_config(dir);
    cfg.nodes.heartbeat_interval_ms = HEARTBEAT_MS;
    cfg.nodes.down_after_secs = DOWN_AFTER_SECS;
    let nodes = vec![
        Node {
            id: "dinkes-hub".into(),
            agency: "dinkes".into(),
            criticality: Some("critical".into()),
            ..Node::default()
        },
        Node {
            id: "dinkes-sd".into(),
            agency: "dinkes".into(),
            parent: Some("dinkes-hub".into()),
            criticality: Some("minor".into()),
            ..Node::default()
        },
    ];
    common::start(cfg, &["dinkes", "bappeda"], nodes).await
}

/// A connected agent sending heartbeats until it is cut.
struct Agent {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

fn keep_alive(mut ws: Ws) -> Agent {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {
                    let hb = AgentMessage::Heartbeat(Heartbeat {
                        sent_ms: now_ms(),
                        health: Health::default(),
                    });
                    if ws.send(Message::Binary(wire::encode(&hb).into())).await.is_err() {
                        break;
                    }
                }
                m = ws.next() => if m.is_none() { break },
            }
        }
        // The link goes away: the TCP connection closes with the task.
    });
    Agent {
        stop: Some(stop),
        task,
    }
}

impl Agent {
    async fn cut(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

/// Poll `f` every 100 ms until it returns `Some`, for at most `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("an array: {v}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn documented(doc: &Value, schema: &str) -> BTreeSet<String> {
    keys(&doc["components"]["schemas"][schema]["properties"])
}

fn by_node<'a>(list: &'a Value, node: &str) -> &'a Value {
    array(list)
        .iter()
        .find(|i| i["node_id"] == node)
        .unwrap_or_else(|| panic!("no entry for {node} in {list}"))
}

async fn liveness(c: &Collector, path: &str) -> Vec<(String, String, String)> {
    let (status, v) = get(c, path).await;
    assert_eq!(status, 200, "{path}: {v}");
    let nodes = if path.ends_with("overview") {
        &v["nodes"]
    } else {
        &v
    };
    array(nodes)
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap_or_default().to_string(),
                n["liveness"].as_str().unwrap_or("null").to_string(),
                n["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Open incidents once `want` nodes have one.
async fn open_incidents(c: &Collector, want: usize) -> Value {
    wait_for(&format!("{want} open incidents"), 15, move || async move {
        let (status, v) = get(c, "/api/v1/incidents?open=true").await;
        assert_eq!(status, 200, "{v}");
        (array(&v).len() >= want).then_some(v)
    })
    .await
}

/// (status, error text) of a request expected to fail.
/// An operator-side token named `name` (the name acknowledgements show).
fn named_token(c: &Collector, name: &str, role: &str) -> String {
    let role = simpul_collector::auth::Role::parse(role, None).unwrap();
    c.state
        .access
        .create_api_token(&simpul_collector::store::NewApiToken {
            name,
            role: &role,
            kiosk: false,
            created_by: "test",
            now_ms: now_ms(),
            expires_ms: None,
        })
        .unwrap()
        .0
}

async fn as_token(
    c: &Collector,
    token: &str,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &str,
) -> (u16, Value) {
    common::raw_request(
        c,
        method,
        path,
        ctype,
        body,
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .await
}

async fn refused(
    c: &Collector,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &str,
) -> (u16, String) {
    let (status, v) = request(c, method, path, ctype, body).await;
    let error = v["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    (status, error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_api_incidents_ack_stats_availability_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let c = collector(dir.path()).await;
    let api = &c;
    let started = now_ms();
    let (_, doc) = get(&c, "/api/v1/openapi.json").await;

    let hub = keep_alive(enroll(&c, "dinkes", "dinkes-hub").await);
    let sd = keep_alive(enroll(&c, "dinkes", "dinkes-sd").await);
    let bappeda = keep_alive(enroll(&c, "bappeda", "bappeda-01").await);

    // Connected and heard from: up, in /nodes and in the overview.
    for path in ["/api/v1/nodes", "/api/v1/overview"] {
        wait_for(
            &format!("every node up in {path}"),
            10,
            move || async move {
                let l = liveness(api, path).await;
                (l.len() == 3 && l.iter().all(|(_, l, s)| l == "up" && s == "up")).then_some(())
            },
        )
        .await;
    }
    // Past the startup grace, with heartbeats flowing: no incident.
    let grace = DOWN_AFTER_SECS * 1000 + HEARTBEAT_MS + 500;
    tokio::time::sleep(Duration::from_millis(
        (started + grace).saturating_sub(now_ms()),
    ))
    .await;
    let (status, none) = get(&c, "/api/v1/incidents").await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(
        array(&none).len(),
        0,
        "live nodes have no incidents: {none}"
    );

    // bappeda-01 loses its link: down on its own.
    let cut_bappeda = now_ms();
    bappeda.cut().await;
    let open = open_incidents(&c, 1).await;
    let b = by_node(&open, "bappeda-01");
    assert_eq!(b["kind"], "down", "{b}");
    assert_eq!(b["severity"], "major", "default criticality: {b}");
    assert_eq!(b["agency"], "bappeda");
    assert_eq!(b["resolved_ms"], Value::Null);
    assert_eq!(b["acked_ms"], Value::Null);
    assert_eq!(b["maintenance"], false);
    let b_started = b["started_ms"].as_u64().unwrap();
    let b_detected = b["detected_ms"].as_u64().unwrap();
    assert!(
        b_started <= cut_bappeda && cut_bappeda - b_started <= 3 * HEARTBEAT_MS,
        "started at the last heartbeat before the cut: {b}"
    );
    assert!(b_detected >= cut_bappeda && b_detected >= b_started, "{b}");
    // The incident record is exactly the documented one.
    assert_eq!(keys(b), documented(&doc, "Incident"));

    // The school behind the hub loses its link, then the hub's own uplink
    // goes: one grouped outage of the hub, the school unreachable under it.
    sd.cut().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    hub.cut().await;
    let open = open_incidents(&c, 3).await;
    let h = by_node(&open, "dinkes-hub");
    assert_eq!(h["kind"], "group_down", "{h}");
    assert_eq!(h["children"], json!(["dinkes-sd"]), "{h}");
    assert_eq!(h["severity"], "critical");
    assert_eq!(h["root_cause"], Value::Null);
    let s = by_node(&open, "dinkes-sd");
    assert_eq!(s["kind"], "unreachable", "{s}");
    assert_eq!(s["root_cause"], "dinkes-hub", "{s}");
    assert_eq!(s["severity"], "minor");
    assert_eq!(
        s["notified_ms"],
        Value::Null,
        "unreachable is not alerted: {s}"
    );
    let hub_id = h["id"].as_i64().unwrap();
    let b_id = b["id"].as_i64().unwrap();

    // The detector's view in /nodes and in the overview.
    for path in ["/api/v1/nodes", "/api/v1/overview"] {
        let mut l = liveness(&c, path).await;
        l.sort();
        assert_eq!(
            l,
            [
                ("bappeda-01".into(), "down".into(), "down".into()),
                ("dinkes-hub".into(), "down".into(), "down".into()),
                ("dinkes-sd".into(), "unreachable".into(), "down".into()),
            ],
            "{path}"
        );
    }
    let (_, ov) = get(&c, "/api/v1/overview").await;
    for a in array(&ov["agencies"]) {
        assert_eq!(a["nodes_up"], 0, "no node up: {a}");
    }
    let (_, nodes) = get(&c, "/api/v1/nodes").await;
    let node_keys = keys(&nodes[0]);
    assert!(node_keys.contains("liveness"));
    assert_eq!(node_keys, documented(&doc, "Node"));

    // Filters.
    let filters: Vec<(String, Vec<&str>)> = vec![
        ("agency=bappeda".into(), vec!["bappeda-01"]),
        ("node=dinkes-sd".into(), vec!["dinkes-sd"]),
        ("agency=dinkes&node=bappeda-01".into(), vec![]),
        (
            "open=false&agency=dinkes".into(),
            vec!["dinkes-hub", "dinkes-sd"],
        ),
        ("limit=1".into(), vec!["any"]),
        (format!("to={}", started / 1000 - 60), vec![]),
        (
            format!("from={}&to={}", started / 1000 - 3600, now_ms() / 1000 + 60),
            vec!["bappeda-01", "dinkes-hub", "dinkes-sd"],
        ),
    ];
    for (query, want) in filters {
        let (status, v) = get(&c, &format!("/api/v1/incidents?{query}")).await;
        assert_eq!(status, 200, "{query}: {v}");
        let mut got: Vec<&str> = array(&v)
            .iter()
            .map(|i| i["node_id"].as_str().unwrap())
            .collect();
        got.sort_unstable();
        if want == ["any"] {
            assert_eq!(got.len(), 1, "{query}: {v}");
        } else {
            assert_eq!(got, want, "{query}");
        }
    }

    // Acknowledge the hub's outage: who (the caller, whatever the body
    // says) and when are recorded.
    let budi = named_token(&c, "Budi (NOC)", "operator");
    let sari = named_token(&c, "Sari", "operator");
    let ack = format!("/api/v1/incidents/{hub_id}/ack");
    let json_ct = Some("application/json");
    let before = now_ms();
    let (status, acked) = as_token(
        &c,
        &budi,
        "POST",
        &ack,
        json_ct,
        r#"{"by": "Someone Else"}"#,
    )
    .await;
    let after = now_ms();
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["id"], hub_id);
    assert_eq!(
        acked["acked_by"], "Budi (NOC)",
        "the caller's name: {acked}"
    );
    let acked_ms = acked["acked_ms"].as_u64().unwrap();
    assert!((before..=after).contains(&acked_ms), "{acked}");
    assert_eq!(keys(&acked), documented(&doc, "Incident"));
    // A second acknowledgement keeps the first.
    let (status, again) = as_token(&c, &sari, "POST", &ack, None, "").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["acked_by"].as_str(), again["acked_ms"].as_u64()),
        (Some("Budi (NOC)"), Some(acked_ms))
    );
    // Listed with it, after the unacknowledged open ones.
    let (_, list) = get(&c, "/api/v1/incidents?open=true").await;
    let order: Vec<&str> = array(&list)
        .iter()
        .map(|i| i["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order.last(),
        Some(&"dinkes-hub"),
        "acknowledged last: {order:?}"
    );
    assert_eq!(by_node(&list, "dinkes-hub")["acked_by"], "Budi (NOC)");
    // Both acknowledgements are in the audit log under their callers.
    let (_, audit) = get(&c, "/api/v1/audit?action=incident.ack").await;
    let actors: Vec<&str> = array(&audit)
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors.len(), 2, "{audit}");
    assert!(actors.iter().all(|a| a.starts_with("token:")), "{actors:?}");

    // Bad acknowledgements.
    let (status, error) = refused(&c, "POST", "/api/v1/incidents/999999/ack", None, "").await;
    assert_eq!((status, error.as_str()), (404, "no incident 999999"));
    let (status, _) = refused(&c, "POST", "/api/v1/incidents/abc/ack", None, "").await;
    assert_eq!(status, 400, "an id is a number");
    let (_, unchanged) = get(&c, "/api/v1/incidents?node=dinkes-hub").await;
    assert_eq!(
        unchanged[0]["acked_by"], "Budi (NOC)",
        "refused requests change nothing"
    );

    // bappeda-01 comes back (re-enrolled, heartbeats again): resolved.
    let bappeda = keep_alive(enroll(&c, "bappeda", "bappeda-01").await);
    let resolved = wait_for("bappeda-01's incident resolved", 15, move || async move {
        let (_, v) = get(api, "/api/v1/incidents?node=bappeda-01").await;
        let i = &v[0];
        i["resolved_ms"].as_u64().map(|_| i.clone())
    })
    .await;
    assert_eq!(resolved["id"], b_id);
    assert!(resolved["resolved_ms"].as_u64().unwrap() > b_detected);
    let (_, open) = get(&c, "/api/v1/incidents?open=true").await;
    assert!(
        array(&open).iter().all(|i| i["node_id"] != "bappeda-01"),
        "{open}"
    );

    // Time to acknowledge / resolve, by severity (unreachable not counted).
    let (status, stats) = get(&c, "/api/v1/incidents/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        keys(&stats),
        ["critical", "major"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let crit = &stats["critical"];
    assert_eq!(keys(crit), documented(&doc, "SeverityStats"));
    assert_eq!(
        (&crit["incidents"], &crit["acknowledged"], &crit["resolved"]),
        (&json!(1), &json!(1), &json!(0))
    );
    let ack_secs = crit["mean_ack_secs"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&ack_secs), "{crit}");
    assert_eq!(crit["max_ack_secs"].as_f64(), Some(ack_secs));
    assert_eq!(crit["mean_resolve_secs"], Value::Null);
    let major = &stats["major"];
    assert_eq!(
        (
            &major["incidents"],
            &major["acknowledged"],
            &major["resolved"]
        ),
        (&json!(1), &json!(0), &json!(1))
    );
    assert_eq!(major["mean_ack_secs"], Value::Null);
    assert!(
        major["mean_resolve_secs"].as_f64().unwrap() > 0.0,
        "{major}"
    );
    let (_, dinkes_stats) = get(&c, "/api/v1/incidents/stats?agency=dinkes").await;
    assert_eq!(keys(&dinkes_stats), ["critical".to_string()].into());

    // Availability: own downtime counts, unreachable time is apart.
    let (status, av) = get(&c, "/api/v1/availability").await;
    assert_eq!(status, 200, "{av}");
    assert_eq!(array(&av).len(), 3, "every enrolled node: {av}");
    for a in array(&av) {
        assert_eq!(keys(a), documented(&doc, "Availability"));
    }
    let ab = by_node(&av, "bappeda-01");
    assert!(ab["down_ms"].as_u64().unwrap() > 0, "{ab}");
    assert!(ab["availability_pct"].as_f64().unwrap() < 100.0, "{ab}");
    assert_eq!(ab["incidents"], 1);
    let asd = by_node(&av, "dinkes-sd");
    assert_eq!(asd["down_ms"], 0, "{asd}");
    assert!(asd["unreachable_ms"].as_u64().unwrap() > 0, "{asd}");
    assert_eq!(asd["availability_pct"], 100.0);
    let ahub = by_node(&av, "dinkes-hub");
    assert!(ahub["down_ms"].as_u64().unwrap() > 0, "{ahub}");
    assert_eq!(ahub["maintenance_ms"], 0);
    let (_, dinkes_av) = get(&c, "/api/v1/availability?agency=dinkes").await;
    assert_eq!(array(&dinkes_av).len(), 2);
    let (_, one) = get(&c, "/api/v1/availability?node=dinkes-sd").await;
    assert_eq!(array(&one).len(), 1);

    // Maintenance: the hub's outage falls inside a window added now
    // (RFC 3339 and Unix seconds both accepted).
    let rfc = |ms: u64| simpul_proto::time_format::rfc3339(ms * 1_000_000);
    let from_s = started / 1000 - 60;
    let to_s = now_ms() / 1000 + 3600;
    // It starts before now (the hub is already down): admin only.
    let retro = json!({"node": "dinkes-hub", "from": rfc(from_s * 1000), "to": to_s.to_string(),
                       "reason": "Penggantian router"})
    .to_string();
    let (status, error) = as_token(&c, &sari, "POST", "/api/v1/maintenance", json_ct, &retro).await;
    assert_eq!(status, 403, "an operator's retroactive window: {error}");
    let admin = named_token(&c, "Sari", "admin");
    let (status, m) = as_token(&c, &admin, "POST", "/api/v1/maintenance", json_ct, &retro).await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(keys(&m), documented(&doc, "Maintenance"));
    assert_eq!(
        (&m["node_id"], &m["agency"], &m["starts_ms"], &m["ends_ms"]),
        (
            &json!("dinkes-hub"),
            &Value::Null,
            &json!(from_s * 1000),
            &json!(to_s * 1000)
        )
    );
    assert_eq!(
        (&m["reason"], &m["created_by"]),
        (&json!("Penggantian router"), &json!("Sari"))
    );
    assert!(m["id"].as_i64().unwrap() > 0);
    let (status, m2) = as_token(
        &c,
        &sari,
        "POST",
        "/api/v1/maintenance",
        json_ct,
        &json!({"agency": "bappeda", "from": (now_ms() / 1000).to_string(),
                "to": to_s.to_string(), "reason": "Pemindahan rak"})
        .to_string(),
    )
    .await;
    assert_eq!(status, 201, "{m2}");
    assert_eq!(
        (&m2["node_id"], &m2["agency"]),
        (&Value::Null, &json!("bappeda"))
    );
    let (status, windows) = get(&c, "/api/v1/maintenance").await;
    assert_eq!(status, 200, "{windows}");
    let ids: Vec<&Value> = array(&windows).iter().map(|w| &w["id"]).collect();
    assert_eq!(ids, [&m["id"], &m2["id"]]);
    let (_, av) = get(&c, "/api/v1/availability?node=dinkes-hub").await;
    let ahub = &av[0];
    assert_eq!(ahub["down_ms"], 0, "inside maintenance: {ahub}");
    assert!(ahub["maintenance_ms"].as_u64().unwrap() > 0, "{ahub}");
    assert_eq!(ahub["availability_pct"], 100.0);

    // An outage detected inside a window is recorded as maintenance.
    bappeda.cut().await;
    let again = wait_for("bappeda-01's second incident", 15, move || async move {
        let (_, v) = get(api, "/api/v1/incidents?node=bappeda-01&open=true").await;
        array(&v).first().cloned()
    })
    .await;
    assert_eq!(again["maintenance"], true, "{again}");
    assert_eq!(again["notified_ms"], Value::Null, "nobody alerted: {again}");

    // Bad windows.
    let soon = now_ms() / 1000 + 600;
    let good = json!({"node": "dinkes-hub", "from": soon.to_string(), "to": (soon + 3600).to_string(),
                      "reason": "r"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b.to_string()
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b.to_string()
    };
    for (body, expect) in [
        (
            with("to", json!(soon.to_string())),
            "from must be before to".to_string(),
        ),
        (
            with("to", json!((soon + 2 * 366 * 86_400).to_string())),
            "at most a year".to_string(),
        ),
        (with("by", json!("Sari")), "unknown field `by`".into()),
        (with("from", json!("besok")), "from: \"besok\"".into()),
        (
            with("node", json!("../etc")),
            "node: \"../etc\" is not a valid code".into(),
        ),
        (
            with("agency", json!("a b")),
            "agency: \"a b\" is not a valid code".into(),
        ),
        (with("reason", json!(" ")), "reason: say why".into()),
        (
            with("reason", json!("x".repeat(201))),
            "reason: longer than 200".into(),
        ),
        (with("reason", json!("a\u{202e}b")), "reason:".into()),
        (with("window", json!(1)), "unknown field `window`".into()),
        (without("reason"), "missing field `reason`".into()),
        (without("from"), "missing field `from`".into()),
        ("42".into(), "invalid type".into()),
    ] {
        let (status, error) = refused(&c, "POST", "/api/v1/maintenance", json_ct, &body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(
            error.contains(&expect),
            "{body}: {error:?} lacks {expect:?}"
        );
    }
    // Windows for what does not exist are refused.
    let (status, error) = refused(
        &c,
        "POST",
        "/api/v1/maintenance",
        json_ct,
        &with("node", json!("ghost-01")),
    )
    .await;
    assert_eq!(status, 404, "{error}");
    let mut b = good.clone();
    b.as_object_mut().unwrap().remove("node");
    b["agency"] = json!("nowhere");
    let (status, error) = refused(&c, "POST", "/api/v1/maintenance", json_ct, &b.to_string()).await;
    assert_eq!(status, 404, "{error}");
    let (_, windows) = get(&c, "/api/v1/maintenance").await;
    assert_eq!(array(&windows).len(), 2, "refused windows are not stored");

    // A planned window: changed, then deleted; a running one is ended.
    let (status, planned) = refused(
        &c,
        "POST",
        "/api/v1/maintenance",
        json_ct,
        &good.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{planned}");
    let (_, windows) = get(&c, "/api/v1/maintenance").await;
    let planned_id = array(&windows)
        .iter()
        .find(|w| w["reason"] == "r")
        .map(|w| w["id"].as_i64().unwrap())
        .unwrap();
    let (status, changed) = request(
        &c,
        "PATCH",
        &format!("/api/v1/maintenance/{planned_id}"),
        json_ct,
        r#"{"reason": "Ganti UPS"}"#,
    )
    .await;
    assert_eq!(
        (status, &changed["reason"]),
        (200, &json!("Ganti UPS")),
        "{changed}"
    );
    let (status, _) = request(
        &c,
        "DELETE",
        &format!("/api/v1/maintenance/{planned_id}"),
        None,
        "",
    )
    .await;
    assert_eq!(status, 204);
    let (status, v) = request(
        &c,
        "DELETE",
        &format!("/api/v1/maintenance/{}", m["id"]),
        None,
        "",
    )
    .await;
    assert_eq!(status, 409, "a started window is history: {v}");
    let (status, ended) = request(
        &c,
        "POST",
        &format!("/api/v1/maintenance/{}/end", m2["id"]),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert!(ended["ends_ms"].as_u64().unwrap() <= now_ms());
    let (status, v) = request(
        &c,
        "POST",
        &format!("/api/v1/maintenance/{}/end", m2["id"]),
        None,
        "",
    )
    .await;
    assert_eq!(status, 409, "already ended: {v}");
    let (_, audit) = get(&c, "/api/v1/audit?action=maintenance.").await;
    let actions: BTreeSet<&str> = array(&audit)
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "maintenance.create",
            "maintenance.change",
            "maintenance.delete",
            "maintenance.end"
        ]
        .into_iter()
        .collect(),
        "{audit}"
    );
    let retro_rows: Vec<&Value> = array(&audit)
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .unwrap()
                .contains("\"retroactive\":true")
        })
        .collect();
    assert_eq!(
        retro_rows.len(),
        1,
        "the retroactive window is marked: {audit}"
    );

    // Bad parameters: 400 with {"error": "…"} naming the problem.
    for (path, query, expect) in [
        ("/api/v1/incidents", "open=yes", "open"),
        ("/api/v1/incidents", "limit=0", "limit must be at least 1"),
        (
            "/api/v1/incidents",
            "limit=10001",
            "limit must be at most 10000",
        ),
        (
            "/api/v1/incidents",
            "agency=../etc",
            "agency: \"../etc\" is not a valid code",
        ),
        (
            "/api/v1/incidents",
            "node=a%20b",
            "node: \"a b\" is not a valid code",
        ),
        (
            "/api/v1/incidents",
            "from=10&to=10",
            "from must be before to",
        ),
        ("/api/v1/incidents", "from=kemarin", "from: \"kemarin\""),
        ("/api/v1/incidents", "method=dns", "unknown field `method`"),
        (
            "/api/v1/incidents/stats",
            "to=5&from=9",
            "from must be before to",
        ),
        (
            "/api/v1/incidents/stats",
            "agency=%3Cx%3E",
            "agency: \"<x>\" is not a valid code",
        ),
        ("/api/v1/incidents/stats", "step=1h", "unknown field `step`"),
        (
            "/api/v1/availability",
            "node=a%20b",
            "node: \"a b\" is not a valid code",
        ),
        (
            "/api/v1/availability",
            "from=2&to=1",
            "from must be before to",
        ),
        ("/api/v1/availability", "limit=5", "unknown field `limit`"),
    ] {
        let (status, v) = get(&c, &format!("{path}?{query}")).await;
        assert_eq!(status, 400, "{path}?{query}: {v}");
        let error = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}?{query}: {v}"));
        assert!(error.contains(expect), "{path}?{query}: {error:?}");
    }

    // The OpenAPI document describes these endpoints and their methods.
    let paths = &doc["paths"];
    for p in [
        "/api/v1/incidents",
        "/api/v1/incidents/stats",
        "/api/v1/availability",
        "/api/v1/maintenance",
    ] {
        let op = &paths[p]["get"];
        assert!(op.is_object(), "openapi lacks GET {p}");
        let (status, v) = get(&c, p).await;
        assert_eq!(status, 200, "{p}: {v}");
    }
    let ack_op = &paths["/api/v1/incidents/{id}/ack"];
    assert_eq!(keys(ack_op), ["post".to_string()].into());
    assert!(
        ack_op["post"]["requestBody"].is_null(),
        "the name comes from the caller"
    );
    assert_eq!(
        keys(&ack_op["post"]["responses"]),
        ["200", "400", "401", "403", "404"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(ack_op["post"]["x-roles"], json!(["admin", "operator"]));
    let m_post = &paths["/api/v1/maintenance"]["post"];
    assert!(m_post["responses"]["201"].is_object(), "{m_post}");
    assert_eq!(
        m_post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MaintenanceRequest"
    );
    assert_eq!(
        documented(&doc, "MaintenanceRequest"),
        ["node", "agency", "from", "to", "reason"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let params: BTreeSet<String> = array(&paths["/api/v1/incidents"]["get"]["parameters"])
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        params,
        ["from", "to", "agency", "node", "open", "limit"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    c.stop().await;
}

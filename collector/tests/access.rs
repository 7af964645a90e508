//! Who may do what, against a real collector (in-process, real SQLite,
//! HTTP on loopback): every route of the table with every role and without
//! one; an agency officer sees nothing of another agency, in any answer or
//! the live feed; sessions with their CSRF token, expiry, revocation and
//! logout; login throttling; API tokens revoked and expired; the audit
//! chain, and a tampered row found by `simpul-collector audit verify`.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{bearer, raw_request, send_batch, token};
use futures_util::StreamExt;
use serde_json::{json, Value};
use simpul_collector::auth::Access;
use simpul_collector::openapi::ENDPOINTS;
use simpul_collector::server::Collector;
use simpul_collector::state::now_ms;
use simpul_proto::wire::Batch;
use simpul_proto::{
    BlockMethod, BlockedAttempt, CounterSample, EndReason, FlowRecord, RecordKind, TrafficScope,
};

/// A request with these header lines: (status, body).
async fn call(
    c: &Collector,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &str,
) -> (u16, Value) {
    let ctype = body.map(|_| "application/json");
    raw_request(c, method, path, ctype, body.unwrap_or(""), headers).await
}

fn flow(id: u64, agency: &str, src: &str, site: &str, t: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind: RecordKind::Final,
        end_reason: EndReason::Fin,
        proto: "tcp".into(),
        src_ip: src.parse().unwrap(),
        src_port: Some(40_000),
        dst_ip: "203.0.113.10".parse().unwrap(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: 10,
        bytes_up: 1000,
        packets_down: 10,
        bytes_down: 9000,
        first_seen: t - 2_000_000_000,
        last_seen: t,
        tcp_flags_up: Some(0x1b),
        tcp_flags_down: Some(0x1b),
        sni: Some(site.into()),
        http_host: None,
        dns_query: None,
        site: Some(site.into()),
        site_source: Some(simpul_proto::SiteSource::Sni),
        agency: agency.into(),
        unit: "umum".into(),
        scope: TrafficScope::Internet,
    }
}

/// Traffic, blocked attempts and counters of one agency's node, now.
fn batch_of(agency: &str, client: &str, site: &str) -> Batch {
    let t = now_ms() * 1_000_000 - 3_000_000_000;
    Batch {
        boot_epoch: 1,
        seq: 1,
        sealed_ms: now_ms(),
        flows: vec![flow(1, agency, client, site, t)],
        counters: (0..5)
            .map(|i| CounterSample {
                ts: t / 1_000_000_000 - i,
                agency: agency.into(),
                unit: "umum".into(),
                scope: TrafficScope::Internet,
                bytes_in: 9000,
                bytes_out: 1000,
                packets_in: 10,
                packets_out: 10,
            })
            .collect(),
        blocked: vec![BlockedAttempt {
            first_seen: t - 1_000_000_000,
            last_seen: t,
            client: client.parse().unwrap(),
            agency: agency.into(),
            unit: "umum".into(),
            method: BlockMethod::Sni,
            target: format!("judi-{agency}.example"),
            server: None,
            port: Some(443),
            proto: "tcp".into(),
            rule: "judi".into(),
            list: "judi".into(),
            attempts: 2,
        }],
        dropped_records: 0,
        dropped_batches: 0,
    }
}

/// A collector with dinkes and bappeda, a node each streaming traffic,
/// an incident for bappeda's node, a maintenance window of each agency.
async fn populated(dir: &std::path::Path) -> (Collector, Vec<common::Ws>) {
    let mut cfg = common::base_config(dir);
    cfg.nodes.heartbeat_interval_ms = 200;
    cfg.nodes.down_after_secs = 1;
    let c = common::start(cfg, &["dinkes", "bappeda"], vec![]).await;
    let mut open = Vec::new();
    for (agency, node, client, site) in [
        ("dinkes", "dinkes-01", "10.10.1.10", "dinkes-site.example"),
        (
            "bappeda",
            "bappeda-01",
            "10.20.1.10",
            "bappeda-site.example",
        ),
    ] {
        let mut ws = common::enroll(&c, agency, node).await;
        send_batch(&mut ws, batch_of(agency, client, site)).await;
        // bappeda-01 goes away: an incident of bappeda's.
        if agency == "bappeda" {
            drop(ws);
        } else {
            open.push(ws);
        }
    }
    common::add_node(&c, "bappeda", "victim-01");
    // A default policy: every agency has version 1.
    let rates = json!({"rate_bps": 10_000_000, "ceil_bps": 20_000_000});
    c.state
        .policies
        .put_default(
            0,
            &json!({"allocation": {"download": rates, "upload": rates}}),
            &c.state.inventory,
            "test",
            "seed",
        )
        .map_err(|e| e.to_string())
        .unwrap();
    // A named list, so its routes have something to answer.
    common::seed_list(&c);
    let admin = token(&c, "admin", None);
    let soon = now_ms() / 1000 + 3600;
    for (k, v) in [("agency", "dinkes"), ("agency", "bappeda")] {
        let body = json!({k: v, "from": soon, "to": soon + 600, "reason": format!("kerja {v}")});
        let (s, b) = call(
            &c,
            "POST",
            "/api/v1/maintenance",
            Some(&body.to_string()),
            &bearer(&admin),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    // Wait for bappeda-01's outage to be an incident.
    for _ in 0..100 {
        let (_, v) = call(
            &c,
            "GET",
            "/api/v1/incidents?agency=bappeda",
            None,
            &bearer(&admin),
        )
        .await;
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            return (c, open);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no incident for bappeda-01");
}

/// A concrete request for an endpoint of the table.
fn concrete(method: &str, path: &str) -> (String, Option<String>) {
    let p = path
        .replace("{code}", "dinkes")
        .replace("{name}", "nobody-here")
        .replace("{list}", "judi")
        .replace("{version}", "1")
        .replace(
            "{id}",
            match path {
                p if p.starts_with("/api/v1/nodes/") => "victim-01",
                p if p.starts_with("/api/v1/incidents/") => "999999",
                p if p.starts_with("/api/v1/maintenance/") => "999999",
                _ => "nonexistent",
            },
        );
    let body = match (method, path) {
        ("post", "/api/v1/auth/login") => Some(json!({"username": "x", "password": "y"})),
        ("post", "/api/v1/auth/kiosk") => Some(json!({"token": "x"})),
        ("post", "/api/v1/maintenance") => Some(json!({"from": 1, "to": 0, "reason": "x"})),
        ("patch", "/api/v1/maintenance/{id}") => Some(json!({"reason": "x"})),
        ("post", "/api/v1/users") => {
            Some(json!({"username": "u", "role": "root", "password": "p"}))
        }
        ("patch", "/api/v1/users/{name}") => Some(json!({"disabled": false})),
        ("post", "/api/v1/tokens") => Some(json!({"name": "t", "role": "root"})),
        // Stale on purpose: allowed roles get 409, the others 403.
        ("put", _) => Some(json!({"base_version": 99, "policy": {}, "comment": "test"})),
        ("post", p) if p.ends_with("/rollback") => {
            Some(json!({"version": 1, "base_version": 99, "comment": "test"}))
        }
        ("post", p) if p.ends_with("/preview") => Some(json!({"policy": {}})),
        _ => None,
    };
    (p, body.map(|b| b.to_string()))
}

/// Every route × admin, operator, agency officer, viewer and nobody: the
/// roles the table names get past the check (whatever the handler then
/// says), the others get 403, nobody gets 401 but on public routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _agents) = populated(dir.path()).await;
    let roles: Vec<(&str, Option<String>)> = vec![
        ("admin", Some(token(&c, "admin", None))),
        ("operator", Some(token(&c, "operator", None))),
        ("agency", Some(token(&c, "agency", Some("dinkes")))),
        ("viewer", Some(token(&c, "viewer", None))),
        ("anonymous", None),
    ];
    let mut checked = 0;
    for e in ENDPOINTS {
        // The agents' endpoint on the plain listener refuses everyone
        // (agents use TLS); it has its own authentication.
        if e.path == "/api/v1/agent" {
            continue;
        }
        let (path, body) = concrete(e.method, e.path);
        for (role, tok) in &roles {
            let headers = tok.as_deref().map(bearer).unwrap_or_default();
            let (status, v) = call(
                &c,
                &e.method.to_uppercase(),
                &path,
                body.as_deref(),
                &headers,
            )
            .await;
            let allowed = e.access == Access::Public || e.access.roles().contains(role);
            let what = format!("{} {path} as {role}: {status} {v}", e.method);
            if e.access == Access::Public {
                // The login endpoints answer 401 for a bad login themselves.
                assert_ne!(status, 403, "{what}");
            } else if allowed {
                assert!(status != 401 && status != 403, "{what}");
            } else if *role == "anonymous" {
                assert_eq!(status, 401, "{what}");
                assert!(v["error"].is_string(), "{what}");
            } else {
                assert_eq!(status, 403, "{what}");
                assert!(v["error"].as_str().unwrap().contains("role"), "{what}");
            }
            checked += 1;
        }
    }
    assert!(checked >= (ENDPOINTS.len() - 1) * 5, "{checked}");
    c.stop().await;
}

/// An agency officer's answers hold its agency only, from every route it
/// may read and from the live feed; asking for another agency is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_officer_sees_only_its_agency() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _agents) = populated(dir.path()).await;
    let officer = bearer(&token(&c, "agency", Some("dinkes")));
    let admin = bearer(&token(&c, "admin", None));
    let others = ["bappeda", "10.20.1.10", "bappeda-site.example"];
    let mut read = 0;
    for e in ENDPOINTS.iter().filter(|e| {
        e.method == "get" && e.access.roles().contains(&"agency") && e.path != "/api/v1/live"
    }) {
        let (path, _) = concrete(e.method, e.path);
        let (status, v) = call(&c, "GET", &path, None, &officer).await;
        assert_eq!(status, 200, "{path}: {v}");
        let text = v.to_string();
        if path != "/api/v1/openapi.json" {
            for o in others {
                assert!(
                    !text.contains(o),
                    "{path} shows {o:?} to dinkes's officer: {text}"
                );
            }
        }
        // The admin does see bappeda where there is data of it.
        let (_, all) = call(&c, "GET", &path, None, &admin).await;
        if [
            "/api/v1/nodes",
            "/api/v1/agencies",
            "/api/v1/flows",
            "/api/v1/incidents",
            "/api/v1/maintenance",
        ]
        .contains(&path.as_str())
        {
            assert!(all.to_string().contains("bappeda"), "{path}: {all}");
        }
        read += 1;
    }
    assert!(read >= 12, "{read}");
    for path in [
        "/api/v1/flows?agency=bappeda",
        "/api/v1/top/hosts?agency=bappeda",
        "/api/v1/blocked?agency=bappeda",
        "/api/v1/incidents?agency=bappeda",
        "/api/v1/availability?agency=bappeda",
        "/api/v1/agencies/bappeda/usage",
        "/api/v1/nodes?agency=bappeda",
    ] {
        let (status, v) = call(&c, "GET", path, None, &officer).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    // The live feed: snapshot and a patch, dinkes only.
    let t = token(&c, "agency", Some("dinkes"));
    let mut ws = live(&c, &t, None).await.unwrap();
    let mut kinds = BTreeMap::new();
    while kinds.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = m {
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            assert!(!text.contains("bappeda"), "live {}: {text}", v["type"]);
            // Patches name no agency (the snapshot says which it holds).
            if v["type"] == "snapshot" {
                assert!(text.contains("dinkes"), "{text}");
                assert_eq!(v["overview"]["agencies"].as_array().unwrap().len(), 1);
            }
            kinds.insert(v["type"].as_str().unwrap().to_string(), ());
        }
    }
    // A page of another origin may not open the feed.
    assert!(live(&c, &t, Some("https://evil.example")).await.is_err());
    c.stop().await;
}

type LiveWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The live feed over the plain listener, with a bearer token.
async fn live(c: &Collector, token: &str, origin: Option<&str>) -> Result<LiveWs, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let addr = c.http_addr.unwrap();
    let mut req = format!("ws://{addr}/api/v1/live")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

fn cookie_of(headers_text: &str) -> Option<String> {
    headers_text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        let kv = v.trim().split(';').next()?;
        Some(kv.to_string())
    })
}

/// A raw request returning the response head too.
async fn with_head(
    c: &Collector,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &str,
) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(c.http_addr.unwrap())
        .await
        .unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}");
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
    } else {
        req += "Content-Length: 0\r\n\r\n";
    }
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        head.to_string(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Sessions: a login sets an HttpOnly, SameSite=Strict cookie and answers
/// the CSRF token; a change without it is refused; logout ends the
/// session; a wrong password and an unknown user read alike; repeated
/// failures are throttled; disabled accounts, expired and revoked
/// sessions and tokens are refused; everything lands in the audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_csrf_throttling_and_the_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _agents) = populated(dir.path()).await;
    let store = c.state.access.clone();
    let hash = simpul_collector::auth::password::hash("kata-sandi-budi").unwrap();
    store
        .add_user(
            &simpul_collector::store::User {
                username: "budi".into(),
                display_name: "Budi Santoso".into(),
                role: simpul_collector::auth::Role::Operator,
                disabled: false,
                created_ms: now_ms(),
                password_changed_ms: now_ms(),
            },
            &hash,
        )
        .unwrap();
    let login = |u: &str, p: &str| json!({"username": u, "password": p}).to_string();
    let (status, head, me) = with_head(
        &c,
        "POST",
        "/api/v1/auth/login",
        Some(&login("budi", "kata-sandi-budi")),
        "",
    )
    .await;
    assert_eq!(status, 200, "{me}");
    let set = head.to_ascii_lowercase();
    assert!(
        set.contains("httponly") && set.contains("samesite=strict"),
        "{head}"
    );
    assert!(!set.contains("secure"), "plain HTTP: no Secure flag");
    let cookie = cookie_of(&head).unwrap();
    let csrf = me["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(
        (me["role"].as_str(), me["display_name"].as_str()),
        (Some("operator"), Some("Budi Santoso"))
    );
    let as_budi = format!("Cookie: {cookie}\r\n");
    let (status, _) = call(&c, "GET", "/api/v1/auth/me", None, &as_budi).await;
    assert_eq!(status, 200);
    // The incident of bappeda-01, acknowledged: not without the CSRF token.
    let (_, list) = call(&c, "GET", "/api/v1/incidents", None, &as_budi).await;
    let id = list[0]["id"].as_i64().unwrap();
    let ack = format!("/api/v1/incidents/{id}/ack");
    let (status, v) = call(&c, "POST", &ack, None, &as_budi).await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("CSRF"), "{v}");
    let (status, v) = call(
        &c,
        "POST",
        &ack,
        None,
        &format!("{as_budi}X-CSRF-Token: wrong\r\n"),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let with_csrf = format!("{as_budi}X-CSRF-Token: {csrf}\r\n");
    let (status, v) = call(&c, "POST", &ack, None, &with_csrf).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["acked_by"], "Budi Santoso", "the session's name: {v}");
    // Logout ends it.
    let (status, _) = call(&c, "POST", "/api/v1/auth/logout", None, &with_csrf).await;
    assert_eq!(status, 204);
    let (status, v) = call(&c, "GET", "/api/v1/auth/me", None, &as_budi).await;
    assert_eq!(status, 401, "{v}");

    // Unknown user and wrong password read alike; then throttled.
    let (s1, v1) = call(
        &c,
        "POST",
        "/api/v1/auth/login",
        Some(&login("nobody", "whatever-123")),
        "",
    )
    .await;
    let (s2, v2) = call(
        &c,
        "POST",
        "/api/v1/auth/login",
        Some(&login("budi", "wrong-password")),
        "",
    )
    .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(v1, v2);
    let mut throttled = None;
    for _ in 0..6 {
        let (status, head, v) = with_head(
            &c,
            "POST",
            "/api/v1/auth/login",
            Some(&login("budi", "wrong-password")),
            "",
        )
        .await;
        if status == 429 {
            throttled = Some((head, v));
            break;
        }
    }
    let (head, v) = throttled.expect("throttled after repeated failures");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    assert!(v["error"].as_str().unwrap().contains("try again in"), "{v}");
    // Even the right password waits now.
    let (status, _) = call(
        &c,
        "POST",
        "/api/v1/auth/login",
        Some(&login("budi", "kata-sandi-budi")),
        "",
    )
    .await;
    assert_eq!(status, 429);
    // Counted for the NOC's own monitoring.
    let admin = common::token(&c, "admin", None);
    let (status, metrics) = common::raw_request(
        &c,
        "GET",
        "/metrics",
        None,
        "",
        &format!("Authorization: Bearer {admin}\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for series in [
        "simpul_auth_logins_total{result=\"failed\"}",
        "simpul_auth_logins_total{result=\"throttled\"}",
        "simpul_auth_denied_total{status=\"401\"}",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }

    // Expired, revoked and disabled.
    let (secret, s) = store
        .create_session(&simpul_collector::store::NewSession {
            username: "budi",
            address: "10.0.0.1",
            user_agent: "t",
            now_ms: now_ms() - 13 * 3_600_000,
            expires_ms: now_ms() - 3_600_000,
            idle_ms: Some(1_800_000),
            token_id: None,
        })
        .unwrap();
    let (status, v) = call(
        &c,
        "GET",
        "/api/v1/auth/me",
        None,
        &format!("Cookie: simpul_session={secret}\r\n"),
    )
    .await;
    assert_eq!(status, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    let (secret2, s2) = store
        .create_session(&simpul_collector::store::NewSession {
            username: "budi",
            address: "10.0.0.1",
            user_agent: "t",
            now_ms: now_ms(),
            expires_ms: now_ms() + 3_600_000,
            idle_ms: Some(1_800_000),
            token_id: None,
        })
        .unwrap();
    let as2 = format!("Cookie: simpul_session={secret2}\r\n");
    assert_eq!(call(&c, "GET", "/api/v1/auth/me", None, &as2).await.0, 200);
    let admin = bearer(&token(&c, "admin", None));
    let (status, sessions) = call(&c, "GET", "/api/v1/auth/sessions", None, &admin).await;
    assert_eq!(status, 200);
    assert!(sessions.to_string().contains(&s2.id), "{sessions}");
    assert!(
        !sessions.to_string().contains(&s.id),
        "expired sessions are not open"
    );
    let (status, _) = call(
        &c,
        "DELETE",
        &format!("/api/v1/auth/sessions/{}", s2.id),
        None,
        &admin,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(call(&c, "GET", "/api/v1/auth/me", None, &as2).await.0, 401);
    let (secret3, _) = store
        .create_session(&simpul_collector::store::NewSession {
            username: "budi",
            address: "10.0.0.1",
            user_agent: "t",
            now_ms: now_ms(),
            expires_ms: now_ms() + 3_600_000,
            idle_ms: Some(1_800_000),
            token_id: None,
        })
        .unwrap();
    let (status, _) = call(
        &c,
        "PATCH",
        "/api/v1/users/budi",
        Some(r#"{"disabled": true}"#),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = call(
        &c,
        "GET",
        "/api/v1/auth/me",
        None,
        &format!("Cookie: simpul_session={secret3}\r\n"),
    )
    .await;
    assert_eq!(status, 401, "a disabled account's sessions end: {v}");

    // Tokens: revoked and expired ones are refused.
    let (status, created) = call(
        &c,
        "POST",
        "/api/v1/tokens",
        Some(r#"{"name": "grafana", "role": "viewer"}"#),
        &admin,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let grafana = created["token"].as_str().unwrap().to_string();
    assert_eq!(
        call(&c, "GET", "/api/v1/overview", None, &bearer(&grafana))
            .await
            .0,
        200
    );
    let (status, _) = call(
        &c,
        "DELETE",
        &format!("/api/v1/tokens/{}", created["id"].as_str().unwrap()),
        None,
        &admin,
    )
    .await;
    assert_eq!(status, 204);
    let (status, v) = call(&c, "GET", "/api/v1/overview", None, &bearer(&grafana)).await;
    assert_eq!(status, 401, "{v}");
    let (expired, _) = store
        .create_api_token(&simpul_collector::store::NewApiToken {
            name: "old",
            role: &simpul_collector::auth::Role::Viewer,
            kiosk: false,
            created_by: "t",
            now_ms: now_ms() - 10_000,
            expires_ms: Some(now_ms() - 1),
        })
        .unwrap();
    let (status, v) = call(&c, "GET", "/api/v1/overview", None, &bearer(&expired)).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("the API token expired"))
    );

    // The audit chain holds the logins (with their address), the denied
    // ones, the acknowledgement, the logout, the user and token changes.
    let (_, audit) = call(&c, "GET", "/api/v1/audit?limit=1000", None, &admin).await;
    let rows = audit.as_array().unwrap();
    let has = |action: &str, outcome: &str| {
        rows.iter().any(|r| {
            r["action"] == action && r["outcome"] == outcome && r["address"] == "127.0.0.1"
        })
    };
    for (action, outcome) in [
        ("auth.login", "ok"),
        ("auth.login", "denied"),
        ("incident.ack", "ok"),
        ("auth.logout", "ok"),
        ("auth.session_revoke", "ok"),
        ("user.disable", "ok"),
        ("token.create", "ok"),
        ("token.revoke", "ok"),
        ("maintenance.create", "ok"),
    ] {
        assert!(has(action, outcome), "no {action} {outcome} in {audit}");
    }
    let (status, head, _) = with_head(&c, "GET", "/api/v1/audit?format=csv", None, &admin).await;
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("text/csv"), "{head}");
    assert!(matches!(
        store.verify_audit().unwrap(),
        simpul_collector::store::AuditCheck::Intact { .. }
    ));
    let db = dir.path().join("simpul.db");
    c.stop().await;

    // Someone with the database file changes a row: the chain says where.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let err = conn
        .execute("UPDATE audit SET actor = 'someone' WHERE seq = 3", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    conn.execute_batch(
        "DROP TRIGGER audit_append_only_update;
         UPDATE audit SET actor = 'someone' WHERE seq = 3;",
    )
    .unwrap();
    drop(conn);
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
        .args(["audit", "verify", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken at row 3"), "{err}");
}

/// The security headers on answers and pages; unknown API paths and
/// methods answer JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_json_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    for path in ["/", "/api/v1/overview", "/healthz"] {
        let (_, head, _) = with_head(&c, "GET", path, None, "").await;
        let h = head.to_ascii_lowercase();
        for want in [
            "content-security-policy: default-src 'self'; script-src 'self';",
            "frame-ancestors 'none'",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
        ] {
            assert!(h.contains(want), "{path} lacks {want}: {head}");
        }
        assert!(
            !h.contains("strict-transport-security"),
            "no HSTS on plain HTTP"
        );
    }
    let admin = bearer(&token(&c, "admin", None));
    for (method, path, status) in [
        ("GET", "/api/v1/nope", 404),
        ("GET", "/api", 404),
        ("DELETE", "/api/v1/overview", 405),
        ("GET", "/api/v1/overview?window=abc", 400),
        ("GET", "/api/v1/nodes?agency=dinkes&x=1", 400),
        ("GET", "/api/v1/top/hosts?host=10.0.0.1", 400),
        ("GET", "/api/v1/agencies?agency=dinkes", 400),
        ("GET", "/api/v1/nodes?agency=ghost", 404),
    ] {
        let (s, head, v) = with_head(&c, method, path, None, &admin).await;
        assert_eq!(s, status, "{method} {path}: {v}");
        assert!(
            head.to_ascii_lowercase().contains("application/json"),
            "{method} {path}: {head}"
        );
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    }
    c.stop().await;
}

/// An admin changes an account's role: its sessions end at once, the next
/// login has the new role, and the change is audited; an admin cannot take
/// the admin role from their own account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_role_ends_the_sessions_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes", "bappeda"]).await;
    let admin = bearer(&token(&c, "admin", None));
    let body = json!({"username": "sari", "display_name": "Sari", "role": "operator",
                      "password": "kata-sandi-sari-1"});
    let (s, v) = call(&c, "POST", "/api/v1/users", Some(&body.to_string()), &admin).await;
    assert_eq!(s, 201, "{v}");
    let login = json!({"username": "sari", "password": "kata-sandi-sari-1"}).to_string();
    let (s, head, _) = with_head(&c, "POST", "/api/v1/auth/login", Some(&login), "").await;
    assert_eq!(s, 200);
    let as_sari = format!("Cookie: {}\r\n", cookie_of(&head).unwrap());
    let (s, _) = call(&c, "GET", "/api/v1/flows?agency=bappeda", None, &as_sari).await;
    assert_eq!(s, 200, "an operator reads every agency");

    let change = json!({"role": "agency", "agency": "dinkes"}).to_string();
    let (s, v) = call(&c, "PATCH", "/api/v1/users/sari", Some(&change), &admin).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["role"].as_str(), v["agency"].as_str()),
        (Some("agency"), Some("dinkes")),
        "{v}"
    );
    let (s, _) = call(&c, "GET", "/api/v1/auth/me", None, &as_sari).await;
    assert_eq!(s, 401, "the operator's session ended with the role");
    let (_, head, me) = with_head(&c, "POST", "/api/v1/auth/login", Some(&login), "").await;
    assert_eq!(me["role"], "agency");
    let as_sari = format!("Cookie: {}\r\n", cookie_of(&head).unwrap());
    let (s, _) = call(&c, "GET", "/api/v1/flows?agency=bappeda", None, &as_sari).await;
    assert_eq!(s, 403, "now bound to dinkes");

    for (bad, why) in [
        (json!({"role": "agency"}), "agency without its code"),
        (
            json!({"role": "agency", "agency": "nowhere"}),
            "unknown agency",
        ),
        (json!({"role": "root"}), "unknown role"),
        (json!({"agency": "dinkes"}), "agency without role"),
    ] {
        let (s, v) = call(
            &c,
            "PATCH",
            "/api/v1/users/sari",
            Some(&bad.to_string()),
            &admin,
        )
        .await;
        assert_eq!(s, 400, "{why}: {v}");
    }
    // An admin account demoting itself (through its own session).
    let body = json!({"username": "kepala", "role": "admin", "password": "kata-sandi-kepala"});
    let (s, _) = call(&c, "POST", "/api/v1/users", Some(&body.to_string()), &admin).await;
    assert_eq!(s, 201);
    let login = json!({"username": "kepala", "password": "kata-sandi-kepala"}).to_string();
    let (_, head, me) = with_head(&c, "POST", "/api/v1/auth/login", Some(&login), "").await;
    let as_kepala = format!(
        "Cookie: {}\r\nX-CSRF-Token: {}\r\n",
        cookie_of(&head).unwrap(),
        me["csrf_token"].as_str().unwrap()
    );
    let demote = json!({"role": "viewer"}).to_string();
    let (s, v) = call(
        &c,
        "PATCH",
        "/api/v1/users/kepala",
        Some(&demote),
        &as_kepala,
    )
    .await;
    assert_eq!(s, 400, "{v}");

    let (_, audit) = call(&c, "GET", "/api/v1/audit?action=user.role", None, &admin).await;
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
    assert_eq!(audit[0]["target"], "sari");
    c.stop().await;
}

/// One token cannot take every live-feed place: the 65th feed of a token is
/// refused (429) while another token still gets one; closing a feed gives
/// its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_cannot_take_every_live_feed() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes"]).await;
    let greedy = token(&c, "operator", None);
    let mut feeds = Vec::new();
    for i in 0..simpul_collector::live::MAX_FEEDS_PER_PRINCIPAL {
        feeds.push(
            live(&c, &greedy, None)
                .await
                .unwrap_or_else(|e| panic!("feed {i}: {e}")),
        );
    }
    let refused = live(&c, &greedy, None).await.unwrap_err();
    assert!(refused.contains("429"), "{refused}");
    let other = token(&c, "viewer", None);
    assert!(
        live(&c, &other, None).await.is_ok(),
        "another token is served"
    );
    let mut first = feeds.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = live(&c, &greedy, None).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a closed feed gives its place back");
    c.stop().await;
}

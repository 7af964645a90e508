//! Availability over a chosen range and the CSV exports of blocked
//! attempts and of a search, against an in-process collector: agents
//! enroll and send flows and blocked attempts over the real TLS WebSocket
//! into the real SQLite store, incidents and a maintenance window are
//! written to that store, and everything is read back over real HTTP —
//! each CSV parsed and compared with the JSON of the same question.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{enroll, parse_csv, send_batch, token};
use serde_json::Value;
use simpul_collector::server::Collector;
use simpul_collector::store::{Maintenance, NewIncident};
use simpul_proto::wire::Batch;
use simpul_proto::{BlockMethod, BlockedAttempt, EndReason, FlowRecord, RecordKind, TrafficScope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const S: u64 = 1_000_000_000;
const HOUR_MS: u64 = 3_600_000;
const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn attempt(agency: &str, client: &str, target: &str, at: u64, attempts: u32) -> BlockedAttempt {
    BlockedAttempt {
        first_seen: at * S - 5 * S,
        last_seen: at * S + 250_000_000,
        client: client.parse().unwrap(),
        agency: agency.into(),
        unit: "umum".into(),
        method: BlockMethod::Sni,
        target: target.into(),
        server: Some("198.51.100.7".parse().unwrap()),
        port: Some(443),
        proto: "tcp".into(),
        rule: target.into(),
        list: "judi".into(),
        attempts,
    }
}

fn flow(id: u64, agency: &str, src: &str, dst: &str, bytes: u64, at: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind: RecordKind::Final,
        end_reason: EndReason::Fin,
        proto: "tcp".into(),
        src_ip: src.parse().unwrap(),
        src_port: Some(40_000 + id as u16),
        dst_ip: dst.parse().unwrap(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: 1,
        bytes_up: bytes,
        packets_down: 1,
        bytes_down: bytes / 2,
        first_seen: at * S - S,
        last_seen: at * S,
        tcp_flags_up: None,
        tcp_flags_down: None,
        sni: Some(format!("s{id}.example")),
        http_host: None,
        dns_query: None,
        site: Some(format!("s{id}.example")),
        site_source: Some(simpul_proto::SiteSource::Sni),
        agency: agency.into(),
        unit: "umum".into(),
        scope: TrafficScope::Internet,
    }
}

fn batch(flows: Vec<FlowRecord>, blocked: Vec<BlockedAttempt>) -> Batch {
    Batch {
        boot_epoch: 1,
        seq: 1,
        sealed_ms: 1,
        flows,
        counters: vec![],
        blocked,
        dropped_records: 0,
        dropped_batches: 0,
    }
}

/// GET as a bearer token: status, head (lowercase), body text.
async fn fetch(c: &Collector, path: &str, auth: &str) -> (u16, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(c.http_addr.unwrap())
        .await
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {auth}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut raw))
        .await
        .expect("response within 30 s")
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = String::from_utf8(raw[split + 4..].to_vec()).unwrap();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut s = body.as_str();
        while let Some((size, rest)) = s.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&rest[..n]);
            s = rest[n..].strip_prefix("\r\n").unwrap();
        }
        body = out;
    }
    (status, head, body)
}

async fn json(c: &Collector, path: &str, auth: &str) -> Value {
    let (status, _, body) = fetch(c, path, auth).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: JSON: {body}"))
}

/// A CSV answer: its file name (Content-Disposition) and parsed records.
async fn csv(c: &Collector, path: &str, auth: &str) -> (String, Vec<Vec<String>>) {
    let (status, head, body) = fetch(c, path, auth).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/csv; charset=utf-8"),
        "{path}: {head}"
    );
    let prefix = "content-disposition: attachment; filename=\"";
    let name = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(prefix))
        .and_then(|l| l[prefix.len()..].trim().strip_suffix('"'))
        .unwrap_or_else(|| panic!("{path}: a file name: {head}"))
        .to_string();
    (name, parse_csv(&body))
}

/// What a JSON value reads as in the CSV: text as is (defused with an
/// apostrophe when a spreadsheet would run it), numbers and booleans as
/// JSON writes them, null empty.
fn as_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The CSV holds exactly the JSON's rows, in order, under its field names.
fn same_rows(what: &str, table: &[Vec<String>], rows: &[Value]) {
    let (head, lines) = table.split_first().unwrap();
    assert_eq!(lines.len(), rows.len(), "{what}: rows");
    for (line, row) in lines.iter().zip(rows) {
        let obj = row.as_object().unwrap();
        let mut fields: Vec<&String> = obj.keys().collect();
        let mut columns: Vec<&String> = head.iter().collect();
        fields.sort();
        columns.sort();
        assert_eq!(columns, fields, "{what}: the JSON's fields");
        let want: Vec<String> = head.iter().map(|k| as_cell(&obj[k])).collect();
        assert_eq!(line, &want, "{what}: {row}");
    }
}

fn stamp(secs: u64) -> String {
    simpul_collector::csv::stamp(secs)
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("an array: {v}"))
}

fn by_node<'a>(v: &'a Value, node: &str) -> &'a Value {
    arr(v)
        .iter()
        .find(|a| a["node_id"] == node)
        .unwrap_or_else(|| panic!("{node} in {v}"))
}

async fn refused(c: &Collector, path: &str, auth: &str, status: u16, says: &str) {
    let (got, _, body) = fetch(c, path, auth).await;
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
    let error = v["error"].as_str().unwrap_or_default();
    assert_eq!(got, status, "{path}: {body}");
    assert!(error.contains(says), "{path}: {error:?} lacks {says:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_over_a_range_with_unmonitored_and_maintenance_time() {
    let dir = tempfile::tempdir().unwrap();
    // Nodes that stop talking for a while stay up: the incidents are the test's.
    let mut cfg = common::base_config(dir.path());
    cfg.nodes.down_after_secs = 3600;
    let c = common::start(cfg, &["dinkes", "bappeda"], vec![]).await;
    let admin = token(&c, "admin", None);
    let officer = token(&c, "agency", Some("bappeda"));
    // Both nodes connect and report (seen); the connections stay open.
    let mut dinkes = enroll(&c, "dinkes", "dinkes-01").await;
    let mut bappeda = enroll(&c, "bappeda", "bappeda-01").await;
    let t = now();
    send_batch(&mut dinkes, batch(vec![], vec![])).await;
    send_batch(&mut bappeda, batch(vec![], vec![])).await;

    // dinkes-01 was enrolled 3 days ago: before that nothing was measured.
    let enrolled = t - 3 * DAY;
    let db = rusqlite::Connection::open(dir.path().join("simpul.db")).unwrap();
    db.execute(
        "UPDATE nodes SET enrolled_at = ?1 WHERE node_id = 'dinkes-01'",
        [i64::try_from(enrolled * S).unwrap()],
    )
    .unwrap();
    // Down an hour two days ago; 40 minutes yesterday, 30 of them in a
    // maintenance window; 20 minutes unreachable behind its parent.
    let mut inc = c.state.control.incidents().unwrap();
    let mut outage = |kind: &str, start_ms: u64, end_ms: u64, maintenance: bool| {
        let id = inc
            .open(&NewIncident {
                node_id: "dinkes-01",
                agency: "dinkes",
                kind,
                severity: "major",
                root_cause: None,
                children: &[],
                started_ms: start_ms,
                detected_ms: start_ms + 5_000,
                maintenance,
            })
            .unwrap()
            .0
            .id;
        inc.resolve(id, end_ms).unwrap();
    };
    let d2 = (t - 2 * DAY) * 1000;
    let d1 = (t - DAY) * 1000;
    outage("down", d2, d2 + HOUR_MS, false);
    outage("down", d1, d1 + 40 * 60_000, false);
    outage(
        "unreachable",
        d1 + 2 * HOUR_MS,
        d1 + 2 * HOUR_MS + 20 * 60_000,
        false,
    );
    let mut inc = c.state.control.incidents().unwrap();
    inc.add_maintenance(&Maintenance {
        id: 0,
        node_id: Some("dinkes-01".into()),
        agency: None,
        starts_ms: d1,
        ends_ms: d1 + 30 * 60_000,
        reason: "ganti router".into(),
        created_by: "noc".into(),
        created_ms: d1,
    })
    .unwrap();

    // The last 5 days, in Unix seconds: 2 days unmonitored, then measured.
    let (from, to) = (t - 5 * DAY, t);
    let q = format!("/api/v1/availability?from={from}&to={to}");
    let av = json(&c, &q, &admin).await;
    let a = by_node(&av, "dinkes-01");
    assert_eq!(
        (&a["from_ms"], &a["to_ms"]),
        (&Value::from(from * 1000), &Value::from(to * 1000)),
        "{a}"
    );
    assert_eq!(
        a["unmonitored_ms"],
        2 * DAY * 1000,
        "before enrollment: {a}"
    );
    assert_eq!(a["down_ms"], HOUR_MS + 10 * 60_000, "{a}");
    assert_eq!(a["maintenance_ms"], 30 * 60_000, "{a}");
    assert_eq!(a["unreachable_ms"], 20 * 60_000, "{a}");
    assert_eq!(a["incidents"], 3, "{a}");
    assert_eq!(a["never_seen"], false, "{a}");
    let measured = (3 * DAY * 1000 - 50 * 60_000) as f64;
    let pct = 100.0 * (1.0 - (HOUR_MS + 10 * 60_000) as f64 / measured);
    let got = a["availability_pct"].as_f64().unwrap();
    assert!((got - pct).abs() < 1e-9, "{got} vs {pct}: {a}");
    // The same range in RFC 3339.
    let rfc = |s: u64| simpul_proto::time_format::rfc3339(s * S);
    let same = json(
        &c,
        &format!(
            "/api/v1/availability?node=dinkes-01&from={}&to={}",
            rfc(from),
            rfc(to)
        ),
        &admin,
    )
    .await;
    assert_eq!(&same[0], a);
    // bappeda-01, enrolled just now: nearly all of the range unmonitored.
    let b = by_node(&av, "bappeda-01");
    let unmonitored = b["unmonitored_ms"].as_u64().unwrap();
    assert!(
        ((5 * DAY - 120) * 1000..=5 * DAY * 1000).contains(&unmonitored),
        "{b}"
    );
    assert_eq!(b["down_ms"], 0, "{b}");

    // A range that ended before the enrollment: all unmonitored, no figure.
    let before = json(
        &c,
        &format!(
            "/api/v1/availability?node=dinkes-01&from={}&to={}",
            t - 5 * DAY,
            t - 4 * DAY
        ),
        &admin,
    )
    .await;
    assert_eq!(before[0]["unmonitored_ms"], DAY * 1000, "{before}");
    assert_eq!(before[0]["availability_pct"], Value::Null, "{before}");
    assert_eq!(before[0]["down_ms"], 0);
    // Yesterday's day alone: the maintenance counts as such, not as down.
    let day = json(
        &c,
        &format!(
            "/api/v1/availability?node=dinkes-01&from={}&to={}",
            t - DAY - 60,
            t - DAY + 3 * 3600
        ),
        &admin,
    )
    .await;
    assert_eq!(
        (
            &day[0]["down_ms"],
            &day[0]["maintenance_ms"],
            &day[0]["unmonitored_ms"]
        ),
        (
            &Value::from(10 * 60_000),
            &Value::from(30 * 60_000),
            &Value::from(0)
        ),
        "{day}"
    );

    // The CSV of the range: the JSON's rows and fields, named by the range.
    let (name, table) = csv(&c, &format!("{q}&format=csv"), &admin).await;
    assert_eq!(
        name,
        format!("simpul-availability-{}-{}.csv", stamp(from), stamp(to))
    );
    same_rows("availability", &table, arr(&av));
    let (name, _) = csv(&c, &format!("{q}&agency=dinkes&format=csv"), &admin).await;
    assert!(name.starts_with("simpul-availability-dinkes-"), "{name}");

    // An officer of bappeda: its own node only, whatever it asks.
    let own = json(&c, &q, &officer).await;
    let nodes: Vec<&str> = arr(&own)
        .iter()
        .map(|a| a["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["bappeda-01"]);
    let other = json(&c, &format!("{q}&node=dinkes-01"), &officer).await;
    assert_eq!(arr(&other).len(), 0, "another agency's node: {other}");
    refused(
        &c,
        &format!("{q}&agency=dinkes"),
        &officer,
        403,
        "not \"dinkes\"",
    )
    .await;
    refused(
        &c,
        &format!("{q}&agency=dinkes&format=csv"),
        &officer,
        403,
        "not \"dinkes\"",
    )
    .await;
    let (_, table) = csv(&c, &format!("{q}&node=dinkes-01&format=csv"), &officer).await;
    assert_eq!(table.len(), 1, "the header only: {table:?}");

    // Bad ranges: 400 naming the parameter.
    let n = now();
    for (query, says) in [
        (
            format!("from={n}&to={n}"),
            "from must be before to".to_string(),
        ),
        (
            format!("from={}&to={n}", n + 60),
            "from must be before to".into(),
        ),
        (
            format!("from={}&to={n}", n - 367 * DAY),
            "from: 367 days before to".into(),
        ),
        (format!("from=0&to={n}"), "at most 366 days".into()),
        (
            format!("to={}", n + 400 * DAY),
            "to: more than a year ahead".into(),
        ),
        (
            format!("to={}", u64::MAX),
            "to: more than a year ahead".into(),
        ),
        ("from=kemarin".into(), "from: \"kemarin\"".into()),
        ("to=2026-13-01".into(), "to: \"2026-13-01\"".into()),
        (
            "format=xlsx".into(),
            "format: \"xlsx\" is not json or csv".into(),
        ),
    ] {
        refused(
            &c,
            &format!("/api/v1/availability?{query}"),
            &admin,
            400,
            &says,
        )
        .await;
    }
    // A whole year is fine; a calendar month not over yet too.
    json(
        &c,
        &format!("/api/v1/availability?from={}&to={n}", n - 366 * DAY),
        &admin,
    )
    .await;
    json(
        &c,
        &format!(
            "/api/v1/availability?from={}&to={}",
            n - 3 * DAY,
            n + 27 * DAY
        ),
        &admin,
    )
    .await;
    drop((dinkes, bappeda));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_and_search_csv_hold_the_json_rows() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::collector(dir.path(), &["dinkes", "bappeda"]).await;
    let admin = token(&c, "admin", None);
    let officer = token(&c, "agency", Some("bappeda"));
    let operator = token(&c, "operator", None);
    let viewer = token(&c, "viewer", None);
    let t = now();
    // dinkes: 10.1.1.20 talks to 25 peers and tries 30 blocked targets (one
    // named like a formula, one with a comma and quotes); bappeda: a few.
    let flows: Vec<FlowRecord> = (1..=25u64)
        .map(|i| {
            flow(
                i,
                "dinkes",
                "10.1.1.20",
                &format!("203.0.113.{i}"),
                1000 * i,
                t - 100 - i,
            )
        })
        .collect();
    let mut blocked: Vec<BlockedAttempt> = (1..=28u32)
        .map(|i| {
            attempt(
                "dinkes",
                "10.1.1.20",
                &format!("slot{i}.example"),
                t - 200 - u64::from(i),
                i,
            )
        })
        .collect();
    blocked.push(attempt(
        "dinkes",
        "10.1.1.20",
        "=HYPERLINK(\"http://x\",\"y\")",
        t - 50,
        1,
    ));
    blocked.push(attempt("dinkes", "10.1.1.21", "a,b\"c.example", t - 40, 2));
    let mut dinkes = enroll(&c, "dinkes", "dinkes-01").await;
    send_batch(&mut dinkes, batch(flows, blocked)).await;
    let mut bappeda = enroll(&c, "bappeda", "bappeda-01").await;
    send_batch(
        &mut bappeda,
        batch(
            vec![flow(1, "bappeda", "10.2.1.5", "203.0.113.99", 500, t - 30)],
            vec![
                attempt("bappeda", "10.2.1.5", "togel.example", t - 30, 4),
                attempt("bappeda", "10.2.1.6", "togel.example", t - 20, 1),
            ],
        ),
    )
    .await;
    let (from, to) = (t - 3600, t + 60);
    let range = format!("from={from}&to={to}");

    // /api/v1/blocked: CSV = JSON with the same limit; by default every
    // attempt up to the API's limit (the JSON's default is 100 rows).
    let rows = json(&c, &format!("/api/v1/blocked?{range}&limit=1000"), &admin).await;
    assert_eq!(arr(&rows).len(), 32);
    let (name, table) = csv(&c, &format!("/api/v1/blocked?{range}&format=csv"), &admin).await;
    assert_eq!(
        name,
        format!("simpul-blocked-{}-{}.csv", stamp(from), stamp(to))
    );
    same_rows("blocked", &table, arr(&rows));
    assert!(
        table
            .iter()
            .any(|r| r.contains(&"'=HYPERLINK(\"http://x\",\"y\")".to_string())),
        "the formula is defused"
    );
    assert!(table
        .iter()
        .any(|r| r.contains(&"a,b\"c.example".to_string())));
    let few = json(
        &c,
        &format!("/api/v1/blocked?{range}&agency=dinkes&limit=7"),
        &admin,
    )
    .await;
    let (name, table) = csv(
        &c,
        &format!("/api/v1/blocked?{range}&agency=dinkes&limit=7&format=csv"),
        &admin,
    )
    .await;
    assert_eq!(
        name,
        format!("simpul-blocked-dinkes-{}-{}.csv", stamp(from), stamp(to))
    );
    same_rows("blocked, 7", &table, arr(&few));
    // The officer: bappeda's attempts only; another agency's refused.
    let own = json(&c, &format!("/api/v1/blocked?{range}"), &officer).await;
    let (_, table) = csv(&c, &format!("/api/v1/blocked?{range}&format=csv"), &officer).await;
    same_rows("officer's blocked", &table, arr(&own));
    assert_eq!(table.len(), 3);
    assert!(table[1..].iter().all(|r| r[4] == "bappeda"), "{table:?}");
    refused(
        &c,
        &format!("/api/v1/blocked?{range}&agency=dinkes&format=csv"),
        &officer,
        403,
        "not \"dinkes\"",
    )
    .await;
    // A viewer reads no client addresses, in CSV neither.
    refused(
        &c,
        &format!("/api/v1/blocked?{range}&format=csv"),
        &viewer,
        403,
        "",
    )
    .await;
    let (_, table) = csv(
        &c,
        &format!("/api/v1/blocked?{range}&format=csv"),
        &operator,
    )
    .await;
    assert_eq!(table.len(), 33);
    for (query, says) in [
        ("limit=1001&format=csv", "limit must be at most 1000"),
        ("format=pdf", "format: \"pdf\" is not json or csv"),
        ("from=5&to=4&format=csv", "from must be before to"),
    ] {
        refused(&c, &format!("/api/v1/blocked?{query}"), &admin, 400, says).await;
    }
    refused(
        &c,
        "/api/v1/blocked/summary?format=csv",
        &admin,
        400,
        "format: the summary is JSON only",
    )
    .await;

    // /api/v1/search: the default JSON holds the top 20 of each list; the
    // CSV of a list holds all of them, as the JSON does with the same limit.
    let s = format!("/api/v1/search?q=10.1.1.20&{range}");
    let short = json(&c, &s, &admin).await;
    assert_eq!(arr(&short["summary"]["peers"]).len(), 20);
    let full = json(&c, &format!("{s}&limit=1000"), &admin).await;
    assert_eq!(arr(&full["summary"]["peers"]).len(), 25);
    assert_eq!(arr(&full["blocked"]).len(), 29);
    for (part, rows) in [
        ("hosts", &full["summary"]["hosts"]),
        ("peers", &full["summary"]["peers"]),
        ("sites", &full["summary"]["sites"]),
        ("units", &full["summary"]["units"]),
        ("blocked", &full["blocked"]),
    ] {
        let (name, table) = csv(&c, &format!("{s}&format=csv&part={part}"), &admin).await;
        assert_eq!(
            name,
            format!(
                "simpul-search-{part}-10.1.1.20-{}-{}.csv",
                stamp(from),
                stamp(to)
            )
        );
        assert!(!arr(rows).is_empty(), "{part}");
        same_rows(part, &table, arr(rows));
        let (_, five) = csv(&c, &format!("{s}&format=csv&part={part}&limit=5"), &admin).await;
        let want: Vec<Value> = arr(rows).iter().take(5).cloned().collect();
        same_rows(part, &five, &want);
    }
    // A query's text in the file name cannot break out of its quotes.
    let (name, table) = csv(
        &c,
        &format!("/api/v1/search?q=dinkes%22x&{range}&format=csv&part=hosts"),
        &admin,
    )
    .await;
    assert!(name.starts_with("simpul-search-hosts-dinkes_x-"), "{name}");
    assert_eq!(table.len(), 1);
    // The officer's search holds bappeda only: dinkes' address finds nothing.
    let (_, table) = csv(&c, &format!("{s}&format=csv&part=blocked"), &officer).await;
    assert_eq!(table.len(), 1, "no other agency's attempts: {table:?}");
    let (_, table) = csv(
        &c,
        &format!("/api/v1/search?q=10.2.1.0/24&{range}&format=csv&part=blocked"),
        &officer,
    )
    .await;
    let own = json(
        &c,
        &format!("/api/v1/search?q=10.2.1.0/24&{range}"),
        &officer,
    )
    .await;
    same_rows("officer's search", &table, arr(&own["blocked"]));
    assert_eq!(table.len(), 3);
    refused(
        &c,
        &format!("{s}&format=csv&part=blocked"),
        &viewer,
        403,
        "",
    )
    .await;
    for (query, says) in [
        ("format=csv", "part: say which list to export"),
        (
            "format=csv&part=flows",
            "part: flows are exported by /api/v1/flows",
        ),
        (
            "format=csv&part=nodes",
            "part: \"nodes\" is not units, hosts",
        ),
        ("part=hosts", "part: only with format=csv"),
        ("limit=0", "limit must be at least 1"),
        (
            "format=csv&part=hosts&limit=1001",
            "limit must be at most 1000",
        ),
        (
            "format=tsv&part=hosts",
            "format: \"tsv\" is not json or csv",
        ),
    ] {
        refused(&c, &format!("{s}&{query}"), &admin, 400, says).await;
    }
    drop((dinkes, bappeda));
    c.stop().await;
}

//! Investigation against an in-process collector: agents send flows,
//! counters and blocked attempts over the real TLS WebSocket into the real
//! SQLite store; search, paged and sorted flows, the drill-down's units and
//! hosts, and CSV exports are read over real HTTP.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{enroll, parse_csv, send_batch};
use serde_json::Value;
use simpul_collector::server::Collector;
use simpul_proto::inventory::{Agency, Inventory, Unit};
use simpul_proto::wire::Batch;
use simpul_proto::{
    BlockMethod, BlockedAttempt, CounterSample, EndReason, FlowRecord, RecordKind, TrafficScope,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const S: u64 = 1_000_000_000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[allow(clippy::too_many_arguments)]
fn flow(
    id: u64,
    agency: &str,
    unit: &str,
    src: &str,
    dst: &str,
    proto: &str,
    bytes: u64,
    last_seen_ns: u64,
    site: Option<&str>,
) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind: RecordKind::Final,
        end_reason: EndReason::Fin,
        proto: proto.into(),
        src_ip: src.parse().unwrap(),
        src_port: Some(40_000 + (id % 20_000) as u16),
        dst_ip: dst.parse().unwrap(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: 1,
        bytes_up: bytes,
        packets_down: 1,
        bytes_down: bytes / 2,
        first_seen: last_seen_ns - S,
        last_seen: last_seen_ns,
        tcp_flags_up: None,
        tcp_flags_down: None,
        sni: site.map(String::from),
        http_host: None,
        dns_query: None,
        site: site.map(String::from),
        site_source: site.map(|_| simpul_proto::SiteSource::Sni),
        agency: agency.into(),
        unit: unit.into(),
        scope: TrafficScope::Internet,
    }
}

fn batch(seq: u64, flows: Vec<FlowRecord>, counters: Vec<CounterSample>) -> Batch {
    Batch {
        boot_epoch: 1,
        seq,
        sealed_ms: 1,
        flows,
        counters,
        blocked: vec![],
        dropped_records: 0,
        dropped_batches: 0,
    }
}

fn attempt(agency: &str, unit: &str, client: &str, target: &str, at: u64) -> BlockedAttempt {
    BlockedAttempt {
        first_seen: at * S - S,
        last_seen: at * S,
        client: client.parse().unwrap(),
        agency: agency.into(),
        unit: unit.into(),
        method: BlockMethod::Sni,
        target: target.into(),
        server: Some("198.51.100.7".parse().unwrap()),
        port: Some(443),
        proto: "tcp".into(),
        rule: target.into(),
        list: "judi".into(),
        attempts: 2,
    }
}

fn counter(agency: &str, unit: &str, ts: u64, bytes_in: u64, bytes_out: u64) -> CounterSample {
    CounterSample {
        ts,
        agency: agency.into(),
        unit: unit.into(),
        scope: TrafficScope::Internet,
        bytes_in,
        bytes_out,
        packets_in: 1,
        packets_out: 1,
    }
}

const SITES: [Option<&str>; 4] = [
    Some("portal.example.go.id"),
    Some("cdn.video.example"),
    None,
    Some("www.portal.example.go.id"),
];

/// What was sent: dinkes 250 flows (units gizi 10.1.1.0/24 and umum
/// 10.1.2.0/24), bappeda 20 (unit plan 10.2.1.0/24), with repeated
/// last_seen instants and repeated byte counts so ties must be broken.
struct Seeded {
    flows: Vec<(String, FlowRecord)>,
    from: u64,
    to: u64,
}

async fn seeded(dir: &std::path::Path) -> (Collector, Seeded) {
    let c = common::collector(dir, &["dinkes", "bappeda"]).await;
    let unit = |code: &str, name: &str, net: &str| Unit {
        code: code.into(),
        name: name.into(),
        subnets: vec![net.into()],
    };
    let mut inv: Inventory = (*c.state.inventory.current()).clone();
    inv.agencies = vec![
        Agency {
            code: "dinkes".into(),
            name: "Dinas Kesehatan".into(),
            units: vec![
                unit("gizi", "Bidang Gizi", "10.1.1.0/24"),
                unit("umum", "Bagian Umum", "10.1.2.0/24"),
            ],
        },
        Agency {
            code: "bappeda".into(),
            name: "Bappeda".into(),
            units: vec![unit("plan", "Perencanaan", "10.2.1.0/24")],
        },
    ];
    c.state.inventory.set(&inv).unwrap();

    let t = now();
    let base = (t - 1800) * S;
    let mut all = Vec::new();
    let mut dinkes = Vec::new();
    for i in 0..250u64 {
        let (unit, src) = if i % 5 == 4 {
            ("umum", "10.1.2.20".to_string())
        } else {
            ("gizi", format!("10.1.1.{}", 10 + i % 4))
        };
        let dst = format!("203.0.113.{}", 1 + i % 5);
        let proto = if i % 10 == 3 { "udp" } else { "tcp" };
        // Three flows share each instant; bytes repeat every 40 flows.
        let f = flow(
            i + 1,
            "dinkes",
            unit,
            &src,
            &dst,
            proto,
            1000 + (i % 40) * 100,
            base + (i / 3) * 7 * S,
            SITES[(i % 4) as usize],
        );
        all.push(("dinkes-01".to_string(), f.clone()));
        dinkes.push(f);
    }
    let mut bappeda = Vec::new();
    for i in 0..20u64 {
        let f = flow(
            i + 1,
            "bappeda",
            "plan",
            "10.2.1.5",
            "203.0.113.1",
            "tcp",
            5000 + i,
            base + i * 11 * S,
            Some("portal.example.go.id"),
        );
        all.push(("bappeda-01".to_string(), f.clone()));
        bappeda.push(f);
    }
    let counters = |agency: &str, units: &[(&str, u64)]| {
        let mut v = Vec::new();
        for k in 0..10u64 {
            for (u, b) in units {
                v.push(counter(agency, u, t - 600 + k * 30, *b, b / 4));
            }
        }
        v
    };
    let mut ws = enroll(&c, "dinkes", "dinkes-01").await;
    let second = dinkes.split_off(120);
    send_batch(&mut ws, batch(1, dinkes, vec![])).await;
    let mut b = batch(
        2,
        second,
        counters("dinkes", &[("gizi", 4000), ("umum", 1000)]),
    );
    b.blocked = vec![attempt(
        "dinkes",
        "gizi",
        "10.1.1.10",
        "slot88.example",
        t - 60,
    )];
    send_batch(&mut ws, b).await;
    let mut ws2 = enroll(&c, "bappeda", "bappeda-01").await;
    let mut b = batch(1, bappeda, counters("bappeda", &[("plan", 700)]));
    b.blocked = vec![attempt(
        "bappeda",
        "plan",
        "10.2.1.5",
        "judi.portal.example.go.id",
        t - 50,
    )];
    send_batch(&mut ws2, b).await;
    // Top hosts are folded a moment after ingest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (
        c,
        Seeded {
            flows: all,
            from: t - 3600,
            to: t + 1,
        },
    )
}

/// GET as `auth` (a bearer token): status, headers (lowercase names) and
/// the body as text.
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
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = String::from_utf8(raw[split + 4..].to_vec()).unwrap();
    if head.contains("transfer-encoding: chunked") {
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

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

async fn json(c: &Collector, path: &str, auth: &str) -> (u16, Value) {
    let (status, _, body) = fetch(c, path, auth).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: JSON: {body}")),
    )
}

/// Every page of `query` (limit per page): the rows in order, and how many
/// pages it took.
async fn all_pages(c: &Collector, query: &str, auth: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/flows?{query}"),
            Some(cur) => format!("/api/v1/flows?{query}&cursor={cur}"),
        };
        let (status, head, body) = fetch(c, &path, auth).await;
        assert_eq!(status, 200, "{path}: {body}");
        let page: Vec<Value> = serde_json::from_str(&body).unwrap();
        pages += 1;
        rows.extend(page);
        match header(&head, "x-next-cursor") {
            Some(n) => cursor = Some(n.to_string()),
            None => return (rows, pages),
        }
        assert!(pages < 100, "paging ends");
    }
}

fn key(r: &Value) -> (String, u64) {
    (
        r["node_id"].as_str().unwrap().to_string(),
        r["flow_id"].as_u64().unwrap(),
    )
}

fn total(r: &Value) -> u64 {
    r["bytes_up"].as_u64().unwrap() + r["bytes_down"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_page_sort_filter_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let (c, seed) = seeded(dir.path()).await;
    let admin = common::token(&c, "admin", None);
    let range = format!("from={}&to={}", seed.from, seed.to);

    // By time: every flow exactly once, newest first, across pages whose
    // edges fall inside runs of equal last_seen.
    let (rows, pages) = all_pages(&c, &format!("{range}&limit=37"), &admin).await;
    assert_eq!(rows.len(), seed.flows.len());
    assert_eq!(pages, seed.flows.len().div_ceil(37));
    let keys: BTreeSet<_> = rows.iter().map(key).collect();
    assert_eq!(keys.len(), seed.flows.len(), "no row twice");
    let expected: BTreeSet<_> = seed
        .flows
        .iter()
        .map(|(n, f)| (n.clone(), f.flow_id))
        .collect();
    assert_eq!(keys, expected);
    let times: Vec<String> = rows
        .iter()
        .map(|r| r["last_seen"].as_str().unwrap().to_string())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // "Everything" is clipped to what the store can hold, losing nothing.
    let (rows, _) = all_pages(&c, "from=0&to=4102444800&limit=1000", &admin).await;
    assert_eq!(rows.len(), seed.flows.len());

    // By bytes within a network: every dinkes flow once, most bytes first.
    let (rows, _) = all_pages(
        &c,
        &format!("{range}&host=10.1.0.0/16&sort=bytes&limit=40"),
        &admin,
    )
    .await;
    assert_eq!(rows.len(), 250);
    assert_eq!(rows.iter().map(key).collect::<BTreeSet<_>>().len(), 250);
    assert!(rows.windows(2).all(|w| total(&w[0]) >= total(&w[1])));
    assert_eq!(total(&rows[0]), 4900 + 2450);

    // Filters.
    let (rows, _) = all_pages(&c, &format!("{range}&agency=dinkes&unit=umum"), &admin).await;
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| r["src_ip"] == "10.1.2.20"));
    let (rows, _) = all_pages(&c, &format!("{range}&peer=203.0.113.4&proto=UDP"), &admin).await;
    let want = seed
        .flows
        .iter()
        .filter(|(_, f)| f.dst_ip.to_string() == "203.0.113.4" && f.proto == "udp")
        .count();
    assert!(want > 0);
    assert_eq!(rows.len(), want);
    let (rows, _) = all_pages(&c, &format!("{range}&site=portal.example.go.id"), &admin).await;
    let want = seed
        .flows
        .iter()
        .filter(|(_, f)| {
            f.site
                .as_deref()
                .is_some_and(|s| s.ends_with("portal.example.go.id"))
        })
        .count();
    assert_eq!(rows.len(), want);
    assert!(rows.iter().any(|r| r["node_id"] == "bappeda-01"));
    let (rows, _) = all_pages(&c, &format!("{range}&host=10.1.1.10"), &admin).await;
    assert!(rows
        .iter()
        .all(|r| r["src_ip"] == "10.1.1.10" || r["dst_ip"] == "10.1.1.10"));
    let want = seed
        .flows
        .iter()
        .filter(|(_, f)| f.src_ip.to_string() == "10.1.1.10")
        .count();
    assert_eq!(rows.len(), want);

    // CSV: the same rows as the JSON pages, in the same order.
    let (status, head, body) = fetch(
        &c,
        &format!("/api/v1/flows?{range}&agency=dinkes&format=csv"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(header(&head, "content-type")
        .unwrap()
        .starts_with("text/csv"));
    assert!(header(&head, "content-disposition")
        .unwrap()
        .contains("simpul-flows.csv"));
    let csv = parse_csv(&body);
    let (json_rows, _) = all_pages(&c, &format!("{range}&agency=dinkes&limit=1000"), &admin).await;
    let cols = &csv[0];
    let col = |n: &str| cols.iter().position(|c| c == n).unwrap();
    assert_eq!(csv.len() - 1, json_rows.len());
    for (line, r) in csv[1..].iter().zip(&json_rows) {
        assert_eq!(line[col("node_id")], r["node_id"].as_str().unwrap());
        assert_eq!(line[col("flow_id")], r["flow_id"].to_string());
        assert_eq!(line[col("bytes_up")], r["bytes_up"].to_string());
        assert_eq!(line[col("last_seen")], r["last_seen"].as_str().unwrap());
        assert_eq!(line[col("site")], r["site"].as_str().unwrap_or(""));
    }
    // A CSV export is bounded by its limit.
    let (_, _, body) = fetch(
        &c,
        &format!("/api/v1/flows?{range}&format=csv&limit=7"),
        &admin,
    )
    .await;
    assert_eq!(parse_csv(&body).len(), 8);

    // Bad input: 400 with what was wrong.
    let (_, head, _) = fetch(&c, &format!("/api/v1/flows?{range}&limit=1"), &admin).await;
    let time_cursor = header(&head, "x-next-cursor").unwrap().to_string();
    for (query, expect) in [
        (
            "sort=size".to_string(),
            "sort: \"size\" is not time or bytes",
        ),
        ("cursor=zz".into(), "cursor: not one this API gave"),
        // A cursor of the format before ties went by flow identity (sort,
        // key, row id): refused, not read as a place in today's order.
        (
            format!("cursor=74{}{}", "00".repeat(8), "01".repeat(8)),
            "cursor: from an earlier version of the collector",
        ),
        (
            format!("sort=bytes&cursor={time_cursor}"),
            "cursor: it belongs to another sort order",
        ),
        ("host=10.0.0.0/33".into(), "host: prefix /33 is not 0..32"),
        (
            "host=dinkes".into(),
            "host: \"dinkes\" is not an IP address",
        ),
        ("peer=nope".into(), "peer: \"nope\" is not an IP address"),
        ("site=a%20b".into(), "site: \"a b\" is not a DNS name"),
        ("unit=a/b".into(), "unit: \"a/b\" is not a valid code"),
        ("proto=t%3Bcp".into(), "proto: \"t;cp\" is not a protocol"),
        ("format=xml".into(), "format: \"xml\" is not json or csv"),
        ("limit=0".into(), "limit must be at least 1"),
        ("limit=1001".into(), "limit must be at most 1000"),
        ("bogus=1".into(), "unknown field `bogus`"),
    ] {
        let (status, v) = json(&c, &format!("/api/v1/flows?{query}"), &admin).await;
        assert_eq!(status, 400, "{query}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(expect), "{query}: {e:?}");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_drill_down_and_officer_scope() {
    let dir = tempfile::tempdir().unwrap();
    let (c, seed) = seeded(dir.path()).await;
    let admin = common::token(&c, "admin", None);
    let officer = common::token(&c, "agency", Some("dinkes"));
    let range = format!("from={}&to={}", seed.from, seed.to);

    // An address: its unit, its flows, peers and sites, its blocked attempt.
    let (status, v) = json(&c, &format!("/api/v1/search?q=10.1.1.10&{range}"), &admin).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["kind"], "address");
    assert_eq!(v["matches"][0]["unit"], "gizi");
    assert_eq!(v["matches"].as_array().unwrap().len(), 1);
    let mine: Vec<&FlowRecord> = seed
        .flows
        .iter()
        .map(|(_, f)| f)
        .filter(|f| f.src_ip.to_string() == "10.1.1.10")
        .collect();
    let s = &v["summary"];
    assert_eq!(s["flows"], mine.len() as u64);
    assert_eq!(s["bytes_up"], mine.iter().map(|f| f.bytes_up).sum::<u64>());
    assert_eq!(s["complete"], true);
    assert_eq!(s["hosts"].as_array().unwrap().len(), 1);
    let peers: BTreeSet<String> = s["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = mine.iter().map(|f| f.dst_ip.to_string()).collect();
    assert_eq!(peers, want);
    assert_eq!(v["flows"].as_array().unwrap().len(), mine.len().min(50));
    assert_eq!(v["flows_filter"]["host"], "10.1.1.10");
    assert_eq!(v["blocked"][0]["target"], "slot88.example");
    assert_eq!(v["blocked"].as_array().unwrap().len(), 1);

    // A network.
    let (_, v) = json(&c, &format!("/api/v1/search?q=10.1.0.0/16&{range}"), &admin).await;
    assert_eq!(v["kind"], "network");
    assert_eq!(v["summary"]["flows"], 250);
    assert_eq!(v["flows"].as_array().unwrap().len(), 50);
    assert!(v["next_cursor"].is_string(), "more than one page");
    assert_eq!(v["summary"]["units"].as_array().unwrap().len(), 2);

    // A site: its hosts across agencies (admin), subdomains included.
    let (_, v) = json(
        &c,
        &format!("/api/v1/search?q=portal.example.go.id&{range}"),
        &admin,
    )
    .await;
    assert_eq!(v["kind"], "site");
    let hosts: BTreeSet<&str> = v["summary"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert!(
        hosts.contains("10.2.1.5") && hosts.contains("10.1.1.10"),
        "{hosts:?}"
    );
    assert_eq!(v["blocked"][0]["target"], "judi.portal.example.go.id");

    // A unit by name, and by agency/unit.
    for q in ["Bidang%20Gizi", "dinkes/gizi", "gizi"] {
        let (_, v) = json(&c, &format!("/api/v1/search?q={q}&{range}"), &admin).await;
        assert_eq!(v["kind"], "unit", "{q}: {v}");
        assert_eq!(v["flows_filter"]["unit"], "gizi");
        assert_eq!(v["summary"]["flows"], 200);
        assert!(v["summary"]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["unit"] == "gizi"));
    }
    // Several names: the caller picks one.
    let (_, v) = json(&c, &format!("/api/v1/search?q=a&{range}"), &admin).await;
    assert_eq!(v["kind"], "names");
    assert!(v["matches"].as_array().unwrap().len() >= 3);

    // Drill-down: agency → units → hosts.
    let (status, units) = json(
        &c,
        &format!("/api/v1/agencies/dinkes/units?{range}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{units}");
    assert_eq!(units[0]["unit"], "gizi");
    assert_eq!(units[0]["name"], "Bidang Gizi");
    assert_eq!(units[0]["bytes_in"], 40_000);
    assert_eq!(units[1]["unit"], "umum");
    assert_eq!(units[1]["bytes_out"], 2_500);
    let (_, _, body) = fetch(
        &c,
        &format!("/api/v1/agencies/dinkes/units?{range}&format=csv"),
        &admin,
    )
    .await;
    let csv = parse_csv(&body);
    assert_eq!(csv[0][..4], ["unit", "name", "bytes_in", "bytes_out"]);
    assert_eq!(csv[1][..4], ["gizi", "Bidang Gizi", "40000", "10000"]);
    assert_eq!(csv.len(), 3);
    let (status, hosts) = json(
        &c,
        &format!("/api/v1/top/hosts?agency=dinkes&unit=gizi&{range}&limit=100"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{hosts}");
    let hosts: BTreeSet<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        hosts,
        BTreeSet::from(["10.1.1.10", "10.1.1.11", "10.1.1.12", "10.1.1.13"])
    );
    let (_, _, body) = fetch(
        &c,
        &format!("/api/v1/top/hosts?agency=dinkes&unit=umum&{range}&format=csv"),
        &admin,
    )
    .await;
    let csv = parse_csv(&body);
    assert_eq!(csv.len(), 2);
    assert_eq!(csv[1][0], "10.1.2.20");

    // The officer of dinkes: nothing of bappeda, whatever is asked.
    for q in [
        "portal.example.go.id",
        "10.2.1.5",
        "203.0.113.1",
        "bappeda",
        "plan",
        "a",
    ] {
        let (status, mut v) = json(&c, &format!("/api/v1/search?q={q}&{range}"), &officer).await;
        assert_eq!(status, 200, "{q}: {v}");
        // What was asked is said back; the rest must not show bappeda.
        let o = v.as_object_mut().unwrap();
        o.remove("q");
        o.remove("flows_filter");
        let text = v.to_string();
        assert!(
            !text.contains("bappeda") && !text.contains("10.2.1.5"),
            "{q} shows bappeda to dinkes's officer: {text}"
        );
    }
    let (_, v) = json(
        &c,
        &format!("/api/v1/search?q=portal.example.go.id&{range}"),
        &officer,
    )
    .await;
    assert!(v["summary"]["flows"].as_u64().unwrap() > 0);
    let (rows, _) = all_pages(&c, &range, &officer).await;
    assert_eq!(rows.len(), 250);
    for path in [
        format!("/api/v1/flows?agency=bappeda&{range}"),
        format!("/api/v1/agencies/bappeda/units?{range}"),
        format!("/api/v1/top/hosts?agency=bappeda&unit=plan&{range}"),
    ] {
        let (status, v) = json(&c, &path, &officer).await;
        assert_eq!(status, 403, "{path}: {v}");
    }

    // Bad input.
    for (query, expect) in [
        ("q=10.0.0.0/40", "q: prefix /40 is not 0..32"),
        ("q=a%01b", "control characters"),
        ("q=10.1.1.1&from=5&to=4", "from must be before to"),
    ] {
        let (status, v) = json(&c, &format!("/api/v1/search?{query}"), &admin).await;
        assert_eq!(status, 400, "{query}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(expect),
            "{query}: {v}"
        );
    }
    let (status, v) = json(&c, &format!("/api/v1/top/hosts?unit=gizi&{range}"), &admin).await;
    assert_eq!(status, 400);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("unit: give the agency too"));
    c.stop().await;
}

//! Monthly reports against an in-process collector on a real SQLite store:
//! traffic, blocked attempts and flows arrive from enrolled agents over the
//! TLS WebSocket; incidents, policy versions and the node's enrollment time
//! are seeded in the database for a known hour of the month. The report is
//! asked for over real HTTP as JSON, CSV and PDF, the PDF read back with
//! `pdftotext` and its figures compared with the JSON's. The scheduled
//! pass mails the PDFs to a real SMTP listener the test runs.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{enroll, send_batch, token};
use serde_json::{json, Value};
use simpul_collector::reports::Month;
use simpul_collector::server::Collector;
use simpul_collector::store::{NewIncident, PolicyVersion};
use simpul_proto::wire::Batch;
use simpul_proto::{
    BlockMethod, BlockedAttempt, CounterSample, EndReason, FlowRecord, RecordKind, TrafficScope,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const S: u64 = 1_000_000_000;
const WIB: i32 = 7 * 3600;

fn now_s() -> u64 {
    simpul_collector::state::now_secs()
}

/// The whole hour the traffic is put in: ended at least two minutes ago,
/// with the minute after it in the same month (the second policy version
/// is saved then). The report is of that month (the last one early on the 1st).
fn the_hour() -> u64 {
    let h = (now_s() - 3600 - 120) / 3600 * 3600;
    if Month::containing(h + 3660, WIB) != Month::containing(h, WIB) {
        return h - 3600;
    }
    h
}

fn counters(
    agency: &str,
    hour: u64,
    per_minute: u64,
    burst_minute: u64,
    burst: u64,
) -> Vec<CounterSample> {
    (0..60)
        .map(|k| CounterSample {
            ts: hour + k * 60,
            agency: agency.into(),
            unit: "umum".into(),
            scope: TrafficScope::Internet,
            bytes_in: if k == burst_minute { burst } else { per_minute },
            bytes_out: per_minute / 10,
            packets_in: 100,
            packets_out: 10,
        })
        .collect()
}

fn flow(id: u64, agency: &str, site: &str, t_ns: u64, bytes_down: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        kind: RecordKind::Final,
        end_reason: EndReason::Fin,
        proto: "tcp".into(),
        src_ip: "10.10.1.10".parse().unwrap(),
        src_port: Some(40_000),
        dst_ip: "203.0.113.10".parse().unwrap(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: 10,
        bytes_up: 1000,
        packets_down: 10,
        bytes_down,
        first_seen: t_ns - 2 * S,
        last_seen: t_ns,
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

fn attempt(agency: &str, target: &str, list: &str, t_s: u64, attempts: u32) -> BlockedAttempt {
    BlockedAttempt {
        first_seen: (t_s - 10) * S,
        last_seen: t_s * S,
        client: "10.10.1.20".parse().unwrap(),
        agency: agency.into(),
        unit: "umum".into(),
        method: BlockMethod::Sni,
        target: target.into(),
        server: None,
        port: Some(443),
        proto: "tcp".into(),
        rule: target.into(),
        list: list.into(),
        attempts,
    }
}

fn batch(
    seq: u64,
    counters: Vec<CounterSample>,
    flows: Vec<FlowRecord>,
    blocked: Vec<BlockedAttempt>,
) -> Batch {
    Batch {
        boot_epoch: 1,
        seq,
        sealed_ms: simpul_collector::state::now_ms(),
        flows,
        counters,
        blocked,
        dropped_records: 0,
        dropped_batches: 0,
    }
}

fn policy(version: u64, down: u64, at_ms: u64, by: &str, comment: &str) -> PolicyVersion {
    let rates = |r: u64| json!({"rate_bps": r, "ceil_bps": r * 2});
    let p = json!({"version": version, "agency": "dinkes",
                   "allocation": {"download": rates(down), "upload": rates(100_000)}});
    PolicyVersion {
        agency: "dinkes".into(),
        version,
        policy_json: p.to_string(),
        signature: vec![0; 64],
        key_id: "test".into(),
        created_ms: at_ms,
        created_by: by.into(),
        comment: comment.into(),
        document: None,
        default_version: 0,
    }
}

/// What the report should say, independently of how it is computed.
struct Seeded {
    month: Month,
    hour: u64,
    dinkes_in: u64,
}

/// dinkes: one hour at 100 kbit/s with one minute at 200 kbit/s, against
/// 100 kbit/s allocated (raised to 200 kbit/s a minute after the hour);
/// incidents (critical, one in maintenance, one unreachable), blocked
/// attempts of two categories, a site. bappeda: some traffic.
async fn seeded(
    dir: &std::path::Path,
    cfg: Option<simpul_collector::config::CollectorConfig>,
) -> (Collector, Seeded, Vec<common::Ws>) {
    let cfg = cfg.unwrap_or_else(|| common::base_config(dir));
    let c = common::start(cfg, &["dinkes", "bappeda"], vec![]).await;
    let hour = the_hour();
    let month = Month::containing(hour, WIB);
    let mut dinkes = enroll(&c, "dinkes", "dinkes-01").await;
    let mut bappeda = enroll(&c, "bappeda", "bappeda-01").await;
    let (per_minute, burst) = (750_000, 1_500_000);
    send_batch(
        &mut dinkes,
        batch(
            1,
            counters("dinkes", hour, per_minute, 10, burst),
            vec![flow(
                1,
                "dinkes",
                "dinkes-site.example",
                (hour + 1800) * S,
                90_000,
            )],
            vec![
                attempt("dinkes", "slot88.example", "judi", hour + 1200, 3),
                attempt("dinkes", "quic", "quic", hour + 1300, 2),
            ],
        ),
    )
    .await;
    send_batch(
        &mut bappeda,
        batch(
            1,
            counters("bappeda", hour, 10_000, 0, 10_000),
            vec![flow(
                1,
                "bappeda",
                "bappeda-site.example",
                (hour + 1800) * S,
                5_000,
            )],
            vec![attempt("bappeda", "togel.example", "judi", hour + 1200, 7)],
        ),
    )
    .await;
    // The policy versions of the month, and the node enrolled before the hour.
    let control = c.state.control.clone();
    control
        .save_policy(&policy(
            1,
            100_000,
            (hour - 3600).max(month.start(WIB)) * 1000,
            "admin-a",
            "Alokasi awal, surat 001/NOC",
        ))
        .unwrap();
    control
        .save_policy(&policy(
            2,
            200_000,
            (hour + 3660) * 1000,
            "admin-b",
            "Naik alokasi, surat 002/NOC",
        ))
        .unwrap();
    let db = rusqlite::Connection::open(dir.join("simpul.db")).unwrap();
    let enrolled_ns = i64::try_from((hour - 7200).max(month.start(WIB)) * S).unwrap();
    db.execute(
        "UPDATE nodes SET enrolled_at = ?1 WHERE node_id = 'dinkes-01'",
        [enrolled_ns],
    )
    .unwrap();
    let mut inc = control.incidents().unwrap();
    let h_ms = hour * 1000;
    let open = |inc: &mut simpul_collector::store::IncidentStore,
                kind: &'static str,
                severity: &'static str,
                start_ms: u64,
                maintenance: bool| {
        inc.open(&NewIncident {
            node_id: "dinkes-01",
            agency: "dinkes",
            kind,
            severity,
            root_cause: None,
            children: &[],
            started_ms: start_ms,
            detected_ms: start_ms + 10_000,
            maintenance,
        })
        .unwrap()
        .0
        .id
    };
    let a = open(&mut inc, "down", "critical", h_ms + 300_000, false);
    inc.ack(a, "budi", h_ms + 370_000).unwrap();
    inc.resolve(a, h_ms + 900_000).unwrap();
    inc.add_maintenance(&simpul_collector::store::Maintenance {
        id: 0,
        node_id: Some("dinkes-01".into()),
        agency: None,
        starts_ms: h_ms + 1_200_000,
        ends_ms: h_ms + 1_500_000,
        reason: "ganti router".into(),
        created_by: "noc".into(),
        created_ms: h_ms,
    })
    .unwrap();
    let b = open(&mut inc, "down", "major", h_ms + 1_200_000, true);
    inc.resolve(b, h_ms + 1_500_000).unwrap();
    let u = open(&mut inc, "unreachable", "major", h_ms + 2_000_000, false);
    inc.resolve(u, h_ms + 2_100_000).unwrap();
    let dinkes_in = 59 * per_minute + burst;
    (
        c,
        Seeded {
            month,
            hour,
            dinkes_in,
        },
        vec![dinkes, bappeda],
    )
}

/// GET over plain HTTP: status, headers (lower-case), body bytes.
async fn fetch(c: &Collector, path: &str, bearer: &str) -> (u16, String, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(c.http_addr.unwrap())
        .await
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {bearer}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut raw))
        .await
        .expect("answer within 60 s")
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, head, body)
}

fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils, scripts/setup.sh) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Indonesian number formats, written again here so the test does not
/// trust the code under test: `1.234.567`, `12,34`.
fn id_int(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(ch);
    }
    out
}

fn id_dec2(v: f64) -> String {
    let s = format!("{v:.2}");
    let (w, f) = s.split_once('.').unwrap();
    format!("{},{f}", id_int(w.parse().unwrap()))
}

fn id_rate(bps: f64) -> String {
    format!("{} Mbit/s", id_dec2(bps / 1e6))
}

fn id_pct(p: f64) -> String {
    format!("{} %", id_dec2((p * 100.0).floor() / 100.0))
}

/// The line of `text` that holds `label`, and that it also holds `value`.
fn line_has(text: &str, label: &str, value: &str) {
    let line = text
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no line with {label:?} in:\n{text}"));
    assert!(line.contains(value), "{label:?}: {value:?} not in {line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_report_json_csv_pdf_agree_and_officers_see_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (c, seed, _agents) = seeded(dir.path(), None).await;
    let admin = token(&c, "admin", None);
    let m = seed.month.to_string();

    let (status, head, body) = fetch(
        &c,
        &format!("/api/v1/reports/monthly?month={m}&agency=dinkes"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.contains("content-type: application/json"), "{head}");
    let r: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["month"], m.as_str());
    assert_eq!(r["agency"], "dinkes");
    assert_eq!(r["utc_offset"], "+07:00");
    let u = &r["usage"];
    assert_eq!(u["bytes_in"], seed.dinkes_in, "{u}");
    assert_eq!(u["internet_bytes_in"], seed.dinkes_in);
    assert_eq!(u["bytes_out"], 60 * 75_000);
    // The burst minute: 1.5 MB in a minute is 200 kbit/s.
    assert_eq!(u["peak_in_bps"], 200_000.0);
    assert_eq!(u["rate_step_secs"], 60);
    // The store's one-second peak: the burst was one second of 1.5 MB.
    assert_eq!(u["peak_1s_in_bps"], 12_000_000, "{u}");
    // The hour averaged 100.83 kbit/s against 100 kbit/s in force at its start.
    assert_eq!(u["hours_above_95_in"], 1, "{u}");
    assert_eq!(u["hours_above_95_out"], 0);
    assert_eq!(u["alloc_down_bps"], 200_000);
    let day = (seed.hour - seed.month.start(WIB)) / 86_400;
    let d = &r["daily"][day as usize];
    assert_eq!(d["bytes_in"], seed.dinkes_in, "{d}");
    assert_eq!(d["peak_in_bps"], 200_000.0);
    // Incidents: the critical one acknowledged in 60 s, resolved in 600 s;
    // the one in maintenance and the unreachable spell apart.
    let inc = &r["incidents"];
    let crit = inc["by_severity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["severity"] == "critical")
        .unwrap();
    assert_eq!(crit["incidents"], 1, "{inc}");
    assert_eq!(crit["mean_ack_secs"], 60.0);
    assert_eq!(crit["max_resolve_secs"], 600.0);
    assert!(
        inc["by_severity"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["severity"] != "major"),
        "{inc}"
    );
    assert_eq!(inc["in_maintenance"], 1);
    assert_eq!(inc["unreachable"], 1);
    // Availability from enrollment on: 10 min down, not the time before.
    let av = r["availability"]["nodes"].as_array().unwrap();
    let n1 = av.iter().find(|a| a["node_id"] == "dinkes-01").unwrap();
    assert_eq!(n1["down_ms"], 600_000, "{n1}");
    assert_eq!(n1["maintenance_ms"], 300_000);
    assert_eq!(n1["unreachable_ms"], 100_000);
    assert!(
        n1["unmonitored_ms"].as_u64().unwrap() >= 3_600_000
            || seed.hour - 7200 < seed.month.start(WIB)
    );
    assert!(n1["availability_pct"].as_f64().unwrap() < 100.0);
    assert!(av.iter().all(|a| a["agency"] == "dinkes"));
    // Blocked attempts by category; top sites; the month's policy changes.
    let cats: Vec<(String, u64)> = r["blocked"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["category"].as_str().unwrap().to_string(),
                c["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cats, [("judi".to_string(), 3), ("quic".to_string(), 2)]);
    assert_eq!(r["blocked"]["attempts"], 5);
    assert_eq!(r["top_sites"][0]["site"], "dinkes-site.example");
    let changes = r["policy_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[1]["by"], "admin-b");
    assert_eq!(changes[1]["comment"], "Naik alokasi, surat 002/NOC");
    assert!(
        changes[1]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "allocation.download.rate_bps"),
        "{changes:?}"
    );
    assert!(
        !r.to_string().contains("bappeda"),
        "dinkes's report names bappeda"
    );

    // The PDF says the same figures.
    let (status, head, pdf) = fetch(
        &c,
        &format!("/api/v1/reports/monthly?month={m}&agency=dinkes&format=pdf"),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/pdf"), "{head}");
    assert!(
        head.contains(&format!(
            "content-disposition: attachment; filename=\"simpul-laporan-{m}-dinkes.pdf\""
        )),
        "{head}"
    );
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdftotext(&pdf);
    assert!(text.contains("Laporan Bulanan Jaringan Intra"), "{text}");
    let n = |v: &Value| v.as_u64().unwrap();
    let f = |v: &Value| v.as_f64().unwrap();
    line_has(
        &text,
        "Total masuk (unduh)",
        &format!("({} B)", id_int(n(&u["bytes_in"]))),
    );
    line_has(
        &text,
        "Total keluar (unggah)",
        &format!("({} B)", id_int(n(&u["bytes_out"]))),
    );
    line_has(&text, "Puncak unduh", &id_rate(f(&u["peak_in_bps"])));
    line_has(&text, "Persentil 95 unduh", &id_rate(f(&u["p95_in_bps"])));
    line_has(
        &text,
        "Puncak per detik unduh",
        &id_rate(f(&u["peak_1s_in_bps"])),
    );
    line_has(
        &text,
        "Puncak per detik unggah",
        &id_rate(f(&u["peak_1s_out_bps"])),
    );
    line_has(&text, "Persentil 95 unggah", &id_rate(f(&u["p95_out_bps"])));
    line_has(&text, "Alokasi unduh", &id_rate(f(&u["alloc_down_bps"])));
    line_has(
        &text,
        "Jam di atas 95% alokasi (unduh)",
        &format!(
            "{} jam dari {}",
            u["hours_above_95_in"], u["hours_with_allocation"]
        ),
    );
    line_has(
        &text,
        "Ketersediaan keseluruhan",
        &id_pct(f(&r["availability"]["overall_pct"])),
    );
    line_has(&text, "dinkes-01", &id_pct(f(&n1["availability_pct"])));
    line_has(&text, "kritis", "1 mnt 0 dtk");
    line_has(&text, "kritis", "10 mnt 0 dtk");
    line_has(
        &text,
        "Saat pemeliharaan (tidak dihitung)",
        &inc["in_maintenance"].to_string(),
    );
    line_has(
        &text,
        "Tak terjangkau (tidak dihitung)",
        &inc["unreachable"].to_string(),
    );
    line_has(&text, "judi", "3");
    line_has(&text, "Total percobaan diblokir", "5");
    line_has(
        &text,
        "dinkes-site.example",
        &id_int(n(&r["top_sites"][0]["bytes"])),
    );
    line_has(&text, "admin-b", "Naik alokasi");
    line_has(&text, "admin-a", "Alokasi awal");
    assert!(!text.contains("bappeda"));

    // English on request.
    let (_, head, pdf) = fetch(
        &c,
        &format!("/api/v1/reports/monthly?month={m}&agency=dinkes&format=pdf&lang=en"),
        &admin,
    )
    .await;
    assert!(
        head.contains(&format!("filename=\"simpul-report-{m}-dinkes.pdf\"")),
        "{head}"
    );
    let en = pdftotext(&pdf);
    assert!(en.contains("Monthly Intranet Report"), "{en}");
    assert!(en.contains("Peak download"));

    // CSV: the same numbers, raw.
    let (status, head, csv) = fetch(
        &c,
        &format!("/api/v1/reports/monthly?month={m}&agency=dinkes&format=csv"),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/csv"), "{head}");
    assert!(
        head.contains(&format!("filename=\"simpul-laporan-{m}-dinkes.csv\"")),
        "{head}"
    );
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.contains(&format!("bytes_in,{}\r\n", seed.dinkes_in)),
        "{csv}"
    );
    assert!(csv.contains("hours_above_95_in,1\r\n"), "{csv}");
    assert!(csv.contains("judi,3,1,1\r\n"), "{csv}");
    assert!(csv.contains("Naik alokasi, surat 002/NOC"), "{csv}");

    // The province: both agencies, their sum.
    let (status, _, body) = fetch(&c, &format!("/api/v1/reports/monthly?month={m}"), &admin).await;
    assert_eq!(status, 200);
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["agency"], Value::Null);
    assert_eq!(p["usage"]["bytes_in"], seed.dinkes_in + 60 * 10_000);
    assert_eq!(p["blocked"]["attempts"], 12);
    assert_eq!(
        p["usage"]["peak_1s_in_bps"],
        Value::Null,
        "no summed seconds for the province"
    );
    let codes: Vec<&str> = p["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["dinkes", "bappeda"]);
    let (_, head, pdf) = fetch(
        &c,
        &format!("/api/v1/reports/monthly?month={m}&format=pdf"),
        &admin,
    )
    .await;
    assert!(
        head.contains(&format!("filename=\"simpul-laporan-{m}-provinsi.pdf\"")),
        "{head}"
    );
    let ptext = pdftotext(&pdf);
    line_has(
        &ptext,
        "Total masuk (unduh)",
        &format!("({} B)", id_int(n(&p["usage"]["bytes_in"]))),
    );
    line_has(
        &ptext,
        "bappeda",
        &id_int(60 * 10_000).chars().take(3).collect::<String>(),
    );

    // Agency officers: their own agency only.
    let dinkes_officer = token(&c, "agency", Some("dinkes"));
    let bappeda_officer = token(&c, "agency", Some("bappeda"));
    let (status, _, body) = fetch(
        &c,
        &format!("/api/v1/reports/monthly?month={m}"),
        &dinkes_officer,
    )
    .await;
    assert_eq!(status, 200);
    let own: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(own["agency"], "dinkes");
    assert_eq!(own["usage"], r["usage"]);
    for path in [
        format!("/api/v1/reports/monthly?month={m}&agency=dinkes"),
        format!("/api/v1/reports/monthly?month={m}&agency=dinkes&format=pdf"),
    ] {
        let (status, _, body) = fetch(&c, &path, &bappeda_officer).await;
        assert_eq!(status, 403, "{path}: {}", String::from_utf8_lossy(&body));
    }
    // The viewer (wall) has no reports.
    let (status, _, _) = fetch(&c, "/api/v1/reports/monthly", &token(&c, "viewer", None)).await;
    assert_eq!(status, 403);

    // Bad requests say what is wrong.
    let future = Month::containing(now_s(), WIB).next().to_string();
    for (query, expect) in [
        ("month=2026-13".to_string(), "month must be 01 to 12"),
        ("month=2026-1".to_string(), "YYYY-MM"),
        (format!("month={future}"), "is in the future"),
        ("month=2001-01".to_string(), "24 months"),
        ("format=xls".to_string(), "format"),
        ("lang=fr".to_string(), "lang"),
        ("agency=no%20such".to_string(), "agency"),
        ("when=now".to_string(), "unknown field"),
    ] {
        let (status, _, body) =
            fetch(&c, &format!("/api/v1/reports/monthly?{query}"), &admin).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400, "{query}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(expect),
            "{query}: {v}"
        );
    }
    let (status, _, _) = fetch(
        &c,
        &format!("/api/v1/reports/monthly?month={m}&agency=nosuch"),
        &admin,
    )
    .await;
    assert_eq!(status, 404);
    c.stop().await;
}

#[derive(Debug, Clone, Default)]
struct Mail {
    to: Vec<String>,
    data: String,
}

/// Just enough SMTP (as notify's tests): EHLO, MAIL, RCPT, DATA, QUIT.
async fn smtp_sink() -> (std::net::SocketAddr, Arc<Mutex<Vec<Mail>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink.test ESMTP\r\n").await?;
                let mut mail = Mail::default();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    let up = line.trim_end().to_ascii_uppercase();
                    if up.starts_with("EHLO") || up.starts_with("HELO") {
                        w.write_all(b"250-sink.test\r\n250 8BITMIME\r\n").await?;
                    } else if up.starts_with("RCPT TO:") {
                        mail.to.push(line.trim_end()[8..].trim().to_string());
                        w.write_all(b"250 OK\r\n").await?;
                    } else if up == "DATA" {
                        w.write_all(b"354 go ahead\r\n").await?;
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await? == 0 || line == ".\r\n" {
                                break;
                            }
                            mail.data.push_str(&line);
                        }
                        store.lock().unwrap().push(std::mem::take(&mut mail));
                        w.write_all(b"250 queued\r\n").await?;
                    } else if up == "QUIT" {
                        w.write_all(b"221 bye\r\n").await?;
                        return Ok(());
                    } else {
                        w.write_all(b"250 OK\r\n").await?;
                    }
                }
            });
        }
    });
    (addr, mails)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = s.bytes().filter_map(val).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut n: u32 = 0;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// The attachment of a multipart message, by its file name.
fn attachment(data: &str, name: &str) -> Vec<u8> {
    // lettre writes the name as an RFC 2231 parameter (`filename*0=`).
    let at = data
        .find(&format!("filename*0=\"{name}\""))
        .or_else(|| data.find(&format!("filename=\"{name}\"")))
        .unwrap_or_else(|| {
            panic!(
                "no attachment {name} in:\n{}",
                &data[..data.len().min(3000)]
            )
        });
    let rest = &data[at..];
    let start = rest.find("\r\n\r\n").unwrap() + 4;
    let end = rest[start..].find("\r\n--").unwrap();
    base64_decode(&rest[start..start + end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_of_the_month_makes_stores_and_mails_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, mails) = smtp_sink().await;
    let text = format!(
        r#"
[notify.email.pimpinan]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "NOC Diskominfo <noc@example.go.id>"
to = ["noc@example.go.id"]

[reports]
recipients = ["kadis@example.go.id", "Kabid TIK <kabid@example.go.id>"]
agency_recipients = {{ dinkes = ["it@dinkes.example.go.id"] }}
"#,
        port = smtp.port()
    );
    let path = dir.path().join("collector.toml");
    let mut cfg = simpul_collector::config::CollectorConfig::parse(&text, &path).unwrap();
    let base = common::base_config(dir.path());
    cfg.server = base.server;
    cfg.storage = base.storage;
    let (c, seed, _agents) = seeded(dir.path(), Some(cfg)).await;
    // Nothing is due while the month runs, or before ten minutes past
    // midnight on the 1st.
    let end = seed.month.end(WIB);
    let early = simpul_collector::reports::schedule::run_once(&c.state, end + 60)
        .await
        .unwrap();
    assert_eq!((early.generated, early.mailed), (0, 0));
    let pass = simpul_collector::reports::schedule::run_once(&c.state, end + 11 * 60)
        .await
        .unwrap();
    assert_eq!(pass.month, Some(seed.month.to_string()));
    assert_eq!((pass.generated, pass.mailed), (3, 2), "{pass:?}");
    let m = seed.month.to_string();
    let stored = dir.path().join("reports").join(&m);
    for scope in ["provinsi", "dinkes", "bappeda"] {
        for ext in ["pdf", "csv", "json"] {
            let f = stored.join(format!("simpul-laporan-{m}-{scope}.{ext}"));
            assert!(f.exists(), "{} missing", f.display());
        }
    }
    // Two messages: the province's to the recipients, dinkes's to its own.
    let got = mails.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let province = got
        .iter()
        .find(|g| g.to.iter().any(|t| t.contains("kadis")))
        .unwrap();
    assert_eq!(
        province.to,
        ["<kadis@example.go.id>", "<kabid@example.go.id>"]
    );
    assert!(
        province.data.contains("Content-Type: multipart/mixed"),
        "{}",
        province.data
    );
    let pdf = attachment(&province.data, &format!("simpul-laporan-{m}-provinsi.pdf"));
    assert_eq!(
        pdf,
        std::fs::read(stored.join(format!("simpul-laporan-{m}-provinsi.pdf"))).unwrap()
    );
    let text = pdftotext(&pdf);
    let json: Value = serde_json::from_slice(
        &std::fs::read(stored.join(format!("simpul-laporan-{m}-provinsi.json"))).unwrap(),
    )
    .unwrap();
    line_has(
        &text,
        "Total masuk (unduh)",
        &format!(
            "({} B)",
            id_int(json["usage"]["bytes_in"].as_u64().unwrap())
        ),
    );
    assert_eq!(json["usage"]["bytes_in"], seed.dinkes_in + 60 * 10_000);
    let dinkes = got
        .iter()
        .find(|g| g.to.iter().any(|t| t.contains("dinkes")))
        .unwrap();
    let pdf = attachment(&dinkes.data, &format!("simpul-laporan-{m}-dinkes.pdf"));
    assert!(pdftotext(&pdf).contains("Dinas") || pdftotext(&pdf).contains("dinkes"));
    // Done once: the next pass neither makes nor sends anything again.
    let again = simpul_collector::reports::schedule::run_once(&c.state, end + 20 * 60)
        .await
        .unwrap();
    assert_eq!((again.generated, again.mailed), (0, 0));
    assert_eq!(mails.lock().unwrap().len(), 2);
    c.stop().await;
}

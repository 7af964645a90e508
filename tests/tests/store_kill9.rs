//! A collector killed with SIGKILL again and again while an agent streams
//! ~45 s of traffic at recorded speed, on SQLite and on ClickHouse: each
//! kill waits until the restarted collector has stored a batch of the new
//! connection, so it lands with batches in flight — some between the insert
//! and the acknowledgement. Every flow the agent counted is stored exactly
//! once with its final counts, and the agency's total is tshark's.
//!
//! On ClickHouse, merges are stopped, so copies a kill left (rows written,
//! high-water marks not) stay beside the re-sent batch's rows: the answers
//! must count one copy through the store's FINAL reads, not because
//! ClickHouse merged them away. The test prints how many kills landed in
//! either window (rows without marks; marks without acknowledgement).

// A test: a failed unwrap is a failed test (also in its helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::clickhouse::{self, TempClickHouse};
use common::collector::*;
use common::netns::{sh, wait_for};
use common::*;
use simpul_proto::FlowRecord;

/// download.pcapng (7.3 s) and `copies - 1` copies of it shifted 8 s apart,
/// in one file: sustained traffic, the same flows again and again.
fn long_capture(dir: &Path, copies: u32) -> PathBuf {
    let src = fixtures_dir().join("download.pcapng");
    let mut parts = vec![src.display().to_string()];
    for i in 1..copies {
        let p = dir.join(format!("download-{i}.pcapng"));
        sh(&format!(
            "editcap -t {} {} {}",
            8 * i,
            src.display(),
            p.display()
        ));
        parts.push(p.display().to_string());
    }
    let out = dir.join("long.pcapng");
    sh(&format!(
        "mergecap -a -w {} {}",
        out.display(),
        parts.join(" ")
    ));
    for p in &parts[1..] {
        let _ = std::fs::remove_file(p);
    }
    out
}

fn agency_bytes(c: &Collector) -> u64 {
    let v = c.get("/api/v1/agencies/dinkes/usage?from=0&step=1h");
    let bytes = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    bytes("total_bytes_in") + bytes("total_bytes_out")
}

/// A counter of this collector process (all label sets summed).
fn metric(c: &Collector, name: &str) -> u64 {
    let text = curl(c.http, "/metrics", c.token.as_deref()).unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn kill9_again_and_again(ch: Option<&TempClickHouse>) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::new(dir.path(), &[("dinkes", 100_000_000)], "127.0.0.1", &[]);
    let db = "e2e_kill9";
    if let Some(ch) = ch {
        clickhouse::use_clickhouse(&c, ch, db);
    }
    c.start();
    if let Some(ch) = ch {
        // The collector made the tables at start.
        clickhouse::exec(ch, "SYSTEM STOP MERGES");
    }
    let pcap = long_capture(dir.path(), 6);
    let url = format!("wss://localhost:{}/api/v1/agent", c.tls_port());
    let cfg = agent_config(
        dir.path(),
        "dinkes-01",
        &url,
        &c.ca(),
        &c.token("dinkes", "dinkes-01"),
    );
    // A batch every 100 ms (the least the agent takes): the collector is
    // inside a batch's insert far more often, so more kills land there.
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("batch_interval_ms = 500\n"), "{text}");
    std::fs::write(
        &cfg,
        text.replace("batch_interval_ms = 500\n", "batch_interval_ms = 100\n"),
    )
    .unwrap();
    let flows_out = dir.path().join("agent-flows.jsonl");
    let log = std::fs::File::create(cfg.with_extension("log")).expect("agent log");
    let mut agent = Command::new(agent_bin())
        .arg("replay")
        .arg("--pcap")
        .arg(&pcap)
        .arg("--config")
        .arg(&cfg)
        .arg("--realtime")
        .arg("--flows-out")
        .arg(&flows_out)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent");
    let agent_log = || std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default();

    // Kill only while the agent streams to this process (it stored a batch
    // of the new connection), a little later each time so the kills fall
    // at different points of a batch's way; the agent's backoff grows with
    // every kill, so stop in time for the rest of the capture to flow.
    let began = Instant::now();
    let (mut kills, mut duplicates) = (0u32, 0u64);
    while kills < 5 && began.elapsed() < Duration::from_secs(32) {
        let streaming = wait_for(30, || {
            metric(&c, "simpul_ingest_batches_total") > 0
                || agent.try_wait().ok().flatten().is_some()
        });
        assert!(streaming, "the agent did not come back: {}", agent_log());
        if agent.try_wait().ok().flatten().is_some() {
            break;
        }
        // Every other kill at once: the agent is re-sending what it sealed
        // while the collector was down, the busiest moment for the store.
        if kills % 2 == 1 {
            std::thread::sleep(Duration::from_millis(150 + 170 * u64::from(kills)));
        }
        duplicates += metric(&c, "simpul_ingest_duplicate_batches_total");
        c.kill9();
        kills += 1;
        std::thread::sleep(Duration::from_millis(300));
        c.start();
    }
    assert!(
        kills >= 3,
        "only {kills} kills under traffic: the test proves little"
    );
    assert!(
        wait_for(150, || agent.try_wait().ok().flatten().is_some()),
        "agent did not finish: {}",
        agent_log()
    );
    let status = agent.wait().expect("wait for the agent");
    let log = agent_log();
    assert!(status.success(), "agent failed: {log}");
    assert!(
        !log.contains("not yet acknowledged"),
        "batches left undelivered: {log}"
    );
    duplicates += metric(&c, "simpul_ingest_duplicate_batches_total");

    // Every final record the agent wrote is stored once with its counts.
    let counted = read_jsonl(&flows_out);
    assert!(!counted.is_empty());
    let v = c.get("/api/v1/flows?agency=dinkes&from=0&limit=1000");
    let rows = v.as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    assert!(rows.len() < 1000, "more rows than one page: widen the read");
    let stored: Vec<FlowRecord> = rows
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{e}: {r}")))
        .collect();
    let (want, got) = (multiset(counted.iter()), multiset(stored.iter()));
    let differs: Vec<_> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| (k, want.get(k), got.get(k)))
        .collect();
    assert!(
        differs.is_empty(),
        "store differs from the agent's records (record, agent, store): {differs:?}\nagent log:\n{log}\ncollector log:\n{}",
        c.log_text()
    );
    let tshark: u64 = tshark_conversations(&pcap)
        .values()
        .map(|t| t.sent.values().map(|v| v.1).sum::<u64>())
        .sum();
    assert_eq!(agency_bytes(&c), tshark, "agent log:\n{log}");

    let copies = ch.map(|ch| {
        let n = |sql: &str| clickhouse::number(ch, &format!("SELECT count() FROM {db}.{sql}"));
        ["flow_records", "usage_1s"]
            .map(|t| {
                let (all, once) = (n(t), n(&format!("{t} FINAL")));
                format!("{t} {} ({all} rows, {once} through FINAL)", all - once)
            })
            .join(", ")
    });
    eprintln!(
        "{kills} kills under traffic; {duplicates} re-sent batches already stored (marked, \
         not acknowledged); rows written twice (data, no marks): {}",
        copies.unwrap_or_else(|| "n/a (SQLite: one transaction)".into())
    );
}

#[test]
fn kill9_again_and_again_under_traffic_stores_every_flow_once() {
    kill9_again_and_again(None);
}

#[test]
fn kill9_again_and_again_under_traffic_stores_every_flow_once_on_clickhouse() {
    kill9_again_and_again(Some(&clickhouse::start()));
}

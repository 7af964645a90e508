//! An agent given two collector addresses fails over when the first dies
//! under traffic, and nothing is lost or doubled: two `simpul-collector
//! serve` processes on different ports share one data directory (SQLite has
//! one writer, so B starts after A was killed with SIGKILL), and every
//! flow the agent wrote to its own JSONL is in the store exactly once, with
//! the same counts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::collector::*;
use common::netns::wait_for;
use common::*;
use simpul_proto::FlowRecord;

/// The second collector: collector A's config with its own ports and log,
/// on A's data directory (same CA, keys, credentials and store).
fn second_collector(a: &Collector) -> (Collector, u16) {
    let (http, tls) = (free_port(), free_port());
    let text = std::fs::read_to_string(&a.config).expect("read collector.toml");
    let text = text
        .replace(
            &format!("listen = \"127.0.0.1:{}\"", a.http),
            &format!("listen = \"127.0.0.1:{http}\""),
        )
        .replace(
            &format!("listen_tls = \"127.0.0.1:{}\"", a.tls_port()),
            &format!("listen_tls = \"127.0.0.1:{tls}\""),
        );
    assert!(text.contains(&format!(":{tls}\"")), "{text}");
    let config = a.dir.join("collector-b.toml");
    std::fs::write(&config, text).expect("write collector-b.toml");
    let b = Collector {
        dir: a.dir.clone(),
        config,
        inventory: a.inventory.clone(),
        http,
        child: None,
        log: a.dir.join("collector-b.log"),
        netns: None,
        http_host: "127.0.0.1".into(),
        token: a.token.clone(),
    };
    (b, tls)
}

/// agent.toml with `[collector] urls` instead of `url`.
fn agent_config_for(dir: &Path, urls: &[String], ca: &Path, token: &str) -> PathBuf {
    let cfg = agent_config(dir, "dinkes-01", &urls[0], ca, token);
    let text = std::fs::read_to_string(&cfg).expect("read agent.toml");
    let list: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let text = text.replace(
        &format!("url = \"{}\"", urls[0]),
        &format!("urls = [{}]", list.join(", ")),
    );
    assert!(text.contains("urls = ["), "{text}");
    std::fs::write(&cfg, text).expect("write agent.toml");
    cfg
}

fn run_agent(config: &Path, pcaps: &[PathBuf], flows_out: &Path) -> Child {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("replay");
    for p in pcaps {
        cmd.arg("--pcap").arg(p);
    }
    let log = std::fs::File::create(config.with_extension("log")).expect("agent log");
    cmd.arg("--config")
        .arg(config)
        .arg("--realtime")
        .arg("--flows-out")
        .arg(flows_out)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent")
}

fn stored_flows(c: &Collector) -> Vec<FlowRecord> {
    let v = c.get("/api/v1/flows?agency=dinkes&from=0&limit=1000");
    let rows = v.as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    assert!(rows.len() < 1000, "more rows than one page: widen the read");
    rows.iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{e}: {r}")))
        .collect()
}

fn agency_bytes(c: &Collector) -> u64 {
    let v = c.get("/api/v1/agencies/dinkes/usage?from=0&step=1h");
    let bytes = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    bytes("total_bytes_in") + bytes("total_bytes_out")
}

#[test]
fn agent_fails_over_to_the_second_collector_without_loss_or_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Collector::new(
        dir.path(),
        &[("dinkes", 100_000_000)],
        "127.0.0.1",
        &["127.0.0.1"],
    );
    a.start();
    let (mut b, b_tls) = second_collector(&a);
    let url_a = format!("wss://127.0.0.1:{}/api/v1/agent", a.tls_port());
    let url_b = format!("wss://127.0.0.1:{b_tls}/api/v1/agent");
    let cfg = agent_config_for(
        dir.path(),
        &[url_a.clone(), url_b.clone()],
        &a.ca(),
        &a.token("dinkes", "dinkes-01"),
    );
    // download.pcapng alone lasts 7.3 s at recorded speed: long enough to
    // kill A and start B while the agent still sends.
    let pcaps = vec![
        fixtures_dir().join("download.pcapng"),
        fixtures_dir().join("https.pcapng"),
        fixtures_dir().join("http.pcap"),
    ];
    let flows_out = dir.path().join("agent-flows.jsonl");
    let mut agent = run_agent(&cfg, &pcaps, &flows_out);
    let agent_log = || std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default();

    // A has stored some of the traffic: kill it hard mid-stream.
    assert!(
        wait_for(30, || agency_bytes(&a) > 0),
        "nothing reached A: {}",
        agent_log()
    );
    a.kill9();
    assert!(
        agent.try_wait().ok().flatten().is_none(),
        "the agent ended before A was killed: the test proves nothing"
    );
    // B on the same data directory, under traffic.
    b.start();
    let finished = wait_for(120, || agent.try_wait().ok().flatten().is_some());
    assert!(finished, "agent did not finish: {}", agent_log());
    let status = agent.wait().expect("wait for the agent");
    let log = agent_log();
    assert!(status.success(), "agent failed: {log}");
    assert!(
        log.contains("failed over to another collector"),
        "no failover in the agent's log: {log}"
    );

    // Every flow the agent counted is in the store once with its final
    // counts: none lost, none doubled by the re-sent batches A had committed
    // without acknowledging. (Interim records, in flight across the kill
    // too, update their flow's row; the final record's counts are the sum.)
    let counted = read_jsonl(&flows_out);
    assert!(!counted.is_empty());
    let stored = stored_flows(&b);
    let (want, got) = (multiset(counted.iter()), multiset(stored.iter()));
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, n)| got.get(*k) != Some(*n))
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, n)| want.get(*k) != Some(*n))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "store differs from the agent's records:\nmissing or short: {missing:?}\nextra or doubled: {extra:?}\nagent log:\n{log}\nB's log:\n{}",
        b.log_text()
    );
    // And the agency's totals are the pcaps' as tshark reads them.
    let tshark: u64 = pcaps
        .iter()
        .flat_map(|p| tshark_conversations(p))
        .map(|(_, t)| t.sent.values().map(|v| v.1).sum::<u64>())
        .sum();
    assert_eq!(agency_bytes(&b), tshark, "agent log:\n{log}");

    // The agent's last health says it is on B, after one failover.
    let nodes = b.get("/api/v1/nodes");
    let node = nodes
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node_id"] == "dinkes-01"))
        .unwrap_or_else(|| panic!("dinkes-01 not in {nodes}"));
    let link = &node["health"]["collector"];
    assert_eq!(link["url"], url_b.as_str(), "{node}");
    assert_eq!(link["index"], 1, "{node}");
    assert_eq!(link["failovers"], 1, "{node}");
}

//! Agents → collector, end to end with the real binaries: TLS WebSocket,
//! enrollment, SQLite, the HTTP API. Per-agency byte totals must equal
//! tshark's reading of the same captures, across a link cut and a collector
//! killed with SIGKILL mid-stream, with flows on SQLite and again on
//! ClickHouse (`*_on_clickhouse`); wrong credentials and foreign agencies are
//! refused.

// A test: a failed unwrap is a failed test (also in its helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::clickhouse::{self, TempClickHouse};
use common::collector::*;
use common::netns::{sh, wait_for};
use common::*;

/// tshark's IP bytes of everything in the captures: a node speaks for one
/// agency, so traffic of addresses outside its units (link-local, the
/// router's own) still crossed that agency's router and counts there.
fn tshark_agency_bytes(pcaps: &[PathBuf]) -> u64 {
    pcaps
        .iter()
        .flat_map(|p| tshark_conversations(p))
        .map(|(_, t)| t.sent.values().map(|v| v.1).sum::<u64>())
        .sum()
}

fn agency_total(c: &Collector, agency: &str) -> u64 {
    let v = c.get(&format!("/api/v1/agencies/{agency}/usage?from=0&step=1h"));
    let bytes = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    bytes("total_bytes_in") + bytes("total_bytes_out")
}

fn run_agent(config: &Path, pcaps: &[PathBuf], realtime: bool) -> Child {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("replay");
    for p in pcaps {
        cmd.arg("--pcap").arg(p);
    }
    cmd.arg("--config").arg(config);
    if realtime {
        cmd.arg("--realtime");
    }
    let log = std::fs::File::create(config.with_extension("log")).expect("agent log");
    cmd.stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent")
}

fn wait_agent(mut child: Child, config: &Path) -> String {
    let ok = wait_for(120, || child.try_wait().ok().flatten().is_some());
    let log = std::fs::read_to_string(config.with_extension("log")).unwrap_or_default();
    assert!(ok, "agent did not finish: {log}");
    let st = child.wait().expect("wait for the agent");
    assert!(st.success(), "agent failed: {log}");
    log
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

#[test]
fn agency_totals_equal_tshark_for_two_agents() {
    agency_totals_equal_tshark(None);
}

#[test]
fn agency_totals_equal_tshark_for_two_agents_on_clickhouse() {
    agency_totals_equal_tshark(Some(&clickhouse::start()));
}

/// Flows on SQLite, or on `ch` when given.
fn agency_totals_equal_tshark(ch: Option<&TempClickHouse>) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::new(
        dir.path(),
        &[("dinkes", 100_000_000), ("bappeda", 100_000_000)],
        "127.0.0.1",
        &[],
    );
    if let Some(ch) = ch {
        clickhouse::use_clickhouse(&c, ch, "e2e_totals");
    }
    c.start();
    let url = format!("wss://localhost:{}/api/v1/agent", c.tls_port());
    let a_pcaps = vec![
        fixture("https.pcapng"),
        fixture("http.pcap"),
        fixture("quic.pcapng"),
    ];
    let b_pcaps = vec![
        fixture("dns.pcapng"),
        fixture("intranet.pcapng"),
        fixture("vlan.pcapng"),
        fixture("ipv6-frag.pcapng"),
    ];
    let a = agent_config(
        dir.path(),
        "dinkes-01",
        &url,
        &c.ca(),
        &c.token("dinkes", "dinkes-01"),
    );
    let b = agent_config(
        dir.path(),
        "bappeda-01",
        &url,
        &c.ca(),
        &c.token("bappeda", "bappeda-01"),
    );
    let ra = run_agent(&a, &a_pcaps, true);
    let rb = run_agent(&b, &b_pcaps, true);
    wait_agent(ra, &a);
    wait_agent(rb, &b);
    assert_eq!(
        agency_total(&c, "dinkes"),
        tshark_agency_bytes(&a_pcaps),
        "dinkes: {}",
        c.log_text()
    );
    assert_eq!(
        agency_total(&c, "bappeda"),
        tshark_agency_bytes(&b_pcaps),
        "bappeda"
    );
    // Both nodes are known, named, and were up.
    let nodes = c.get("/api/v1/nodes");
    let ids: BTreeSet<String> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.contains("dinkes-01") && ids.contains("bappeda-01"),
        "{nodes}"
    );
    // Each node got its agency's policy from the collector and applied it.
    for n in nodes.as_array().unwrap() {
        assert_eq!(n["policy"]["state"], "applied", "{n}");
        assert_eq!(n["policy"]["version"], 1, "{n}");
    }
    // The wall's allocations are the rates of the policies in force.
    let agencies = c.get("/api/v1/agencies");
    for code in ["dinkes", "bappeda"] {
        let a = agencies
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == code)
            .unwrap_or_else(|| panic!("{code} not in {agencies}"));
        assert_eq!(a["alloc_down_bps"], 100_000_000, "{a}");
        assert_eq!(a["alloc_up_bps"], 100_000_000, "{a}");
    }
    // Sites seen by the agents are in the top sites and the flow search.
    let sites = c.get("/api/v1/top/sites?agency=dinkes&from=0&limit=50");
    let names: BTreeSet<String> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(names.contains("portal.example.go.id"), "{sites}");
    let flows = c.get("/api/v1/flows?agency=dinkes&from=0&site=example.go.id&limit=1000");
    assert!(!flows.as_array().unwrap().is_empty());
    // OpenAPI document names every endpoint the dashboard uses.
    let doc = c.get("/api/v1/openapi.json");
    for p in [
        "/api/v1/overview",
        "/api/v1/flows",
        "/api/v1/top/sites",
        "/api/v1/agencies/{code}/usage",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    assert!(curl(c.http, "/metrics", c.token.as_deref())
        .unwrap()
        .contains("simpul_ingest_batches_total"));
}

#[test]
fn link_cut_and_collector_kill_lose_and_double_nothing() {
    link_cut_and_collector_kill(None, "cl", "10.254.7");
}

#[test]
fn link_cut_and_collector_kill_lose_and_double_nothing_on_clickhouse() {
    link_cut_and_collector_kill(Some(&clickhouse::start()), "ck", "10.254.17");
}

/// Flows on SQLite, or on `ch` when given; `tag` and the /30 of `net` keep
/// the two variants apart when they run together.
fn link_cut_and_collector_kill(ch: Option<&TempClickHouse>, tag: &str, net: &str) {
    assert!(is_root(), "needs root for the network namespace");
    let dir = tempfile::tempdir().unwrap();
    // The agent lives in its own namespace behind a veth we can cut.
    let mut lab = common::netns::Lab::new(tag);
    let ns = lab.ns("agent");
    let host_if = format!("{}h", &lab.prefix);
    let (host_ip, agent_ip) = (format!("{net}.1"), format!("{net}.2"));
    sh(&format!(
        "ip link add {host_if} type veth peer name wan0 netns {ns}"
    ));
    sh(&format!("ip addr add {host_ip}/30 dev {host_if}"));
    sh(&format!("ip link set {host_if} up"));
    sh(&format!("ip -n {ns} addr add {agent_ip}/30 dev wan0"));
    sh(&format!("ip -n {ns} link set wan0 up"));
    let mut c = Collector::new(
        dir.path(),
        &[("dinkes", 100_000_000)],
        &host_ip,
        &[&host_ip],
    );
    if let Some(ch) = ch {
        clickhouse::use_clickhouse(&c, ch, "e2e_kill");
    }
    c.start();
    let url = format!("wss://{host_ip}:{}/api/v1/agent", c.tls_port());
    let pcaps = vec![
        fixture("download.pcapng"),
        fixture("https.pcapng"),
        fixture("http.pcap"),
    ];
    let cfg = agent_config(
        dir.path(),
        "dinkes-01",
        &url,
        &c.ca(),
        &c.token("dinkes", "dinkes-01"),
    );

    let log = std::fs::File::create(cfg.with_extension("log")).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns])
        .arg(agent_bin())
        .arg("replay");
    for p in &pcaps {
        cmd.arg("--pcap").arg(p);
    }
    let agent = cmd
        .arg("--config")
        .arg(&cfg)
        .arg("--realtime")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Let it stream, cut the link, restore it, then kill the collector hard
    // mid-stream and bring it back.
    std::thread::sleep(Duration::from_millis(1500));
    sh(&format!("ip link set {host_if} down"));
    std::thread::sleep(Duration::from_secs(2));
    sh(&format!("ip link set {host_if} up"));
    std::thread::sleep(Duration::from_millis(1500));
    c.kill9();
    std::thread::sleep(Duration::from_secs(2));
    c.start();
    let agent_log = wait_agent(agent, &cfg);

    assert_eq!(
        agency_total(&c, "dinkes"),
        tshark_agency_bytes(&pcaps),
        "agent log:\n{agent_log}\ncollector log:\n{}",
        c.log_text()
    );
    // Every flow exactly once: the same flows an offline replay produces.
    let flows = c.get("/api/v1/flows?agency=dinkes&from=0&limit=1000");
    let mut seen = BTreeMap::new();
    for f in flows.as_array().unwrap() {
        let key = (
            f["src_ip"].to_string(),
            f["src_port"].to_string(),
            f["dst_ip"].to_string(),
            f["dst_port"].to_string(),
            f["proto"].to_string(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    let mut offline = BTreeMap::new();
    for p in &pcaps {
        for r in replay(p, Some(&fixtures_dir().join("agent.toml")), &[]) {
            let key = (
                format!("\"{}\"", r.src_ip),
                r.src_port.map_or("null".into(), |p| p.to_string()),
                format!("\"{}\"", r.dst_ip),
                r.dst_port.map_or("null".into(), |p| p.to_string()),
                format!("\"{}\"", r.proto),
            );
            *offline.entry(key).or_insert(0) += 1;
        }
    }
    assert_eq!(seen, offline, "stored flows differ from an offline replay");
}

#[test]
fn wrong_or_revoked_agents_are_refused_and_foreign_claims_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::new(
        dir.path(),
        &[("dinkes", 100_000_000), ("bappeda", 100_000_000)],
        "127.0.0.1",
        &[],
    );
    c.start();
    let url = format!("wss://localhost:{}/api/v1/agent", c.tls_port());
    let pcaps = vec![fixture("http.pcap")];

    // 1. A made-up token, for a node the inventory does not know (the
    // token command refuses to issue one for it).
    let o = c.token_command("dinkes", "rogue-01");
    assert!(
        !o.status.success(),
        "token issued for a node not in the inventory"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not in the inventory"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bogus = agent_config(
        dir.path(),
        "rogue-01",
        &url,
        &c.ca(),
        "00000000000000000000000000000000",
    );
    let child = run_agent(&bogus, &pcaps, false);
    let _ = wait_for(20, || c.log_text().contains("rogue-01"));
    kill(child);
    assert!(c.log_text().contains("agent refused"), "{}", c.log_text());

    // 2. A node of bappeda whose records claim dinkes. The token command
    // will not enroll it for dinkes...
    let foreign_token = c.token("bappeda", "bappeda-01");
    let o = c.token_command("dinkes", "bappeda-01");
    assert!(!o.status.success(), "token issued for another agency");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "the inventory puts node \"bappeda-01\" in agency \"bappeda\", not \"dinkes\""
        ),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // ...and a connected agent attributes with the collector's inventory,
    // so only a stale one can make it claim dinkes: an inventory kept from
    // before the NOC moved the node, which `replay --policy` attributes with
    // (it asks the collector for none).
    let foreign = agent_config(dir.path(), "bappeda-01", &url, &c.ca(), &foreign_token);
    std::fs::write(
        dir.path().join("agent-bappeda-01/inventory.json"),
        r#"{"version": 1, "intranet": ["10.99.0.0/16"],
            "agencies": [{"code": "dinkes", "units": [
                {"code": "sekretariat", "subnets": ["10.10.1.0/24", "fd00:10:10:1::/64", "10.110.0.0/24"]},
                {"code": "bidang-it", "subnets": ["10.10.2.0/24", "10.120.0.0/24"]}]}],
            "nodes": [{"id": "bappeda-01", "agency": "dinkes"}]}"#,
    )
    .unwrap();
    let policy = dir.path().join("dinkes-policy.toml");
    std::fs::write(
        &policy,
        "version = 1\nagency = \"dinkes\"\n[allocation]\ndownload = { rate_bps = 1000000, ceil_bps = 1000000 }\nupload = { rate_bps = 1000000, ceil_bps = 1000000 }\n",
    )
    .unwrap();
    let log = std::fs::File::create(foreign.with_extension("log")).unwrap();
    let child = Command::new(agent_bin())
        .arg("replay")
        .arg("--pcap")
        .arg(&pcaps[0])
        .arg("--config")
        .arg(&foreign)
        .arg("--policy")
        .arg(&policy)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent");
    // The claim is noted and ignored: the records are the node's agency's
    // (refusing them would wedge an agent whose inventory lags a move).
    wait_agent(child, &foreign);
    assert!(
        c.log_text().contains("records name another agency"),
        "foreign claim not noticed: {}",
        c.log_text()
    );
    assert_eq!(
        agency_total(&c, "dinkes"),
        0,
        "a node's records were stored under an agency it claimed"
    );
    assert_eq!(agency_total(&c, "bappeda"), tshark_agency_bytes(&pcaps));

    // 3. A good node, then revoked: its next connection is refused.
    let good = agent_config(
        dir.path(),
        "dinkes-01",
        &url,
        &c.ca(),
        &c.token("dinkes", "dinkes-01"),
    );
    wait_agent(run_agent(&good, &pcaps, false), &good);
    let before = agency_total(&c, "dinkes");
    assert!(before > 0);
    let o = Command::new(collector_bin())
        .args(["revoke", "--config"])
        .arg(&c.config)
        .args(["--node", "dinkes-01"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let child = run_agent(&good, &pcaps, false);
    assert!(
        wait_for(30, || c.log_text().matches("agent refused").count() >= 2),
        "revoked node not refused: {}",
        c.log_text()
    );
    kill(child);
    assert_eq!(
        agency_total(&c, "dinkes"),
        before,
        "a revoked node's records were stored"
    );
    let nodes = c.get("/api/v1/nodes");
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "dinkes-01")
        .unwrap()
        .clone();
    assert_eq!(node["status"], "revoked", "{node}");
}

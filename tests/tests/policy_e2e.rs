//! Policies steered from the NOC, end to end, with the real binaries and the
//! real kernel: an administrator saves the province default and an agency's
//! document through the collector's API; the collector signs each version
//! and pushes it to the agent on the agency's router, which enforces it with
//! tc HTB and nftables and its DNS responder (the enforcement topology of
//! `enforce_lab`, its router now node `router-test` of a collector).
//!
//! ```text
//!                  noc 10.98.0.2 (collector; its API on the noc's loopback)
//!                   │ noc0 10.98.0.1
//!  unit a 10.1.1.2 ─┐                      ┌─ wan0 ── internet 198.51.100.10
//!                   ├─ switch ── lan0 ─ router (agent)    (dnsmasq, HTTP/TLS, iperf3)
//!  unit b 10.1.2.2 ─┘                      └─ intra0 ── intranet 10.99.0.10
//! ```
//!
//! In order: a save is applied (the node's policy state turns `applied`)
//! and iperf3 follows a changed download allocation within ±3 %; a domain
//! added to the blocklist is refused by DNS and on a TLS connection; a
//! suspension with `until` cuts the internet and ends by itself; a
//! rollback restores the earlier allocation and blocklist; an agent killed
//! during a change enforces it once it is back; and what a collector
//! restored from an older copy of its data, and one that lost its signing
//! key, send is refused by the agent and reported, the newer policy
//! staying in force. Times are printed, never asserted (the ≤1 s target
//! is the benchmark's).

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;
mod enforce_lab;

use std::path::Path;
use std::time::Instant;

use common::collector::Collector;
use common::netns::{sh, sh_out, wait_for};
use common::{agent_bin, is_root};
use enforce_lab::{
    check_goodput, curl, dig, https, Iperf, Topo, INTERNET, INVENTORY, MBIT, ROUTER_LAN,
};
use serde_json::{json, Value};

/// The router's node id (in [`INVENTORY`]).
const NODE: &str = "router-test";
const AGENCY: &str = "dinkes";
const NOC: &str = "10.98.0.2";
/// A name the tests block and unblock (dnsmasq answers it with INTERNET;
/// the site's certificate covers it).
const BLOCKED: &str = "www.blocked.example";

fn rates(bps: u64) -> Value {
    json!({"rate_bps": bps, "ceil_bps": bps})
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The router's entry of `GET /api/v1/nodes`.
fn node(c: &Collector) -> Value {
    c.get("/api/v1/nodes")
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node_id"] == NODE).cloned())
        .unwrap_or(Value::Null)
}

/// Wait (generously) until the node's `policy` object satisfies `ok`;
/// returns it.
fn wait_node_policy(c: &Collector, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let reached = wait_for(60, || {
        last = node(c);
        ok(&last["policy"])
    });
    assert!(
        reached,
        "node policy never {what}: {last:#}\ncollector log:\n{}",
        tail(&c.log_text())
    );
    last["policy"].clone()
}

/// Wait until the node reports `version` applied and in force; print how
/// long that took: seen from here (polling, `since` the save was sent),
/// and from the version's signing to the agent's report.
fn wait_applied(c: &Collector, version: u64, saved: &Value, since: Instant) -> Value {
    let p = wait_node_policy(c, &format!("applied at version {version}"), |p| {
        p["state"] == "applied" && p["version"] == version
    });
    let seen = since.elapsed();
    let reported = p["applied_at"]
        .as_str()
        .or(p["reported_at"].as_str())
        .and_then(|t| simpul_proto::time_format::parse_rfc3339(t).ok())
        .map(|ns| ns / 1_000_000);
    let agent_ms = match (reported, saved["created_ms"].as_u64()) {
        (Some(r), Some(s)) => format!("{} ms", r as i64 - s as i64),
        _ => "?".into(),
    };
    eprintln!(
        "version {version}: applied on the router {agent_ms} after it was signed; seen applied through the API after {seen:?}"
    );
    p
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `PUT /api/v1/agencies/dinkes/policy`, editing `base`: the new version.
fn save_agency(c: &Collector, base: u64, doc: &Value, comment: &str) -> Value {
    let (status, v) = c.send(
        "PUT",
        &format!("/api/v1/agencies/{AGENCY}/policy"),
        &json!({"base_version": base, "policy": doc, "comment": comment}),
    );
    assert_eq!(status, 200, "save refused: {v}");
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["version"], base + 1, "{v}");
    v
}

/// The agency's HTB class on `dev` as the kernel has it: "rate X ceil Y".
fn agency_class(t: &Topo, dev: &str) -> String {
    let out = sh_out(&format!(
        "ip netns exec {} tc class show dev {dev} classid 1:1",
        t.router
    ));
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
            .copied()
            .unwrap_or("?")
    };
    format!("rate {} ceil {}", at("rate"), at("ceil"))
}

/// Wait until the kernel's download class of the agency is `mbit`.
fn wait_download_class(t: &Topo, mbit: u64) {
    let want = format!("rate {mbit}Mbit ceil {mbit}Mbit");
    assert!(
        wait_for(30, || agency_class(t, "lan0") == want),
        "download class is {}, not {want}:\n{}",
        agency_class(t, "lan0"),
        t.kernel_config()
    );
}

fn resolves(ns: &str, name: &str) -> bool {
    dig(ns, ROUTER_LAN, name).1 == [INTERNET]
}

fn refused_by_dns(ns: &str, name: &str) -> bool {
    dig(ns, ROUTER_LAN, name).0 == "NXDOMAIN"
}

/// Plain HTTP to the internet server.
fn http_passes(ns: &str) -> bool {
    curl(
        ns,
        &[
            "--max-time",
            "3",
            "-H",
            "Host: www.example",
            &format!("http://{INTERNET}/"),
        ],
    )
    .is_ok()
}

/// The agent, as the router runs it, its log appended to `log`.
fn start_agent(t: &mut Topo, log: &Path) -> usize {
    let cmd = format!(
        "exec {} run --config {} 2>>{}",
        agent_bin().display(),
        t.config.display(),
        log.display()
    );
    let router = t.router.clone();
    t.lab.spawn(&router, &["sh", "-c", &cmd], true)
}

/// Stop the collector (SIGKILL), let `change` touch its data directory,
/// start it again and wait for the router to be connected.
fn restart_collector(c: &mut Collector, change: impl FnOnce(&Path)) {
    c.kill9();
    change(&c.dir.join("data"));
    c.start();
    let mut last = Value::Null;
    assert!(
        wait_for(60, || {
            last = node(c);
            last["status"] == "up"
        }),
        "the router did not reconnect: {last:#}\n{}",
        tail(&c.log_text())
    );
}

#[test]
fn policies_saved_at_the_noc_are_enforced_on_the_router() {
    assert!(is_root(), "namespaces need root (CI runs as root)");
    // Built first, so the times below are the test's own.
    agent_bin();
    common::collector::collector_bin();
    let started = Instant::now();
    let mut t = Topo::new("pe");
    let (router, a) = (t.router.clone(), t.a.clone());
    let noc = t.lab.ns("noc");
    t.lab.link(
        &router,
        "noc0",
        "10.98.0.1/24",
        &noc,
        "eth0",
        &format!("{NOC}/24"),
    );

    // The collector: the router's inventory, and a second agency without
    // nodes (the default reaches it too). No policy yet.
    let noc_dir = t.dir.path().join("noc");
    std::fs::create_dir_all(&noc_dir).unwrap();
    let mut c = Collector::new(&noc_dir, &[(AGENCY, 0), ("bappeda", 0)], NOC, &[NOC]);
    std::fs::write(
        &c.inventory,
        format!("{INVENTORY}[[agencies]]\ncode = \"bappeda\"\nname = \"Bappeda\"\n"),
    )
    .unwrap();
    c.netns = Some(noc.clone());
    c.start();

    // The internet, and the router's agent with its DNS responder.
    t.start_sites();
    t.iperf_server(&t.inet.clone(), 5201);
    let url = format!("wss://{NOC}:{}/api/v1/agent", c.tls_port());
    t.write_collector_config(NODE, &url, &c.ca(), &c.token(AGENCY, NODE));
    t.enable_dns();
    let agent_log = t.dir.path().join("agent.log");
    let mut agent = start_agent(&mut t, &agent_log);
    assert!(
        wait_for(60, || node(&c)["status"] == "up"),
        "the router never connected: {:#}\n{}\nagent log:\n{}",
        node(&c),
        tail(&c.log_text()),
        tail(&std::fs::read_to_string(&agent_log).unwrap_or_default())
    );
    assert!(
        wait_for(30, || resolves(&a, BLOCKED)),
        "the router's DNS responder does not answer"
    );
    eprintln!("topology up after {:?}", started.elapsed());

    // 1. The province default (every agency gets a version), then dinkes's
    // own document: a download of 20 Mbit/s. iperf3 follows it; then a
    // download of 12 Mbit/s, and iperf3 follows that.
    let (status, v) = c.send(
        "PUT",
        "/api/v1/policy/default",
        &json!({"base_version": 0, "comment": "SE Gubernur 12/2026", "policy": {
            "allocation": {"download": rates(40_000_000), "upload": rates(40_000_000)},
            "blocking": {"domains": ["judi.example"]}}}),
    );
    assert_eq!(status, 200, "{v}");
    let made: Vec<String> = v["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}@{}", x["agency"].as_str().unwrap(), x["version"]))
        .collect();
    assert_eq!(made, ["dinkes@1", "bappeda@1"], "{v}");
    let mut doc = json!({"allocation": {"download": rates(20_000_000)}});
    let sent = Instant::now();
    let saved = save_agency(&c, 1, &doc, "surat 045/DINKES/2026");
    assert_eq!(
        saved["effective"]["allocation"]["upload"]["rate_bps"], 40_000_000,
        "the upload follows the default: {saved}"
    );
    assert_eq!(
        saved["effective"]["blocking"]["domains"],
        json!(["judi.example"])
    );
    wait_applied(&c, 2, &saved, sent);
    wait_download_class(&t, 20);
    let download = || {
        Iperf {
            ns: a.clone(),
            server: INTERNET.into(),
            port: 5201,
            download: true,
            secs: 5,
        }
        .run()
    };
    check_goodput("download at version 2 (20 Mbit/s)", download(), 20.0 * MBIT);

    doc["allocation"]["download"] = rates(12_000_000);
    let sent = Instant::now();
    let saved = save_agency(&c, 2, &doc, "surat 046/DINKES/2026: pengurangan");
    wait_applied(&c, 3, &saved, sent);
    wait_download_class(&t, 12);
    check_goodput("download at version 3 (12 Mbit/s)", download(), 12.0 * MBIT);

    // 2. A domain added to the agency's blocklist: refused by the router's
    // DNS responder and on a TLS connection straight to the address.
    https(&a, BLOCKED, INTERNET, "/").expect("not blocked yet");
    doc["blocking"] = json!({"domains": ["judi.example", "blocked.example"]});
    let sent = Instant::now();
    let saved = save_agency(&c, 3, &doc, "surat 047/DINKES/2026: blokir");
    assert!(
        wait_for(30, || refused_by_dns(&a, BLOCKED)),
        "{BLOCKED} still resolves: {:?}",
        dig(&a, ROUTER_LAN, BLOCKED)
    );
    let dns_after = sent.elapsed();
    // The first refused connection may die by a reset or stall until
    // curl gives up: when it started and when it failed are both printed.
    let (mut last, mut attempt) = (Ok(String::new()), sent.elapsed());
    assert!(
        wait_for(30, || {
            attempt = sent.elapsed();
            last = https(&a, BLOCKED, INTERNET, "/slow");
            last.is_err()
        }),
        "TLS to {BLOCKED} still passes: {last:?}"
    );
    eprintln!(
        "blocklist save → DNS refused (NXDOMAIN) after {dns_after:?}; the first refused TLS connection started {attempt:?} after the save and failed {:?} after it ({last:?})",
        sent.elapsed()
    );
    wait_applied(&c, 4, &saved, sent);
    // A repeat is refused too (at its first packet: the client's TLS to
    // that address is refused for a while); other names still work.
    https(&a, BLOCKED, INTERNET, "/").expect_err("a repeat is refused");
    assert!(resolves(&a, "www.allowed.example"));
    https(&t.b, "allowed.example", INTERNET, "/").expect("other names pass");

    // 3. A suspension of the whole agency that lapses by itself: the
    // internet is cut for the units, the collector link is kept.
    assert!(http_passes(&a) && http_passes(&t.b));
    let until_ms = now_ms() + 12_000;
    let until = simpul_proto::time_format::rfc3339(until_ms * 1_000_000);
    doc["suspension"] =
        json!({"agency": true, "until": until, "reason": "surat 099/DINKES/2026: tunggakan"});
    let sent = Instant::now();
    let saved = save_agency(&c, 4, &doc, "surat 099/DINKES/2026");
    let cut = wait_for(12, || !http_passes(&a));
    assert!(cut, "the suspension never cut unit a's internet");
    eprintln!("suspension save → internet cut after {:?}", sent.elapsed());
    assert!(!http_passes(&t.b), "unit b is part of the agency");
    wait_applied(&c, 5, &saved, sent);
    assert_eq!(node(&c)["status"], "up", "the collector link is kept");
    assert!(
        wait_for(60, || http_passes(&a) && http_passes(&t.b)),
        "the suspension did not end by itself:\n{}",
        t.kernel_config()
    );
    eprintln!(
        "suspension until {until}: traffic passes again {} ms after it",
        now_ms() as i64 - until_ms as i64
    );
    let v = c.get(&format!("/api/v1/agencies/{AGENCY}/policy"));
    assert_eq!(v["version"], 5, "no save ended it: {v}");

    // 4. A rollback to version 2: 20 Mbit/s and no blocked.example again.
    let sent = Instant::now();
    let (status, saved) = c.send(
        "POST",
        &format!("/api/v1/agencies/{AGENCY}/policy/rollback"),
        &json!({"version": 2, "base_version": 5, "comment": "kembali ke surat 045"}),
    );
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 6, "{saved}");
    wait_applied(&c, 6, &saved, sent);
    assert!(
        wait_for(30, || resolves(&a, BLOCKED)),
        "{BLOCKED} still refused after the rollback"
    );
    let mut last = Err(String::new());
    assert!(
        wait_for(30, || {
            last = https(&a, BLOCKED, INTERNET, "/");
            last.is_ok()
        }),
        "TLS to {BLOCKED} still refused after the rollback: {last:?}"
    );
    wait_download_class(&t, 20);
    assert!(
        refused_by_dns(&a, "judi.example"),
        "the default's block stays"
    );

    // A copy of the collector's data as it is now (version 6), for 6.
    let copy = noc_dir.join("data-v6");
    restart_collector(&mut c, |data| {
        sh(&format!("cp -a {} {}", data.display(), copy.display()))
    });
    wait_node_policy(&c, "applied at 6 after the restart", |p| {
        p["state"] == "applied" && p["version"] == 6
    });

    // 5. The agent is down (SIGKILL: the kernel keeps what it had) while
    // the download becomes 16 Mbit/s and late.example is blocked; it
    // enforces that version once it is back.
    t.lab.signal_and_wait(agent, "KILL");
    doc = json!({"allocation": {"download": rates(16_000_000)},
        "blocking": {"domains": ["judi.example", "late.example"]}});
    let sent = Instant::now();
    let saved = save_agency(&c, 6, &doc, "surat 050/DINKES/2026");
    let p = wait_node_policy(&c, "pending at 7", |p| {
        p["state"] == "pending" && p["pending_version"] == 7
    });
    assert_eq!(p["version"], 6, "{p}");
    assert_eq!(agency_class(&t, "lan0"), "rate 20Mbit ceil 20Mbit");
    let restarted = Instant::now();
    agent = start_agent(&mut t, &agent_log);
    wait_applied(&c, 7, &saved, sent);
    eprintln!(
        "agent restarted → version 7 applied {:?} later",
        restarted.elapsed()
    );
    wait_download_class(&t, 16);
    assert!(
        wait_for(30, || refused_by_dns(&a, "www.late.example")),
        "late.example not blocked after the restart"
    );
    assert!(resolves(&a, BLOCKED));

    // 6a. The collector restored from the copy (its newest version is 6):
    // what it sends is older than the version in force on the router. The
    // agent refuses it as a replay and says so; version 7 stays in force.
    restart_collector(&mut c, |data| {
        sh(&format!(
            "mv {d} {d}-v7 && cp -a {} {d}",
            copy.display(),
            d = data.display()
        ))
    });
    // (`version` is what the node's heartbeats say is in force.)
    let p = wait_node_policy(&c, "rejected (replay of version 6)", |p| {
        p["state"] == "rejected" && p["pending_version"] == 6 && p["version"] == 7
    });
    eprintln!("restored collector: {p}");
    assert!(p["error"].as_str().unwrap_or("").contains("replay"), "{p}");
    assert_eq!(agency_class(&t, "lan0"), "rate 16Mbit ceil 16Mbit");
    assert!(refused_by_dns(&a, "www.late.example"));
    // A save there makes another "version 7": the router holds a version 7
    // with other content and refuses it too; the next version goes through.
    let saved = save_agency(
        &c,
        6,
        &json!({"allocation": {"download": rates(14_000_000)}}),
        "surat 051/DINKES/2026",
    );
    let p = wait_node_policy(&c, "rejected (another version 7)", |p| {
        p["state"] == "rejected" && p["pending_version"] == 7 && p["version"] == 7
    });
    assert!(
        p["error"].as_str().unwrap_or("").contains("other content"),
        "{p} ({saved})"
    );
    assert_eq!(agency_class(&t, "lan0"), "rate 16Mbit ceil 16Mbit");
    let sent = Instant::now();
    let saved = save_agency(
        &c,
        7,
        &json!({"allocation": {"download": rates(18_000_000)}}),
        "surat 052/DINKES/2026",
    );
    wait_applied(&c, 8, &saved, sent);
    wait_download_class(&t, 18);

    // 6c. A named list (category) uploaded at the NOC and enabled for the
    // agency: the router fetches it by hash, verifies it and blocks its
    // names. A new version of the list gives the agency a new policy
    // version by itself; an allocation change does not send the list again.
    let (status, v) = c.send_raw(
        "PUT",
        "/api/v1/lists/judi?comment=surat%20060%2FKOMINFO%2F2026",
        "text/plain",
        b"# TrustPositif-style\ntogel.example\n0.0.0.0 slot.example\n",
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"]["state"], "current", "{v}");
    assert_eq!(v["policies"], json!([]), "no agency enables it yet: {v}");
    let sent = Instant::now();
    let saved = save_agency(
        &c,
        8,
        &json!({"allocation": {"download": rates(18_000_000)},
                "blocking": {"enabled_categories": ["judi"]}}),
        "surat 061/DINKES/2026: kategori judi",
    );
    assert_eq!(
        saved["effective"]["blocking"]["lists"]["judi"]["sha256"], v["version"]["sha256"],
        "{saved}"
    );
    wait_applied(&c, 9, &saved, sent);
    assert!(
        wait_for(30, || refused_by_dns(&a, "www.togel.example")),
        "a name of the list still resolves"
    );
    assert!(refused_by_dns(&a, "slot.example"));
    let received = |log: &str| log.matches("named list received and verified").count();
    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert_eq!(received(&log), 1, "{}", tail(&log));
    // A new version of the list: the agency's policy follows (version 10).
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"togel.example\nslot.example\nkasino.example\n")
            .unwrap();
        e.finish().unwrap()
    };
    let sent = Instant::now();
    let (status, v) = c.send_raw(
        "PUT",
        "/api/v1/lists/judi?comment=surat%20062%2FKOMINFO%2F2026",
        "application/gzip",
        &gz,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"]["version"], 2, "{v}");
    assert_eq!(
        v["policies"],
        json!([{"agency": AGENCY, "version": 10}]),
        "{v}"
    );
    wait_node_policy(&c, "applied at 10 (list v2)", |p| {
        p["state"] == "applied" && p["version"] == 10
    });
    assert!(
        wait_for(30, || refused_by_dns(&a, "kasino.example")),
        "the list's new name still resolves ({:?} since the upload)",
        sent.elapsed()
    );
    // An allocation change: version 11, the list is not fetched again.
    let saved = save_agency(
        &c,
        10,
        &json!({"allocation": {"download": rates(17_000_000)},
                "blocking": {"enabled_categories": ["judi"]}}),
        "surat 063/DINKES/2026",
    );
    wait_applied(&c, 11, &saved, Instant::now());
    wait_download_class(&t, 17);
    assert!(refused_by_dns(&a, "kasino.example"));
    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert_eq!(received(&log), 2, "{}", tail(&log));
    // The router holds the list version in force only.
    let held: Vec<String> = std::fs::read_dir(t.dir.path().join("state/lists"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        held,
        vec![format!("{}.gz", v["version"]["sha256"].as_str().unwrap())]
    );

    // 6b. The collector lost its signing key and made another: the router
    // keeps the key it pinned at enrollment, refuses what the new key
    // signed and says so; version 11 stays in force.
    restart_collector(&mut c, |data| {
        std::fs::remove_file(data.join("policy-key.pk8")).unwrap()
    });
    let saved = save_agency(
        &c,
        11,
        &json!({"allocation": {"download": rates(10_000_000)}}),
        "surat 053/DINKES/2026",
    );
    let p = wait_node_policy(&c, "rejected (foreign key)", |p| {
        p["state"] == "rejected" && p["pending_version"] == 12 && p["version"] == 11
    });
    eprintln!("version 12 signed by another key: {p}");
    assert!(
        p["error"].as_str().unwrap_or("").contains("signed by key"),
        "{p} ({saved})"
    );
    assert_eq!(agency_class(&t, "lan0"), "rate 17Mbit ceil 17Mbit");
    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(
        log.contains("another policy key than the one pinned"),
        "{}",
        tail(&log)
    );

    let status = t.lab.signal_and_wait(agent, "TERM");
    assert!(status.success(), "agent exit: {status:?}");
    eprintln!("policy end to end in {:?}", started.elapsed());
}

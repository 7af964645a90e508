//! Two collectors behind one ClickHouse (flows) and one PostgreSQL (control
//! store: registry, incidents, notification log, the outage detector's
//! lease), each in its own network namespace, with three agents streaming
//! to them. The collector the agents are on (and whose detector leads) is
//! killed with SIGKILL under traffic: its agents move to the other one,
//! which takes the lead; no flow is lost or doubled, nobody is told a node
//! went down, and at no moment do both collectors lead. The killed one
//! comes back and follows; then an agent really stops: one DOWN incident
//! and one alert, not one per collector.
//!
//! ```text
//!  test process 10.254.70.1 (relays to PostgreSQL and ClickHouse on its
//!   │                        loopback, the webhook receiver)
//!  lan: br0 ─┬─ ca 10.254.70.11 (collector A)
//!            ├─ cb 10.254.70.12 (collector B)
//!            ├─ n1 10.254.70.21 (dinkes-01,    urls = [A, B])
//!            ├─ n2 10.254.70.22 (bappeda-01,   urls = [A, B])
//!            └─ n3 10.254.70.23 (puskesmas-01, urls = [B, A])
//! ```

mod common;

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::clickhouse::{self, TempClickHouse};
use common::collector::*;
use common::netns::{sh, wait_for, Lab};
use common::receiver::{self, Hits};
use common::*;
use simpul_collector::store::postgres::server::TempPostgres;
use simpul_proto::FlowRecord;

const NET: &str = "10.254.70";
const DB: &str = "twocol";

/// (node, agency, namespace name, address, first collector is A)
const NODES: [(&str, &str, &str, &str, bool); 3] = [
    ("dinkes-01", "dinkes", "n1", "21", true),
    ("bappeda-01", "bappeda", "n2", "22", true),
    ("puskesmas-01", "puskesmas", "n3", "23", false),
];

/// Forward `ip:port` to `127.0.0.1:port`: the private PostgreSQL and
/// ClickHouse answer on the test's loopback only, the collectors are in
/// namespaces of their own.
fn relay(ip: &str, port: u16) {
    let listener = TcpListener::bind((ip, port))
        .unwrap_or_else(|e| panic!("relay cannot listen on {ip}:{port}: {e}"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(up) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let (Ok(mut down_r), Ok(mut up_w)) = (conn.try_clone(), up.try_clone()) else {
                    return;
                };
                let (mut up_r, mut down_w) = (up, conn);
                let there = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut down_r, &mut up_w);
                    let _ = up_w.shutdown(Shutdown::Write);
                });
                let _ = std::io::copy(&mut up_r, &mut down_w);
                let _ = down_w.shutdown(Shutdown::Write);
                let _ = there.join();
            });
        }
    });
}

/// The port of `scheme://user@host:PORT/...`.
fn port_of(url: &str) -> u16 {
    let after_host = url.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
    after_host
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// `/healthz` of a collector in its namespace: Some(outage_leader), None
/// when it does not answer.
fn leading(ns: &str, http: u16) -> Option<bool> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sf", "--max-time", "2"])
        .arg(format!("http://127.0.0.1:{http}/healthz"))
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["outage_leader"].as_bool()
}

/// Whether A and B lead, at one moment (None: not answering).
type Leaders = (Option<bool>, Option<bool>);

/// Both collectors' `/healthz`, sampled until stopped.
struct LeaderWatch {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Leaders>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaderWatch {
    fn start(a: (String, u16), b: (String, u16)) -> LeaderWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let sample = (leading(&a.0, a.1), leading(&b.0, b.1));
                out.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        LeaderWatch {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn samples(&self) -> Vec<Leaders> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until a sample shows `seen` (so a short phase is on record).
    fn saw(&self, seen: Leaders) -> bool {
        wait_for(30, || self.samples().contains(&seen))
    }

    fn finish(mut self) -> Vec<Leaders> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.samples()
    }
}

impl Drop for LeaderWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn stored_flows(c: &Collector, agency: &str) -> Vec<FlowRecord> {
    let v = c.get(&format!("/api/v1/flows?agency={agency}&from=0&limit=1000"));
    let rows = v.as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    assert!(rows.len() < 1000, "more rows than one page: widen the read");
    rows.iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{e}: {r}")))
        .collect()
}

/// The agent's link as its last heartbeat reported it: (url index,
/// failovers), from the nodes list.
fn link_of(c: &Collector, node: &str) -> Option<(u64, u64)> {
    let nodes = c.get("/api/v1/nodes");
    let n = nodes
        .as_array()?
        .iter()
        .find(|n| n["node_id"] == node)?
        .clone();
    let link = &n["health"]["collector"];
    Some((link["index"].as_u64()?, link["failovers"].as_u64()?))
}

fn liveness(c: &Collector) -> BTreeMap<String, String> {
    c.get("/api/v1/nodes")
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    (
                        n["node_id"].as_str().unwrap_or("").to_string(),
                        n["liveness"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every incident in the shared store: (id, node, kind, resolved).
fn incidents(c: &Collector) -> Vec<(i64, String, String, bool)> {
    let v = c.get("/api/v1/incidents?from=0&limit=1000");
    let rows = v
        .as_array()
        .or_else(|| v["incidents"].as_array())
        .unwrap_or_else(|| panic!("no incidents list: {v}"));
    rows.iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
            (
                i["id"].as_i64().unwrap_or(-1),
                s("node_id"),
                s("kind"),
                !i["resolved_ms"].is_null(),
            )
        })
        .collect()
}

/// The shared notification log, newest first.
fn notifications(c: &Collector) -> Vec<serde_json::Value> {
    let v = c.get("/api/v1/notifications?limit=1000");
    v.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no notification list: {v}"))
}

/// Alerts the webhook received: (status, node, incident id).
fn webhook_alerts(hits: &Hits) -> Vec<(String, String, String)> {
    hits.all()
        .into_iter()
        .filter(|h| h.path == "/alerts")
        .map(|h| {
            let v: serde_json::Value = serde_json::from_str(&h.body)
                .unwrap_or_else(|e| panic!("webhook body is not JSON ({e}): {}", h.body));
            let a = &v["alerts"][0];
            let s = |x: &serde_json::Value| x.as_str().unwrap_or("").to_string();
            (
                s(&v["status"]),
                s(&a["labels"]["node"]),
                s(&a["labels"]["incident_id"]),
            )
        })
        .collect()
}

/// agent.toml with `[collector] urls` instead of `url`.
fn agent_config_for(dir: &Path, node: &str, urls: &[String], ca: &Path, token: &str) -> PathBuf {
    let cfg = agent_config(dir, node, &urls[0], ca, token);
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

/// An agent replaying the fixtures in a loop at recorded speed in `ns`,
/// until stopped; its final records go to `flows_out`.
fn run_agent(ns: &str, config: &Path, flows_out: &Path) -> Child {
    let log = std::fs::File::create(config.with_extension("log")).expect("agent log");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(agent_bin())
        .arg("replay");
    for p in ["download.pcapng", "https.pcapng", "http.pcap"] {
        cmd.arg("--pcap").arg(fixtures_dir().join(p));
    }
    cmd.arg("--config")
        .arg(config)
        .args(["--realtime", "--loop"])
        .arg("--flows-out")
        .arg(flows_out)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start agent")
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status();
}

/// collector.toml of A switched to the shared stores (through the
/// relays), the default detection settings and the webhook; B's config
/// beside it: its own addresses, data directory and lease name. Returns
/// B's config and HTTP port.
fn configure(a: &Collector, ch: &TempClickHouse, pg_db: &str, webhook: &str) -> (PathBuf, u16) {
    clickhouse::use_clickhouse(a, ch, DB);
    let ch_port = port_of(&ch.url);
    let text = std::fs::read_to_string(&a.config).expect("read collector.toml");
    let text = text
        .replace(
            &format!("http://127.0.0.1:{ch_port}"),
            &format!("http://{NET}.1:{ch_port}"),
        )
        .replace(
            "[nodes]\nheartbeat_interval_ms = 500\ndown_after_secs = 3\n",
            "[nodes]\nheartbeat_interval_ms = 2000\ndown_after_secs = 10\n",
        );
    assert!(text.contains("down_after_secs = 10"), "{text}");
    let pg_port = port_of(pg_db);
    let with = |id: &str| {
        format!(
            "{text}[storage.control]\nbackend = \"postgres\"\nurl = \"postgresql://simpul@{NET}.1:{pg_port}/{DB}\"\n\
             lease_secs = 6\ncollector_id = \"{id}\"\n\
             [notify]\n[notify.webhook.noc]\nurl = \"http://{webhook}/alerts\"\n[[notify.routes]]\nchannels = [\"noc\"]\n"
        )
    };
    std::fs::write(&a.config, with("collector-a")).expect("write collector.toml");
    let (tls, b_http) = (a.tls_port(), free_port());
    let b_text = with("collector-b")
        .replace(
            &format!("listen = \"127.0.0.1:{}\"", a.http),
            &format!("listen = \"127.0.0.1:{b_http}\""),
        )
        .replace(
            &format!("listen_tls = \"{NET}.11:{tls}\""),
            &format!("listen_tls = \"{NET}.12:{tls}\""),
        )
        .replace(
            &format!("{}\"", a.dir.join("data").display()),
            &format!("{}\"", a.dir.join("data-b").display()),
        );
    assert!(
        b_text.contains("data-b\"") && b_text.contains(&format!("\"{NET}.12:{tls}\"")),
        "{b_text}"
    );
    let b = a.dir.join("collector-b.toml");
    std::fs::write(&b, b_text).expect("write collector-b.toml");
    (b, b_http)
}

#[test]
fn killing_a_collector_under_traffic_moves_agents_without_loss_doubles_or_alerts() {
    assert!(is_root(), "needs root for network namespaces");
    let dir = tempfile::tempdir().expect("tempdir");
    // Built first, so no phase below waits for a compiler.
    let _ = (collector_bin(), agent_bin());
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[{:>5.1} s] {what}", t0.elapsed().as_secs_f64());

    // The shared stores, on the test's loopback, relayed to the lab.
    let ch = clickhouse::start();
    let pg = TempPostgres::start()
        .unwrap_or_else(|e| panic!("the two-collector test needs PostgreSQL: {e}"));
    let pg_db = pg.database(DB).expect("create the control database");
    phase("ClickHouse and PostgreSQL up");

    let mut lab = Lab::new("twocol");
    let lan = lab.ns("lan");
    sh(&format!("ip -n {lan} link add br0 type bridge"));
    sh(&format!("ip -n {lan} link set br0 up"));
    let host_if = format!("{}h", lab.prefix);
    sh(&format!(
        "ip link add {host_if} type veth peer name host0 netns {lan}"
    ));
    sh(&format!("ip addr add {NET}.1/24 dev {host_if}"));
    sh(&format!("ip link set {host_if} up"));
    sh(&format!("ip -n {lan} link set host0 master br0"));
    sh(&format!("ip -n {lan} link set host0 up"));
    let mut attach = |name: &str, host: &str| -> String {
        let ns = lab.ns(name);
        let port = format!("p{name}");
        sh(&format!(
            "ip link add eth0 netns {ns} type veth peer name {port} netns {lan}"
        ));
        sh(&format!("ip -n {lan} link set {port} master br0"));
        sh(&format!("ip -n {lan} link set {port} up"));
        sh(&format!("ip -n {ns} addr add {NET}.{host}/24 dev eth0"));
        sh(&format!("ip -n {ns} link set eth0 up"));
        ns
    };
    let ns_a = attach("ca", "11");
    let ns_b = attach("cb", "12");
    let agent_ns: Vec<String> = NODES.iter().map(|n| attach(n.2, n.3)).collect();
    relay(&format!("{NET}.1"), port_of(&pg_db));
    relay(&format!("{NET}.1"), port_of(&ch.url));
    let (webhook, hits) = receiver::http(&format!("{NET}.1:0"));

    // Collector A, then B on its own data directory with A's certificate
    // (one CA for the agents to trust, both addresses in the certificate).
    let mut a = Collector::new(
        dir.path(),
        &[
            ("dinkes", 100_000_000),
            ("bappeda", 100_000_000),
            ("puskesmas", 100_000_000),
        ],
        &format!("{NET}.11"),
        &[&format!("{NET}.11"), &format!("{NET}.12")],
    );
    a.netns = Some(ns_a.clone());
    let (b_config, b_http) = configure(&a, &ch, &pg_db, &webhook.to_string());
    for (node, agency, ..) in NODES {
        a.add_node(agency, node, "");
    }
    // The admin's API token comes from `api-token create` on A's config:
    // into the shared control store, so B takes it too.
    a.start();
    assert!(
        wait_for(30, || leading(&ns_a, a.http) == Some(true)),
        "A, alone, does not lead: {}",
        a.log_text()
    );
    phase("A leads");
    let tls = a.tls_port();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).expect("create B's tls dir");
        for e in std::fs::read_dir(from).expect("read A's tls dir").flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy A's certificate");
        }
    };
    copy(&a.dir.join("data/tls"), &a.dir.join("data-b/tls"));
    let mut b = Collector {
        dir: a.dir.clone(),
        config: b_config,
        inventory: a.inventory.clone(),
        http: b_http,
        child: None,
        log: a.dir.join("collector-b.log"),
        netns: Some(ns_b.clone()),
        http_host: "127.0.0.1".into(),
        token: a.token.clone(),
    };
    b.start();
    phase("B up");
    let watch = LeaderWatch::start((ns_a.clone(), a.http), (ns_b.clone(), b.http));

    // Three agents; enrollment tokens from the API (the shared registry).
    let url = |host: &str| format!("wss://{NET}.{host}:{tls}/api/v1/agent");
    let (url_a, url_b) = (url("11"), url("12"));
    let mut agents = Vec::new();
    let mut flows_out = Vec::new();
    for ((node, _, _, _, a_first), ns) in NODES.iter().zip(&agent_ns) {
        let (status, v) = a.send(
            "POST",
            &format!("/api/v1/nodes/{node}/enrollment-token"),
            &serde_json::json!({}),
        );
        assert_eq!(status, 201, "enrollment token for {node}: {v}");
        let token = v["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {v}"))
            .to_string();
        let urls = if *a_first {
            [url_a.clone(), url_b.clone()]
        } else {
            [url_b.clone(), url_a.clone()]
        };
        let cfg = agent_config_for(dir.path(), node, &urls, &a.ca(), &token);
        let out = dir.path().join(format!("{node}-flows.jsonl"));
        agents.push((run_agent(ns, &cfg, &out), cfg));
        flows_out.push(out);
    }
    assert!(
        wait_for(60, || {
            let l = liveness(&b);
            NODES
                .iter()
                .all(|n| l.get(n.0).map(String::as_str) == Some("up"))
                && NODES.iter().all(|n| link_of(&b, n.0).is_some())
                && clickhouse::number(
                    &ch,
                    &format!("SELECT uniqExact(node) FROM {DB}.flow_records"),
                ) == 3
        }),
        "not every node came up and sent flows: {:?}\nA: {}\nB: {}",
        liveness(&b),
        a.log_text(),
        b.log_text()
    );
    for (node, _, _, _, a_first) in NODES {
        assert_eq!(
            link_of(&b, node),
            Some((0, 0)),
            "{node} is not on its first collector ({})",
            if a_first { "A" } else { "B" }
        );
    }

    phase("agents up and streaming");
    // A leads for longer than a heartbeat window while puskesmas-01 is
    // heard only by B: a leader blind to the shared last-seen times would
    // call it down meanwhile (the incident count below would show it).
    std::thread::sleep(Duration::from_secs(12));

    // Kill A, the leader with two agents on it, under traffic.
    assert!(
        watch.saw((Some(true), Some(false))),
        "never A leading and B following: {:?}",
        watch.samples()
    );
    a.kill9();
    phase("A killed");
    for (i, (child, cfg)) in agents.iter_mut().enumerate() {
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "agent {} ended early: {}",
            NODES[i].0,
            std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default()
        );
    }
    // The two move to B; the one on B stays.
    assert!(
        wait_for(60, || NODES.iter().all(
            |n| link_of(&b, n.0) == Some(if n.4 { (1, 1) } else { (0, 0) })
        )),
        "agents did not move to B: {:?}\nB: {}",
        NODES.iter().map(|n| link_of(&b, n.0)).collect::<Vec<_>>(),
        b.log_text()
    );
    phase("agents on B");
    assert!(
        wait_for(60, || leading(&ns_b, b.http) == Some(true)),
        "B did not take the lead after A died: {}",
        b.log_text()
    );
    assert!(watch.saw((None, Some(true))), "{:?}", watch.samples());
    phase("B leads");

    // A comes back and follows: a restart raises nothing either, and from
    // here both collectors could alert.
    a.start();
    assert!(
        wait_for(30, || leading(&ns_a, a.http) == Some(false)),
        "A is back but not following: {:?}\n{}",
        leading(&ns_a, a.http),
        a.log_text()
    );
    assert!(
        watch.saw((Some(false), Some(true))),
        "{:?}",
        watch.samples()
    );
    phase("A back, following");

    // An agent that really stops: puskesmas-01, on B all along, while both
    // collectors run.
    let (stopped_i, stopped) = (2, NODES[2].0);
    signal(&agents[stopped_i].0, "9");
    let _ = agents[stopped_i].0.wait();
    phase("puskesmas-01 killed");
    assert!(
        wait_for(60, || webhook_alerts(&hits)
            .iter()
            .any(|(s, n, _)| s == "firing" && n == stopped)),
        "no alert for the stopped agent: {:?}\nincidents: {:?}\nB: {}",
        webhook_alerts(&hits),
        incidents(&b),
        b.log_text()
    );
    phase("its alert arrived");
    // Its one alert is out; a second copy (from the other collector, or
    // its dispatcher after a takeover) would follow within a dispatch round.
    std::thread::sleep(Duration::from_secs(3));

    // No storm: one incident, one notification, one alert — for the node
    // that stopped; none for the two that moved.
    let inc = incidents(&b);
    assert_eq!(
        inc.iter()
            .map(|i| (i.1.as_str(), i.2.as_str(), i.3))
            .collect::<Vec<_>>(),
        vec![(stopped, "down", false)],
        "incidents: {inc:?}"
    );
    let notes = notifications(&b);
    assert_eq!(notes.len(), 1, "notification log: {notes:#?}");
    let n = &notes[0];
    assert_eq!(
        (
            &n["channel"],
            &n["incident_id"],
            &n["state"],
            &n["status"],
            &n["attempts"]
        ),
        (
            &serde_json::json!("noc"),
            &serde_json::json!(inc[0].0),
            &serde_json::json!("firing"),
            &serde_json::json!("sent"),
            &serde_json::json!(1)
        ),
        "one send, by one dispatcher: {n:#}"
    );
    let alerts = webhook_alerts(&hits);
    assert_eq!(
        alerts,
        vec![(
            "firing".to_string(),
            stopped.to_string(),
            inc[0].0.to_string()
        )],
        "webhook: {alerts:?}"
    );
    // Never two leaders; A led, then B alone, then B with A following.
    let samples = watch.finish();
    assert!(
        !samples.contains(&(Some(true), Some(true))),
        "both collectors led at once: {samples:?}"
    );
    for seen in [
        (Some(true), Some(false)),
        (None, Some(true)),
        (Some(false), Some(true)),
    ] {
        assert!(samples.contains(&seen), "never {seen:?}: {samples:?}");
    }

    // The two live agents stop cleanly (every record acknowledged), then
    // each one's records are stored exactly once, with their counts.
    phase("no storm, one leader at a time");
    for (child, cfg) in agents.iter_mut().take(2) {
        signal(child, "TERM");
        assert!(
            wait_for(60, || child.try_wait().ok().flatten().is_some()),
            "agent did not stop: {}",
            std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default()
        );
        let status = child.wait().expect("wait for the agent");
        let log = std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default();
        assert!(status.success(), "agent failed: {log}");
        assert!(
            log.contains("failed over to another collector"),
            "no failover in the agent's log: {log}"
        );
    }
    for (i, (node, agency, ..)) in NODES.iter().enumerate().take(2) {
        let counted = read_jsonl(&flows_out[i]);
        assert!(!counted.is_empty(), "{node} counted nothing");
        let stored = stored_flows(&b, agency);
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
            "{node}: store differs from the agent's records:\nmissing or short: {missing:?}\nextra or doubled: {extra:?}"
        );
    }
    // In ClickHouse itself: one final row per flow for every node, the
    // killed agent's included (what it sent is there once).
    for (node, ..) in NODES {
        let q = |what: &str| {
            clickhouse::number(
                &ch,
                &format!(
                    "SELECT {what} FROM {DB}.flow_records FINAL WHERE node = '{node}' AND is_final = 1"
                ),
            )
        };
        let (rows, flows) = (q("count()"), q("uniqExact(boot, flow_id)"));
        assert!(rows > 0, "{node}: no final rows");
        assert_eq!(rows, flows, "{node}: a flow's final record stored twice");
    }
}

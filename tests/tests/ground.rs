//! The ground under the product, end to end with the real binaries: one
//! inventory at the collector steers a running agent's attribution and
//! agency; this
//! release's agent delivers the spool the previous release left behind;
//! SIGTERM stops the collector cleanly (WebSocket Close, TLS close_notify,
//! a webhook in flight finished and never sent twice).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::collector::*;
use common::netns::{sh, wait_for, Lab};
use common::*;

fn node<'a>(nodes: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    nodes
        .as_array()?
        .iter()
        .find(|n| n["node_id"].as_str() == Some(id))
}

fn inventory_version(c: &Collector, id: &str) -> Option<u64> {
    node(&c.get("/api/v1/nodes"), id)?["health"]["inventory_version"].as_u64()
}

/// The units the collector stored for `host`'s flows since `from` (Unix s).
fn units_of(c: &Collector, host: &str, from: u64) -> Vec<String> {
    c.get(&format!(
        "/api/v1/flows?from={from}&to=4102444800&host={host}&limit=1000"
    ))
    .as_array()
    .map(|a| {
        a.iter()
            .filter_map(|f| f["unit"].as_str().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Replace the collector's inventory.toml whole, as an editor's save would.
fn rewrite_inventory(c: &Collector, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&c.inventory).expect("read inventory.toml");
    let tmp = c.inventory.with_extension("toml.new");
    std::fs::write(&tmp, edit(text)).expect("write inventory.toml");
    std::fs::rename(&tmp, &c.inventory).expect("replace inventory.toml");
}

/// An agent capturing live inside a namespace, streaming to the collector
/// on the host through a management link: the unit its flows carry comes
/// from the collector's inventory, and an edit there reaches it while it runs.
#[test]
fn inventory_edits_at_the_collector_reattribute_and_move_a_running_agent() {
    assert!(is_root(), "needs root for network namespaces");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lab = Lab::new("gi");
    let client = lab.ns("client");
    let server = lab.ns("server");
    lab.link(
        &client,
        "lan0",
        "10.10.1.10/24",
        &server,
        "up0",
        "10.10.1.1/24",
    );
    sh(&format!("ip -n {server} addr add 203.0.113.10/32 dev lo"));
    sh(&format!("ip -n {server} addr add 203.0.113.11/32 dev lo"));
    sh(&format!(
        "ip -n {client} route add 203.0.113.0/24 via 10.10.1.1"
    ));
    // The management link: the host (collector) ↔ the router's namespace.
    let mgmt = format!("{}m", lab.prefix);
    sh(&format!(
        "ip link add {mgmt} type veth peer name mgmt0 netns {client}"
    ));
    sh(&format!("ip addr add 10.254.21.1/30 dev {mgmt}"));
    sh(&format!("ip link set {mgmt} up"));
    sh(&format!("ip -n {client} addr add 10.254.21.2/30 dev mgmt0"));
    sh(&format!("ip -n {client} link set mgmt0 up"));

    let mut c = Collector::new(
        dir.path(),
        &[("dinkes", 0), ("bappeda", 0)],
        "10.254.21.1",
        &["10.254.21.1"],
    );
    c.start();
    let url = format!("wss://10.254.21.1:{}/api/v1/agent", c.tls_port());
    let cfg = agent_config(
        dir.path(),
        "dinkes-01",
        &url,
        &c.ca(),
        &c.token("dinkes", "dinkes-01"),
    );
    let mut text = std::fs::read_to_string(&cfg).expect("agent.toml");
    text.push_str("[capture]\ninterfaces = [\"lan0\"]\n");
    std::fs::write(&cfg, text).expect("agent.toml");
    let log = std::fs::File::create(cfg.with_extension("log")).expect("agent log");
    let agent = Command::new("ip")
        .args(["netns", "exec", &client])
        .arg(agent_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the agent");
    let agent_log = || std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default();
    let _agent = KillOnDrop(agent);
    // One long ICMP conversation: interim records every 2 s carry its unit.
    lab.spawn(&client, &["ping", "-q", "-i", "0.2", "203.0.113.10"], true);

    let started = unix_now().saturating_sub(5);
    assert!(
        wait_for(60, || units_of(&c, "10.10.1.10", started)
            .iter()
            .any(|u| u == "sekretariat")),
        "no flow of 10.10.1.10 in its unit sekretariat: {:?}\nagent: {}\ncollector: {}",
        units_of(&c, "10.10.1.10", started),
        agent_log(),
        c.log_text()
    );
    let before = inventory_version(&c, "dinkes-01").expect("the node reports its inventory");
    assert!(before >= 1, "inventory version {before}");

    // Diskominfo moves the subnet to a new unit at the collector only.
    rewrite_inventory(&c, |t| {
        t.replace("code = \"sekretariat\"", "code = \"keuangan\"")
    });
    assert!(
        wait_for(30, || inventory_version(&c, "dinkes-01")
            .is_some_and(|v| v > before)),
        "the node never reported the new inventory: {:?}\nagent: {}",
        node(&c.get("/api/v1/nodes"), "dinkes-01"),
        agent_log()
    );
    // The running conversation is re-attributed: its next records (and
    // every new flow) carry the new unit, and the old name stops.
    let changed = unix_now();
    assert!(
        wait_for(30, || units_of(&c, "10.10.1.10", changed)
            .iter()
            .any(|u| u == "keuangan")),
        "flows of 10.10.1.10 never moved to keuangan: {:?}\nagent: {}",
        units_of(&c, "10.10.1.10", changed),
        agent_log()
    );
    // Records sealed before the change may still arrive; wait past them.
    std::thread::sleep(Duration::from_secs(5));
    let later = unix_now();
    assert!(wait_for(30, || !units_of(&c, "10.10.1.10", later).is_empty()));
    let units = units_of(&c, "10.10.1.10", later);
    assert!(
        units.iter().all(|u| u == "keuangan"),
        "the old unit is still used after the change: {units:?}"
    );
    // The wall's agency view lists the unit by its new name.
    let agencies = c.get("/api/v1/agencies");
    let text = agencies.to_string();
    assert!(
        text.contains("\"keuangan\"") && !text.contains("\"sekretariat\""),
        "{agencies}"
    );

    // The node moves to another agency while it streams: the batch that
    // straddles the move must not wedge its link, and its traffic is the
    // new agency's from then on.
    let before = inventory_version(&c, "dinkes-01").unwrap_or(0);
    rewrite_inventory(&c, |t| {
        t.replace(
            "id = \"dinkes-01\"\nagency = \"dinkes\"",
            "id = \"dinkes-01\"\nagency = \"bappeda\"",
        )
    });
    assert!(
        wait_for(30, || inventory_version(&c, "dinkes-01")
            .is_some_and(|v| v > before)),
        "the moved node never reported the new inventory\nagent: {}\ncollector: {}",
        agent_log(),
        c.log_text()
    );
    let moved = unix_now();
    // A conversation that starts now (another destination) is the new
    // agency's; the one running since before the move stays listed where
    // it started.
    lab.spawn(
        &client,
        &["ping", "-q", "-c", "100", "-i", "0.2", "203.0.113.11"],
        true,
    );
    let flows_of = |agency: &str, from: u64| {
        c.get(&format!(
            "/api/v1/flows?from={from}&to=4102444800&host=10.10.1.10&agency={agency}&limit=1000"
        ))
        .as_array()
        .map_or(0, Vec::len)
    };
    assert!(
        wait_for(30, || flows_of("bappeda", moved) > 0),
        "no flow under the new agency: {}\nagent: {}\ncollector: {}",
        c.get(&format!(
            "/api/v1/flows?from={moved}&to=4102444800&limit=20"
        )),
        agent_log(),
        c.log_text()
    );
    // Every second of traffic after the move is the new agency's.
    let usage = |agency: &str, from: u64| {
        let u = c.get(&format!(
            "/api/v1/agencies/{agency}/usage?from={from}&to=4102444800&step=1s"
        ));
        u["total_bytes_in"].as_u64().unwrap_or(0) + u["total_bytes_out"].as_u64().unwrap_or(0)
    };
    assert!(
        wait_for(30, || usage("bappeda", moved + 1) > 0),
        "no traffic counted for the new agency"
    );
    assert_eq!(
        usage("dinkes", moved + 1),
        0,
        "traffic still counted for the old agency"
    );
    let n = c.get("/api/v1/nodes");
    let n = node(&n, "dinkes-01").expect("the node");
    assert_eq!(n["liveness"], "up", "{n}");
    assert_eq!(n["agency"], "bappeda", "{n}");
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The spool the previous release's agent left on a router (its records in
/// flows.jsonl/counters.jsonl beside it) is delivered by this release's
/// agent after the upgrade, together with what it counts itself.
#[test]
fn this_release_delivers_the_spool_the_previous_release_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::new(dir.path(), &[("diskominfo", 0)], "127.0.0.1", &[]);
    // The fixture's records are dated when they were recorded.
    let text = std::fs::read_to_string(&c.config).expect("collector.toml");
    std::fs::write(
        &c.config,
        text.replace("[storage]\n", "[storage]\nflow_retention_days = 36500\n"),
    )
    .expect("collector.toml");
    c.start();
    let url = format!("wss://localhost:{}/api/v1/agent", c.tls_port());
    let cfg = agent_config(
        dir.path(),
        "fixture-router",
        &url,
        &c.ca(),
        &c.token("diskominfo", "fixture-router"),
    );
    // The router's state directory as the old release left it.
    let spool = dir.path().join("agent-fixture-router/spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    let fixture = fixtures_dir().join("spool-v1");
    let mut copied = 0;
    for e in std::fs::read_dir(&fixture).expect("spool fixture") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "batch") {
            let name = p.file_name().expect("a file name");
            std::fs::copy(&p, spool.join(name)).expect("copy a batch");
            copied += 1;
        }
    }
    assert_eq!(copied, 8);

    let pcap = fixtures_dir().join("http.pcap");
    let log = std::fs::File::create(cfg.with_extension("log")).expect("agent log");
    let out = Command::new(agent_bin())
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .expect("run the agent");
    let agent_log = std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default();
    assert!(out.success(), "agent failed: {agent_log}");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .expect("spool dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        // drops.json is the spool's own ledger of losses, not a batch.
        .filter(|p| p.extension().is_some_and(|x| x == "batch"))
        .collect();
    assert!(left.is_empty(), "still spooled: {left:?}\n{agent_log}");

    // Every old flow is stored as its latest record said.
    let mut latest = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(fixture.join("flows.jsonl"))
        .expect("flows.jsonl")
        .lines()
    {
        let r: simpul_proto::FlowRecord = serde_json::from_str(line).expect("a record");
        latest.insert(r.flow_id, r);
    }
    let stored = c.get("/api/v1/flows?from=0&to=4102444800&agency=diskominfo&limit=1000");
    let stored = stored.as_array().expect("a list");
    for (id, r) in &latest {
        let first_seen = serde_json::to_value(r).expect("json")["first_seen"].clone();
        let found = stored
            .iter()
            .find(|f| f["flow_id"].as_u64() == Some(*id) && f["first_seen"] == first_seen);
        let Some(f) = found else {
            panic!("old flow {id} not stored\n{agent_log}\n{}", c.log_text());
        };
        let bytes = f["bytes_up"].as_u64().unwrap_or(0) + f["bytes_down"].as_u64().unwrap_or(0);
        assert_eq!(bytes, r.bytes_total(), "flow {id}: {f}");
    }
    // The agency's bytes are the old counters plus the new capture's.
    let old: u64 = std::fs::read_to_string(fixture.join("counters.jsonl"))
        .expect("counters.jsonl")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a counter");
            v["bytes_in"].as_u64().unwrap_or(0) + v["bytes_out"].as_u64().unwrap_or(0)
        })
        .sum();
    let new: u64 = tshark_conversations(&pcap)
        .values()
        .map(|t| t.sent.values().map(|v| v.1).sum::<u64>())
        .sum();
    let usage = c.get("/api/v1/agencies/diskominfo/usage?from=0&to=4102444800&step=1h");
    let total = usage["total_bytes_in"].as_u64().unwrap_or(0)
        + usage["total_bytes_out"].as_u64().unwrap_or(0);
    assert_eq!(total, old + new, "{usage}\n{agent_log}");
}

/// What the slow webhook saw: each request's body, and whether its answer
/// went out whole.
#[derive(Default)]
struct Webhook {
    bodies: Vec<String>,
    answered: usize,
}

/// A webhook that takes its time: every request is held until the test
/// releases it (the collector's send is in flight meanwhile).
fn slow_webhook() -> (
    SocketAddr,
    Arc<Mutex<Webhook>>,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Webhook::default()));
    let (got_tx, got_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (s, got, release) = (s.clone(), got_tx.clone(), release_rx.clone());
            std::thread::spawn(move || {
                let Ok(mut out) = conn.try_clone() else {
                    return;
                };
                let mut r = BufReader::new(conn);
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .bodies
                    .push(String::from_utf8_lossy(&body).into_owned());
                let _ = got.send(());
                let _ = release
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .recv_timeout(Duration::from_secs(60));
                let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}";
                if out
                    .write_all(answer.as_bytes())
                    .and_then(|()| out.flush())
                    .is_ok()
                {
                    s.lock().unwrap_or_else(|p| p.into_inner()).answered += 1;
                }
            });
        }
    });
    (addr, seen, got_rx, release_tx)
}

/// A TLS WebSocket client of the agent endpoint that never says Hello: it
/// prints "upgraded", then reports how the collector ended the session.
const WS_CLIENT: &str = r#"
import base64, os, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port), timeout=60)
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /api/v1/agent HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d:
        sys.exit("closed during the upgrade")
    buf += d
head, buf = buf.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit("not upgraded: %r" % head)
print("upgraded", flush=True)
def read(n):
    global buf
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d
    out, buf = buf[:n], buf[n:]
    return out
ops = []
try:
    while True:
        h = read(2)
        n = h[1] & 0x7f
        if n == 126:
            n = int.from_bytes(read(2), "big")
        elif n == 127:
            n = int.from_bytes(read(8), "big")
        read(n)
        ops.append(h[0] & 0x0f)
        if ops[-1] == 8:
            break
except EOFError:
    sys.exit("connection ended without a Close frame after %r" % ops)
except ssl.SSLEOFError:
    sys.exit("TLS ended without close_notify and without a Close frame after %r" % ops)
try:
    if s.recv(1):
        sys.exit("data after the Close frame")
except ssl.SSLEOFError:
    sys.exit("Close frame, then TLS ended without close_notify")
print("close frame, then close_notify", ops, flush=True)
"#;

/// SIGTERM while an alert's webhook is in flight and a client is connected:
/// the client gets a Close frame and a clean TLS end, the webhook's answer
/// is awaited and recorded (the next start does not send it again), and
/// the collector exits 0.
#[test]
fn sigterm_stops_the_collector_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hook, seen, got, release) = slow_webhook();
    let mut c = Collector::new(dir.path(), &[("dinkes", 0)], "127.0.0.1", &[]);
    let text = std::fs::read_to_string(&c.config).expect("collector.toml")
        + &format!(
            "[notify]\n[notify.webhook.noc]\nurl = \"http://{hook}/alerts\"\n[notify.delivery]\nstop_grace_ms = 10000\n[[notify.routes]]\nchannels = [\"noc\"]\n"
        );
    std::fs::write(&c.config, text).expect("collector.toml");
    c.start();
    let url = format!("wss://localhost:{}/api/v1/agent", c.tls_port());
    let cfg = agent_config(
        dir.path(),
        "dinkes-01",
        &url,
        &c.ca(),
        &c.token("dinkes", "dinkes-01"),
    );
    let mut text = std::fs::read_to_string(&cfg).expect("agent.toml");
    text.push_str("[capture]\ninterfaces = [\"lo\"]\n");
    std::fs::write(&cfg, text).expect("agent.toml");
    let log = std::fs::File::create(cfg.with_extension("log")).expect("agent log");
    let mut agent = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the agent");
    let up = wait_for(60, || {
        node(&c.get("/api/v1/nodes"), "dinkes-01").is_some_and(|n| n["liveness"] == "up")
    });
    if !up {
        let _ = agent.kill();
    }
    assert!(up, "the node never came up: {}", c.log_text());
    // The router dies: the collector alerts, and the webhook holds the send.
    let _ = agent.kill();
    let _ = agent.wait();
    got.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no alert reached the webhook: {}", c.log_text()));

    let mut client = Command::new("python3")
        .arg("-c")
        .arg(WS_CLIENT)
        .arg(c.tls_port().to_string())
        .arg(c.ca())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "upgraded");

    let mut collector = c.child.take().expect("the collector runs");
    sh(&format!("kill -TERM {}", collector.id()));
    // The collector waits for the webhook (its stop grace is 10 s).
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        collector.try_wait().ok().flatten().is_none(),
        "the collector exited with a webhook in flight: {}",
        c.log_text()
    );
    let _ = release.send(());
    let exited = wait_for(30, || collector.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = collector.kill();
    }
    assert!(exited, "the collector did not stop: {}", c.log_text());
    let status = collector.wait().expect("wait");
    assert!(status.success(), "exit {status}: {}", c.log_text());
    assert_eq!(
        seen.lock().unwrap_or_else(|p| p.into_inner()).answered,
        1,
        "the webhook's answer was not awaited"
    );

    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut err = String::new();
    if let Some(mut e) = client.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let st = client.wait().expect("python3");
    assert!(
        st.success()
            && rest
                .iter()
                .any(|l| l.starts_with("close frame, then close_notify")),
        "{rest:?} {err}"
    );

    // The next start finds the alert delivered: it is not sent again.
    c.start();
    std::thread::sleep(Duration::from_secs(8));
    let _ = release.send(());
    let bodies = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bodies
        .clone();
    let firing: Vec<_> = bodies
        .iter()
        .filter(|b| b.contains("dinkes-01") && b.contains("firing"))
        .collect();
    assert_eq!(firing.len(), 1, "{bodies:#?}\n{}", c.log_text());
}

//! Node outages end to end, in network namespaces with the real binaries:
//! agents stream to a collector; links are cut (interface down, and a
//! silent drop in nftables), a hub with two nodes behind it is cut, the
//! collector is killed with SIGKILL in the middle of an incident, and the
//! links run with 2 % random loss for a minute. A local Alertmanager-style
//! webhook receiver, a Telegram Bot API endpoint and an SMTP server record
//! what the people on duty would get, and when.
//!
//! ```text
//!  test process 10.254.9.1 (webhook, Telegram, SMTP) ── noc 10.254.9.2 (collector)
//!                                                        │ br0 10.254.0.1
//!                    n1 10.254.0.11 (dinkes-01) ─────────┤
//!                    hub 10.254.0.12 (hub-01) ───────────┘
//!                     │ br1 10.254.1.1
//!                     ├─ c1 10.254.1.11 (child-01)
//!                     └─ c2 10.254.1.12 (child-02)
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::collector::*;
use common::netns::{sh, wait_for, Lab};
use common::receiver::{self, Hits};
use common::*;

/// An alert as the webhook receiver got it.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    status: String,
    kind: String,
    node: String,
    incident: String,
    state: String,
    description: String,
    /// The `children` label of a group outage (comma-separated).
    children: String,
}

fn webhook_alerts(hits: &Hits) -> Vec<Received> {
    hits.all()
        .into_iter()
        .filter(|h| h.path == "/alerts")
        .filter_map(|h| {
            let v: serde_json::Value = serde_json::from_str(&h.body).ok()?;
            let a = &v["alerts"][0];
            let s = |x: &serde_json::Value| x.as_str().unwrap_or("").to_string();
            Some(Received {
                at: h.at,
                status: s(&v["status"]),
                kind: s(&a["labels"]["alertname"]),
                node: s(&a["labels"]["node"]),
                incident: s(&a["labels"]["incident_id"]),
                state: s(&a["annotations"]["simpul_state"]),
                description: s(&a["annotations"]["description"]),
                children: s(&a["labels"]["children"]),
            })
        })
        .collect()
}

fn firing_for<'a>(alerts: &'a [Received], node: &str) -> Vec<&'a Received> {
    alerts
        .iter()
        .filter(|a| a.node == node && a.status == "firing" && a.state == "firing")
        .collect()
}

fn resolved_for<'a>(alerts: &'a [Received], node: &str) -> Vec<&'a Received> {
    alerts
        .iter()
        .filter(|a| a.node == node && a.status == "resolved")
        .collect()
}

struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(ns: &str, cfg: &Path) -> Agent {
    let log = std::fs::File::create(cfg.with_extension("log")).expect("agent log");
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(agent_bin())
        .args(["replay", "--pcap"])
        .arg(fixtures_dir().join("http.pcap"))
        .arg("--config")
        .arg(cfg)
        .args(["--realtime", "--loop"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start agent");
    Agent { child }
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

fn silent_drop(ns: &str, on: bool) {
    if on {
        sh(&format!(
            "ip netns exec {ns} nft -f - <<'EOF'\ntable inet cut {{\n chain i {{ type filter hook input priority -200; policy drop; }}\n chain o {{ type filter hook output priority -200; policy drop; }}\n}}\nEOF"
        ));
    } else {
        sh(&format!("ip netns exec {ns} nft delete table inet cut"));
    }
}

/// 2 % of packets dropped at random, both ways (the kernel here has no
/// netem; nftables' random number generator does the same job).
fn lossy(ns: &str, on: bool) {
    if on {
        sh(&format!(
            "ip netns exec {ns} nft -f - <<'EOF'\ntable inet loss {{\n chain i {{ type filter hook input priority -200; numgen random mod 100 < 2 counter drop; }}\n chain o {{ type filter hook output priority -200; numgen random mod 100 < 2 counter drop; }}\n}}\nEOF"
        ));
    } else {
        sh(&format!("ip netns exec {ns} nft delete table inet loss"));
    }
}

#[test]
fn outages_alert_once_recover_group_and_survive_a_collector_kill() {
    assert!(is_root(), "needs root for network namespaces");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lab = Lab::new("ou");
    let noc = lab.ns("noc");
    let n1 = lab.ns("n1");
    let hub = lab.ns("hub");
    let c1 = lab.ns("c1");
    let c2 = lab.ns("c2");
    // The test process ↔ collector.
    let host_if = format!("{}h", lab.prefix);
    sh(&format!(
        "ip link add {host_if} type veth peer name mgmt0 netns {noc}"
    ));
    sh(&format!("ip addr add 10.254.9.1/30 dev {host_if}"));
    sh(&format!("ip link set {host_if} up"));
    sh(&format!("ip -n {noc} addr add 10.254.9.2/30 dev mgmt0"));
    sh(&format!("ip -n {noc} link set mgmt0 up"));
    sh(&format!("ip -n {noc} link set lo up"));
    // The NOC's bridge with n1 and the hub on it.
    sh(&format!("ip -n {noc} link add br0 type bridge"));
    sh(&format!("ip -n {noc} addr add 10.254.0.1/24 dev br0"));
    sh(&format!("ip -n {noc} link set br0 up"));
    for (ns, ifname, addr, port) in [
        (&n1, "eth0", "10.254.0.11", "pn1"),
        (&hub, "up0", "10.254.0.12", "phub"),
    ] {
        sh(&format!(
            "ip link add {ifname} netns {ns} type veth peer name {port} netns {noc}"
        ));
        sh(&format!("ip -n {noc} link set {port} master br0"));
        sh(&format!("ip -n {noc} link set {port} up"));
        sh(&format!("ip -n {ns} addr add {addr}/24 dev {ifname}"));
        sh(&format!("ip -n {ns} link set {ifname} up"));
    }
    sh(&format!(
        "ip -n {noc} route add 10.254.1.0/24 via 10.254.0.12"
    ));
    // Behind the hub.
    sh(&format!("ip -n {hub} link add br1 type bridge"));
    sh(&format!("ip -n {hub} addr add 10.254.1.1/24 dev br1"));
    sh(&format!("ip -n {hub} link set br1 up"));
    sh(&format!(
        "ip netns exec {hub} sysctl -qw net.ipv4.ip_forward=1"
    ));
    for (ns, addr, port) in [(&c1, "10.254.1.11", "pc1"), (&c2, "10.254.1.12", "pc2")] {
        sh(&format!(
            "ip link add eth0 netns {ns} type veth peer name {port} netns {hub}"
        ));
        sh(&format!("ip -n {hub} link set {port} master br1"));
        sh(&format!("ip -n {hub} link set {port} up"));
        sh(&format!("ip -n {ns} addr add {addr}/24 dev eth0"));
        sh(&format!("ip -n {ns} link set eth0 up"));
        sh(&format!("ip -n {ns} route add default via 10.254.1.1"));
    }

    // What the people on duty would get.
    let (http_addr, hits) = receiver::http("10.254.9.1:0");
    let (smtp_addr, mails) = receiver::smtp("10.254.9.1:0");

    // The collector, with the default detection settings.
    let mut c = Collector::new(
        dir.path(),
        &[("dinkes", 100_000_000), ("puskesmas", 100_000_000)],
        "10.254.0.1",
        &["10.254.0.1"],
    );
    // The API is on loopback inside the NOC's namespace (plain HTTP binds
    // loopback only); the test reaches it with `ip netns exec`.
    c.netns = Some(noc.clone());
    let text = std::fs::read_to_string(&c.config).expect("config");
    let text = text
        .replace(
            "[nodes]\nheartbeat_interval_ms = 500\ndown_after_secs = 3\n",
            "[nodes]\nheartbeat_interval_ms = 2000\ndown_after_secs = 10\n",
        )
        + &format!(
            "[notify]\n[notify.webhook.noc]\nurl = \"http://{http_addr}/alerts\"\n[notify.telegram.piket]\ntoken = \"123:ABC\"\nchat_ids = [\"-1001\"]\nbase_url = \"http://{http_addr}\"\n[notify.email.pimpinan]\nhost = \"{}\"\nport = {}\ntls = \"none\"\nfrom = \"noc@example.go.id\"\nto = [\"kadis@example.go.id\"]\n[[notify.routes]]\nchannels = [\"noc\", \"piket\", \"pimpinan\"]\n",
            smtp_addr.ip(),
            smtp_addr.port()
        );
    std::fs::write(&c.config, text).expect("write config");
    // The topology is the inventory's: the hub is critical, the children
    // reach the collector through it.
    c.add_node("puskesmas", "hub-01", "criticality = \"critical\"\n");
    for child in ["child-01", "child-02"] {
        c.add_node("puskesmas", child, "parent = \"hub-01\"\n");
    }
    c.start();
    let url = format!("wss://10.254.0.1:{}/api/v1/agent", c.tls_port());

    let nodes = [
        (&n1, "dinkes", "dinkes-01"),
        (&hub, "puskesmas", "hub-01"),
        (&c1, "puskesmas", "child-01"),
        (&c2, "puskesmas", "child-02"),
    ];
    let mut agents = Vec::new();
    for (ns, agency, node) in nodes {
        let cfg = agent_config(dir.path(), node, &url, &c.ca(), &c.token(agency, node));
        agents.push(start_agent(ns, &cfg));
    }
    assert!(
        wait_for(60, || {
            let l = liveness(&c);
            ["dinkes-01", "hub-01", "child-01", "child-02"]
                .iter()
                .all(|n| l.get(*n).map(String::as_str) == Some("up"))
        }),
        "not every node came up: {:?}\n{}",
        liveness(&c),
        c.log_text()
    );

    // 1. Interface down.
    let cut = Instant::now();
    sh(&format!("ip -n {n1} link set eth0 down"));
    assert!(
        wait_for(30, || !firing_for(&webhook_alerts(&hits), "dinkes-01")
            .is_empty()),
        "no alert for a cut link: {}",
        c.log_text()
    );
    let latency = firing_for(&webhook_alerts(&hits), "dinkes-01")[0].at - cut;
    eprintln!("interface down → webhook alert in {latency:?}");
    assert!(latency < Duration::from_secs(13), "alert took {latency:?}");
    // Telegram and e-mail got it too.
    assert!(wait_for(10, || hits.all().iter().any(|h| h.path
        == "/bot123:ABC/sendMessage"
        && h.body.contains("dinkes-01"))));
    assert!(wait_for(10, || mails
        .all()
        .iter()
        .any(|m| m.body.contains("dinkes-01"))));
    sh(&format!("ip -n {n1} link set eth0 up"));
    assert!(
        wait_for(30, || !resolved_for(&webhook_alerts(&hits), "dinkes-01")
            .is_empty()),
        "no recovery: {}",
        c.log_text()
    );

    // 2. A silent drop (the link stays up, nothing gets through).
    let cut = Instant::now();
    silent_drop(&n1, true);
    assert!(
        wait_for(30, || firing_for(&webhook_alerts(&hits), "dinkes-01").len()
            == 2),
        "no alert for a silent drop"
    );
    eprintln!(
        "silent drop → webhook alert in {:?}",
        firing_for(&webhook_alerts(&hits), "dinkes-01")[1].at - cut
    );
    silent_drop(&n1, false);
    assert!(
        wait_for(40, || resolved_for(&webhook_alerts(&hits), "dinkes-01")
            .len()
            == 2),
        "no recovery after the drop"
    );

    // 3. The hub's uplink: one grouped alert naming the hub, none for the
    // nodes behind it; its recovery; the children come back unalerted.
    sh(&format!("ip -n {hub} link set up0 down"));
    assert!(
        wait_for(30, || !firing_for(&webhook_alerts(&hits), "hub-01")
            .is_empty()),
        "no alert for the hub"
    );
    let a = webhook_alerts(&hits);
    let hub_alert = firing_for(&a, "hub-01")[0].clone();
    assert_eq!(hub_alert.kind, "group_down", "{hub_alert:?}");
    assert_eq!(
        hub_alert.children, "child-01,child-02",
        "the children in a label: {hub_alert:?}"
    );
    assert!(
        hub_alert.description.contains("child-01") && hub_alert.description.contains("child-02"),
        "{hub_alert:?}"
    );
    std::thread::sleep(Duration::from_secs(6));
    let a = webhook_alerts(&hits);
    assert!(
        firing_for(&a, "child-01").is_empty() && firing_for(&a, "child-02").is_empty(),
        "children alerted one by one: {a:#?}"
    );
    let l = liveness(&c);
    assert_eq!(
        l.get("child-01").map(String::as_str),
        Some("unreachable"),
        "{l:?}"
    );
    sh(&format!("ip -n {hub} link set up0 up"));
    assert!(
        wait_for(40, || !resolved_for(&webhook_alerts(&hits), "hub-01")
            .is_empty()),
        "no hub recovery"
    );
    // Each child's agent comes back at its next reconnect attempt: up to
    // its longest backoff (37.5 s) after the link.
    assert!(
        wait_for(60, || {
            let l = liveness(&c);
            ["child-01", "child-02"]
                .iter()
                .all(|n| l.get(*n).map(String::as_str) == Some("up"))
        }),
        "the children did not come back: {:?}",
        liveness(&c)
    );
    // Nothing of their own, of any kind: not an outage (their agents may
    // still be waiting out a reconnect backoff when the hub is up), not a
    // clock off (the heartbeats the cut held arrive all at once).
    let a = webhook_alerts(&hits);
    let children_alerted = || {
        webhook_alerts(&hits)
            .into_iter()
            .filter(|x| x.node.starts_with("child-"))
            .collect::<Vec<_>>()
    };
    assert!(
        children_alerted().is_empty(),
        "a child alerted on its own around its hub's recovery: {a:#?}\n{}",
        c.log_text()
    );

    // 4. The collector is killed in the middle of an incident and comes
    // back after the link: the outage is not announced twice, and its
    // recovery is not lost.
    sh(&format!("ip -n {n1} link set eth0 down"));
    assert!(wait_for(30, || firing_for(
        &webhook_alerts(&hits),
        "dinkes-01"
    )
    .len()
        == 3));
    c.kill9();
    sh(&format!("ip -n {n1} link set eth0 up"));
    c.start();
    assert!(
        wait_for(60, || resolved_for(&webhook_alerts(&hits), "dinkes-01")
            .len()
            == 3),
        "recovery lost across the restart: {}",
        c.log_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    let a = webhook_alerts(&hits);
    let mut per_key: BTreeMap<(String, String), u32> = BTreeMap::new();
    for x in &a {
        *per_key
            .entry((x.incident.clone(), x.state.clone()))
            .or_default() += 1;
    }
    assert!(
        per_key.values().all(|&n| n == 1),
        "a notification was sent twice: {per_key:?}"
    );
    // Still nothing for the children, well after their hub came back
    // (step 5 counts everything after this).
    assert!(
        children_alerted().is_empty(),
        "a child alerted after its hub's recovery: {:#?}",
        children_alerted()
    );
    let incidents = c.get("/api/v1/incidents?from=0");
    let open: Vec<_> = incidents
        .as_array()
        .expect("list")
        .iter()
        .filter(|i| i["resolved_ms"].is_null())
        .collect();
    assert!(open.is_empty(), "incidents left open: {open:?}");

    // 5. 2 % random loss on every agent link for a minute: no alert.
    let before = webhook_alerts(&hits).len();
    for ns in [&n1, &hub, &c1, &c2] {
        lossy(ns, true);
    }
    std::thread::sleep(Duration::from_secs(60));
    for ns in [&n1, &hub, &c1, &c2] {
        lossy(ns, false);
    }
    std::thread::sleep(Duration::from_secs(12));
    let after = webhook_alerts(&hits);
    assert_eq!(
        after.len(),
        before,
        "false alarms under 2 % loss: {:#?}",
        &after[before..]
    );
    drop(agents);
}

//! `/metrics` as the NOC's Prometheus scrapes it, against an in-process
//! collector: an agent enrolls over the real TLS WebSocket, sends
//! heartbeats and a batch, and the scrape says so — families with help and
//! type, the figures sent, no address or domain in any label, NOC roles
//! only, and `promtool check metrics` clean. The Grafana dashboard in
//! configs/ is checked against the same scrape.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use serde_json::json;
use simpul_proto::wire::{
    self, AgentMessage, Batch, Health, Heartbeat, InterfaceHealth, NameLaneHealth,
};
use simpul_proto::{BlockMethod, BlockedAttempt, CounterSample, TrafficScope};
use tokio_tungstenite::tungstenite::Message;

const S: u64 = 1_000_000_000;
const CLIENT: &str = "10.20.30.41";
const DOMAIN: &str = "togel-judi.example";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn counter(ts: u64, scope: TrafficScope, bytes_in: u64, bytes_out: u64) -> CounterSample {
    CounterSample {
        ts,
        agency: "dinkes".into(),
        unit: "sekretariat".into(),
        scope,
        bytes_in,
        bytes_out,
        packets_in: 10,
        packets_out: 10,
    }
}

fn attempt(method: BlockMethod, list: &str, attempts: u32, at_s: u64) -> BlockedAttempt {
    BlockedAttempt {
        first_seen: (at_s - 5) * S,
        last_seen: at_s * S,
        client: CLIENT.parse().unwrap(),
        agency: "dinkes".into(),
        unit: "sekretariat".into(),
        method,
        target: DOMAIN.into(),
        server: Some("198.51.100.7".parse().unwrap()),
        port: Some(443),
        proto: "tcp".into(),
        rule: DOMAIN.into(),
        list: list.into(),
        attempts,
    }
}

fn health() -> Health {
    Health {
        // A quote and a backslash: escaped in the label, not breaking it.
        agent_version: "1.4.0 \"lab\\build\"".into(),
        uptime_secs: 3600,
        cpu_percent: 12.5,
        rss_bytes: 40 << 20,
        interfaces: vec![
            InterfaceHealth {
                name: "eth0".into(),
                frames: 1000,
                kernel_drops: 3,
                queue_drops: 4,
            },
            InterfaceHealth {
                name: "eth1".into(),
                frames: 500,
                kernel_drops: 1,
                queue_drops: 0,
            },
        ],
        packets: 1500,
        bytes: 900_000,
        decode_errors: 2,
        active_flows: 17,
        flows_evicted: 0,
        spool_batches: 5,
        spool_bytes: 123_456,
        spool_quota_bytes: 64 << 20,
        spool_dropped_records: 9,
        policy_version: 1,
        policy_failures: 2,
        inventory_version: 1,
        name_lanes: vec![
            NameLaneHealth {
                interface: "eth0".into(),
                frames: 70,
                blocks: 6,
                dropped: 2,
                read_errors: 1,
            },
            NameLaneHealth {
                interface: "eth1".into(),
                frames: 30,
                blocks: 1,
                dropped: 0,
                read_errors: 0,
            },
        ],
        collector: Some(simpul_proto::wire::CollectorLink {
            url: "wss://10.255.1.10:8443/api/v1/agent".into(),
            index: 1,
            failovers: 3,
        }),
        name_block: Some(simpul_proto::wire::NameBlockHealth {
            entries_added: 11,
            batches: 8,
            failures: 1,
            clears: 2,
            nft_fallbacks: 3,
            resets_sent: 20,
            reset_errors: 4,
        }),
        ipfix: Some(simpul_proto::wire::IpfixHealth {
            messages: 40,
            records: 950,
            send_errors: 5,
            record_errors: 6,
            interim_skipped: 7,
        }),
    }
}

/// One sample of the scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The exposition read back: HELP and TYPE per family, every sample.
#[derive(Debug, Default)]
struct Scrape {
    help: BTreeMap<String, String>,
    kind: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                assert!(
                    s.help.insert(name.into(), help.into()).is_none(),
                    "{name}: HELP twice"
                );
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    s.kind.insert(name.into(), kind.into()).is_none(),
                    "{name}: TYPE twice"
                );
            } else if line.starts_with('#') {
                continue;
            } else {
                s.samples.push(sample(line));
            }
        }
        s
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|x| {
                x.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|x| x.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// The family a sample belongs to (summaries' `_sum` and `_count`).
    fn family_of(&self, sample: &str) -> Option<String> {
        if self.kind.contains_key(sample) {
            return Some(sample.into());
        }
        for suffix in ["_sum", "_count", "_bucket"] {
            if let Some(base) = sample.strip_suffix(suffix) {
                if self.kind.contains_key(base) {
                    return Some(base.into());
                }
            }
        }
        None
    }
}

/// `name{k="v",…} value`, with the format's escapes in values.
fn sample(line: &str) -> Sample {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (n, v) = line.split_once(' ').unwrap();
            return Sample {
                name: n.into(),
                labels: BTreeMap::new(),
                value: parse_value(v),
            };
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.char_indices().peekable();
    let end;
    loop {
        let (i, c) = chars.next().expect("labels end with }");
        if c == '}' {
            end = i;
            break;
        }
        if c == ',' {
            continue;
        }
        let mut key = String::from(c);
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
        let mut value = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|x| x.1) {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                '"' => break,
                '\n' => panic!("raw newline in {line}"),
                c => value.push(c),
            }
        }
        labels.insert(key, value);
    }
    Sample {
        name: name.into(),
        labels,
        value: parse_value(rest[end + 1..].trim()),
    }
}

fn parse_value(v: &str) -> f64 {
    match v.split_whitespace().next().unwrap() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        x => x.parse().unwrap_or_else(|_| panic!("bad value {v}")),
    }
}

async fn scrape_as(c: &simpul_collector::server::Collector, token: &str) -> (u16, String) {
    let (status, body) =
        common::raw_request(c, "GET", "/metrics", None, "", &common::bearer(token)).await;
    (status, body.as_str().unwrap_or_default().to_string())
}

/// `promtool check metrics` on `text`: its verdict, or a failure saying
/// how to get promtool (scripts/setup.sh installs it).
fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is needed for this test and could not run ({e}): \
             run scripts/setup.sh (Debian package `prometheus`)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_nocs_figures() {
    let dir = tempfile::tempdir().unwrap();
    // One notification channel: its counters exist before anything is sent.
    let mut cfg = common::base_config(dir.path());
    cfg.notify.webhook.insert(
        "noc-webhook".into(),
        simpul_collector::notify::WebhookConfig {
            url: "http://127.0.0.1:9/alert".into(),
            headers: Default::default(),
            receiver: None,
            rate_per_minute: 60,
            timeout_secs: 5,
            proxy: None,
            ca_cert: None,
        },
    );
    // And the listener of its own that answers without login.
    let metrics_port = free_port();
    cfg.server.metrics_listen = Some(format!("127.0.0.1:{metrics_port}").parse().unwrap());
    let c = common::start(cfg, &["dinkes", "bappeda"], vec![]).await;
    let operator = common::token(&c, "operator", None);

    // Incidents open before the first scrape (the count is then cached
    // for a few seconds): a major outage and an acknowledged condition of
    // nodes the monitor does not watch, and one inside a maintenance window.
    {
        let mut store = c.state.control.incidents().unwrap();
        let now = now_s() * 1000;
        let open = |store: &mut simpul_collector::store::IncidentStore,
                    node: &str,
                    kind: &str,
                    severity: &str,
                    maintenance: bool| {
            store
                .open(&simpul_collector::store::NewIncident {
                    node_id: node,
                    agency: "bappeda",
                    kind,
                    severity,
                    root_cause: None,
                    children: &[],
                    started_ms: now - 60_000,
                    detected_ms: now - 50_000,
                    maintenance,
                })
                .unwrap()
                .0
        };
        open(&mut store, "bappeda-09", "down", "major", false);
        let skew = open(&mut store, "bappeda-08", "clock_skew", "minor", false);
        store.ack(skew.id, "budi", now).unwrap();
        open(&mut store, "bappeda-07", "down", "critical", true);
    }

    // An allocation in force for every agency (the province default).
    let rates = |rate: u64, ceil: u64| json!({"rate_bps": rate, "ceil_bps": ceil});
    let (status, v) = common::request(
        &c,
        "PUT",
        "/api/v1/policy/default",
        Some("application/json"),
        json!({"base_version": 0, "comment": "test", "policy": {
            "allocation": {"download": rates(50_000_000, 80_000_000), "upload": rates(20_000_000, 30_000_000)}
        }})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    // Who may scrape: the NOC's roles; an agency officer (who would read
    // every agency's figures) and the wall's viewer may not.
    let (status, _) = scrape_as(&c, &operator).await;
    assert_eq!(status, 200);
    for (role, agency) in [("agency", Some("dinkes")), ("viewer", None)] {
        let t = common::token(&c, role, agency);
        let (status, body) = scrape_as(&c, &t).await;
        assert_eq!(status, 403, "{role}: {body}");
    }
    let (status, _) = common::raw_request(&c, "GET", "/metrics", None, "", "").await;
    assert_eq!(status, 401);

    // A node of dinkes: heartbeats with its health, one batch.
    let cred = common::enroll_credential(&c, "dinkes", "dinkes-01").await;
    let mut ws = common::hello(
        c.tls_addr.unwrap(),
        c.tls.ca_cert.as_ref().unwrap(),
        "dinkes-01",
        &cred,
    )
    .await;
    let heartbeat = || {
        Message::Binary(
            wire::encode(&AgentMessage::Heartbeat(Heartbeat {
                sent_ms: now_s() * 1000,
                health: health(),
            }))
            .into(),
        )
    };
    let t = now_s();
    let counters = vec![
        counter(t - 4, TrafficScope::Internet, 1_000_000, 250_000),
        counter(t - 3, TrafficScope::Internet, 2_000_000, 500_000),
        counter(t - 3, TrafficScope::Intranet, 7_000, 3_000),
    ];
    let blocked = vec![
        attempt(BlockMethod::Dns, "judi", 3, t - 2),
        attempt(BlockMethod::Sni, "domains", 2, t - 2),
        attempt(BlockMethod::Dns, "judi", 4, t - 1),
    ];
    common::send_batch(
        &mut ws,
        Batch {
            boot_epoch: 1,
            seq: 1,
            sealed_ms: t * 1000,
            flows: vec![],
            counters,
            blocked,
            dropped_records: 0,
            dropped_batches: 0,
        },
    )
    .await;

    // Heartbeats until the detector calls the node up (two in a row by
    // default) and its health is in the scrape.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        ws.send(heartbeat()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, text) = scrape_as(&c, &operator).await;
        assert_eq!(status, 200);
        let s = Scrape::parse(&text);
        let up = s.get("simpul_node_up", &[("node", "dinkes-01")]) == Some(1.0);
        let health = s
            .get("simpul_agent_spool_bytes", &[("node", "dinkes-01")])
            .is_some();
        if up && health {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "node not up with health in 20 s:\n{text}"
        );
    };
    let s = Scrape::parse(&text);

    // Every family has help and a type; every sample belongs to one.
    for name in s.kind.keys() {
        let help = s.help.get(name).map(String::as_str).unwrap_or("");
        assert!(!help.trim().is_empty(), "{name} has no help text");
    }
    for x in &s.samples {
        assert!(s.family_of(&x.name).is_some(), "{} has no # TYPE", x.name);
    }

    // Per node.
    let node = [("node", "dinkes-01"), ("agency", "dinkes")];
    assert_eq!(s.value("simpul_node_up", &node), 1.0);
    assert_eq!(
        s.value("simpul_node_state", &[node[0], ("state", "up")]),
        1.0
    );
    assert_eq!(
        s.value("simpul_node_state", &[node[0], ("state", "down")]),
        0.0
    );
    let age = s.value("simpul_node_heartbeat_age_seconds", &node);
    assert!((0.0..30.0).contains(&age), "heartbeat age {age}");
    assert_eq!(s.value("simpul_agent_connected", &node), 1.0);
    assert_eq!(
        s.value(
            "simpul_agent_info",
            &[node[0], ("version", "1.4.0 \"lab\\build\"")]
        ),
        1.0
    );
    assert_eq!(
        s.value(
            "simpul_agent_capture_drops_total",
            &[node[0], ("where", "kernel")]
        ),
        4.0
    );
    assert_eq!(
        s.value(
            "simpul_agent_capture_drops_total",
            &[node[0], ("where", "queue")]
        ),
        4.0
    );
    assert_eq!(s.value("simpul_agent_capture_frames_total", &node), 1500.0);
    assert_eq!(s.value("simpul_agent_name_lanes", &node), 2.0);
    assert_eq!(s.value("simpul_agent_collector_index", &node), 1.0);
    assert_eq!(
        s.value("simpul_agent_collector_failovers_total", &node),
        3.0
    );
    assert_eq!(s.value("simpul_agent_name_lane_frames_total", &node), 100.0);
    assert_eq!(s.value("simpul_agent_name_lane_blocks_total", &node), 7.0);
    assert_eq!(
        s.value(
            "simpul_agent_name_lane_lost_total",
            &[node[0], ("what", "dropped")]
        ),
        2.0
    );
    assert_eq!(
        s.value(
            "simpul_agent_name_lane_lost_total",
            &[node[0], ("what", "read_error")]
        ),
        1.0
    );
    let one = |name: &str| s.value(name, &node);
    assert_eq!(one("simpul_agent_name_block_entries_total"), 11.0);
    assert_eq!(one("simpul_agent_name_block_batches_total"), 8.0);
    assert_eq!(one("simpul_agent_name_block_nft_fallbacks_total"), 3.0);
    assert_eq!(one("simpul_agent_name_block_clears_total"), 2.0);
    assert_eq!(one("simpul_agent_name_block_resets_total"), 20.0);
    let what = |name: &str, what: &str| s.value(name, &[node[0], ("what", what)]);
    assert_eq!(what("simpul_agent_name_block_errors_total", "kernel"), 1.0);
    assert_eq!(what("simpul_agent_name_block_errors_total", "reset"), 4.0);
    assert_eq!(one("simpul_agent_ipfix_messages_total"), 40.0);
    assert_eq!(one("simpul_agent_ipfix_records_total"), 950.0);
    assert_eq!(what("simpul_agent_ipfix_errors_total", "send"), 5.0);
    assert_eq!(what("simpul_agent_ipfix_errors_total", "record"), 6.0);
    assert_eq!(one("simpul_agent_ipfix_interim_skipped_total"), 7.0);
    assert_eq!(s.value("simpul_agent_spool_bytes", &node), 123_456.0);
    assert_eq!(
        s.value("simpul_agent_spool_quota_bytes", &node),
        (64u64 << 20) as f64
    );
    assert_eq!(
        s.value("simpul_agent_spool_dropped_records_total", &node),
        9.0
    );
    assert_eq!(s.value("simpul_agent_policy_version", &node), 1.0);
    assert_eq!(s.value("simpul_agent_policy_failures_total", &node), 2.0);
    assert_eq!(s.value("simpul_agent_cpu_ratio", &node), 0.125);

    // Per agency and direction: the bytes sent, the allocation in force.
    let bytes = |agency: &str, dir: &str, scope: &str| {
        s.value(
            "simpul_agency_bytes_total",
            &[("agency", agency), ("direction", dir), ("scope", scope)],
        )
    };
    assert_eq!(bytes("dinkes", "in", "internet"), 3_000_000.0);
    assert_eq!(bytes("dinkes", "out", "internet"), 750_000.0);
    assert_eq!(bytes("dinkes", "in", "intranet"), 7_000.0);
    assert_eq!(bytes("dinkes", "out", "intranet"), 3_000.0);
    assert_eq!(
        bytes("bappeda", "in", "internet"),
        0.0,
        "a quiet agency has zeros"
    );
    for agency in ["dinkes", "bappeda"] {
        let alloc = |dir: &str| {
            s.value(
                "simpul_agency_allocation_bytes_per_second",
                &[("agency", agency), ("direction", dir)],
            )
        };
        // Bytes/s, Prometheus' base unit (the policy says bit/s).
        assert_eq!(alloc("in"), 50_000_000.0 / 8.0);
        assert_eq!(alloc("out"), 20_000_000.0 / 8.0);
        assert_eq!(
            s.value(
                "simpul_agency_allocation_ceil_bytes_per_second",
                &[("agency", agency), ("direction", "in")]
            ),
            80_000_000.0 / 8.0
        );
        assert_eq!(
            s.value("simpul_agency_policy_version", &[("agency", agency)]),
            1.0
        );
        assert!(s
            .get(
                "simpul_agency_rate_bytes_per_second",
                &[
                    ("agency", agency),
                    ("direction", "in"),
                    ("scope", "internet")
                ]
            )
            .is_some());
    }

    // Blocked attempts by method and list (attempts, not records).
    assert_eq!(
        s.value(
            "simpul_blocked_attempts_total",
            &[("method", "dns"), ("list", "judi")]
        ),
        7.0
    );
    assert_eq!(
        s.value(
            "simpul_blocked_attempts_total",
            &[("method", "sni"), ("list", "domains")]
        ),
        2.0
    );

    // Notifications by channel, from zero.
    for family in ["simpul_notify_sent_total", "simpul_notify_failed_total"] {
        assert_eq!(
            s.value(family, &[("channel", "noc-webhook")]),
            0.0,
            "{family}"
        );
    }

    // Incidents by severity and state, every pair present.
    let open = |sev: &str, state: &str| {
        s.value(
            "simpul_incidents_open",
            &[("severity", sev), ("state", state)],
        )
    };
    assert_eq!(open("major", "unacknowledged"), 1.0);
    assert_eq!(open("minor", "acknowledged"), 1.0);
    assert_eq!(open("critical", "maintenance"), 1.0);
    assert_eq!(open("critical", "unacknowledged"), 0.0);
    assert_eq!(open("info", "unacknowledged"), 0.0);
    assert_eq!(
        s.value("simpul_incidents_open_by_kind", &[("kind", "down")]),
        2.0
    );
    assert_eq!(
        s.value("simpul_incidents_open_by_kind", &[("kind", "clock_skew")]),
        1.0
    );

    // The collector: build, ingest, store.
    assert_eq!(
        s.value(
            "simpul_collector_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("store", "sqlite")]
        ),
        1.0
    );
    assert!(s.value("simpul_ingest_batches_total", &[]) >= 1.0);
    assert!(s.value("simpul_ingest_records_total", &[]) >= 6.0);
    assert!(s.value("simpul_ingest_commit_seconds_count", &[]) >= 1.0);
    assert!(s.value("simpul_store_size_bytes", &[("file", "database")]) > 0.0);

    // No label holds an address or a domain of the traffic.
    assert!(!text.contains(CLIENT), "a client address in the scrape");
    assert!(!text.contains(DOMAIN), "a blocked domain in the scrape");
    for x in &s.samples {
        for (k, v) in &x.labels {
            assert!(
                v.parse::<std::net::IpAddr>().is_err(),
                "{}{{{k}={v:?}}}: an address as a label",
                x.name
            );
        }
    }

    // promtool, as a Prometheus server would judge the scrape.
    let (ok, said) = promtool(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n---\n{text}"
    );

    // server.metrics_listen: the same families, without login.
    let own = prom_get_text(metrics_port, "/metrics").await;
    let own = Scrape::parse(&own);
    assert_eq!(
        own.kind.keys().collect::<Vec<_>>(),
        s.kind.keys().collect::<Vec<_>>(),
        "metrics_listen serves the same families"
    );
    assert_eq!(
        own.value(
            "simpul_agency_bytes_total",
            &[
                ("agency", "dinkes"),
                ("direction", "in"),
                ("scope", "internet")
            ]
        ),
        3_000_000.0
    );

    let exprs = dashboard_names_only_these_families(&s);
    prometheus_runs_the_dashboards_queries(&c, &operator, &exprs).await;
    c.stop().await;
}

/// A Prometheus server (Debian's, like promtool) is killed with the test.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET from a loopback port: the body of a 200 answer.
async fn prom_get_text(port: u16, path: &str) -> String {
    match plain_get(port, path).await {
        Some((200, body)) => body,
        other => panic!("127.0.0.1:{port}{path}: {other:?}"),
    }
}

/// GET from Prometheus's HTTP API: the JSON answer.
async fn prom_get(port: u16, path: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&plain_get(port, path).await?.1).ok()
}

/// GET over plain HTTP/1.1 from a loopback port: status and body.
async fn plain_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(tail.get(..n)?);
            rest = tail.get(n..)?.trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body))
}

/// The README's scrape configuration, run by a real Prometheus against
/// the collector's TLS listener with the operator's bearer token; then
/// every query of the Grafana dashboard is evaluated by it ($agency set
/// to one agency): each must parse and run.
async fn prometheus_runs_the_dashboards_queries(
    c: &simpul_collector::server::Collector,
    token: &str,
    exprs: &[String],
) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("simpul.token");
    std::fs::write(&token_file, token).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: simpul\n\
         \x20   scheme: https\n\
         \x20   tls_config:\n\
         \x20     ca_file: {ca}\n\
         \x20     server_name: localhost\n\
         \x20   authorization:\n\
         \x20     type: Bearer\n\
         \x20     credentials_file: {token}\n\
         \x20   static_configs:\n\
         \x20     - targets: [\"127.0.0.1:{port}\"]\n",
        ca = c.tls.ca_cert.as_ref().unwrap().display(),
        token = token_file.display(),
        port = c.tls_addr.unwrap().port(),
    );
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let port = free_port();
    let child = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "prometheus is needed for this test and could not run ({e}): \
                 run scripts/setup.sh (Debian package `prometheus`)"
            )
        });
    let _server = Server(child);

    // Scraped: the target is up and the bytes arrived as they were sent.
    let want = url_encode(
        "simpul_agency_bytes_total{job=\"simpul\",agency=\"dinkes\",direction=\"in\",scope=\"internet\"}",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = prom_get(port, &format!("/api/v1/query?query={want}")).await;
        let got = v.as_ref().and_then(|v| {
            v["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_string)
        });
        if got.as_deref() == Some("3000000") {
            break;
        }
        if Instant::now() > deadline {
            let targets = prom_get(port, "/api/v1/targets").await;
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not scrape the collector in 60 s: {v:?}\ntargets: {targets:?}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    for e in exprs {
        // Grafana's label_values(metric, label) for variables, as PromQL.
        let q = match e
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.split_once(','))
        {
            Some((metric, label)) => format!("count by ({}) ({metric})", label.trim()),
            None => e.clone(),
        };
        let q = q
            .replace("=~\"$agency\"", "=~\"dinkes\"")
            .replace("=\"$agency\"", "=\"dinkes\"");
        assert!(!q.contains('$'), "an unhandled variable in `{e}`");
        let v = prom_get(port, &format!("/api/v1/query?query={}", url_encode(&q)))
            .await
            .unwrap_or_else(|| panic!("no answer from Prometheus for `{q}`"));
        assert_eq!(v["status"], "success", "`{q}`: {v}");
    }
}

/// configs/grafana/simpul-noc.json: valid JSON, a `${DS_PROMETHEUS}`
/// datasource, and every PromQL expression names only families the
/// collector exposes. Its expressions.
fn dashboard_names_only_these_families(s: &Scrape) -> Vec<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/grafana/simpul-noc.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        d["__inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "the dashboard asks for a Prometheus datasource on import"
    );
    let mut exprs = Vec::new();
    let mut datasources = BTreeSet::new();
    fn walk(v: &serde_json::Value, exprs: &mut Vec<String>, ds: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "expr" || (k == "query" && m.contains_key("refId")) {
                        if let Some(e) = x.as_str() {
                            exprs.push(e.to_string());
                        }
                    }
                    if k == "datasource" {
                        if let Some(uid) = x.get("uid").and_then(|u| u.as_str()) {
                            ds.insert(uid.to_string());
                        }
                    }
                    walk(x, exprs, ds);
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    walk(x, exprs, ds);
                }
            }
            _ => {}
        }
    }
    walk(&d, &mut exprs, &mut datasources);
    assert!(exprs.len() >= 10, "{} expressions", exprs.len());
    assert_eq!(
        datasources,
        BTreeSet::from(["${DS_PROMETHEUS}".to_string()]),
        "every panel and query uses the imported datasource"
    );
    for e in &exprs {
        let mut named = 0;
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("simpul_") {
                named += 1;
                assert!(
                    s.family_of(word).is_some(),
                    "the dashboard's `{e}` names {word}, which /metrics does not expose"
                );
            }
        }
        assert!(named > 0, "`{e}` names no simpul_ family");
    }
    exprs
}

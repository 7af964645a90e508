//! Every API answer is the same whichever store holds the flows: two real
//! `simpul-collector serve` processes, one on SQLite and one on ClickHouse
//! (a private clickhouse-server), each fed by its own agents replaying the
//! same captures (shifted to the last minutes, so "now"-relative defaults
//! see them too) with the same inventory and policies. Then every GET
//! route the OpenAPI table documents (`openapi::ENDPOINTS`, so a new route
//! is compared without anyone adding it here) is asked, with and without
//! each of its documented parameters, as an admin and as dinkes's agency
//! officer, following flow pages by their cursor; status, body and the
//! headers a client reads must be equal.
//!
//! What differs by nature between two processes that ran at different
//! instants is normalised before comparing, and nothing else (see
//! [`normalise`]).

// A test: a failed unwrap is a failed test (also in its helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::clickhouse::{self, TempClickHouse};
use common::collector::*;
use common::netns::{sh, wait_for};
use common::*;
use serde_json::Value;
use simpul_collector::openapi::ENDPOINTS;

/// The agents' captures (in time order each) per (agency, node).
const FEEDS: [(&str, &str, &[&str]); 2] = [
    (
        "dinkes",
        "dinkes-01",
        &[
            "https.pcapng",
            "http.pcap",
            "download.pcapng",
            "quic.pcapng",
        ],
    ),
    (
        "bappeda",
        "bappeda-01",
        &[
            "dns.pcapng",
            "vlan.pcapng",
            "ipv6-frag.pcapng",
            "intranet.pcapng",
        ],
    ),
];

/// The fixtures shifted together so that they start 120 s ago (their
/// order and gaps kept): the same files for both collectors.
fn shifted_fixtures(dir: &Path) -> BTreeMap<String, PathBuf> {
    let names: Vec<&str> = FEEDS.iter().flat_map(|f| f.2.iter().copied()).collect();
    let first = names
        .iter()
        .map(|n| {
            let p = fixtures_dir().join(n).display().to_string();
            let t = tshark(&[
                "-r",
                &p,
                "-c",
                "1",
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
            ]);
            t.trim()
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("{n}: {e}: {t}"))
        })
        .fold(f64::MAX, f64::min);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let delta = (now - 120.0 - first).floor();
    names
        .iter()
        .map(|n| {
            let out = dir.join(n);
            sh(&format!(
                "editcap -t {delta} {} {}",
                fixtures_dir().join(n).display(),
                out.display()
            ));
            (n.to_string(), out)
        })
        .collect()
}

/// One collector and its agents' directory.
struct Side {
    name: &'static str,
    c: Collector,
    officer: String,
    _dir: tempfile::TempDir,
}

fn side(name: &'static str, ch: Option<&TempClickHouse>) -> Side {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::new(
        dir.path(),
        &[("dinkes", 100_000_000), ("bappeda", 50_000_000)],
        "127.0.0.1",
        &[],
    );
    // Blocked attempts too: the agent checks the pushed policy's names.
    let policy = dir.path().join("policies/dinkes.toml");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str(
        "[blocking]\ndomains = [\"example.com\"]\nallow_domains = [\"news.example.com\"]\n",
    );
    std::fs::write(&policy, text).unwrap();
    // Nodes stay up after their agents finish: an outage would open
    // incidents whose times and order only say when each detector looked.
    let text = std::fs::read_to_string(&c.config).unwrap();
    assert!(text.contains("down_after_secs = 3\n"), "{text}");
    std::fs::write(
        &c.config,
        text.replace("down_after_secs = 3\n", "down_after_secs = 3600\n"),
    )
    .unwrap();
    if let Some(ch) = ch {
        clickhouse::use_clickhouse(&c, ch, "parity");
    }
    c.start();
    let o = Command::new(collector_bin())
        .args(["api-token", "create", "--config"])
        .arg(&c.config)
        .args([
            "--name", "officer", "--role", "agency", "--agency", "dinkes",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let officer = String::from_utf8(o.stdout).unwrap().trim().to_string();
    // A named list, for the routes that read one.
    let (status, v) = c.send_raw(
        "PUT",
        "/api/v1/lists/judi?comment=surat%20123",
        "text/plain",
        b"togel.example\nslot.example\n",
    );
    assert_eq!(status, 200, "{v}");
    Side {
        name,
        c,
        officer,
        _dir: dir,
    }
}

/// An agent of `node` enrolled on `s` with its agency's policy in force
/// from its first packet: runs on a capture without packets until the
/// policy it was sent is kept in its state directory (a replay reads its
/// files faster than the policy may arrive, and a blocking rule missing
/// for the first packets on one side only would be a false difference).
fn prepared_agent(s: &Side, agency: &str, node: &str, empty: &Path) -> PathBuf {
    let url = format!("wss://localhost:{}/api/v1/agent", s.c.tls_port());
    let cfg = agent_config(&s.c.dir, node, &url, &s.c.ca(), &s.c.token(agency, node));
    let kept = s.c.dir.join(format!("agent-{node}/policy.signed.json"));
    for _ in 0..10 {
        let (mut child, _) = run_agent(&cfg, &[empty.to_owned()]);
        assert!(wait_for(60, || child.try_wait().ok().flatten().is_some()));
        if kept.exists() {
            return cfg;
        }
    }
    panic!("{}: {node} never kept its policy", s.name);
}

fn run_agent(cfg: &Path, pcaps: &[PathBuf]) -> (Child, PathBuf) {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("replay");
    for p in pcaps {
        cmd.arg("--pcap").arg(p);
    }
    let log = std::fs::File::create(cfg.with_extension("log")).unwrap();
    let child = cmd
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("agent");
    (child, cfg.to_owned())
}

/// What a client reads of an answer.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    /// content-type, content-disposition, x-next-cursor.
    headers: BTreeMap<String, String>,
    body: Value,
}

fn fetch(c: &Collector, token: &str, path: &str) -> Answer {
    let o = Command::new("curl")
        .args(["-s", "-i", "--compressed", "--max-time", "60"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{}{path}", c.http))
        .output()
        .expect("run curl");
    let raw = o.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no HTTP answer"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: {head}"));
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(k, _)| {
            ["content-type", "content-disposition", "x-next-cursor"].contains(&k.as_str())
        })
        .collect();
    let body = serde_json::from_slice(body).unwrap_or_else(|_| match std::str::from_utf8(body) {
        Ok(t) => Value::String(t.to_string()),
        // A PDF: compared byte for byte, as hex.
        Err(_) => Value::String(body.iter().map(|b| format!("{b:02x}")).collect()),
    });
    Answer {
        status,
        headers,
        body,
    }
}

/// The mark of a value normalised away.
const NORMALISED: &str = "(normalised)";

/// Make what must differ between the two collectors equal, and nothing
/// else. Everything here is about the control store or the process, which
/// both sides keep in SQLite but fill moments apart; the flow store's
/// answers are compared as they are, flows whose sort key ties included
/// (every store orders them by node, boot and flow id, descending).
///
/// - Nodes: the agent's ephemeral address, when it enrolled, was last seen
///   and reported its policy (heartbeat times).
/// - Policies: when each version was made and the collector's own signing
///   key (each side generated one); so in a usage answer, when the
///   allocation line starts (the version's time when inside the range).
/// - Lists: when the version was uploaded.
/// - API tokens: their random ids and when made or used; the audit log:
///   times, the hash chain over them, actors and targets naming a token id.
/// - Availability (routes and the monthly report): the unmonitored time
///   before each node enrolled, so the percentage; the report's time of
///   generation and of its policy changes. Its PDF holds the generation
///   time too, so PDFs are compared by size only.
/// - `/metrics`: process counters and timings, not a store's answer (the
///   status and content type are still compared).
/// - Collectors: the id of the collector answering (its host name and
///   process id when not configured), so the leader's too.
/// - Flow cursors (the `x-next-cursor` header, a search's `next_cursor`):
///   one names the page's last flow by its node, boot and flow id, and each
///   side's agents booted at their own instant; each side follows its own
///   (the pages it leads to are compared).
fn normalise(route: &str, a: &mut Answer, dir: &Path) {
    if route == "/metrics" {
        a.body = Value::String(NORMALISED.into());
        return;
    }
    a.headers.remove("x-next-cursor");
    if a.headers
        .get("content-type")
        .is_some_and(|t| t.contains("pdf"))
    {
        let hex = a.body.as_str().map_or(0, str::len);
        a.body = Value::String(format!("{} bytes of PDF", hex / 2));
        return;
    }
    if let Value::String(text) = &a.body {
        let text = text.replace(&dir.display().to_string(), "$DIR");
        a.body = csv_rows(&text).unwrap_or(Value::String(text));
    } else {
        let text = a
            .body
            .to_string()
            .replace(&dir.display().to_string(), "$DIR");
        a.body = serde_json::from_str(&text).unwrap();
    }
    let keys: &[&str] = match route {
        "/api/v1/tokens" => &["id", "created_ms", "last_used_ms"],
        "/api/v1/audit" => &["at_ms", "time", "hash", "prev_hash", "actor"],
        r if r.contains("/policy") => &["created_ms", "key_id"],
        r if r.starts_with("/api/v1/lists") => &["created_ms"],
        "/api/v1/collectors" => &["this_collector", "collector_id"],
        _ => &[],
    };
    blank(&mut a.body, &|obj, k| {
        keys.contains(&k)
            || k == "next_cursor"
            || (obj.contains_key("enrolled_at")
                && ["address", "enrolled_at", "last_seen"].contains(&k))
            || (obj.contains_key("applied_at") && ["applied_at", "reported_at"].contains(&k))
            || (obj.contains_key("unmonitored_ms")
                && ["unmonitored_ms", "availability_pct"].contains(&k))
            || (route == "/api/v1/reports/monthly"
                && [
                    "availability_pct",
                    "overall_pct",
                    "generated_at",
                    "at",
                    "at_ms",
                ]
                .contains(&k))
            || (route.ends_with("/usage")
                && k == "from"
                && obj.contains_key("download")
                && obj.contains_key("upload"))
            || (route == "/api/v1/audit"
                && k == "target"
                && obj["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("token.")))
    });
}

/// Replace the values of keys `hit` says with [`NORMALISED`], everywhere.
fn blank(v: &mut Value, hit: &dyn Fn(&serde_json::Map<String, Value>, &str) -> bool) {
    match v {
        Value::Object(m) => {
            let names: Vec<String> = m.keys().filter(|k| hit(m, k.as_str())).cloned().collect();
            for (k, x) in m.iter_mut() {
                if names.contains(k) {
                    *x = Value::String(NORMALISED.into());
                } else {
                    blank(x, hit);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| blank(x, hit)),
        _ => {}
    }
}

/// A CSV export as a list of objects by its header (so the same keys are
/// normalised as in JSON); None when `text` is not one.
fn csv_rows(text: &str) -> Option<Value> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    let header = rows.first()?;
    if header.len() < 2 || rows.iter().any(|r| r.len() != header.len()) {
        return None;
    }
    Some(Value::Array(
        rows[1..]
            .iter()
            .map(|r| {
                Value::Object(
                    header
                        .iter()
                        .cloned()
                        .zip(r.iter().map(|c| Value::String(c.clone())))
                        .collect(),
                )
            })
            .collect(),
    ))
}

/// Where `a` and `b` differ, as JSON pointers with both values (the first few).
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    if out.len() >= 5 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (p, q) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                differences(p, q, &format!("{at}/{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{at}/{i}"), out);
            }
        }
        _ => {
            let cut = |v: &Value| {
                let t = v.to_string();
                t.chars().take(600).collect::<String>()
            };
            out.push(format!("{at}: {} vs {}", cut(a), cut(b)));
        }
    }
}

/// Values for each documented query parameter, taken from what the
/// SQLite side stored (the same requests go to both sides).
fn values(sample: &BTreeMap<&str, Vec<String>>, name: &str) -> Vec<String> {
    sample.get(name).cloned().unwrap_or_default()
}

fn query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn every_api_answer_is_the_same_on_sqlite_and_clickhouse() {
    let ch = clickhouse::start();
    let work = tempfile::tempdir().unwrap();
    let pcaps = shifted_fixtures(work.path());
    let sides = [side("sqlite", None), side("clickhouse", Some(&ch))];

    // Four agents: each side's two nodes, the same captures.
    // Each enrolls before the next (so both audit logs hold the same
    // events in the same order), then all replay at once.
    let empty = work.path().join("empty.pcap");
    sh(&format!(
        "editcap -r {} {} 0",
        fixtures_dir().join("http.pcap").display(),
        empty.display()
    ));
    let mut agents = Vec::new();
    for s in &sides {
        for (agency, node, files) in FEEDS {
            let cfg = prepared_agent(s, agency, node, &empty);
            let files: Vec<PathBuf> = files.iter().map(|f| pcaps[*f].clone()).collect();
            agents.push((s.name, files, cfg));
        }
    }
    let agents: Vec<_> = agents
        .into_iter()
        .map(|(side, files, cfg)| (side, run_agent(&cfg, &files)))
        .collect();
    for (side, (mut child, cfg)) in agents {
        let log = || std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default();
        assert!(
            wait_for(120, || child.try_wait().ok().flatten().is_some()),
            "{side}: agent did not finish: {}",
            log()
        );
        assert!(child.wait().unwrap().success(), "{side}: {}", log());
        assert!(!log().contains("not yet acknowledged"), "{side}: {}", log());
    }
    // Parameter values from the stored data (SQLite side).
    let a = &sides[0].c;
    let flows = a.get("/api/v1/flows?from=0&limit=1000");
    let flows = flows.as_array().expect("flows");
    assert!(flows.len() > 20, "{flows:?}");
    let blocked = a.get("/api/v1/blocked?from=0");
    assert!(
        blocked.as_array().is_some_and(|b| !b.is_empty()),
        "no blocked attempts: {blocked}"
    );
    let pick = |key: &str, n: usize| -> Vec<String> {
        let mut seen = Vec::new();
        for f in flows {
            if let Some(s) = f[key].as_str() {
                if !seen.iter().any(|x: &String| x == s) {
                    seen.push(s.to_string());
                }
            }
            if seen.len() == n {
                break;
            }
        }
        seen
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let month = sh_date("+%Y-%m");
    let (from, to) = ((now - 600).to_string(), (now + 60).to_string());
    let mut sample: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let site = pick("site", 2);
    let host = pick("src_ip", 2);
    let peer = pick("dst_ip", 2);
    sample.insert("window", vec!["5".into(), "3600".into()]);
    sample.insert("step", vec!["1s".into(), "1m".into(), "1h".into()]);
    sample.insert("limit", vec!["1".into(), "7".into()]);
    sample.insert("agency", vec!["dinkes".into(), "bappeda".into()]);
    sample.insert("unit", vec!["sekretariat".into(), "bidang-it".into()]);
    sample.insert(
        "host",
        [
            host.clone(),
            vec!["10.10.0.0/16".into(), "fd00:10:10:1::/64".into()],
        ]
        .concat(),
    );
    sample.insert("peer", peer.clone());
    sample.insert(
        "site",
        [site.clone(), vec!["example.go.id".into()]].concat(),
    );
    sample.insert("proto", vec!["tcp".into(), "udp".into(), "17".into()]);
    sample.insert("sort", vec!["time".into(), "bytes".into()]);
    sample.insert("format", vec!["csv".into(), "json".into(), "pdf".into()]);
    sample.insert(
        "q",
        [
            host,
            site,
            peer,
            vec![
                "dinkes".into(),
                "dinkes/sekretariat".into(),
                "10.10.0.0/16".into(),
                "example.com".into(),
            ],
        ]
        .concat(),
    );
    sample.insert(
        "part",
        ["units", "hosts", "peers", "sites", "blocked"]
            .map(String::from)
            .to_vec(),
    );
    sample.insert("node", vec!["dinkes-01".into(), "bappeda-01".into()]);
    sample.insert(
        "method",
        simpul_proto::BlockMethod::ALL
            .iter()
            .map(|m| m.name().to_string())
            .collect(),
    );
    sample.insert("open", vec!["true".into(), "false".into()]);
    sample.insert("incident", vec!["1".into()]);
    sample.insert("actor", vec!["e2e-admin".into()]);
    sample.insert("action", vec!["list.".into(), "auth.".into()]);
    sample.insert("against", vec!["1".into()]);
    sample.insert("version", vec!["1".into()]);
    sample.insert("month", vec![month]);
    sample.insert("lang", vec!["en".into()]);

    let roles = [("admin", None), ("officer", Some(()))];
    let mut asked = 0;
    let mut differ = Vec::new();
    let mut routes = BTreeSet::new();
    for e in ENDPOINTS.iter().filter(|e| e.method == "get") {
        // WebSockets (agents', live feed) have no answer to compare; the
        // live feed's snapshot is the overview compared here.
        if e.schema == "WebSocket" {
            continue;
        }
        routes.insert(e.path);
        let paths: Vec<String> = if e.path.contains("{code}") {
            ["dinkes", "bappeda"]
                .iter()
                .map(|c| e.path.replace("{code}", c))
                .collect()
        } else {
            vec![e.path.to_string()]
        };
        let paths: Vec<String> = paths
            .into_iter()
            .map(|p| p.replace("{list}", "judi").replace("{version}", "1"))
            .collect();
        let ranged = e.params.contains(&"from");
        let base: Vec<(String, String)> = if ranged {
            vec![("from".into(), from.clone()), ("to".into(), to.clone())]
        } else {
            vec![]
        };
        let mut variants: Vec<Vec<(String, String)>> = vec![vec![], base.clone()];
        for p in e
            .params
            .iter()
            .filter(|p| !["from", "to", "cursor", "comment"].contains(p))
        {
            for v in values(&sample, p) {
                if *p == "format" && v == "pdf" && e.path != "/api/v1/reports/monthly" {
                    continue;
                }
                let mut q = base.clone();
                q.push((p.to_string(), v.clone()));
                if *p == "part" {
                    q.push(("format".into(), "csv".into()));
                }
                if *p == "unit" {
                    q.push(("agency".into(), "dinkes".into()));
                }
                variants.push(q);
            }
        }
        for path in &paths {
            for q in &variants {
                for (role, officer) in roles {
                    let first = if q.is_empty() {
                        path.clone()
                    } else {
                        format!("{path}?{}", query(q))
                    };
                    // Follow the pages a cursor leads to (a few), each side
                    // its own cursor.
                    let mut urls = [first.clone(), first];
                    for _page in 0..4 {
                        let mut cursors = Vec::new();
                        let answers: Vec<Answer> = sides
                            .iter()
                            .zip(&urls)
                            .map(|(s, url)| {
                                let t = match officer {
                                    Some(()) => s.officer.clone(),
                                    None => s.c.token.clone().unwrap(),
                                };
                                let mut a = fetch(&s.c, &t, url);
                                cursors.push(a.headers.get("x-next-cursor").cloned());
                                normalise(e.path, &mut a, &s.c.dir);
                                a
                            })
                            .collect();
                        asked += 1;
                        if answers[0] != answers[1] {
                            let mut d = Vec::new();
                            if answers[0].status != answers[1].status {
                                d.push(format!(
                                    "status {} vs {}",
                                    answers[0].status, answers[1].status
                                ));
                            }
                            if answers[0].headers != answers[1].headers {
                                d.push(format!(
                                    "headers {:?} vs {:?}",
                                    answers[0].headers, answers[1].headers
                                ));
                            }
                            differences(&answers[0].body, &answers[1].body, "", &mut d);
                            differ.push(format!("GET {} as {role}: {}", urls[0], d.join("; ")));
                        }
                        match (&cursors[0], &cursors[1]) {
                            (Some(a), Some(b)) => {
                                for (url, c) in urls.iter_mut().zip([a, b]) {
                                    let mut next = q.clone();
                                    next.push(("cursor".into(), c.clone()));
                                    *url = format!("{path}?{}", query(&next));
                                }
                            }
                            (None, None) => break,
                            _ => {
                                differ.push(format!(
                                    "GET {} as {role}: one side has a next page: {cursors:?}",
                                    urls[0]
                                ));
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{asked} requests to each store over {} routes",
        routes.len()
    );
    assert!(routes.len() >= 30, "{routes:?}");
    assert!(
        differ.is_empty(),
        "{} answers differ between SQLite and ClickHouse:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

fn sh_date(fmt: &str) -> String {
    let o = Command::new("date").arg("-u").arg(fmt).output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

//! The agent's DNS responder in a router namespace between a client and an
//! "internet" dnsmasq with real records: blocked names and their subdomains
//! get NXDOMAIN (then the block-page address), an allowlisted subdomain of a
//! blocked domain resolves, other names get dnsmasq's answers over UDP and
//! TCP (a truncated UDP answer is retried over TCP), every blocked query is
//! one event line, and no blocked query ever reaches the upstream.

mod common;

use std::path::Path;

use common::netns::{wait_for, Lab};
use common::*;

const PROXY: &str = "10.53.1.1";
const UPSTREAM: &str = "10.53.2.2";

/// `dig` from the client namespace: (status, answer rdata, full output).
fn dig(lab: &Lab, ns: &str, args: &str) -> (String, Vec<String>, String) {
    let out = lab.exec(
        ns,
        &format!("dig @{PROXY} +time=2 +tries=2 +noall +comments +answer {args}"),
    );
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_string();
    let answers = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .collect();
    (status, answers, out)
}

fn start_proxy(lab: &mut Lab, router: &str, dir: &Path, extra: &[&str]) -> usize {
    let agent = agent_bin();
    let block = format!("judi={}", dir.join("block.txt").display());
    let allow = dir.join("allow.txt").display().to_string();
    let events = dir.join("events.jsonl").display().to_string();
    let listen = format!("{PROXY}:53");
    let upstream = format!("{UPSTREAM}:53");
    let mut args = vec![
        agent.to_str().expect("utf-8 path"),
        "dns-proxy",
        "--listen",
        &listen,
        "--upstream",
        &upstream,
        "--blocklist",
        &block,
        "--allowlist",
        &allow,
        "--events",
        &events,
    ];
    args.extend_from_slice(extra);
    let idx = lab.spawn(router, &args, false);
    let ready = wait_for(20, || {
        let o = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                router,
                "dig",
                "@10.53.1.1",
                "+time=1",
                "+tries=1",
            ])
            .args(["+short", "www.example.go.id"])
            .output();
        matches!(o, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("198.51.100.10"))
    });
    assert!(ready, "the DNS responder did not come up");
    idx
}

#[test]
fn dns_blocking_in_namespaces() {
    assert!(is_root(), "namespaces need root (CI runs as root)");
    let mut lab = Lab::new("dn");
    let client = lab.ns("client");
    let router = lab.ns("router");
    let inet = lab.ns("inet");
    lab.link(
        &client,
        "dnc0",
        "10.53.1.10/24",
        &router,
        "dnr0",
        "10.53.1.1/24",
    );
    lab.link(
        &router,
        "dnr1",
        "10.53.2.1/24",
        &inet,
        "dnu0",
        "10.53.2.2/24",
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // One list in all three syntaxes, with a comment and an invalid line.
    std::fs::write(
        d.join("block.txt"),
        "# judi dan pornografi\njudi.com\n||slot.xyz^\n0.0.0.0 porn.example\nbad name here\n",
    )
    .expect("write blocklist");
    std::fs::write(d.join("allow.txt"), "ok.judi.com\n").expect("write allowlist");

    let big: Vec<String> = (0..8)
        .map(|i| format!("\"{}{}\"", i, "x".repeat(120)))
        .collect();
    let dnsmasq_log = d.join("dnsmasq.log");
    let dnsmasq = format!(
        "dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --user=root \
         --bind-interfaces --listen-address={UPSTREAM} --port=53 --pid-file= \
         --log-queries --log-facility={log} \
         --host-record=www.example.go.id,198.51.100.10 \
         --host-record=berita.co.id,198.51.100.20 \
         --host-record=judi.com,198.51.100.66 \
         --host-record=www.judi.com,198.51.100.67 \
         --host-record=ok.judi.com,198.51.100.68 \
         --host-record=www.slot.xyz,198.51.100.69 \
         --txt-record=big.example.go.id,{txt}",
        log = dnsmasq_log.display(),
        txt = big.join(","),
    );
    lab.spawn(&inet, &["sh", "-c", &dnsmasq], true);

    let proxy = start_proxy(&mut lab, &router, d, &[]);

    // Allowed names: dnsmasq's answers, over UDP and TCP.
    let (st, ans, out) = dig(&lab, &client, "www.example.go.id A");
    assert_eq!(
        (st.as_str(), ans.clone()),
        ("NOERROR", vec!["198.51.100.10".to_string()]),
        "{out}"
    );
    let (st, ans, out) = dig(&lab, &client, "+tcp berita.co.id A");
    assert_eq!(
        (st.as_str(), ans),
        ("NOERROR", vec!["198.51.100.20".to_string()]),
        "{out}"
    );
    // Allowlisted subdomain of a blocked domain resolves.
    let (st, ans, out) = dig(&lab, &client, "ok.judi.com A");
    assert_eq!(
        (st.as_str(), ans),
        ("NOERROR", vec!["198.51.100.68".to_string()]),
        "{out}"
    );
    // A truncated UDP answer is relayed as such; dig retries over TCP.
    let out = lab.exec(
        &client,
        &format!("dig @{PROXY} +time=2 +tries=2 +noedns big.example.go.id TXT"),
    );
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 1"),
        "{out}"
    );

    // Blocked names and their subdomains: NXDOMAIN, over UDP and TCP.
    let blocked = [
        ("judi.com A", "judi.com"),
        ("WWW.Judi.Com A", "judi.com"),
        ("deep.sub.slot.xyz A", "slot.xyz"),
        ("www.slot.xyz AAAA", "slot.xyz"),
        ("+tcp porn.example A", "porn.example"),
        ("+tcp a.b.judi.com A", "judi.com"),
    ];
    for (q, _) in &blocked {
        let (st, ans, out) = dig(&lab, &client, q);
        assert_eq!(st, "NXDOMAIN", "{q}: {out}");
        assert!(ans.is_empty(), "{q}: {out}");
    }

    // One event per blocked query, with the rule and the list.
    let events = std::fs::read_to_string(d.join("events.jsonl")).expect("events file");
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect();
    assert_eq!(events.len(), blocked.len(), "{events:?}");
    for (ev, (_, rule)) in events.iter().zip(&blocked) {
        assert_eq!(ev["rule"], *rule, "{ev}");
        assert_eq!(ev["list"], "judi", "{ev}");
        assert_eq!(ev["client"], "10.53.1.10", "{ev}");
    }
    assert_eq!(events[1]["name"], "www.judi.com");
    assert_eq!(events[4]["transport"], "tcp");

    // Blocked queries never left the router.
    let log = std::fs::read_to_string(&dnsmasq_log).unwrap_or_default();
    assert!(
        log.contains("query[A] www.example.go.id"),
        "dnsmasq log: {log}"
    );
    for name in ["judi.com", "www.judi.com", "slot.xyz", "porn.example"] {
        assert!(
            !log.lines().any(|l| l.contains(&format!("] {name} from"))),
            "{name} reached the upstream: {log}"
        );
    }

    // Block-page mode: the configured addresses instead of NXDOMAIN.
    let status = lab.signal_and_wait(proxy, "TERM");
    assert!(status.success(), "dns-proxy exit: {status:?}");
    start_proxy(
        &mut lab,
        &router,
        d,
        &["--block-v4", "10.53.1.80", "--block-v6", "fd53::80"],
    );
    let (st, ans, out) = dig(&lab, &client, "www.judi.com A");
    assert_eq!(
        (st.as_str(), ans),
        ("NOERROR", vec!["10.53.1.80".to_string()]),
        "{out}"
    );
    let (st, ans, out) = dig(&lab, &client, "+tcp slot.xyz AAAA");
    assert_eq!(
        (st.as_str(), ans),
        ("NOERROR", vec!["fd53::80".to_string()]),
        "{out}"
    );
    let (st, ans, out) = dig(&lab, &client, "judi.com MX");
    assert_eq!((st.as_str(), ans.len()), ("NOERROR", 0), "{out}");
    let (st, ans, out) = dig(&lab, &client, "ok.judi.com A");
    assert_eq!(
        (st.as_str(), ans),
        ("NOERROR", vec!["198.51.100.68".to_string()]),
        "{out}"
    );
    let n = std::fs::read_to_string(d.join("events.jsonl"))
        .expect("events file")
        .lines()
        .count();
    assert_eq!(n, blocked.len() + 3);
}

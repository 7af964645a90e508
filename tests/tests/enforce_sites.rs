//! Blocked sites on every path, with `simpul-agent run` on the router of the
//! enforcement topology (see `enforce_lab`): DNS through the agent's
//! responder and through a hard-coded resolver (redirected), a direct
//! connection with the blocked name in TLS SNI, in HTTP Host and in a QUIC
//! Initial, DNS-over-TLS, a DNS-over-HTTPS resolver and QUIC itself; every
//! attempt is an event with who, what and which rule. Real clients (dig,
//! curl, Python sockets), real servers (dnsmasq, Python HTTP/TLS), the real
//! kernel (nftables).

mod common;
mod enforce_lab;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::netns::{sh, wait_for};
use common::*;
use enforce_lab::*;
use simpul_proto::{BlockMethod, BlockedAttempt};

const CLIENT_A: &str = "10.1.1.2";
const CLIENT_B: &str = "10.1.2.2";

fn policy(version: u64, blocking: &str) -> String {
    format!(
        r#"version = {version}
agency = "dinkes"
[allocation]
download = {{ rate_bps = 50000000, ceil_bps = 50000000 }}
upload = {{ rate_bps = 50000000, ceil_bps = 50000000 }}
[blocking]
{blocking}
[blocking.categories]
judi = ["judi.example"]
"#
    )
}

const V1: &str = r#"domains = ["blocked.example", "quic.example.go.id"]
allow_domains = ["ok.blocked.example"]
enabled_categories = ["judi"]
block_dot = true
block_doh = ["198.51.100.20"]
"#;

/// Version 2: blocked.example is allowed again, QUIC is blocked outright.
const V2: &str = r#"domains = ["quic.example.go.id"]
enabled_categories = ["judi"]
block_quic = true
"#;

/// Python client: connect over TCP, or send a UDP datagram and wait for
/// the echo. True when it worked.
fn python_probe(ns: &str, code: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn tcp_connects(ns: &str, ip: &str, port: u16) -> bool {
    python_probe(
        ns,
        &format!("import socket; socket.create_connection(('{ip}', {port}), 3).close()"),
    )
}

fn udp_echoes(ns: &str, ip: &str, port: u16, payload_hex: &str) -> bool {
    python_probe(
        ns,
        &format!(
            "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(2)\ns.sendto(bytes.fromhex('{payload_hex}'), ('{ip}', {port}))\ns.recvfrom(2048)"
        ),
    )
}

fn attempts(path: &Path) -> Vec<BlockedAttempt> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l}: {e}")))
        .collect()
}

fn find<'a>(
    events: &'a [BlockedAttempt],
    method: BlockMethod,
    client: &str,
    target: &str,
) -> Option<&'a BlockedAttempt> {
    events
        .iter()
        .find(|e| e.method == method && e.client.to_string() == client && e.target == target)
}

fn names_set(t: &Topo) -> String {
    sh_out_ns(&t.router, "nft list table inet simpul_names")
}

/// Whether the name set holds a connection of `client` to the internet
/// server ending in `proto_port` ("tcp . 443"): client . port . server . …
fn has_connection(set: &str, client: &str, proto_port: &str) -> bool {
    set.split([',', '{', '}', '\n']).map(str::trim).any(|e| {
        e.starts_with(&format!("{client} . "))
            && e.contains(&format!(". {INTERNET} . {proto_port}"))
    })
}

fn sh_out_ns(ns: &str, cmd: &str) -> String {
    common::netns::sh_out(&format!("ip netns exec {ns} {cmd}"))
}

/// curl's error for a connection refused by name must come from a reset,
/// not from its own timeout (28): the agent resets the client from the
/// naming segment's numbers even when the server has acknowledged it
/// already. Depending on where curl is when the reset lands it says
/// "Connection reset by peer" (35 in the TLS handshake, 56 on a plain
/// request) or, asking for the peer of a socket the reset already closed,
/// "getpeername() failed with errno 107" (55, ENOTCONN).
fn assert_reset(what: &str, err: &str) {
    assert!(
        !err.contains("(28)") && (err.contains("reset by peer") || err.contains("errno 107")),
        "{what}: the client was not reset, curl said: {err}"
    );
}

#[test]
fn blocked_sites_fail_on_every_path_and_each_attempt_is_reported() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("es");
    let dir = t.dir.path().to_path_buf();

    // The internet: dnsmasq answering every *.example name with the server,
    // and the HTTP/TLS/UDP servers.
    t.start_sites();

    // The agent: policy v1, DNS responder on the router with the redirect,
    // events to a file, attempts reported at once (fold of 1 s).
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, policy(1, V1)).expect("write policy");
    t.write_config(Some(&policy_file));
    let events = t.enable_dns();
    let agent = agent_bin();
    let config = t.config.display().to_string();
    let router = t.router.clone();
    let agent_idx = t.lab.spawn(
        &router,
        &[agent.to_str().expect("utf-8"), "run", "--config", &config],
        false,
    );
    let (a, b) = (t.a.clone(), t.b.clone());
    assert!(
        wait_for(30, || dig(&a, ROUTER_LAN, "allowed.example").1
            == [INTERNET]),
        "agent DNS responder did not answer"
    );
    assert!(
        wait_for(10, || dig(&a, ROUTER_LAN, "www.blocked.example").0
            == "NXDOMAIN"),
        "policy not in force in the DNS responder"
    );

    // DNS: blocked names fail, subdomains too, the allowlist and other names work.
    assert_eq!(dig(&b, ROUTER_LAN, "judi.example").0, "NXDOMAIN");
    assert_eq!(dig(&a, ROUTER_LAN, "ok.blocked.example").1, [INTERNET]);
    // A hard-coded resolver is redirected to the agent: still blocked.
    assert_eq!(dig(&a, INTERNET, "blocked.example").0, "NXDOMAIN");
    assert_eq!(dig(&a, "8.8.8.8", "www.blocked.example").0, "NXDOMAIN");
    assert_eq!(dig(&a, "8.8.8.8", "allowed.example").1, [INTERNET]);

    // TLS SNI straight to the server's address: the connection dies (its
    // own 5-tuple is refused), and so does a repeat, on its own ClientHello.
    let err = https(&a, "www.blocked.example", INTERNET, "/slow").expect_err("SNI block");
    eprintln!("blocked SNI, first connection: {err}");
    assert_reset("blocked SNI", &err);
    assert!(
        wait_for(5, || has_connection(&names_set(&t), CLIENT_A, "tcp . 443")),
        "no kernel entry for the blocked SNI: {}",
        names_set(&t)
    );
    // The repeat is refused on its own ClientHello: a second entry, for its
    // own 5-tuple. This lab's server is microseconds away and ACKs the
    // ClientHello before the entry is in (the ring's name lane takes
    // ~0.2 ms), so the kernel's refusal alone would reset only the server
    // and leave the client to wait out its timeout; the agent also resets
    // the client (and the server) from the ClientHello's sequence numbers,
    // so curl fails with a reset, not a timeout. No time is asserted.
    let started = Instant::now();
    let err = https(&a, "www.blocked.example", INTERNET, "/slow").expect_err("repeat");
    eprintln!("blocked SNI, repeat: {err} after {:?}", started.elapsed());
    assert_reset("blocked SNI, repeat", &err);
    assert!(
        wait_for(5, || names_set(&t).matches(CLIENT_A).count() >= 2),
        "no kernel entry for the repeat's own connection: {}",
        names_set(&t)
    );
    // An allowed name on the same server: works (the same client is in
    // enforce_names).
    let body = https(&b, "allowed.example", INTERNET, "/").expect("allowed name over TLS");
    assert!(body.contains("site allowed.example"), "{body}");
    let body = https(&b, "ok.blocked.example", INTERNET, "/").expect("allowlisted name");
    assert!(body.contains("ok.blocked.example"), "{body}");

    // HTTP Host (category judi) straight to the address.
    let err = curl(
        &b,
        &[
            "-H",
            "Host: judi.example",
            &format!("http://{INTERNET}/slow"),
        ],
    )
    .expect_err("Host block");
    eprintln!("blocked Host: {err}");
    assert_reset("blocked Host", &err);
    // A repeat is refused on its own request (the server here answers in
    // microseconds, so a page that fast could beat the entry: /slow), and
    // the client hears a reset too.
    let err = curl(
        &b,
        &[
            "-H",
            "Host: judi.example",
            &format!("http://{INTERNET}/slow"),
        ],
    )
    .expect_err("Host repeat");
    eprintln!("blocked Host, repeat: {err}");
    assert_reset("blocked Host, repeat", &err);
    let body = curl(
        &a,
        &[
            "-H",
            "Host: allowed.example",
            &format!("http://{INTERNET}/"),
        ],
    )
    .expect("allowed Host");
    assert!(body.contains("site allowed.example"), "{body}");

    // QUIC Initial with a blocked SNI: that connection's 5-tuple is
    // refused (enforce_names checks it stays silent); other connections
    // to the server keep QUIC.
    let initial = quic_initial_hex();
    let _ = udp_echoes(&a, INTERNET, 443, &initial);
    assert!(
        wait_for(5, || has_connection(&names_set(&t), CLIENT_A, "udp . 443")),
        "no kernel entry for the blocked QUIC SNI: {}",
        names_set(&t)
    );
    assert!(
        udp_echoes(&a, INTERNET, 443, "00"),
        "a connection without a blocked name refused"
    );
    assert!(
        udp_echoes(&b, INTERNET, 443, "00"),
        "other clients keep QUIC"
    );

    // DNS over TLS and a DNS-over-HTTPS resolver.
    assert!(!tcp_connects(&a, INTERNET, 853), "DoT not blocked");
    assert!(
        !tcp_connects(&b, INTERNET_BLOCKED, 443),
        "DoH resolver not blocked"
    );
    assert!(
        tcp_connects(&b, INTERNET_BLOCKED, 80),
        "DoH block is port 443 only"
    );

    // Every attempt is an event: who, what, which rule.
    let want = [
        (
            BlockMethod::Dns,
            CLIENT_A,
            "www.blocked.example",
            "blocked.example",
            "domains",
        ),
        (
            BlockMethod::Dns,
            CLIENT_B,
            "judi.example",
            "judi.example",
            "judi",
        ),
        (
            BlockMethod::Sni,
            CLIENT_A,
            "www.blocked.example",
            "blocked.example",
            "domains",
        ),
        (
            BlockMethod::Http,
            CLIENT_B,
            "judi.example",
            "judi.example",
            "judi",
        ),
        (
            BlockMethod::Quic,
            CLIENT_A,
            "quic.example.go.id",
            "quic.example.go.id",
            "domains",
        ),
        (
            BlockMethod::Dot,
            CLIENT_A,
            "198.51.100.10:853",
            "dot",
            "dot",
        ),
        (
            BlockMethod::Doh,
            CLIENT_B,
            "198.51.100.20:443",
            "198.51.100.20",
            "doh",
        ),
    ];
    let mut got = Vec::new();
    let all_seen = wait_for(10, || {
        got = attempts(&events);
        want.iter()
            .all(|(m, c, target, ..)| find(&got, *m, c, target).is_some())
    });
    assert!(all_seen, "missing events; got {got:#?}");
    for (m, c, target, rule, list) in want {
        let e = find(&got, m, c, target).expect("checked above");
        assert_eq!((e.rule.as_str(), e.list.as_str()), (rule, list), "{e:?}");
        assert_eq!(e.agency, "dinkes", "{e:?}");
        assert_eq!(e.unit, if c == CLIENT_A { "a" } else { "b" }, "{e:?}");
    }
    // The repeat SNI connection was refused before its ClientHello, and is
    // still counted under the name.
    let sni_attempts: u32 = got
        .iter()
        .filter(|e| e.method == BlockMethod::Sni && e.client.to_string() == CLIENT_A)
        .map(|e| e.attempts)
        .sum();
    assert!(
        wait_for(10, || {
            attempts(&events)
                .iter()
                .filter(|e| e.method == BlockMethod::Sni && e.client.to_string() == CLIENT_A)
                .map(|e| e.attempts)
                .sum::<u32>()
                >= 2
        }),
        "repeat not counted (had {sni_attempts})"
    );
    // Allowed traffic made no event.
    assert!(
        !attempts(&events)
            .iter()
            .any(|e| e.target.contains("allowed.example") || e.target == "ok.blocked.example"),
        "allowed names reported as blocked"
    );

    // Policy v2: blocked.example allowed again (its kernel entries go at
    // once), QUIC blocked outright.
    std::fs::write(&policy_file, policy(2, V2)).expect("rewrite policy");
    let changed = Instant::now();
    assert!(
        wait_for(10, || dig(&a, ROUTER_LAN, "www.blocked.example").1
            == [INTERNET]),
        "v2 not in force in DNS"
    );
    eprintln!("policy v2 in force in DNS after {:?}", changed.elapsed());
    assert!(
        wait_for(10, || !names_set(&t).contains("tcp . 443")),
        "name entries of v1 not cleared: {}",
        names_set(&t)
    );
    let body = https(&a, "www.blocked.example", INTERNET, "/").expect("unblocked by v2");
    assert!(body.contains("www.blocked.example"), "{body}");
    assert!(
        !udp_echoes(&b, INTERNET, 443, "00"),
        "QUIC not blocked by v2"
    );
    assert!(
        wait_for(10, || find(
            &attempts(&events),
            BlockMethod::QuicProtocol,
            CLIENT_B,
            "198.51.100.10:443"
        )
        .is_some()),
        "no quic_protocol event"
    );

    // The agent stops cleanly; its events stay on disk.
    let status = t.lab.signal_and_wait(agent_idx, "TERM");
    assert!(status.success(), "agent exit: {status:?}");
}

/// Which of two fanout rings the kernel deals the pair `a`–`b` to: the
/// agent's cBPF program (`agent/src/capture/fanout.rs`: the addresses
/// summed, times 0x9e3779b1, shifted right 16) modulo the rings. Which
/// ring is which thread does not matter here, only that two pairs differ.
fn ring_of(a: &str, b: &str) -> u32 {
    let ip = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().expect("IPv4"));
    (ip(a).wrapping_add(ip(b)).wrapping_mul(0x9e37_79b1) >> 16) % 2
}

/// Unit a addresses (10.1.1.10 on) meeting `pick`, `n` of them, not in `taken`.
fn unit_a_addresses(n: usize, taken: &[String], pick: impl Fn(&str) -> bool) -> Vec<String> {
    let v: Vec<String> = (10..250)
        .map(|i| format!("10.1.1.{i}"))
        .filter(|a| !taken.contains(a) && pick(a))
        .take(n)
        .collect();
    assert_eq!(v.len(), n, "not enough unit a addresses for the split");
    v
}

/// Connections from `client` (an address) to `proto_port` on the internet
/// server in the name set.
fn connections_of(set: &str, client: &str, proto_port: &str) -> usize {
    set.split([',', '{', '}', '\n'])
        .map(str::trim)
        .filter(|e| {
            e.starts_with(&format!("{client} . "))
                && e.contains(&format!(". {INTERNET} . {proto_port}"))
        })
        .count()
}

/// Blocked attempts of `client` at `target` by `method`, summed over folds.
fn attempt_count(events: &Path, method: BlockMethod, client: &str, target: &str) -> u32 {
    attempts(events)
        .iter()
        .filter(|e| e.method == method && e.client.to_string() == client && e.target == target)
        .map(|e| e.attempts)
        .sum()
}

/// The per-thread frame counts of the agent's "capture totals" line
/// (`per_thread=a,b`), from a log without colours.
fn per_thread(log: &str) -> Vec<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("capture totals"))
        .unwrap_or_else(|| panic!("no capture totals in the log:\n{log}"));
    let text = line
        .split("per_thread=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no per_thread in {line}"));
    text.split(',')
        .map(|n| n.parse().unwrap_or_else(|e| panic!("{n} in {line}: {e}")))
        .collect()
}

/// `capture.threads = 2` on lan0: each fanout ring's thread owns a flow
/// table. Clients on addresses dealt to both rings are refused by name
/// (SNI, HTTP Host) with a reset, first attempt and repeat alike, while an
/// allowed name on the same server is served; each attempt is reported
/// once. A name a client resolves through the agent's responder names its
/// next connection although the kernel deals the DNS exchange (client ↔
/// router) and the connection (client ↔ server) to different rings.
#[test]
fn names_are_refused_and_learned_across_two_capture_threads() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("esx");
    let dir = t.dir.path().to_path_buf();
    t.start_sites();
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, policy(1, V1)).expect("write policy");
    t.write_config(Some(&policy_file));
    let events = t.enable_dns();
    let text = std::fs::read_to_string(&t.config).expect("config");
    let text = text.replace("[capture]\n", "[capture]\nthreads = 2\nmethod = \"ring\"\n");
    std::fs::write(&t.config, text).expect("write config");

    // Client addresses: for the blocked names two per ring; for DNS naming
    // four whose DNS exchange and connection are dealt to different rings,
    // two each way.
    let blocked = [
        unit_a_addresses(2, &[], |a| ring_of(a, INTERNET) == 0),
        unit_a_addresses(2, &[], |a| ring_of(a, INTERNET) == 1),
    ]
    .concat();
    let named = [
        unit_a_addresses(2, &blocked, |a| {
            ring_of(a, ROUTER_LAN) == 0 && ring_of(a, INTERNET) == 1
        }),
        unit_a_addresses(2, &blocked, |a| {
            ring_of(a, ROUTER_LAN) == 1 && ring_of(a, INTERNET) == 0
        }),
    ]
    .concat();
    for addr in blocked.iter().chain(&named) {
        sh(&format!("ip -n {} addr add {addr}/24 dev eth0", t.a));
    }

    let log = dir.join("agent.log");
    let agent_idx = t.lab.spawn(
        &t.router.clone(),
        &[
            "sh",
            "-c",
            &format!(
                "SIMPUL_LOG=info exec {} run --config {} 2>{}",
                agent_bin().display(),
                t.config.display(),
                log.display()
            ),
        ],
        true,
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let a = t.a.clone();
    assert!(
        wait_for(30, || dig(&a, ROUTER_LAN, "allowed.example").1
            == [INTERNET]),
        "agent DNS responder did not answer; log:\n{}",
        log_text()
    );
    assert!(
        wait_for(15, || log_text()
            .contains("flow table sharded over the fanout rings' threads")),
        "capture not sharded; log:\n{}",
        log_text()
    );

    let from = |addr: &str, args: &[&str]| {
        let mut all = vec!["--interface", addr];
        all.extend_from_slice(args);
        curl(&a, &all)
    };
    let resolve = format!("www.blocked.example:443:{INTERNET}");
    let allowed = format!("allowed.example:443:{INTERNET}");
    let plain = format!("http://{INTERNET}/slow");
    for addr in &blocked {
        // The first connection and a repeat (its own 5-tuple): both reset.
        for attempt in ["first", "repeat"] {
            let err = from(
                addr,
                &["--resolve", &resolve, "https://www.blocked.example/slow"],
            )
            .expect_err("SNI block");
            eprintln!("{addr} blocked SNI, {attempt}: {err}");
            assert_reset(&format!("{addr} blocked SNI, {attempt}"), &err);
        }
        assert!(
            wait_for(5, || connections_of(&names_set(&t), addr, "tcp . 443") >= 2),
            "{addr}: no kernel entry for each blocked connection: {}",
            names_set(&t)
        );
        for attempt in ["first", "repeat"] {
            let err = from(addr, &["-H", "Host: judi.example", &plain]).expect_err("Host block");
            eprintln!("{addr} blocked Host, {attempt}: {err}");
            assert_reset(&format!("{addr} blocked Host, {attempt}"), &err);
        }
        // An allowed name on the same server, from the same client: served.
        let body = from(addr, &["--resolve", &allowed, "https://allowed.example/"])
            .unwrap_or_else(|e| panic!("{addr}: allowed name over TLS refused: {e}"));
        assert!(body.contains("site allowed.example"), "{body}");
        let body = from(
            addr,
            &[
                "-H",
                "Host: allowed.example",
                &format!("http://{INTERNET}/"),
            ],
        )
        .unwrap_or_else(|e| panic!("{addr}: allowed Host refused: {e}"));
        assert!(body.contains("site allowed.example"), "{body}");
    }

    // Resolve, then connect (no name of its own on the wire).
    for (i, addr) in named.iter().enumerate() {
        let name = format!("n{i}.named.example");
        let out = common::netns::sh_out(&format!(
            "ip netns exec {a} dig -b {addr} @{ROUTER_LAN} {name} A +short +time=2 +tries=2"
        ));
        assert_eq!(out.trim(), INTERNET, "{addr} resolving {name}");
        assert!(
            python_probe(
                &a,
                &format!(
                    "import socket; socket.create_connection(('{INTERNET}', 80), 3, ('{addr}', 0)).close()"
                ),
            ),
            "{addr}: connection after resolving {name} failed"
        );
    }

    // Each attempt is reported once: two SNI and two Host per client.
    let counts = |addr: &str| {
        (
            attempt_count(&events, BlockMethod::Sni, addr, "www.blocked.example"),
            attempt_count(&events, BlockMethod::Http, addr, "judi.example"),
        )
    };
    let reported = wait_for(10, || blocked.iter().all(|addr| counts(addr) == (2, 2)));
    // A second pass of folding may not add any.
    std::thread::sleep(std::time::Duration::from_secs(2));
    for addr in &blocked {
        assert!(
            reported && counts(addr) == (2, 2),
            "{addr}: (SNI, Host) attempts {:?}, want (2, 2); events {:#?}",
            counts(addr),
            attempts(&events)
        );
    }
    assert!(
        !attempts(&events)
            .iter()
            .any(|e| e.target.contains("allowed.example") || e.target.contains("named.example")),
        "allowed names reported as blocked: {:#?}",
        attempts(&events)
    );

    // Policy v2 allows blocked.example again: every thread's entries go,
    // and clients on either thread reach it.
    std::fs::write(&policy_file, policy(2, V2)).expect("rewrite policy");
    assert!(
        wait_for(10, || !names_set(&t).contains("tcp . 443")),
        "name entries of v1 not cleared: {}",
        names_set(&t)
    );
    for addr in &blocked {
        let body = from(
            addr,
            &["--resolve", &resolve, "https://www.blocked.example/"],
        )
        .unwrap_or_else(|e| panic!("{addr}: unblocked by v2 but refused: {e}"));
        assert!(body.contains("www.blocked.example"), "{body}");
    }

    let status = t.lab.signal_and_wait(agent_idx, "TERM");
    assert!(
        status.success(),
        "agent exit: {status:?}; log:\n{}",
        log_text()
    );
    let threads = per_thread(&log_text());
    eprintln!("frames per capture thread: {threads:?}");
    assert!(
        threads.len() == 2 && threads.iter().all(|n| *n > 0),
        "both capture threads must see traffic: {threads:?}"
    );

    // The DNS-named connections, each named by the answer another ring's
    // thread saw.
    let flows: Vec<simpul_proto::FlowRecord> = std::fs::read_to_string(dir.join("flows.jsonl"))
        .expect("flows.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad flow {l}: {e}")))
        .collect();
    for (i, addr) in named.iter().enumerate() {
        let name = format!("n{i}.named.example");
        let conn: Vec<_> = flows
            .iter()
            .filter(|f| {
                f.src_ip.to_string() == *addr
                    && f.dst_ip.to_string() == INTERNET
                    && f.dst_port == Some(80)
            })
            .collect();
        // One table holds the connection: one final record, not one per thread.
        let finals = conn
            .iter()
            .filter(|f| f.kind == simpul_proto::RecordKind::Final)
            .count();
        assert_eq!(
            finals, 1,
            "{addr}: final records of its connection: {conn:#?}"
        );
        for f in conn {
            assert_eq!(
                (f.site.as_deref(), f.site_source),
                (Some(name.as_str()), Some(simpul_proto::SiteSource::Dns)),
                "{addr}: flow not named by its DNS answer: {f:?}"
            );
        }
    }
}

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

use common::netns::wait_for;
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

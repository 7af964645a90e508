//! Name blocking per connection, against a server 10 ms away, with
//! `simpul-agent run` on the router:
//!
//! ```text
//!  client 10.1.1.2 ── lan0 router (agent) wan0 ── far (delay line, 5 ms each way) ── server 198.51.100.10
//! ```
//!
//! This kernel has no netem, so the 10 ms are a userspace wire
//! (`names_lab/delay_line.py`: AF_PACKET in, the same frame out on the other
//! interface 5 ms later, both ways): every packet — SYN, handshake, data —
//! takes 10 ms there and back, as on a real path. The block has to land
//! between the ClientHello passing the router and the server's answer
//! coming back: otherwise the handshake completes and the page is served.
//!
//! Real clients (curl, Python sockets), real servers (`enforce_lab/sites.py`:
//! HTTPS and HTTP for any name, a UDP echo on 443), the real kernel.

mod common;
mod enforce_lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::netns::{sh, sh_out, wait_for, Lab};
use common::*;
use enforce_lab::{curl, https, quic_initial_hex};
use simpul_proto::{BlockMethod, BlockedAttempt};

const CLIENT: &str = "10.1.1.2";
const SERVER: &str = "198.51.100.10";

const INVENTORY: &str = r#"intranet = ["10.0.0.0/8"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.1.0/24"]
[[nodes]]
id = "router-names"
agency = "dinkes"
uplink = { down_bps = 100000000, up_bps = 100000000 }
"#;

const POLICY: &str = r#"version = 1
agency = "dinkes"
[allocation]
download = { rate_bps = 50000000, ceil_bps = 50000000 }
upload = { rate_bps = 50000000, ceil_bps = 50000000 }
[blocking]
domains = ["blocked.example", "quic.example.go.id", "warmup.example"]
"#;

struct Names {
    _lab: Lab,
    router: String,
    client: String,
    _dir: tempfile::TempDir,
    log: PathBuf,
    events: PathBuf,
}

impl Names {
    /// The topology, the delay line, the sites and the agent (capture
    /// `method`: auto, ring or pnet; `extra`: more `[capture]` lines),
    /// ready: the policy is in force in the packet path.
    fn start(tag: &str, method: &str, extra: &str) -> Names {
        let mut lab = Lab::new(tag);
        let router = lab.ns("r");
        let client = lab.ns("c");
        let far = lab.ns("far");
        let server = lab.ns("s");
        lab.link(
            &client,
            "eth0",
            "10.1.1.2/24",
            &router,
            "lan0",
            "10.1.1.1/24",
        );
        sh(&format!("ip -n {client} route add default via 10.1.1.1"));
        for (ns, ifname, peer) in [(&router, "wan0", "f0"), (&server, "eth0", "f1")] {
            sh(&format!(
                "ip link add {ifname} netns {ns} type veth peer name {peer} netns {far}"
            ));
            sh(&format!("ip -n {far} link set {peer} up promisc on"));
            sh(&format!("ip -n {ns} link set {ifname} up"));
        }
        sh(&format!("ip -n {router} addr add 198.51.100.1/24 dev wan0"));
        sh(&format!("ip -n {server} addr add {SERVER}/24 dev eth0"));
        sh(&format!(
            "ip -n {server} route add 10.0.0.0/8 via 198.51.100.1"
        ));
        sh(&format!(
            "ip netns exec {router} sysctl -qw net.ipv4.ip_forward=1"
        ));
        // The delay line copies frames as they are on the wire: checksums
        // filled in (no checksum offload) and at most the MTU (no 64 KiB
        // segmentation-offload super-frames).
        for (ns, dev) in [
            (&client, "eth0"),
            (&router, "lan0"),
            (&router, "wan0"),
            (&server, "eth0"),
            (&far, "f0"),
            (&far, "f1"),
        ] {
            sh(&format!(
                "ip netns exec {ns} ethtool -K {dev} tx off tso off gso off gro off >/dev/null"
            ));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let wire_ready = dir.path().join("wire.ready");
        let wire = here.join("names_lab/delay_line.py");
        lab.spawn(
            &far,
            &[
                "python3",
                wire.to_str().expect("utf-8"),
                "f0",
                "f1",
                "5",
                wire_ready.to_str().expect("utf-8"),
            ],
            false,
        );
        assert!(
            wait_for(10, || wire_ready.exists()),
            "delay line did not start"
        );

        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sites.example -addext subjectAltName=DNS:*.example,DNS:*.blocked.example,DNS:allowed.example -keyout {} -out {} 2>/dev/null",
            key.display(),
            cert.display()
        ));
        let sites_ready = dir.path().join("sites.ready");
        let sites = here.join("enforce_lab/sites.py");
        lab.spawn(
            &server,
            &[
                "python3",
                sites.to_str().expect("utf-8"),
                cert.to_str().expect("utf-8"),
                key.to_str().expect("utf-8"),
                sites_ready.to_str().expect("utf-8"),
            ],
            false,
        );
        assert!(wait_for(15, || sites_ready.exists()), "sites did not start");

        let (log, events) = (
            dir.path().join("agent.log"),
            dir.path().join("blocked.jsonl"),
        );
        std::fs::write(dir.path().join("inventory.toml"), INVENTORY).expect("inventory");
        std::fs::write(dir.path().join("policy.toml"), POLICY).expect("policy");
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                r#"[agent]
id = "router-names"
state_dir = {state:?}
[capture]
interfaces = ["lan0"]
method = "{method}"
{extra}
[output]
blocked_jsonl = {events:?}
[standalone]
inventory_file = "inventory.toml"
policy_file = "policy.toml"
[enforce]
lan_interface = "lan0"
wan_interface = "wan0"
attempt_fold_secs = 1
"#,
                state = dir.path().join("state").display().to_string(),
                events = events.display().to_string(),
            ),
        )
        .expect("agent.toml");
        let agent = agent_bin();
        lab.spawn(
            &router,
            &[
                "sh",
                "-c",
                &format!(
                    "SIMPUL_LOG=info,simpul_agent::enforce::names=debug,simpul_agent::capture::name_lane=debug exec {} run --config {} 2>{}",
                    agent.display(),
                    config.display(),
                    log.display()
                ),
            ],
            true,
        );
        let t = Names {
            _lab: lab,
            router,
            client,
            _dir: dir,
            log,
            events,
        };
        // The policy is in force in the packet path once a blocked name
        // makes an event (a name of its own: the ones under test are each
        // tried for the first time below).
        let warm = wait_for(30, || {
            let _ = https(&t.client, "warmup.example", SERVER, "/");
            find(&t.attempts(), BlockMethod::Sni, "warmup.example")
        });
        assert!(warm, "agent not enforcing; log:\n{}", t.log_text());
        t
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn attempts(&self) -> Vec<BlockedAttempt> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l}: {e}")))
            .collect()
    }

    fn names_set(&self) -> String {
        sh_out(&format!(
            "ip netns exec {} nft list table inet simpul_names",
            self.router
        ))
    }
}

fn find(events: &[BlockedAttempt], method: BlockMethod, target: &str) -> bool {
    events
        .iter()
        .any(|e| e.method == method && e.client.to_string() == CLIENT && e.target == target)
}

/// HTTPS GET of `/` on `name` from a fixed client port.
fn https_from(ns: &str, name: &str, port: u16) -> Result<String, String> {
    curl(
        ns,
        &[
            "--local-port",
            &port.to_string(),
            "--resolve",
            &format!("{name}:443:{SERVER}"),
            &format!("https://{name}/"),
        ],
    )
}

/// Python client: a UDP socket bound to `port` sends each payload in turn
/// and waits up to a second for each echo; prints "echo" or "silence" per
/// payload.
fn udp_exchange(ns: &str, port: u16, payloads_hex: &[&str]) -> Vec<String> {
    let list = payloads_hex
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(",");
    let code = format!(
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', {port}))\ns.settimeout(1)\nfor p in [{list}]:\n    s.sendto(bytes.fromhex(p), ('{SERVER}', 443))\n    try:\n        s.recvfrom(2048); print('echo')\n    except OSError:\n        print('silence')\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &code])
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The default capture: a TPACKET_V3 ring, with its name lane.
#[test]
fn first_request_to_a_blocked_name_10ms_away_is_refused() {
    first_requests_refused("nm", "auto", Lane::Races, 1);
}

/// The ring's blocks held for 200 ms: only the name lane can stop the
/// first requests, and it makes every entry.
#[test]
fn the_name_lane_alone_refuses_the_first_requests() {
    first_requests_refused("nl", "ring", Lane::Alone, 1);
}

/// The fallback capture hands a frame that may name a site over at once
/// too (it used to wait for the next frame or its 100 ms read timeout).
#[test]
fn first_request_is_refused_with_the_pnet_capture() {
    first_requests_refused("np", "pnet", Lane::None, 1);
}

/// Two fanout threads, each with a flow table: a shard's guard and the
/// name lane share the claims, so each connection is still one kernel
/// request, and the shard's events reach the one folding guard.
#[test]
fn first_requests_are_refused_with_two_capture_threads() {
    first_requests_refused("nt", "ring", Lane::Races, 2);
}

/// Who is expected to make the kernel entries.
#[derive(PartialEq)]
enum Lane {
    /// The ring's name lane and its packet path race for each connection
    /// (the lane nearly always wins); one entry each either way.
    Races,
    /// The ring's blocks come too late: the lane makes every entry.
    Alone,
    /// pnet capture: no lane, the packet path makes every entry.
    None,
}

fn first_requests_refused(tag: &str, method: &str, lane: Lane, threads: usize) {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let extra = if lane == Lane::Alone {
        "ring_block_timeout_ms = 200"
    } else {
        ""
    };
    let t = Names::start(tag, method, &format!("threads = {threads}\n{extra}"));
    let log = t.log_text();
    assert_eq!(
        log.contains("flow table sharded over the fanout rings' threads"),
        threads > 1,
        "flow table sharding wrong for {threads} threads:\n{log}"
    );
    assert!(
        method == "auto"
            || log.contains(&format!("method={method}"))
            || log.contains(&format!("method=\"{method}\"")),
        "capture method {method} not in use:\n{log}"
    );
    // The path really is 10 ms long.
    let ping = sh_out(&format!(
        "ip netns exec {} ping -c 3 -i 0.2 -q {SERVER}",
        t.client
    ));
    let avg: f64 = ping
        .split(" = ")
        .nth(1)
        .and_then(|s| s.split('/').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no ping average in {ping}"));
    assert!(avg >= 10.0, "the server should be 10 ms away: {ping}");

    // TLS: the very first connection naming the blocked site in its
    // ClientHello gets no page: the server's first answer meets the
    // refusal and the connection is reset.
    let err = https_from(&t.client, "www.blocked.example", 41001).expect_err("SNI block");
    eprintln!("first HTTPS request to the blocked name: {err}");
    let set = t.names_set();
    assert!(
        set.contains(&format!("{CLIENT} . 41001 . {SERVER} . tcp . 443")),
        "no entry for that connection: {set}"
    );
    // HTTP: the request itself reaches the server (it is what names the
    // site), its answer does not reach the client.
    let err = curl(
        &t.client,
        &[
            "--local-port",
            "41002",
            "-H",
            "Host: www.blocked.example",
            &format!("http://{SERVER}/"),
        ],
    )
    .expect_err("Host block");
    eprintln!("first HTTP request to the blocked name: {err}");
    // QUIC: the echo of the Initial itself never comes back, nor anything
    // later on that 5-tuple.
    let initial = quic_initial_hex();
    assert_eq!(
        udp_exchange(&t.client, 41003, &[&initial, "00"]),
        ["silence", "silence"],
        "QUIC answered"
    );
    let set = t.names_set();
    for want in [
        format!("{CLIENT} . 41002 . {SERVER} . tcp . 80"),
        format!("{CLIENT} . 41003 . {SERVER} . udp . 443"),
    ] {
        assert!(set.contains(&want), "no entry {want}: {set}");
    }
    // Each one is reported under its name.
    assert!(
        wait_for(10, || {
            let ev = t.attempts();
            find(&ev, BlockMethod::Sni, "www.blocked.example")
                && find(&ev, BlockMethod::Http, "www.blocked.example")
                && find(&ev, BlockMethod::Quic, "quic.example.go.id")
        }),
        "missing events: {:#?}",
        t.attempts()
    );
    // The entries went in over netlink, not through the nft program.
    let log = t.log_text();
    assert!(
        log.contains("via=\"netlink\"") || log.contains("via=netlink"),
        "no netlink entry in the log:\n{log}"
    );
    assert!(!log.contains("via=\"nft\""), "nft fallback used:\n{log}");
    // With the ring, its name lane is on and makes the entries; the
    // packet path does not ask again for a connection the lane refused.
    assert_eq!(
        log.contains("name_lane=\"active\"") || log.contains("name_lane=active"),
        lane != Lane::None,
        "name lane state wrong for {method}:\n{log}"
    );
    let mut from_lane = 0;
    for port in [41001, 41002, 41003] {
        let entry: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("connection refused for a blocked name")
                    && l.contains(&format!("client_port={port} "))
            })
            .collect();
        assert_eq!(entry.len(), 1, "one kernel request for port {port}:\n{log}");
        from_lane += usize::from(entry[0].contains("from=\"name lane\""));
    }
    match lane {
        Lane::Alone => assert_eq!(from_lane, 3, "entries not all from the lane:\n{log}"),
        Lane::Races => assert!(from_lane >= 1, "the lane made no entry:\n{log}"),
        Lane::None => assert_eq!(from_lane, 0, "a lane with pnet capture:\n{log}"),
    }
    for l in log.lines().filter(|l| l.contains("capture_to_kernel_us")) {
        eprintln!("{l}");
    }
}

#[test]
fn an_allowed_name_on_the_blocked_names_address_is_served() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let t = Names::start("nn", "auto", "");
    for round in 0..3u16 {
        let err = https_from(&t.client, "www.blocked.example", 42001 + 2 * round)
            .expect_err("blocked name");
        eprintln!("round {round}: blocked name: {err}");
        // Same client, same server address and port, right after: served.
        let body = https_from(&t.client, "allowed.example", 42002 + 2 * round)
            .unwrap_or_else(|e| panic!("allowed name refused in round {round}: {e}"));
        assert!(body.contains("site allowed.example"), "{body}");
    }
    let body = curl(
        &t.client,
        &["-H", "Host: allowed.example", &format!("http://{SERVER}/")],
    )
    .expect("allowed Host on the same address");
    assert!(body.contains("site allowed.example"), "{body}");
    // Nothing keyed on the address alone.
    let set = t.names_set();
    assert!(
        set.contains(&format!("{CLIENT} . 42001 . {SERVER} . tcp . 443")),
        "{set}"
    );
    assert!(
        !set.contains("42002"),
        "the allowed connection has an entry: {set}"
    );
    assert!(
        !t.attempts()
            .iter()
            .any(|e| e.target.contains("allowed.example")),
        "allowed name reported as blocked"
    );
}

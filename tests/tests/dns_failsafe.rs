//! The LAN's DNS does not die with the agent: `simpul-agent run` on the
//! router of the enforcement topology (see `enforce_lab`) answers DNS on
//! IPv4 and IPv6 and redirects the LAN's DNS to any resolver (here the
//! LAN's own resolver, dnsmasq on the internet side) to itself, so a blocked
//! name gets NXDOMAIN with the blocked zone's SOA. Killed with SIGKILL, the
//! agent stops renewing the redirect's live mark; the redirect lapses by
//! itself and the same query is answered by dnsmasq, over IPv4 and IPv6,
//! while the blocked CIDR stays blocked. A restarted agent takes the
//! redirect back, and a clean stop gives it up at once. Real dig, dnsmasq,
//! iperf3 and nftables.

mod common;
mod enforce_lab;

use std::process::Command;
use std::time::{Duration, Instant};

use common::is_root;
use common::netns::{sh, sh_out, wait_for};
use enforce_lab::{Topo, INTERNET, INTERNET_BLOCKED, ROUTER_LAN};

const ROUTER_LAN6: &str = "fd53:a::1";
const CLIENT6: &str = "fd53:a::2";
const ROUTER_WAN6: &str = "fd53:f::1";
/// The LAN's resolver (dnsmasq) on IPv6.
const INTERNET6: &str = "fd53:f::10";
const BLOCKED_NAME: &str = "www.blocked.example";

/// The loose bound on the lapse after a kill: the mark lasts 3 s after
/// its last renewal (at most 1 s before the kill); the rest is slack for a
/// loaded machine. The measured figure is printed.
const LAPSE_BOUND: Duration = Duration::from_secs(8);

const POLICY: &str = r#"version = 1
agency = "dinkes"
[allocation]
download = { rate_bps = 50000000, ceil_bps = 50000000 }
upload = { rate_bps = 50000000, ceil_bps = 50000000 }
[blocking]
domains = ["blocked.example"]
cidrs = ["198.51.100.20/32"]
"#;

/// `dig` from `ns` at `server`, one try: (status, answers, authority
/// records, full output); status "NO ANSWER" when nothing came back.
fn dig(
    ns: &str,
    server: &str,
    name: &str,
    qtype: &str,
) -> (String, Vec<String>, Vec<String>, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "dig",
            &format!("@{server}"),
            name,
            qtype,
        ])
        .args([
            "+time=1",
            "+tries=1",
            "+noall",
            "+comments",
            "+answer",
            "+authority",
        ])
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
        .to_string();
    let mut answers = Vec::new();
    let mut authority = Vec::new();
    let mut section = "";
    for l in text.lines() {
        if let Some(s) = l.strip_prefix(";; ") {
            section = s.split(' ').next().unwrap_or("");
            continue;
        }
        if l.starts_with(';') || l.trim().is_empty() {
            continue;
        }
        match section {
            "ANSWER" => answers.extend(l.split_whitespace().last().map(str::to_string)),
            "AUTHORITY" => authority.push(l.split_whitespace().collect::<Vec<_>>().join(" ")),
            _ => {}
        }
    }
    (status, answers, authority, text)
}

/// IPv6 on the LAN (client a and the router) and towards the internet
/// host; the lab leaves it off.
fn enable_ipv6(t: &Topo) {
    for ns in [&t.router, &t.a, &t.inet] {
        sh(&format!(
            "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0"
        ));
    }
    // Multicast (neighbour discovery) flooded, not snooped.
    sh(&format!(
        "ip -n {} link set br0 type bridge mcast_snooping 0",
        sw_ns(t)
    ));
    let (r, a, inet) = (&t.router, &t.a, &t.inet);
    sh(&format!("ip netns exec {r} sysctl -qw net.ipv6.conf.lan0.disable_ipv6=0 net.ipv6.conf.wan0.disable_ipv6=0 net.ipv6.conf.all.forwarding=1"));
    sh(&format!(
        "ip netns exec {a} sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0"
    ));
    sh(&format!(
        "ip netns exec {inet} sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0"
    ));
    sh(&format!(
        "ip -n {r} addr add {ROUTER_LAN6}/64 dev lan0 nodad"
    ));
    sh(&format!(
        "ip -n {r} addr add {ROUTER_WAN6}/64 dev wan0 nodad"
    ));
    sh(&format!("ip -n {a} addr add {CLIENT6}/64 dev eth0 nodad"));
    sh(&format!("ip -n {a} -6 route add default via {ROUTER_LAN6}"));
    sh(&format!(
        "ip -n {inet} addr add {INTERNET6}/64 dev eth0 nodad"
    ));
    sh(&format!(
        "ip -n {inet} -6 route add fd53:a::/64 via {ROUTER_WAN6}"
    ));
}

/// The switch namespace of the topology (the lab names it after the router's prefix).
fn sw_ns(t: &Topo) -> String {
    t.router.trim_end_matches("-r").to_string() + "-sw"
}

/// The router's live-mark set, as nft lists it.
fn live_set(t: &Topo) -> String {
    sh_out(&format!(
        "ip netns exec {} nft list set inet simpul_dns live",
        t.router
    ))
}

/// Whether dnsmasq itself answered `name` (its address, not NXDOMAIN).
fn answered_by_the_lans_resolver(t: &Topo, server: &str, qtype: &str, want: &str) -> bool {
    let (st, ans, _, _) = dig(&t.a, server, BLOCKED_NAME, qtype);
    st == "NOERROR" && ans == [want]
}

/// An `nft` first in the agent's PATH that appends each run (its
/// arguments and script) to `nft.log` and runs the real one.
fn nft_logger(t: &Topo) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = t.dir.path().join("bin");
    let log = t.dir.path().join("nft.log");
    std::fs::create_dir_all(&dir).expect("bin dir");
    let real = sh_out("command -v nft");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"--- nft $*\" >> {log}\ntee -a {log} | {real} \"$@\"\n",
        log = log.display(),
        real = real.trim()
    );
    let wrapper = dir.join("nft");
    std::fs::write(&wrapper, script).expect("write wrapper");
    sh(&format!("chmod 755 {}", wrapper.display()));
    (dir, log)
}

/// `nft` runs the agent made so far, and the log.
fn nft_runs(log: &std::path::Path) -> (usize, String) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    (text.matches("--- nft ").count(), text)
}

fn start_agent(t: &mut Topo, bin: &std::path::Path) -> usize {
    let agent = common::agent_bin();
    let config = t.config.display().to_string();
    let router = t.router.clone();
    let path = format!(
        "PATH={}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    t.lab.spawn(
        &router,
        &[
            "env",
            &path,
            agent.to_str().expect("utf-8"),
            "run",
            "--config",
            &config,
        ],
        false,
    )
}

#[test]
fn lan_dns_works_again_soon_after_the_agent_is_killed_while_a_blocked_cidr_stays_blocked() {
    assert!(is_root(), "namespaces need root (CI runs as root)");
    let mut t = Topo::new("fs");
    enable_ipv6(&t);
    let inet = t.inet.clone();
    // The LAN's resolver: every *.example name is the internet host.
    t.lab.spawn(
        &inet,
        &[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--bind-interfaces",
            &format!("--listen-address={INTERNET},{INTERNET6}"),
            &format!("--address=/example/{INTERNET}"),
            &format!("--address=/example/{INTERNET6}"),
            "--log-facility=-",
        ],
        true,
    );
    t.iperf_server(&inet, 5201);

    // Without the agent: the client's DNS goes to dnsmasq, over both
    // families, and the blocked CIDR is reachable (the checks below can fail).
    assert!(
        wait_for(10, || answered_by_the_lans_resolver(
            &t, INTERNET, "A", INTERNET
        )),
        "dnsmasq does not answer over IPv4"
    );
    assert!(
        wait_for(10, || answered_by_the_lans_resolver(
            &t, INTERNET6, "AAAA", INTERNET6
        )),
        "dnsmasq does not answer over IPv6"
    );
    assert!(t.can_connect(&t.a, INTERNET_BLOCKED, 5201));

    let policy = t.write_policy("policy.toml", POLICY);
    t.write_config(Some(&policy));
    t.enable_dns();
    let text = std::fs::read_to_string(&t.config).expect("config");
    std::fs::write(
        &t.config,
        format!("{text}listen6 = \"[{ROUTER_LAN6}]:53\"\n"),
    )
    .expect("write config");
    let (bin, nft_log) = nft_logger(&t);
    let agent = start_agent(&mut t, &bin);

    // The agent: DNS to the LAN's resolver is redirected to its responder,
    // over IPv4 and IPv6; the blocked name gets NXDOMAIN with the SOA.
    assert!(
        wait_for(30, || dig(&t.a, INTERNET, BLOCKED_NAME, "A").0
            == "NXDOMAIN"),
        "IPv4 DNS to the LAN's resolver not redirected to the agent: {}",
        dig(&t.a, INTERNET, BLOCKED_NAME, "A").3
    );
    let (st, _, auth, out) = dig(&t.a, INTERNET, BLOCKED_NAME, "A");
    assert_eq!(st, "NXDOMAIN", "{out}");
    assert!(
        auth.iter().any(|r| r.starts_with(
            "blocked.example. 60 IN SOA blocked.simpul.invalid. hostmaster.simpul.invalid. 1 "
        ) && r.ends_with(" 60")),
        "no SOA of the blocked zone with the block TTL: {out}"
    );
    let (st, _, auth, out) = dig(&t.a, INTERNET6, BLOCKED_NAME, "AAAA");
    assert_eq!(st, "NXDOMAIN", "IPv6 DNS not redirected: {out}");
    assert!(auth.iter().any(|r| r.contains(" IN SOA ")), "{out}");
    // The responder's own IPv6 listener.
    let (st, ans, _, out) = dig(&t.a, ROUTER_LAN6, "allowed.example", "AAAA");
    assert_eq!(
        (st.as_str(), ans),
        ("NOERROR", vec![INTERNET6.to_string()]),
        "{out}"
    );
    let (st, ans, _, out) = dig(&t.a, ROUTER_LAN, "allowed.example", "A");
    assert_eq!(
        (st.as_str(), ans),
        ("NOERROR", vec![INTERNET.to_string()]),
        "{out}"
    );
    assert!(live_set(&t).contains("\"lan0\""), "{}", live_set(&t));
    assert!(
        !t.can_connect(&t.a, INTERNET_BLOCKED, 5201),
        "blocked CIDR reachable"
    );
    assert!(
        t.can_connect(&t.a, INTERNET, 5201),
        "allowed address unreachable"
    );
    // The agent ran nft (the policy's rules go through it), so the logger
    // sees it; renewing the mark (every second, for a mark of 3 s) does
    // not: over 4 s the mark stays with no nft run at all.
    let (runs, text) = nft_runs(&nft_log);
    assert!(runs > 0 && text.contains("simpul_dns"), "{text}");
    std::thread::sleep(Duration::from_secs(4));
    assert!(live_set(&t).contains("\"lan0\""), "{}", live_set(&t));
    let (later, text) = nft_runs(&nft_log);
    assert_eq!(
        later, runs,
        "nft runs while the mark was only renewed: {text}"
    );

    // SIGKILL: nothing renews the mark any more.
    let killed = Instant::now();
    let status = t.lab.signal_and_wait(agent, "KILL");
    assert!(!status.success(), "agent exit: {status:?}");
    // The mark is read in the kernel (fast); a dig may wait out its 1 s
    // timeout when the router rate-limits its port-unreachable answers.
    let gone = wait_for(20, || !live_set(&t).contains("lan0"));
    let mark_gone = killed.elapsed();
    let back = wait_for(20, || {
        answered_by_the_lans_resolver(&t, INTERNET, "A", INTERNET)
    });
    let lapse = killed.elapsed();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "after the agent was killed: live mark gone in {:.2} s, LAN DNS answered by its own resolver in {:.2} s (load {})",
        mark_gone.as_secs_f64(),
        lapse.as_secs_f64(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    assert!(gone, "the live mark outlived the agent: {}", live_set(&t));
    assert!(
        back,
        "the LAN's DNS still goes to the dead agent: {}",
        live_set(&t)
    );
    assert!(
        lapse < LAPSE_BOUND,
        "the redirect lapsed only {lapse:?} after the kill"
    );
    assert!(
        answered_by_the_lans_resolver(&t, INTERNET6, "AAAA", INTERNET6),
        "IPv6 DNS still redirected to the dead agent: {}",
        dig(&t.a, INTERNET6, BLOCKED_NAME, "AAAA").3
    );
    // The kernel-held blocks stay.
    assert!(
        !t.can_connect(&t.a, INTERNET_BLOCKED, 5201),
        "blocked CIDR reachable after the kill"
    );
    assert!(t.can_connect(&t.a, INTERNET, 5201));
    assert!(t.nft_table().contains("comment \"blocked: cidr\""));
    assert!(!live_set(&t).contains("lan0"), "{}", live_set(&t));

    // A restarted agent takes the redirect back once its responder answers…
    let agent = start_agent(&mut t, &bin);
    assert!(
        wait_for(30, || dig(&t.a, INTERNET, BLOCKED_NAME, "A").0
            == "NXDOMAIN"),
        "a restarted agent did not take the redirect back"
    );
    // …and a clean stop gives it up before the process exits.
    let status = t.lab.signal_and_wait(agent, "TERM");
    assert!(status.success(), "agent exit: {status:?}");
    assert!(!live_set(&t).contains("lan0"), "{}", live_set(&t));
    assert!(
        answered_by_the_lans_resolver(&t, INTERNET, "A", INTERNET),
        "DNS still redirected after a clean stop: {}",
        dig(&t.a, INTERNET, BLOCKED_NAME, "A").3
    );
    assert!(!t.can_connect(&t.a, INTERNET_BLOCKED, 5201));
}

//! Blocked attempts from a replay with a policy, against tshark's reading of
//! the same captures: every connection whose ClientHello (TLS or QUIC) or
//! HTTP request names a blocked site, every connection to a blocked port or
//! network, is one attempt — no more, no less — with the rule and list that
//! blocked it. Allowlisted names and other sites make none.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use simpul_proto::BlockedAttempt;

const POLICY: &str = r#"
version = 7
agency = "diskominfo"
[allocation]
download = { rate_bps = 10000000, ceil_bps = 10000000 }
upload = { rate_bps = 10000000, ceil_bps = 10000000 }
[blocking]
domains = ["example.com"]
allow_domains = ["news.example.com"]
cidrs = ["2001:db8:113::/64"]
ports = [{ proto = "tcp", port = 7000 }]
enabled_categories = ["uji"]
[blocking.categories]
uji = ["sso.example.go.id"]
tidak-aktif = ["www.example.go.id"]
"#;

/// (method, client, target, rule, list) → attempts
type Tally = BTreeMap<(String, String, String, String, String), u64>;

fn rule_for(name: &str) -> Option<(&'static str, &'static str)> {
    let n = name.to_ascii_lowercase();
    if n == "news.example.com" || n.ends_with(".news.example.com") {
        return None;
    }
    if n == "example.com" || n.ends_with(".example.com") {
        return Some(("example.com", "domains"));
    }
    if n == "sso.example.go.id" {
        return Some(("sso.example.go.id", "uji"));
    }
    None
}

/// tshark's fields for the packets matching `filter`, one row per packet.
fn fields(pcap: &Path, filter: &str, names: &[&str]) -> Vec<Vec<String>> {
    let pcap = pcap.display().to_string();
    let mut args = vec![
        "-r",
        &pcap,
        "-n",
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "separator=|",
    ];
    for n in names {
        args.extend(["-e", n]);
    }
    tshark(&args)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// tshark: one attempt per TCP/UDP stream whose first request names a
/// blocked site.
fn named_streams(
    pcap: &Path,
    method: &str,
    filter: &str,
    stream: &str,
    field: &str,
    tally: &mut Tally,
) {
    let rows = fields(pcap, filter, &["ip.src", "ipv6.src", stream, field]);
    let mut seen = std::collections::BTreeSet::new();
    for f in &rows {
        let (client, stream_id, name) = (
            if f[0].is_empty() { &f[1] } else { &f[0] },
            &f[2],
            f[3].trim_end_matches('.'),
        );
        if name.is_empty() || !seen.insert(stream_id.to_string()) {
            continue;
        }
        if let Some((rule, list)) = rule_for(name) {
            *tally
                .entry((
                    method.into(),
                    client.into(),
                    name.to_ascii_lowercase(),
                    rule.into(),
                    list.into(),
                ))
                .or_default() += 1;
        }
    }
}

/// tshark: one attempt per conversation matching `filter` (its first packet
/// is the client's).
fn conversations(
    pcap: &Path,
    method: &str,
    filter: &str,
    rule: &str,
    list: &str,
    tally: &mut Tally,
) {
    let rows = fields(
        pcap,
        filter,
        &[
            "ip.src",
            "ipv6.src",
            "ip.dst",
            "ipv6.dst",
            "tcp.stream",
            "udp.stream",
            "tcp.dstport",
            "udp.dstport",
        ],
    );
    let mut seen = std::collections::BTreeSet::new();
    for f in &rows {
        let pick = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_string()
            } else {
                a.to_string()
            }
        };
        let (client, server) = (pick(&f[0], &f[1]), pick(&f[2], &f[3]));
        let stream = format!("{}/{}", f[4], f[5]);
        if !seen.insert(stream) {
            continue;
        }
        let port = pick(&f[6], &f[7]);
        let target = if server.contains(':') {
            format!("[{server}]:{port}")
        } else {
            format!("{server}:{port}")
        };
        *tally
            .entry((method.into(), client, target, rule.into(), list.into()))
            .or_default() += 1;
    }
}

/// tshark: ICMP echo flows (the agent keys ICMP by addresses) to a blocked
/// network, one attempt per client/server pair.
fn icmp_pairs(pcap: &Path, filter: &str, rule: &str, list: &str, tally: &mut Tally) {
    let pairs: std::collections::BTreeSet<(String, String)> =
        fields(pcap, filter, &["ipv6.src", "ipv6.dst"])
            .into_iter()
            .filter_map(|f| Some((f.first()?.clone(), f.get(1)?.clone())))
            .collect();
    for (client, server) in pairs {
        *tally
            .entry(("address".into(), client, server, rule.into(), list.into()))
            .or_default() += 1;
    }
}

#[test]
fn blocked_attempts_equal_tshark_for_every_rule_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let config = fixtures_dir().join("agent.toml");

    let mut expected = Tally::new();
    let mut agent = Tally::new();
    let mut records: Vec<BlockedAttempt> = Vec::new();
    for name in [
        "https.pcapng",
        "http.pcap",
        "quic.pcapng",
        "dns.pcapng",
        "ipv6-frag.pcapng",
    ] {
        let pcap = fixtures_dir().join(name);
        let blocked = dir.path().join(format!("{name}.blocked.jsonl"));
        replay(
            &pcap,
            Some(&config),
            &[
                "--policy",
                &policy.display().to_string(),
                "--blocked-out",
                &blocked.display().to_string(),
            ],
        );
        let text = std::fs::read_to_string(&blocked).unwrap_or_default();
        for line in text.lines() {
            let r: BlockedAttempt = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: bad line {line}: {e}"));
            *agent
                .entry((
                    r.method.name().to_string(),
                    r.client.to_string(),
                    r.target.clone(),
                    r.rule.clone(),
                    r.list.clone(),
                ))
                .or_default() += u64::from(r.attempts);
            records.push(r);
        }
        named_streams(
            &pcap,
            "sni",
            "tls.handshake.type == 1 && tcp",
            "tcp.stream",
            "tls.handshake.extensions_server_name",
            &mut expected,
        );
        named_streams(
            &pcap,
            "quic",
            "tls.handshake.type == 1 && quic",
            "udp.stream",
            "tls.handshake.extensions_server_name",
            &mut expected,
        );
        named_streams(
            &pcap,
            "http",
            "http.request",
            "tcp.stream",
            "http.host",
            &mut expected,
        );
        conversations(
            &pcap,
            "port",
            "tcp.dstport == 7000 && tcp.flags.syn == 1 && tcp.flags.ack == 0",
            "tcp/7000",
            "ports",
            &mut expected,
        );
        icmp_pairs(
            &pcap,
            "icmpv6.type == 128 && ipv6.dst == 2001:db8:113::/64",
            "2001:db8:113::/64",
            "cidrs",
            &mut expected,
        );
        conversations(&pcap, "address", "ipv6.dst == 2001:db8:113::/64 && ((tcp.flags.syn == 1 && tcp.flags.ack == 0) || (udp && !(ipv6.src == 2001:db8:113::/64)))", "2001:db8:113::/64", "cidrs", &mut expected);
    }
    // Each kind is present, so the comparison below compares something.
    for method in ["sni", "quic", "http", "port", "address"] {
        assert!(
            expected.keys().any(|k| k.0 == method),
            "the fixtures should hold a {method} case; tshark found {expected:#?}"
        );
    }
    assert_eq!(agent, expected, "agent (left) vs tshark (right)");
    // Attribution: clients are the agency's units.
    for r in &records {
        assert_eq!(r.agency, "diskominfo", "{r:?}");
        assert!(
            ["sekretariat", "bidang-it"].contains(&r.unit.as_str()),
            "{r:?}"
        );
        assert!(r.first_seen <= r.last_seen && r.attempts >= 1, "{r:?}");
    }
}

#[test]
fn a_bad_replay_policy_is_refused_with_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fixtures_dir().join("agent.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, POLICY.replace("\"example.com\"", "\"exa mple.com\"")).expect("write");
    let out = std::process::Command::new(agent_bin())
        .args(["replay", "--pcap"])
        .arg(fixtures_dir().join("https.pcapng"))
        .arg("--config")
        .arg(&config)
        .arg("--flows-out")
        .arg(dir.path().join("f.jsonl"))
        .arg("--policy")
        .arg(&bad)
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocking.domains[0]"), "{err}");
}

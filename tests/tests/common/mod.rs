//! Shared helpers for the end-to-end tests: locating binaries, running tshark
//! as the reference decoder, and aggregating flows the same way on both sides.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use simpul_proto::FlowRecord;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// Build (once) and return a workspace binary, in the profile the tests run in.
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<BTreeSet<String>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut done = built.lock().unwrap_or_else(|e| e.into_inner());
    let profile_dir = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    if !done.contains(name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root())
            .args(["build", "-q", "-p", package, "--bin", name]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "cargo build of {name} failed");
        done.insert(name.to_string());
    }
    target.join(profile_dir).join(name)
}

pub fn agent_bin() -> PathBuf {
    binary("simpul-agent", "simpul-agent")
}

/// Run `simpul-agent replay` and parse its flow records.
pub fn replay(pcap: &Path, config: Option<&Path>, extra: &[&str]) -> Vec<FlowRecord> {
    let out = tempfile::NamedTempFile::new().expect("tempfile");
    let mut cmd = Command::new(agent_bin());
    cmd.arg("replay")
        .arg("--pcap")
        .arg(pcap)
        .arg("--flows-out")
        .arg(out.path());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(extra);
    let o = cmd.output().expect("run agent");
    assert!(
        o.status.success(),
        "agent replay of {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    read_jsonl(out.path())
}

pub fn read_jsonl(path: &Path) -> Vec<FlowRecord> {
    let text = std::fs::read_to_string(path).expect("read jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l}: {e}")))
        .collect()
}

/// One endpoint of a conversation.
pub type Endpoint = (String, u16);

/// Conversation key independent of direction: (vlan stack, proto, lower endpoint, higher endpoint).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConvKey {
    pub vlans: String,
    pub proto: u8,
    pub a: Endpoint,
    pub b: Endpoint,
}

/// Packets and bytes sent by each endpoint of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvTotals {
    /// endpoint → (packets, bytes)
    pub sent: BTreeMap<Endpoint, (u64, u64)>,
}

pub fn conv_key(vlans: String, proto: u8, x: Endpoint, y: Endpoint) -> ConvKey {
    let (a, b) = if x <= y { (x, y) } else { (y, x) };
    ConvKey { vlans, proto, a, b }
}

pub fn proto_number(name: &str) -> u8 {
    match name {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        n => n.parse().unwrap_or_else(|_| panic!("unknown proto {n}")),
    }
}

fn canon_ip(s: &str) -> String {
    s.parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// The agent's records aggregated per conversation (interim records ignored).
pub fn agent_conversations(records: &[FlowRecord]) -> BTreeMap<ConvKey, ConvTotals> {
    let mut out: BTreeMap<ConvKey, ConvTotals> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.kind == simpul_proto::RecordKind::Final)
    {
        let vlans = match (r.vlan, r.vlan_inner) {
            (Some(a), Some(b)) => format!("{a}.{b}"),
            (Some(a), None) => a.to_string(),
            _ => String::new(),
        };
        let s = (r.src_ip.to_string(), r.src_port.unwrap_or(0));
        let d = (r.dst_ip.to_string(), r.dst_port.unwrap_or(0));
        let k = conv_key(vlans, proto_number(&r.proto), s.clone(), d.clone());
        let t = out.entry(k).or_default();
        let e = t.sent.entry(s).or_default();
        e.0 += r.packets_up;
        e.1 += r.bytes_up;
        let e = t.sent.entry(d).or_default();
        e.0 += r.packets_down;
        e.1 += r.bytes_down;
    }
    // Endpoints that sent nothing are absent on the tshark side too.
    for t in out.values_mut() {
        t.sent.retain(|_, v| v.0 > 0);
    }
    out
}

const FIELDS: &[&str] = &[
    "ieee8021ad.id",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.len",
    "ip.id",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.hopopts.nxt",
    "ipv6.fraghdr.nxt",
    "ipv6.plen",
    "ipv6.fraghdr.ident",
    "ipv6.fraghdr.offset",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
];

pub fn tshark(args: &[&str]) -> String {
    let o = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark must be installed (scripts/test.sh installs it)");
    assert!(
        o.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("tshark output is UTF-8")
}

/// tshark's reading of a capture, aggregated per conversation. Fragments after
/// the first are credited to the conversation of their datagram's first
/// fragment (matched by addresses, protocol and IP id), as the agent does.
pub fn tshark_conversations(pcap: &Path) -> BTreeMap<ConvKey, ConvTotals> {
    let mut args: Vec<String> = vec![
        "-r".into(),
        pcap.display().to_string(),
        "-n".into(),
        "-o".into(),
        "ip.defragment:FALSE".into(),
        "-o".into(),
        "ipv6.defragment:FALSE".into(),
        "-T".into(),
        "fields".into(),
        "-E".into(),
        "occurrence=f".into(),
        "-E".into(),
        "separator=\t".into(),
    ];
    for f in FIELDS {
        args.push("-e".into());
        args.push((*f).into());
    }
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = tshark(&args_ref);

    struct Row {
        vlans: String,
        src: String,
        dst: String,
        proto: u8,
        len: u64,
        frag: Option<(String, bool)>,
        ports: (u16, u16),
    }
    let mut rows = Vec::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        let g = |name: &str| -> &str {
            let i = FIELDS.iter().position(|f| *f == name).expect("field");
            c.get(i).copied().unwrap_or("")
        };
        let num = |s: &str| -> u64 {
            if let Some(h) = s.strip_prefix("0x") {
                u64::from_str_radix(h, 16).unwrap_or(0)
            } else {
                s.parse().unwrap_or(0)
            }
        };
        let vlans = match (g("ieee8021ad.id"), g("vlan.id")) {
            ("", "") => String::new(),
            ("", v) => v.to_string(),
            (o, "") => o.to_string(),
            (o, i) => format!("{o}.{i}"),
        };
        let (src, dst, proto, len, frag) = if !g("ip.src").is_empty() {
            let off = num(g("ip.frag_offset"));
            let mf = g("ip.flags.mf") == "1" || g("ip.flags.mf") == "True";
            let frag = (off > 0 || mf).then(|| (format!("v4:{}", num(g("ip.id"))), off == 0));
            (
                g("ip.src").to_string(),
                g("ip.dst").to_string(),
                num(g("ip.proto")) as u8,
                num(g("ip.len")),
                frag,
            )
        } else if !g("ipv6.src").is_empty() {
            let mut proto = num(g("ipv6.nxt")) as u8;
            if proto == 0 && !g("ipv6.hopopts.nxt").is_empty() {
                proto = num(g("ipv6.hopopts.nxt")) as u8;
            }
            let mut frag = None;
            if !g("ipv6.fraghdr.nxt").is_empty() {
                proto = num(g("ipv6.fraghdr.nxt")) as u8;
                frag = Some((
                    format!("v6:{}", num(g("ipv6.fraghdr.ident"))),
                    num(g("ipv6.fraghdr.offset")) == 0,
                ));
            }
            (
                g("ipv6.src").to_string(),
                g("ipv6.dst").to_string(),
                proto,
                num(g("ipv6.plen")) + 40,
                frag,
            )
        } else {
            continue; // not IP
        };
        let ports = match proto {
            6 => (num(g("tcp.srcport")) as u16, num(g("tcp.dstport")) as u16),
            17 => (num(g("udp.srcport")) as u16, num(g("udp.dstport")) as u16),
            _ => (0, 0),
        };
        rows.push(Row {
            vlans,
            src: canon_ip(&src),
            dst: canon_ip(&dst),
            proto,
            len,
            frag,
            ports,
        });
    }
    // First fragments name the ports of their datagram.
    let mut first_ports: BTreeMap<(String, String, u8, String), (u16, u16)> = BTreeMap::new();
    for r in &rows {
        if let Some((id, true)) = &r.frag {
            first_ports.insert((r.src.clone(), r.dst.clone(), r.proto, id.clone()), r.ports);
        }
    }
    let mut out: BTreeMap<ConvKey, ConvTotals> = BTreeMap::new();
    for r in rows {
        let ports = match &r.frag {
            Some((id, false)) => first_ports
                .get(&(r.src.clone(), r.dst.clone(), r.proto, id.clone()))
                .copied()
                .unwrap_or((0, 0)),
            _ => r.ports,
        };
        let s = (r.src, ports.0);
        let d = (r.dst, ports.1);
        let k = conv_key(r.vlans, r.proto, s.clone(), d);
        let e = out.entry(k).or_default().sent.entry(s).or_default();
        e.0 += 1;
        e.1 += r.len;
    }
    out
}

/// Distinct non-empty values of one field over the packets matching a filter.
pub fn tshark_values(pcap: &Path, filter: &str, field: &str) -> BTreeSet<String> {
    let text = tshark(&[
        "-r",
        &pcap.display().to_string(),
        "-n",
        "-Y",
        filter,
        "-T",
        "fields",
        "-e",
        field,
    ]);
    text.lines()
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Compare two conversation maps and describe every difference.
pub fn diff_conversations(
    agent: &BTreeMap<ConvKey, ConvTotals>,
    reference: &BTreeMap<ConvKey, ConvTotals>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, v) in reference {
        match agent.get(k) {
            None => diffs.push(format!("missing in agent: {k:?} {v:?}")),
            Some(a) if a != v => {
                diffs.push(format!("differs: {k:?}\n  agent  {a:?}\n  tshark {v:?}"))
            }
            _ => {}
        }
    }
    for k in agent.keys() {
        if !reference.contains_key(k) {
            diffs.push(format!("extra in agent: {k:?} {:?}", agent[k]));
        }
    }
    diffs
}

pub fn is_root() -> bool {
    // SAFETY-free: read the effective uid from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
pub mod clickhouse;
pub mod collector;
pub mod netns;
pub mod receiver;

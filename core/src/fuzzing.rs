//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the stable
//! tests that replay their inputs, so the fuzzed code is exactly the product's.

use std::sync::OnceLock;

use simpul_proto::policy::Policy;
use simpul_proto::{BlockMethod, BlockedAttempt, CounterSample, FlowRecord, Inventory};
use time::OffsetDateTime;

use crate::agency::AgencyMap;
use crate::decode::LinkType;
use crate::dpi::{dns, http, quic, tls};
use crate::enforce::plan::{plan, EnforceTarget, LeafQdisc};
use crate::flow::FlowLimits;
use crate::inventory::{self, NodeView};
use crate::policy::domains::{DomainFilter, DomainSet, DomainSetBuilder, ListFormat};
use crate::policy::matcher::{BlockMatcher, Exemptions};
use crate::policy::{active_schedule, parse_policy, suspension_active, validate};
use crate::policy::{PolicyError, PolicyScope};
use crate::processor::{Processor, ProcessorConfig, RecordSink};

/// A small table keeps each fuzz iteration cheap (the default pre-sizes 64k flows).
pub fn small_config() -> ProcessorConfig {
    ProcessorConfig {
        flows: FlowLimits {
            max_flows: 64,
            ..FlowLimits::default()
        },
        dns_cache_entries: 64,
        ..ProcessorConfig::default()
    }
}

/// A sink that only sums what it is given (so nothing is optimised away).
pub struct Discard(pub u64);

impl RecordSink for Discard {
    fn flow(&mut self, r: FlowRecord) {
        self.0 += r.bytes_total();
    }
    fn counters(&mut self, s: CounterSample) {
        self.0 += s.bytes_in;
    }
    fn blocked(&mut self, b: BlockedAttempt) {
        self.0 += u64::from(b.attempts);
    }
}

/// A processor attributing nothing, for fuzzing.
pub fn processor() -> Processor<Discard> {
    Processor::new(&small_config(), AgencyMap::empty(), Discard(0))
}

/// Every byte-slice parser on `data`, then `data` as a sequence of frames
/// through the whole processor (decode → flows → naming → records).
pub fn decode_and_name(data: &[u8]) {
    let _ = tls::client_hello_sni(data);
    let _ = http::request_host(data);
    let _ = dns::parse(data);
    let _ = dns::parse_tcp(data);
    let mut q = quic::QuicInitialState::default();
    let _ = q.feed(data);

    let mut p = processor();
    // Split the input into frames with a one-byte length prefix each, so one
    // input exercises flow state across packets (reassembly, DNS then connect).
    let mut rest = data;
    let mut ts = 1_700_000_000_000_000_000u64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize * 4).min(tail.len());
        let (frame, next) = tail.split_at(n);
        let link = match len % 3 {
            0 => LinkType::Ethernet,
            1 => LinkType::RawIp,
            _ => LinkType::LinuxSll,
        };
        p.handle_frame(link, ts, frame);
        ts += u64::from(len) * 50_000_000;
        rest = next;
    }
    p.finish();
}

/// The node a fuzzed policy is checked and planned for: `dinkes` of
/// `configs/inventory.toml`, cut down.
const POLICY_INVENTORY: &str = r#"
intranet = ["10.0.0.0/8"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "sekretariat"
subnets = ["10.20.1.0/24", "fd00:20:1::/64"]
[[agencies.units]]
code = "p2p"
subnets = ["10.20.2.0/24"]
[[agencies]]
code = "bappeda"
[[agencies.units]]
code = "sekretariat"
subnets = ["10.30.1.0/24"]
[[nodes]]
id = "dinkes-01"
agency = "dinkes"
uplink = { down_bps = 100000000, up_bps = 50000000 }
"#;

/// Built once: the same for every input.
fn policy_node() -> Option<&'static NodeView> {
    static VIEW: OnceLock<Option<NodeView>> = OnceLock::new();
    VIEW.get_or_init(|| {
        let inv = Inventory::parse(POLICY_INVENTORY).ok()?;
        NodeView::from_inventory(&inv, "dinkes-01").ok()
    })
    .as_ref()
}

/// Text (TOML or JSON) as a policy file or a pushed policy, else as an
/// inventory file: parse and validate, then what the agent does with what
/// passed.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `parse_policy` is `Policy::parse` then `validate`: parsed once here
    // (a third of the time), checked for the node and for structure only.
    let Ok(p) = Policy::parse(text) else {
        // A policy (`agency`, `allocation`) is never an inventory (no
        // unknown keys there), so only the rest is tried as one.
        inventory(text);
        return;
    };
    let node = policy_node();
    let scope = PolicyScope {
        agency: node.map(|n| &n.agency),
        uplink: node.and_then(|n| n.uplink),
    };
    for (scope, node) in [(scope, node), (PolicyScope::default(), None)] {
        match validate(&p, &scope) {
            Ok(()) => policy_in_force(&p, &scope, node),
            Err(problems) => {
                let _ = PolicyError::Invalid(problems).to_string();
            }
        }
    }
}

fn policy_in_force(p: &Policy, scope: &PolicyScope<'_>, node: Option<&NodeView>) {
    // The collector stores, signs and sends the JSON form; the agent must
    // accept the same policy from it.
    match parse_policy(&p.to_json(), scope) {
        Ok(back) => assert_eq!(&back, p, "the JSON form is another policy"),
        Err(e) => panic!("a valid policy's JSON form is refused: {e}"),
    }
    let exempt = Exemptions {
        always_allow: Vec::new(),
        intranet: node.map(|n| n.intranet.clone()).unwrap_or_default(),
    };
    let m = BlockMatcher::new(p, &exempt);
    for d in p
        .blocked_domains()
        .chain(p.blocking.allow_domains.iter().map(String::as_str))
    {
        let _ = m.check_name(d, BlockMethod::Sni);
        let _ = m.check_name(&format!("www.{d}"), BlockMethod::Dns);
    }
    let server = std::net::IpAddr::from([203, 0, 113, 7]);
    let client = std::net::IpAddr::from([10, 20, 1, 5]);
    for (proto, port) in [(6, 443), (17, 443), (6, 853), (6, 25), (17, 6881)] {
        let _ = m.check_connection(client, server, proto, port);
    }
    let Some(node) = node else { return };
    let target = EnforceTarget {
        lan: "lan0".into(),
        wan: "wan0".into(),
        always_allow: Vec::new(),
        dns_redirect: None,
    };
    // A weekday in office hours (WITA), a night, a Sunday.
    for unix in [1_795_485_600, 1_795_550_400, 1_795_917_600] {
        let Ok(now) = OffsetDateTime::from_unix_timestamp(unix) else {
            continue;
        };
        let _ = active_schedule(p, now);
        let _ = suspension_active(p, now);
        let _ = plan(p, node, &target, now, LeafQdisc::Pfifo);
    }
}

/// Text as an inventory file: parse, validate, and for a valid one each
/// node's view and the part the collector sends it.
fn inventory(text: &str) {
    let Ok(inv) = Inventory::parse(text) else {
        return;
    };
    if inventory::validate(&inv).is_err() {
        return;
    }
    for n in inv.nodes.iter().take(8) {
        let _ = inventory::agency_uplink(&inv, &n.agency);
        let Ok(view) = NodeView::from_inventory(&inv, &n.id) else {
            continue;
        };
        // The agent validates the part it is sent again.
        let part = inventory::for_node(&inv, &n.id);
        match part.map(|part| NodeView::from_inventory(&part, &n.id)) {
            Some(Ok(v)) => assert_eq!(v.intranet, view.intranet, "the node's part differs"),
            Some(Err(e)) => panic!("the part sent to {:?} is refused: {e}", n.id),
            None => panic!("no part for node {:?}", n.id),
        }
    }
}

/// Bytes as a blocklist file (`ListFormat::Auto`, two lists: the halves of
/// the input), then lookups of its own lines; and the other formats.
pub fn domain_list(data: &[u8]) {
    let cut = data
        .iter()
        .skip(data.len() / 2)
        .position(|&b| b == b'\n')
        .map_or(data.len(), |i| data.len() / 2 + i + 1);
    let (first, second) = data.split_at(cut);
    let mut b = DomainSetBuilder::new();
    // Reading from a slice cannot fail.
    let _ = b.add_lines(first, ListFormat::Auto, 1);
    let _ = b.add_lines(second, ListFormat::Auto, 2);
    let set = b.build();
    for rule in set.iter().take(64) {
        // Every stored rule covers itself.
        let m = set.lookup(rule);
        assert!(m.is_some(), "rule {rule:?} does not match itself");
        assert!(matches!(m.map(|m| m.list), Some(1 | 2)));
        let _ = set.lookup(&format!("a.{rule}"));
    }
    let allowed = DomainSet::from_lines(second, ListFormat::Plain).unwrap_or_default();
    let filter = DomainFilter::new(set, allowed, vec!["a".into(), "b".into()]);
    for line in data.split(|&b| b == b'\n').take(64) {
        let _ = filter.check(line);
        let _ = filter.check(line.trim_ascii());
        if let Some(m) = filter.check(line.trim_ascii()) {
            assert!(filter.blocked.contains(m.rule));
        }
    }
    let _ = filter.blocked.lookup_bytes(data);
    for f in [ListFormat::Plain, ListFormat::Hosts, ListFormat::Adblock] {
        let _ = DomainSet::from_lines(data, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(path: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Real policy files, their JSON forms, the inventory (also `fuzz/seeds/policy`).
    pub(crate) fn policy_seeds() -> Vec<String> {
        let mut out = Vec::new();
        for f in [
            "configs/policies/dinkes.toml",
            "configs/policies/bappeda.toml",
        ] {
            let text = repo_file(f);
            let p = Policy::parse(&text).unwrap();
            out.push(p.to_json());
            out.push(text);
        }
        out.push(repo_file("configs/inventory.toml"));
        out.push(POLICY_INVENTORY.to_string());
        out
    }

    pub(crate) fn domain_seeds() -> Vec<String> {
        vec![
            "# list\njudi.example\n  Slot88.Example.  # c\n*.togel.example\nbad domain\n1.2.3.4\n".into(),
            "0.0.0.0 ads.example tracker.example\n127.0.0.1 localhost\n::1 ip6-localhost\n0.0.0.0\n".into(),
            "[Adblock Plus 2.0]\n! c\n||judi.example^\n||Slot.XYZ^$important\n@@||ok.judi.example^\n||x.com^$third-party\n".into(),
            format!("{}deep.example\nok.judi.example\n", "x.".repeat(20)),
        ]
    }

    fn mutations(seed: &[u8], f: fn(&[u8])) {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        f(seed);
        for n in (0..seed.len()).step_by(7) {
            f(&seed[..n]);
        }
        for _ in 0..100 {
            let mut m = seed.to_vec();
            for _ in 0..2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % m.len().max(1);
                if let Some(b) = m.get_mut(i) {
                    // Printable bytes keep most mutations valid UTF-8.
                    const SYNTAX: &[u8] = b" \n.:-#=[]{}\"01az|^";
                    *b = SYNTAX[(x >> 40) as usize % SYNTAX.len()];
                }
            }
            f(&m);
        }
    }

    #[test]
    fn policy_seeds_pass_and_mutations_never_panic() {
        let node = policy_node().expect("the fuzz inventory is valid");
        let scope = PolicyScope {
            agency: Some(&node.agency),
            uplink: node.uplink,
        };
        let seeds = policy_seeds();
        // dinkes (TOML and JSON) is valid for the node: the deep paths run.
        assert!(parse_policy(&seeds[0], &scope).is_ok());
        assert!(parse_policy(&seeds[1], &scope).is_ok());
        assert!(inventory::validate(&Inventory::parse(&seeds[4]).unwrap()).is_ok());
        for s in &seeds {
            mutations(s.as_bytes(), policy);
        }
    }

    #[test]
    fn domain_list_seeds_never_panic() {
        for s in domain_seeds() {
            mutations(s.as_bytes(), domain_list);
        }
        domain_list(&[0xff, b'\n', 0xc3, b'.', b'a']);
    }

    /// `FUZZ_SEEDS_OUT=dir cargo test -p simpul-core write_seeds -- --ignored`
    /// writes the seeds as files (what `fuzz/seeds/{policy,domain_list}` hold).
    #[test]
    #[ignore]
    fn write_seeds() {
        let Ok(dir) = std::env::var("FUZZ_SEEDS_OUT") else {
            return;
        };
        for (name, seeds) in [("policy", policy_seeds()), ("domain_list", domain_seeds())] {
            let d = std::path::Path::new(&dir).join(name);
            std::fs::create_dir_all(&d).unwrap();
            for (i, s) in seeds.iter().enumerate() {
                std::fs::write(d.join(format!("seed-{i:02}")), s).unwrap();
            }
        }
    }
}

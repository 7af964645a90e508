//! Which policy rule a connection or a name falls under, decided in user
//! space from what the capture sees.
//!
//! The kernel does the blocking (see `enforce::plan`); this mirrors the same
//! rules, in the same order, so every attempt the kernel refuses also becomes
//! an event that says who, what and which rule. Names (TLS SNI, QUIC SNI,
//! HTTP Host, DNS questions) are checked here only: the kernel cannot see
//! them, so a blocked name seen in capture turns into a kernel entry for
//! that client, server and port (`enforce::names`).

use std::io::BufRead;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use simpul_proto::policy::{L4Proto, ListRef, Policy};
use simpul_proto::BlockMethod;

use super::domains::{DomainFilter, DomainSetBuilder, ListFormat};
use super::validate::parse_port;
use crate::cidr::parse_cidr;

/// Addresses the rules never touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// Never capped, blocked or suspended either way (the collector).
    pub always_allow: Vec<IpNetwork>,
    /// Destinations on the government intranet: never blocked.
    pub intranet: Vec<IpNetwork>,
}

/// The rule a connection or name matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHit {
    pub method: BlockMethod,
    /// As written in the policy: a domain, a CIDR, `tcp/25`, `udp/6881-6889`,
    /// `dot`, `doh`, `quic`.
    pub rule: String,
    /// `domains`, a category name, `cidrs`, `ports`, `dot`, `doh`, `quic`.
    pub list: String,
}

/// A policy's blocking rules, ready for per-connection checks.
#[derive(Debug, Clone, Default)]
pub struct BlockMatcher {
    /// Policy version the matcher was built from.
    pub version: u64,
    /// Shared by the matchers of versions with the same blocking rules.
    domains: std::sync::Arc<DomainFilter>,
    exempt: Exemptions,
    cidrs: Vec<(IpNetwork, String)>,
    doh: Vec<(IpNetwork, String)>,
    /// (protocol number, first port, last port, rule text)
    ports: Vec<(u8, u16, u16, String)>,
    dot: bool,
    quic: bool,
    /// Where the DNS responder sends blocked names (absent: NXDOMAIN).
    pub block_page: Option<IpAddr>,
}

/// List id 0 is the policy's own `domains`; categories follow in order.
pub const OWN_DOMAINS_LIST: &str = "domains";

impl BlockMatcher {
    /// Build from a validated policy (entries validation would refuse are
    /// skipped here, never a panic).
    pub fn new(policy: &Policy, exempt: &Exemptions) -> Self {
        Self::with_lists(policy, exempt, &mut |_| None)
    }

    /// As [`BlockMatcher::new`], with the named lists' canonical text
    /// (`blocking.lists`) read through `open` (None: not held, skipped).
    pub fn with_lists(
        policy: &Policy,
        exempt: &Exemptions,
        open: &mut dyn FnMut(&ListRef) -> Option<Box<dyn BufRead>>,
    ) -> Self {
        let b = &policy.blocking;
        let mut lists = vec![OWN_DOMAINS_LIST.to_string()];
        let mut blocked = DomainSetBuilder::new();
        for d in &b.domains {
            let _ = blocked.insert(d, 0);
        }
        for cat in &b.enabled_categories {
            let Ok(id) = u16::try_from(lists.len()) else {
                break;
            };
            if let Some(names) = b.categories.get(cat) {
                lists.push(cat.clone());
                for d in names {
                    let _ = blocked.insert(d, id);
                }
            } else if let Some(list) = b.lists.get(cat) {
                let Some(reader) = open(list) else {
                    tracing::error!(list = %cat, sha256 = %list.sha256, "named list not held; its names are not blocked");
                    continue;
                };
                lists.push(cat.clone());
                blocked.reserve(usize::try_from(list.domains).unwrap_or(0).min(1 << 24));
                if let Err(e) = blocked.add_lines(reader, ListFormat::Plain, id) {
                    tracing::error!(list = %cat, error = %e, "named list unreadable; its names read so far are blocked");
                }
            }
        }
        let mut allowed = DomainSetBuilder::new();
        for d in &b.allow_domains {
            let _ = allowed.insert(d, 0);
        }
        let nets = |list: &[String]| -> Vec<(IpNetwork, String)> {
            list.iter()
                .filter_map(|s| parse_cidr(s).ok().map(|n| (n, s.clone())))
                .collect()
        };
        let ports = b
            .ports
            .iter()
            .filter_map(|p| {
                let (lo, hi) = parse_port(&p.port).ok()?;
                let num = match p.proto {
                    L4Proto::Tcp => 6,
                    L4Proto::Udp => 17,
                };
                let text = if lo == hi {
                    format!("{}/{lo}", p.proto.name())
                } else {
                    format!("{}/{lo}-{hi}", p.proto.name())
                };
                Some((num, lo, hi, text))
            })
            .collect();
        BlockMatcher {
            version: policy.version,
            domains: std::sync::Arc::new(DomainFilter::new(
                blocked.build(),
                allowed.build(),
                lists,
            )),
            exempt: exempt.clone(),
            cidrs: nets(&b.cidrs),
            doh: nets(&b.block_doh),
            ports,
            dot: b.block_dot,
            quic: b.block_quic,
            block_page: b.block_page.as_deref().and_then(|s| s.parse().ok()),
        }
    }

    /// The same rules under another policy version, for a policy whose
    /// blocking and exemptions did not change: the domain set is shared,
    /// not rebuilt (a 3 M-name list costs a second of CPU, and its memory
    /// twice while the new one is built, on every allocation change).
    pub fn for_version(&self, version: u64) -> BlockMatcher {
        BlockMatcher {
            version,
            ..self.clone()
        }
    }

    /// The domain filter (for the DNS responder).
    pub fn domains(&self) -> &DomainFilter {
        &self.domains
    }

    /// Whether the policy blocks anything by name.
    pub fn blocks_names(&self) -> bool {
        !self.domains.blocked.is_empty()
    }

    /// The rule a new connection from `client` to `server` falls under, in
    /// the kernel's order: always-allowed, intranet, blocked CIDR, DoH
    /// resolver, port, DoT, QUIC.
    pub fn check_connection(
        &self,
        client: IpAddr,
        server: IpAddr,
        proto: u8,
        port: u16,
    ) -> Option<RuleHit> {
        if self.always_allowed(client) || self.exempt(server) {
            return None;
        }
        let hit = |method, rule: &str, list: &str| RuleHit {
            method,
            rule: rule.to_string(),
            list: list.to_string(),
        };
        if let Some((_, rule)) = self.cidrs.iter().find(|(n, _)| n.contains(server)) {
            return Some(hit(BlockMethod::Address, rule, "cidrs"));
        }
        let tcp_or_udp = proto == 6 || proto == 17;
        if tcp_or_udp && port == 443 {
            if let Some((_, rule)) = self.doh.iter().find(|(n, _)| n.contains(server)) {
                return Some(hit(BlockMethod::Doh, rule, "doh"));
            }
        }
        if let Some((.., rule)) = self
            .ports
            .iter()
            .find(|(p, lo, hi, _)| *p == proto && (*lo..=*hi).contains(&port))
        {
            return Some(hit(BlockMethod::Port, rule, "ports"));
        }
        if self.dot && tcp_or_udp && port == 853 {
            return Some(hit(BlockMethod::Dot, "dot", "dot"));
        }
        if self.quic && proto == 17 && port == 443 {
            return Some(hit(BlockMethod::QuicProtocol, "quic", "quic"));
        }
        None
    }

    /// The rule blocking `name` (covering its subdomains), unless allowlisted.
    pub fn check_name(&self, name: &str, method: BlockMethod) -> Option<RuleHit> {
        let m = self.domains.check(name.as_bytes())?;
        Some(RuleHit {
            method,
            rule: m.rule.to_string(),
            list: m.list_name.to_string(),
        })
    }

    /// Whether `ip` is never blocked either way (the collector, `always_allow`).
    pub fn always_allowed(&self, ip: IpAddr) -> bool {
        self.exempt.always_allow.iter().any(|n| n.contains(ip))
    }

    /// Whether a connection to `server` is never blocked: always allowed,
    /// or on the intranet.
    pub fn exempt(&self, server: IpAddr) -> bool {
        self.always_allowed(server) || self.exempt.intranet.iter().any(|n| n.contains(server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(blocking: &str) -> BlockMatcher {
        let text = format!(
            "version = 4\nagency = \"a\"\n[allocation]\ndownload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\nupload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\n[blocking]\n{blocking}"
        );
        let policy = Policy::parse(&text).expect("policy");
        let exempt = Exemptions {
            always_allow: vec![parse_cidr("192.0.2.9/32").unwrap()],
            intranet: vec![parse_cidr("10.0.0.0/8").unwrap()],
        };
        BlockMatcher::new(&policy, &exempt)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn connections_follow_the_kernel_order() {
        let m = matcher(
            "cidrs = [\"203.0.113.0/24\", \"2001:db8::/32\"]\nports = [{ proto = \"tcp\", port = 25 }, { proto = \"udp\", port = \"6881-6889\" }]\nblock_dot = true\nblock_doh = [\"9.9.9.9\"]\nblock_quic = true\n",
        );
        let c = ip("10.1.1.5");
        let check = |dst: &str, proto, port| {
            m.check_connection(c, ip(dst), proto, port)
                .map(|h| (h.method, h.rule, h.list))
        };
        assert_eq!(
            check("203.0.113.7", 6, 443),
            Some((
                BlockMethod::Address,
                "203.0.113.0/24".into(),
                "cidrs".into()
            ))
        );
        assert_eq!(
            check("2001:db8::1", 17, 53).map(|h| h.0),
            Some(BlockMethod::Address)
        );
        assert_eq!(
            check("9.9.9.9", 6, 443),
            Some((BlockMethod::Doh, "9.9.9.9".into(), "doh".into()))
        );
        // DoH resolvers are blocked on 443 only (their plain DNS goes to the
        // agent's responder through the redirect).
        assert_eq!(check("9.9.9.9", 6, 80), None);
        assert_eq!(
            check("198.51.100.1", 6, 25),
            Some((BlockMethod::Port, "tcp/25".into(), "ports".into()))
        );
        assert_eq!(
            check("198.51.100.1", 17, 6885).map(|h| h.1),
            Some("udp/6881-6889".into())
        );
        assert_eq!(check("198.51.100.1", 6, 6885), None);
        assert_eq!(
            check("198.51.100.1", 6, 853).map(|h| h.0),
            Some(BlockMethod::Dot)
        );
        assert_eq!(
            check("198.51.100.1", 17, 443).map(|h| h.0),
            Some(BlockMethod::QuicProtocol)
        );
        assert_eq!(check("198.51.100.1", 6, 443), None);
        // The collector is never blocked, whatever the rules say; nor is
        // the intranet (tcp/25 to the government mail server).
        assert_eq!(m.check_connection(c, ip("192.0.2.9"), 6, 25), None);
        assert_eq!(m.check_connection(c, ip("10.99.0.25"), 6, 25), None);
        assert_eq!(m.check_connection(c, ip("10.99.0.25"), 6, 853), None);
    }

    #[test]
    fn named_lists_are_read_through_the_opener() {
        let list =
            crate::lists::canonicalize(&b"togel.example\nslot.example\n"[..], ListFormat::Plain)
                .expect("list");
        let text = format!(
            "version = 4\nagency = \"a\"\n[allocation]\ndownload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\nupload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\n[blocking]\nenabled_categories = [\"judi\", \"absent\"]\nallow_domains = [\"ok.slot.example\"]\n[blocking.lists.judi]\nsha256 = \"{}\"\ndomains = 2\n[blocking.lists.absent]\nsha256 = \"{}\"\ndomains = 1\n",
            list.sha256,
            "0".repeat(64)
        );
        let policy = Policy::parse(&text).expect("policy");
        let mut asked = Vec::new();
        let m = BlockMatcher::with_lists(&policy, &Exemptions::default(), &mut |r| {
            asked.push(r.sha256.clone());
            (r.sha256 == list.sha256)
                .then(|| Box::new(std::io::Cursor::new(list.text.clone())) as Box<dyn BufRead>)
        });
        assert_eq!(asked.len(), 2);
        let hit = m
            .check_name("www.togel.example", BlockMethod::Dns)
            .expect("blocked");
        assert_eq!(
            (hit.rule.as_str(), hit.list.as_str()),
            ("togel.example", "judi")
        );
        assert_eq!(m.check_name("ok.slot.example", BlockMethod::Dns), None);
        // Another version with the same rules shares the domain set.
        let next = m.for_version(5);
        assert_eq!(next.version, 5);
        assert!(std::ptr::eq(next.domains(), m.domains()));
        // Without the list's text, nothing of it is blocked (and no panic).
        let bare = BlockMatcher::new(&policy, &Exemptions::default());
        assert_eq!(bare.check_name("togel.example", BlockMethod::Dns), None);
    }

    #[test]
    fn names_use_categories_and_the_allowlist() {
        let m = matcher(
            "domains = [\"slot88.example\"]\nallow_domains = [\"berita.slot88.example\"]\nenabled_categories = [\"judi\"]\n[blocking.categories]\njudi = [\"togel.example\"]\npornografi = [\"dewasa.example\"]\n",
        );
        let hit = m
            .check_name("www.slot88.example", BlockMethod::Sni)
            .expect("blocked");
        assert_eq!(
            (hit.rule.as_str(), hit.list.as_str()),
            ("slot88.example", "domains")
        );
        let hit = m
            .check_name("TOGEL.example", BlockMethod::Http)
            .expect("blocked");
        assert_eq!((hit.method, hit.list.as_str()), (BlockMethod::Http, "judi"));
        assert_eq!(
            m.check_name("berita.slot88.example", BlockMethod::Sni),
            None
        );
        assert_eq!(
            m.check_name("a.berita.slot88.example", BlockMethod::Sni),
            None
        );
        // A category that is defined but not enabled blocks nothing.
        assert_eq!(m.check_name("dewasa.example", BlockMethod::Dns), None);
        assert_eq!(m.check_name("example", BlockMethod::Dns), None);
        assert!(m.blocks_names());
        assert!(!matcher("").blocks_names());
    }
}

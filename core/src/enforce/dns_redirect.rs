//! The DNS redirect, and how it fails safe.
//!
//! DNS from the LAN to any resolver (port 53, UDP and TCP, IPv4 and IPv6) is
//! redirected to the agent's responder, so a hard-coded 8.8.8.8 cannot
//! bypass the blocklist. A redirect that outlived the responder would
//! black-hole every DNS query of the LAN, so the rules match only while the
//! LAN interface is an element of the set `live`, and elements there time
//! out after [`LIVE_TIMEOUT_SECS`]: the running responder refreshes its
//! element every second once it answers ([`refresh_script`]) and removes it
//! when it stops ([`lapse_script`]). When the agent dies the element
//! expires and new DNS flows go to the resolver the client asked; the
//! blocks held in the policy table (CIDRs, ports, suspension) and the name
//! refusals stay. NAT is decided at a flow's first packet: a flow redirected
//! before the lapse stays redirected until conntrack forgets it (UDP: 30 s
//! without a packet). Stub resolvers send each query from a fresh source
//! port, a new flow, so their queries after the lapse are not affected.
//!
//! The table `inet simpul_dns` is apart from the policy table, which every
//! policy change replaces whole: the set and its element survive a policy
//! change, so a schedule switch never opens a gap in the redirect. The
//! policy plan owns the rules ([`rules_script`], idempotent `add` and a
//! flushed chain instead of a rebuilt table); the responder owns the element.
//! Both declare the table and the set with the same text, so whichever comes
//! first creates them.

use std::fmt::Write as _;
use std::net::{SocketAddrV4, SocketAddrV6};

/// The table of the redirect and its live mark.
pub const DNS_TABLE: &str = "simpul_dns";
/// The set whose elements (interface names) switch the redirect on.
pub const LIVE_SET: &str = "live";
/// The chain with the redirect rules.
pub const REDIRECT_CHAIN: &str = "dns_redirect";
/// How long the live mark lasts without a refresh: the redirect lapses at
/// most this long after the responder stops answering.
pub const LIVE_TIMEOUT_SECS: u64 = 3;

/// Where redirected DNS goes: the responder's listen address per family
/// (None: that family's DNS is not redirected). An unspecified address
/// (`0.0.0.0`, `::`) redirects to the LAN interface's primary address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRedirect {
    pub v4: Option<SocketAddrV4>,
    pub v6: Option<SocketAddrV6>,
}

/// `add` of the table and the set: a no-op when they exist.
fn declare(out: &mut String) {
    let _ = writeln!(
        out,
        "add table inet {DNS_TABLE}\nadd set inet {DNS_TABLE} {LIVE_SET} {{ type ifname; flags timeout; }}"
    );
}

/// The redirect rules for DNS arriving on `lan`, for the policy's nft
/// script. With `redirect` None the table goes (a redirect configured
/// before is not left behind).
pub fn rules_script(lan: &str, redirect: Option<&DnsRedirect>) -> String {
    let mut s = String::new();
    let Some(r) = redirect else {
        let _ = writeln!(s, "table inet {DNS_TABLE}\ndelete table inet {DNS_TABLE}");
        return s;
    };
    declare(&mut s);
    let _ = writeln!(
        s,
        "add chain inet {DNS_TABLE} {REDIRECT_CHAIN} {{ type nat hook prerouting priority dstnat; policy accept; }}\nflush chain inet {DNS_TABLE} {REDIRECT_CHAIN}"
    );
    // To the listen address itself when it is one (the responder's socket
    // is bound to it, so its answers carry the address conntrack expects);
    // `redirect` (the interface's primary address) for a wildcard listener.
    let v4 = r.v4.map(|a| {
        let to = if a.ip().is_unspecified() {
            format!("redirect to :{}", a.port())
        } else {
            format!("dnat ip to {a}")
        };
        ("ipv4", to)
    });
    let v6 = r.v6.map(|a| {
        let to = if a.ip().is_unspecified() {
            format!("redirect to :{}", a.port())
        } else {
            format!("dnat ip6 to [{}]:{}", a.ip(), a.port())
        };
        ("ipv6", to)
    });
    // `lan` is the element the responder adds; naming it here too keeps a
    // mark for another interface from redirecting this one.
    for (fam, to) in [v4, v6].into_iter().flatten() {
        let _ = writeln!(
            s,
            "add rule inet {DNS_TABLE} {REDIRECT_CHAIN} iifname \"{lan}\" iifname @{LIVE_SET} meta nfproto {fam} meta l4proto {{ tcp, udp }} th dport 53 counter {to} comment \"DNS to the agent's responder while it answers\""
        );
    }
    s
}

/// One `nft -f` batch giving `lan`'s live mark a fresh full timeout (`add`
/// of an element that is there keeps its old expiry, so: add, delete, add;
/// one transaction, never a moment without the mark).
pub fn refresh_script(lan: &str) -> String {
    let mut s = String::new();
    declare(&mut s);
    let e = format!("{{ \"{lan}\" timeout {LIVE_TIMEOUT_SECS}s }}");
    let _ = writeln!(s, "add element inet {DNS_TABLE} {LIVE_SET} {e}");
    let _ = writeln!(
        s,
        "delete element inet {DNS_TABLE} {LIVE_SET} {{ \"{lan}\" }}"
    );
    let _ = writeln!(s, "add element inet {DNS_TABLE} {LIVE_SET} {e}");
    s
}

/// One `nft -f` batch removing `lan`'s live mark at once (a clean stop):
/// add (so the delete cannot fail on an expired mark), delete.
pub fn lapse_script(lan: &str) -> String {
    let mut s = String::new();
    declare(&mut s);
    let _ = writeln!(s, "add element inet {DNS_TABLE} {LIVE_SET} {{ \"{lan}\" }}");
    let _ = writeln!(
        s,
        "delete element inet {DNS_TABLE} {LIVE_SET} {{ \"{lan}\" }}"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_only_while_the_lan_is_marked_live() {
        let r = DnsRedirect {
            v4: Some("10.1.1.1:53".parse().expect("v4")),
            v6: Some("[fd00:1::1]:53".parse().expect("v6")),
        };
        let s = rules_script("lan0", Some(&r));
        assert!(
            s.contains("add rule inet simpul_dns dns_redirect iifname \"lan0\" iifname @live meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 counter dnat ip to 10.1.1.1:53"),
            "{s}"
        );
        assert!(
            s.contains("iifname @live meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter dnat ip6 to [fd00:1::1]:53"),
            "{s}"
        );
        // Rebuilt without touching the set: its element survives.
        assert!(!s.contains("delete"), "{s}");
        assert!(
            s.contains("flush chain inet simpul_dns dns_redirect\n"),
            "{s}"
        );
        assert!(
            s.contains("type nat hook prerouting priority dstnat"),
            "{s}"
        );

        let wild = DnsRedirect {
            v4: Some("0.0.0.0:5353".parse().expect("v4")),
            v6: Some("[::]:5353".parse().expect("v6")),
        };
        let s = rules_script("lan0", Some(&wild));
        assert!(
            s.contains(
                "meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 counter redirect to :5353"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter redirect to :5353"
            ),
            "{s}"
        );

        let v4_only = DnsRedirect {
            v4: Some("10.1.1.1:53".parse().expect("v4")),
            v6: None,
        };
        let s = rules_script("lan0", Some(&v4_only));
        assert!(!s.contains("ipv6"), "{s}");
        assert_eq!(
            rules_script("lan0", None),
            "table inet simpul_dns\ndelete table inet simpul_dns\n"
        );
    }

    #[test]
    fn refresh_renews_and_lapse_removes_the_mark() {
        let r = refresh_script("lan0");
        let decl = "add table inet simpul_dns\nadd set inet simpul_dns live { type ifname; flags timeout; }\n";
        assert!(r.starts_with(decl), "{r}");
        assert!(rules_script("x", Some(&DnsRedirect { v4: None, v6: None })).starts_with(decl));
        assert_eq!(
            &r[decl.len()..],
            "add element inet simpul_dns live { \"lan0\" timeout 3s }\ndelete element inet simpul_dns live { \"lan0\" }\nadd element inet simpul_dns live { \"lan0\" timeout 3s }\n"
        );
        let l = lapse_script("lan0");
        assert!(l.starts_with(decl), "{l}");
        assert!(
            l.ends_with("delete element inet simpul_dns live { \"lan0\" }\n"),
            "{l}"
        );
    }
}

//! Desired kernel state from (policy, the node's inventory, where it
//! enforces, now, leaf qdisc): one `nft -f` script and one `tc -batch` script. Pure: no I/O, same inputs give
//! byte-identical scripts, which is what the enforcer compares to decide
//! whether anything changed.
//!
//! # Shaping
//! HTB on the egress of the LAN interface shapes download (internet → unit)
//! and on the egress of the WAN interface shapes upload. Both trees are alike:
//!
//! ```text
//! 1:   htb default fff
//! ├─ 1:1    agency rate/ceil
//! │  ├─ 1:10, 1:11, …  one per unit with an allocation (inventory order)
//! │  └─ 1:fff  everything else of the agency (hosts outside the units)
//! └─ 1:2    exempt: intranet and always-allowed addresses, not capped
//! ```
//!
//! This kernel has only the u32 tc classifier, so packets are classified by
//! nftables in `postrouting` (`meta priority set 1:NN`), which HTB reads
//! directly when the major number matches its handle. A unit's class comes
//! from one lookup in an interval map of the units' subnets (`units4`,
//! `units6`: prefix → class id), so classifying costs the same for 500
//! units as for one. Each leaf gets the best queue the kernel offers
//! ([`LeafQdisc`]); a pfifo leaf is sized in time ([`pfifo_limit`]).
//!
//! The tc script rebuilds both trees whole; when a new plan differs from the
//! one in force only in rates, [`super::inplace`] derives the `tc class
//! change` lines that reach the same state in place.
//!
//! # Filtering
//! Table `inet simpul`, rebuilt whole in one transaction (`table`, `delete
//! table`, `table { … }` in one `nft -f` run: the kernel commits all or
//! nothing): interval sets for always-allowed, intranet, blocked and DoH
//! addresses and suspended units; port sets; a `forward` chain that accepts
//! the always-allowed addresses first (the collector link is never cut),
//! then intranet destinations (never blocked nor suspended), then
//! suspension, then blocks. The DNS redirect is in a table of its own
//! that this script updates without rebuilding ([`super::dns_redirect`]):
//! it follows the responder's live mark, which a rebuild would drop.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use simpul_proto::policy::{DirectionRates, L4Proto, Policy, Rates};
use time::OffsetDateTime;

use super::dns_redirect::{self, DnsRedirect};
use crate::cidr::parse_cidr;
use crate::inventory::{NodeView, UnitView};
use crate::policy::schedule::{active_schedule, suspension_active};
use crate::policy::validate::{effective_allocation, parse_port};

/// Where the node enforces, and what it must never cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforceTarget {
    /// LAN-side interface: download is shaped on its egress.
    pub lan: String,
    /// WAN-side interface: upload is shaped on its egress.
    pub wan: String,
    /// Never capped, blocked or suspended (the collector).
    pub always_allow: Vec<IpNetwork>,
    /// The agent's DNS responder, where DNS from the LAN to any other
    /// resolver is redirected while the responder answers (None: no
    /// redirect); see [`super::dns_redirect`].
    pub dns_redirect: Option<DnsRedirect>,
}

/// The nftables table the agent owns (and rebuilds whole).
pub const NFT_TABLE: &str = "simpul";

/// Classes: agency, exempt, default; units start at [`FIRST_UNIT_MINOR`].
pub const AGENCY_MINOR: u32 = 0x1;
pub const EXEMPT_MINOR: u32 = 0x2;
pub const DEFAULT_MINOR: u32 = 0xfff;
pub const FIRST_UNIT_MINOR: u32 = 0x10;
/// Units with an allocation per agency (minors 0x10..0xffe).
pub const MAX_UNITS: usize = (DEFAULT_MINOR - FIRST_UNIT_MINOR) as usize;

/// Rate of the exempt class: intranet traffic is not shaped in practice.
const EXEMPT_RATE_BPS: u64 = 10_000_000_000;
const MTU_FRAME: u64 = 1514;

/// Leaf queue of every HTB class, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafQdisc {
    FqCodel,
    Cake,
    Sfq,
    Pfifo,
}

impl LeafQdisc {
    /// Preference order for detection.
    pub const PREFERENCE: [LeafQdisc; 4] = [
        LeafQdisc::FqCodel,
        LeafQdisc::Cake,
        LeafQdisc::Sfq,
        LeafQdisc::Pfifo,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            LeafQdisc::FqCodel => "fq_codel",
            LeafQdisc::Cake => "cake",
            LeafQdisc::Sfq => "sfq",
            LeafQdisc::Pfifo => "pfifo",
        }
    }

    /// Arguments after the kind for a class with this ceil.
    fn args(self, ceil_bps: u64) -> String {
        match self {
            LeafQdisc::FqCodel => String::new(),
            LeafQdisc::Cake => " unlimited".into(),
            LeafQdisc::Sfq => " perturb 10".into(),
            LeafQdisc::Pfifo => format!(" limit {}", pfifo_limit(ceil_bps)),
        }
    }
}

/// Queueing delay a pfifo leaf holds at its class's ceil.
pub const LEAF_DELAY_MS: u64 = 100;
/// Fewest packets a pfifo leaf holds, whatever its ceil.
pub const LEAF_MIN_PACKETS: u64 = 8;
/// Most packets a pfifo leaf holds (kernel memory, see [`pfifo_limit`]).
pub const LEAF_MAX_PACKETS: u64 = 10_000;

/// Packets a pfifo leaf holds: [`LEAF_DELAY_MS`] of full-size frames at
/// the class's ceil, so a full queue delays its class's packets by that
/// much at any rate (a fixed packet count is 1.5 s at 1 Mbit/s and a
/// millisecond at 1 Gbit/s); 100 ms is above the round trip of the
/// agencies' typical internet paths, which a single TCP flow needs queued
/// to keep its class busy.
///
/// Counted in packets (pfifo), not bytes (bfifo): bfifo drops every packet
/// larger than its limit, and a slow class's limit in bytes is below a
/// GRO/TSO super-packet (64 KiB) or a jumbo frame, which would then never
/// pass; pfifo always takes a packet into a queue with room. The queue is
/// full-size frames because the agent turns GRO off on the shaped
/// interfaces (see the agent's `enforce::offloads`). The floor
/// ([`LEAF_MIN_PACKETS`]; reached below 1 Mbit/s) keeps a slow class
/// working: pfifo counts an ACK like a full frame, and a queue of one or
/// two would drop a flow's ACKs and its segments' bursts. The cap
/// ([`LEAF_MAX_PACKETS`], 100 ms at 1.2 Gbit/s) bounds the memory a full
/// queue holds (about 2.3 KiB of kernel memory per frame, 23 MB) for the
/// uncapped exempt class (10 Gbit/s would be 82,000 packets).
pub fn pfifo_limit(ceil_bps: u64) -> u64 {
    ((ceil_bps / 8).saturating_mul(LEAF_DELAY_MS) / 1000 / MTU_FRAME)
        .clamp(LEAF_MIN_PACKETS, LEAF_MAX_PACKETS)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the policy is for agency {policy:?}, this node speaks for {node:?}")]
    OtherAgency { policy: String, node: String },
    #[error("{0} units have allocations; at most {MAX_UNITS} per agency")]
    TooManyUnits(usize),
}

/// One shaped class, for display and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPlan {
    pub classid: String,
    pub name: String,
    pub download: Rates,
    pub upload: Rates,
}

/// The desired kernel state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub policy_version: u64,
    /// Name of the schedule in force, if any.
    pub schedule: Option<String>,
    pub agency_suspended: bool,
    pub suspended_units: Vec<String>,
    pub classes: Vec<ClassPlan>,
    /// Input for `nft -f -`.
    pub nft: String,
    /// Input for `tc -batch -`.
    pub tc: String,
}

impl Plan {
    /// Same kernel state (the scripts are all that is applied).
    pub fn same_state(&self, other: &Plan) -> bool {
        self.nft == other.nft && self.tc == other.tc
    }
}

/// HTB burst: 10 ms at the rate, at least ten full frames.
pub fn burst_bytes(rate_bps: u64) -> u64 {
    (rate_bps / 8 / 100).max(10 * MTU_FRAME)
}

/// HTB quantum (bytes a class sends per round when borrowing): proportional
/// to the rate like r2q, kept within HTB's recommended range.
fn quantum(rate_bps: u64) -> u64 {
    (rate_bps / 8 / 50).clamp(MTU_FRAME, 200_000)
}

fn split(nets: &[IpNetwork]) -> (Vec<String>, Vec<String>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for n in nets {
        let s = if n.prefix() == if n.is_ipv4() { 32 } else { 128 } {
            n.ip().to_string()
        } else {
            format!("{}/{}", n.network(), n.prefix())
        };
        if n.is_ipv4() {
            v4.push(s);
        } else {
            v6.push(s);
        }
    }
    (v4, v6)
}

fn cidrs(list: &[String]) -> Vec<IpNetwork> {
    // Validated already; anything unparsable would have been refused.
    list.iter().filter_map(|s| parse_cidr(s).ok()).collect()
}

fn set(out: &mut String, name: &str, ty: &str, elements: &[String]) {
    let _ = writeln!(
        out,
        "\tset {name} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\tauto-merge"
    );
    if !elements.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
    }
    out.push_str("\t}\n");
}

fn addr_sets(out: &mut String, base: &str, nets: &[IpNetwork]) {
    let (v4, v6) = split(nets);
    set(out, &format!("{base}4"), "ipv4_addr", &v4);
    set(out, &format!("{base}6"), "ipv6_addr", &v6);
}

fn htb_class(out: &mut String, dev: &str, parent: &str, minor: u32, r: Rates) {
    let _ = writeln!(
        out,
        "class add dev {dev} parent {parent} classid 1:{minor:x} htb rate {}bit ceil {}bit burst {}b cburst {}b quantum {}",
        r.rate_bps,
        r.ceil_bps,
        burst_bytes(r.rate_bps),
        burst_bytes(r.ceil_bps),
        quantum(r.rate_bps)
    );
}

fn leaf(out: &mut String, dev: &str, minor: u32, q: LeafQdisc, ceil_bps: u64) {
    let _ = writeln!(
        out,
        "qdisc add dev {dev} parent 1:{minor:x} handle {minor:x}: {}{}",
        q.kind(),
        q.args(ceil_bps)
    );
}

/// Compute the desired state.
pub fn plan(
    policy: &Policy,
    node: &NodeView,
    target: &EnforceTarget,
    now: OffsetDateTime,
    leaf_q: LeafQdisc,
) -> Result<Plan, PlanError> {
    let (lan, wan) = (target.lan.as_str(), target.wan.as_str());
    let agency = &node.agency;
    if agency.code != policy.agency {
        return Err(PlanError::OtherAgency {
            policy: policy.agency.clone(),
            node: agency.code.clone(),
        });
    }
    let schedule = active_schedule(policy, now);
    let alloc = effective_allocation(&policy.allocation, schedule);
    let suspended = suspension_active(policy, now);
    let agency_suspended = suspended && policy.suspension.agency;
    let suspended_units: Vec<String> = if suspended {
        policy.suspension.units.clone()
    } else {
        Vec::new()
    };

    // Units with an allocation, in inventory order, with their subnets.
    let units: Vec<(&str, Vec<IpNetwork>, simpul_proto::policy::DirectionRates)> = agency
        .units
        .iter()
        .filter_map(|u| {
            let r = alloc.units.get(&u.code)?;
            Some((u.code.as_str(), u.subnets.clone(), *r))
        })
        .collect();
    if units.len() > MAX_UNITS {
        return Err(PlanError::TooManyUnits(units.len()));
    }

    let mut classes = vec![ClassPlan {
        classid: format!("1:{AGENCY_MINOR:x}"),
        name: format!("agency {}", policy.agency),
        download: alloc.download,
        upload: alloc.upload,
    }];
    let leftover = |agency: Rates, pick: fn(&simpul_proto::policy::DirectionRates) -> Rates| {
        let used: u64 = units.iter().map(|(_, _, r)| pick(r).rate_bps).sum();
        Rates {
            rate_bps: agency
                .rate_bps
                .saturating_sub(used)
                .max(agency.rate_bps / 100)
                .max(8_000),
            ceil_bps: agency.ceil_bps,
        }
    };
    let default_class = ClassPlan {
        classid: format!("1:{DEFAULT_MINOR:x}"),
        name: "other hosts of the agency".into(),
        download: leftover(alloc.download, |r| r.download),
        upload: leftover(alloc.upload, |r| r.upload),
    };
    for (i, (code, _, r)) in units.iter().enumerate() {
        classes.push(ClassPlan {
            classid: format!("1:{:x}", FIRST_UNIT_MINOR + i as u32),
            name: format!("unit {code}"),
            download: r.download,
            upload: r.upload,
        });
    }
    classes.push(default_class.clone());

    // ---- tc ----
    let exempt = Rates {
        rate_bps: EXEMPT_RATE_BPS,
        ceil_bps: EXEMPT_RATE_BPS,
    };
    let mut tc = String::new();
    for (dev, down) in [(lan, true), (wan, false)] {
        let pick = |c: &ClassPlan| if down { c.download } else { c.upload };
        // An interim root of another handle first, so the HTB below is a
        // fresh qdisc with no classes (a replace with the same handle and kind
        // would keep the old classes and the adds would collide).
        let _ = writeln!(tc, "qdisc replace dev {dev} root handle ffff: pfifo");
        let _ = writeln!(
            tc,
            "qdisc replace dev {dev} root handle 1: htb default {DEFAULT_MINOR:x}"
        );
        htb_class(&mut tc, dev, "1:", AGENCY_MINOR, pick(&classes[0]));
        htb_class(&mut tc, dev, "1:", EXEMPT_MINOR, exempt);
        leaf(&mut tc, dev, EXEMPT_MINOR, leaf_q, exempt.ceil_bps);
        for (i, c) in classes.iter().enumerate().skip(1) {
            let minor = if i == classes.len() - 1 {
                DEFAULT_MINOR
            } else {
                FIRST_UNIT_MINOR + (i - 1) as u32
            };
            htb_class(&mut tc, dev, "1:1", minor, pick(c));
            leaf(&mut tc, dev, minor, leaf_q, pick(c).ceil_bps);
        }
    }

    // ---- nft ----
    let b = &policy.blocking;
    let always = &target.always_allow;
    let intranet = &node.intranet;
    let blocked = cidrs(&b.cidrs);
    let doh = cidrs(&b.block_doh);
    let suspended_nets: Vec<IpNetwork> = units_nets(&agency.units, &suspended_units);
    let mut ports = [(L4Proto::Tcp, Vec::new()), (L4Proto::Udp, Vec::new())];
    for p in &b.ports {
        if let Ok((lo, hi)) = parse_port(&p.port) {
            let e = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            };
            let slot = if p.proto == L4Proto::Tcp { 0 } else { 1 };
            ports[slot].1.push(e);
        }
    }

    let mut nft = String::new();
    let _ = writeln!(
        nft,
        "# simpul policy {} for agency {}{}",
        policy.version,
        policy.agency,
        schedule.map_or(String::new(), |s| format!(", schedule {}", s.name))
    );
    let _ = writeln!(nft, "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}");
    let _ = writeln!(nft, "table inet {NFT_TABLE} {{");
    addr_sets(&mut nft, "allow", always);
    addr_sets(&mut nft, "intranet", intranet);
    addr_sets(&mut nft, "blocked", &blocked);
    addr_sets(&mut nft, "doh", &doh);
    addr_sets(&mut nft, "suspended", &suspended_nets);
    for (proto, list) in &ports {
        set(
            &mut nft,
            &format!("{}_blocked", proto.name()),
            "inet_service",
            list,
        );
    }
    let (units4, units6) = unit_classes(&units);
    class_map(&mut nft, "units4", "ipv4_addr", &units4);
    class_map(&mut nft, "units6", "ipv6_addr", &units6);

    // Classification into the HTB classes.
    nft.push_str(
        "\tchain classify {\n\t\ttype filter hook postrouting priority mangle; policy accept;\n",
    );
    for set in ["allow", "intranet"] {
        for (fam, v) in [("ip", "4"), ("ip6", "6")] {
            let _ = writeln!(
                nft,
                "\t\toifname \"{lan}\" {fam} saddr @{set}{v} meta priority set 1:{EXEMPT_MINOR:x} accept"
            );
            let _ = writeln!(
                nft,
                "\t\toifname \"{wan}\" {fam} daddr @{set}{v} meta priority set 1:{EXEMPT_MINOR:x} accept"
            );
        }
    }
    // One lookup per packet, whatever the number of units: the unit's
    // address (the destination going down the LAN, the source going up the
    // WAN) in an interval map to its class. A miss ends the rule there.
    for (fam, v) in [("ip", "4"), ("ip6", "6")] {
        let _ = writeln!(
            nft,
            "\t\toifname \"{lan}\" meta priority set {fam} daddr map @units{v} accept comment \"unit download\""
        );
        let _ = writeln!(
            nft,
            "\t\toifname \"{wan}\" meta priority set {fam} saddr map @units{v} accept comment \"unit upload\""
        );
    }
    let _ = writeln!(
        nft,
        "\t\toifname {{ \"{lan}\", \"{wan}\" }} meta priority set 1:{DEFAULT_MINOR:x}\n\t}}"
    );

    // Access: always-allowed first, then the intranet (by the remote end:
    // the agency's own subnets are usually inside the intranet ranges), then
    // suspension, then blocks.
    nft.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    let reject = "reject with icmpx type admin-prohibited";
    for (fam, v) in [("ip", "4"), ("ip6", "6")] {
        let _ = writeln!(nft, "\t\t{fam} daddr @allow{v} accept");
        let _ = writeln!(nft, "\t\t{fam} saddr @allow{v} accept");
    }
    for (fam, v) in [("ip", "4"), ("ip6", "6")] {
        let _ = writeln!(
            nft,
            "\t\tiifname \"{lan}\" {fam} daddr @intranet{v} accept comment \"intranet\""
        );
        let _ = writeln!(
            nft,
            "\t\toifname \"{lan}\" {fam} saddr @intranet{v} accept comment \"intranet\""
        );
    }
    if agency_suspended {
        for (fam, v) in [("ip", "4"), ("ip6", "6")] {
            let _ = writeln!(
                nft,
                "\t\tiifname \"{lan}\" {fam} daddr != @intranet{v} counter {reject} comment \"suspended: agency\""
            );
            let _ = writeln!(
                nft,
                "\t\toifname \"{lan}\" {fam} saddr != @intranet{v} counter drop comment \"suspended: agency\""
            );
        }
    }
    for (fam, v) in [("ip", "4"), ("ip6", "6")] {
        let _ = writeln!(
            nft,
            "\t\t{fam} saddr @suspended{v} {fam} daddr != @intranet{v} counter {reject} comment \"suspended: unit\""
        );
        let _ = writeln!(
            nft,
            "\t\t{fam} daddr @suspended{v} {fam} saddr != @intranet{v} counter drop comment \"suspended: unit\""
        );
        let _ = writeln!(
            nft,
            "\t\t{fam} daddr @blocked{v} counter {reject} comment \"blocked: cidr\""
        );
        let _ = writeln!(
            nft,
            "\t\t{fam} saddr @blocked{v} counter drop comment \"blocked: cidr\""
        );
        let _ = writeln!(
            nft,
            "\t\t{fam} daddr @doh{v} meta l4proto {{ tcp, udp }} th dport 443 counter {reject} comment \"blocked: doh\""
        );
    }
    let _ = writeln!(
        nft,
        "\t\ttcp dport @tcp_blocked counter {reject} comment \"blocked: port\""
    );
    let _ = writeln!(
        nft,
        "\t\tudp dport @udp_blocked counter {reject} comment \"blocked: port\""
    );
    if b.block_dot {
        let _ = writeln!(
            nft,
            "\t\tmeta l4proto {{ tcp, udp }} th dport 853 counter {reject} comment \"blocked: dot\""
        );
    }
    if b.block_quic {
        let _ = writeln!(
            nft,
            "\t\tudp dport 443 counter {reject} comment \"blocked: quic\""
        );
    }
    nft.push_str("\t}\n");

    nft.push_str("}\n");
    // The DNS redirect lives in a table of its own, not rebuilt here.
    nft.push_str(&dns_redirect::rules_script(
        lan,
        target.dns_redirect.as_ref(),
    ));

    Ok(Plan {
        policy_version: policy.version,
        schedule: schedule.map(|s| s.name.clone()),
        agency_suspended,
        suspended_units,
        classes,
        nft,
        tc,
    })
}

fn class_map(out: &mut String, name: &str, ty: &str, elements: &[String]) {
    let _ = writeln!(
        out,
        "\tmap {name} {{\n\t\ttype {ty} : classid\n\t\tflags interval"
    );
    if !elements.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
    }
    out.push_str("\t}\n");
}

/// The elements (`prefix : 1:NN`) of the IPv4 and IPv6 unit maps, in
/// inventory order. An interval map refuses overlapping elements (the whole
/// script would fail) where rules in a row took the first match: the
/// inventory refuses overlapping unit subnets, and should two overlap
/// anyway the earlier unit keeps the common addresses (as its rule did) and
/// the later one the rest, as prefixes.
fn unit_classes(units: &[(&str, Vec<IpNetwork>, DirectionRates)]) -> (Vec<String>, Vec<String>) {
    let mut out = (Vec::new(), Vec::new());
    let mut claimed: [Vec<(u128, u128)>; 2] = [Vec::new(), Vec::new()];
    for (i, (_, nets, _)) in units.iter().enumerate() {
        let minor = FIRST_UNIT_MINOR + i as u32;
        for n in nets {
            let (fam, bits, lo) = match n.network() {
                IpAddr::V4(a) => (0, 32, u128::from(u32::from(a))),
                IpAddr::V6(a) => (1, 128, u128::from(a)),
            };
            let hi = last_of(lo, bits - u32::from(n.prefix()));
            for (a, b) in uncovered(lo, hi, &claimed[fam]) {
                for (start, len) in prefixes(a, b, bits) {
                    let addr = if fam == 0 {
                        IpAddr::V4(Ipv4Addr::from(start as u32))
                    } else {
                        IpAddr::V6(Ipv6Addr::from(start))
                    };
                    let e = if len == bits {
                        format!("{addr} : 1:{minor:x}")
                    } else {
                        format!("{addr}/{len} : 1:{minor:x}")
                    };
                    if fam == 0 { &mut out.0 } else { &mut out.1 }.push(e);
                }
            }
            claimed[fam].push((lo, hi));
        }
    }
    out
}

/// The last address of the block of 2^`host_bits` addresses at `lo`.
fn last_of(lo: u128, host_bits: u32) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        lo | ((1u128 << host_bits) - 1)
    }
}

/// The parts of `lo..=hi` outside every range of `taken`.
fn uncovered(lo: u128, hi: u128, taken: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut taken: Vec<(u128, u128)> = taken
        .iter()
        .copied()
        .filter(|&(a, b)| a <= hi && b >= lo)
        .collect();
    taken.sort_unstable();
    let mut out = Vec::new();
    let mut from = lo;
    for (a, b) in taken {
        if a > from {
            out.push((from, a - 1));
        }
        match b.checked_add(1) {
            Some(next) if next > from => from = next,
            Some(_) => {}
            None => return out,
        }
        if from > hi {
            return out;
        }
    }
    out.push((from, hi));
    out
}

/// `lo..=hi` as the fewest aligned blocks: (first address, prefix length).
fn prefixes(mut lo: u128, hi: u128, bits: u32) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    loop {
        let mut host = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while host > 0 && last_of(lo, host) > hi {
            host -= 1;
        }
        let end = last_of(lo, host);
        out.push((lo, bits - host));
        if end >= hi {
            return out;
        }
        lo = end + 1;
    }
}

fn units_nets(units: &[UnitView], codes: &[String]) -> Vec<IpNetwork> {
    units
        .iter()
        .filter(|u| codes.contains(&u.code))
        .flat_map(|u| u.subnets.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::view_of;
    use crate::policy::validate::PolicyScope;
    use time::macros::datetime;

    const INVENTORY: &str = r#"
intranet = ["10.0.0.0/8"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.1.0/24", "fd00:1::/64"]
[[agencies.units]]
code = "b"
subnets = ["10.1.2.0/24"]
[[agencies.units]]
code = "c"
subnets = ["10.1.3.0/24"]
[[nodes]]
id = "dinkes-01"
agency = "dinkes"
"#;

    struct Inputs {
        node: NodeView,
        target: EnforceTarget,
    }

    const POLICY: &str = r#"
version = 7
agency = "dinkes"
[allocation]
download = { rate_bps = 30000000, ceil_bps = 40000000 }
upload = { rate_bps = 20000000, ceil_bps = 20000000 }
[allocation.units.a]
download = { rate_bps = 10000000, ceil_bps = 40000000 }
upload = { rate_bps = 5000000, ceil_bps = 20000000 }
[allocation.units.b]
download = { rate_bps = 20000000, ceil_bps = 40000000 }
upload = { rate_bps = 15000000, ceil_bps = 20000000 }
[[schedules]]
name = "kantor"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "07:30"
end = "16:00"
download = { rate_bps = 20000000, ceil_bps = 40000000 }
[schedules.units.b]
download = { rate_bps = 10000000, ceil_bps = 40000000 }
upload = { rate_bps = 15000000, ceil_bps = 20000000 }
[blocking]
cidrs = ["203.0.113.0/24", "198.51.100.7/32"]
ports = [{ proto = "tcp", port = 25 }, { proto = "udp", port = "6881-6889" }]
block_dot = true
block_quic = true
block_doh = ["9.9.9.9"]
[suspension]
units = ["b"]
until = "2026-11-30T00:00:00+07:00"
"#;

    fn inputs() -> (Policy, Inputs) {
        let node = view_of(INVENTORY, "dinkes-01");
        let p = Policy::parse(POLICY).expect("policy");
        let scope = PolicyScope {
            agency: Some(&node.agency),
            uplink: None,
        };
        crate::policy::validate::validate(&p, &scope).expect("valid");
        let target = EnforceTarget {
            lan: "lan0".into(),
            wan: "wan0".into(),
            always_allow: vec![parse_cidr("192.0.2.9/32").unwrap()],
            dns_redirect: None,
        };
        (p, Inputs { node, target })
    }

    fn plan(
        p: &Policy,
        i: &Inputs,
        now: OffsetDateTime,
        leaf: LeafQdisc,
    ) -> Result<Plan, PlanError> {
        super::plan(p, &i.node, &i.target, now, leaf)
    }

    #[test]
    fn tc_script_shapes_both_directions() {
        let (p, cfg) = inputs();
        // Saturday: no schedule.
        let plan = plan(&p, &cfg, datetime!(2026-11-28 03:00 UTC), LeafQdisc::Pfifo).unwrap();
        assert_eq!(plan.schedule, None);
        let tc = &plan.tc;
        assert!(tc.starts_with("qdisc replace dev lan0 root handle ffff: pfifo\nqdisc replace dev lan0 root handle 1: htb default fff\n"), "{tc}");
        assert!(tc.contains("class add dev lan0 parent 1: classid 1:1 htb rate 30000000bit ceil 40000000bit burst 37500b cburst 50000b"), "{tc}");
        assert!(
            tc.contains(
                "class add dev lan0 parent 1:1 classid 1:10 htb rate 10000000bit ceil 40000000bit"
            ),
            "{tc}"
        );
        assert!(
            tc.contains("class add dev lan0 parent 1:1 classid 1:11 htb rate 20000000bit"),
            "{tc}"
        );
        assert!(
            tc.contains(
                "class add dev wan0 parent 1:1 classid 1:10 htb rate 5000000bit ceil 20000000bit"
            ),
            "{tc}"
        );
        assert!(
            tc.contains("qdisc add dev wan0 parent 1:10 handle 10: pfifo limit"),
            "{tc}"
        );
        // Unit c has no allocation: no class; the default class gets the rest.
        assert!(!tc.contains("classid 1:12"), "{tc}");
        assert!(
            tc.contains(
                "class add dev lan0 parent 1:1 classid 1:fff htb rate 300000bit ceil 40000000bit"
            ),
            "{tc}"
        );
        // Small rates still get a burst of ten frames.
        assert_eq!(burst_bytes(8_000), 15_140);
    }

    #[test]
    fn nft_script_classifies_blocks_and_suspends() {
        let (p, cfg) = inputs();
        let plan = plan(
            &p,
            &cfg,
            datetime!(2026-11-28 03:00 UTC),
            LeafQdisc::FqCodel,
        )
        .unwrap();
        let nft = &plan.nft;
        assert!(
            nft.contains("table inet simpul\ndelete table inet simpul\ntable inet simpul {"),
            "{nft}"
        );
        // Units by map: a and b have allocations (classes 1:10, 1:11), c
        // has none and stays in the default class.
        assert!(
            nft.contains("\tmap units4 {\n\t\ttype ipv4_addr : classid\n\t\tflags interval\n\t\telements = { 10.1.1.0/24 : 1:10, 10.1.2.0/24 : 1:11 }\n\t}"),
            "{nft}"
        );
        assert!(
            nft.contains("\t\telements = { fd00:1::/64 : 1:10 }\n"),
            "{nft}"
        );
        for rule in [
            "oifname \"lan0\" meta priority set ip daddr map @units4 accept",
            "oifname \"wan0\" meta priority set ip saddr map @units4 accept",
            "oifname \"lan0\" meta priority set ip6 daddr map @units6 accept",
            "oifname \"wan0\" meta priority set ip6 saddr map @units6 accept",
        ] {
            assert_eq!(nft.matches(rule).count(), 1, "{rule}: {nft}");
        }
        assert!(!nft.contains("10.1.3.0"), "unit c has no class: {nft}");
        // Exempt first, the units next, the default class last.
        let exempt = nft.find("@intranet4 meta priority set 1:2").unwrap();
        let unit = nft.find("map @units4").unwrap();
        let default = nft.find("meta priority set 1:fff").unwrap();
        assert!(exempt < unit && unit < default, "{nft}");
        assert!(
            nft.contains("oifname \"lan0\" ip saddr @intranet4 meta priority set 1:2 accept"),
            "{nft}"
        );
        assert!(
            nft.contains("elements = { 203.0.113.0/24, 198.51.100.7 }"),
            "{nft}"
        );
        assert!(nft.contains("elements = { 6881-6889 }"), "{nft}");
        assert!(
            nft.contains("elements = { 192.0.2.9 }"),
            "collector always allowed: {nft}"
        );
        assert!(
            nft.contains("elements = { 10.1.2.0/24 }"),
            "unit b suspended: {nft}"
        );
        assert!(nft.contains("th dport 853"), "{nft}");
        assert!(nft.contains("udp dport 443 counter"), "{nft}");
        assert!(!nft.contains("suspended: agency"), "{nft}");
        assert!(plan.tc.contains("handle 10: fq_codel\n"), "{}", plan.tc);
        // The collector is accepted before any suspension or block rule.
        let allow = nft.find("ip daddr @allow4 accept").unwrap();
        let susp = nft.find("@suspended4").unwrap();
        assert!(allow < nft.find("chain forward").unwrap() || allow < susp);
        // After `until` the suspension lapses.
        let later = plan_at(&p, &cfg, datetime!(2026-11-30 03:00 UTC));
        assert!(later.suspended_units.is_empty());
        assert!(!later.same_state(&plan));
    }

    #[test]
    fn classification_is_one_rule_per_direction_for_any_number_of_units() {
        let (mut p, mut i) = inputs();
        let unit = i.node.agency.units[0].clone();
        let rates = p.allocation.units["a"];
        i.node.agency.units.clear();
        p.allocation.units.clear();
        for n in 0..500u32 {
            let code = format!("u{n}");
            let subnet = format!("10.100.{}.{}/28", n / 16, n % 16 * 16);
            i.node.agency.units.push(UnitView {
                code: code.clone(),
                subnets: vec![parse_cidr(&subnet).unwrap()],
                ..unit.clone()
            });
            p.allocation.units.insert(code, rates);
        }
        let plan = plan(&p, &i, datetime!(2026-11-28 03:00 UTC), LeafQdisc::Pfifo).unwrap();
        let rules = plan
            .nft
            .lines()
            .filter(|l| l.contains("meta priority set"))
            .count();
        // Exempt (2 sets × 2 families × 2 directions), units (2 families ×
        // 2 directions), the default class.
        assert_eq!(rules, 8 + 4 + 1, "{}", plan.nft);
        assert!(plan
            .nft
            .contains("10.100.0.0/28 : 1:10, 10.100.0.16/28 : 1:11,"));
        assert!(plan.nft.contains(", 10.100.31.48/28 : 1:203 }"));
        assert_eq!(plan.nft.matches(" : 1:").count(), 500);
    }

    #[test]
    fn overlapping_unit_subnets_go_to_the_first_unit() {
        let net = |s: &str| parse_cidr(s).unwrap();
        let rates = DirectionRates {
            download: Rates {
                rate_bps: 1,
                ceil_bps: 1,
            },
            upload: Rates {
                rate_bps: 1,
                ceil_bps: 1,
            },
        };
        let units = vec![
            ("a", vec![net("10.1.2.0/24"), net("fd00::/64")], rates),
            ("b", vec![net("10.1.0.0/16"), net("10.1.2.7/32")], rates),
            ("c", vec![net("0.0.0.0/0"), net("::/0")], rates),
        ];
        let (v4, v6) = unit_classes(&units);
        assert_eq!(
            v4,
            [
                "10.1.2.0/24 : 1:10",
                "10.1.0.0/23 : 1:11",
                "10.1.3.0/24 : 1:11",
                "10.1.4.0/22 : 1:11",
                "10.1.8.0/21 : 1:11",
                "10.1.16.0/20 : 1:11",
                "10.1.32.0/19 : 1:11",
                "10.1.64.0/18 : 1:11",
                "10.1.128.0/17 : 1:11",
                "0.0.0.0/5 : 1:12",
                "8.0.0.0/7 : 1:12",
                "10.0.0.0/16 : 1:12",
                "10.2.0.0/15 : 1:12",
                "10.4.0.0/14 : 1:12",
                "10.8.0.0/13 : 1:12",
                "10.16.0.0/12 : 1:12",
                "10.32.0.0/11 : 1:12",
                "10.64.0.0/10 : 1:12",
                "10.128.0.0/9 : 1:12",
                "11.0.0.0/8 : 1:12",
                "12.0.0.0/6 : 1:12",
                "16.0.0.0/4 : 1:12",
                "32.0.0.0/3 : 1:12",
                "64.0.0.0/2 : 1:12",
                "128.0.0.0/1 : 1:12",
            ]
        );
        assert_eq!(v6[0], "fd00::/64 : 1:10");
        assert_eq!(v6[1], "::/1 : 1:12");
        assert!(v6.contains(&"fd00:0:0:1::/64 : 1:12".to_string()), "{v6:?}");
        assert_eq!(v6.last().unwrap(), "fe00::/7 : 1:12");
        // Together the blocks cover the whole space once: 2^128 addresses,
        // 0 in u128 arithmetic.
        let total = v6.iter().fold(0u128, |sum, e| {
            let len: u32 = e.split(['/', ' ']).nth(1).unwrap().parse().unwrap();
            sum.wrapping_add(1u128 << (128 - len))
        });
        assert_eq!(total, 0, "{v6:?}");
    }

    #[test]
    fn pfifo_leaves_hold_100_ms_at_the_ceil() {
        // 1 Mbit/s: 8 full frames (97 ms), not 128 (1.5 s).
        assert_eq!(pfifo_limit(1_000_000), 8);
        assert_eq!(pfifo_limit(10_000_000), 82);
        assert_eq!(pfifo_limit(100_000_000), 825);
        assert_eq!(pfifo_limit(1_000_000_000), 8256);
        // A slow class still holds a few packets; the exempt class's
        // 10 Gbit/s is capped.
        assert_eq!(pfifo_limit(64_000), LEAF_MIN_PACKETS);
        assert_eq!(pfifo_limit(EXEMPT_RATE_BPS), LEAF_MAX_PACKETS);
        assert_eq!(pfifo_limit(u64::MAX), LEAF_MAX_PACKETS);
        for ceil in [1_000_000u64, 10_000_000, 100_000_000, 1_000_000_000] {
            let ms = pfifo_limit(ceil) as f64 * MTU_FRAME as f64 * 8.0 / ceil as f64 * 1000.0;
            assert!((90.0..=100.0).contains(&ms), "{ceil}: {ms} ms");
        }
        let (p, i) = inputs();
        let tc = plan(&p, &i, datetime!(2026-11-28 03:00 UTC), LeafQdisc::Pfifo)
            .unwrap()
            .tc;
        // Unit a's download ceil is 40 Mbit/s, its upload ceil 20.
        assert!(
            tc.contains("qdisc add dev lan0 parent 1:10 handle 10: pfifo limit 330\n"),
            "{tc}"
        );
        assert!(
            tc.contains("qdisc add dev wan0 parent 1:10 handle 10: pfifo limit 165\n"),
            "{tc}"
        );
        assert!(
            tc.contains("qdisc add dev lan0 parent 1:2 handle 2: pfifo limit 10000\n"),
            "{tc}"
        );
    }

    #[test]
    fn dns_redirect_goes_to_the_listen_address_in_its_own_table() {
        let (p, mut i) = inputs();
        let at = datetime!(2026-11-28 03:00 UTC);
        let nft = |i: &Inputs| plan(&p, i, at, LeafQdisc::Pfifo).unwrap().nft;
        let text = nft(&i);
        assert!(
            !text.contains("dnat") && !text.contains("redirect to"),
            "no responder, no redirect: {text}"
        );
        assert!(
            text.ends_with("}\ntable inet simpul_dns\ndelete table inet simpul_dns\n"),
            "a redirect configured before is removed: {text}"
        );
        i.target.dns_redirect = Some(DnsRedirect {
            v4: Some("10.1.1.1:53".parse().unwrap()),
            v6: Some("[fd00:1::1]:53".parse().unwrap()),
        });
        let text = nft(&i);
        let own = text.find("add table inet simpul_dns\n").expect("DNS table");
        // After the policy table's closing brace: not rebuilt with it.
        assert!(text[..own].ends_with("\t}\n}\n"), "{text}");
        assert!(
            text[own..].contains("iifname \"lan0\" iifname @live meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 counter dnat ip to 10.1.1.1:53"),
            "{text}"
        );
        assert!(
            text[own..].contains("meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter dnat ip6 to [fd00:1::1]:53"),
            "{text}"
        );
        assert!(!text[own..].contains("delete"), "{text}");
    }

    #[test]
    fn intranet_destinations_are_never_blocked() {
        let (p, i) = inputs();
        let nft = plan(&p, &i, datetime!(2026-11-28 03:00 UTC), LeafQdisc::Pfifo)
            .unwrap()
            .nft;
        let intranet = nft
            .find("iifname \"lan0\" ip daddr @intranet4 accept")
            .expect("intranet accepted");
        for rule in [
            "tcp dport @tcp_blocked",
            "th dport 853",
            "@blocked4",
            "@suspended4 ip daddr",
        ] {
            let at = nft.find(rule).unwrap_or_else(|| panic!("{rule}: {nft}"));
            assert!(intranet < at, "{rule} before the intranet exception: {nft}");
        }
    }

    fn plan_at(p: &Policy, i: &Inputs, now: OffsetDateTime) -> Plan {
        plan(p, i, now, LeafQdisc::FqCodel).unwrap()
    }

    #[test]
    fn schedule_changes_the_rates_and_the_plan() {
        let (p, cfg) = inputs();
        // Friday 09:00 WIB = 02:00 UTC.
        let office = plan_at(&p, &cfg, datetime!(2026-11-27 02:00 UTC));
        let evening = plan_at(&p, &cfg, datetime!(2026-11-27 12:00 UTC));
        assert_eq!(office.schedule.as_deref(), Some("kantor"));
        assert!(office
            .tc
            .contains("class add dev lan0 parent 1: classid 1:1 htb rate 20000000bit"));
        assert!(office.tc.contains("classid 1:11 htb rate 10000000bit"));
        assert!(evening.tc.contains("classid 1:11 htb rate 20000000bit"));
        assert!(!office.same_state(&evening));
        // Same inputs, same scripts.
        assert!(evening.same_state(&plan_at(&p, &cfg, datetime!(2026-11-27 12:30 UTC))));
    }

    #[test]
    fn agency_suspension_keeps_intranet() {
        let (mut p, cfg) = inputs();
        p.suspension.agency = true;
        p.suspension.until = None;
        let suspended = plan_at(&p, &cfg, datetime!(2026-11-28 03:00 UTC));
        assert!(
            suspended
                .nft
                .contains("iifname \"lan0\" ip daddr != @intranet4 counter reject"),
            "{}",
            suspended.nft
        );
        p.agency = "bappeda".into();
        assert!(matches!(
            plan(&p, &cfg, datetime!(2026-11-28 03:00 UTC), LeafQdisc::Pfifo),
            Err(PlanError::OtherAgency { .. })
        ));
    }
}

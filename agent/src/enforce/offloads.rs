//! Receive and segmentation offloads on the shaped interfaces.
//!
//! With GRO (or LRO) on, the router's NIC merges a flow's frames into
//! packets of up to 64 KiB before they are forwarded, and HTB queues and
//! charges each as one: at 1 Mbit/s one such packet is half a second of the
//! class's rate, four times its burst, so a class sends in lumps instead of
//! at its rate, and a leaf queue counted in packets holds seconds instead
//! of its 100 ms. With GRO off every forwarded packet is a wire frame, but
//! the router forwards and classifies every frame: at 1 Gbit/s that costs
//! more than the lumps (BENCHMARKS.md, "Shaping accuracy": off misses ±1 %
//! at 1000 Mbit/s, kept misses it at 1 Mbit/s).
//!
//! So by default (`[enforce] offloads = "auto"`) the merging offloads are
//! off only while a tree has a class too slow for them: one whose HTB burst
//! (10 ms at its rate, [`plan::burst_bytes`]) is smaller than a merged
//! packet ([`threshold_bps`], about 52 Mbit/s). The rate, not the ceil,
//! decides: a class borrowing up to its ceil is charged against the ceil's
//! burst, which is larger, but when its siblings are busy it gets only its
//! rate, and that is where a merged packet overdraws it. The receive
//! offloads that feed a tree are on the *other* interface (download enters
//! on `wan` and is shaped on `lan`'s egress; upload the reverse), the
//! segmentation offloads (the router's own traffic) on the tree's own.
//! The agent turns back on exactly what it turned off once no class needs
//! it, never what the admin had off. `"off"` turns them off on both
//! interfaces whatever the rates, `"keep"` leaves them alone.

use std::collections::{BTreeMap, BTreeSet};

use simpul_core::enforce::plan::{self, EnforceTarget, Plan};

use super::apply::{self, CommandError};

/// Receive offloads: they merge the frames arriving on an interface, which
/// the *other* interface's tree then shapes.
pub const RX: [&str; 3] = [
    "generic-receive-offload",
    "large-receive-offload",
    "rx-gro-hw",
];
/// Segmentation offloads: the router's own traffic reaches the
/// interface's own tree as 64 KiB packets.
pub const TX: [&str; 2] = ["tcp-segmentation-offload", "generic-segmentation-offload"];

/// The features turned off, as `ethtool -k` names them.
pub const FEATURES: [&str; 5] = [RX[0], RX[1], RX[2], TX[0], TX[1]];

/// The largest packet GRO/GSO build, as HTB charges it: a 64 KiB IP packet
/// and its Ethernet header.
pub const SUPER_PACKET_BYTES: u64 = 65_536 + 14;

/// The lowest rate whose HTB burst ([`plan::burst_bytes`]) holds a merged
/// packet: 52.44 Mbit/s with a burst of 10 ms. Searched rather than
/// inverted so that it follows the plan's burst sizing if that changes.
pub fn threshold_bps() -> u64 {
    let (mut lo, mut hi) = (1u64, 1_000_000_000_000u64);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if plan::burst_bytes(mid) >= SUPER_PACKET_BYTES {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The class that makes a tree need the merging offloads off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowClass {
    /// The tree: "download" (`lan`'s) or "upload" (`wan`'s).
    pub direction: &'static str,
    pub classid: String,
    pub name: String,
    pub rate_bps: u64,
}

/// The slowest class of one tree (download: `lan`'s, upload: `wan`'s)
/// whose rate is below `threshold`, if any.
///
/// The agency's and the units' classes count, not the class of the
/// agency's other hosts: its rate is not allocated but what the units
/// leave, at least 1 % of the agency's, so an agency that allocates all of
/// a 1 Gbit/s to units has it at 10 Mbit/s, and counting it would keep
/// the offloads off, and its units below ±1 %, at every rate. Those hosts
/// still get their share, only in lumps while the units are busy.
pub fn slow_class(plan: &Plan, download: bool, threshold: u64) -> Option<SlowClass> {
    let other_hosts = format!("1:{:x}", plan::DEFAULT_MINOR);
    plan.classes
        .iter()
        .filter(|c| c.classid != other_hosts)
        .map(|c| {
            let r = if download { c.download } else { c.upload };
            (c, r.rate_bps.min(r.ceil_bps))
        })
        .filter(|(_, rate)| *rate < threshold)
        .min_by_key(|(_, rate)| *rate)
        .map(|(c, rate)| SlowClass {
            direction: if download { "download" } else { "upload" },
            classid: c.classid.clone(),
            name: c.name.clone(),
            rate_bps: rate,
        })
}

/// Per interface, the features that must be off and the class each is off
/// for (`lan` first, then `wan`).
pub type Wanted = [(String, BTreeMap<&'static str, SlowClass>); 2];

/// What `auto` wants of the two interfaces for `plan`.
pub fn wanted(plan: &Plan, target: &EnforceTarget, threshold: u64) -> Wanted {
    let down = slow_class(plan, true, threshold);
    let up = slow_class(plan, false, threshold);
    let features = |rx_for: &Option<SlowClass>, tx_for: &Option<SlowClass>| {
        let mut m = BTreeMap::new();
        if let Some(c) = rx_for {
            m.extend(RX.map(|f| (f, c.clone())));
        }
        if let Some(c) = tx_for {
            m.extend(TX.map(|f| (f, c.clone())));
        }
        m
    };
    [
        (target.lan.clone(), features(&up, &down)),
        (target.wan.clone(), features(&down, &up)),
    ]
}

/// One interface's change: what to turn off and on, and what the agent
/// has then turned off there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub off: Vec<&'static str>,
    pub on: Vec<&'static str>,
    pub ours: BTreeSet<&'static str>,
}

/// From the features that must be off, those now on and changeable
/// ([`enabled`]) and those the agent turned off before: turn off what must
/// be and is on; turn on only what the agent turned off and no longer
/// must be (a feature the admin had off is never the agent's).
pub fn step(
    must_be_off: &BTreeSet<&'static str>,
    on_now: &[&'static str],
    ours: &BTreeSet<&'static str>,
) -> Step {
    let off: Vec<&'static str> = on_now
        .iter()
        .copied()
        .filter(|f| must_be_off.contains(f))
        .collect();
    let on: Vec<&'static str> = ours.difference(must_be_off).copied().collect();
    let ours = ours
        .intersection(must_be_off)
        .copied()
        .chain(off.iter().copied())
        .collect();
    Step { off, on, ours }
}

/// The features of [`FEATURES`] that `ethtool -k DEV`'s listing shows on
/// and changeable (not `[fixed]`).
pub fn enabled(listing: &str) -> Vec<&'static str> {
    FEATURES
        .into_iter()
        .filter(|f| {
            listing.lines().any(|l| {
                l.strip_prefix(f)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|v| {
                        let v = v.trim();
                        v.starts_with("on") && !v.contains("[fixed]")
                    })
            })
        })
        .collect()
}

/// Turn [`FEATURES`] off on `dev`; the ones that were on (none: nothing
/// was run but the listing).
pub fn turn_off(dev: &str) -> Result<Vec<&'static str>, CommandError> {
    let on = enabled(&apply::ethtool(&["-k", dev])?);
    if !on.is_empty() {
        let mut args = vec!["-K", dev];
        for f in &on {
            args.extend([*f, "off"]);
        }
        apply::ethtool(&args)?;
    }
    Ok(on)
}

/// `ethtool -K dev f on|off …`.
fn set(dev: &str, features: &[&'static str], state: &str) -> Result<(), CommandError> {
    let mut args = vec!["-K", dev];
    for f in features {
        args.extend([*f, state]);
    }
    apply::ethtool(&args).map(|_| ())
}

/// `auto`: what the agent turned off, per interface, and what the last
/// plan wanted (no `ethtool` run while that stays the same).
///
/// Not restored when the agent stops: the trees and the plan's rates stay
/// in the kernel and keep shaping without the agent, and they shape
/// evenly only with the merged packets kept out. A restart does not know
/// what its predecessor turned off, so it leaves those features off even
/// when no class needs them any more (never wrong, only dearer at high
/// rates); the admin turns them back on with `ethtool -K`.
#[derive(Debug, Default)]
pub struct Auto {
    ours: BTreeMap<String, BTreeSet<&'static str>>,
    last: Option<Vec<(String, BTreeSet<&'static str>)>>,
}

impl Auto {
    /// Bring both interfaces to what `plan` wants; `force` re-reads them
    /// even when the plan wants what the last one did (after a rebuild).
    /// Failures are logged, never fatal (the trees still shape, only less
    /// evenly at low rates).
    pub fn apply(&mut self, plan: &Plan, target: &EnforceTarget, force: bool) {
        let threshold = threshold_bps();
        let wanted = wanted(plan, target, threshold);
        let sets: Vec<(String, BTreeSet<&'static str>)> = wanted
            .iter()
            .map(|(d, m)| (d.clone(), m.keys().copied().collect()))
            .collect();
        if !force && self.last.as_ref() == Some(&sets) {
            return;
        }
        let mut all_done = true;
        for ((dev, why), (_, must)) in wanted.iter().zip(&sets) {
            let ours = self.ours.get(dev).cloned().unwrap_or_default();
            if must.is_empty() && ours.is_empty() {
                continue;
            }
            let listing = match apply::ethtool(&["-k", dev]) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(device = %dev, error = %e, "cannot read the offloads of a shaped interface");
                    all_done = false;
                    continue;
                }
            };
            let s = step(must, &enabled(&listing), &ours);
            let mut now_ours = s.ours.clone();
            if !s.off.is_empty() {
                match set(dev, &s.off, "off") {
                    Ok(()) => {
                        for f in &s.off {
                            let c = &why[f];
                            tracing::info!(
                                device = %dev,
                                turned_off = %f,
                                direction = c.direction,
                                class = %c.classid,
                                class_name = %c.name,
                                class_rate_bps = c.rate_bps,
                                threshold_bps = threshold,
                                "offload turned off on a shaped interface: the class's rate is below the threshold where its HTB burst (10 ms) holds a 64 KiB merged packet, which would make it send in lumps"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(device = %dev, features = %s.off.join(","), error = %e, "cannot turn offloads off: merged 64 KiB packets may make the low rates lumpy");
                        for f in &s.off {
                            now_ours.remove(f);
                        }
                        all_done = false;
                    }
                }
            }
            if !s.on.is_empty() {
                match set(dev, &s.on, "on") {
                    Ok(()) => tracing::info!(
                        device = %dev,
                        turned_on = %s.on.join(","),
                        threshold_bps = threshold,
                        "offloads the agent had turned off turned back on: no class they feed is below the threshold any more"
                    ),
                    Err(e) => {
                        tracing::warn!(device = %dev, features = %s.on.join(","), error = %e, "cannot turn offloads back on");
                        now_ours.extend(s.on.iter().copied());
                        all_done = false;
                    }
                }
            }
            self.ours.insert(dev.clone(), now_ours);
        }
        // A failure is retried with the next plan.
        self.last = all_done.then_some(sets);
    }
}

/// Turn the offloads off on both shaped interfaces, logging what was
/// changed and why; a failure is logged, never fatal (the trees still
/// shape, only less evenly at low rates).
pub fn shaped_interfaces(target: &EnforceTarget) {
    for dev in [&target.lan, &target.wan] {
        match turn_off(dev) {
            Ok(on) if on.is_empty() => {
                tracing::debug!(device = %dev, "offloads already off");
            }
            Ok(on) => tracing::info!(
                device = %dev,
                turned_off = %on.join(","),
                "offloads turned off on a shaped interface ([enforce] offloads = \"off\"): merged 64 KiB packets make HTB send in lumps at low rates"
            ),
            Err(e) => tracing::warn!(
                device = %dev,
                error = %e,
                "cannot turn GRO/GSO/TSO off on a shaped interface: merged 64 KiB packets may make the low rates lumpy"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_core::enforce::plan::ClassPlan;
    use simpul_proto::policy::Rates;

    const M: u64 = 1_000_000;

    fn rates(rate_bps: u64, ceil_bps: u64) -> Rates {
        Rates { rate_bps, ceil_bps }
    }

    /// The agency class and one unit: (download rate, ceil), (upload rate, ceil).
    fn plan_with(down: (u64, u64), up: (u64, u64)) -> Plan {
        let class = |id: &str, name: &str, d: (u64, u64), u: (u64, u64)| ClassPlan {
            classid: id.into(),
            name: name.into(),
            download: rates(d.0, d.1),
            upload: rates(u.0, u.1),
        };
        Plan {
            policy_version: 1,
            schedule: None,
            agency_suspended: false,
            suspended_units: Vec::new(),
            classes: vec![
                class(
                    "1:1",
                    "agency x",
                    (1000 * M, 1000 * M),
                    (1000 * M, 1000 * M),
                ),
                class("1:10", "unit a", down, up),
                class(
                    "1:fff",
                    "other hosts of the agency",
                    (500 * M, 1000 * M),
                    (500 * M, 1000 * M),
                ),
            ],
            nft: String::new(),
            tc: String::new(),
        }
    }

    fn target() -> EnforceTarget {
        EnforceTarget {
            lan: "lan0".into(),
            wan: "wan0".into(),
            always_allow: Vec::new(),
            dns_redirect: None,
        }
    }

    fn names(w: &Wanted) -> [(String, Vec<&'static str>); 2] {
        w.clone().map(|(d, m)| (d, m.into_keys().collect()))
    }

    #[test]
    fn the_threshold_is_where_the_burst_holds_a_merged_packet() {
        let t = threshold_bps();
        assert!(plan::burst_bytes(t) >= SUPER_PACKET_BYTES);
        assert!(plan::burst_bytes(t - 1) < SUPER_PACKET_BYTES);
        // 10 ms at the rate: 65,550 bytes × 800.
        assert_eq!(t, 52_440_000);
    }

    #[test]
    fn a_slow_class_needs_the_offloads_that_feed_its_tree_off() {
        let t = threshold_bps();
        // Every class at or above the threshold: nothing.
        let fast = plan_with((t, 100 * M), (t, t));
        assert!(wanted(&fast, &target(), t)
            .iter()
            .all(|(_, m)| m.is_empty()));
        // A slow download class (rate 1 Mbit/s, ceil 100): GRO etc. off on
        // wan0 (where download enters), TSO/GSO on lan0 (its tree); the
        // ceil does not make it fast.
        let slow_down = plan_with((M, 100 * M), (t, t));
        let w = wanted(&slow_down, &target(), t);
        let mut rx = RX.to_vec();
        rx.sort();
        let mut tx = TX.to_vec();
        tx.sort();
        assert_eq!(
            names(&w),
            [
                ("lan0".to_string(), tx.clone()),
                ("wan0".to_string(), rx.clone())
            ]
        );
        let c = &w[1].1["generic-receive-offload"];
        assert_eq!((c.classid.as_str(), c.rate_bps), ("1:10", M));
        // Slow both ways: everything off on both.
        let w = wanted(&plan_with((M, M), (10 * M, 10 * M)), &target(), t);
        let mut all = FEATURES.to_vec();
        all.sort();
        assert_eq!(
            names(&w),
            [("lan0".to_string(), all.clone()), ("wan0".to_string(), all)]
        );
        // The slowest class is the one named.
        assert_eq!(w[0].1["generic-receive-offload"].rate_bps, 10 * M);
        assert_eq!(w[0].1["tcp-segmentation-offload"].rate_bps, M);
        // The other hosts' class is not counted, however slow.
        let mut p = plan_with((t, t), (t, t));
        p.classes[2].download = rates(10 * M, 1000 * M);
        p.classes[2].upload = rates(8_000, 1000 * M);
        assert!(wanted(&p, &target(), t).iter().all(|(_, m)| m.is_empty()));
        // Just below the threshold counts as slow.
        let w = wanted(&plan_with((t - 1, t), (t, t)), &target(), t);
        assert_eq!(w[1].1.len(), 3);
    }

    fn set_of(f: &[&'static str]) -> BTreeSet<&'static str> {
        f.iter().copied().collect()
    }

    #[test]
    fn only_what_the_agent_turned_off_is_turned_back_on() {
        let gro = "generic-receive-offload";
        let hw = "rx-gro-hw";
        let (tso, gso) = (TX[0], TX[1]);
        // Needed off; the admin had TSO off already: GRO and GSO are ours.
        let s = step(&set_of(&FEATURES), &[gro, gso], &BTreeSet::new());
        assert_eq!(s.off, [gro, gso]);
        assert!(s.on.is_empty());
        assert_eq!(s.ours, set_of(&[gro, gso]));
        // Asked again (a rebuild): nothing is on, nothing to do, still ours.
        let s = step(&set_of(&FEATURES), &[], &s.ours);
        assert!(s.off.is_empty() && s.on.is_empty());
        assert_eq!(s.ours, set_of(&[gro, gso]));
        // No longer needed: exactly GRO and GSO back on, never TSO or
        // rx-gro-hw, which the admin had off.
        let s = step(&BTreeSet::new(), &[], &s.ours);
        assert_eq!(s.on, [gro, gso]);
        assert!(s.off.is_empty() && s.ours.is_empty());
        assert!(!s.on.contains(&tso) && !s.on.contains(&hw));
        // Then nothing more.
        let s = step(&BTreeSet::new(), &[gro, gso], &s.ours);
        assert!(s.off.is_empty() && s.on.is_empty() && s.ours.is_empty());
        // Only the receive side still needed: the segmentation ones the
        // agent turned off come back, GRO stays off and stays ours.
        let s = step(&set_of(&RX), &[], &set_of(&[gro, tso, gso]));
        assert_eq!(s.on, [gso, tso]);
        assert_eq!(s.ours, set_of(&[gro]));
    }

    #[test]
    fn only_changeable_features_that_are_on() {
        // `ethtool -k` of a veth (ethtool 6.1), GRO turned on.
        let veth = "Features for v0:
rx-checksumming: on
tcp-segmentation-offload: on
\ttx-tcp-segmentation: on
generic-segmentation-offload: on
generic-receive-offload: on
large-receive-offload: off [fixed]
rx-gro-hw: off [fixed]
rx-gro-list: off
";
        assert_eq!(
            enabled(veth),
            [
                "generic-receive-offload",
                "tcp-segmentation-offload",
                "generic-segmentation-offload"
            ]
        );
        // A NIC with hardware GRO, and one whose LRO cannot be changed.
        let nic = "generic-receive-offload: off
large-receive-offload: on [fixed]
rx-gro-hw: on
tcp-segmentation-offload: off
generic-segmentation-offload: off [requested on]
";
        assert_eq!(enabled(nic), ["rx-gro-hw"]);
        assert!(enabled("").is_empty());
        assert!(enabled("generic-receive-offload-x: on\n").is_empty());
    }
}

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
//!
//! What the agent turned off is kept in its state directory ([`Ledger`],
//! [`STATE_FILE`]), so a restarted agent still knows which features were
//! the router's own and which were its doing: `auto` turns its
//! predecessor's back on when no class needs them, and `keep` gives the
//! router back everything any earlier run turned off, rather than taking
//! the agent's own change for the router's setting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// The file in `[agent] state_dir` that [`Ledger`] keeps.
pub const STATE_FILE: &str = "offloads-turned-off.json";

/// What the agent turned off, per interface, as the state file holds it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct LedgerFile {
    turned_off: BTreeMap<String, BTreeSet<String>>,
}

/// The features the agent (this run or an earlier one) turned off, per
/// interface, kept on disk (written whole, see [`crate::state_files`])
/// whenever it changes. Without a path (one-off tools, tests) it lives in
/// memory only.
///
/// Not restored when the agent stops: the trees and the plan's rates stay
/// in the kernel and keep shaping without the agent, and they shape
/// evenly only with the merged packets kept out. The next run reads the
/// file and turns them back on when they are no longer needed (`auto`) or
/// at once (`keep`).
#[derive(Debug, Default)]
pub struct Ledger {
    path: Option<PathBuf>,
    turned_off: BTreeMap<String, BTreeSet<&'static str>>,
}

impl Ledger {
    /// What earlier runs left in `path`. A missing file is an empty
    /// ledger; an unreadable one is logged and taken as empty (its
    /// features then stay off until the admin turns them on: dearer at
    /// high rates, never wrong).
    pub fn load(path: &Path) -> Ledger {
        let file: LedgerFile = match crate::state_files::read_json(path) {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read which offloads an earlier run turned off; they stay as they are (turn them on with ethtool -K if no slow class needs them off)");
                LedgerFile::default()
            }
        };
        let mut turned_off = BTreeMap::new();
        for (dev, names) in file.turned_off {
            let known: BTreeSet<&'static str> = names
                .iter()
                .filter_map(|n| FEATURES.into_iter().find(|f| f == n))
                .collect();
            if known.len() != names.len() {
                tracing::warn!(device = %dev, file = %path.display(), "unknown offload names in the state file ignored");
            }
            if !known.is_empty() {
                turned_off.insert(dev, known);
            }
        }
        if !turned_off.is_empty() {
            tracing::info!(file = %path.display(), turned_off = ?turned_off, "offloads an earlier run turned off");
        }
        Ledger {
            path: Some(path.to_path_buf()),
            turned_off,
        }
    }

    /// What the agent turned off on `dev`.
    pub fn get(&self, dev: &str) -> BTreeSet<&'static str> {
        self.turned_off.get(dev).cloned().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.turned_off.is_empty()
    }

    /// Record that the agent has `features` off on `dev` (written at once
    /// when that changes).
    pub fn set(&mut self, dev: &str, features: BTreeSet<&'static str>) {
        if self.get(dev) == features {
            return;
        }
        if features.is_empty() {
            self.turned_off.remove(dev);
        } else {
            self.turned_off.insert(dev.to_string(), features);
        }
        self.save();
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let file = LedgerFile {
            turned_off: self
                .turned_off
                .iter()
                .map(|(d, f)| (d.clone(), f.iter().map(|s| s.to_string()).collect()))
                .collect(),
        };
        if let Err(e) = crate::state_files::write_json(path, &file) {
            tracing::warn!(error = %e, "cannot record which offloads the agent turned off: after a restart they stay off until the admin turns them on");
        }
    }

    /// `keep`: turn back on everything the agent turned off (this run or
    /// an earlier one), so the router has its own settings again.
    pub fn restore(&mut self) {
        let devs: Vec<String> = self.turned_off.keys().cloned().collect();
        for dev in devs {
            let features: Vec<&'static str> = self.get(&dev).into_iter().collect();
            match set(&dev, &features, "on") {
                Ok(()) => {
                    tracing::info!(device = %dev, turned_on = %features.join(","), "offloads an earlier run turned off turned back on ([enforce] offloads = \"keep\"): the router's own settings again");
                    self.set(&dev, BTreeSet::new());
                }
                Err(e) => {
                    tracing::warn!(device = %dev, features = %features.join(","), error = %e, "cannot turn back on the offloads an earlier run turned off")
                }
            }
        }
    }
}

/// `auto`: what the agent turned off, per interface ([`Ledger`]), and what
/// the last plan wanted (no `ethtool` run while that stays the same).
#[derive(Debug, Default)]
pub struct Auto {
    ours: Ledger,
    last: Option<Vec<(String, BTreeSet<&'static str>)>>,
}

impl Auto {
    /// Starting from what earlier runs turned off.
    pub fn with_ledger(ours: Ledger) -> Auto {
        Auto { ours, last: None }
    }

    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ours
    }

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
            let ours = self.ours.get(dev);
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
            self.ours.set(dev, now_ours);
        }
        // A failure is retried with the next plan.
        self.last = all_done.then_some(sets);
    }
}

/// Turn the offloads off on both shaped interfaces, logging what was
/// changed and why and recording it in `ours`; a failure is logged, never
/// fatal (the trees still shape, only less evenly at low rates).
pub fn shaped_interfaces(target: &EnforceTarget, ours: &mut Ledger) {
    for dev in [&target.lan, &target.wan] {
        match turn_off(dev) {
            Ok(on) if on.is_empty() => {
                tracing::debug!(device = %dev, "offloads already off");
            }
            Ok(on) => {
                tracing::info!(
                    device = %dev,
                    turned_off = %on.join(","),
                    "offloads turned off on a shaped interface ([enforce] offloads = \"off\"): merged 64 KiB packets make HTB send in lumps at low rates"
                );
                let mut all = ours.get(dev);
                all.extend(on);
                ours.set(dev, all);
            }
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
    fn a_restart_knows_what_an_earlier_run_turned_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state").join(STATE_FILE);
        let (gro, gso) = ("generic-receive-offload", TX[1]);
        // Nothing yet: an empty ledger, no file written for it.
        let mut first = Ledger::load(&path);
        assert!(first.is_empty());
        first.set("lan0", set_of(&[gro, gso]));
        first.set("wan0", set_of(&[gro]));
        // A later run reads it back.
        let mut second = Ledger::load(&path);
        assert_eq!(second.get("lan0"), set_of(&[gro, gso]));
        assert_eq!(second.get("wan0"), set_of(&[gro]));
        assert!(second.get("eth9").is_empty());
        // With no class slow any more, exactly what the first run turned
        // off comes back on, though this run turned nothing off.
        let s = step(&BTreeSet::new(), &[], &second.get("lan0"));
        assert_eq!(s.on, [gro, gso]);
        second.set("lan0", s.ours);
        second.set("wan0", BTreeSet::new());
        assert!(Ledger::load(&path).is_empty());
        let text = std::fs::read_to_string(&path).expect("state file");
        assert!(!text.contains(gro), "{text}");
        // Unknown names (a newer agent's file) and a garbled file are
        // ignored, not fatal.
        std::fs::write(
            &path,
            r#"{"turned_off":{"lan0":["generic-receive-offload","ntuple-filters"]}}"#,
        )
        .expect("write");
        assert_eq!(Ledger::load(&path).get("lan0"), set_of(&[gro]));
        std::fs::write(&path, "{not json").expect("write");
        assert!(Ledger::load(&path).is_empty());
        // In memory only: nothing is written.
        let mut mem = Ledger::default();
        mem.set("lan0", set_of(&[gro]));
        assert_eq!(mem.get("lan0"), set_of(&[gro]));
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

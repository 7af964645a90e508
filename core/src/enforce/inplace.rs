//! Changing the HTB trees in place when only rates changed.
//!
//! A [`Plan`]'s tc batch rebuilds both trees whole (see [`super::plan`]),
//! which resets every class's counters, drops the packets queued in them and
//! leaves traffic unshaped for the milliseconds the batch takes. When the
//! new plan builds the same trees as the one in force and differs only in
//! rate-dependent values (a schedule window, an allocation), the same end
//! state is reached with `tc class change` (and `tc qdisc change` for a leaf
//! whose parameters follow the ceil) on the existing objects.
//!
//! The structure is compared on the batch text itself: every line with its
//! rate-dependent values blanked ([`RATE_KEYS_CLASS`], [`RATE_KEYS_LEAF`])
//! must be equal, in order. Devices, handles, class ids, parents, the HTB
//! default, leaf kinds and their other arguments are therefore all the same,
//! and a change line carries the new line's complete parameters: applying it
//! leaves what the full rebuild would leave, with the counters kept.
//!
//! When the state in force is not known (a one-shot `policy apply`, an agent
//! that just started), [`kernel_matches`] checks the kernel's own listing
//! of the trees (`tc qdisc show`, `tc class show`) against the structure the
//! new plan builds, and [`all_rate_changes`] then sets every rate-dependent
//! value (their values in the kernel are not compared).

use std::collections::BTreeSet;

use super::plan::Plan;

/// Values of a `class add … htb` line that follow the rates.
pub const RATE_KEYS_CLASS: [&str; 5] = ["rate", "ceil", "burst", "cburst", "quantum"];
/// Values of a leaf `qdisc add` line that follow the rates (pfifo's limit
/// is sized from the class's ceil).
pub const RATE_KEYS_LEAF: [&str; 1] = ["limit"];

/// What kind of batch line, by its first two words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Class,
    Leaf,
    Other,
}

fn kind_of(tokens: &[&str]) -> LineKind {
    match tokens {
        ["class", "add", ..] => LineKind::Class,
        // A leaf: added under a parent class (the roots are `replace`d).
        ["qdisc", "add", "dev", _, "parent", ..] => LineKind::Leaf,
        _ => LineKind::Other,
    }
}

/// The line with the values of its rate-dependent keys blanked.
fn shape(tokens: &[&str]) -> Vec<String> {
    let keys: &[&str] = match kind_of(tokens) {
        LineKind::Class => &RATE_KEYS_CLASS,
        LineKind::Leaf => &RATE_KEYS_LEAF,
        LineKind::Other => &[],
    };
    let mut out = Vec::with_capacity(tokens.len());
    let mut blank_next = false;
    for t in tokens {
        if blank_next {
            out.push("_".to_string());
            blank_next = false;
        } else {
            blank_next = keys.contains(t);
            out.push((*t).to_string());
        }
    }
    out
}

/// The line that sets a class's or leaf's rate-dependent values in place
/// (None for lines that have none).
fn change_line(tokens: &[&str]) -> Option<String> {
    let rest = tokens.get(2..)?.join(" ");
    match kind_of(tokens) {
        LineKind::Class => Some(format!("class change {rest}")),
        LineKind::Leaf if tokens.iter().any(|t| RATE_KEYS_LEAF.contains(t)) => {
            Some(format!("qdisc change {rest}"))
        }
        _ => None,
    }
}

fn lines(tc: &str) -> impl Iterator<Item = Vec<&str>> {
    tc.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|t| !t.is_empty())
}

/// The tc batch that turns `prev`'s trees into `new`'s in place: one change
/// line per class or leaf whose values differ (empty: nothing to change).
/// None when the trees differ in anything but rate-dependent values: then
/// only the full rebuild (`new.tc`) gives the new state.
pub fn rate_changes(prev: &Plan, new: &Plan) -> Option<String> {
    let old: Vec<Vec<&str>> = lines(&prev.tc).collect();
    let new_lines: Vec<Vec<&str>> = lines(&new.tc).collect();
    if old.len() != new_lines.len() {
        return None;
    }
    let mut batch = String::new();
    for (o, n) in old.iter().zip(&new_lines) {
        if o == n {
            continue;
        }
        if shape(o) != shape(n) {
            return None;
        }
        // Same shape, different text: only rate-dependent values differ,
        // which only class and leaf lines have.
        batch.push_str(&change_line(n)?);
        batch.push('\n');
    }
    Some(batch)
}

/// Change lines for every class and every leaf with rate-dependent values
/// of `tc`: what makes a kernel tree of the same structure (see
/// [`kernel_matches`]) carry exactly `tc`'s values.
pub fn all_rate_changes(tc: &str) -> String {
    let mut batch = String::new();
    for l in lines(tc) {
        if let Some(c) = change_line(&l) {
            batch.push_str(&c);
            batch.push('\n');
        }
    }
    batch
}

/// The kernel's listing of one device's tc state, as `tc qdisc show dev
/// DEV` and `tc class show dev DEV` print it (without `-s` or `-d`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelTc {
    pub dev: String,
    pub qdiscs: String,
    pub classes: String,
}

/// One object of a tc tree, without its parameters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    /// The root qdisc: kind, handle, HTB default class (minor).
    Root {
        dev: String,
        kind: String,
        handle: String,
        default: Option<u32>,
    },
    Qdisc {
        dev: String,
        kind: String,
        handle: String,
        parent: String,
    },
    /// An HTB class; parent `M:` for a class at the top of the tree.
    Class {
        dev: String,
        classid: String,
        parent: String,
    },
}

fn value_after<'a>(tokens: &[&'a str], key: &str) -> Option<&'a str> {
    let i = tokens.iter().position(|t| *t == key)?;
    tokens.get(i + 1).copied()
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// The qdisc major of a handle or class id (`1:` of `1:10`).
fn major(id: &str) -> String {
    match id.split_once(':') {
        Some((m, _)) => format!("{m}:"),
        None => id.to_string(),
    }
}

/// The objects `tc` leaves on the devices it names (the last root
/// `replace` of a device wins).
fn plan_tree(tc: &str) -> Result<BTreeSet<Node>, String> {
    let mut roots: Vec<(String, Node)> = Vec::new();
    let mut nodes = BTreeSet::new();
    for t in lines(tc) {
        let dev = value_after(&t, "dev").ok_or("a tc line without a device")?;
        match t.as_slice() {
            ["qdisc", "replace", "dev", _, "root", "handle", handle, kind, ..] => {
                let root = Node::Root {
                    dev: dev.to_string(),
                    kind: (*kind).to_string(),
                    handle: (*handle).to_string(),
                    default: value_after(&t, "default").and_then(hex),
                };
                roots.retain(|(d, _)| d != dev);
                roots.push((dev.to_string(), root));
            }
            ["qdisc", "add", "dev", _, "parent", parent, "handle", handle, kind, ..] => {
                nodes.insert(Node::Qdisc {
                    dev: dev.to_string(),
                    kind: (*kind).to_string(),
                    handle: (*handle).to_string(),
                    parent: (*parent).to_string(),
                });
            }
            ["class", "add", "dev", _, "parent", parent, "classid", classid, "htb", ..] => {
                nodes.insert(Node::Class {
                    dev: dev.to_string(),
                    classid: (*classid).to_string(),
                    parent: (*parent).to_string(),
                });
            }
            _ => return Err(format!("unexpected tc line {:?}", t.join(" "))),
        }
    }
    nodes.extend(roots.into_iter().map(|(_, r)| r));
    Ok(nodes)
}

/// The objects the kernel lists for one device. Ingress and clsact qdiscs
/// (parent `ffff:fff1`) are not the agent's and a rebuild keeps them; the
/// classes of a leaf qdisc (its flows) are not HTB classes.
fn kernel_tree(k: &KernelTc) -> BTreeSet<Node> {
    let dev = k.dev.clone();
    let mut nodes = BTreeSet::new();
    for t in lines(&k.qdiscs) {
        match t.as_slice() {
            ["qdisc", kind, handle, "root", ..] => {
                nodes.insert(Node::Root {
                    dev: dev.clone(),
                    kind: (*kind).to_string(),
                    handle: (*handle).to_string(),
                    default: if *kind == "htb" {
                        value_after(&t, "default").and_then(hex)
                    } else {
                        None
                    },
                });
            }
            ["qdisc", _, _, "parent", "ffff:fff1", ..] => {}
            ["qdisc", kind, handle, "parent", parent, ..] => {
                nodes.insert(Node::Qdisc {
                    dev: dev.clone(),
                    kind: (*kind).to_string(),
                    handle: (*handle).to_string(),
                    parent: (*parent).to_string(),
                });
            }
            _ => {}
        }
    }
    for t in lines(&k.classes) {
        match t.as_slice() {
            ["class", "htb", classid, "root", ..] => {
                nodes.insert(Node::Class {
                    dev: dev.clone(),
                    classid: (*classid).to_string(),
                    parent: major(classid),
                });
            }
            ["class", "htb", classid, "parent", parent, ..] => {
                nodes.insert(Node::Class {
                    dev: dev.clone(),
                    classid: (*classid).to_string(),
                    parent: (*parent).to_string(),
                });
            }
            _ => {}
        }
    }
    nodes
}

fn describe(n: &Node) -> String {
    match n {
        Node::Root {
            dev,
            kind,
            handle,
            default,
        } => format!(
            "root qdisc {kind} {handle} on {dev}{}",
            default.map_or(String::new(), |d| format!(" default {d:x}"))
        ),
        Node::Qdisc {
            dev,
            kind,
            handle,
            parent,
        } => format!("qdisc {kind} {handle} under {parent} on {dev}"),
        Node::Class {
            dev,
            classid,
            parent,
        } => format!("class {classid} under {parent} on {dev}"),
    }
}

/// Whether the kernel's trees on the devices `tc` shapes are exactly the
/// ones `tc` builds, parameters aside: the same root qdisc (kind, handle,
/// HTB default), leaf qdiscs (kind, handle, parent) and HTB classes (id,
/// parent), nothing more. `kernel` lists each device `tc` names. Err says
/// the first difference.
pub fn kernel_matches(tc: &str, kernel: &[KernelTc]) -> Result<(), String> {
    let want = plan_tree(tc)?;
    let devs: BTreeSet<&str> = lines(tc).filter_map(|t| value_after(&t, "dev")).collect();
    let mut have = BTreeSet::new();
    for dev in &devs {
        let k = kernel
            .iter()
            .find(|k| k.dev == *dev)
            .ok_or_else(|| format!("no listing of {dev}"))?;
        have.extend(kernel_tree(k));
    }
    if let Some(n) = want.difference(&have).next() {
        return Err(format!("the kernel lacks the {}", describe(n)));
    }
    if let Some(n) = have.difference(&want).next() {
        return Err(format!("the kernel has a {} the plan lacks", describe(n)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::plan::{plan, EnforceTarget, LeafQdisc};
    use crate::inventory::view_of;
    use simpul_proto::policy::Policy;
    use time::macros::datetime;
    use time::OffsetDateTime;

    const INVENTORY: &str = r#"
intranet = ["10.0.0.0/8"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.1.0/24"]
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

    const POLICY: &str = r#"
version = 1
agency = "dinkes"
[allocation]
download = { rate_bps = 30000000, ceil_bps = 40000000 }
upload = { rate_bps = 20000000, ceil_bps = 20000000 }
[allocation.units.a]
download = { rate_bps = 10000000, ceil_bps = 40000000 }
upload = { rate_bps = 5000000, ceil_bps = 20000000 }
[allocation.units.b]
download = { rate_bps = 10000000, ceil_bps = 40000000 }
upload = { rate_bps = 5000000, ceil_bps = 20000000 }
[[schedules]]
name = "kantor"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "07:30"
end = "16:00"
[schedules.units.b]
download = { rate_bps = 5000000, ceil_bps = 40000000 }
upload = { rate_bps = 5000000, ceil_bps = 20000000 }
"#;

    /// Saturday: no schedule; Friday 09:00 WIB: "kantor".
    const WEEKEND: OffsetDateTime = datetime!(2026-11-28 03:00 UTC);
    const OFFICE: OffsetDateTime = datetime!(2026-11-27 02:00 UTC);

    fn target() -> EnforceTarget {
        EnforceTarget {
            lan: "lan0".into(),
            wan: "wan0".into(),
            always_allow: vec![],
            dns_redirect: None,
        }
    }

    fn plan_of(policy: &str, inventory: &str, at: OffsetDateTime, leaf: LeafQdisc) -> Plan {
        let p = Policy::parse(policy).unwrap();
        plan(&p, &view_of(inventory, "dinkes-01"), &target(), at, leaf).unwrap()
    }

    fn base(leaf: LeafQdisc) -> Plan {
        plan_of(POLICY, INVENTORY, WEEKEND, leaf)
    }

    fn with_unit_a_download(rate: u64, ceil: u64) -> String {
        POLICY.replacen(
            "download = { rate_bps = 10000000, ceil_bps = 40000000 }",
            &format!("download = {{ rate_bps = {rate}, ceil_bps = {ceil} }}"),
            1,
        )
    }

    /// What the kernel would list after applying `tc`, in iproute2's format.
    fn listing(tc: &str, dev: &str) -> KernelTc {
        let mut qdiscs = String::new();
        let mut classes = String::new();
        for n in plan_tree(tc).unwrap() {
            match n {
                Node::Root {
                    dev: d,
                    kind,
                    handle,
                    default,
                } if d == dev => qdiscs.insert_str(
                    0,
                    &format!(
                        "qdisc {kind} {handle} root refcnt 2 r2q 10 default {:#x} direct_packets_stat 0 direct_qlen 1000\n",
                        default.unwrap_or(0)
                    ),
                ),
                Node::Qdisc {
                    dev: d,
                    kind,
                    handle,
                    parent,
                } if d == dev => {
                    qdiscs.push_str(&format!("qdisc {kind} {handle} parent {parent} limit 128p\n"))
                }
                Node::Class {
                    dev: d,
                    classid,
                    parent,
                } if d == dev => {
                    let at = if parent == "1:" {
                        "root".to_string()
                    } else {
                        format!("parent {parent} leaf {}: prio 0", &classid[2..])
                    };
                    classes.push_str(&format!(
                        "class htb {classid} {at} rate 10Mbit ceil 40Mbit burst 12500b cburst 50000b \n"
                    ));
                }
                _ => {}
            }
        }
        KernelTc {
            dev: dev.into(),
            qdiscs,
            classes,
        }
    }

    fn listings(tc: &str) -> Vec<KernelTc> {
        vec![listing(tc, "lan0"), listing(tc, "wan0")]
    }

    /// The batch, applied to `prev`'s text the way the kernel applies it to
    /// `prev`'s objects (each change line replaces the one line of the same
    /// object), gives `new`'s text: the state a rebuild would give.
    fn assert_reaches(prev: &Plan, new: &Plan) {
        let batch = rate_changes(prev, new).unwrap();
        let mut text: Vec<String> = prev.tc.lines().map(String::from).collect();
        for change in batch.lines() {
            let add = change.replacen("class change ", "class add ", 1).replacen(
                "qdisc change ",
                "qdisc add ",
                1,
            );
            let t: Vec<&str> = add.split_whitespace().collect();
            let same: Vec<usize> = (0..text.len())
                .filter(|i| shape(&text[*i].split_whitespace().collect::<Vec<_>>()) == shape(&t))
                .collect();
            assert_eq!(same.len(), 1, "{change} matches {same:?}");
            text[same[0]] = add;
        }
        assert_eq!(text.join("\n") + "\n", new.tc);
    }

    #[test]
    fn identical_plans_need_no_change() {
        for leaf in LeafQdisc::PREFERENCE {
            let p = base(leaf);
            assert_eq!(
                rate_changes(&p, &p.clone()).as_deref(),
                Some(""),
                "{leaf:?}"
            );
        }
    }

    #[test]
    fn a_rate_change_changes_only_the_classes_whose_rates_changed() {
        let prev = base(LeafQdisc::FqCodel);
        // Unit a's download rate: its lan0 class and the default class (the
        // agency's leftover) change; nothing on wan0, no leaf.
        let new = plan_of(
            &with_unit_a_download(8_000_000, 40_000_000),
            INVENTORY,
            WEEKEND,
            LeafQdisc::FqCodel,
        );
        let batch = rate_changes(&prev, &new).unwrap();
        assert_eq!(
            batch,
            "class change dev lan0 parent 1:1 classid 1:10 htb rate 8000000bit ceil 40000000bit burst 15140b cburst 50000b quantum 20000\n\
             class change dev lan0 parent 1:1 classid 1:fff htb rate 12000000bit ceil 40000000bit burst 15140b cburst 50000b quantum 30000\n"
        );
        assert_reaches(&prev, &new);
    }

    #[test]
    fn a_schedule_window_changes_rates_in_place() {
        let weekend = base(LeafQdisc::Sfq);
        let office = plan_of(POLICY, INVENTORY, OFFICE, LeafQdisc::Sfq);
        assert_eq!(office.schedule.as_deref(), Some("kantor"));
        let batch = rate_changes(&weekend, &office).unwrap();
        let classes: Vec<&str> = batch
            .lines()
            .map(|l| l.split_whitespace().nth(7).unwrap())
            .collect();
        // Unit b (1:11) and the default class, download only.
        assert_eq!(classes, ["1:11", "1:fff"], "{batch}");
        assert!(batch
            .lines()
            .all(|l| l.starts_with("class change dev lan0 ")));
        // And back.
        assert_eq!(rate_changes(&office, &weekend).unwrap().lines().count(), 2);
        assert_reaches(&weekend, &office);
        assert_reaches(&office, &weekend);
    }

    #[test]
    fn a_ceil_change_also_resizes_pfifo_leaves() {
        let prev = base(LeafQdisc::Pfifo);
        let new = plan_of(
            &with_unit_a_download(10_000_000, 20_000_000),
            INVENTORY,
            WEEKEND,
            LeafQdisc::Pfifo,
        );
        let batch = rate_changes(&prev, &new).unwrap();
        assert_eq!(
            batch,
            "class change dev lan0 parent 1:1 classid 1:10 htb rate 10000000bit ceil 20000000bit burst 15140b cburst 25000b quantum 25000\n\
             qdisc change dev lan0 parent 1:10 handle 10: pfifo limit 165\n"
        );
        assert_reaches(&prev, &new);
        // fq_codel's parameters do not follow the ceil: the class alone.
        let fq = rate_changes(
            &base(LeafQdisc::FqCodel),
            &plan_of(
                &with_unit_a_download(10_000_000, 20_000_000),
                INVENTORY,
                WEEKEND,
                LeafQdisc::FqCodel,
            ),
        )
        .unwrap();
        assert_eq!(fq.lines().count(), 1, "{fq}");
    }

    /// POLICY with unit c allocated too.
    fn with_unit_c() -> String {
        format!(
            "{POLICY}[allocation.units.c]\ndownload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\nupload = {{ rate_bps = 1000000, ceil_bps = 1000000 }}\n"
        )
    }

    #[test]
    fn structural_changes_need_a_rebuild() {
        let prev = base(LeafQdisc::FqCodel);
        let without_b = POLICY.replacen(
            "[allocation.units.b]\ndownload = { rate_bps = 10000000, ceil_bps = 40000000 }\nupload = { rate_bps = 5000000, ceil_bps = 20000000 }\n",
            "",
            1,
        );
        assert_ne!(without_b, POLICY);
        let other_lan = EnforceTarget {
            lan: "lan1".into(),
            ..target()
        };
        let cases = [
            (
                "unit added",
                plan_of(&with_unit_c(), INVENTORY, WEEKEND, LeafQdisc::FqCodel),
            ),
            (
                "unit removed",
                plan_of(&without_b, INVENTORY, WEEKEND, LeafQdisc::FqCodel),
            ),
            ("leaf kind", base(LeafQdisc::Cake)),
            (
                "device",
                plan(
                    &Policy::parse(POLICY).unwrap(),
                    &view_of(INVENTORY, "dinkes-01"),
                    &other_lan,
                    WEEKEND,
                    LeafQdisc::FqCodel,
                )
                .unwrap(),
            ),
        ];
        for (what, new) in cases {
            assert_eq!(rate_changes(&prev, &new), None, "{what}");
            assert_eq!(rate_changes(&new, &prev), None, "{what}, the other way");
        }
    }

    #[test]
    fn subnet_changes_leave_the_trees_alone() {
        // Subnets live in the nft script (the classification), not in the
        // trees: the tc side has nothing to change.
        let prev = base(LeafQdisc::FqCodel);
        let moved = INVENTORY.replacen("10.1.1.0/24", "10.1.9.0/24", 1);
        let new = plan_of(POLICY, &moved, WEEKEND, LeafQdisc::FqCodel);
        assert_ne!(prev.nft, new.nft);
        assert_eq!(rate_changes(&prev, &new).as_deref(), Some(""));
    }

    #[test]
    fn any_other_difference_needs_a_rebuild() {
        let prev = base(LeafQdisc::Sfq);
        let edit = |from: &str, to: &str| {
            let mut new = prev.clone();
            assert!(new.tc.contains(from), "{from}");
            new.tc = new.tc.replacen(from, to, 1);
            rate_changes(&prev, &new)
        };
        assert_eq!(edit("htb default fff", "htb default 10"), None);
        assert_eq!(
            edit("parent 1:1 classid 1:10", "parent 1:2 classid 1:10"),
            None
        );
        assert_eq!(edit("sfq perturb 10", "sfq perturb 5"), None);
        assert_eq!(edit("handle 10: sfq", "handle 11: sfq"), None);
        assert_eq!(edit("quantum 25000", "quantum 25000 prio 1"), None);
        // A rate-dependent value is changed in place, whatever it is.
        assert!(edit("quantum 25000", "quantum 30000").is_some());
        // A line more or less.
        let mut longer = prev.clone();
        longer
            .tc
            .push_str("qdisc add dev lan0 parent 1:2 handle 2: sfq perturb 10\n");
        assert_eq!(rate_changes(&prev, &longer), None);
    }

    #[test]
    fn all_rate_changes_cover_every_class_and_sized_leaf() {
        let p = base(LeafQdisc::Pfifo);
        let all = all_rate_changes(&p.tc);
        let adds = p.tc.lines().filter(|l| l.starts_with("class add ")).count();
        let leaves = p.tc.lines().filter(|l| l.starts_with("qdisc add ")).count();
        assert_eq!(
            all.lines()
                .filter(|l| l.starts_with("class change "))
                .count(),
            adds
        );
        assert_eq!(
            all.lines()
                .filter(|l| l.starts_with("qdisc change "))
                .count(),
            leaves
        );
        assert_eq!(all.lines().count(), adds + leaves);
        // Leaves without rate-dependent values are left alone.
        let fq = base(LeafQdisc::FqCodel);
        assert_eq!(all_rate_changes(&fq.tc).lines().count(), adds);
    }

    #[test]
    fn the_kernel_tree_is_checked_against_the_plan() {
        let p = base(LeafQdisc::Pfifo);
        assert_eq!(kernel_matches(&p.tc, &listings(&p.tc)), Ok(()));
        // Other rates in the kernel: still the same tree.
        let other = plan_of(
            &with_unit_a_download(1_000_000, 2_000_000),
            INVENTORY,
            WEEKEND,
            LeafQdisc::Pfifo,
        );
        assert_eq!(kernel_matches(&p.tc, &listings(&other.tc)), Ok(()));
        // An ingress qdisc and a leaf's flow classes are not the tree's.
        let mut k = listings(&p.tc);
        k[0].qdiscs
            .push_str("qdisc ingress ffff: parent ffff:fff1 ----------------\n");
        k[0].classes.push_str("class fq_codel 10:2c1 parent 10: \n");
        assert_eq!(kernel_matches(&p.tc, &k), Ok(()));

        // Default qdiscs (no tree yet, or after a reboot).
        let bare = vec![
            KernelTc {
                dev: "lan0".into(),
                qdiscs: "qdisc noqueue 0: root refcnt 2 \n".into(),
                classes: String::new(),
            },
            KernelTc {
                dev: "wan0".into(),
                qdiscs: "qdisc noqueue 0: root refcnt 2 \n".into(),
                classes: String::new(),
            },
        ];
        let err = kernel_matches(&p.tc, &bare).unwrap_err();
        assert!(err.contains("the kernel lacks the"), "{err}");
        // Another structure in the kernel, either way round.
        let more = plan_of(&with_unit_c(), INVENTORY, WEEKEND, LeafQdisc::Pfifo);
        let err = kernel_matches(&p.tc, &listings(&more.tc)).unwrap_err();
        assert!(
            err.contains("has a qdisc pfifo 12: under 1:12 on lan0"),
            "{err}"
        );
        let err = kernel_matches(&more.tc, &listings(&p.tc)).unwrap_err();
        assert!(
            err.contains("lacks the qdisc pfifo 12: under 1:12"),
            "{err}"
        );
        // Another leaf kind.
        let cake = base(LeafQdisc::Cake);
        let err = kernel_matches(&cake.tc, &listings(&p.tc)).unwrap_err();
        assert!(err.contains("qdisc cake"), "{err}");
        // Another HTB default.
        let mut k = listings(&p.tc);
        k[1].qdiscs = k[1].qdiscs.replacen("default 0xfff", "default 0x10", 1);
        let err = kernel_matches(&p.tc, &k).unwrap_err();
        assert!(err.contains("default"), "{err}");
        // A device not listed.
        let err = kernel_matches(&p.tc, &k[..1]).unwrap_err();
        assert!(err.contains("no listing of wan0"), "{err}");
    }

    #[test]
    fn kernel_listings_as_iproute2_prints_them() {
        // Captured from `tc qdisc show dev lan0` / `tc class show dev lan0`
        // after the agent applied a two-unit plan (iproute2 6.1).
        let tc = "qdisc replace dev lan0 root handle ffff: pfifo
qdisc replace dev lan0 root handle 1: htb default fff
class add dev lan0 parent 1: classid 1:1 htb rate 30000000bit ceil 30000000bit burst 37500b cburst 37500b quantum 75000
class add dev lan0 parent 1:1 classid 1:fff htb rate 300000bit ceil 30000000bit burst 15140b cburst 37500b quantum 1514
qdisc add dev lan0 parent 1:fff handle fff: pfifo limit 495
";
        let k = KernelTc {
            dev: "lan0".into(),
            qdiscs: "qdisc htb 1: root refcnt 2 r2q 10 default 0xfff direct_packets_stat 0 direct_qlen 1000
qdisc pfifo fff: parent 1:fff limit 495p
"
            .into(),
            classes: "class htb 1:1 root rate 30Mbit ceil 30Mbit burst 37500b cburst 37500b 
class htb 1:fff parent 1:1 leaf fff: prio 0 rate 300Kbit ceil 30Mbit burst 15139b cburst 37500b 
"
            .into(),
        };
        assert_eq!(kernel_matches(tc, std::slice::from_ref(&k)), Ok(()));
    }
}

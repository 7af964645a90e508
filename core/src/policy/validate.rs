//! Policy validation against the agency it is for: every problem is reported
//! with its place in the policy (`allocation.units.lab.download`,
//! `blocking.ports[2].port`, …), all at once, so an operator fixes a file in
//! one round. The agent runs it before enforcing, the collector before
//! saving: the same code.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use simpul_proto::inventory::Capacity;
use simpul_proto::policy::{Allocation, DirectionRates, PortSpec, Rates, Schedule};
use simpul_proto::policy::{Policy, Weekday};
use simpul_proto::time_window::{TimeOfDay, UtcOffset};
pub use simpul_proto::Problem;

use crate::cidr::parse_cidr;
use crate::inventory::AgencyView;

fn problem(place: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem::new(place, message)
}

/// What a policy is checked against.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyScope<'a> {
    /// The agency the policy must be for, with its units; None checks the
    /// policy's own structure only (unit codes are then not known).
    pub agency: Option<&'a AgencyView>,
    /// The node uplink the agency's ceilings must fit in (at the
    /// collector: the smallest uplink among the agency's nodes).
    pub uplink: Option<Capacity>,
}

/// An inclusive port range from a policy port spec.
pub fn parse_port(spec: &PortSpec) -> Result<(u16, u16), String> {
    let one = |n: u64| -> Result<u16, String> {
        u16::try_from(n)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{n} is not a port (1-65535)"))
    };
    match spec {
        PortSpec::Number(n) => one(*n).map(|p| (p, p)),
        PortSpec::Text(t) => {
            let num = |s: &str| -> Result<u16, String> {
                let n: u64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("{t:?} is not a port or range like \"6881-6889\""))?;
                one(n)
            };
            let (a, b) = match t.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let p = num(t)?;
                    (p, p)
                }
            };
            if a > b {
                return Err(format!("{t:?}: range start is above its end"));
            }
            Ok((a, b))
        }
    }
}

/// Check a DNS name: 1-253 characters, labels of 1-63 letters, digits and
/// inner hyphens (IDNs in their `xn--` form), one trailing dot allowed.
pub fn check_domain(name: &str) -> Result<(), String> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() {
        return Err("empty domain name".into());
    }
    if n.len() > 253 {
        return Err(format!("{name:?} is longer than 253 characters"));
    }
    if n.starts_with("*.") {
        return Err(format!(
            "{name:?}: write the name without \"*.\" (a rule already covers its subdomains)"
        ));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Err(format!("{name:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!(
                "{name:?}: label {label:?} is longer than 63 characters"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "{name:?}: label {label:?} may only hold letters, digits and '-' (IDNs as xn--)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{name:?}: label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

fn check_rates(place: &str, r: &Rates, out: &mut Vec<Problem>) {
    if r.rate_bps == 0 {
        out.push(problem(place, "rate_bps must be above 0"));
    }
    if r.ceil_bps < r.rate_bps {
        out.push(problem(
            place,
            format!(
                "ceil_bps {} is below rate_bps {} (ceil is what may be borrowed up to)",
                r.ceil_bps, r.rate_bps
            ),
        ));
    }
}

/// The rates in force: the base allocation with a schedule's overrides.
pub fn effective_allocation(base: &Allocation, schedule: Option<&Schedule>) -> Allocation {
    let mut a = base.clone();
    if let Some(s) = schedule {
        if let Some(d) = s.download {
            a.download = d;
        }
        if let Some(u) = s.upload {
            a.upload = u;
        }
        for (unit, r) in &s.units {
            a.units.insert(unit.clone(), *r);
        }
    }
    a
}

/// Selects one direction of a unit's rates.
type PickRates = fn(&DirectionRates) -> Rates;

fn check_allocation(
    prefix: &str,
    a: &Allocation,
    units: &Units<'_>,
    scope: &PolicyScope<'_>,
    out: &mut Vec<Problem>,
) {
    let uplink = scope.uplink;
    let dirs: [(&str, Rates, Option<u64>, PickRates); 2] = [
        ("download", a.download, uplink.map(|u| u.down_bps), |d| {
            d.download
        }),
        ("upload", a.upload, uplink.map(|u| u.up_bps), |d| d.upload),
    ];
    for (dir, agency, uplink, pick) in dirs {
        let place = format!("{prefix}.{dir}");
        check_rates(&place, &agency, out);
        if let Some(up) = uplink {
            if agency.ceil_bps > up {
                out.push(problem(
                    &place,
                    format!(
                        "ceil_bps {} is above the node's uplink ({} bps, inventory nodes.uplink.{}_bps)",
                        agency.ceil_bps,
                        up,
                        if dir == "download" { "down" } else { "up" }
                    ),
                ));
            }
        }
        let mut sum: u64 = 0;
        for (code, rates) in &a.units {
            if !units.knows(code) {
                continue; // reported once by the caller
            }
            let r = pick(rates);
            let uplace = format!("{prefix}.units.{code}.{dir}");
            check_rates(&uplace, &r, out);
            if r.ceil_bps > agency.ceil_bps {
                out.push(problem(
                    &uplace,
                    format!(
                        "ceil_bps {} is above the agency's ceil_bps {}",
                        r.ceil_bps, agency.ceil_bps
                    ),
                ));
            }
            sum = sum.saturating_add(r.rate_bps);
        }
        if sum > agency.rate_bps {
            out.push(problem(
                format!("{prefix}.units"),
                format!(
                    "{dir} unit rates sum to {sum} bps, above the agency's rate_bps {}",
                    agency.rate_bps
                ),
            ));
        }
    }
    for code in a.units.keys() {
        if !units.knows(code) {
            out.push(problem(
                format!("{prefix}.units.{code}"),
                format!(
                    "unknown unit {code:?} (units of this agency in the inventory: {})",
                    units.list()
                ),
            ));
        }
    }
}

/// The agency's unit codes, or None when they are not known (structure-only
/// checks accept every code).
struct Units<'a>(Option<BTreeSet<&'a str>>);

impl Units<'_> {
    fn knows(&self, code: &str) -> bool {
        self.0.as_ref().is_none_or(|u| u.contains(code))
    }

    fn list(&self) -> String {
        match &self.0 {
            Some(u) if !u.is_empty() => u.iter().copied().collect::<Vec<_>>().join(", "),
            _ => "none".into(),
        }
    }
}

fn check_cidr_list(prefix: &str, list: &[String], out: &mut Vec<Problem>) -> Vec<IpNetwork> {
    let mut nets = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match parse_cidr(s) {
            Ok(n) => nets.push(n),
            Err(m) => out.push(problem(format!("{prefix}[{i}]"), m)),
        }
    }
    nets
}

/// Check `policy` against its scope; every problem found.
pub fn validate(policy: &Policy, scope: &PolicyScope<'_>) -> Result<(), Vec<Problem>> {
    let mut out = Vec::new();
    if policy.version == 0 {
        out.push(problem("version", "must be at least 1"));
    }
    if !simpul_proto::valid_code(&policy.agency) {
        out.push(problem(
            "agency",
            format!("{:?} is not a valid agency code", policy.agency),
        ));
    }
    let units = match scope.agency {
        Some(a) if a.code == policy.agency => {
            Units(Some(a.units.iter().map(|u| u.code.as_str()).collect()))
        }
        Some(a) => {
            out.push(problem(
                "agency",
                format!(
                    "{:?} is not this node's agency (the inventory says {:?})",
                    policy.agency, a.code
                ),
            ));
            Units(Some(BTreeSet::new()))
        }
        None => Units(None),
    };
    if let Err(m) = UtcOffset::parse(&policy.utc_offset) {
        out.push(problem("utc_offset", m));
    }
    check_allocation("allocation", &policy.allocation, &units, scope, &mut out);
    check_schedules(policy, &units, scope, &mut out);
    check_blocking(policy, &mut out);
    let s = &policy.suspension;
    for (i, u) in s.units.iter().enumerate() {
        if !units.knows(u) {
            out.push(problem(
                format!("suspension.units[{i}]"),
                format!("unknown unit {u:?}"),
            ));
        }
    }
    if let Some(t) = &s.until {
        if let Err(m) = simpul_proto::time_format::parse_rfc3339(t) {
            out.push(problem("suspension.until", m));
        }
    }
    if let Some(r) = &s.reason {
        if let Err(m) = simpul_proto::problem::check_free_text(r, 500) {
            out.push(problem("suspension.reason", m));
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

fn check_schedules(
    policy: &Policy,
    units: &Units<'_>,
    scope: &PolicyScope<'_>,
    out: &mut Vec<Problem>,
) {
    // (day, start, end, schedule index) of every valid window.
    let mut windows: Vec<(usize, u32, u32, usize)> = Vec::new();
    let mut names = BTreeSet::new();
    for (i, s) in policy.schedules.iter().enumerate() {
        let place = format!("schedules[{i}] ({})", s.name);
        if s.name.trim().is_empty() {
            out.push(problem(&place, "name must not be empty"));
        } else if !names.insert(s.name.as_str()) {
            out.push(problem(&place, "duplicate schedule name"));
        }
        if s.days.is_empty() {
            out.push(problem(format!("{place}.days"), "no day given"));
        }
        let mut days = BTreeSet::new();
        for d in &s.days {
            if !days.insert(*d) {
                out.push(problem(format!("{place}.days"), format!("{d:?} repeated")));
            }
        }
        let start = TimeOfDay::parse(&s.start)
            .map(TimeOfDay::minutes)
            .map_err(|m| problem(format!("{place}.start"), m));
        let end = TimeOfDay::parse(&s.end)
            .map(TimeOfDay::minutes)
            .map_err(|m| problem(format!("{place}.end"), m));
        match (start, end) {
            (Ok(a), Ok(b)) if a >= b => out.push(problem(
                &place,
                format!(
                    "start {} is not before end {} (split a window crossing midnight in two)",
                    s.start, s.end
                ),
            )),
            (Ok(a), Ok(b)) => {
                for d in &days {
                    windows.push((d.index(), a, b, i));
                }
            }
            (a, b) => out.extend([a.err(), b.err()].into_iter().flatten()),
        }
        let eff = effective_allocation(&policy.allocation, Some(s));
        // Unknown units in the overrides are reported here; the merged
        // allocation re-reports base units only if they are wrong there too.
        for code in s.units.keys() {
            if !units.knows(code) {
                out.push(problem(
                    format!("{place}.units.{code}"),
                    format!("unknown unit {code:?}"),
                ));
            }
        }
        let mut eff_known = eff.clone();
        eff_known.units.retain(|c, _| units.knows(c));
        let before = out.len();
        check_allocation(&place, &eff_known, units, scope, out);
        // Problems that are the base allocation's own are already reported.
        let mut base_problems = Vec::new();
        let mut base_known = policy.allocation.clone();
        base_known.units.retain(|c, _| units.knows(c));
        check_allocation(&place, &base_known, units, scope, &mut base_problems);
        let mut kept: Vec<Problem> = out
            .drain(before..)
            .filter(|p| !base_problems.contains(p))
            .collect();
        out.append(&mut kept);
    }
    windows.sort();
    for w in windows.windows(2) {
        let (d, _, end_a, ia) = w[0];
        let (d2, start_b, _, ib) = w[1];
        if d == d2 && start_b < end_a && ia != ib {
            out.push(problem(
                format!("schedules[{ib}] ({})", policy.schedules[ib].name),
                format!(
                    "overlaps schedules[{ia}] ({}) on {:?}",
                    policy.schedules[ia].name,
                    Weekday::ALL[d]
                ),
            ));
        }
    }
}

fn check_blocking(policy: &Policy, out: &mut Vec<Problem>) {
    let b = &policy.blocking;
    for (key, list) in [("domains", &b.domains), ("allow_domains", &b.allow_domains)] {
        for (i, d) in list.iter().enumerate() {
            if let Err(m) = check_domain(d) {
                out.push(problem(format!("blocking.{key}[{i}]"), m));
            }
        }
    }
    let mut cats: BTreeMap<&str, ()> = BTreeMap::new();
    for (name, list) in &b.categories {
        cats.insert(name, ());
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            out.push(problem(
                format!("blocking.categories.{name:?}"),
                "category names are letters, digits, '-', '_'",
            ));
        }
        for (i, d) in list.iter().enumerate() {
            if let Err(m) = check_domain(d) {
                out.push(problem(format!("blocking.categories.{name}[{i}]"), m));
            }
        }
    }
    for (name, list) in &b.lists {
        if !crate::lists::valid_name(name) {
            out.push(problem(
                format!("blocking.lists.{name:?}"),
                "list names are letters, digits, '-', '_' (at most 64)",
            ));
        }
        if cats.contains_key(name.as_str()) {
            out.push(problem(
                format!("blocking.lists.{name}"),
                "also defined in blocking.categories: one source per category",
            ));
        }
        if !crate::lists::valid_sha256(&list.sha256) {
            out.push(problem(
                format!("blocking.lists.{name}.sha256"),
                "not a SHA-256 in hex (64 lowercase hex digits)",
            ));
        }
    }
    for (i, c) in b.enabled_categories.iter().enumerate() {
        if !cats.contains_key(c.as_str()) && !b.lists.contains_key(c) {
            out.push(problem(
                format!("blocking.enabled_categories[{i}]"),
                format!("no category {c:?}: neither in blocking.categories nor a named list"),
            ));
        }
    }
    check_cidr_list("blocking.cidrs", &b.cidrs, out);
    check_cidr_list("blocking.block_doh", &b.block_doh, out);
    for (i, p) in b.ports.iter().enumerate() {
        if let Err(m) = parse_port(&p.port) {
            out.push(problem(format!("blocking.ports[{i}].port"), m));
        }
    }
    if let Some(a) = &b.block_page {
        if a.parse::<IpAddr>().is_err() {
            out.push(problem(
                "blocking.block_page",
                format!("{a:?} is not an IP address"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::NodeView;

    pub(crate) const INVENTORY: &str = r#"
intranet = ["10.0.0.0/8"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.1.0/24"]
[[agencies.units]]
code = "b"
subnets = ["10.1.2.0/24"]
[[nodes]]
id = "dinkes-01"
agency = "dinkes"
uplink = { down_bps = 100000000, up_bps = 100000000 }
"#;

    const GOOD: &str = r#"
version = 1
agency = "dinkes"
[allocation]
download = { rate_bps = 30000000, ceil_bps = 30000000 }
upload = { rate_bps = 30000000, ceil_bps = 30000000 }
[allocation.units.a]
download = { rate_bps = 10000000, ceil_bps = 30000000 }
upload = { rate_bps = 10000000, ceil_bps = 30000000 }
[allocation.units.b]
download = { rate_bps = 20000000, ceil_bps = 30000000 }
upload = { rate_bps = 20000000, ceil_bps = 30000000 }
"#;

    fn view() -> NodeView {
        let inv = simpul_proto::Inventory::parse(INVENTORY).expect("inventory");
        NodeView::from_inventory(&inv, "dinkes-01").expect("view")
    }

    fn check(p: &Policy) -> Vec<String> {
        let v = view();
        let scope = PolicyScope {
            agency: Some(&v.agency),
            uplink: v.uplink,
        };
        match validate(p, &scope) {
            Ok(()) => Vec::new(),
            Err(v) => v.iter().map(ToString::to_string).collect(),
        }
    }

    fn problems(extra: &str) -> Vec<String> {
        check(&Policy::parse(&format!("{GOOD}{extra}")).expect("parse"))
    }

    fn edit(from: &str, to: &str) -> Vec<String> {
        check(&Policy::parse(&GOOD.replace(from, to)).expect("parse"))
    }

    #[test]
    fn good_policy_passes() {
        assert_eq!(problems(""), Vec::<String>::new());
    }

    #[test]
    fn unknown_unit_and_agency() {
        let e = problems("[allocation.units.c]\ndownload = { rate_bps = 1, ceil_bps = 1 }\nupload = { rate_bps = 1, ceil_bps = 1 }\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("allocation.units.c: unknown unit \"c\""),
            "{e:?}"
        );
        let e = edit("agency = \"dinkes\"", "agency = \"bappeda\"");
        assert!(
            e.iter()
                .any(|p| p.starts_with("agency: \"bappeda\" is not this node's agency")),
            "{e:?}"
        );
    }

    #[test]
    fn rate_problems_are_placed() {
        let e = edit(
            "[allocation.units.b]\ndownload = { rate_bps = 20000000",
            "[allocation.units.b]\ndownload = { rate_bps = 25000000",
        );
        assert_eq!(
            e,
            ["allocation.units: download unit rates sum to 35000000 bps, above the agency's rate_bps 30000000"]
        );
        let e = edit(
            "upload = { rate_bps = 10000000, ceil_bps = 30000000 }",
            "upload = { rate_bps = 10000000, ceil_bps = 5000000 }",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("allocation.units.a.upload: ceil_bps 5000000 is below"),
            "{e:?}"
        );
        let e = edit(
            "download = { rate_bps = 10000000, ceil_bps = 30000000 }",
            "download = { rate_bps = 0, ceil_bps = 30000000 }",
        );
        assert_eq!(e, ["allocation.units.a.download: rate_bps must be above 0"]);
        let e = edit(
            "download = { rate_bps = 30000000, ceil_bps = 30000000 }",
            "download = { rate_bps = 30000000, ceil_bps = 300000000 }",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("allocation.download: ceil_bps 300000000 is above the node's uplink"),
            "{e:?}"
        );
    }

    #[test]
    fn blocking_problems_are_placed() {
        let e = problems(
            r#"[blocking]
domains = ["ok.example", "bad_label.example", "-x.example", "a..b", "*.judi.example"]
cidrs = ["203.0.113.0/24", "203.0.113.1/24", "nope"]
ports = [{ proto = "tcp", port = 25 }, { proto = "udp", port = "9-1" }, { proto = "tcp", port = 70000 }]
enabled_categories = ["judi"]
block_page = "not-an-ip"
"#,
        );
        let want = [
            "blocking.domains[1]",
            "blocking.domains[2]",
            "blocking.domains[3]",
            "blocking.domains[4]",
            "blocking.enabled_categories[0]",
            "blocking.cidrs[1]",
            "blocking.cidrs[2]",
            "blocking.ports[1].port",
            "blocking.ports[2].port",
            "blocking.block_page",
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for w in want {
            assert!(
                e.iter().any(|p| p.starts_with(&format!("{w}: "))),
                "{w} missing in {e:#?}"
            );
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(check_domain(&long).is_err());
        assert!(check_domain(&format!("{}.x", "abc.".repeat(63))).is_err());
        assert!(check_domain("xn--bcher-kva.example.").is_ok());
    }

    #[test]
    fn schedule_problems_are_placed() {
        let e = problems(
            r#"[[schedules]]
name = "kantor"
days = ["mon", "tue"]
start = "07:30"
end = "16:00"
[[schedules]]
name = "siang"
days = ["tue"]
start = "12:00"
end = "13:00"
[[schedules]]
name = "malam"
days = ["wed"]
start = "25:00"
end = "06:00"
[[schedules]]
name = "terbalik"
days = ["thu"]
start = "16:00"
end = "07:30"
download = { rate_bps = 20000000, ceil_bps = 20000000 }
"#,
        );
        let want = [
            "schedules[1] (siang): overlaps schedules[0] (kantor) on Tue",
            "schedules[2] (malam).start: \"25:00\" is not a time of day",
            "schedules[3] (terbalik): start 16:00 is not before end 07:30",
            "schedules[3] (terbalik).units: download unit rates sum",
            "schedules[3] (terbalik).units.a.download: ceil_bps 30000000 is above the agency's",
            "schedules[3] (terbalik).units.b.download: ceil_bps 30000000 is above the agency's",
        ];
        for w in want {
            assert!(e.iter().any(|p| p.starts_with(w)), "{w} missing in {e:#?}");
        }
        assert_eq!(e.len(), 6, "{e:#?}");
    }

    #[test]
    fn suspension_problems() {
        let e = problems(
            "[suspension]\nunits = [\"zz\"]\nuntil = \"tomorrow\"\nreason = \"a\\u202eb\\u0007\"\n",
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("suspension.units[0]: unknown unit \"zz\""));
        assert!(e[1].starts_with("suspension.until: "));
        assert!(e[2].starts_with("suspension.reason: "));
    }

    #[test]
    fn structure_only_accepts_any_unit() {
        let p = Policy::parse(&format!(
            "{GOOD}[allocation.units.zz]\ndownload = {{ rate_bps = 1, ceil_bps = 1 }}\nupload = {{ rate_bps = 1, ceil_bps = 1 }}\n"
        ))
        .expect("parse");
        // Unit rates still have to fit the agency's.
        let e = validate(&p, &PolicyScope::default()).unwrap_err();
        assert!(e.iter().all(|p| p.place == "allocation.units"), "{e:?}");
        assert!(validate(&Policy::parse(GOOD).unwrap(), &PolicyScope::default()).is_ok());
    }
}

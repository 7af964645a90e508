//! Per agency and direction: bytes stored, the current rate, and the
//! allocation in force (in bytes/s, Prometheus' base unit; policies say
//! bit/s) (schedule windows included) to read it against; the
//! policy version the agency's nodes should run. Every agency of the
//! inventory has its series from the start (zeros), so a dashboard shows
//! a quiet agency as quiet rather than missing.

use std::collections::BTreeSet;

use super::figures::figures;
use super::text::{Exposition, Family, Kind};
use crate::state::AppState;

/// The rate is the average over this many whole seconds ending two
/// seconds ago, as the wall's overview reads it (agents' batches of the
/// newest seconds may still be on their way).
pub const RATE_WINDOW_SECS: u64 = 5;
const RATE_LAG_SECS: u64 = 2;

const BYTES: Family = Family {
    name: "simpul_agency_bytes_total",
    kind: Kind::Counter,
    help: "Bytes of the agency's traffic stored since the collector started, by direction (in: towards the agency, the download its allocation limits; out: from it) and scope (internet, intranet).",
};
const RATE: Family = Family {
    name: "simpul_agency_rate_bytes_per_second",
    kind: Kind::Gauge,
    help: "The agency's traffic now, bytes/s (x8 for bit/s): the average of the last 5 whole seconds ending 2 s ago (the wall's figure), by direction and scope.",
};
const ALLOCATION: Family = Family {
    name: "simpul_agency_allocation_bytes_per_second",
    kind: Kind::Gauge,
    help: "The agency's allocated rate in force now (its policy, schedule windows included), bytes/s (x8 for the policy's bit/s), by direction (in: download, out: upload); 0 without a policy.",
};
const CEIL: Family = Family {
    name: "simpul_agency_allocation_ceil_bytes_per_second",
    kind: Kind::Gauge,
    help: "The rate the agency may borrow up to when the uplink has room (its policy's ceil in force now), bytes/s (x8 for bit/s), by direction.",
};
const POLICY: Family = Family {
    name: "simpul_agency_policy_version",
    kind: Kind::Gauge,
    help: "Newest policy version issued for the agency (0: none); its nodes report the one in force as simpul_agent_policy_version.",
};

const DIRECTIONS: [&str; 2] = ["in", "out"];
const SCOPES: [&str; 2] = ["internet", "intranet"];

pub fn write(e: &mut Exposition, s: &AppState, now_secs: u64) {
    let inv = s.inventory.current();
    let bytes = figures().agencies();
    let codes: BTreeSet<&str> = inv
        .agencies
        .iter()
        .map(|a| a.code.as_str())
        .chain(bytes.keys().map(String::as_str))
        .collect();
    let now = time::OffsetDateTime::from_unix_timestamp(i64::try_from(now_secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let end = now_secs.saturating_sub(RATE_LAG_SECS);
    for f in [&BYTES, &RATE, &ALLOCATION, &CEIL, &POLICY] {
        e.family(f);
    }
    for code in codes {
        let fig = bytes.get(code).cloned().unwrap_or_default();
        let rate = fig.rate(end, RATE_WINDOW_SECS);
        for (si, scope) in SCOPES.iter().enumerate() {
            for (di, dir) in DIRECTIONS.iter().enumerate() {
                let l = [("agency", code), ("direction", *dir), ("scope", *scope)];
                e.family(&BYTES).int(&l, fig.total[si][di]);
                e.family(&RATE).sample(&l, rate[si][di]);
            }
        }
        let alloc = s.policies.allocation_at(code, now);
        let latest = s.policies.latest(code).map_or(0, |p| p.policy.version);
        for (di, dir) in DIRECTIONS.iter().enumerate() {
            let l = [("agency", code), ("direction", *dir)];
            let r = alloc.map(|(down, up)| if di == 0 { down } else { up });
            e.family(&ALLOCATION)
                .sample(&l, r.map_or(0.0, |r| r.rate_bps as f64 / 8.0));
            e.family(&CEIL)
                .sample(&l, r.map_or(0.0, |r| r.ceil_bps as f64 / 8.0));
        }
        e.family(&POLICY).int(&[("agency", code)], latest);
    }
}

//! What the live feed sends after its snapshot: per second, only what
//! changed since the state every page of a scope already holds, as a patch
//! the page applies (`dashboard/live.js` does the same in JavaScript).
//!
//! At province scale nearly every agency's rates and every node's health
//! counters move each second; sent whole that is ~100 KB/s a page. Two
//! rules keep it small without the wall saying anything false:
//! - rates and byte totals are rounded to 3 significant digits while they
//!   move (the wall shows 3) and sent exactly once they have kept still for
//!   [`STILL_TICKS`] ticks, so the page ends with the API's exact figures;
//! - the agencies' six rates travel as one flat array of numbers (`r`:
//!   index, then the rates in [`RATES`] order, per agency that changed):
//!   as keyed JSON the key names cost more than the numbers, even deflated;
//! - what every heartbeat changes goes out less often: a node's last seen
//!   at most every [`SEEN_EVERY`] ticks, its health counters (uptime, CPU,
//!   memory, packets, spool) every [`COUNTERS_EVERY`] (no live view shows
//!   more than uptime and CPU; the node page reads the API), the top lists
//!   (15-minute totals) every [`TOPS_EVERY`]; anything else about a node
//!   (status, liveness, policy, drops, versions) goes out at once, whole.
//!   A change held back goes out when due even if nothing else changes, so
//!   a quiet network's page ends exact.
//!
//! Patch format (JSON): a scalar or array replaces; `{"=": v}` replaces with
//! the object `v`; `{"@": {"i": p}}` patches element `i` of an array; any
//! other object patches an object key by key.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Ticks between two sends of a node's last seen (~10 s).
pub const SEEN_EVERY: u64 = 10;
/// Ticks between two sends of a node's health counters.
pub const COUNTERS_EVERY: u64 = 60;
/// Ticks between two sends of the top lists.
pub const TOPS_EVERY: u64 = 5;

/// Ticks a rate must keep the same value to be sent exactly.
pub const STILL_TICKS: u32 = 3;

/// Rate fields rounded while they move (and an agency's order in `r`).
pub const RATES: &[&str] = &[
    "in_bps",
    "out_bps",
    "internet_in_bps",
    "internet_out_bps",
    "intranet_in_bps",
    "intranet_out_bps",
];

/// Health fields every heartbeat may change.
const COUNTERS: &[&str] = &[
    "decode_errors",
    "uptime_secs",
    "cpu_percent",
    "rss_bytes",
    "packets",
    "bytes",
    "active_flows",
    "flows_evicted",
    "spool_batches",
    "spool_bytes",
];

/// `v` rounded to 3 significant digits.
pub fn round3(v: u64) -> u64 {
    if v < 1000 {
        return v;
    }
    let mut scale = 1u64;
    while v / scale >= 1000 {
        scale *= 10;
    }
    let q = v / scale + u64::from(v % scale >= scale / 2);
    q.saturating_mul(scale)
}

/// One scope's stream of states (the whole network, or one agency).
pub struct Stream {
    /// Number of the state pages hold now.
    pub seq: u64,
    /// The state pages hold (what the snapshot carries and patches build).
    pub sent: Value,
    /// How long each rounded field has kept its exact value: by
    /// "list/identity/field", (value, ticks).
    still: HashMap<String, (u64, u32)>,
    /// When each node's last seen and counters were last sent (ticks).
    node_sent_at: HashMap<String, (u64, u64)>,
    /// When the top lists were last sent.
    tops_at: Option<u64>,
}

impl Stream {
    /// A stream starting at `cur`, sent exactly.
    pub fn new(seq: u64, cur: Value) -> Stream {
        Stream {
            seq,
            sent: cur,
            still: HashMap::new(),
            node_sent_at: HashMap::new(),
            tops_at: None,
        }
    }

    /// The next tick: returns the patch from the previous state (`o`, None
    /// when nothing else changed) and the agencies' rates that changed
    /// (`r`), and advances `seq` and `sent`.
    pub fn step(&mut self, cur: Value) -> (Option<Value>, Vec<u64>) {
        self.seq += 1;
        let target = self.target(&cur);
        let rates = take_rates(&mut self.sent, &target);
        let patch = diff(&self.sent, &target);
        self.sent = target;
        (patch, rates)
    }

    /// What pages should hold after this tick.
    fn target(&mut self, cur: &Value) -> Value {
        let mut t = cur.clone();
        let Some(obj) = t.as_object_mut() else {
            return t;
        };
        let mut still = std::mem::take(&mut self.still);
        let mut kept = HashMap::new();
        if let Some(u) = obj.get_mut("uplink") {
            round_fields(u, "uplink", RATES, &mut still, &mut kept);
        }
        round_list(obj, "agencies", "code", RATES, &mut still, &mut kept);
        round_list(obj, "top_sites", "site", &["bytes"], &mut still, &mut kept);
        round_list(
            obj,
            "top_agencies",
            "code",
            &["bytes"],
            &mut still,
            &mut kept,
        );
        self.still = kept;
        let due =
            |at: Option<u64>, every: u64| at.is_none_or(|a| self.seq.saturating_sub(a) >= every);
        let tops = ["top_sites", "top_agencies"];
        if tops.iter().any(|k| obj.get(*k) != self.sent.get(*k)) {
            if due(self.tops_at, TOPS_EVERY) {
                self.tops_at = Some(self.seq);
            } else {
                for k in tops {
                    if let Some(v) = self.sent.get(k) {
                        obj.insert(k.to_string(), v.clone());
                    }
                }
            }
        }
        if let Some(Value::Array(nodes)) = obj.get_mut("nodes") {
            let sent_nodes: HashMap<&str, &Value> = self
                .sent
                .get("nodes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| Some((id(n, "node_id")?, n)))
                        .collect()
                })
                .unwrap_or_default();
            for n in nodes.iter_mut() {
                let Some(node_id) = id(n, "node_id").map(str::to_string) else {
                    continue;
                };
                let Some(old) = sent_nodes.get(node_id.as_str()) else {
                    self.node_sent_at.insert(node_id, (self.seq, self.seq));
                    continue;
                };
                if *old == n {
                    continue;
                }
                if without_routine(old) != without_routine(n) {
                    self.node_sent_at.insert(node_id, (self.seq, self.seq));
                    continue;
                }
                let (seen_at, counters_at) = self.node_sent_at.get(&node_id).copied().unzip();
                let mut held = (*old).clone();
                let mut at = (seen_at.unwrap_or(0), counters_at.unwrap_or(0));
                if n.get("last_seen") != old.get("last_seen") && due(seen_at, SEEN_EVERY) {
                    held["last_seen"] = n["last_seen"].clone();
                    at.0 = self.seq;
                }
                if n.get("health") != old.get("health") && due(counters_at, COUNTERS_EVERY) {
                    held["health"] = n["health"].clone();
                    at.1 = self.seq;
                }
                self.node_sent_at.insert(node_id, at);
                *n = held;
            }
        }
        t
    }
}

fn id<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A node without what every heartbeat changes.
fn without_routine(n: &Value) -> Value {
    let mut n = n.clone();
    if let Some(o) = n.as_object_mut() {
        o.remove("last_seen");
        if let Some(Value::Object(h)) = o.get_mut("health") {
            for k in COUNTERS {
                h.remove(*k);
            }
            // Counters only (frames, refusals, losses), moving with traffic.
            h.remove("name_lanes");
            h.remove("name_block");
            h.remove("ipfix");
            if let Some(Value::Array(ifs)) = h.get_mut("interfaces") {
                for i in ifs {
                    if let Some(i) = i.as_object_mut() {
                        i.remove("frames");
                    }
                }
            }
        }
    }
    n
}

type Still = HashMap<String, (u64, u32)>;

/// Round `fields` of `v` (at `place`) unless they kept still long enough;
/// `kept` gets every field's stillness for the next tick.
fn round_fields(v: &mut Value, place: &str, fields: &[&str], before: &mut Still, kept: &mut Still) {
    let Some(o) = v.as_object_mut() else { return };
    for f in fields {
        let Some(x) = o.get(*f).and_then(Value::as_u64) else {
            continue;
        };
        let key = format!("{place}/{f}");
        let ticks = match before.remove(&key) {
            Some((v, n)) if v == x => n.saturating_add(1),
            _ => 0,
        };
        if ticks < STILL_TICKS {
            o.insert((*f).to_string(), Value::from(round3(x)));
        }
        kept.insert(key, (x, ticks));
    }
}

fn round_list(
    obj: &mut Map<String, Value>,
    list: &str,
    key: &str,
    fields: &[&str],
    before: &mut Still,
    kept: &mut Still,
) {
    let Some(Value::Array(items)) = obj.get_mut(list) else {
        return;
    };
    for it in items {
        let Some(k) = id(it, key).map(|k| format!("{list}/{k}")) else {
            continue;
        };
        round_fields(it, &k, fields, before, kept);
    }
}

/// The agencies' rates that changed, as `r` (index, then [`RATES`]), moved
/// into `sent` so the patch leaves them out. Only while the agencies are
/// the same ones in the same order (otherwise the patch replaces them).
fn take_rates(sent: &mut Value, target: &Value) -> Vec<u64> {
    let mut r = Vec::new();
    let (Some(Value::Array(old)), Some(Value::Array(new))) =
        (sent.get_mut("agencies"), target.get("agencies"))
    else {
        return r;
    };
    if old.len() != new.len() || old.iter().zip(new).any(|(a, b)| ident(a) != ident(b)) {
        return r;
    }
    for (i, (a, b)) in old.iter_mut().zip(new).enumerate() {
        let rates: Option<Vec<u64>> = RATES.iter().map(|f| b.get(*f)?.as_u64()).collect();
        let Some(rates) = rates else { continue };
        let same = RATES
            .iter()
            .zip(&rates)
            .all(|(f, v)| a.get(*f).and_then(Value::as_u64) == Some(*v));
        if same {
            continue;
        }
        r.push(i as u64);
        r.extend(&rates);
        if let Some(o) = a.as_object_mut() {
            for (f, v) in RATES.iter().zip(&rates) {
                o.insert((*f).to_string(), Value::from(*v));
            }
        }
    }
    r
}

/// Apply `r` (see [`take_rates`]) to an overview.
pub fn apply_rates(ov: &mut Value, r: &[u64]) {
    let Some(Value::Array(ags)) = ov.get_mut("agencies") else {
        return;
    };
    for chunk in r.chunks_exact(1 + RATES.len()) {
        let Some(Value::Object(a)) = usize::try_from(chunk[0]).ok().and_then(|i| ags.get_mut(i))
        else {
            continue;
        };
        for (f, v) in RATES.iter().zip(&chunk[1..]) {
            a.insert((*f).to_string(), Value::from(*v));
        }
    }
}

/// Identity of an array element: elements with the same identity at the
/// same place are patched in place, otherwise the array is replaced.
fn ident(v: &Value) -> Option<&str> {
    ["node_id", "code", "site", "name"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
}

/// The patch turning `old` into `new` (None: equal).
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n))
            if o.len() == n.len() && n.keys().all(|k| o.contains_key(k)) =>
        {
            let mut patch = Map::new();
            for (k, nv) in n {
                if let Some(p) = o.get(k).and_then(|ov| diff(ov, nv)) {
                    patch.insert(k.clone(), p);
                }
            }
            Some(Value::Object(patch))
        }
        (Value::Array(o), Value::Array(n))
            if o.len() == n.len() && o.iter().zip(n).all(|(a, b)| ident(a) == ident(b)) =>
        {
            let mut at = Map::new();
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                if let Some(p) = diff(a, b) {
                    at.insert(i.to_string(), p);
                }
            }
            let mut patch = Map::new();
            patch.insert("@".into(), Value::Object(at));
            Some(Value::Object(patch))
        }
        (_, Value::Object(_)) => {
            let mut patch = Map::new();
            patch.insert("=".into(), new.clone());
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

/// Apply a patch made by [`diff`] (what the page does; tests use it).
pub fn apply(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if let Some(v) = p.get("=") {
                *target = v.clone();
            } else if let (Some(Value::Object(at)), Value::Array(items)) =
                (p.get("@"), &mut *target)
            {
                for (i, ip) in at {
                    if let Some(item) = i.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        apply(item, ip);
                    }
                }
            } else if let Value::Object(t) = target {
                for (k, v) in p {
                    match t.get_mut(k) {
                        Some(tv) => apply(tv, v),
                        None => {
                            t.insert(k.clone(), v.clone());
                        }
                    }
                }
            } else {
                *target = patch.clone();
            }
        }
        _ => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rounds_to_three_digits() {
        assert_eq!(round3(0), 0);
        assert_eq!(round3(999), 999);
        assert_eq!(round3(1234), 1230);
        assert_eq!(round3(1235), 1240);
        assert_eq!(round3(98_765_432), 98_800_000);
        assert!(round3(u64::MAX) > 0);
    }

    #[test]
    fn patches_rebuild_the_new_value() {
        let cases = [
            (
                json!({"a": 1, "b": [1, 2]}),
                json!({"a": 2, "b": [1, 2, 3]}),
            ),
            (
                json!({"n": [{"code": "x", "v": 1}, {"code": "y", "v": 2}]}),
                json!({"n": [{"code": "x", "v": 1}, {"code": "y", "v": 5}]}),
            ),
            (
                json!({"n": [{"code": "x"}, {"code": "y"}]}),
                json!({"n": [{"code": "y"}, {"code": "x"}]}),
            ),
            (json!({"h": null}), json!({"h": {"a": 1}})),
            (json!({"h": {"a": 1, "b": 2}}), json!({"h": {"a": 1}})),
            (json!({"h": {"a": 1}}), json!({"h": null})),
        ];
        for (old, new) in cases {
            let p = diff(&old, &new).unwrap();
            let mut t = old.clone();
            apply(&mut t, &p);
            assert_eq!(t, new, "patch {p}");
        }
        assert_eq!(diff(&json!({"a": 1}), &json!({"a": 1})), None);
    }

    fn ov(rate: u64, seen: &str, uptime: u64, status: &str) -> Value {
        json!({
            "ts": seen,
            "uplink": {"in_bps": rate, "out_bps": 0, "capacity_down_bps": 1, "capacity_up_bps": 1},
            "agencies": [{"code": "a", "in_bps": rate, "out_bps": 0, "internet_in_bps": rate,
                          "internet_out_bps": 0, "intranet_in_bps": 0, "intranet_out_bps": 0}],
            "nodes": [{"node_id": "n1", "status": status, "last_seen": seen,
                       "health": {"uptime_secs": uptime, "interfaces": []}}],
            "top_sites": [], "top_agencies": [],
        })
    }

    /// What a page holds: the first state, every patch and rate applied.
    fn page(first: &Value, steps: &[(Option<Value>, Vec<u64>)]) -> Value {
        let mut p = first.clone();
        for (o, r) in steps {
            if let Some(o) = o {
                apply(&mut p, o);
            }
            apply_rates(&mut p, r);
        }
        p
    }

    #[test]
    fn moving_rates_are_rounded_and_still_ones_exact() {
        let first = ov(1_234_567, "t0", 1, "up");
        let mut s = Stream::new(0, first.clone());
        let mut steps = vec![s.step(ov(2_345_678, "t0", 1, "up"))];
        assert_eq!(s.sent["agencies"][0]["in_bps"], 2_350_000);
        assert_eq!(steps[0].1[..2], [0, 2_350_000], "rates travel in r");
        for _ in 1..STILL_TICKS {
            steps.push(s.step(ov(2_345_678, "t0", 1, "up")));
            assert_eq!(s.sent["agencies"][0]["in_bps"], 2_350_000);
        }
        steps.push(s.step(ov(2_345_678, "t0", 1, "up")));
        assert_eq!(s.sent["agencies"][0]["in_bps"], 2_345_678);
        assert_eq!(s.step(ov(2_345_678, "t0", 1, "up")), (None, vec![]));
        assert_eq!(page(&first, &steps), s.sent);
        assert_eq!(s.sent, ov(2_345_678, "t0", 1, "up"));
    }

    #[test]
    fn name_lane_counters_are_routine() {
        let node = |frames: u64| {
            json!({"id": "n", "health": {"uptime_secs": 1, "interfaces": [],
                   "name_lanes": [{"interface": "lan0", "frames": frames, "blocks": 0}]}})
        };
        assert_ne!(node(1), node(2));
        assert_eq!(without_routine(&node(1)), without_routine(&node(2)));
    }

    #[test]
    fn name_block_and_ipfix_counters_are_routine() {
        let node = |resets: u64, records: u64| {
            json!({"id": "n", "health": {"uptime_secs": 1, "interfaces": [],
                   "name_block": {"entries_added": 1, "resets_sent": resets},
                   "ipfix": {"messages": 1, "records": records}}})
        };
        assert_ne!(node(1, 5), node(2, 5));
        assert_ne!(node(1, 5), node(1, 6));
        assert_eq!(without_routine(&node(1, 5)), without_routine(&node(2, 9)));
        // What is not a counter still goes at once.
        let mut moved = node(1, 5);
        moved["agency"] = json!("KOMINFO");
        assert_ne!(without_routine(&node(1, 5)), without_routine(&moved));
    }

    #[test]
    fn routine_node_changes_wait_and_others_go_at_once() {
        let first = ov(0, "t0", 1, "up");
        let mut s = Stream::new(0, first.clone());
        let mut steps = Vec::new();
        // The first heartbeat change goes (nothing sent yet for the node).
        steps.push(s.step(ov(0, "t1", 2, "up")));
        assert_eq!(s.sent["nodes"][0]["last_seen"], "t1");
        steps.push(s.step(ov(0, "t2", 3, "up")));
        assert_eq!(s.sent["nodes"][0]["last_seen"], "t1", "last seen waits");
        assert_eq!(s.sent["nodes"][0]["health"]["uptime_secs"], 2);
        steps.push(s.step(ov(0, "t3", 4, "down")));
        assert_eq!(s.sent["nodes"][0]["status"], "down");
        assert_eq!(s.sent["nodes"][0]["last_seen"], "t3", "sent whole");
        for _ in 0..SEEN_EVERY {
            steps.push(s.step(ov(0, "t4", 5, "down")));
        }
        assert_eq!(
            s.sent["nodes"][0]["last_seen"], "t4",
            "last seen catches up"
        );
        assert_eq!(
            s.sent["nodes"][0]["health"]["uptime_secs"], 4,
            "counters wait longer"
        );
        for _ in 0..COUNTERS_EVERY {
            steps.push(s.step(ov(0, "t4", 5, "down")));
        }
        assert_eq!(s.sent, ov(0, "t4", 5, "down"));
        assert_eq!(page(&first, &steps), s.sent);
    }
}

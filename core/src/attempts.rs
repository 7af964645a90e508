//! Blocked attempts, folded: the first attempt of a client at a target under
//! a rule is reported at once (the NOC sees it live); repeats within the
//! fold window are counted and reported as one record when the window ends.
//! A client hammering a blocked site costs one record per window, not one
//! per packet, and a flood of distinct targets is bounded by `max_open`.

use std::collections::HashMap;
use std::net::IpAddr;

use simpul_proto::{BlockMethod, BlockedAttempt};

use crate::agency::AgencyMap;
use crate::policy::matcher::RuleHit;

const NS: u64 = 1_000_000_000;

/// One attempt as seen, before folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub ts: u64,
    pub client: IpAddr,
    pub hit: RuleHit,
    pub target: String,
    pub server: Option<IpAddr>,
    pub port: Option<u16>,
    pub proto: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    client: IpAddr,
    method: BlockMethod,
    target: String,
    rule: String,
}

#[derive(Debug)]
struct Open {
    attempt: Attempt,
    window_start: u64,
    /// Attempts since the last report, with their first/last time.
    pending: u32,
    pending_first: u64,
    pending_last: u64,
    last_seen: u64,
}

/// Counters for the agent's health view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptStats {
    pub attempts: u64,
    pub records: u64,
    /// Attempts not folded because `max_open` keys were open (reported
    /// individually instead: nothing is lost, only less compact).
    pub unfolded: u64,
}

#[derive(Debug)]
pub struct AttemptLog {
    open: HashMap<Key, Open>,
    window_ns: u64,
    max_open: usize,
    stats: AttemptStats,
}

impl AttemptLog {
    pub fn new(window_secs: u64, max_open: usize) -> Self {
        AttemptLog {
            open: HashMap::new(),
            window_ns: window_secs.max(1) * NS,
            max_open,
            stats: AttemptStats::default(),
        }
    }

    pub fn stats(&self) -> AttemptStats {
        self.stats
    }

    /// Count `a`; report it now if it is the first of its kind.
    pub fn record(
        &mut self,
        a: Attempt,
        agencies: &AgencyMap,
        out: &mut impl FnMut(BlockedAttempt),
    ) {
        self.stats.attempts += 1;
        let key = Key {
            client: a.client,
            method: a.hit.method,
            target: a.target.clone(),
            rule: a.hit.rule.clone(),
        };
        if let Some(o) = self.open.get_mut(&key) {
            if o.pending == 0 {
                o.pending_first = a.ts;
            }
            o.pending = o.pending.saturating_add(1);
            o.pending_last = a.ts.max(o.pending_last);
            o.last_seen = a.ts.max(o.last_seen);
            return;
        }
        let ts = a.ts;
        self.stats.records += 1;
        out(to_record(&a, ts, ts, 1, agencies));
        if self.open.len() >= self.max_open {
            self.stats.unfolded += 1;
            return;
        }
        self.open.insert(
            key,
            Open {
                attempt: a,
                window_start: ts,
                pending: 0,
                pending_first: ts,
                pending_last: ts,
                last_seen: ts,
            },
        );
    }

    /// Report folded repeats whose window ended by `now`; forget keys quiet
    /// for a whole window.
    pub fn tick(&mut self, now: u64, agencies: &AgencyMap, out: &mut impl FnMut(BlockedAttempt)) {
        let window = self.window_ns;
        let mut reported = 0;
        self.open.retain(|_, o| {
            if now.saturating_sub(o.window_start) < window {
                return true;
            }
            if o.pending > 0 {
                reported += 1;
                out(to_record(
                    &o.attempt,
                    o.pending_first,
                    o.pending_last,
                    o.pending,
                    agencies,
                ));
                o.pending = 0;
                o.window_start = now;
                return true;
            }
            now.saturating_sub(o.last_seen) < window
        });
        self.stats.records += reported;
    }

    /// Report everything still folded (shutdown).
    pub fn flush(&mut self, agencies: &AgencyMap, out: &mut impl FnMut(BlockedAttempt)) {
        for (_, o) in self.open.drain() {
            if o.pending > 0 {
                self.stats.records += 1;
                out(to_record(
                    &o.attempt,
                    o.pending_first,
                    o.pending_last,
                    o.pending,
                    agencies,
                ));
            }
        }
    }
}

fn to_record(
    a: &Attempt,
    first: u64,
    last: u64,
    attempts: u32,
    agencies: &AgencyMap,
) -> BlockedAttempt {
    let label = agencies.label(agencies.unit_of(a.client));
    BlockedAttempt {
        first_seen: first,
        last_seen: last,
        client: a.client,
        agency: label.agency.clone(),
        unit: label.unit.clone(),
        method: a.hit.method,
        target: a.target.clone(),
        server: a.server,
        port: a.port,
        proto: a.proto.clone(),
        rule: a.hit.rule.clone(),
        list: a.hit.list.clone(),
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agencies() -> AgencyMap {
        AgencyMap::new(&crate::inventory::view_of(
            "[[agencies]]\ncode = \"dinkes\"\n[[agencies.units]]\ncode = \"umum\"\nsubnets = [\"10.1.1.0/24\"]\n[[nodes]]\nid = \"n\"\nagency = \"dinkes\"\n",
            "n",
        ))
    }

    fn attempt(ts_s: u64, client: &str, target: &str) -> Attempt {
        Attempt {
            ts: ts_s * NS,
            client: client.parse().expect("ip"),
            hit: RuleHit {
                method: BlockMethod::Sni,
                rule: "slot88.example".into(),
                list: "judi".into(),
            },
            target: target.into(),
            server: Some("198.51.100.7".parse().expect("ip")),
            port: Some(443),
            proto: "tcp".into(),
        }
    }

    #[test]
    fn first_attempt_at_once_repeats_folded_per_window() {
        let map = agencies();
        let mut log = AttemptLog::new(10, 100);
        let mut out = Vec::new();
        let mut push = |r: BlockedAttempt| out.push(r);
        log.record(attempt(100, "10.1.1.5", "slot88.example"), &map, &mut push);
        for s in 101..=105 {
            log.record(attempt(s, "10.1.1.5", "slot88.example"), &map, &mut push);
        }
        log.tick(109 * NS, &map, &mut push);
        log.tick(110 * NS, &map, &mut push);
        // Another client is its own key.
        log.record(attempt(111, "10.9.9.9", "slot88.example"), &map, &mut push);
        log.record(attempt(112, "10.1.1.5", "slot88.example"), &map, &mut push);
        log.flush(&map, &mut push);
        let got: Vec<(u32, u64, u64, &str, &str)> = out
            .iter()
            .map(|r| {
                (
                    r.attempts,
                    r.first_seen / NS,
                    r.last_seen / NS,
                    r.client.to_string().leak() as &str,
                    r.unit.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, 100, 100, "10.1.1.5", "umum"),
                (5, 101, 105, "10.1.1.5", "umum"),
                (1, 111, 111, "10.9.9.9", "unknown"),
                (1, 112, 112, "10.1.1.5", "umum"),
            ]
        );
        assert_eq!(out[0].agency, "dinkes");
        let total: u32 = out.iter().map(|r| r.attempts).sum();
        assert_eq!(u64::from(total), log.stats().attempts);
    }

    #[test]
    fn quiet_keys_are_forgotten_and_the_cap_loses_nothing() {
        let map = agencies();
        let mut log = AttemptLog::new(1, 2);
        let mut out = Vec::new();
        let mut push = |r: BlockedAttempt| out.push(r);
        for (i, t) in ["a.example", "b.example", "c.example"].iter().enumerate() {
            log.record(attempt(10 + i as u64, "10.1.1.5", t), &map, &mut push);
        }
        // c was not folded (cap of 2): its repeat is reported on its own.
        log.record(attempt(12, "10.1.1.5", "c.example"), &map, &mut push);
        assert_eq!(log.stats().unfolded, 2);
        log.tick(20 * NS, &map, &mut push);
        log.tick(30 * NS, &map, &mut push);
        assert!(log.open.is_empty(), "quiet keys forgotten");
        assert_eq!(out.len(), 4);
        assert_eq!(out.iter().map(|r| r.attempts).sum::<u32>(), 4);
    }
}

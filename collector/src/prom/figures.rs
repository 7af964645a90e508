//! Figures the store writer feeds as it commits batches, kept in memory so
//! a scrape reads them without touching the flow database: bytes per
//! agency, scope and direction (totals, and the last seconds for the
//! current rate), and blocked attempts per method and list.
//!
//! Process-wide, like the `metrics` recorder: one collector per process.
//! Label values stay bounded whatever agents send: agencies are the ones
//! the inventory gives the sending node (the writer's), methods are the
//! protocol's enum, list names are checked and capped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use simpul_proto::counters::CounterSample;
use simpul_proto::flow::TrafficScope;
use simpul_proto::wire::Batch;

/// Seconds of per-second traffic kept per agency (the rate reads the last
/// few complete ones; late batches still count in the totals).
const KEEP_SECS: u64 = 30;
/// Distinct list labels at most; others are counted as `other`.
pub const MAX_LISTS: usize = 64;
const MAX_LIST_NAME: usize = 48;

/// Bytes of one agency.
#[derive(Debug, Default, Clone)]
pub struct AgencyBytes {
    /// `[scope][direction]`: scope 0 internet, 1 intranet; direction 0 in
    /// (towards the agency), 1 out.
    pub total: [[u64; 2]; 2],
    /// Per second of packet time: bytes in and out (both scopes), and the
    /// same per scope.
    seconds: BTreeMap<u64, [[u64; 2]; 2]>,
}

impl AgencyBytes {
    /// Average bytes/s per `[scope][direction]` over the `window` whole
    /// seconds ending before `end` (Unix seconds).
    pub fn rate(&self, end: u64, window: u64) -> [[f64; 2]; 2] {
        let w = window.max(1);
        let mut sum = [[0u64; 2]; 2];
        for (_, b) in self.seconds.range(end.saturating_sub(w)..end) {
            for s in 0..2 {
                for d in 0..2 {
                    sum[s][d] = sum[s][d].saturating_add(b[s][d]);
                }
            }
        }
        sum.map(|s| s.map(|b| b as f64 / w as f64))
    }
}

#[derive(Default)]
pub struct Figures {
    agencies: Mutex<HashMap<String, AgencyBytes>>,
    blocked: Mutex<BTreeMap<(&'static str, String), u64>>,
}

pub fn figures() -> &'static Figures {
    static F: OnceLock<Figures> = OnceLock::new();
    F.get_or_init(Figures::default)
}

fn scope_index(s: TrafficScope) -> usize {
    match s {
        TrafficScope::Internet => 0,
        TrafficScope::Intranet => 1,
    }
}

impl Figures {
    /// A batch of `agency`'s node was stored (duplicates are not: they
    /// were counted when first stored).
    pub fn stored(&self, agency: &str, batch: &Batch, now_secs: u64) {
        if !batch.counters.is_empty() {
            self.traffic(agency, &batch.counters, now_secs);
        }
        if !batch.blocked.is_empty() {
            let mut g = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
            for b in &batch.blocked {
                let list = bounded_list(&g, &b.list);
                *g.entry((b.method.name(), list)).or_default() += u64::from(b.attempts);
            }
        }
    }

    fn traffic(&self, agency: &str, samples: &[CounterSample], now_secs: u64) {
        let mut g = self.agencies.lock().unwrap_or_else(|p| p.into_inner());
        let a = match g.get_mut(agency) {
            Some(a) => a,
            None => g.entry(agency.to_string()).or_default(),
        };
        let oldest = now_secs.saturating_sub(KEEP_SECS);
        for c in samples {
            let s = scope_index(c.scope);
            a.total[s][0] = a.total[s][0].saturating_add(c.bytes_in);
            a.total[s][1] = a.total[s][1].saturating_add(c.bytes_out);
            if c.ts >= oldest && c.ts <= now_secs + 1 {
                let sec = a.seconds.entry(c.ts).or_default();
                sec[s][0] = sec[s][0].saturating_add(c.bytes_in);
                sec[s][1] = sec[s][1].saturating_add(c.bytes_out);
            }
        }
        a.seconds = a.seconds.split_off(&oldest);
    }

    /// Every agency's bytes (a copy).
    pub fn agencies(&self) -> HashMap<String, AgencyBytes> {
        self.agencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Blocked attempts per (method, list).
    pub fn blocked(&self) -> BTreeMap<(&'static str, String), u64> {
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The list label of a blocked attempt: its list name when it looks like
/// one (policy sections and category names are short lowercase words) and
/// the number of distinct names stays under [`MAX_LISTS`]; `other`
/// otherwise, so a misbehaving agent cannot grow the series without bound.
fn bounded_list(seen: &BTreeMap<(&'static str, String), u64>, list: &str) -> String {
    let plausible = !list.is_empty()
        && list.len() <= MAX_LIST_NAME
        && list
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !plausible {
        return "other".into();
    }
    if seen.keys().any(|(_, l)| l == list) {
        return list.to_string();
    }
    let distinct: std::collections::BTreeSet<&str> = seen.keys().map(|(_, l)| l.as_str()).collect();
    if distinct.len() >= MAX_LISTS {
        "other".into()
    } else {
        list.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::blocked::{BlockMethod, BlockedAttempt};

    fn sample(ts: u64, scope: TrafficScope, bytes_in: u64, bytes_out: u64) -> CounterSample {
        CounterSample {
            ts,
            agency: "dinkes".into(),
            unit: "u".into(),
            scope,
            bytes_in,
            bytes_out,
            packets_in: 1,
            packets_out: 1,
        }
    }

    fn batch(counters: Vec<CounterSample>, blocked: Vec<BlockedAttempt>) -> Batch {
        Batch {
            boot_epoch: 1,
            seq: 1,
            sealed_ms: 0,
            flows: vec![],
            counters,
            blocked,
            dropped_records: 0,
            dropped_batches: 0,
        }
    }

    #[test]
    fn totals_and_rate_over_whole_seconds() {
        let f = Figures::default();
        let now = 1_000_000;
        let mut c = Vec::new();
        for ts in now - 6..now {
            c.push(sample(ts, TrafficScope::Internet, 1000, 100));
        }
        c.push(sample(now - 3, TrafficScope::Intranet, 500, 0));
        // Too old for the rate, still counted in the totals.
        c.push(sample(now - 600, TrafficScope::Internet, 7, 0));
        f.stored("dinkes", &batch(c, vec![]), now);
        let a = &f.agencies()["dinkes"];
        assert_eq!(a.total[0], [6007, 600]);
        assert_eq!(a.total[1], [500, 0]);
        // [now-7, now-2): five seconds, of which now-6..now-2 carry data.
        let r = a.rate(now - 2, 5);
        assert_eq!(r[0][0], 4.0 * 1000.0 / 5.0);
        assert_eq!(r[0][1], 4.0 * 100.0 / 5.0);
        assert_eq!(r[1][0], 500.0 / 5.0);
        assert_eq!(a.seconds.len(), 6, "the old second is not kept");
    }

    fn attempt(method: BlockMethod, list: &str, attempts: u32) -> BlockedAttempt {
        BlockedAttempt {
            first_seen: 0,
            last_seen: 0,
            client: "10.1.2.3".parse().unwrap(),
            agency: "dinkes".into(),
            unit: "u".into(),
            method,
            target: "judi.example".into(),
            server: None,
            port: None,
            proto: "udp".into(),
            rule: "judi.example".into(),
            list: list.into(),
            attempts,
        }
    }

    #[test]
    fn blocked_lists_are_bounded() {
        let f = Figures::default();
        let mut b = vec![
            attempt(BlockMethod::Dns, "judi", 3),
            attempt(BlockMethod::Dns, "judi", 2),
            attempt(BlockMethod::Sni, "Evil\"List", 1),
        ];
        for i in 0..(MAX_LISTS + 10) {
            b.push(attempt(BlockMethod::Http, &format!("l{i}"), 1));
        }
        f.stored("dinkes", &batch(vec![], b), 0);
        let got = f.blocked();
        assert_eq!(got[&("dns", "judi".to_string())], 5);
        assert_eq!(got[&("sni", "other".to_string())], 1);
        let lists: std::collections::BTreeSet<&str> = got.keys().map(|(_, l)| l.as_str()).collect();
        assert!(lists.len() <= MAX_LISTS + 1, "{}", lists.len());
        assert!(got[&("http", "other".to_string())] >= 10);
    }
}

//! Conditions of a node that is up but not well, from its heartbeats: the
//! clock is off, capture is dropping packets, the spool is nearly full, the
//! policy does not apply. Pure; each condition has hysteresis so a value
//! hovering at the threshold does not alert on every heartbeat.

use std::collections::HashMap;

use simpul_proto::wire::Health;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConditionConfig {
    /// |agent clock − collector clock| above this is a clock problem.
    pub max_clock_skew_ms: i64,
    /// Spool above this fraction of its quota.
    pub spool_fraction: f64,
    /// Capture drops growing in this many heartbeats in a row.
    pub drop_heartbeats: u32,
    /// A policy failure is cleared after this many heartbeats without one.
    pub policy_clear_heartbeats: u32,
    /// A heartbeat is a clock sample only when it arrived this long or
    /// longer after the one before (closer: part of a held backlog the link
    /// delivered at once)…
    pub skew_min_gap_ms: u64,
    /// …and no longer than this after it (further: the first after a
    /// silence, which may have waited on the way as long as the silence).
    pub skew_max_gap_ms: u64,
}

impl Default for ConditionConfig {
    fn default() -> Self {
        ConditionConfig {
            max_clock_skew_ms: 5_000,
            spool_fraction: 0.9,
            drop_heartbeats: 3,
            policy_clear_heartbeats: 30,
            // Half and twice the default 2 s heartbeat interval.
            skew_min_gap_ms: 1_000,
            skew_max_gap_ms: 4_000,
        }
    }
}

/// The incident kind a condition is recorded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    ClockSkew,
    CaptureDrops,
    SpoolNearQuota,
    /// The agent dropped records (spool quota, corrupt files): data lost.
    SpoolLoss,
    PolicyFailing,
    /// An agency near its allocation (from `AllocationWatch`).
    AllocationHigh,
}

impl Condition {
    /// `clock_skew` or `agent_health` (notification kinds).
    pub fn kind(self) -> &'static str {
        match self {
            Condition::ClockSkew => "clock_skew",
            Condition::AllocationHigh => "allocation_high",
            _ => "agent_health",
        }
    }
}

/// A condition starting or ending, with what was seen (Bahasa Indonesia).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub condition: Condition,
    pub active: bool,
    pub detail: String,
}

/// Heartbeats whose clock difference is considered together.
const SKEW_SAMPLES: usize = 5;

#[derive(Debug, Default)]
struct NodeState {
    /// Recent (agent − collector) clock differences. A heartbeat held up on
    /// the way (a link coming back flushes a backlog) looks like an agent
    /// clock that is behind, never ahead, so the largest of recent samples
    /// is the best estimate of the real difference.
    skews: std::collections::VecDeque<i64>,
    /// When the last heartbeat arrived (collector clock).
    last_arrival_ms: Option<u64>,
    drops: Option<u64>,
    growing: u32,
    quiet: u32,
    policy_failures: Option<u64>,
    since_policy_failure: u32,
    /// The agent's lost records at the last heartbeat (it keeps the count
    /// across its restarts).
    lost: Option<u64>,
    since_loss: u32,
    active: Vec<Condition>,
}

#[derive(Debug, Default)]
pub struct Conditions {
    cfg: ConditionConfig,
    nodes: HashMap<String, NodeState>,
}

impl Conditions {
    pub fn new(cfg: ConditionConfig) -> Self {
        Conditions {
            cfg,
            nodes: HashMap::new(),
        }
    }

    /// One heartbeat's health and the clock difference it showed, arrived
    /// at `at_ms`.
    pub fn observe(&mut self, node: &str, h: &Health, skew_ms: i64, at_ms: u64) -> Vec<Change> {
        let cfg = self.cfg;
        // Looked up before inserting: a heartbeat allocates nothing here.
        if !self.nodes.contains_key(node) {
            self.nodes.insert(node.to_string(), NodeState::default());
        }
        let Some(st) = self.nodes.get_mut(node) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut set = |st: &mut NodeState, c: Condition, on: bool, detail: String| {
            let was = st.active.contains(&c);
            if on && !was {
                st.active.push(c);
                out.push(Change {
                    condition: c,
                    active: true,
                    detail,
                });
            } else if !on && was {
                st.active.retain(|x| *x != c);
                out.push(Change {
                    condition: c,
                    active: false,
                    detail,
                });
            }
        };

        // Clock: on above the limit, off below half of it, judged on the
        // least-delayed of recent heartbeats that came in the agent's
        // rhythm. A link that comes back after a cut delivers every
        // heartbeat it held in one burst, each as old as its wait; enough
        // of them would fill the samples and read as a clock behind.
        let in_rhythm = st.last_arrival_ms.replace(at_ms).is_some_and(|prev| {
            let gap = at_ms.saturating_sub(prev);
            (cfg.skew_min_gap_ms..=cfg.skew_max_gap_ms).contains(&gap)
        });
        if in_rhythm {
            st.skews.push_back(skew_ms);
            if st.skews.len() > SKEW_SAMPLES {
                st.skews.pop_front();
            }
        }
        let skew_ms = st.skews.iter().copied().max().unwrap_or(skew_ms);
        let skew = if st.skews.len() < SKEW_SAMPLES {
            0
        } else {
            skew_ms.saturating_abs()
        };
        let skew_on = st.active.contains(&Condition::ClockSkew);
        if skew > cfg.max_clock_skew_ms || (skew_on && skew > cfg.max_clock_skew_ms / 2) {
            set(
                st,
                Condition::ClockSkew,
                true,
                format!(
                    "jam agen selisih {:.1} dtk dari collector",
                    skew_ms as f64 / 1000.0
                ),
            );
        } else {
            set(
                st,
                Condition::ClockSkew,
                false,
                "jam agen kembali sesuai".into(),
            );
        }

        // Capture drops growing heartbeat after heartbeat.
        let drops: u64 = h
            .interfaces
            .iter()
            .map(|i| i.kernel_drops.saturating_add(i.queue_drops))
            .sum();
        match st.drops {
            Some(prev) if drops > prev => {
                st.growing += 1;
                st.quiet = 0;
            }
            Some(_) => {
                st.quiet += 1;
                st.growing = 0;
            }
            None => {}
        }
        let prev = st.drops.replace(drops);
        if st.growing >= cfg.drop_heartbeats.max(1) {
            set(
                st,
                Condition::CaptureDrops,
                true,
                format!(
                    "capture kehilangan paket ({} paket sejak heartbeat sebelumnya)",
                    drops.saturating_sub(prev.unwrap_or(drops))
                ),
            );
        } else if st.quiet >= cfg.drop_heartbeats.max(1) {
            set(
                st,
                Condition::CaptureDrops,
                false,
                "capture tidak lagi kehilangan paket".into(),
            );
        }

        // Spool: on above the fraction, off below 80 % of it.
        if h.spool_quota_bytes > 0 {
            let used = h.spool_bytes as f64 / h.spool_quota_bytes as f64;
            let on = st.active.contains(&Condition::SpoolNearQuota);
            if used >= cfg.spool_fraction || (on && used >= cfg.spool_fraction * 0.8) {
                set(
                    st,
                    Condition::SpoolNearQuota,
                    true,
                    format!(
                        "spool agen {:.0} % dari kuota (collector tak terjangkau?)",
                        used * 100.0
                    ),
                );
            } else {
                set(
                    st,
                    Condition::SpoolNearQuota,
                    false,
                    "spool agen kembali normal".into(),
                );
            }
        }

        // Records lost: any new loss; cleared after a quiet while. The
        // first heartbeat only sets the baseline (the agent's count covers
        // its whole life; losses before are on the node's page).
        match st.lost.replace(h.spool_dropped_records) {
            Some(prev) if h.spool_dropped_records > prev => {
                st.since_loss = 0;
                set(
                    st,
                    Condition::SpoolLoss,
                    true,
                    format!(
                        "agen membuang {} rekaman (kuota spool penuh atau berkas rusak; total {})",
                        h.spool_dropped_records - prev,
                        h.spool_dropped_records
                    ),
                );
            }
            Some(_) => {
                st.since_loss += 1;
                if st.since_loss >= cfg.policy_clear_heartbeats {
                    set(
                        st,
                        Condition::SpoolLoss,
                        false,
                        "agen tidak lagi membuang rekaman".into(),
                    );
                }
            }
            None => {}
        }

        // Policy failures: any new one; cleared after a quiet while.
        match st.policy_failures.replace(h.policy_failures) {
            Some(prev) if h.policy_failures > prev => {
                st.since_policy_failure = 0;
                set(
                    st,
                    Condition::PolicyFailing,
                    true,
                    format!(
                        "kebijakan gagal diterapkan ({} kali sejak agen mulai)",
                        h.policy_failures
                    ),
                );
            }
            Some(_) => {
                st.since_policy_failure += 1;
                if st.since_policy_failure >= cfg.policy_clear_heartbeats {
                    set(
                        st,
                        Condition::PolicyFailing,
                        false,
                        format!("kebijakan versi {} berlaku", h.policy_version),
                    );
                }
            }
            None => {}
        }
        out
    }

    /// Conditions active for `node` now.
    pub fn active(&self, node: &str) -> Vec<Condition> {
        self.nodes
            .get(node)
            .map(|s| s.active.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::wire::InterfaceHealth;

    fn health(drops: u64, spool: u64, failures: u64) -> Health {
        Health {
            interfaces: vec![InterfaceHealth {
                name: "eth1".into(),
                frames: 1,
                kernel_drops: drops,
                queue_drops: 0,
            }],
            spool_bytes: spool,
            spool_quota_bytes: 1000,
            policy_failures: failures,
            policy_version: 3,
            ..Default::default()
        }
    }

    thread_local! {
        /// Arrival times of `changes`' heartbeats: 2 s apart.
        static ARRIVAL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    fn changes(c: &mut Conditions, h: &Health, skew: i64) -> Vec<(Condition, bool)> {
        let at = ARRIVAL.with(|a| {
            a.set(a.get() + 2_000);
            a.get()
        });
        c.observe("n", h, skew, at)
            .into_iter()
            .map(|x| (x.condition, x.active))
            .collect()
    }

    #[test]
    fn clock_skew_with_hysteresis() {
        let mut c = Conditions::new(ConditionConfig::default());
        let mut feed = |skews: &[i64]| -> Vec<(Condition, bool)> {
            skews
                .iter()
                .flat_map(|s| changes(&mut c, &health(0, 0, 0), *s))
                .collect()
        };
        // A backlog of delayed heartbeats (a link coming back) is not skew.
        assert!(feed(&[0, 0, -20_000, -15_000, -9_000, 0]).is_empty());
        assert_eq!(feed(&[-6_000; 5]), [(Condition::ClockSkew, true)]);
        assert!(feed(&[4_000; 5]).is_empty(), "hysteresis");
        assert_eq!(feed(&[1_000; 5]), [(Condition::ClockSkew, false)]);
    }

    #[test]
    fn heartbeats_a_cut_link_held_and_delivers_at_once_are_not_a_clock_off() {
        let cfg = ConditionConfig::default();
        let mut c = Conditions::new(cfg);
        let h = health(0, 0, 0);
        let mut seen = Vec::new();
        let mut at = 0;
        for _ in 0..10 {
            at += 2_000;
            seen.extend(c.observe("n", &h, 0, at));
        }
        // Cut for 18 s: the 6 heartbeats sent before the agent gave the
        // session up arrive together when the link is back, each as late
        // as it waited (the freshest 7 s), then the agent goes on in its
        // rhythm.
        let cut = at;
        at += 18_000;
        for k in 0..6u64 {
            let sent = cut + 1_000 + k * 2_000;
            let skew = sent as i64 - at as i64;
            seen.extend(c.observe("n", &h, skew, at + k));
        }
        for _ in 0..10 {
            at += 2_000;
            seen.extend(c.observe("n", &h, 0, at));
        }
        assert!(seen.is_empty(), "{seen:?}");
        // An agent whose clock really is off, in its rhythm, still is.
        for _ in 0..5 {
            at += 2_000;
            seen.extend(c.observe("n", &h, -6_000, at));
        }
        let on: Vec<_> = seen.iter().map(|x| (x.condition, x.active)).collect();
        assert_eq!(on, [(Condition::ClockSkew, true)]);
    }

    #[test]
    fn drops_must_keep_growing_and_stop_for_a_while() {
        let mut c = Conditions::new(ConditionConfig::default());
        let mut seen = Vec::new();
        for d in [0, 5, 5, 9, 12, 20, 20, 20, 20] {
            seen.extend(changes(&mut c, &health(d, 0, 0), 0));
        }
        assert_eq!(
            seen,
            [
                (Condition::CaptureDrops, true),
                (Condition::CaptureDrops, false)
            ]
        );
    }

    #[test]
    fn spool_and_policy_failures() {
        let mut c = Conditions::new(ConditionConfig::default());
        assert!(changes(&mut c, &health(0, 100, 0), 0).is_empty());
        assert_eq!(
            changes(&mut c, &health(0, 950, 0), 0),
            [(Condition::SpoolNearQuota, true)]
        );
        assert!(
            changes(&mut c, &health(0, 800, 0), 0).is_empty(),
            "hysteresis"
        );
        assert_eq!(
            changes(&mut c, &health(0, 100, 1), 0),
            [
                (Condition::SpoolNearQuota, false),
                (Condition::PolicyFailing, true)
            ]
        );
        let mut off = Vec::new();
        for _ in 0..30 {
            off.extend(changes(&mut c, &health(0, 100, 1), 0));
        }
        assert_eq!(off, [(Condition::PolicyFailing, false)]);
        assert!(c.active("n").is_empty());
    }

    #[test]
    fn records_lost_by_the_spool() {
        let mut c = Conditions::new(ConditionConfig::default());
        let lost = |n: u64| Health {
            spool_dropped_records: n,
            ..health(0, 0, 0)
        };
        // What the agent lost before (its count survives its restarts) is
        // the baseline, not news.
        assert!(changes(&mut c, &lost(500), 0).is_empty());
        assert!(changes(&mut c, &lost(500), 0).is_empty());
        assert_eq!(
            changes(&mut c, &lost(800), 0),
            [(Condition::SpoolLoss, true)]
        );
        let mut off = Vec::new();
        for _ in 0..30 {
            off.extend(changes(&mut c, &lost(800), 0));
        }
        assert_eq!(off, [(Condition::SpoolLoss, false)]);
        assert_eq!(Condition::SpoolLoss.kind(), "agent_health");
    }
}

/// An agency using ≥ `pct` % of its internet allocation (either direction)
/// for `hold_ms`: the allocation may be too small, or something is
/// hogging it. Cleared after `hold_ms` below `pct` − 5.
#[derive(Debug)]
pub struct AllocationWatch {
    pct: f64,
    hold_ms: u64,
    agencies: HashMap<String, AllocState>,
}

#[derive(Debug, Default)]
struct AllocState {
    above_since: Option<u64>,
    below_since: Option<u64>,
    active: bool,
}

impl AllocationWatch {
    pub fn new(pct: f64, hold_ms: u64) -> Self {
        AllocationWatch {
            pct,
            hold_ms,
            agencies: HashMap::new(),
        }
    }

    /// Utilisation of `agency` (percent of allocation) at `now_ms`.
    /// Returns `Some((active, detail))` when the condition starts or ends.
    pub fn observe(&mut self, agency: &str, used_pct: f64, now_ms: u64) -> Option<(bool, String)> {
        let st = self.agencies.entry(agency.to_string()).or_default();
        if used_pct >= self.pct {
            st.below_since = None;
            let since = *st.above_since.get_or_insert(now_ms);
            if !st.active && now_ms.saturating_sub(since) >= self.hold_ms {
                st.active = true;
                return Some((
                    true,
                    format!(
                        "pemakaian {used_pct:.0} % dari alokasi selama {} mnt",
                        self.hold_ms / 60_000
                    ),
                ));
            }
        } else {
            st.above_since = None;
            if used_pct < self.pct - 5.0 {
                let since = *st.below_since.get_or_insert(now_ms);
                if st.active && now_ms.saturating_sub(since) >= self.hold_ms {
                    st.active = false;
                    return Some((false, format!("pemakaian turun ke {used_pct:.0} %")));
                }
            } else {
                st.below_since = None;
            }
        }
        None
    }
}

#[cfg(test)]
mod allocation_tests {
    use super::*;

    #[test]
    fn sustained_use_alerts_once_and_clears_after_a_quiet_while() {
        let mut w = AllocationWatch::new(95.0, 300_000);
        let mut out = Vec::new();
        // 4 min at 97 %, a dip, then 6 min at 98 %, then 10 min at 50 %.
        let mut t = 0;
        let mut step = |pct: f64, secs: u64, out: &mut Vec<(u64, bool)>| {
            for _ in 0..secs / 5 {
                if let Some((a, _)) = w.observe("dinkes", pct, t) {
                    out.push((t / 1000, a));
                }
                t += 5_000;
            }
        };
        step(97.0, 240, &mut out);
        step(60.0, 10, &mut out);
        step(98.0, 360, &mut out);
        step(93.0, 120, &mut out);
        step(50.0, 600, &mut out);
        assert_eq!(out, [(250 + 300, true), (250 + 360 + 120 + 300, false)]);
    }
}

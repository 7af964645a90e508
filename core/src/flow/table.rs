//! The flow table: bidirectional flows, their counters and their ends.
//!
//! Pure logic over packet metadata and timestamps (nanoseconds); no clock, no
//! I/O. Each flow carries an extension `X` owned by the caller (naming state,
//! agency attribution) so this module stays testable on its own.

use hashbrown::HashMap;
use simpul_proto::{EndReason, RecordKind};

use super::key::{FlowKey, Side};
use crate::decode::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

const NS: u64 = 1_000_000_000;

/// Per-direction counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirCounters {
    pub packets: u64,
    /// IP-layer bytes.
    pub bytes: u64,
    /// Union of TCP flags.
    pub tcp_flags: u8,
}

/// Direction of a packet relative to the flow's initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Initiator → responder.
    Up,
    /// Responder → initiator.
    Down,
}

/// Everything the table itself tracks for one flow.
#[derive(Debug, Clone, Copy)]
pub struct FlowCore {
    pub id: u64,
    pub initiator: Side,
    pub first_ts: u64,
    pub last_ts: u64,
    /// Indexed by [`Side::index`].
    pub sides: [DirCounters; 2],
    fin_seen: [bool; 2],
    /// Set when both sides sent FIN or one sent RST; trailing packets still count.
    closing: Option<(u64, EndReason)>,
    last_export_ts: u64,
    packets_at_export: u64,
}

impl FlowCore {
    pub fn up(&self) -> &DirCounters {
        &self.sides[self.initiator.index()]
    }
    pub fn down(&self) -> &DirCounters {
        &self.sides[self.initiator.other().index()]
    }
    pub fn packets(&self) -> u64 {
        self.sides[0].packets + self.sides[1].packets
    }
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }
}

#[derive(Debug)]
pub struct Flow<X> {
    pub core: FlowCore,
    pub ext: X,
}

/// Timeouts and cap, in table units.
#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    pub idle_ns: u64,
    pub active_ns: u64,
    pub linger_ns: u64,
    pub max_flows: usize,
}

impl FlowLimits {
    pub fn from_secs(idle: u64, active: u64, linger: u64, max_flows: usize) -> Self {
        Self {
            idle_ns: idle.saturating_mul(NS),
            active_ns: active.saturating_mul(NS),
            linger_ns: linger.saturating_mul(NS),
            max_flows,
        }
    }
}

impl Default for FlowLimits {
    /// idle 60 s, active 60 s, TCP close linger 2 s, 500 000 flows.
    fn default() -> Self {
        Self::from_secs(60, 60, 2, 500_000)
    }
}

/// Counters of the table's own activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    pub ended_idle: u64,
    pub ended_fin: u64,
    pub ended_rst: u64,
    pub ended_shutdown: u64,
    /// Flows pushed out by the memory cap (each still exported).
    pub evicted: u64,
    pub interim_records: u64,
}

/// One export, handed to the caller's closure; the flow is gone after a final one.
pub struct Export<'a, X> {
    pub key: &'a FlowKey,
    pub core: &'a FlowCore,
    pub ext: &'a mut X,
    pub kind: RecordKind,
    pub reason: EndReason,
}

/// What [`FlowTable::observe`] did with a packet.
pub struct Observed<'a, X> {
    pub flow: &'a mut Flow<X>,
    pub created: bool,
    pub direction: Direction,
}

pub struct FlowTable<X> {
    map: HashMap<FlowKey, Flow<X>>,
    limits: FlowLimits,
    next_id: u64,
    /// Ids advance by this much, so shards of one capture never hand out the same id.
    id_step: u64,
    stats: FlowStats,
}

impl<X: Default> FlowTable<X> {
    pub fn new(limits: FlowLimits) -> Self {
        Self {
            map: HashMap::with_capacity(limits.max_flows.min(1 << 16)),
            limits,
            next_id: 1,
            id_step: 1,
            stats: FlowStats::default(),
        }
    }

    /// Number flows `first`, `first + step`, …: table `i` of `n` shards
    /// uses (i + 1, n), so ids stay unique across the shards of one capture.
    pub fn set_ids(&mut self, first: u64, step: u64) {
        self.next_id = first.max(1);
        self.id_step = step.max(1);
    }

    /// Add another table's activity counters to this one's (shards merged at the end).
    pub fn absorb_stats(&mut self, other: &FlowStats) {
        let s = &mut self.stats;
        s.created += other.created;
        s.ended_idle += other.ended_idle;
        s.ended_fin += other.ended_fin;
        s.ended_rst += other.ended_rst;
        s.ended_shutdown += other.ended_shutdown;
        s.evicted += other.evicted;
        s.interim_records += other.interim_records;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    /// Account one packet of `ip_len` bytes sent by `sender`.
    pub fn observe<F>(
        &mut self,
        key: FlowKey,
        sender: Side,
        ts: u64,
        ip_len: u32,
        tcp_flags: Option<u8>,
        export: &mut F,
    ) -> Observed<'_, X>
    where
        F: FnMut(Export<'_, X>),
    {
        let flags = tcp_flags.unwrap_or(0);
        let is_new_syn = flags & (TCP_SYN | TCP_ACK) == TCP_SYN;

        // A fresh SYN on a closed 5-tuple is a new connection (port reuse).
        let restart = is_new_syn && self.map.get(&key).is_some_and(|f| f.core.closing.is_some());
        if restart {
            if let Some(mut old) = self.map.remove(&key) {
                let reason = old.core.closing.map_or(EndReason::Fin, |(_, r)| r);
                self.count_end(reason);
                export(Export {
                    key: &key,
                    core: &old.core,
                    ext: &mut old.ext,
                    kind: RecordKind::Final,
                    reason,
                });
            }
        }

        if self.map.len() >= self.limits.max_flows && !self.map.contains_key(&key) {
            self.evict_oldest(export);
        }
        let mut created = false;
        let next_id = &mut self.next_id;
        let id_step = self.id_step;
        let stats = &mut self.stats;
        // One hash lookup for the common case of a known flow.
        let flow = self.map.entry(key).or_insert_with(|| {
            // A SYN-ACK without the SYN still tells us who initiated.
            let initiator = if flags & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK) {
                sender.other()
            } else {
                sender
            };
            let id = *next_id;
            *next_id += id_step;
            stats.created += 1;
            created = true;
            Flow {
                core: FlowCore {
                    id,
                    initiator,
                    first_ts: ts,
                    last_ts: ts,
                    sides: [DirCounters::default(); 2],
                    fin_seen: [false; 2],
                    closing: None,
                    last_export_ts: ts,
                    packets_at_export: 0,
                },
                ext: X::default(),
            }
        });
        let core = &mut flow.core;
        let c = &mut core.sides[sender.index()];
        c.packets += 1;
        c.bytes += u64::from(ip_len);
        c.tcp_flags |= flags;
        // Packets of a pcap can be slightly out of order across interfaces.
        core.last_ts = core.last_ts.max(ts);
        core.first_ts = core.first_ts.min(ts);
        if core.closing.is_none() {
            if flags & TCP_RST != 0 {
                core.closing = Some((ts, EndReason::Rst));
            } else if flags & TCP_FIN != 0 {
                core.fin_seen[sender.index()] = true;
                if core.fin_seen[0] && core.fin_seen[1] {
                    core.closing = Some((ts, EndReason::Fin));
                }
            }
        }
        let direction = if sender == core.initiator {
            Direction::Up
        } else {
            Direction::Down
        };
        Observed {
            flow,
            created,
            direction,
        }
    }

    /// Credit a packet to an existing flow without creating one (IP fragments
    /// after the first). Returns false when the flow is unknown.
    pub fn credit(
        &mut self,
        key: &FlowKey,
        sender: Side,
        ts: u64,
        packets: u64,
        bytes: u64,
    ) -> bool {
        match self.map.get_mut(key) {
            Some(f) => {
                let c = &mut f.core.sides[sender.index()];
                c.packets += packets;
                c.bytes += bytes;
                f.core.last_ts = f.core.last_ts.max(ts);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, key: &FlowKey) -> Option<&Flow<X>> {
        self.map.get(key)
    }

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Flow<X>> {
        self.map.get_mut(key)
    }

    /// Visit every flow (re-attribution after an inventory change).
    pub fn for_each_mut<F: FnMut(&FlowKey, &FlowCore, &mut X)>(&mut self, mut f: F) {
        for (key, flow) in self.map.iter_mut() {
            f(key, &flow.core, &mut flow.ext);
        }
    }

    /// End idle and closed flows, and emit interim records for long ones.
    pub fn sweep<F>(&mut self, now: u64, export: &mut F)
    where
        F: FnMut(Export<'_, X>),
    {
        let limits = self.limits;
        let stats = &mut self.stats;
        self.map.retain(|key, flow| {
            let core = &mut flow.core;
            let reason = match core.closing {
                Some((at, r)) if now.saturating_sub(at) >= limits.linger_ns => Some(r),
                _ if now.saturating_sub(core.last_ts) >= limits.idle_ns => Some(EndReason::Idle),
                _ => None,
            };
            if let Some(reason) = reason {
                match reason {
                    EndReason::Fin => stats.ended_fin += 1,
                    EndReason::Rst => stats.ended_rst += 1,
                    _ => stats.ended_idle += 1,
                }
                export(Export {
                    key,
                    core,
                    ext: &mut flow.ext,
                    kind: RecordKind::Final,
                    reason,
                });
                return false;
            }
            if now.saturating_sub(core.last_export_ts) >= limits.active_ns {
                core.last_export_ts = now;
                if core.packets() > core.packets_at_export {
                    core.packets_at_export = core.packets();
                    stats.interim_records += 1;
                    export(Export {
                        key,
                        core,
                        ext: &mut flow.ext,
                        kind: RecordKind::Interim,
                        reason: EndReason::Active,
                    });
                }
            }
            true
        });
    }

    /// End every flow (end of capture). Flows already closing keep their reason.
    pub fn flush<F>(&mut self, export: &mut F)
    where
        F: FnMut(Export<'_, X>),
    {
        let mut flows: Vec<(FlowKey, Flow<X>)> = self.map.drain().collect();
        // Deterministic output order: by start time, then id.
        flows.sort_unstable_by_key(|(_, f)| (f.core.first_ts, f.core.id));
        for (key, mut flow) in flows {
            let reason = flow.core.closing.map_or(EndReason::Shutdown, |(_, r)| r);
            self.count_end(reason);
            export(Export {
                key: &key,
                core: &flow.core,
                ext: &mut flow.ext,
                kind: RecordKind::Final,
                reason,
            });
        }
    }

    fn count_end(&mut self, reason: EndReason) {
        match reason {
            EndReason::Fin => self.stats.ended_fin += 1,
            EndReason::Rst => self.stats.ended_rst += 1,
            EndReason::Idle => self.stats.ended_idle += 1,
            _ => self.stats.ended_shutdown += 1,
        }
    }

    /// Make room: export and drop the least recently seen sixteenth of the
    /// table at once, so a full table costs O(1) amortised per new flow.
    fn evict_oldest<F>(&mut self, export: &mut F)
    where
        F: FnMut(Export<'_, X>),
    {
        let n = (self.map.len() / 16).max(1);
        let mut seen: Vec<(u64, u64)> = self
            .map
            .values()
            .map(|f| (f.core.last_ts, f.core.id))
            .collect();
        let (_, cutoff, _) = seen.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let stats = &mut self.stats;
        self.map.retain(|key, flow| {
            if (flow.core.last_ts, flow.core.id) <= cutoff {
                stats.evicted += 1;
                export(Export {
                    key,
                    core: &flow.core,
                    ext: &mut flow.ext,
                    kind: RecordKind::Final,
                    reason: EndReason::Evicted,
                });
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap as StdMap;
    use std::net::IpAddr;

    fn limits(max: usize) -> FlowLimits {
        FlowLimits {
            idle_ns: 30 * NS,
            active_ns: 2 * NS,
            linger_ns: 2 * NS,
            max_flows: max,
        }
    }

    fn key(client: u8, sport: u16, to_server: bool) -> (FlowKey, Side) {
        let c: IpAddr = format!("10.10.1.{client}").parse().unwrap();
        let s: IpAddr = "203.0.113.10".parse().unwrap();
        if to_server {
            FlowKey::new(c, sport, s, 443, 6, None, None)
        } else {
            FlowKey::new(s, 443, c, sport, 6, None, None)
        }
    }

    #[derive(Default)]
    struct Out {
        finals: Vec<(u64, u64, u64, EndReason)>,
        interims: usize,
    }

    fn sink(out: &mut Out) -> impl FnMut(Export<'_, ()>) + '_ {
        move |e| match e.kind {
            RecordKind::Final => {
                out.finals
                    .push((e.core.id, e.core.up().bytes, e.core.down().bytes, e.reason))
            }
            RecordKind::Interim => out.interims += 1,
        }
    }

    #[test]
    fn tcp_handshake_sets_initiator_and_fin_closes_after_linger() {
        let mut t = FlowTable::<()>::new(limits(100));
        let mut out = Out::default();
        let (k, s) = key(10, 40000, true);
        let (_, r) = key(10, 40000, false);
        {
            let mut e = sink(&mut out);
            t.observe(k, s, 0, 60, Some(TCP_SYN), &mut e);
            t.observe(k, r, 1, 60, Some(TCP_SYN | TCP_ACK), &mut e);
            t.observe(k, s, 2, 1000, Some(TCP_ACK | TCP_FIN), &mut e);
            let o = t.observe(k, r, 3, 52, Some(TCP_ACK | TCP_FIN), &mut e);
            assert_eq!(o.direction, Direction::Down);
            // the last ACK lands after both FINs and still counts
            t.observe(k, s, 4, 52, Some(TCP_ACK), &mut e);
            t.sweep(NS, &mut e);
        }
        assert!(out.finals.is_empty(), "ended before linger");
        t.sweep(3 * NS, &mut sink(&mut out));
        assert_eq!(out.finals, vec![(1, 1112, 112, EndReason::Fin)]);
        assert!(t.is_empty());
    }

    #[test]
    fn syn_ack_first_makes_receiver_the_initiator() {
        let mut t = FlowTable::<()>::new(limits(100));
        let (k, r) = key(10, 40000, false);
        let o = t.observe(k, r, 0, 60, Some(TCP_SYN | TCP_ACK), &mut |_| {});
        assert_eq!(o.direction, Direction::Down);
        assert_eq!(o.flow.core.initiator, r.other());
    }

    #[test]
    fn active_timeout_emits_interims_while_running() {
        let mut t = FlowTable::<()>::new(limits(100));
        let mut out = Out::default();
        let (k, s) = key(10, 40000, true);
        for sec in 0..7u64 {
            let mut e = sink(&mut out);
            t.observe(k, s, sec * NS, 1500, Some(TCP_ACK), &mut e);
            t.sweep(sec * NS + NS / 2, &mut e);
        }
        assert_eq!(out.interims, 3);
        t.flush(&mut sink(&mut out));
        assert_eq!(out.finals, vec![(1, 7 * 1500, 0, EndReason::Shutdown)]);
    }

    #[test]
    fn rst_then_new_syn_starts_a_new_flow() {
        let mut t = FlowTable::<()>::new(limits(100));
        let mut out = Out::default();
        let (k, s) = key(10, 40000, true);
        let mut e = sink(&mut out);
        t.observe(k, s, 0, 60, Some(TCP_SYN), &mut e);
        t.observe(k, s.other(), 1, 40, Some(TCP_RST | TCP_ACK), &mut e);
        let o = t.observe(k, s, 2, 60, Some(TCP_SYN), &mut e);
        assert!(o.created);
        drop(e);
        assert_eq!(out.finals, vec![(1, 60, 40, EndReason::Rst)]);
    }

    #[test]
    fn cap_evicts_oldest_and_counts_it() {
        let mut t = FlowTable::<()>::new(limits(32));
        let mut out = Out::default();
        for i in 0..40u16 {
            let (k, s) = key(10, 1000 + i, true);
            t.observe(k, s, u64::from(i), 100, None, &mut sink(&mut out));
        }
        assert!(t.len() <= 32);
        assert_eq!(t.stats().evicted as usize, out.finals.len());
        assert!(out.finals.iter().all(|f| f.3 == EndReason::Evicted));
        // the least recently seen went, in whatever order the table held them
        let mut ids: Vec<u64> = out.finals.iter().map(|f| f.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
        assert!(!ids.is_empty());
    }

    proptest! {
        /// Whatever the packet order, timeouts and cap: every byte observed is in
        /// exactly one final record, per direction.
        #[test]
        fn bytes_are_conserved(
            pkts in proptest::collection::vec((0u8..6, 0u16..4, any::<bool>(), 40u32..1500, 0u8..32, 0u64..4_000), 1..400),
            max in 16usize..40,
        ) {
            let mut t = FlowTable::<()>::new(limits(max));
            let mut total = 0u64;
            let mut exported = 0u64;
            let mut ids: StdMap<u64, usize> = StdMap::new();
            let mut ts = 0u64;
            {
                let mut e = |x: Export<'_, ()>| {
                    if x.kind == RecordKind::Final {
                        exported += x.core.up().bytes + x.core.down().bytes;
                        *ids.entry(x.core.id).or_default() += 1;
                    }
                };
                for (host, port, dir, len, flags, gap_ms) in pkts {
                    ts += gap_ms * 1_000_000;
                    let (k, s) = key(host, 1000 + port, dir);
                    t.observe(k, s, ts, len, Some(flags), &mut e);
                    total += u64::from(len);
                    if gap_ms > 3_000 {
                        t.sweep(ts, &mut e);
                    }
                }
                t.flush(&mut e);
            }
            prop_assert_eq!(total, exported);
            prop_assert!(ids.values().all(|&n| n == 1), "a flow was finalised twice");
            prop_assert!(t.is_empty());
        }
    }
}

//! The per-packet pipeline: decode → fragments → flow table → naming →
//! counters, and flow records out. Pure: time comes from the caller.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;
use simpul_proto::{proto_name, BlockedAttempt, CounterSample, FlowRecord, TrafficScope};

use crate::agency::{AgencyMap, UnitId};
use crate::counters::{self, SecondCounters, Slot};
use crate::decode::{self, DecodeError, LinkType, Packet};
use crate::dpi::dns;
use crate::flow::{Direction, Export, FlowKey, FlowLimits, FlowStats, FlowTable, Side};
use crate::guard::{Guard, TcpPosition};
use crate::naming::{DnsCache, FlowNames, InspectLimits, StreamInspector, Verdict};

const NS: u64 = 1_000_000_000;
/// Unmatched IP fragments are kept this long waiting for their first fragment.
const FRAGMENT_TIMEOUT_NS: u64 = 30 * NS;
/// A live shard's new flows without a DNS name of their client's own stay
/// this long (and at most this many) open to an answer another shard
/// passes over late.
const LATE_NAMING_NS: u64 = 2 * NS;
const LATE_NAMING_FLOWS: usize = 4096;

/// Where records go.
pub trait RecordSink {
    fn flow(&mut self, record: FlowRecord);
    fn counters(&mut self, sample: CounterSample);
    fn blocked(&mut self, attempt: BlockedAttempt);
}

/// Both sinks get every record (JSON lines and the collector link).
#[derive(Debug, Default)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: RecordSink, B: RecordSink> RecordSink for Tee<A, B> {
    fn flow(&mut self, record: FlowRecord) {
        self.0.flow(record.clone());
        self.1.flow(record);
    }

    fn counters(&mut self, sample: CounterSample) {
        self.0.counters(sample.clone());
        self.1.counters(sample);
    }

    fn blocked(&mut self, attempt: BlockedAttempt) {
        self.0.blocked(attempt.clone());
        self.1.blocked(attempt);
    }
}

/// An absent sink drops records.
impl<S: RecordSink> RecordSink for Option<S> {
    fn flow(&mut self, record: FlowRecord) {
        if let Some(s) = self {
            s.flow(record);
        }
    }

    fn counters(&mut self, sample: CounterSample) {
        if let Some(s) = self {
            s.counters(sample);
        }
    }

    fn blocked(&mut self, attempt: BlockedAttempt) {
        if let Some(s) = self {
            s.blocked(attempt);
        }
    }
}

/// How much the processor keeps and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ProcessorConfig {
    pub flows: FlowLimits,
    /// (client, server address) → looked-up name entries for DNS attribution.
    pub dns_cache_entries: usize,
    pub inspect: InspectLimits,
    /// Repeats of one blocked attempt are folded per this many seconds.
    pub attempt_fold_secs: u64,
    /// How long a name-triggered kernel refusal lives.
    pub name_block_secs: u64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            flows: FlowLimits::default(),
            dns_cache_entries: 200_000,
            inspect: InspectLimits {
                max_bytes: 16 * 1024,
                max_packets: 12,
            },
            attempt_fold_secs: 10,
            name_block_secs: 120,
        }
    }
}

/// Per-flow state owned by the processor.
#[derive(Debug, Default)]
pub struct FlowExt {
    /// Which side of the key is inside the agency (or the initiator when neither is).
    local: Option<Side>,
    unit: UnitId,
    scope: Option<TrafficScope>,
    slot: Slot,
    /// Boxed and only allocated once a name or payload is seen: the table stays
    /// small and cache-friendly for the many flows that never get one.
    names: Option<Box<FlowNames>>,
    inspector: Option<Box<StreamInspector>>,
    /// Opened on a client/server/port the kernel refuses because of a
    /// blocked name: counted as an attempt when it ends without a name.
    refused_by_name: bool,
}

impl FlowExt {
    fn names_mut(&mut self) -> &mut FlowNames {
        self.names.get_or_insert_with(Default::default)
    }
}

/// Counters of the processor's own work ("everything that moves gets a counter").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessorStats {
    pub frames: u64,
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: [u64; DecodeError::ALL.len()],
    pub fragments: u64,
    /// Non-first fragments whose first fragment never came.
    pub orphan_fragments: u64,
    /// DNS messages parsed whole ([`dns::parse`] succeeded).
    pub dns_messages: u64,
    /// DNS messages the parser refused.
    pub dns_malformed: u64,
    /// DNS messages not parsed because their header shows they cannot name
    /// anything ([`dns_may_teach`]): no question, or a query or an answerless
    /// reply on a flow already named. Neither messages nor malformed.
    pub dns_skipped: u64,
    pub named_sni: u64,
    pub named_quic: u64,
    pub named_http: u64,
    pub named_dns: u64,
    pub records_final: u64,
    pub records_interim: u64,
}

impl ProcessorStats {
    pub fn decode_error_total(&self) -> u64 {
        self.decode_errors.iter().sum()
    }
}

struct FragEntry {
    target: Option<(FlowKey, Side)>,
    pending_packets: u64,
    pending_bytes: u64,
    /// First sighting, for expiry.
    ts: u64,
    /// Who sent the pending fragments (for orphans).
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    vlan: (Option<u16>, Option<u16>),
}

type FragKey = (IpAddr, IpAddr, u8, u32);

/// What a DNS answer taught: `client` looked up `name` and got `addr`,
/// in a packet at `ts`. Live shards pass these to each other, since the
/// answer and the connections it names are dealt to shards apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub ts: u64,
    pub client: IpAddr,
    pub addr: IpAddr,
    pub name: Arc<str>,
}

pub struct Processor<S: RecordSink> {
    cfg: ProcessorConfig,
    table: FlowTable<FlowExt>,
    frags: HashMap<FragKey, FragEntry>,
    dns: DnsCache,
    agencies: AgencyMap,
    counters: SecondCounters,
    inspect: InspectLimits,
    stats: ProcessorStats,
    next_sweep: u64,
    interim_out: bool,
    /// Policy checks (events, name-triggered kernel entries); idle until a
    /// policy is set.
    guard: Guard,
    /// With [`Self::share_dns_answers`]: answers learned here since the
    /// last [`Self::take_dns_answers`].
    dns_out: Option<Vec<DnsAnswer>>,
    /// With `dns_out`: recent flows that got no DNS name when they began
    /// (first packet time, key), for an answer that arrives from another
    /// shard after them although it was captured before them.
    unnamed: VecDeque<(u64, FlowKey)>,
    sink: S,
}

impl<S: RecordSink> Processor<S> {
    pub fn new(cfg: &ProcessorConfig, agencies: AgencyMap, sink: S) -> Self {
        let units = agencies.labels().len();
        Self {
            cfg: *cfg,
            table: FlowTable::new(cfg.flows),
            frags: HashMap::new(),
            dns: DnsCache::new(cfg.dns_cache_entries),
            agencies,
            counters: SecondCounters::new(units),
            inspect: cfg.inspect,
            stats: ProcessorStats::default(),
            next_sweep: 0,
            interim_out: true,
            guard: Guard::new(cfg.attempt_fold_secs, cfg.name_block_secs),
            dns_out: None,
            unnamed: VecDeque::new(),
            sink,
        }
    }

    /// Keep what DNS answers teach for [`Self::take_dns_answers`] (a live
    /// shard, whose answers name flows other shards see).
    pub fn share_dns_answers(&mut self) {
        self.dns_out.get_or_insert_with(Vec::new);
    }

    /// Move the answers learned since the last call to `into`.
    pub fn take_dns_answers(&mut self, into: &mut Vec<DnsAnswer>) {
        if let Some(v) = &mut self.dns_out {
            into.append(v);
        }
    }

    /// Learn answers another shard saw: later flows here are named by
    /// them, and so are flows that began here after the answer was
    /// captured but before it came over (the shards run apart by up to a
    /// ring block or two).
    pub fn learn_dns_answers(&mut self, answers: &[DnsAnswer]) {
        for a in answers {
            self.dns.insert(a.client, a.addr, a.name.clone());
        }
        // Only flows that began after the earliest answer can take one.
        let Some(earliest) = answers.iter().map(|a| a.ts).min() else {
            return;
        };
        let from = self.unnamed.partition_point(|(t, _)| *t < earliest);
        for (_, key) in self.unnamed.range(from..) {
            let Some(flow) = self.table.get_mut(key) else {
                continue;
            };
            let ext = &mut flow.ext;
            let Some(local) = ext.local else { continue };
            if ext
                .names
                .as_ref()
                .is_some_and(|n| n.dns_name.is_some() && !n.dns_anyone)
            {
                continue;
            }
            let (client, server) = (key.ip(local), key.ip(local.other()));
            let first = flow.core.first_ts;
            if let Some(a) = answers
                .iter()
                .rev()
                .find(|a| a.client == client && a.addr == server && a.ts <= first)
            {
                let names = ext.names_mut();
                if names.dns_name.is_none() {
                    self.stats.named_dns += 1;
                }
                names.dns_name = Some(a.name.clone());
                names.dns_anyone = false;
            }
        }
    }

    /// Attribute with a new inventory from now on. Running flows are
    /// attributed again (their unit and scope follow the new map); the
    /// current second's counters are emitted under the old map first.
    pub fn set_agencies(&mut self, agencies: AgencyMap) {
        let Self {
            counters,
            agencies: old,
            sink,
            ..
        } = self;
        counters.flush(old, &mut |c| sink.counters(c));
        self.counters = SecondCounters::new(agencies.labels().len());
        self.agencies = agencies;
        let map = &self.agencies;
        self.table.for_each_mut(|key, core, ext| {
            if ext.local.is_some() {
                place(key, core.initiator, ext, map);
            }
        });
    }

    pub fn agencies(&self) -> &AgencyMap {
        &self.agencies
    }

    /// The policy checks: set a matcher, connect the kernel side, see counters.
    pub fn guard_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Report a blocked attempt seen outside the packet path (the DNS
    /// responder), folded with the others.
    pub fn record_attempt(&mut self, a: crate::attempts::Attempt) {
        let Self {
            guard,
            agencies,
            sink,
            ..
        } = self;
        guard.record(a, agencies, &mut |b| sink.blocked(b));
    }

    /// Do not build interim records at all (replay without `--interim`).
    pub fn set_interim_records(&mut self, on: bool) {
        self.interim_out = on;
    }

    pub fn stats(&self) -> &ProcessorStats {
        &self.stats
    }

    pub fn flow_stats(&self) -> FlowStats {
        self.table.stats()
    }

    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// A processor for shard `index` of `count` that split one capture by
    /// [`crate::shard::shard_of`]: the same settings, inventory and interim choice, its own
    /// flow table (a `count`-th of the cap, ids that no other shard uses),
    /// DNS cache, counters and sink. Only while no policy is in force
    /// ([`Self::shardable`]): the guard folds attempts across flows.
    pub fn shard<T: RecordSink>(&self, index: usize, count: usize, sink: T) -> Processor<T> {
        let count = count.max(1);
        let mut cfg = self.cfg;
        cfg.flows.max_flows = cfg.flows.max_flows.div_ceil(count);
        let mut p = Processor::new(&cfg, self.agencies.clone(), sink);
        p.interim_out = self.interim_out;
        p.table.set_ids(index as u64 + 1, count as u64);
        p
    }

    /// Whether the flows of a capture may be split over shards with the
    /// same records as one processor: not while the guard folds attempts
    /// and holds name blocks across flows.
    pub fn shardable(&self) -> bool {
        !self.guard.active()
    }

    /// Add a finished shard's work counters to this processor's.
    pub fn absorb<T: RecordSink>(&mut self, shard: &Processor<T>) {
        let (a, b) = (&mut self.stats, &shard.stats);
        a.frames += b.frames;
        a.packets += b.packets;
        a.bytes += b.bytes;
        for (x, y) in a.decode_errors.iter_mut().zip(b.decode_errors) {
            *x += y;
        }
        a.fragments += b.fragments;
        a.orphan_fragments += b.orphan_fragments;
        a.dns_messages += b.dns_messages;
        a.dns_malformed += b.dns_malformed;
        a.dns_skipped += b.dns_skipped;
        a.named_sni += b.named_sni;
        a.named_quic += b.named_quic;
        a.named_http += b.named_http;
        a.named_dns += b.named_dns;
        a.records_final += b.records_final;
        a.records_interim += b.records_interim;
        self.table.absorb_stats(&shard.table.stats());
    }

    /// Let time pass as a packet at `ts` that another shard handles would:
    /// the same sweeps and counter seconds as one processor seeing it.
    pub fn advance(&mut self, ts: u64) {
        if ts >= self.next_sweep {
            self.tick(ts);
        }
        let Self {
            counters,
            agencies,
            sink,
            ..
        } = self;
        counters.roll(ts / NS, agencies, &mut |c| sink.counters(c));
    }

    /// Whether `ts` is where one processor would sweep (the first packet of
    /// a later second): a sharded reader tells every shard about it.
    pub fn sweep_due(next_sweep: &mut u64, ts: u64) -> bool {
        if ts < *next_sweep {
            return false;
        }
        *next_sweep = (ts - ts % NS).saturating_add(NS);
        true
    }

    /// Learn the addresses of a DNS answer that another shard accounts, so
    /// later flows here are named as one processor would name them.
    pub fn learn_dns_answer(&mut self, p: &Packet<'_>) {
        // Only a response with answers to a question names addresses.
        if !dns_may_teach(p, true) {
            return;
        }
        let parsed = match p.proto {
            17 => dns::parse(p.payload),
            _ => dns::parse_tcp(p.payload),
        };
        if let Ok(msg) = parsed {
            if msg.is_response {
                if let Some(q) = msg.query.as_deref() {
                    let name: Arc<str> = Arc::from(q);
                    for (addr, _ttl) in &msg.addresses {
                        self.dns.insert(p.dst, *addr, name.clone());
                    }
                }
            }
        }
    }

    /// Handle one captured frame at `ts` (Unix nanoseconds).
    pub fn handle_frame(&mut self, link: LinkType, ts: u64, frame: &[u8]) {
        self.handle_decoded(ts, decode::decode(link, frame));
    }

    /// Handle a frame decoded elsewhere (the replay decodes on another thread).
    pub fn handle_decoded(&mut self, ts: u64, decoded: Result<Packet<'_>, DecodeError>) {
        self.stats.frames += 1;
        self.advance(ts);
        match decoded {
            Ok(p) => self.handle_packet(ts, &p),
            Err(e) => self.stats.decode_errors[e.index()] += 1,
        }
    }

    /// Advance time without a packet: timeouts, interim records, counters.
    pub fn tick(&mut self, now: u64) {
        // Saturating: a capture file's timestamps may be near u64::MAX (the
        // reader saturates absurd ones), and a plain add then panics.
        self.next_sweep = (now - now % NS).saturating_add(NS);
        let Self {
            table,
            agencies,
            sink,
            stats,
            interim_out,
            counters,
            frags,
            guard,
            ..
        } = self;
        counters.tick(now / NS, agencies, &mut |c| sink.counters(c));
        guard.tick(now, agencies, &mut |b| sink.blocked(b));
        table.sweep(now, &mut |e| {
            export(e, agencies, sink, stats, guard, *interim_out)
        });
        if !frags.is_empty() {
            self.expire_fragments(now);
        }
    }

    /// End of capture: every flow gets its final record.
    pub fn finish(&mut self) {
        self.expire_fragments(u64::MAX);
        let Self {
            table,
            agencies,
            sink,
            stats,
            interim_out,
            counters,
            guard,
            ..
        } = self;
        table.flush(&mut |e| export(e, agencies, sink, stats, guard, *interim_out));
        counters.flush(agencies, &mut |c| sink.counters(c));
        guard.flush(agencies, &mut |b| sink.blocked(b));
    }

    fn handle_packet(&mut self, ts: u64, p: &Packet<'_>) {
        self.stats.packets += 1;
        self.stats.bytes += u64::from(p.ip_len);
        if let Some(frag) = p.fragment {
            self.stats.fragments += 1;
            if !frag.first {
                self.handle_later_fragment(ts, p, frag.id);
                return;
            }
        }
        let (sport, dport) = p.ports.unwrap_or((0, 0));
        let (key, sender) = FlowKey::new(p.src, sport, p.dst, dport, p.proto, p.vlan, p.vlan_inner);
        let tcp_flags = p.tcp.map(|t| t.flags);

        let Self {
            table,
            agencies,
            sink,
            stats,
            interim_out,
            dns,
            counters,
            inspect,
            guard,
            dns_out,
            unnamed,
            ..
        } = self;
        let obs = table.observe(key, sender, ts, p.ip_len, tcp_flags, &mut |e| {
            export(e, agencies, sink, stats, guard, *interim_out)
        });
        let flow = obs.flow;
        let initiator = flow.core.initiator;
        if obs.created {
            attribute(&key, initiator, &mut flow.ext, agencies, dns, stats);
            // Named by someone else's lookup: the client's own answer may
            // still come over from another shard, as for a flow unnamed.
            if dns_out.is_some()
                && flow
                    .ext
                    .names
                    .as_ref()
                    .is_none_or(|n| n.dns_name.is_none() || n.dns_anyone)
            {
                while unnamed.front().is_some_and(|(t, _)| {
                    t.saturating_add(LATE_NAMING_NS) < ts || unnamed.len() >= LATE_NAMING_FLOWS
                }) {
                    unnamed.pop_front();
                }
                unnamed.push_back((ts, key));
            }
            if guard.active() {
                flow.ext.refused_by_name =
                    guard.on_new_flow(ts, connection(&key, initiator), agencies, &mut |b| {
                        sink.blocked(b)
                    });
            }
        }
        let ext = &mut flow.ext;

        // Naming: the client's first bytes.
        if obs.direction == Direction::Up && !p.payload.is_empty() {
            if let Some(insp) = ext.inspector.as_mut() {
                let names = ext.names.get_or_insert_with(Default::default);
                let verdict = match p.tcp {
                    Some(t) => insp.feed_tcp(t.seq, p.payload, *inspect, names),
                    None => insp.feed_udp(p.payload, *inspect, names),
                };
                if verdict == Verdict::Done {
                    ext.inspector = None;
                    let named = if let Some(n) = &names.sni {
                        stats.named_sni += 1;
                        Some((n, simpul_proto::BlockMethod::Sni))
                    } else if let Some(n) = &names.quic_sni {
                        stats.named_quic += 1;
                        Some((n, simpul_proto::BlockMethod::Quic))
                    } else if let Some(n) = &names.http_host {
                        stats.named_http += 1;
                        Some((n, simpul_proto::BlockMethod::Http))
                    } else {
                        None
                    };
                    if let (Some((name, method)), true) = (named, guard.active()) {
                        // It showed its name, so the kernel did not refuse it.
                        ext.refused_by_name = false;
                        // This segment completed the name: the resets
                        // start from where it stood.
                        let at = p
                            .tcp
                            .and_then(|t| TcpPosition::of(t.flags, t.seq, t.ack, p.payload.len()));
                        guard.on_name(
                            ts,
                            connection(&key, initiator),
                            at,
                            name,
                            method,
                            agencies,
                            &mut |b| sink.blocked(b),
                        );
                    }
                }
            }
        }
        let dns_port = sport == 53 || dport == 53;
        let dns_payload = match p.proto {
            17 => dns_port && !p.payload.is_empty(),
            6 => dns_port && p.payload.len() > 2,
            _ => false,
        };
        if dns_payload {
            let names = ext.names_mut();
            if !dns_may_teach(p, names.dns_query.is_some()) {
                stats.dns_skipped += 1;
            } else if p.proto == 17 {
                learn_dns(dns::parse(p.payload), p, ts, names, dns, dns_out, stats);
            } else {
                learn_dns(dns::parse_tcp(p.payload), p, ts, names, dns, dns_out, stats);
            }
        }

        let outbound = Some(sender) == ext.local;
        let slot = ext.slot;
        counters.add(slot, outbound, u64::from(p.ip_len), 1);

        if let Some(frag) = p.fragment {
            self.first_fragment_seen(ts, p, frag.id, key, sender);
        }
    }

    fn first_fragment_seen(
        &mut self,
        ts: u64,
        p: &Packet<'_>,
        id: u32,
        key: FlowKey,
        sender: Side,
    ) {
        let fk = (p.src, p.dst, p.proto, id);
        let entry = self.frags.entry(fk).or_insert(FragEntry {
            target: None,
            pending_packets: 0,
            pending_bytes: 0,
            ts,
            src: p.src,
            dst: p.dst,
            proto: p.proto,
            vlan: (p.vlan, p.vlan_inner),
        });
        entry.target = Some((key, sender));
        if entry.pending_packets > 0 {
            let (pk, pb) = (entry.pending_packets, entry.pending_bytes);
            entry.pending_packets = 0;
            entry.pending_bytes = 0;
            self.credit(ts, &key, sender, pk, pb);
        }
    }

    fn handle_later_fragment(&mut self, ts: u64, p: &Packet<'_>, id: u32) {
        let fk = (p.src, p.dst, p.proto, id);
        let entry = self.frags.entry(fk).or_insert(FragEntry {
            target: None,
            pending_packets: 0,
            pending_bytes: 0,
            ts,
            src: p.src,
            dst: p.dst,
            proto: p.proto,
            vlan: (p.vlan, p.vlan_inner),
        });
        match entry.target {
            Some((key, sender)) => self.credit(ts, &key, sender, 1, u64::from(p.ip_len)),
            None => {
                entry.pending_packets += 1;
                entry.pending_bytes += u64::from(p.ip_len);
            }
        }
    }

    fn credit(&mut self, ts: u64, key: &FlowKey, sender: Side, packets: u64, bytes: u64) {
        if !self.table.credit(key, sender, ts, packets, bytes) {
            // The flow ended between fragments: account them on a port-less flow.
            self.orphan(
                ts,
                key.ip(sender),
                key.ip(sender.other()),
                key.proto,
                (key.vlan, key.vlan_inner),
                packets,
                bytes,
            );
            return;
        }
        if let Some(flow) = self.table.get(key) {
            let outbound = Some(sender) == flow.ext.local;
            let slot = flow.ext.slot;
            self.counters.add(slot, outbound, bytes, packets);
        }
    }

    fn expire_fragments(&mut self, now: u64) {
        let mut orphans = Vec::new();
        self.frags.retain(|_, e| {
            if now.saturating_sub(e.ts) < FRAGMENT_TIMEOUT_NS {
                return true;
            }
            if e.pending_packets > 0 {
                orphans.push((
                    e.src,
                    e.dst,
                    e.proto,
                    e.vlan,
                    e.pending_packets,
                    e.pending_bytes,
                    e.ts,
                ));
            }
            false
        });
        for (src, dst, proto, vlan, packets, bytes, ts) in orphans {
            self.stats.orphan_fragments += packets;
            let vlan = (vlan.0.unwrap_or(0), vlan.1.unwrap_or(0));
            self.orphan(ts, src, dst, proto, vlan, packets, bytes);
        }
    }

    /// Fragments that cannot be tied to ports still count: on a flow keyed by
    /// addresses and protocol only.
    #[allow(clippy::too_many_arguments)]
    fn orphan(
        &mut self,
        ts: u64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        vlan: (u16, u16),
        packets: u64,
        bytes: u64,
    ) {
        let nz = |v: u16| (v != 0).then_some(v);
        let (key, sender) = FlowKey::new(src, 0, dst, 0, proto, nz(vlan.0), nz(vlan.1));
        let Self {
            table,
            agencies,
            sink,
            stats,
            interim_out,
            dns,
            guard,
            ..
        } = self;
        // observe counts one packet of `bytes`; credit adds the rest.
        let obs = table.observe(key, sender, ts, 0, None, &mut |e| {
            export(e, agencies, sink, stats, guard, *interim_out)
        });
        if obs.created {
            attribute(
                &key,
                obs.flow.core.initiator,
                &mut obs.flow.ext,
                agencies,
                dns,
                stats,
            );
        }
        obs.flow.ext.inspector = None;
        let c = &mut obs.flow.core.sides[sender.index()];
        c.packets = c.packets - 1 + packets;
        c.bytes += bytes;
        let outbound = Some(sender) == obs.flow.ext.local;
        let slot = obs.flow.ext.slot;
        self.counters.add(slot, outbound, bytes, packets);
    }
}

/// Which side is the agency's, its unit, the scope and the counter slot.
fn place(
    key: &FlowKey,
    initiator: Side,
    ext: &mut FlowExt,
    agencies: &AgencyMap,
) -> (Side, IpAddr) {
    let responder = initiator.other();
    let (iu, ru) = (
        agencies.unit_of(key.ip(initiator)),
        agencies.unit_of(key.ip(responder)),
    );
    let local = if iu == 0 && ru != 0 {
        responder
    } else {
        initiator
    };
    let unit = if local == initiator { iu } else { ru };
    let remote_ip = key.ip(local.other());
    let scope = agencies.scope_of(remote_ip);
    ext.local = Some(local);
    ext.unit = unit;
    ext.scope = Some(scope);
    ext.slot = counters::slot(unit, scope);
    (local, remote_ip)
}

/// Resolve a new flow's agency, unit, scope, counter slot and DNS name.
fn attribute(
    key: &FlowKey,
    initiator: Side,
    ext: &mut FlowExt,
    agencies: &AgencyMap,
    dns: &mut DnsCache,
    stats: &mut ProcessorStats,
) {
    let responder = initiator.other();
    let (local, remote_ip) = place(key, initiator, ext, agencies);
    if let Some((name, own)) = dns.lookup_whose(key.ip(local), remote_ip) {
        let names = ext.names_mut();
        names.dns_name = Some(name);
        names.dns_anyone = !own;
        stats.named_dns += 1;
    }
    let inspect = match key.proto {
        6 => key.port(responder) != 53 && key.port(initiator) != 53,
        // QUIC: only datagrams to 443 are worth decrypting.
        17 => key.port(responder) == 443,
        _ => false,
    };
    if inspect {
        ext.inspector = Some(Box::default());
    }
}

/// Whether the DNS message in `p` (UDP, or the first of a TCP stream) can
/// teach [`learn_dns`] anything, read from its 12-byte header: a name needs a
/// question on a flow not yet `named`; addresses need a response with
/// answers to a question. Parsing the rest costs more than the whole flow
/// update. A header not all there is parsed as before (the parser reports it).
fn dns_may_teach(p: &Packet<'_>, named: bool) -> bool {
    let msg = match p.proto {
        17 => Some(p.payload),
        _ => p.payload.get(..2).and_then(|l| {
            let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
            p.payload.get(2..2 + len)
        }),
    };
    let Some(&[_, _, flags, _, qd_hi, qd_lo, an_hi, an_lo, _, _, _, _, ..]) = msg else {
        return true;
    };
    let questions = u16::from_be_bytes([qd_hi, qd_lo]);
    let answers = u16::from_be_bytes([an_hi, an_lo]);
    let response = flags & 0x80 != 0;
    questions > 0 && (!named || (response && answers > 0))
}

fn learn_dns(
    parsed: Result<dns::DnsMessage, dns::DnsError>,
    p: &Packet<'_>,
    ts: u64,
    names: &mut FlowNames,
    cache: &mut DnsCache,
    out: &mut Option<Vec<DnsAnswer>>,
    stats: &mut ProcessorStats,
) {
    let msg = match parsed {
        Ok(m) => m,
        Err(dns::DnsError::Incomplete) => return,
        Err(dns::DnsError::Malformed(_)) => {
            stats.dns_malformed += 1;
            return;
        }
    };
    stats.dns_messages += 1;
    if names.dns_query.is_none() {
        names.dns_query = msg.query.as_deref().map(Into::into);
    }
    if msg.is_response {
        if let Some(q) = msg.query.as_deref() {
            let name: Arc<str> = Arc::from(q);
            for (addr, _ttl) in &msg.addresses {
                cache.insert(p.dst, *addr, name.clone());
                if let Some(out) = out {
                    out.push(DnsAnswer {
                        ts,
                        client: p.dst,
                        addr: *addr,
                        name: name.clone(),
                    });
                }
            }
        }
    }
}

/// The flow as the connection a name block refuses: its initiator is the client.
fn connection(key: &FlowKey, initiator: Side) -> crate::guard::NameBlock {
    let server = initiator.other();
    crate::guard::NameBlock {
        client: key.ip(initiator),
        client_port: key.port(initiator),
        server: key.ip(server),
        proto: key.proto,
        port: key.port(server),
    }
}

fn export<S: RecordSink>(
    e: Export<'_, FlowExt>,
    agencies: &AgencyMap,
    sink: &mut S,
    stats: &mut ProcessorStats,
    guard: &mut Guard,
    interim_out: bool,
) {
    if e.ext.refused_by_name && e.kind == simpul_proto::RecordKind::Final {
        guard.on_refused_end(
            e.core.first_ts,
            connection(e.key, e.core.initiator),
            agencies,
            &mut |b| sink.blocked(b),
        );
    }
    if e.kind == simpul_proto::RecordKind::Interim {
        if !interim_out {
            return;
        }
        stats.records_interim += 1;
    } else {
        stats.records_final += 1;
    }
    sink.flow(build_record(&e, agencies));
}

/// Turn a flow into its wire/JSON record.
pub fn build_record(e: &Export<'_, FlowExt>, agencies: &AgencyMap) -> FlowRecord {
    let key = e.key;
    let core = e.core;
    let ext = &*e.ext;
    let (src, dst) = (core.initiator, core.initiator.other());
    let ports = key.has_ports() && (key.lo_port != 0 || key.hi_port != 0);
    let label = agencies.label(ext.unit);
    let empty = FlowNames::default();
    let names = ext.names.as_deref().unwrap_or(&empty);
    let site = names.site();
    let is_tcp = key.proto == 6;
    FlowRecord {
        flow_id: core.id,
        kind: e.kind,
        end_reason: e.reason,
        proto: proto_name(key.proto),
        src_ip: key.ip(src),
        src_port: ports.then(|| key.port(src)),
        dst_ip: key.ip(dst),
        dst_port: ports.then(|| key.port(dst)),
        vlan: (key.vlan != 0).then_some(key.vlan),
        vlan_inner: (key.vlan_inner != 0).then_some(key.vlan_inner),
        packets_up: core.up().packets,
        bytes_up: core.up().bytes,
        packets_down: core.down().packets,
        bytes_down: core.down().bytes,
        first_seen: core.first_ts,
        last_seen: core.last_ts,
        tcp_flags_up: is_tcp.then(|| core.up().tcp_flags),
        tcp_flags_down: is_tcp.then(|| core.down().tcp_flags),
        sni: names
            .sni
            .as_deref()
            .or(names.quic_sni.as_deref())
            .map(Into::into),
        http_host: names.http_host.as_deref().map(Into::into),
        dns_query: names.dns_query.as_deref().map(Into::into),
        site: site.map(|(s, _)| s.to_string()),
        site_source: site.map(|(_, src)| src),
        agency: label.agency.clone(),
        unit: label.unit.clone(),
        scope: ext.scope.unwrap_or(TrafficScope::Internet),
    }
}

#[cfg(test)]
mod tests {
    use super::RecordSink;
    use crate::decode::LinkType;
    use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

    /// A sink that keeps the flow records (the tests look only at those).
    #[derive(Default)]
    struct Flows(Vec<FlowRecord>);
    impl RecordSink for Flows {
        fn flow(&mut self, r: FlowRecord) {
            self.0.push(r);
        }
        fn counters(&mut self, _: CounterSample) {}
        fn blocked(&mut self, _: BlockedAttempt) {}
    }

    /// DNS messages that cannot name anything are not parsed, and counted
    /// as skipped; naming is what parsing them all gave.
    #[test]
    fn dns_messages_that_teach_nothing_are_skipped() {
        use super::Processor;
        use crate::agency::AgencyMap;
        use etherparse::PacketBuilder;

        let question: &[u8] = b"\x01a\x07example\x00\x00\x01\x00\x01";
        let header = |flags: u16, qd: u16, an: u16| {
            let mut h = vec![0, 7];
            for v in [flags, qd, an, 0, 0] {
                h.extend_from_slice(&v.to_be_bytes());
            }
            h
        };
        let query = [header(0x0100, 1, 0), question.to_vec()].concat();
        let answer = [
            header(0x8180, 1, 1),
            question.to_vec(),
            vec![0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 20],
        ]
        .concat();
        let nxdomain = [header(0x8183, 1, 0), question.to_vec()].concat();
        let udp = |to_server: bool, payload: &[u8]| {
            let (src, dst, sport, dport) = if to_server {
                ([10, 1, 1, 2], [10, 0, 0, 53], 40000, 53)
            } else {
                ([10, 0, 0, 53], [10, 1, 1, 2], 53, 40000)
            };
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4(src, dst, 64)
                .udp(sport, dport)
                .write(&mut out, payload)
                .expect("frame");
            out
        };
        let mut connect = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 1, 1, 2], [198, 51, 100, 20], 64)
            .tcp(40001, 443, 1, 64240)
            .syn()
            .write(&mut connect, &[])
            .expect("frame");
        let mut p = Processor::new(
            &crate::fuzzing::small_config(),
            AgencyMap::empty(),
            Flows::default(),
        );
        let frames = [
            udp(true, &[0; 40]),   // no question (an IMIX filler): skipped
            udp(true, &query),     // names the flow: parsed
            udp(true, &query),     // a retransmission: skipped
            udp(false, &answer),   // addresses: parsed
            udp(false, &nxdomain), // no answers, flow named: skipped
            udp(false, &[1; 5]),   // header cut short: parsed, malformed
            connect,
        ];
        let ts = 1_700_000_000_000_000_000u64;
        for (i, f) in frames.iter().enumerate() {
            p.handle_frame(LinkType::Ethernet, ts + i as u64, f);
        }
        p.finish();
        let s = p.stats();
        assert_eq!((s.dns_messages, s.dns_malformed, s.dns_skipped), (2, 1, 3));
        assert_eq!(s.named_dns, 1, "the answer named the connection");
        let flows = &p.sink().0;
        let dns = flows.iter().find(|r| r.dst_port == Some(53));
        assert_eq!(dns.and_then(|r| r.dns_query.as_deref()), Some("a.example"));
        let web = flows.iter().find(|r| r.dst_port == Some(443));
        assert_eq!(web.and_then(|r| r.site.as_deref()), Some("a.example"));
    }

    /// Live shards: the DNS answer is dealt to one shard and the
    /// connection it names to another; the answer passed over names the
    /// connection there as one processor would. Shards' flow ids differ.
    #[test]
    fn a_dns_answer_one_shard_learns_names_a_flow_in_another() {
        use super::{DnsAnswer, Processor};
        use crate::agency::AgencyMap;
        use etherparse::PacketBuilder;

        let question: &[u8] = b"\x01a\x07example\x00\x00\x01\x00\x01";
        let mut answer = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        answer.extend_from_slice(question);
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 20]);
        let mut reply = Vec::new();
        PacketBuilder::ethernet2([4; 6], [2; 6])
            .ipv4([10, 0, 0, 53], [10, 1, 1, 2], 64)
            .udp(53, 40000)
            .write(&mut reply, &answer)
            .expect("frame");
        let mut connect = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 1, 1, 2], [198, 51, 100, 20], 64)
            .tcp(40001, 443, 1, 64240)
            .syn()
            .write(&mut connect, &[])
            .expect("frame");
        let main = Processor::new(
            &crate::fuzzing::small_config(),
            AgencyMap::empty(),
            Flows::default(),
        );
        let mut shards: Vec<Processor<Flows>> =
            (0..2).map(|i| main.shard(i, 2, Flows::default())).collect();
        for s in &mut shards {
            s.share_dns_answers();
        }
        let ts = 1_700_000_000_000_000_000u64;
        shards[0].handle_frame(LinkType::Ethernet, ts, &reply);
        let mut learned = Vec::new();
        shards[0].take_dns_answers(&mut learned);
        assert_eq!(
            learned,
            [DnsAnswer {
                ts,
                client: [10, 1, 1, 2].into(),
                addr: [198, 51, 100, 20].into(),
                name: "a.example".into(),
            }]
        );
        shards[0].take_dns_answers(&mut learned);
        assert_eq!(learned.len(), 1, "taken once");
        shards[1].learn_dns_answers(&learned);
        shards[1].handle_frame(LinkType::Ethernet, ts + 1, &connect);
        // A shard that saw the connection before the answer came over
        // names it all the same (captured after the answer); one whose
        // connection began before the answer was captured does not.
        let mut late = main.shard(1, 2, Flows::default());
        late.share_dns_answers();
        late.handle_frame(LinkType::Ethernet, ts + 1, &connect);
        late.learn_dns_answers(&learned);
        let mut early = main.shard(1, 2, Flows::default());
        early.share_dns_answers();
        early.handle_frame(LinkType::Ethernet, ts - 1, &connect);
        early.learn_dns_answers(&learned);
        shards.extend([late, early]);
        for s in &mut shards {
            s.finish();
        }
        let sites: Vec<Option<&str>> = shards[1..]
            .iter()
            .map(|s| s.sink().0[0].site.as_deref())
            .collect();
        assert_eq!(sites, [Some("a.example"), Some("a.example"), None]);
        assert_eq!(shards[2].stats().named_dns, 1);
        let web = &shards[1].sink().0[0];
        let dns = &shards[0].sink().0[0];
        assert_ne!(web.flow_id, dns.flow_id, "flow ids are the shards' own");
    }

    /// Live shards: a flow that began before its client's own DNS answer
    /// came over took another client's name for the address; the client's
    /// own answer, captured before the flow, replaces it (one processor
    /// would have had it first). A name of its own is kept.
    #[test]
    fn a_late_own_answer_replaces_another_clients_name() {
        use super::{DnsAnswer, Processor};
        use crate::agency::AgencyMap;
        use etherparse::PacketBuilder;

        let server = [198, 51, 100, 20];
        let mut connect = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 1, 1, 2], server, 64)
            .tcp(40001, 80, 1, 64240)
            .syn()
            .write(&mut connect, &[])
            .expect("frame");
        let ts = 1_700_000_000_000_000_000u64;
        let answer = |ts, client: [u8; 4], name: &str| DnsAnswer {
            ts,
            client: client.into(),
            addr: server.into(),
            name: name.into(),
        };
        let others = [answer(ts - 10, [10, 1, 1, 3], "other.example")];
        let own = [answer(ts, [10, 1, 1, 2], "own.example")];
        let main = Processor::new(
            &crate::fuzzing::small_config(),
            AgencyMap::empty(),
            Flows::default(),
        );
        let mut late = main.shard(1, 2, Flows::default());
        late.share_dns_answers();
        late.learn_dns_answers(&others);
        late.handle_frame(LinkType::Ethernet, ts + 1, &connect);
        late.learn_dns_answers(&own);
        // Its own name first: a later answer of someone else's changes nothing.
        let mut kept = main.shard(1, 2, Flows::default());
        kept.share_dns_answers();
        kept.learn_dns_answers(&own);
        kept.handle_frame(LinkType::Ethernet, ts + 1, &connect);
        kept.learn_dns_answers(&[answer(ts, [10, 1, 1, 3], "other.example")]);
        for s in [&mut late, &mut kept] {
            s.finish();
            assert_eq!(s.sink().0[0].site.as_deref(), Some("own.example"));
            assert_eq!(s.stats().named_dns, 1, "one flow named once");
        }
    }

    /// Fuzz regression (`capture_file`): a pcapng frame whose timestamp
    /// saturated to the end of u64 made `tick` overflow computing the next
    /// sweep. The frame is the one of the crashing input.
    #[test]
    fn timestamps_at_the_end_of_time() {
        const FRAME: [u8; 102] = [
            0x02, 0x5f, 0x72, 0x00, 0x01, 0x10, 0x02, 0x5f, 0xc1, 0x00, 0x01, 0x10, 0x81, 0x00,
            0x00, 0x6e, 0x08, 0x00, 0x45, 0x00, 0x00, 0x54, 0xa8, 0x09, 0x40, 0x00, 0x40, 0x01,
            0x4c, 0x1d, 0x0a, 0x6e, 0x00, 0x0a, 0xcb, 0x00, 0x0a, 0x08, 0x1c, 0x1d, 0x1e, 0x1f,
            0x20, 0x21, 0x22, 0x23, 0xc9, 0x00, 0x00, 0x00, 0x02, 0x5f, 0xc1, 0x00, 0x02, 0x10,
            0x02, 0x02, 0x10, 0x02, 0x5f, 0xc1, 0x00, 0x02, 0x10, 0x88, 0xa8, 0x00, 0xc8, 0x81,
            0x70, 0x02, 0x00, 0x08, 0x00, 0x3f, 0x61, 0x06, 0x00, 0x15, 0x49, 0xfc, 0x94, 0x03,
            0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00,
        ];
        let mut p = crate::fuzzing::processor();
        // The last whole second of u64 nanoseconds, then the saturated value.
        for ts in [18_446_744_073_000_000_000, u64::MAX - 1, u64::MAX] {
            p.handle_frame(LinkType::Ethernet, ts, &FRAME);
        }
        p.finish();
        assert_eq!(p.stats().frames, 3);
    }

    /// The packet path names a site from a ClientHello split over two
    /// segments: the kernel request carries where the segment that
    /// completed it stood, so the resets are numbered past the whole hello.
    #[test]
    fn a_blocked_name_asks_the_kernel_with_the_naming_segments_numbers() {
        use crate::guard::{KernelRequest, TcpPosition};
        use crate::policy::matcher::{BlockMatcher, Exemptions};
        use etherparse::PacketBuilder;
        use simpul_proto::policy::Policy;
        use std::sync::Arc;

        const HELLO: &[u8] = include_bytes!("dpi/testdata/client_hello_portal.bin");
        let policy = Policy::parse(
            "version = 1\nagency = \"a\"\n[allocation]\ndownload = { rate_bps = 1000000, ceil_bps = 1000000 }\nupload = { rate_bps = 1000000, ceil_bps = 1000000 }\n[blocking]\ndomains = [\"portal.example.go.id\"]\n",
        )
        .expect("policy");
        let mut p = crate::fuzzing::processor();
        let (tx, rx) = crossbeam_channel::bounded(4);
        let guard = p.guard_mut();
        guard.set_matcher(Some(Arc::new(BlockMatcher::new(
            &policy,
            &Exemptions::default(),
        ))));
        guard.set_kernel(tx);
        let frame = |from_client: bool, seq: u32, ack: u32, syn: bool, payload: &[u8]| {
            let (src, dst, sport, dport) = if from_client {
                ([10, 1, 1, 2], [198, 51, 100, 10], 40001, 443)
            } else {
                ([198, 51, 100, 10], [10, 1, 1, 2], 443, 40001)
            };
            let b = PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4(src, dst, 64)
                .tcp(sport, dport, seq, 64240);
            let b = match (syn, ack) {
                (true, 0) => b.syn(),
                (true, _) => b.syn().ack(ack),
                (false, _) => b.ack(ack),
            };
            let mut out = Vec::new();
            b.write(&mut out, payload).expect("frame");
            out
        };
        let ts = 1_700_000_000_000_000_000u64;
        let split = 100;
        for (i, f) in [
            frame(true, 999, 0, true, &[]),
            frame(false, 4999, 1000, true, &[]),
            frame(true, 1000, 5000, false, &HELLO[..split]),
            frame(true, 1000 + split as u32, 5000, false, &HELLO[split..]),
        ]
        .iter()
        .enumerate()
        {
            p.handle_frame(LinkType::Ethernet, ts + i as u64, f);
        }
        match rx.try_recv() {
            Ok(KernelRequest::Block { tcp, lane, .. }) => {
                assert!(!lane);
                let at = tcp.expect("TCP position");
                assert_eq!(
                    at,
                    TcpPosition {
                        seq: 1000 + split as u32,
                        ack: 5000,
                        len: (HELLO.len() - split) as u32,
                    }
                );
                assert_eq!(at.seq.wrapping_add(at.len), 1000 + HELLO.len() as u32);
            }
            other => panic!("no kernel request: {other:?}"),
        }
    }
}

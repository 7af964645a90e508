//! Live capture over several cores: each ring of a one-interface fanout
//! group ([`crate::capture::fanout`] deals frames by address pair) is read
//! by a thread that owns a [`Processor`] of its own — flow table,
//! fragments, DNS cache, counters, guard — and handles frames where the
//! kernel wrote them. No lock is shared on the packet path and nothing is
//! allocated per packet.
//!
//! What exists once stays on the packet thread and hears from the shards
//! in batches, one per ring hand-over that produced anything: flow records
//! (ids distinct across shards) go to the sinks as they come; per-second
//! counters are summed per second once every shard is past it
//! ([`CounterMerge`]); blocked attempts are folded by the one guard that
//! also folds the DNS responder's. Name-triggered kernel requests go from
//! each shard's guard straight to the kernel side, deduplicated with the
//! name lane through the shared claims. DNS answers a shard learns go to
//! the other shards (the connections they name are dealt by another
//! address pair).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use simpul_core::attempts::Attempt;
use simpul_core::decode::LinkType;
use simpul_core::processor::{DnsAnswer, Processor, ProcessorStats, RecordSink};
use simpul_core::shard::CounterMerge;
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

use crate::capture::live::InlineRing;
use crate::capture::name_lane::NameLaneHooks;
use crate::control::{InForce, Snapshot};
use crate::link::HealthState;

const NS: u64 = 1_000_000_000;
/// Batches in flight to the packet thread; a shard waits when it is full
/// (its ring absorbs the wait, and the kernel counts what it cannot).
const BATCHES: usize = 256;
/// DNS answer lists in flight to one shard; beyond, answers are dropped
/// (later flows there are only left unnamed).
const ANSWER_LISTS: usize = 256;
/// A list of DNS answers one shard passes to another.
type Answers = Arc<[DnsAnswer]>;

/// How long a shard waits for frames before it ticks anyway.
const POLL_MS: i32 = 100;

/// What a shard produced since its previous batch.
#[derive(Default)]
struct Batch {
    shard: usize,
    flows: Vec<FlowRecord>,
    counters: Vec<CounterSample>,
    blocked: Vec<BlockedAttempt>,
    attempts: Vec<Attempt>,
    /// Every counter sample of a second before this one was in this batch
    /// or an earlier one.
    passed: Option<u64>,
    /// The shard has finished: everything it had is in.
    last: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.flows.is_empty()
            && self.counters.is_empty()
            && self.blocked.is_empty()
            && self.attempts.is_empty()
            && self.passed.is_none()
            && !self.last
    }
}

/// A shard's sink: records wait in the shard's next batch.
#[derive(Default)]
pub struct ShardSink {
    next: Batch,
}

impl RecordSink for ShardSink {
    fn flow(&mut self, record: FlowRecord) {
        self.next.flows.push(record);
    }

    fn counters(&mut self, sample: CounterSample) {
        self.next.counters.push(sample);
    }

    fn blocked(&mut self, attempt: BlockedAttempt) {
        self.next.blocked.push(attempt);
    }
}

/// A shard's work counters, published about once a second.
#[derive(Debug, Default)]
struct ShardCounts {
    packets: AtomicU64,
    bytes: AtomicU64,
    decode_errors: AtomicU64,
    active_flows: AtomicU64,
    flows_evicted: AtomicU64,
}

impl ShardCounts {
    fn publish<S: RecordSink>(&self, p: &Processor<S>) {
        let s = p.stats();
        self.packets.store(s.packets, Relaxed);
        self.bytes.store(s.bytes, Relaxed);
        self.decode_errors.store(s.decode_error_total(), Relaxed);
        self.active_flows.store(p.active_flows() as u64, Relaxed);
        self.flows_evicted.store(p.flow_stats().evicted, Relaxed);
    }
}

/// The running shards, as the packet thread sees them.
pub struct Shards {
    threads: Vec<JoinHandle<Processor<ShardSink>>>,
    rx: Receiver<Batch>,
    merge: CounterMerge,
    counts: Vec<Arc<ShardCounts>>,
    finished: Vec<bool>,
    stop: Arc<AtomicBool>,
}

/// Adopt what the control thread published (the packet thread's own
/// adoption also sets the DNS responder's rules; a shard's does not).
pub type Adopt = fn(&mut Processor<ShardSink>, &mut Snapshot, Snapshot);

impl Shards {
    /// A shard per ring, each a [`Processor::shard`] of `main` (its
    /// settings, inventory, distinct flow ids), its guard wired to the
    /// name lane's claims and the kernel side when names are refused.
    pub fn start<S: RecordSink>(
        rings: Vec<InlineRing>,
        main: &Processor<S>,
        names: Option<&NameLaneHooks>,
        in_force: &Arc<InForce>,
        adopt: Adopt,
    ) -> std::io::Result<Shards> {
        let count = rings.len();
        let (tx, rx) = crossbeam_channel::bounded(BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let lanes: Vec<(Sender<Answers>, Receiver<Answers>)> = (0..count)
            .map(|_| crossbeam_channel::bounded(ANSWER_LISTS))
            .collect();
        let mut shards = Shards {
            threads: Vec::with_capacity(count),
            rx,
            merge: CounterMerge::new(count),
            counts: Vec::with_capacity(count),
            finished: vec![false; count],
            stop: stop.clone(),
        };
        for (index, ring) in rings.into_iter().enumerate() {
            let mut proc = main.shard(index, count, ShardSink::default());
            proc.share_dns_answers();
            let guard = proc.guard_mut();
            guard.forward_attempts();
            if let Some(h) = names {
                guard.set_claims(h.claims.clone());
                guard.set_kernel(h.kernel.clone());
            }
            let counts = Arc::new(ShardCounts::default());
            shards.counts.push(counts.clone());
            let shard = Shard {
                index,
                ring,
                proc,
                tx: tx.clone(),
                answers_in: lanes[index].1.clone(),
                answers_out: lanes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != index)
                    .map(|(_, l)| l.0.clone())
                    .collect(),
                in_force: in_force.clone(),
                adopt,
                stop: stop.clone(),
                counts,
            };
            let handle = std::thread::Builder::new()
                .name(format!("flows-{index}"))
                .spawn(move || shard.run())?;
            shards.threads.push(handle);
        }
        tracing::info!(
            shards = count,
            "flow table sharded over the fanout rings' threads"
        );
        Ok(shards)
    }

    /// Wait up to `timeout` for the shards' batches and hand what came to
    /// `main`'s sinks and guard. False once every shard has finished.
    pub fn receive<S: RecordSink>(&mut self, main: &mut Processor<S>, timeout: Duration) -> bool {
        let first = match self.rx.recv_timeout(timeout) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => return !self.all_finished(),
            Err(RecvTimeoutError::Disconnected) => return false,
        };
        self.take(first, main);
        // What else is there, without waiting.
        for _ in 0..BATCHES {
            match self.rx.try_recv() {
                Ok(b) => self.take(b, main),
                Err(_) => break,
            }
        }
        !self.all_finished()
    }

    fn take<S: RecordSink>(&mut self, b: Batch, main: &mut Processor<S>) {
        for a in b.attempts {
            main.record_attempt(a);
        }
        let sink = main.sink_mut();
        for r in b.flows {
            sink.flow(r);
        }
        for a in b.blocked {
            sink.blocked(a);
        }
        for c in b.counters {
            self.merge.add(c);
        }
        if let Some(second) = b.passed {
            self.merge
                .passed(b.shard, second, &mut |c| sink.counters(c));
        }
        if b.last {
            if let Some(f) = self.finished.get_mut(b.shard) {
                *f = true;
            }
        }
    }

    fn all_finished(&self) -> bool {
        self.finished.iter().all(|f| *f) || self.threads.iter().all(JoinHandle::is_finished)
    }

    /// The shards' work counters, summed, into the agent's health.
    pub fn record_health(&self, health: &HealthState) {
        let sum = |f: fn(&ShardCounts) -> &AtomicU64| -> u64 {
            self.counts.iter().map(|c| f(c).load(Relaxed)).sum()
        };
        health.packets.store(sum(|c| &c.packets), Relaxed);
        health.bytes.store(sum(|c| &c.bytes), Relaxed);
        health
            .decode_errors
            .store(sum(|c| &c.decode_errors), Relaxed);
        health.active_flows.store(sum(|c| &c.active_flows), Relaxed);
        health
            .flows_evicted
            .store(sum(|c| &c.flows_evicted), Relaxed);
    }

    /// Stop the shards: each ends its flows and sends the rest, which goes
    /// to `main`'s sinks; their work counters are added to `main`'s.
    pub fn finish<S: RecordSink>(mut self, main: &mut Processor<S>) -> ProcessorStats {
        self.stop.store(true, Relaxed);
        while self.receive(main, Duration::from_millis(100)) {}
        // A shard that panicked sent no last batch: take what the others left.
        while let Ok(b) = self.rx.try_recv() {
            self.take(b, main);
        }
        let sink = main.sink_mut();
        self.merge.flush(&mut |c| sink.counters(c));
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(p) => main.absorb(&p),
                Err(_) => tracing::error!("a flow shard's thread panicked"),
            }
        }
        main.stats().clone()
    }
}

/// One shard's thread.
struct Shard {
    index: usize,
    ring: InlineRing,
    proc: Processor<ShardSink>,
    tx: Sender<Batch>,
    answers_in: Receiver<Answers>,
    answers_out: Vec<Sender<Answers>>,
    in_force: Arc<InForce>,
    adopt: Adopt,
    stop: Arc<AtomicBool>,
    counts: Arc<ShardCounts>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Shard {
    fn run(mut self) -> Processor<ShardSink> {
        let mut seen = u64::MAX;
        let mut current = Snapshot::default();
        let mut answers = Vec::new();
        let mut last_tick = Instant::now();
        loop {
            if let Some(s) = self.in_force.changed(&mut seen) {
                (self.adopt)(&mut self.proc, &mut current, s);
            }
            while let Ok(a) = self.answers_in.try_recv() {
                self.proc.learn_dns_answers(&a);
            }
            let stopping = self.stop.load(Relaxed);
            let proc = &mut self.proc;
            let n = self
                .ring
                .poll(if stopping { 0 } else { POLL_MS }, |ts, frame| {
                    proc.handle_frame(LinkType::Ethernet, ts, frame)
                });
            let mut passed = None;
            if n == 0 || stopping || last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                let now = now_ns();
                self.proc.tick(now);
                passed = Some(now / NS);
                self.counts.publish(&self.proc);
            }
            if stopping {
                self.proc.finish();
                self.counts.publish(&self.proc);
                passed = Some(u64::MAX);
            }
            self.proc.take_dns_answers(&mut answers);
            if !answers.is_empty() {
                let list: Answers = answers.drain(..).collect();
                for tx in &self.answers_out {
                    let _ = tx.try_send(list.clone());
                }
            }
            let mut batch = std::mem::take(&mut self.proc.sink_mut().next);
            self.proc.guard_mut().take_attempts(&mut batch.attempts);
            batch.shard = self.index;
            batch.passed = passed;
            batch.last = stopping;
            // The packet thread lives until every shard's last batch.
            if !batch.is_empty() && self.tx.send(batch).is_err() {
                break;
            }
            if stopping {
                break;
            }
        }
        self.proc
    }
}

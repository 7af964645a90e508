//! The processor's side of the link: records are gathered in memory and
//! sealed into a batch every `batch_interval_ms`; a sealed batch is handed to
//! the spool writer thread through a bounded queue. Nothing here touches the
//! disk or the network, so the packet path never waits on either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

use super::Shared;
use crate::output::JsonlSink;
use simpul_core::processor::{RecordSink, Tee};

/// A batch grows at most this many records before it is sealed early, so one
/// batch stays far below the wire's 16 MiB message limit (the writer still
/// splits any that would not).
pub const MAX_RECORDS_PER_BATCH: usize = 20_000;

/// Records of one interval, not yet numbered (the spool writer assigns
/// `seq` in hand-over order).
#[derive(Debug)]
pub(crate) struct Sealed {
    pub flows: Vec<FlowRecord>,
    pub counters: Vec<CounterSample>,
    pub blocked: Vec<BlockedAttempt>,
    pub sealed_ms: u64,
}

/// A [`RecordSink`] for the collector link; create it with
/// [`Uplink::start`](super::Uplink::start).
///
/// Call [`LinkSink::seal_if_due`] (or [`TimedSink::on_tick`]) regularly, also
/// when no packets arrive, and [`LinkSink::seal_now`] after
/// `Processor::finish` so the last records are handed over before
/// [`Uplink::stop`](super::Uplink::stop) and delivered in its flush. Records
/// sealed after the stop (or by dropping the sink) are not lost either: they
/// are written to the spool synchronously and sent on the next start.
pub struct LinkSink {
    flows: Vec<FlowRecord>,
    counters: Vec<CounterSample>,
    blocked: Vec<BlockedAttempt>,
    interval: Duration,
    next_seal: Instant,
    tx: Sender<Sealed>,
    /// Records that could not be handed over; the writer reports them in the
    /// next batch's `dropped_records`.
    lost: Arc<AtomicU64>,
    /// The spool itself, for batches sealed after the writer thread ended
    /// (a sink dropped after `Uplink::stop`): written here, synchronously.
    fallback: Option<Arc<Shared>>,
    warned_full: bool,
    /// Batches handed to the spool writer.
    pub sealed_batches: u64,
    /// Records handed to the spool writer.
    pub records: u64,
}

impl LinkSink {
    pub(crate) fn new(
        interval: Duration,
        tx: Sender<Sealed>,
        lost: Arc<AtomicU64>,
        fallback: Option<Arc<Shared>>,
    ) -> Self {
        Self {
            flows: Vec::new(),
            counters: Vec::new(),
            blocked: Vec::new(),
            interval,
            next_seal: Instant::now() + interval,
            tx,
            lost,
            fallback,
            warned_full: false,
            sealed_batches: 0,
            records: 0,
        }
    }

    /// Records gathered and not sealed yet.
    pub fn pending(&self) -> usize {
        self.flows.len() + self.counters.len() + self.blocked.len()
    }

    /// Seal the current batch if the interval has passed (`now` is monotonic
    /// time, normally `Instant::now()`).
    pub fn seal_if_due(&mut self, now: Instant) {
        if now >= self.next_seal {
            self.next_seal = now + self.interval;
            self.seal();
        }
    }

    /// Seal whatever is gathered now (end of capture, before `Uplink::stop`).
    pub fn seal_now(&mut self) {
        self.next_seal = Instant::now() + self.interval;
        self.seal();
    }

    fn seal(&mut self) {
        if self.pending() == 0 {
            return; // heartbeats carry liveness; empty batches would only cost disk writes
        }
        let sealed = Sealed {
            flows: std::mem::take(&mut self.flows),
            counters: std::mem::take(&mut self.counters),
            blocked: std::mem::take(&mut self.blocked),
            sealed_ms: unix_ms(),
        };
        let n = (sealed.flows.len() + sealed.counters.len() + sealed.blocked.len()) as u64;
        match self.tx.try_send(sealed) {
            Ok(()) => {
                self.sealed_batches += 1;
                self.records += n;
                self.warned_full = false;
            }
            Err(TrySendError::Full(_)) => {
                // The writer is stuck (disk hung): losing this batch beats
                // stalling capture, and the loss is counted and reported.
                self.lost.fetch_add(n, Ordering::Relaxed);
                if !self.warned_full {
                    tracing::error!(
                        records = n,
                        "spool writer is not keeping up; dropping sealed batches (counted)"
                    );
                    self.warned_full = true;
                }
            }
            Err(TrySendError::Disconnected(sealed)) => match &self.fallback {
                // The uplink stopped (the caller did not seal before stopping):
                // spool the batch here, it goes out on the next start. Only
                // on the way down, so the disk write cannot stall capture.
                Some(shared) => {
                    super::write_sealed(shared, sealed, &self.lost);
                    self.sealed_batches += 1;
                    self.records += n;
                    tracing::info!(
                        records = n,
                        "records sealed after the uplink stopped were spooled for the next start"
                    );
                }
                None => {
                    self.lost.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(
                        records = n,
                        "records sealed after the uplink stopped are lost"
                    );
                }
            },
        }
    }

    fn maybe_seal_early(&mut self) {
        if self.pending() >= MAX_RECORDS_PER_BATCH {
            self.seal_now();
        }
    }
}

impl RecordSink for LinkSink {
    fn flow(&mut self, record: FlowRecord) {
        self.flows.push(record);
        self.maybe_seal_early();
    }

    fn counters(&mut self, sample: CounterSample) {
        self.counters.push(sample);
        self.maybe_seal_early();
    }

    fn blocked(&mut self, attempt: BlockedAttempt) {
        self.blocked.push(attempt);
        self.maybe_seal_early();
    }
}

impl Drop for LinkSink {
    fn drop(&mut self) {
        // Whatever is still gathered goes to the writer if it still runs.
        self.seal();
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A sink with time-driven work (sealing batches, flushing files), driven by
/// the capture loop or the real-time replay even when no packet arrives.
pub trait TimedSink: RecordSink {
    fn on_tick(&mut self, now: Instant);
}

impl TimedSink for LinkSink {
    fn on_tick(&mut self, now: Instant) {
        self.seal_if_due(now);
    }
}

impl TimedSink for JsonlSink {
    fn on_tick(&mut self, _now: Instant) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "cannot flush JSONL output");
        }
    }
}

impl<A: TimedSink, B: TimedSink> TimedSink for Tee<A, B> {
    fn on_tick(&mut self, now: Instant) {
        self.0.on_tick(now);
        self.1.on_tick(now);
    }
}

impl<S: TimedSink> TimedSink for Option<S> {
    fn on_tick(&mut self, now: Instant) {
        if let Some(s) = self {
            s.on_tick(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::TrafficScope;

    fn sample(ts: u64) -> CounterSample {
        CounterSample {
            ts,
            agency: "a".into(),
            unit: "u".into(),
            scope: TrafficScope::Intranet,
            bytes_in: 1,
            bytes_out: 2,
            packets_in: 1,
            packets_out: 1,
        }
    }

    #[test]
    fn seals_on_interval_never_blocks_and_counts_losses() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let lost = Arc::new(AtomicU64::new(0));
        let mut s = LinkSink::new(Duration::from_millis(100), tx, lost.clone(), None);
        let t0 = Instant::now();
        s.counters(sample(1));
        s.seal_if_due(t0);
        assert!(rx.try_recv().is_err(), "not due yet");
        s.seal_if_due(t0 + Duration::from_millis(150));
        let b = rx.try_recv().unwrap();
        assert_eq!(b.counters.len(), 1);
        // Nothing gathered: nothing sealed.
        s.seal_now();
        assert!(rx.try_recv().is_err());
        // A full queue drops (counted) instead of waiting.
        for i in 0..3 {
            s.counters(sample(i));
            s.seal_now();
        }
        assert_eq!(lost.load(Ordering::Relaxed), 1);
        assert_eq!(s.sealed_batches, 3);
        drop(rx);
        s.counters(sample(9));
        drop(s);
        assert_eq!(lost.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn seals_early_when_large() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let mut s = LinkSink::new(Duration::from_secs(60), tx, Arc::default(), None);
        for i in 0..MAX_RECORDS_PER_BATCH as u64 + 5 {
            s.counters(sample(i));
        }
        assert_eq!(rx.try_recv().unwrap().counters.len(), MAX_RECORDS_PER_BATCH);
        assert_eq!(s.pending(), 5);
    }
}

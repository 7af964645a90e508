//! The agent's link to the collector (`proto::wire` over WebSocket).
//!
//! ```text
//!  processor thread          spool writer thread            uplink thread (tokio)
//!  LinkSink ──sealed──► bounded queue ──► Spool (disk) ◄──read/ack── client: Enroll/Hello,
//!  (never blocks)                         numbered seq 1,2,3…       batches, heartbeats, acks
//! ```
//!
//! - [`sink::LinkSink`] gathers records and seals a batch every
//!   `batch_interval_ms`; a full queue drops (counted), it never waits.
//! - The spool writer numbers each batch (`boot_epoch`, `seq`), and makes it
//!   durable in [`spool::Spool`] before it can be sent.
//! - The client sends spooled batches oldest first, a window at a time, and
//!   deletes each on the collector's `Ack`. Reconnects re-send everything
//!   unacknowledged; the collector drops what it already committed.
//! - With several collector addresses (`[collector] urls`) a failed link
//!   moves to the next one; the spool does not care which collector acks.
//!
//! - What the collector sends besides acks (the inventory, signed policies,
//!   its policy key) goes to the [`LinkOptions::inbox`]; what the agent
//!   reports back (policy states) goes out through [`LinkControl`].
//!
//! Start it with [`Uplink::start`], feed the returned [`LinkSink`] to a
//! [`Processor`](simpul_core::processor::Processor), stop with [`Uplink::stop`]:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use simpul_agent::config::CollectorConfig;
//! # use simpul_agent::link::{HealthState, LinkOptions, Uplink};
//! # use simpul_core::{agency::AgencyMap, processor::{Processor, ProcessorConfig}};
//! # fn demo(col: &CollectorConfig) -> anyhow::Result<()> {
//! let health = Arc::new(HealthState::new());
//! let state_dir = std::path::Path::new("/var/lib/simpul-agent");
//! let (uplink, sink) = Uplink::start(col, "dinkes-01", state_dir, health.clone(), LinkOptions::default())?;
//! let mut proc = Processor::new(&ProcessorConfig::default(), AgencyMap::empty(), sink);
//! // … proc.handle_frame(…), proc.sink_mut().seal_if_due(Instant::now()) …
//! proc.finish();
//! proc.sink_mut().seal_now();
//! uplink.stop();
//! # Ok(()) }
//! ```

pub mod client;
pub mod health;
pub mod sink;
pub mod spool;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use simpul_proto::inventory::Inventory;
use simpul_proto::signed::SignedPolicy;
use simpul_proto::wire::{self, Batch, PolicyState};
use tokio::sync::{watch, Notify};

pub use health::{CpuMeter, HealthState};
pub use sink::{LinkSink, TimedSink};
pub use spool::{BatchId, Spool, SpoolError, SpoolStats};

use crate::config::CollectorConfig;
use sink::Sealed;

/// What the collector sent that is not about delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromCollector {
    /// The collector's policy signing key (at enrollment and every Welcome).
    PolicyKey(Vec<u8>),
    Inventory(Inventory),
    Policy(SignedPolicy),
    /// Part of a named list ([`LinkControl::fetch_list`]).
    ListChunk {
        sha256: String,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    },
    /// The collector cannot send that list.
    ListUnavailable {
        sha256: String,
        reason: String,
    },
}

/// How the agent wants to use the link beyond delivering records.
#[derive(Debug, Clone, Default)]
pub struct LinkOptions {
    /// `wire::feature` names announced in Hello.
    pub features: Vec<String>,
    /// Where [`FromCollector`] messages go (None: they are logged and dropped).
    pub inbox: Option<Sender<FromCollector>>,
}

/// Policy states waiting for a connection at most; older ones are dropped
/// (Hello's `policy_version` tells the collector where the node stands).
const OUTBOX_CAP: usize = 16;

/// The agent's side of the conversation: what it holds (for Hello) and the
/// policy states it reports.
#[derive(Default)]
pub struct LinkControl {
    inventory_version: AtomicU64,
    policy_version: AtomicU64,
    outbox: Mutex<VecDeque<PolicyState>>,
    /// List chunks to ask for: (sha256, offset).
    fetches: Mutex<VecDeque<(String, u64)>>,
    pub(crate) wake: Notify,
    /// The features the collector offered in its last Welcome (None: no
    /// Welcome yet).
    offered: Mutex<Option<Vec<String>>>,
}

impl LinkControl {
    /// The inventory and policy versions this node holds (said in Hello).
    pub fn set_versions(&self, inventory: u64, policy: u64) {
        self.inventory_version.store(inventory, Ordering::Relaxed);
        self.policy_version.store(policy, Ordering::Relaxed);
    }

    /// Whether a collector welcomed this agent without offering `feature`
    /// (an older collector: it will never send it).
    pub fn declined(&self, feature: &str) -> bool {
        self.offered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|f| !f.iter().any(|x| x == feature))
    }

    pub(crate) fn welcomed(&self, features: Vec<String>) {
        *self.offered.lock().unwrap_or_else(|p| p.into_inner()) = Some(features);
    }

    pub fn versions(&self) -> (u64, u64) {
        (
            self.inventory_version.load(Ordering::Relaxed),
            self.policy_version.load(Ordering::Relaxed),
        )
    }

    /// Report a policy state as soon as the link can.
    pub fn report(&self, state: PolicyState) {
        let mut q = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= OUTBOX_CAP {
            q.pop_front();
        }
        q.push_back(state);
        drop(q);
        self.wake.notify_one();
    }

    /// Ask the collector for a list's bytes from `offset` on (one chunk;
    /// the next is asked for when this one arrived). A request lost with
    /// the connection is asked again by the control thread.
    pub fn fetch_list(&self, sha256: &str, offset: u64) {
        let mut q = self.fetches.lock().unwrap_or_else(|p| p.into_inner());
        q.retain(|(s, _)| s != sha256);
        if q.len() >= OUTBOX_CAP {
            q.pop_front();
        }
        q.push_back((sha256.to_string(), offset));
        drop(q);
        self.wake.notify_one();
    }

    pub(crate) fn take_fetches(&self) -> Vec<(String, u64)> {
        let mut q = self.fetches.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }

    /// The states waiting to be sent (the link takes them when it can).
    pub fn take_states(&self) -> Vec<PolicyState> {
        let mut q = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }

    /// Put states back that could not be sent (the link went down).
    pub(crate) fn put_back(&self, states: Vec<PolicyState>) {
        let mut q = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        for s in states.into_iter().rev() {
            if q.len() < OUTBOX_CAP {
                q.push_front(s);
            }
        }
    }
}

/// Sealed batches queued between the processor and the spool writer: about a
/// minute of batches at the default interval before the sink starts dropping.
const SEAL_QUEUE: usize = 64;
/// Default time [`Uplink::stop`] spends delivering what is left.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stop waits for the spool writer to make already-sealed batches
/// durable. Separate from the delivery timeout: a short delivery window must
/// not turn a slow disk (fsync under load can take seconds) into lost records.
const WRITER_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error("collector CA certificate {path}: {message}")]
    CaCert {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot create the state directory {path}: {cause}")]
    StateDir {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("cannot start the {what} thread: {cause}")]
    Thread {
        what: &'static str,
        cause: std::io::Error,
    },
    #[error("cannot start the uplink's async runtime: {0}")]
    Runtime(std::io::Error),
}

/// State shared by the spool writer and the client task.
pub(crate) struct Shared {
    spool: Mutex<Spool>,
    /// Wakes the client when the writer committed a batch.
    pub new_batch: Notify,
    pub health: Arc<HealthState>,
    pub boot_epoch: u64,
    /// Next batch sequence number of this boot (1, 2, 3…).
    next_seq: AtomicU64,
    writer_done: AtomicBool,
    pub control: Arc<LinkControl>,
}

impl Shared {
    pub fn lock_spool(&self) -> MutexGuard<'_, Spool> {
        // A panic while holding the lock leaves a consistent-enough index:
        // files on disk stay the truth and are re-read on the next start.
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn writer_done(&self) -> bool {
        self.writer_done.load(Ordering::Acquire)
    }

    /// Mirror the spool's totals into the health atomics.
    pub fn publish(&self, spool: &Spool) {
        let s = spool.stats();
        let h = &self.health;
        h.spool_batches.store(s.batches, Ordering::Relaxed);
        h.spool_bytes.store(s.bytes, Ordering::Relaxed);
        h.spool_quota_bytes.store(s.quota_bytes, Ordering::Relaxed);
        h.spool_dropped_records
            .store(s.dropped_records, Ordering::Relaxed);
    }
}

/// What was left when the uplink stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Batches still spooled (sent next start).
    pub spooled_batches: u64,
    /// Every thread ended within the time given.
    pub clean: bool,
}

/// A running link: the spool writer thread and the client thread.
///
/// Dropping it without [`Uplink::stop`] signals both threads to end at once
/// without waiting (spooled batches stay on disk for the next start).
pub struct Uplink {
    shared: Arc<Shared>,
    writer_stop: Arc<AtomicBool>,
    stop_tx: watch::Sender<Option<Instant>>,
    writer: Option<JoinHandle<()>>,
    client: Option<JoinHandle<()>>,
}

impl Uplink {
    /// Open the spool under `state_dir`, load the collector CA and start
    /// the spool writer and the client (a tokio runtime on its own thread,
    /// so this works from sync code and from inside another runtime alike).
    ///
    /// Returns the running link and the [`LinkSink`] to hand to the
    /// processor. Fails on configuration errors (invalid `cfg`, unreadable CA,
    /// uncreatable state directory), never on the collector being down.
    pub fn start(
        cfg: &CollectorConfig,
        node_id: &str,
        state_dir: &Path,
        health: Arc<HealthState>,
        options: LinkOptions,
    ) -> Result<(Uplink, LinkSink), LinkError> {
        let mut problems = Vec::new();
        let urls = cfg.check(&mut problems);
        let urls = match (urls, problems.first()) {
            (Some(u), None) => u,
            (_, Some(p)) => {
                return Err(LinkError::Config {
                    key: p.place.clone(),
                    message: p.message.clone(),
                })
            }
            (None, None) => {
                return Err(LinkError::Config {
                    key: "collector.url".into(),
                    message: "invalid".into(),
                })
            }
        };
        if !simpul_proto::valid_code(node_id) {
            return Err(LinkError::Config {
                key: "agent.id".into(),
                message: format!("{node_id:?} is not a valid node id"),
            });
        }
        let tls = match (urls.iter().any(|u| u.tls), &cfg.ca_cert) {
            (true, Some(ca)) => Some(client::tls_config(ca)?),
            (true, None) => {
                return Err(LinkError::Config {
                    key: "collector.ca_cert".into(),
                    message: "required for wss://".into(),
                })
            }
            (false, _) => None,
        };
        for u in urls.iter().filter(|u| !u.tls) {
            tracing::warn!(url = %u.to_url(), "collector link is unencrypted (ws://): for tests only");
        }
        std::fs::create_dir_all(state_dir).map_err(|cause| LinkError::StateDir {
            path: state_dir.to_owned(),
            cause,
        })?;
        let (spool, _report) = Spool::open(&state_dir.join("spool"), cfg.spool_quota_bytes)?;
        // Start time in ns, and after every spooled epoch: batches of this boot
        // sort after older ones even if the clock was set back (routers
        // without an RTC boot in 1970 until NTP answers).
        let boot_epoch = unix_ns().max(spool.max_epoch().map_or(0, |e| e.saturating_add(1)));
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            new_batch: Notify::new(),
            health,
            boot_epoch,
            next_seq: AtomicU64::new(1),
            writer_done: AtomicBool::new(false),
            control: Arc::new(LinkControl::default()),
        });
        shared.publish(&shared.lock_spool());

        let lost = Arc::new(AtomicU64::new(0));
        let (tx, rx) = crossbeam_channel::bounded(SEAL_QUEUE);
        let writer_stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (shared, stop, lost) = (shared.clone(), writer_stop.clone(), lost.clone());
            std::thread::Builder::new()
                .name("simpul-spool".into())
                .spawn(move || writer_loop(&shared, &rx, &stop, &lost))
                .map_err(|cause| LinkError::Thread {
                    what: "spool writer",
                    cause,
                })?
        };
        let (stop_tx, stop_rx) = watch::channel(None);
        let ctx = client::ClientCtx {
            shared: shared.clone(),
            cfg: cfg.clone(),
            node_id: node_id.to_string(),
            state_dir: state_dir.to_owned(),
            urls,
            current: 0,
            on: None,
            failovers: 0,
            tls,
            stop: stop_rx,
            hostname: client::hostname(),
            options,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(LinkError::Runtime)?;
        let spawned = std::thread::Builder::new()
            .name("simpul-uplink".into())
            .spawn(move || rt.block_on(client::run(ctx)));
        let client = match spawned {
            Ok(h) => h,
            Err(cause) => {
                writer_stop.store(true, Ordering::Release);
                return Err(LinkError::Thread {
                    what: "uplink",
                    cause,
                });
            }
        };
        let collectors = cfg.addresses().join(", ");
        tracing::info!(%collectors, node_id, boot_epoch, "collector link started");
        let sink = LinkSink::new(
            Duration::from_millis(cfg.batch_interval_ms),
            tx,
            lost,
            Some(shared.clone()),
        );
        Ok((
            Uplink {
                shared,
                writer_stop,
                stop_tx,
                writer: Some(writer),
                client: Some(client),
            },
            sink,
        ))
    }

    /// This run's boot epoch (batches sealed now carry it).
    pub fn boot_epoch(&self) -> u64 {
        self.shared.boot_epoch
    }

    /// Versions for Hello and policy states for the collector.
    pub fn control(&self) -> Arc<LinkControl> {
        self.shared.control.clone()
    }

    /// Spool totals right now.
    pub fn spool_stats(&self) -> SpoolStats {
        self.shared.lock_spool().stats()
    }

    /// Stop within [`STOP_TIMEOUT`]; see [`Uplink::stop_within`].
    pub fn stop(self) -> StopReport {
        self.stop_within(STOP_TIMEOUT)
    }

    /// Flush and stop: the writer spools every batch already sealed (call
    /// [`LinkSink::seal_now`] first for the records still gathered), then the
    /// client keeps delivering until everything is acknowledged or `timeout`
    /// passes. Undelivered batches stay spooled for the next start.
    ///
    /// `timeout` bounds delivery only; writing sealed batches to the spool
    /// is always waited for (up to [`WRITER_FLUSH_TIMEOUT`]), because a batch
    /// not on disk when the process exits is a batch lost.
    ///
    /// Blocks the calling thread; from async code call it in `spawn_blocking`.
    pub fn stop_within(mut self, timeout: Duration) -> StopReport {
        self.writer_stop.store(true, Ordering::Release);
        let mut clean = join_until(
            self.writer.take(),
            Instant::now() + WRITER_FLUSH_TIMEOUT,
            "spool writer",
        );
        let deadline = Instant::now() + timeout;
        // Deliver until the deadline, then give the client a moment to close.
        self.stop_tx.send_replace(Some(deadline));
        clean &= join_until(
            self.client.take(),
            deadline + Duration::from_secs(1),
            "uplink",
        );
        let spooled_batches = self.shared.lock_spool().len() as u64;
        if spooled_batches > 0 {
            tracing::info!(
                spooled_batches,
                "collector link stopped; undelivered batches stay spooled for the next start"
            );
        }
        StopReport {
            spooled_batches,
            clean,
        }
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        if self.writer.is_some() || self.client.is_some() {
            self.writer_stop.store(true, Ordering::Release);
            self.stop_tx.send_replace(Some(Instant::now()));
        }
    }
}

/// Join `handle` if it ends before `deadline`; otherwise leave it running
/// detached (it ends with the process) rather than hang a shutdown.
fn join_until(handle: Option<JoinHandle<()>>, deadline: Instant, what: &str) -> bool {
    let Some(h) = handle else { return true };
    while !h.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!(thread = what, "did not stop in time; leaving it");
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if h.join().is_err() {
        tracing::error!(thread = what, "thread panicked");
        return false;
    }
    true
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The spool writer: numbers sealed batches and makes them durable.
fn writer_loop(shared: &Shared, rx: &Receiver<Sealed>, stop: &AtomicBool, lost: &AtomicU64) {
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(sealed) => write_sealed(shared, sealed, lost),
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Acquire) {
                    // Whatever was sealed before the stop still goes to disk.
                    while let Ok(sealed) = rx.try_recv() {
                        write_sealed(shared, sealed, lost);
                    }
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let stranded = lost.swap(0, Ordering::Relaxed);
    if stranded > 0 {
        let mut sp = shared.lock_spool();
        sp.note_lost(stranded);
        shared.publish(&sp);
    }
    shared.writer_done.store(true, Ordering::Release);
    shared.new_batch.notify_one();
}

/// Number `sealed` (splitting it if needed) and make it durable. Runs on the
/// writer thread, or on the caller's for a sink used after the writer ended.
pub(crate) fn write_sealed(shared: &Shared, sealed: Sealed, lost: &AtomicU64) {
    // Split anything that would exceed the wire's message limit, keeping order.
    let mut parts = vec![(sealed.flows, sealed.counters, sealed.blocked)];
    let mut ready = Vec::new();
    while let Some((flows, counters, blocked)) = parts.pop() {
        let batch = Batch {
            boot_epoch: shared.boot_epoch,
            seq: 0,
            sealed_ms: sealed.sealed_ms,
            flows,
            counters,
            blocked,
            dropped_records: 0,
            dropped_batches: 0,
        };
        let records = batch.flows.len() + batch.counters.len() + batch.blocked.len();
        if records > 1 && too_large(&batch) {
            let Batch {
                mut flows,
                mut counters,
                mut blocked,
                ..
            } = batch;
            // Halve the records in order (flows, then counters, then
            // blocked attempts); both halves are non-empty since records > 1.
            let mut at = records / 2;
            let second = (
                split_tail(&mut flows, &mut at),
                split_tail(&mut counters, &mut at),
                split_tail(&mut blocked, &mut at),
            );
            parts.push(second);
            parts.push((flows, counters, blocked));
            continue;
        }
        ready.push(batch);
    }
    for mut batch in ready {
        batch.seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let prepared = {
            let mut sp = shared.lock_spool();
            sp.note_lost(lost.swap(0, Ordering::Relaxed));
            let p = sp.prepare(batch);
            shared.publish(&sp);
            p
        };
        let Some(prepared) = prepared else { continue };
        // The slow part (fsyncs) without the lock: the client keeps acking.
        let written = prepared.write();
        {
            let mut sp = shared.lock_spool();
            sp.commit(written);
            shared.publish(&sp);
        }
        shared.new_batch.notify_one();
    }
}

/// Keep the first `*at` elements of `v` (fewer if it is shorter, taking them
/// off `*at`) and return the rest.
fn split_tail<T>(v: &mut Vec<T>, at: &mut usize) -> Vec<T> {
    let keep = (*at).min(v.len());
    *at -= keep;
    v.split_off(keep)
}

/// Whether `batch` may exceed the wire's message limit. A cheap upper bound
/// first (string lengths plus a generous fixed size per record); only a
/// batch near the limit is actually encoded to find out.
fn too_large(batch: &Batch) -> bool {
    // Every fixed field of a record, varint-encoded, fits in 256 bytes (two
    // IPv6 addresses, ten u64 of at most 10 bytes, options and tags); each
    // string adds its length plus at most 10 bytes of prefix.
    let s = |o: &Option<String>| o.as_ref().map_or(0, |v| v.len() + 10);
    let flows: usize = batch
        .flows
        .iter()
        .map(|f| {
            256 + f.proto.len()
                + f.agency.len()
                + f.unit.len()
                + 30
                + s(&f.sni)
                + s(&f.http_host)
                + s(&f.dns_query)
                + s(&f.site)
        })
        .sum();
    let counters: usize = batch
        .counters
        .iter()
        .map(|c| 128 + c.agency.len() + c.unit.len())
        .sum();
    let blocked: usize = batch
        .blocked
        .iter()
        .map(|b| {
            160 + b.agency.len()
                + b.unit.len()
                + b.target.len()
                + b.proto.len()
                + b.rule.len()
                + b.list.len()
        })
        .sum();
    // Headroom for the message envelope, seq and dropped_records (0 here).
    let limit = wire::MAX_MESSAGE_BYTES - 64;
    flows + counters + blocked > limit && wire::encode(batch).len() > limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::{CounterSample, TrafficScope};

    fn sample(unit: &str) -> CounterSample {
        CounterSample {
            ts: u64::MAX,
            agency: "a".repeat(64),
            unit: unit.into(),
            scope: TrafficScope::Internet,
            bytes_in: u64::MAX,
            bytes_out: u64::MAX,
            packets_in: u64::MAX,
            packets_out: u64::MAX,
        }
    }

    #[test]
    fn size_bound_is_an_upper_bound() {
        let batch = Batch {
            boot_epoch: u64::MAX,
            seq: u64::MAX,
            sealed_ms: u64::MAX,
            flows: vec![],
            counters: vec![sample("unit"); 100],
            blocked: vec![],
            dropped_records: u64::MAX,
            dropped_batches: 0,
        };
        let encoded = wire::encode(&simpul_proto::wire::AgentMessage::Batch(batch.clone())).len();
        let bound: usize = batch
            .counters
            .iter()
            .map(|c| 128 + c.agency.len() + c.unit.len())
            .sum();
        assert!(encoded + 64 < bound, "{encoded} vs {bound}");
        assert!(!too_large(&batch));
    }

    #[test]
    fn oversized_batches_are_split_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(tmp.path(), 1 << 30).unwrap();
        let shared = Shared {
            spool: Mutex::new(spool),
            new_batch: Notify::new(),
            health: Arc::new(HealthState::new()),
            boot_epoch: 9,
            next_seq: AtomicU64::new(1),
            writer_done: AtomicBool::new(false),
            control: Arc::new(LinkControl::default()),
        };
        // ~24 MiB of counters and 8 MiB of blocked attempts: must become at
        // least three batches under 16 MiB, every record once and in order.
        let big = "u".repeat(64 << 10);
        let blocked: Vec<simpul_proto::BlockedAttempt> = (0..128u32)
            .map(|i| simpul_proto::BlockedAttempt {
                first_seen: 1,
                last_seen: 2,
                client: std::net::Ipv4Addr::LOCALHOST.into(),
                agency: "a".into(),
                unit: big.clone(),
                method: simpul_proto::BlockMethod::Sni,
                target: "x.example".into(),
                server: None,
                port: None,
                proto: "tcp".into(),
                rule: "x.example".into(),
                list: "domains".into(),
                attempts: i + 1,
            })
            .collect();
        let counters: Vec<CounterSample> = (0..384)
            .map(|i| {
                let mut c = sample(&big);
                c.ts = i;
                c
            })
            .collect();
        write_sealed(
            &shared,
            Sealed {
                flows: vec![],
                counters,
                blocked,
                sealed_ms: 1,
            },
            &AtomicU64::new(0),
        );
        let mut sp = shared.lock_spool();
        let ids = sp.ids();
        assert!(ids.len() >= 3, "{ids:?}");
        let seqs: Vec<u64> = ids.iter().map(|i| i.seq).collect();
        assert_eq!(seqs, (1..=ids.len() as u64).collect::<Vec<_>>());
        let mut ts = Vec::new();
        let mut attempts = Vec::new();
        for id in ids {
            let b = sp.read_batch(id).unwrap();
            let frame = wire::encode(&simpul_proto::wire::AgentMessage::Batch(b.clone()));
            assert!(frame.len() <= wire::MAX_MESSAGE_BYTES);
            ts.extend(b.counters.iter().map(|c| c.ts));
            attempts.extend(b.blocked.iter().map(|a| a.attempts));
        }
        assert_eq!(ts, (0..384).collect::<Vec<_>>());
        assert_eq!(attempts, (1..=128).collect::<Vec<_>>());
    }
}

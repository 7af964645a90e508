//! The agent's own health, shared between the threads that know it (capture,
//! processor, spool) and the link task that reports it in every heartbeat.
//!
//! Plain atomics: the processor thread publishes its counters about once a
//! second and must never wait on a lock the network side holds.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use simpul_proto::wire::{Health, InterfaceHealth, IpfixHealth, NameBlockHealth, NameLaneHealth};

use crate::capture::live::InterfaceStats;
use crate::enforce::names::NameBlockerStats;
use crate::export::ipfix::IpfixStats;
use simpul_core::processor::{Processor, RecordSink};

/// Counters behind [`Health`]; cheap to update from any thread.
#[derive(Debug)]
pub struct HealthState {
    started: Instant,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub decode_errors: AtomicU64,
    pub active_flows: AtomicU64,
    pub flows_evicted: AtomicU64,
    pub spool_batches: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_quota_bytes: AtomicU64,
    /// Records lost since start: spool quota, an unwritable spool, a stalled
    /// spool writer, corrupt spool files.
    pub spool_dropped_records: AtomicU64,
    pub policy_version: AtomicU64,
    pub policy_failures: AtomicU64,
    pub inventory_version: AtomicU64,
    /// Capture interfaces; set once at start, read at each heartbeat.
    interfaces: Mutex<Vec<Arc<InterfaceStats>>>,
    /// Set once when name refusals start; unset, the heartbeat says None.
    pub name_block: OnceLock<Arc<NameBlockerStats>>,
    /// Set once when the IPFIX exporter starts.
    pub ipfix: OnceLock<Arc<IpfixStats>>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            active_flows: AtomicU64::new(0),
            flows_evicted: AtomicU64::new(0),
            spool_batches: AtomicU64::new(0),
            spool_bytes: AtomicU64::new(0),
            spool_quota_bytes: AtomicU64::new(0),
            spool_dropped_records: AtomicU64::new(0),
            policy_version: AtomicU64::new(0),
            policy_failures: AtomicU64::new(0),
            inventory_version: AtomicU64::new(0),
            interfaces: Mutex::new(Vec::new()),
            name_block: OnceLock::new(),
            ipfix: OnceLock::new(),
        }
    }

    /// Report these capture interfaces (live capture's per-interface stats).
    pub fn set_interfaces(&self, stats: &[Arc<InterfaceStats>]) {
        // A poisoned lock only means a panic elsewhere; the data is still valid.
        let mut g = self.interfaces.lock().unwrap_or_else(|p| p.into_inner());
        *g = stats.to_vec();
    }

    /// Copy the processor's counters (call about once a second from the
    /// processor's own thread).
    pub fn record_processor<S: RecordSink>(&self, proc: &Processor<S>) {
        let s = proc.stats();
        self.packets.store(s.packets, Relaxed);
        self.bytes.store(s.bytes, Relaxed);
        self.decode_errors.store(s.decode_error_total(), Relaxed);
        self.active_flows.store(proc.active_flows() as u64, Relaxed);
        self.flows_evicted.store(proc.flow_stats().evicted, Relaxed);
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// The health as sent in a heartbeat; `cpu_percent` is left at 0 for the
    /// caller that measures intervals ([`CpuMeter`]).
    pub fn snapshot(&self) -> Health {
        let stats = self.interfaces.lock().unwrap_or_else(|p| p.into_inner());
        let interfaces = stats
            .iter()
            .map(|i| InterfaceHealth {
                name: i.name.clone(),
                frames: i.frames.load(Relaxed),
                kernel_drops: i.kernel_drops.load(Relaxed),
                queue_drops: i.queue_drops.load(Relaxed),
            })
            .collect();
        let name_lanes = stats
            .iter()
            .filter_map(|i| {
                let l = i.name_lane.get()?;
                Some(NameLaneHealth {
                    interface: i.name.clone(),
                    frames: l.frames.load(Relaxed),
                    blocks: l.blocks.load(Relaxed),
                    dropped: l.dropped.load(Relaxed),
                    read_errors: l.read_errors.load(Relaxed),
                })
            })
            .collect();
        drop(stats);
        Health {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.uptime_secs(),
            cpu_percent: 0.0,
            rss_bytes: rss_bytes().unwrap_or(0),
            interfaces,
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            active_flows: self.active_flows.load(Relaxed),
            flows_evicted: self.flows_evicted.load(Relaxed),
            spool_batches: self.spool_batches.load(Relaxed),
            spool_bytes: self.spool_bytes.load(Relaxed),
            spool_quota_bytes: self.spool_quota_bytes.load(Relaxed),
            spool_dropped_records: self.spool_dropped_records.load(Relaxed),
            policy_version: self.policy_version.load(Relaxed),
            policy_failures: self.policy_failures.load(Relaxed),
            inventory_version: self.inventory_version.load(Relaxed),
            name_lanes,
            // Filled in by the link, which knows which collector it is on.
            collector: None,
            name_block: self.name_block.get().map(|s| NameBlockHealth {
                entries_added: s.entries_added.load(Relaxed),
                batches: s.batches.load(Relaxed),
                failures: s.failures.load(Relaxed),
                clears: s.clears.load(Relaxed),
                nft_fallbacks: s.nft_fallbacks.load(Relaxed),
                resets_sent: s.resets_sent.load(Relaxed),
                reset_errors: s.reset_errors.load(Relaxed),
            }),
            ipfix: self.ipfix.get().map(|s| IpfixHealth {
                messages: s.messages.load(Relaxed),
                records: s.records.load(Relaxed),
                send_errors: s.send_errors.load(Relaxed),
                record_errors: s.record_errors.load(Relaxed),
                interim_skipped: s.interim_skipped.load(Relaxed),
            }),
        }
    }
}

/// Resident set size from /proc (Linux); None elsewhere or on any error.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0)?)
}

/// Process CPU time since the previous call, as percent of one core.
#[derive(Debug)]
pub struct CpuMeter {
    last: Option<(Instant, f64)>,
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuMeter {
    pub fn new() -> Self {
        Self { last: None }
    }

    /// Percent of one core used by the whole process since the last sample
    /// (0 on the first call).
    pub fn sample(&mut self) -> f32 {
        let now = Instant::now();
        let Some(cpu) = process_cpu_secs() else {
            return 0.0;
        };
        let pct = match self.last {
            Some((t, c)) => {
                let wall = now.duration_since(t).as_secs_f64();
                if wall > 0.0 {
                    ((cpu - c) / wall * 100.0).max(0.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu));
        pct as f32
    }
}

fn process_cpu_secs() -> Option<f64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the pointer on success.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0, so the struct was written (and it was zeroed before).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_process_facts() {
        let h = HealthState::new();
        h.packets.store(5, Relaxed);
        let s = h.snapshot();
        assert_eq!(s.packets, 5);
        assert!(s.rss_bytes > 0);
        assert_eq!(s.agent_version, env!("CARGO_PKG_VERSION"));
        assert!(s.name_lanes.is_empty());
        // An interface with a name lane reports it; one without does not.
        let lane = Arc::new(crate::capture::name_lane::NameLaneStats::default());
        lane.frames.store(40, Relaxed);
        lane.blocks.store(2, Relaxed);
        lane.dropped.store(1, Relaxed);
        let with = InterfaceStats {
            name: "lan0".into(),
            ..InterfaceStats::default()
        };
        with.name_lane.set(lane).expect("set once");
        let without = InterfaceStats {
            name: "wan0".into(),
            ..InterfaceStats::default()
        };
        h.set_interfaces(&[Arc::new(with), Arc::new(without)]);
        let s = h.snapshot();
        assert_eq!(s.interfaces.len(), 2);
        assert_eq!(
            s.name_lanes,
            [NameLaneHealth {
                interface: "lan0".into(),
                frames: 40,
                blocks: 2,
                dropped: 1,
                read_errors: 0,
            }]
        );
        assert_eq!((s.name_block, s.ipfix), (None, None));
        // Name refusals and IPFIX export report once started.
        let names = Arc::new(NameBlockerStats::default());
        names.entries_added.store(3, Relaxed);
        names.resets_sent.store(6, Relaxed);
        names.nft_fallbacks.store(1, Relaxed);
        h.name_block.set(names).expect("set once");
        let export = Arc::new(IpfixStats::default());
        export.messages.store(2, Relaxed);
        export.records.store(30, Relaxed);
        export.interim_skipped.store(4, Relaxed);
        h.ipfix.set(export).expect("set once");
        let s = h.snapshot();
        assert_eq!(
            s.name_block,
            Some(NameBlockHealth {
                entries_added: 3,
                nft_fallbacks: 1,
                resets_sent: 6,
                ..NameBlockHealth::default()
            })
        );
        assert_eq!(
            s.ipfix,
            Some(IpfixHealth {
                messages: 2,
                records: 30,
                interim_skipped: 4,
                ..IpfixHealth::default()
            })
        );
        let mut m = CpuMeter::new();
        assert_eq!(m.sample(), 0.0);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(m.sample() >= 0.0);
    }
}

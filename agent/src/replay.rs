//! Replay of capture files as fast as the machine allows: one thread walks the
//! memory-mapped file and decodes, the other runs the flow table, naming and
//! counters. Decoded packets borrow the map, so nothing is copied between them.
//!
//! With `SIMPUL_REPLAY_FLOW_THREADS=N` (N > 1, no policy in force) the flows
//! run on N shards instead, each owning its share of address pairs
//! ([`sharded`]): the same records. Not the default: on this 2-core VM the
//! shards, the reader and the merger need about a third more CPU than the two
//! threads above, so they only pay off with cores to spare
//! (`bench/compare.sh` measures both).
//!
//! [`replay_realtime`] instead paces packets at their recorded speed with
//! timestamps shifted to now, so a capture file can stand in for a live
//! router (demos, soak tests of the collector link).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::bounded;

mod sharded;

use crate::capture::file::{self, FileError};
use crate::link::TimedSink;
use simpul_core::decode::{self, DecodeError, Packet};
use simpul_core::processor::{Processor, RecordSink};

const BATCH: usize = 1024;
/// Hand consumed file pages back every this many bytes, so the replay's RSS
/// stays small however large the file (the pages stay in the page cache).
const RELEASE_EVERY: usize = 32 << 20;
/// Map file pages into the process this far ahead in one call: one
/// MADV_POPULATE_READ per window costs far less than a page fault per 4 KiB.
const POPULATE_AHEAD: usize = 16 << 20;

/// What the replay of one file found besides its packets.
#[derive(Debug, Clone, Default)]
pub struct FileOutcome {
    pub path: PathBuf,
    pub frames: u64,
    pub truncated_at: Option<usize>,
}

type Decoded<'a> = (u64, Result<Packet<'a>, DecodeError>);

/// Replay `paths` in order through `proc`, decoding on a second thread (or
/// on shards, see the module doc: the same records, other flow ids).
pub fn replay_files<S: RecordSink + Send>(
    paths: &[PathBuf],
    proc: &mut Processor<S>,
) -> Result<Vec<FileOutcome>, FileError> {
    replay_files_sharded(paths, proc, flow_threads())
}

/// Flow threads for a replay: `SIMPUL_REPLAY_FLOW_THREADS`, else 1 (the
/// two-thread path).
fn flow_threads() -> usize {
    std::env::var("SIMPUL_REPLAY_FLOW_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// [`replay_files`] with `shards` flow threads (1 = one processor, no merge).
pub fn replay_files_sharded<S: RecordSink + Send>(
    paths: &[PathBuf],
    proc: &mut Processor<S>,
    shards: usize,
) -> Result<Vec<FileOutcome>, FileError> {
    if shards > 1 && proc.shardable() {
        return sharded::replay(paths, proc, shards);
    }
    let mut outcomes = Vec::new();
    for path in paths {
        outcomes.push(replay_one(path, proc)?);
    }
    Ok(outcomes)
}

fn replay_one<S: RecordSink + Send>(
    path: &Path,
    proc: &mut Processor<S>,
) -> Result<FileOutcome, FileError> {
    let map = file::map_file(path)?;
    let data: &[u8] = &map;
    let base = data.as_ptr() as usize;
    std::thread::scope(|scope| {
        // (decoded packets, file offset just past the batch's last frame)
        let (full_tx, full_rx) = bounded::<(Vec<Decoded<'_>>, usize)>(16);
        let (empty_tx, empty_rx) = bounded::<(Vec<Decoded<'_>>, usize)>(16);
        let consumer = std::thread::Builder::new()
            .name("flows".into())
            .spawn_scoped(scope, move || {
                for (mut batch, end) in full_rx {
                    for (ts, decoded) in batch.drain(..) {
                        proc.handle_decoded(ts, decoded);
                    }
                    // The reader may have finished; a closed return channel is fine.
                    let _ = empty_tx.try_send((batch, end));
                }
            });
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the flow thread");
                return Err(FileError::Open {
                    path: path.to_owned(),
                    cause: e,
                });
            }
        };
        let mut batch: Vec<Decoded<'_>> = Vec::with_capacity(BATCH);
        let mut consumer_gone = false;
        let mut released = 0usize;
        let mut populated = 0usize;
        let summary = file::read_bytes(data, path, |link, ts, frame| {
            let at = frame.as_ptr() as usize - base;
            if at + POPULATE_AHEAD / 2 >= populated && populated < data.len() {
                let len = POPULATE_AHEAD.min(data.len() - populated);
                // Best effort: older kernels lack MADV_POPULATE_READ and fault as before.
                let _ = map.advise_range(memmap2::Advice::PopulateRead, populated, len);
                populated += len;
            }
            batch.push((ts, decode::decode(link, frame)));
            if batch.len() == BATCH && !consumer_gone {
                let end = at + frame.len();
                let next = match empty_rx.try_recv() {
                    Ok((v, done)) => {
                        if done >= released + RELEASE_EVERY {
                            let upto = done & !4095;
                            // SAFETY: the map is private and read-only; every
                            // frame before `done` has been processed and dropped,
                            // so no live reference points into the released pages.
                            let _ = unsafe {
                                map.unchecked_advise_range(
                                    memmap2::UncheckedAdvice::DontNeed,
                                    released,
                                    upto - released,
                                )
                            };
                            released = upto;
                        }
                        v
                    }
                    Err(_) => Vec::with_capacity(BATCH),
                };
                consumer_gone = full_tx
                    .send((std::mem::replace(&mut batch, next), end))
                    .is_err();
            }
        });
        if !batch.is_empty() && !consumer_gone {
            let _ = full_tx.send((batch, data.len()));
        }
        drop(full_tx);
        if consumer.join().is_err() {
            tracing::error!("packet processing thread panicked");
        }
        let summary = summary?;
        Ok(FileOutcome {
            path: path.to_owned(),
            frames: summary.frames,
            truncated_at: summary.truncated_at,
        })
    })
}

/// How often a real-time replay advances the processor's clock and calls the
/// tick hook while it waits for the next packet.
const REALTIME_TICK: Duration = Duration::from_millis(100);
/// Loop offset floor, so a capture of one instant does not loop at full speed.
const MIN_LOOP_NS: u64 = 1_000_000_000;

/// What a real-time replay did.
#[derive(Debug, Clone, Default)]
pub struct RealtimeSummary {
    /// The files as read in the first pass.
    pub files: Vec<FileOutcome>,
    /// Passes over all the files that were started.
    pub passes: u64,
    /// Frames handed to the processor, all passes.
    pub frames: u64,
    /// Ended by `stop` rather than by the end of the files.
    pub stopped: bool,
}

/// Replay `paths` at their recorded speed, as if captured now: a packet
/// recorded at `ts` is handled at `now_at_start + (ts - first_ts)` (wall
/// clock) with that as its timestamp; each further pass with `looping` adds
/// the capture's duration (first to last packet, at least 1 s). While waiting
/// for packets the processor's clock advances and the sink's
/// [`TimedSink::on_tick`] runs at least every 100 ms, so batches are sealed
/// and counters flow during quiet stretches too.
///
/// Returns after the last packet (without `looping`) or soon after `stop` is
/// set. Call `Processor::finish` afterwards, as after [`replay_files`].
/// Decoding runs on the calling thread: real-time rates need no second one.
pub fn replay_realtime<S: TimedSink>(
    paths: &[PathBuf],
    proc: &mut Processor<S>,
    looping: bool,
    stop: &AtomicBool,
) -> Result<RealtimeSummary, FileError> {
    replay_realtime_with(paths, proc, looping, stop, |p, now| {
        p.sink_mut().on_tick(now)
    })
}

/// [`replay_realtime`] with a custom hook instead of the sink's `on_tick`,
/// called at least every 100 ms (e.g. to publish health as well).
pub fn replay_realtime_with<S, F>(
    paths: &[PathBuf],
    proc: &mut Processor<S>,
    looping: bool,
    stop: &AtomicBool,
    mut on_tick: F,
) -> Result<RealtimeSummary, FileError>
where
    S: RecordSink,
    F: FnMut(&mut Processor<S>, Instant),
{
    let start_wall = Instant::now();
    let start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let wall_ns = |now: Instant| start_ns + now.duration_since(start_wall).as_nanos() as u64;
    let mut summary = RealtimeSummary::default();
    let mut first_ts: Option<u64> = None;
    let mut last_ts = 0u64;
    let mut offset = 0u64;
    // Shifted timestamps never go back, whatever order the files are in.
    let mut last_out = start_ns;
    let mut last_tick = start_wall;
    loop {
        summary.passes += 1;
        for path in paths {
            let map = file::map_file(path)?;
            let read = file::read_bytes(&map, path, |link, ts, frame| {
                if stop.load(Ordering::Relaxed) {
                    return; // the reader cannot be interrupted; skip the rest
                }
                let first = *first_ts.get_or_insert(ts);
                if summary.passes == 1 {
                    last_ts = last_ts.max(ts);
                }
                let out = (start_ns + ts.saturating_sub(first) + offset).max(last_out);
                last_out = out;
                let target = start_wall + Duration::from_nanos(out - start_ns);
                loop {
                    let now = Instant::now();
                    if now >= target {
                        break;
                    }
                    if now.duration_since(last_tick) >= REALTIME_TICK {
                        // now < target, so this never runs the clock past the packet.
                        proc.tick(wall_ns(now));
                        on_tick(proc, now);
                        last_tick = now;
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep((target - now).min(REALTIME_TICK));
                }
                proc.handle_frame(link, out, frame);
                summary.frames += 1;
                let now = Instant::now();
                if now.duration_since(last_tick) >= REALTIME_TICK {
                    on_tick(proc, now);
                    last_tick = now;
                }
            })?;
            if summary.passes == 1 {
                summary.files.push(FileOutcome {
                    path: path.to_owned(),
                    frames: read.frames,
                    truncated_at: read.truncated_at,
                });
            }
        }
        if stop.load(Ordering::Relaxed) {
            summary.stopped = true;
            break;
        }
        if !looping || first_ts.is_none() {
            break;
        }
        offset += last_ts
            .saturating_sub(first_ts.unwrap_or(last_ts))
            .max(MIN_LOOP_NS);
    }
    on_tick(proc, Instant::now());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_core::agency::AgencyMap;
    use simpul_core::processor::ProcessorConfig;
    use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

    #[derive(Default)]
    struct Collect {
        flows: Vec<String>,
        counters: Vec<String>,
    }

    impl RecordSink for Collect {
        fn flow(&mut self, mut r: FlowRecord) {
            r.flow_id = 0; // numbered per shard
            self.flows
                .push(serde_json::to_string(&r).unwrap_or_default());
        }
        fn counters(&mut self, c: CounterSample) {
            self.counters
                .push(serde_json::to_string(&c).unwrap_or_default());
        }
        fn blocked(&mut self, _: BlockedAttempt) {}
    }

    fn fixtures() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        });
        v.sort();
        assert!(v.len() >= 6, "recorded fixtures in {}", dir.display());
        v
    }

    fn run(paths: &[PathBuf], shards: usize) -> (Vec<String>, Vec<String>, ProcessorStats) {
        let mut p = Processor::new(
            &ProcessorConfig::default(),
            AgencyMap::empty(),
            Collect::default(),
        );
        let outcomes = replay_files_sharded(paths, &mut p, shards).expect("fixtures replay");
        assert_eq!(outcomes.len(), paths.len());
        p.finish();
        let stats = p.stats().clone();
        let Collect {
            mut flows,
            mut counters,
        } = std::mem::take(p.sink_mut());
        flows.sort();
        counters.sort();
        (flows, counters, stats)
    }

    use simpul_core::processor::ProcessorStats;

    /// The shards write the records, counters and statistics one processor
    /// writes: per file (DNS answers naming later flows, IPv6 fragments,
    /// interim records of a long download) and across files in one replay.
    #[test]
    fn shards_write_what_one_processor_writes() {
        let all = fixtures();
        let mut cases: Vec<Vec<PathBuf>> = all.iter().map(|p| vec![p.clone()]).collect();
        cases.push(all.clone());
        for paths in &cases {
            let one = run(paths, 1);
            assert!(!one.0.is_empty(), "{paths:?} has flows");
            for shards in [2, 3, 5] {
                let many = run(paths, shards);
                assert_eq!(one.0, many.0, "flow records of {paths:?}, {shards} shards");
                assert_eq!(one.1, many.1, "counters of {paths:?}, {shards} shards");
                assert_eq!(one.2, many.2, "statistics of {paths:?}, {shards} shards");
            }
        }
    }

    /// A file cut inside a record reports where, sharded or not.
    #[test]
    fn shards_report_a_cut_file() {
        let src = fixtures().into_iter().find(|p| p.ends_with("http.pcap"));
        let src = src.expect("http.pcap fixture");
        let data = std::fs::read(&src).expect("read fixture");
        let dir = tempfile::tempdir().expect("tempdir");
        let cut = dir.path().join("cut.pcap");
        std::fs::write(&cut, &data[..data.len() - 7]).expect("write");
        let paths = vec![cut];
        for shards in [1, 2] {
            let mut p = Processor::new(
                &ProcessorConfig::default(),
                AgencyMap::empty(),
                Collect::default(),
            );
            let o = replay_files_sharded(&paths, &mut p, shards).expect("replay");
            assert!(o[0].truncated_at.is_some(), "{shards} shards");
            assert!(o[0].frames > 0);
        }
    }
}

//! Replay of capture files as fast as the machine allows: one thread reads
//! the file in chunks with `read(2)`, walks and decodes them, the other runs
//! the flow table, naming and counters. On a page-cached file a read costs
//! far less than mapping it (page-table work for every 4 KiB: 0.09 s against
//! 0.22 s for the bench pcap, bench/lib/pcap_floor.c). Chunks and their lists
//! of decoded packets go back and forth between the threads in a small pool,
//! so nothing is allocated per packet.
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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::bounded;

mod sharded;

use crate::capture::file::{self, FileError, Walker};
use crate::link::TimedSink;
use simpul_core::decode::{self, DecodeError, Packet};
use simpul_core::processor::{Processor, RecordSink};

/// Bytes read per chunk: a few thousand packets, small enough to still be
/// in cache when the flow thread reads the payloads the reader decoded.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the reader and the flow thread.
const POOL: usize = 8;
/// A record longer than this is taken for a corrupt length, not read into
/// an ever larger buffer.
const MAX_RECORD: usize = 64 << 20;

/// What the replay of one file found besides its packets.
#[derive(Debug, Clone, Default)]
pub struct FileOutcome {
    pub path: PathBuf,
    pub frames: u64,
    pub truncated_at: Option<usize>,
}

impl FileOutcome {
    fn new(path: &Path, read: &file::ReadSummary) -> Self {
        Self {
            path: path.to_owned(),
            frames: read.frames,
            truncated_at: read.truncated_at,
        }
    }
}

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
    replay_chunked(path, proc, CHUNK)
}

/// [`replay_one`] reading `chunk` bytes at a time (tests use tiny chunks so
/// that records cross chunk boundaries).
fn replay_chunked<S: RecordSink + Send>(
    path: &Path,
    proc: &mut Processor<S>,
    chunk: usize,
) -> Result<FileOutcome, FileError> {
    let open_err = |cause| FileError::Open {
        path: path.to_owned(),
        cause,
    };
    let mut file = File::open(path).map_err(open_err)?;
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = bounded::<(Vec<u8>, Vec<Item>)>(POOL);
        let (empty_tx, empty_rx) = bounded::<(Vec<u8>, Vec<Item>)>(POOL);
        let consumer = std::thread::Builder::new()
            .name("flows".into())
            .spawn_scoped(scope, move || {
                for (buf, mut items) in full_rx {
                    for item in items.drain(..) {
                        let decoded = item.packet.map(|p| attach(p, &buf, item.payload));
                        proc.handle_decoded(item.ts, decoded);
                    }
                    // The reader may have finished; a closed return channel is fine.
                    let _ = empty_tx.try_send((buf, items));
                }
            });
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the flow thread");
                return Err(open_err(e));
            }
        };
        let mut made = 0usize;
        // A buffer the flow thread is done with, or a new one while fewer
        // than POOL exist: the replay allocates nothing per packet.
        let mut spare = |want: usize| {
            let (mut buf, items) = match empty_rx.try_recv() {
                Ok(pair) => pair,
                Err(_) if made < POOL => {
                    made += 1;
                    (Vec::new(), Vec::new())
                }
                // A closed channel: the flow thread died; the send below notices.
                Err(_) => empty_rx.recv().unwrap_or_default(),
            };
            if buf.len() < want {
                buf.resize(want, 0);
            }
            (buf, items)
        };
        let (mut buf, mut items) = spare(chunk);
        let mut walker: Option<Walker> = None;
        // File offset of buf[0]; bytes at its start carried from the last chunk.
        let (mut base, mut carry) = (0usize, 0usize);
        let summary = loop {
            let filled = file::fill(&mut file, &mut buf, carry).map_err(open_err)?;
            let eof = filled < buf.len();
            let data = &buf[..filled];
            let (w, start) = match walker.as_mut() {
                Some(w) => (w, 0),
                None => {
                    let (w, header) = Walker::start(data, path)?;
                    (walker.insert(w), header.min(filled))
                }
            };
            let origin = data.as_ptr() as usize;
            let used = start
                + w.walk(
                    &data[start..],
                    base + start,
                    false,
                    &mut |link, ts, frame| {
                        items.push(detach(ts, decode::decode(link, frame), origin));
                    },
                )?;
            let rest = filled - used;
            // A record longer than MAX_RECORD is a corrupt length: stop there,
            // as a record running past the end of the file stops a walk.
            let last = eof || rest > MAX_RECORD;
            let next = if last {
                None
            } else {
                // A record longer than a chunk gets a buffer of twice its size.
                let (mut next, next_items) = spare(chunk.max(rest * 2));
                next[..rest].copy_from_slice(&buf[used..filled]);
                Some((next, next_items))
            };
            let sent = full_tx.send((buf, items)).is_ok();
            match next {
                Some(pair) if sent => (buf, items) = pair,
                _ => {
                    let Some(w) = walker.take() else {
                        unreachable!("the walker starts with the first chunk")
                    };
                    if !sent {
                        tracing::error!("the flow thread stopped; replay ends early");
                    }
                    break w.finish(base + used, base + filled);
                }
            }
            base += used;
            carry = rest;
        };
        drop(full_tx);
        if consumer.join().is_err() {
            tracing::error!("packet processing thread panicked");
        }
        Ok(FileOutcome::new(path, &summary?))
    })
}

/// One decoded frame on its way to the flow thread. The packet's payload is
/// kept as a range of its chunk (`payload`), so the packet does not borrow
/// the buffer that travels with it.
struct Item {
    ts: u64,
    packet: Result<Packet<'static>, DecodeError>,
    /// (offset in the chunk, length) of the transport payload.
    payload: (u32, u32),
}

fn detach(ts: u64, decoded: Result<Packet<'_>, DecodeError>, origin: usize) -> Item {
    match decoded {
        Ok(p) => {
            // Every field by name: a field added to Packet must be carried here.
            let Packet {
                vlan,
                vlan_inner,
                src,
                dst,
                proto,
                ip_len,
                ports,
                tcp,
                fragment,
                payload,
            } = p;
            let at = if payload.is_empty() {
                0
            } else {
                payload.as_ptr() as usize - origin
            };
            Item {
                ts,
                packet: Ok(Packet {
                    vlan,
                    vlan_inner,
                    src,
                    dst,
                    proto,
                    ip_len,
                    ports,
                    tcp,
                    fragment,
                    payload: &[],
                }),
                payload: (at as u32, payload.len() as u32),
            }
        }
        Err(e) => Item {
            ts,
            packet: Err(e),
            payload: (0, 0),
        },
    }
}

fn attach<'a>(p: Packet<'static>, buf: &'a [u8], (at, len): (u32, u32)) -> Packet<'a> {
    let (at, len) = (at as usize, len as usize);
    Packet {
        payload: buf.get(at..at + len).unwrap_or_default(),
        ..p
    }
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
                summary.files.push(FileOutcome::new(path, &read));
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

    /// What one walk of the whole (mapped) file gives a processor.
    fn walk_whole(path: &Path) -> (Vec<String>, Vec<String>, ProcessorStats, file::ReadSummary) {
        let mut p = Processor::new(
            &ProcessorConfig::default(),
            AgencyMap::empty(),
            Collect::default(),
        );
        let summary = file::read_file(path, |link, ts, frame| p.handle_frame(link, ts, frame))
            .expect("fixture walks");
        p.finish();
        let stats = p.stats().clone();
        let Collect {
            mut flows,
            mut counters,
        } = std::mem::take(p.sink_mut());
        flows.sort();
        counters.sort();
        (flows, counters, stats, summary)
    }

    fn read_chunked(
        path: &Path,
        chunk: usize,
    ) -> (Vec<String>, Vec<String>, ProcessorStats, FileOutcome) {
        let mut p = Processor::new(
            &ProcessorConfig::default(),
            AgencyMap::empty(),
            Collect::default(),
        );
        let outcome = replay_chunked(path, &mut p, chunk).expect("chunked replay");
        p.finish();
        let stats = p.stats().clone();
        let Collect {
            mut flows,
            mut counters,
        } = std::mem::take(p.sink_mut());
        flows.sort();
        counters.sort();
        (flows, counters, stats, outcome)
    }

    /// Chunked reads give what one walk gives: with 64-byte chunks every
    /// record is split between two reads and most are longer than a chunk
    /// (the buffer grows); pcap and pcapng, whole files and files cut inside
    /// their last record.
    #[test]
    fn chunk_boundaries_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut paths = fixtures();
        for name in ["http.pcap", "dns.pcapng"] {
            let src = paths.iter().find(|p| p.ends_with(name)).cloned();
            let data = std::fs::read(src.expect("fixture")).expect("read fixture");
            let cut = dir.path().join(format!("cut-{name}"));
            std::fs::write(&cut, &data[..data.len() - 7]).expect("write");
            paths.push(cut);
        }
        for path in &paths {
            let whole = walk_whole(path);
            assert!(whole.3.frames > 0, "{path:?}");
            let cut = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cut-"));
            assert_eq!(whole.3.truncated_at.is_some(), cut, "{path:?}");
            for chunk in [64, 1000, 4096, CHUNK] {
                let got = read_chunked(path, chunk);
                assert_eq!(got.0, whole.0, "flow records of {path:?}, chunk {chunk}");
                assert_eq!(got.1, whole.1, "counters of {path:?}, chunk {chunk}");
                assert_eq!(got.2, whole.2, "statistics of {path:?}, chunk {chunk}");
                assert_eq!(got.3.frames, whole.3.frames, "{path:?}, chunk {chunk}");
                assert_eq!(
                    got.3.truncated_at, whole.3.truncated_at,
                    "{path:?}, chunk {chunk}"
                );
            }
        }
    }

    /// Errors name the file: missing, not a capture, empty.
    #[test]
    fn chunked_read_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"hello, this is not a capture file at all").expect("write");
        let empty = dir.path().join("empty.pcap");
        std::fs::write(&empty, b"").expect("write");
        for (path, want) in [
            (dir.path().join("missing.pcap"), "cannot open"),
            (text, "not a pcap"),
            (empty, "not a pcap"),
        ] {
            let mut p = Processor::new(
                &ProcessorConfig::default(),
                AgencyMap::empty(),
                Collect::default(),
            );
            let e = replay_chunked(&path, &mut p, CHUNK).expect_err("fails");
            let msg = e.to_string();
            assert!(
                msg.contains(want) && msg.contains(&*path.to_string_lossy()),
                "{msg}"
            );
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

//! Replay over several cores. The reader (the calling thread) reads the
//! file in chunks with `read(2)` — on a page-cached file far cheaper than
//! mapping it, which costs page-table work for every 4 KiB — walks its
//! records and deals each frame to the shard that owns its address pair
//! ([`shard_of_frame`]). Every shard runs its own [`Processor`] (flow table,
//! fragments, DNS cache, counters) on its own thread and decodes its frames
//! itself: no lock is shared on the packet path, and frames are read in
//! place from the chunk, which goes back to the reader's pool when every
//! shard is done with it (no allocation per packet).
//!
//! The records are those of one processor because every shard sees what one
//! processor would see besides its own packets: the instants it sweeps (the
//! first packet of each later second) and the DNS answers that name later
//! flows (learned by every shard). A merger thread writes the shards' flow
//! records to the caller's sink and adds their per-second counters up, a
//! second at a time once every shard is past it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use simpul_core::decode::{self, LinkType};
use simpul_core::processor::{Processor, RecordSink};
use simpul_core::shard::{dns_answer_hint, shard_of_frame};
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord, TrafficScope};

use super::FileOutcome;
use crate::capture::file::{fill, FileError, Walker};

/// Bytes read per chunk: small enough to still be in cache when the shards
/// read the frames the reader just dealt out.
const CHUNK: usize = 2 << 20;
/// Chunks in flight (the reader's pool).
const POOL: usize = 8;
/// A record longer than this is taken for a corrupt length, not read into
/// an ever larger chunk.
const MAX_RECORD: usize = 64 << 20;

enum Item {
    /// One processor would sweep here (see [`Processor::sweep_due`]).
    Time(u64),
    /// A frame this shard owns, at `off..off + len` of the chunk.
    Frame(LinkType, u64, u32, u32),
    /// A frame another shard owns that may carry DNS answers: learn them.
    Learn(LinkType, u32, u32),
}

type Chunk = Arc<Vec<u8>>;

enum Out {
    Flow(FlowRecord),
    /// (sweep points the shard had passed when it emitted the sample, sample)
    Counters(u64, CounterSample),
    Blocked(BlockedAttempt),
    /// The shard passed one more sweep point.
    Swept(usize),
}

/// A shard's sink: everything goes to the merger.
pub(super) struct ShardSink {
    tx: Option<Sender<Out>>,
    swept: u64,
}

impl ShardSink {
    fn send(&self, out: Out) {
        if let Some(tx) = &self.tx {
            // The merger lives until every shard is done.
            let _ = tx.send(out);
        }
    }
}

impl RecordSink for ShardSink {
    fn flow(&mut self, record: FlowRecord) {
        self.send(Out::Flow(record));
    }

    fn counters(&mut self, sample: CounterSample) {
        self.send(Out::Counters(self.swept, sample));
    }

    fn blocked(&mut self, attempt: BlockedAttempt) {
        self.send(Out::Blocked(attempt));
    }
}

/// Replay `paths` in order through `count` shards of `proc` (see the module
/// doc); flows continue from one file to the next, as with one processor.
/// `proc`'s sink gets every record; its statistics include the shards'.
pub(super) fn replay<S: RecordSink + Send>(
    paths: &[PathBuf],
    proc: &mut Processor<S>,
    count: usize,
) -> Result<Vec<FileOutcome>, FileError> {
    let (out_tx, out_rx) = unbounded::<Out>();
    let shards: Vec<Processor<ShardSink>> = (0..count)
        .map(|i| {
            proc.shard(
                i,
                count,
                ShardSink {
                    tx: Some(out_tx.clone()),
                    swept: 0,
                },
            )
        })
        .collect();
    drop(out_tx);
    let sink = proc.sink_mut();
    let first = paths.first().map_or(Path::new(""), |p| p.as_path());
    let (result, finished) = std::thread::scope(|scope| {
        let merger = std::thread::Builder::new()
            .name("merge".into())
            .spawn_scoped(scope, move || merge(out_rx, count, sink))
            .map_err(|e| spawn_error(first, e))?;
        let (back_tx, back_rx) = unbounded::<()>();
        let mut full_txs = Vec::with_capacity(count);
        let mut empty_rxs = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for (i, mut shard) in shards.into_iter().enumerate() {
            let (full_tx, full_rx) = bounded::<(Chunk, Vec<Item>)>(POOL);
            let (empty_tx, empty_rx) = bounded::<Vec<Item>>(POOL);
            let back_tx = back_tx.clone();
            let worker = std::thread::Builder::new()
                .name(format!("flows-{i}"))
                .spawn_scoped(scope, move || {
                    for (chunk, mut items) in full_rx {
                        handle(i, &mut shard, &chunk, &mut items);
                        drop(chunk);
                        // The reader may have finished; closed channels are fine.
                        let _ = back_tx.send(());
                        let _ = empty_tx.try_send(items);
                    }
                    shard.finish();
                    shard.sink_mut().tx = None;
                    shard
                })
                .map_err(|e| spawn_error(first, e))?;
            full_txs.push(full_tx);
            empty_rxs.push(empty_rx);
            workers.push(worker);
        }
        drop(back_tx);
        let mut reader = Reader {
            count,
            full_txs,
            empty_rxs,
            back_rx,
            pool: Vec::with_capacity(POOL),
            made: 0,
            next_sweep: 0,
        };
        let mut result = Ok(Vec::with_capacity(paths.len()));
        for path in paths {
            match reader.file(path) {
                Ok(o) => {
                    if let Ok(v) = &mut result {
                        v.push(o);
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(reader);
        let mut finished = Vec::with_capacity(count);
        for w in workers {
            match w.join() {
                Ok(p) => finished.push(p),
                Err(_) => tracing::error!("packet processing thread panicked"),
            }
        }
        if merger.join().is_err() {
            tracing::error!("record merging thread panicked");
        }
        Ok::<_, FileError>((result, finished))
    })?;
    for shard in &finished {
        proc.absorb(shard);
    }
    result
}

/// A shard's work on one chunk.
fn handle(index: usize, shard: &mut Processor<ShardSink>, chunk: &[u8], items: &mut Vec<Item>) {
    let frame = |off: u32, len: u32| &chunk[off as usize..off as usize + len as usize];
    for item in items.drain(..) {
        match item {
            Item::Time(ts) => {
                shard.advance(ts);
                shard.sink_mut().swept += 1;
                shard.sink().send(Out::Swept(index));
            }
            Item::Frame(link, ts, off, len) => shard.handle_frame(link, ts, frame(off, len)),
            Item::Learn(link, off, len) => {
                if let Ok(p) = decode::decode(link, frame(off, len)) {
                    if dns_answer_hint(&p) {
                        shard.learn_dns_answer(&p);
                    }
                }
            }
        }
    }
}

/// The reading side: the chunk pool and the shards' channels.
struct Reader {
    count: usize,
    full_txs: Vec<Sender<(Chunk, Vec<Item>)>>,
    empty_rxs: Vec<Receiver<Vec<Item>>>,
    /// A shard let go of a chunk.
    back_rx: Receiver<()>,
    pool: Vec<Chunk>,
    /// Chunks allocated so far.
    made: usize,
    /// Where one processor would sweep next, across files as it does.
    next_sweep: u64,
}

impl Reader {
    /// A chunk of at least `len` bytes no shard holds any more.
    fn free_chunk(&mut self, len: usize) -> Chunk {
        loop {
            if let Some(at) = self.pool.iter().position(|c| Arc::strong_count(c) == 1) {
                let mut c = self.pool.swap_remove(at);
                if let Some(v) = Arc::get_mut(&mut c) {
                    if v.len() < len {
                        v.resize(len, 0);
                    }
                    return c;
                }
                self.pool.push(c);
            }
            // Chunks are made as needed, up to POOL; then wait for a shard
            // to let go of one (a shard that died lets go of its chunks too).
            if self.made < POOL || self.back_rx.recv().is_err() {
                self.made += 1;
                return Arc::new(vec![0u8; len.max(CHUNK)]);
            }
        }
    }

    /// Read one file, dealing its frames out chunk by chunk.
    fn file(&mut self, path: &Path) -> Result<FileOutcome, FileError> {
        let open_err = |cause| FileError::Open {
            path: path.to_owned(),
            cause,
        };
        let mut file = File::open(path).map_err(open_err)?;
        let mut walker: Option<Walker> = None;
        // File offset of the current chunk's first byte.
        let mut base = 0usize;
        let mut prev: Option<(Chunk, usize, usize)> = None; // (chunk, used, filled)
        loop {
            let carry = prev.as_ref().map_or(0, |(_, used, filled)| filled - used);
            if carry > MAX_RECORD {
                // No capture has such records: a corrupt length. Stop there,
                // as a record running past the end of the file stops a walk.
                if let Some((old, _, _)) = prev.take() {
                    self.pool.push(old);
                }
                let Some(w) = walker else {
                    unreachable!("the walker starts with the first chunk")
                };
                return Ok(FileOutcome::new(path, &w.finish(base, base + carry)?));
            }
            // A record longer than a chunk gets a chunk of twice the size.
            let want = if carry * 2 > CHUNK { carry * 2 } else { CHUNK };
            let mut chunk = self.free_chunk(want);
            let Some(buf) = Arc::get_mut(&mut chunk) else {
                unreachable!("free_chunk returns an unshared chunk")
            };
            if let Some((p, used, filled)) = &prev {
                buf[..carry].copy_from_slice(&p[*used..*filled]);
            }
            let filled = fill(&mut file, buf, carry).map_err(open_err)?;
            let eof = filled < buf.len();
            let data = &buf[..filled];
            let start = match &walker {
                Some(_) => 0,
                None => {
                    let (w, header) = Walker::start(data, path)?;
                    walker = Some(w);
                    header.min(filled)
                }
            };
            let Some(w) = walker.as_mut() else {
                unreachable!("the walker starts with the first chunk")
            };
            let mut lists: Vec<Vec<Item>> = self
                .empty_rxs
                .iter()
                .map(|r| r.try_recv().unwrap_or_default())
                .collect();
            let count = self.count;
            let next_sweep = &mut self.next_sweep;
            let origin = data.as_ptr() as usize;
            let used = start
                + w.walk(
                    &data[start..],
                    base + start,
                    false,
                    &mut |link, ts, frame| {
                        if Processor::<ShardSink>::sweep_due(next_sweep, ts) {
                            for l in &mut lists {
                                l.push(Item::Time(ts));
                            }
                        }
                        let off = (frame.as_ptr() as usize - origin) as u32;
                        let len = frame.len() as u32;
                        let (owner, maybe_dns) = shard_of_frame(link, frame, count);
                        lists[owner].push(Item::Frame(link, ts, off, len));
                        if maybe_dns {
                            for (i, l) in lists.iter_mut().enumerate() {
                                if i != owner {
                                    l.push(Item::Learn(link, off, len));
                                }
                            }
                        }
                    },
                )?;
            for (tx, items) in self.full_txs.iter().zip(lists) {
                // A shard that died takes no more; the others carry on.
                let _ = tx.send((chunk.clone(), items));
            }
            if eof {
                self.pool.push(chunk);
                if let Some((old, _, _)) = prev.take() {
                    self.pool.push(old);
                }
                let Some(w) = walker else {
                    unreachable!("the walker starts with the first chunk")
                };
                return Ok(FileOutcome::new(
                    path,
                    &w.finish(base + used, base + filled)?,
                ));
            }
            if let Some((old, _, _)) = prev.take() {
                self.pool.push(old);
            }
            base += used;
            prev = Some((chunk, used, filled));
        }
    }
}

fn spawn_error(path: &Path, cause: std::io::Error) -> FileError {
    tracing::error!(error = %cause, "cannot start a replay thread");
    FileError::Open {
        path: path.to_owned(),
        cause,
    }
}

type CounterKey = (u64, u64, String, String, u8);

/// Write flow records as they come; add counter samples of one second up
/// across shards and write them once every shard has passed that second.
fn merge<S: RecordSink>(rx: Receiver<Out>, count: usize, sink: &mut S) {
    let mut swept = vec![0u64; count];
    let mut written = 0u64;
    let mut pending: BTreeMap<CounterKey, CounterSample> = BTreeMap::new();
    for out in rx {
        match out {
            Out::Flow(r) => sink.flow(r),
            Out::Blocked(b) => sink.blocked(b),
            Out::Counters(epoch, c) => {
                let scope = match c.scope {
                    TrafficScope::Internet => 0,
                    TrafficScope::Intranet => 1,
                };
                let key = (epoch, c.ts, c.agency.clone(), c.unit.clone(), scope);
                match pending.get_mut(&key) {
                    Some(m) => {
                        m.bytes_in += c.bytes_in;
                        m.bytes_out += c.bytes_out;
                        m.packets_in += c.packets_in;
                        m.packets_out += c.packets_out;
                    }
                    None => {
                        pending.insert(key, c);
                    }
                }
            }
            Out::Swept(i) => {
                swept[i] += 1;
                let all = swept.iter().copied().min().unwrap_or(0);
                if all > written {
                    written = all;
                    // Samples emitted before sweep point `all` are complete.
                    let later = pending.split_off(&(all, 0, String::new(), String::new(), 0));
                    for (_, c) in std::mem::replace(&mut pending, later) {
                        sink.counters(c);
                    }
                }
            }
        }
    }
    for (_, c) in pending {
        sink.counters(c);
    }
}

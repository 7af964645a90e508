//! Replay of capture files as fast as the machine allows: one thread walks the
//! memory-mapped file and decodes, the other runs the flow table, naming and
//! counters. Decoded packets borrow the map, so nothing is copied between them.

use std::path::{Path, PathBuf};

use crossbeam_channel::bounded;

use crate::capture::file::{self, FileError};
use crate::decode::{self, DecodeError, Packet};
use crate::processor::{Processor, RecordSink};

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

/// Replay `paths` in order through `proc`, decoding on a second thread.
pub fn replay_files<S: RecordSink + Send>(
    paths: &[PathBuf],
    proc: &mut Processor<S>,
) -> Result<Vec<FileOutcome>, FileError> {
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

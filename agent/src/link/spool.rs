//! On-disk spool of sealed batches: a batch is durable here before it is ever
//! sent, and leaves only when the collector acknowledges it.
//!
//! One file per batch, `spool/{boot_epoch:016x}-{seq:016x}.batch`, so the
//! directory listing sorts in delivery order and a restart (of the agent or of
//! the whole router after a power cut) re-sends what was not acknowledged,
//! oldest first, whichever boot produced it.
//!
//! File layout (all integers little endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8  | magic `SMPLSPL2` (`SMPLSPL1`: the previous release's, still read) |
//! | 8  | records in the batch (flows + counter samples) |
//! | 8  | `dropped_records` the batch carries (so dropping *it* loses no count) |
//! | 8  | payload length |
//! | 32 | SHA-256 of the payload |
//! | n  | payload: the batch tagged with its record schema version (`wire::encode_batch`) |
//!
//! The spool keeps records, not frames of a session: each connection
//! encodes them for the protocol version it negotiated, so an agent
//! upgraded with a full spool delivers all of it (`SMPLSPL1` files hold a
//! version-2 batch frame; `wire::decode_spooled_batch` reads both). The checksum catches the torn or
//! bit-rotted files an SD card produces after a power cut; such files are moved
//! to `spool/corrupt/` with the reason logged, never trusted and never fatal.
//!
//! Writes: temp file, `fdatasync`, rename, `fsync` of the directory, so a
//! batch file either exists whole or not at all. Deletes (on ack) skip the
//! directory fsync: a deleted file that reappears after a power cut is only
//! re-sent, and the collector drops batches it already committed.
//!
//! When the disk refuses writes (full, read-only after flash errors) batches
//! are kept in memory instead, up to [`MEMORY_CAP_BYTES`], so a router with a
//! broken disk but a working link still delivers everything.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use simpul_proto::wire::{self, Batch};

const MAGIC: &[u8; 8] = b"SMPLSPL2";
/// The previous release's files: same header, a version-2 frame as payload.
const MAGIC_V1: &[u8; 8] = b"SMPLSPL1";
/// Size of the fixed header before the payload.
pub const HEADER_LEN: usize = 64;
const EXT: &str = "batch";
const TMP_EXT: &str = "tmp";
/// Moved-aside files kept for inspection; older ones are deleted so years of
/// power cuts cannot fill the disk with them.
const MAX_CORRUPT_FILES: usize = 100;
/// Batches kept in memory while the disk refuses writes.
pub const MEMORY_CAP_BYTES: u64 = 64 << 20;
/// Room for the varint of `dropped_records` growing when the quota drops
/// batches to make room (at most 10 bytes for a u64).
const VARINT_SLACK: u64 = 10;

/// Identifies a batch; ordered as it must be delivered (boot, then sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId {
    pub boot_epoch: u64,
    pub seq: u64,
}

impl BatchId {
    pub fn of(batch: &Batch) -> Self {
        Self {
            boot_epoch: batch.boot_epoch,
            seq: batch.seq,
        }
    }

    fn file_name(&self) -> String {
        format!("{:016x}-{:016x}.{EXT}", self.boot_epoch, self.seq)
    }

    fn from_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(EXT)?.strip_suffix('.')?;
        let (e, s) = stem.split_once('-')?;
        if e.len() != 16 || s.len() != 16 {
            return None;
        }
        Some(Self {
            boot_epoch: u64::from_str_radix(e, 16).ok()?,
            seq: u64::from_str_radix(s, 16).ok()?,
        })
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.boot_epoch, self.seq)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot create spool directory {path}: {cause}")]
    CreateDir { path: PathBuf, cause: io::Error },
    #[error("cannot list spool directory {path}: {cause}")]
    ListDir { path: PathBuf, cause: io::Error },
    #[error("batch {0} is no longer in the spool")]
    Gone(BatchId),
    #[error("spool file {path} was corrupt ({reason}); moved aside")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot read spool file {path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },
}

#[derive(Debug, Clone)]
enum Place {
    Disk,
    /// The disk refused the write; the payload lives here until acknowledged.
    Memory(Arc<[u8]>),
}

#[derive(Debug, Clone)]
struct Entry {
    /// Bytes counted against the quota (header + payload).
    size: u64,
    records: u64,
    carried: u64,
    place: Place,
}

/// Spool totals, mirrored into the heartbeat's health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub batches: u64,
    pub bytes: u64,
    pub quota_bytes: u64,
    /// Records lost since this spool was opened (quota, corrupt files, an
    /// unwritable disk beyond the memory cap, records that never reached it).
    pub dropped_records: u64,
    /// Batches held in memory because the disk refused them.
    pub memory_batches: u64,
}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub loaded: usize,
    /// Files moved to `corrupt/`.
    pub corrupt: usize,
    /// Complete temp files (written, not yet renamed at the power cut) put in place.
    pub recovered: usize,
    /// Batches dropped because the loaded spool exceeded the (new) quota.
    pub dropped_batches: usize,
}

/// The spool index and its directory. Not thread-safe by itself: the link
/// keeps it behind a mutex, and writes go through [`Spool::prepare`] /
/// [`Prepared::write`] / [`Spool::commit`] so the slow fsyncs happen without
/// the lock.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    corrupt_dir: PathBuf,
    quota: u64,
    entries: BTreeMap<BatchId, Entry>,
    /// Bytes of all entries plus writes prepared but not committed.
    bytes: u64,
    memory_bytes: u64,
    dropped_total: u64,
    /// Records lost since the last batch entered the spool; the next batch
    /// pushed carries the count to the collector in `dropped_records`.
    unreported: u64,
    /// Set while the disk refuses writes, so the error is logged once per episode.
    disk_failing: bool,
    /// What was lost, kept in `drops.json` across restarts.
    drops: Drops,
}

/// Losses that must survive a restart: batches dropped per boot (each batch
/// sent tells the collector how many of its boot are gone, so the gap in
/// its sequence is explained) and the records lost in all (the node's
/// health shows them until someone looks).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Drops {
    /// boot epoch → batches of it dropped
    pub epochs: BTreeMap<u64, u64>,
    /// Records lost since the spool was first created.
    pub total_records: u64,
}

/// The file `Drops` lives in, beside the batches.
pub const DROPS_FILE: &str = "drops.json";

/// A batch encoded and accounted for, not yet on disk.
#[derive(Debug)]
pub struct Prepared {
    id: BatchId,
    dir: PathBuf,
    header: [u8; HEADER_LEN],
    payload: Vec<u8>,
    records: u64,
    carried: u64,
    /// Files of batches the quota dropped, deleted outside the lock.
    to_delete: Vec<PathBuf>,
}

/// A batch written (to disk, or kept in memory), ready for [`Spool::commit`].
#[derive(Debug)]
pub struct Written {
    id: BatchId,
    entry: Entry,
    error: Option<io::Error>,
}

impl Spool {
    /// Open (creating) the spool in `dir` and index the batches already there.
    /// Only directory errors fail; bad files are moved aside.
    pub fn open(dir: &Path, quota_bytes: u64) -> Result<(Spool, OpenReport), SpoolError> {
        let corrupt_dir = dir.join("corrupt");
        // The spool holds who visited what: readable by the agent only.
        fs::create_dir_all(dir)
            .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
            .map_err(|cause| SpoolError::CreateDir {
                path: dir.to_owned(),
                cause,
            })?;
        let mut spool = Spool {
            dir: dir.to_owned(),
            corrupt_dir,
            quota: quota_bytes,
            entries: BTreeMap::new(),
            bytes: 0,
            memory_bytes: 0,
            dropped_total: 0,
            unreported: 0,
            disk_failing: false,
            drops: Drops::default(),
        };
        spool.drops = load_drops(&dir.join(DROPS_FILE));
        spool.dropped_total = spool.drops.total_records;
        let mut report = OpenReport::default();
        let list_err = |cause| SpoolError::ListDir {
            path: dir.to_owned(),
            cause,
        };
        let mut names: Vec<(PathBuf, String)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == DROPS_FILE || name == format!("{DROPS_FILE}.{TMP_EXT}") {
                continue;
            }
            names.push((entry.path(), name));
        }
        names.sort_by(|a, b| a.1.cmp(&b.1));
        for (path, name) in names {
            if let Some(final_name) = name.strip_suffix(&format!(".{TMP_EXT}")) {
                spool.recover_temp(&path, final_name, &mut report);
                continue;
            }
            let Some(id) = BatchId::from_file_name(&name) else {
                tracing::warn!(file = %path.display(), "unknown file in the spool directory; left alone");
                continue;
            };
            if spool.entries.contains_key(&id) {
                continue; // already indexed (recovered from its temp file)
            }
            match read_header(&path) {
                Ok(h) => {
                    spool.bytes += h.size;
                    spool.entries.insert(
                        id,
                        Entry {
                            size: h.size,
                            records: h.records,
                            carried: h.carried,
                            place: Place::Disk,
                        },
                    );
                    report.loaded += 1;
                }
                Err(HeaderError::Io(cause)) => {
                    // Unreadable now, maybe fine later: leave it, skip it.
                    tracing::warn!(file = %path.display(), error = %cause, "cannot read spool file; skipped until next start");
                }
                Err(HeaderError::Bad(reason)) => {
                    spool.move_aside(&path, &reason);
                    spool.batch_dropped(id);
                    report.corrupt += 1;
                }
            }
        }
        // Boots with nothing left to send need no count any more.
        let live: std::collections::BTreeSet<u64> =
            spool.entries.keys().map(|id| id.boot_epoch).collect();
        spool.drops.epochs.retain(|e, _| live.contains(e));
        // A quota lowered in the config since the last run applies at once.
        let before = spool.entries.len();
        let dropped = spool.drop_oldest_until(0);
        report.dropped_batches = before - spool.entries.len();
        spool.delete_files(&dropped);
        spool.save_drops();
        if report.loaded + report.recovered > 0 || report.corrupt > 0 {
            tracing::info!(
                dir = %dir.display(),
                batches = spool.entries.len(),
                bytes = spool.bytes,
                corrupt = report.corrupt,
                recovered = report.recovered,
                "spool opened with undelivered batches; they are sent first"
            );
        }
        Ok((spool, report))
    }

    /// A temp file is a write the power cut interrupted; if it is complete
    /// (its fsync finished, only the rename did not) keep the batch.
    fn recover_temp(&mut self, path: &Path, final_name: &str, report: &mut OpenReport) {
        let Some(id) = BatchId::from_file_name(final_name) else {
            self.move_aside(path, "temp file with an unknown name");
            report.corrupt += 1;
            return;
        };
        let final_path = self.dir.join(final_name);
        if final_path.exists() {
            // The rename happened but the temp name lingered? Keep the real one.
            let _ = fs::remove_file(path);
            return;
        }
        match read_checked(path) {
            Ok((h, _)) => {
                if fs::rename(path, &final_path).is_ok() {
                    sync_dir(&self.dir);
                    self.bytes += h.size;
                    self.entries.insert(
                        id,
                        Entry {
                            size: h.size,
                            records: h.records,
                            carried: h.carried,
                            place: Place::Disk,
                        },
                    );
                    report.recovered += 1;
                    tracing::info!(file = %final_path.display(), "recovered a complete batch from its temp file");
                } else {
                    self.move_aside(path, "complete temp file that cannot be renamed");
                    report.corrupt += 1;
                }
            }
            Err(HeaderError::Bad(reason)) => {
                self.move_aside(path, &format!("unfinished write ({reason})"));
                report.corrupt += 1;
            }
            Err(HeaderError::Io(e)) => {
                self.move_aside(path, &format!("unreadable temp file ({e})"));
                report.corrupt += 1;
            }
        }
    }

    /// Encode `batch`, make room under the quota and account for it; the
    /// batch carries every record lost since the previous one in
    /// `dropped_records`. None when the batch alone exceeds the quota (it is
    /// dropped and counted).
    pub fn prepare(&mut self, mut batch: Batch) -> Option<Prepared> {
        let id = BatchId::of(&batch);
        let records = (batch.flows.len() + batch.counters.len()) as u64;
        // What the caller already put there (records lost before the spool).
        let own = batch.dropped_records;
        batch.dropped_records = own + self.unreported;
        let mut payload = wire::encode_batch(&batch);
        let size = (HEADER_LEN + payload.len()) as u64;
        if size + VARINT_SLACK > self.quota {
            self.unreported += own;
            self.lose(records, "batch larger than the whole spool quota");
            return None;
        }
        let dropped = self.drop_oldest_until(size + VARINT_SLACK);
        let carried = own + self.unreported;
        if batch.dropped_records != carried {
            // The quota just dropped batches: this batch reports them too.
            batch.dropped_records = carried;
            payload = wire::encode_batch(&batch);
        }
        self.unreported = 0;
        let size = (HEADER_LEN + payload.len()) as u64;
        self.bytes += size;
        Some(Prepared {
            id,
            dir: self.dir.clone(),
            header: header(records, carried, &payload),
            payload,
            records,
            carried,
            to_delete: dropped,
        })
    }

    /// Put a written batch into the index.
    pub fn commit(&mut self, w: Written) {
        match (&w.entry.place, w.error) {
            (Place::Disk, _) => {
                if self.disk_failing {
                    tracing::info!(dir = %self.dir.display(), "spool disk writable again");
                    self.disk_failing = false;
                }
            }
            (Place::Memory(_), e) => {
                if !self.disk_failing {
                    tracing::error!(
                        dir = %self.dir.display(),
                        error = %e.map(|e| e.to_string()).unwrap_or_default(),
                        "cannot write the spool; keeping batches in memory (lost on power cut) until the disk recovers"
                    );
                    self.disk_failing = true;
                }
                self.memory_bytes += w.entry.size;
            }
        }
        // prepare() already counted the bytes.
        self.entries.insert(w.id, w.entry);
        while self.memory_bytes > MEMORY_CAP_BYTES {
            let oldest_in_memory = self
                .entries
                .iter()
                .find(|(_, e)| matches!(e.place, Place::Memory(_)))
                .map(|(id, _)| *id);
            let Some(id) = oldest_in_memory else { break };
            if let Some(e) = self.remove(id) {
                self.unreported += e.carried;
                self.batch_dropped(id);
                self.lose(e.records, "spool disk unwritable and memory fallback full");
            }
        }
    }

    /// Prepare, write and commit in one go (single-threaded use and tests).
    pub fn push(&mut self, batch: Batch) -> Option<BatchId> {
        let p = self.prepare(batch)?;
        let id = p.id;
        let w = p.write();
        self.commit(w);
        Some(id)
    }

    /// The collector committed `id`: forget it. False if it was not spooled
    /// (already acknowledged, or dropped by the quota meanwhile).
    pub fn ack(&mut self, id: BatchId) -> bool {
        let Some(e) = self.remove(id) else {
            return false;
        };
        if matches!(e.place, Place::Disk) {
            let path = self.dir.join(id.file_name());
            if let Err(err) = fs::remove_file(&path) {
                if err.kind() != io::ErrorKind::NotFound {
                    // Left behind, it is only re-sent after a restart and deduplicated.
                    tracing::warn!(file = %path.display(), error = %err, "cannot delete an acknowledged spool file");
                }
            }
        }
        true
    }

    /// The batch `id`, checked. Corrupt files are moved aside and their
    /// records counted as dropped.
    pub fn read_batch(&mut self, id: BatchId) -> Result<Batch, SpoolError> {
        let entry = self.entries.get(&id).ok_or(SpoolError::Gone(id))?;
        if let Place::Memory(p) = &entry.place {
            return wire::decode_spooled_batch(p).map_err(|e| SpoolError::Corrupt {
                path: self.dir.join(id.file_name()),
                reason: e.to_string(),
            });
        }
        let path = self.dir.join(id.file_name());
        match read_checked(&path) {
            Ok((_, batch)) => Ok(batch),
            Err(HeaderError::Io(cause)) if cause.kind() == io::ErrorKind::NotFound => {
                if let Some(e) = self.remove(id) {
                    self.unreported += e.carried;
                    self.batch_dropped(id);
                    self.lose(e.records, "spool file vanished");
                }
                Err(SpoolError::Gone(id))
            }
            Err(HeaderError::Io(cause)) => Err(SpoolError::Read { path, cause }),
            Err(HeaderError::Bad(reason)) => {
                self.move_aside(&path, &reason);
                if let Some(e) = self.remove(id) {
                    self.unreported += e.carried;
                    self.batch_dropped(id);
                    self.lose(e.records, "corrupt spool file");
                }
                Err(SpoolError::Corrupt { path, reason })
            }
        }
    }

    /// The first batch after `after` in delivery order (the first of all for None).
    pub fn next_after(&self, after: Option<BatchId>) -> Option<BatchId> {
        match after {
            None => self.entries.keys().next().copied(),
            Some(a) => self
                .entries
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                .next()
                .map(|(id, _)| *id),
        }
    }

    pub fn contains(&self, id: BatchId) -> bool {
        self.entries.contains_key(&id)
    }

    pub fn ids(&self) -> Vec<BatchId> {
        self.entries.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Highest boot epoch in the spool (a new boot must sort after it).
    pub fn max_epoch(&self) -> Option<u64> {
        self.entries.keys().next_back().map(|id| id.boot_epoch)
    }

    /// Records lost before they reached the spool (counted, and reported in
    /// the next batch).
    pub fn note_lost(&mut self, records: u64) {
        if records > 0 {
            self.unreported += records;
            self.dropped_total += records;
            self.save_drops();
        }
    }

    /// Batches of `boot_epoch` this spool dropped (they never reach the
    /// collector): sent with each batch of that boot.
    pub fn dropped_batches(&self, boot_epoch: u64) -> u64 {
        self.drops.epochs.get(&boot_epoch).copied().unwrap_or(0)
    }

    fn batch_dropped(&mut self, id: BatchId) {
        *self.drops.epochs.entry(id.boot_epoch).or_default() += 1;
    }

    /// Keep the loss counts on disk (best effort: a failure is logged and
    /// the counts stay in memory).
    fn save_drops(&mut self) {
        self.drops.total_records = self.dropped_total;
        let path = self.dir.join(DROPS_FILE);
        let tmp = self.dir.join(format!("{DROPS_FILE}.{TMP_EXT}"));
        let text = match serde_json::to_vec(&self.drops) {
            Ok(t) => t,
            Err(_) => return,
        };
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&text))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %e, "cannot keep the spool's loss counts");
        }
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            batches: self.entries.len() as u64,
            bytes: self.bytes,
            quota_bytes: self.quota,
            dropped_records: self.dropped_total,
            memory_batches: self
                .entries
                .values()
                .filter(|e| matches!(e.place, Place::Memory(_)))
                .count() as u64,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn remove(&mut self, id: BatchId) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        self.bytes = self.bytes.saturating_sub(e.size);
        if matches!(e.place, Place::Memory(_)) {
            self.memory_bytes = self.memory_bytes.saturating_sub(e.size);
        }
        Some(e)
    }

    fn lose(&mut self, records: u64, why: &str) {
        self.unreported += records;
        self.dropped_total += records;
        self.save_drops();
        tracing::warn!(
            records,
            dropped_total = self.dropped_total,
            reason = why,
            "records dropped from the spool"
        );
    }

    /// Drop the oldest batches until `extra` more bytes fit under the quota;
    /// returns the files to delete.
    fn drop_oldest_until(&mut self, extra: u64) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut records = 0;
        let mut batches = 0u64;
        while self.bytes + extra > self.quota {
            let Some(id) = self.entries.keys().next().copied() else {
                break;
            };
            let Some(e) = self.remove(id) else { break };
            records += e.records;
            self.unreported += e.carried;
            self.batch_dropped(id);
            batches += 1;
            if matches!(e.place, Place::Disk) {
                files.push(self.dir.join(id.file_name()));
            }
        }
        if batches > 0 {
            self.unreported += records;
            self.dropped_total += records;
            self.save_drops();
            tracing::warn!(
                batches,
                records,
                quota_bytes = self.quota,
                dropped_total = self.dropped_total,
                "spool quota reached: dropped the oldest undelivered batches"
            );
        }
        files
    }

    fn delete_files(&self, files: &[PathBuf]) {
        for f in files {
            if let Err(e) = fs::remove_file(f) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %f.display(), error = %e, "cannot delete a dropped spool file");
                }
            }
        }
    }

    /// Move a bad file to `corrupt/` (deleting it if even that fails), logged.
    fn move_aside(&self, path: &Path, reason: &str) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into());
        let moved = fs::create_dir_all(&self.corrupt_dir).and_then(|()| {
            let mut dest = self.corrupt_dir.join(&name);
            let mut n = 1;
            while dest.exists() {
                dest = self.corrupt_dir.join(format!("{name}.{n}"));
                n += 1;
            }
            fs::rename(path, &dest).map(|()| dest)
        });
        match moved {
            Ok(dest) => {
                tracing::warn!(file = %path.display(), moved_to = %dest.display(), reason, "corrupt spool file moved aside");
                self.trim_corrupt_dir();
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), reason, error = %e, "corrupt spool file cannot be moved aside; deleting it");
                let _ = fs::remove_file(path);
            }
        }
    }

    fn trim_corrupt_dir(&self) {
        let Ok(rd) = fs::read_dir(&self.corrupt_dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                m.is_file()
                    .then(|| (m.modified().unwrap_or(std::time::UNIX_EPOCH), e.path()))
            })
            .collect();
        if files.len() <= MAX_CORRUPT_FILES {
            return;
        }
        files.sort();
        let excess = files.len() - MAX_CORRUPT_FILES;
        for (_, p) in files.into_iter().take(excess) {
            let _ = fs::remove_file(p);
        }
    }
}

impl Prepared {
    pub fn id(&self) -> BatchId {
        self.id
    }

    /// Write durably (temp file, fdatasync, rename, directory fsync) and delete
    /// the files the quota dropped; on a disk error keep the batch in memory.
    /// Call without holding the spool lock.
    pub fn write(self) -> Written {
        for f in &self.to_delete {
            if let Err(e) = fs::remove_file(f) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %f.display(), error = %e, "cannot delete a dropped spool file");
                }
            }
        }
        let size = (HEADER_LEN + self.payload.len()) as u64;
        let name = self.id.file_name();
        let final_path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.{TMP_EXT}"));
        let result = (|| -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&self.header)?;
            f.write_all(&self.payload)?;
            f.sync_data()?;
            drop(f);
            fs::rename(&tmp, &final_path)?;
            Ok(())
        })();
        let (place, error) = match result {
            Ok(()) => {
                // Without this the rename may not survive a power cut; the file
                // is still complete, so a failure here only costs durability.
                sync_dir(&self.dir);
                (Place::Disk, None)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                (Place::Memory(Arc::from(self.payload)), Some(e))
            }
        };
        Written {
            id: self.id,
            entry: Entry {
                size,
                records: self.records,
                carried: self.carried,
                place,
            },
            error,
        }
    }
}

fn header(records: u64, carried: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&records.to_le_bytes());
    h[16..24].copy_from_slice(&carried.to_le_bytes());
    h[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    h[32..64].copy_from_slice(ring::digest::digest(&ring::digest::SHA256, payload).as_ref());
    h
}

struct Header {
    records: u64,
    carried: u64,
    payload_len: u64,
    digest: [u8; 32],
    /// Whole file, as counted against the quota.
    size: u64,
}

enum HeaderError {
    Io(io::Error),
    /// The file is not a valid spool file; the reason says why.
    Bad(String),
}

fn parse_header(h: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
    if &h[..8] != MAGIC && &h[..8] != MAGIC_V1 {
        return Err(HeaderError::Bad("bad magic".into()));
    }
    let u = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[r]);
        u64::from_le_bytes(b)
    };
    let payload_len = u(24..32);
    if payload_len == 0 || payload_len > wire::MAX_MESSAGE_BYTES as u64 {
        return Err(HeaderError::Bad(format!(
            "payload length {payload_len} out of range"
        )));
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&h[32..64]);
    Ok(Header {
        records: u(8..16),
        carried: u(16..24),
        payload_len,
        digest,
        size: HEADER_LEN as u64 + payload_len,
    })
}

/// Header and length check only (cheap, for indexing at start).
fn read_header(path: &Path) -> Result<Header, HeaderError> {
    let mut f = File::open(path).map_err(HeaderError::Io)?;
    let len = f.metadata().map_err(HeaderError::Io)?.len();
    let mut h = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 {
        return Err(HeaderError::Bad(format!(
            "truncated: {len} bytes, shorter than the header"
        )));
    }
    f.read_exact(&mut h).map_err(HeaderError::Io)?;
    let header = parse_header(&h)?;
    if len != header.size {
        return Err(HeaderError::Bad(format!(
            "truncated or padded: {len} bytes, header says {}",
            header.size
        )));
    }
    Ok(header)
}

/// The whole file checked (length, checksum, a batch that decodes).
fn read_checked(path: &Path) -> Result<(Header, Batch), HeaderError> {
    let mut buf = fs::read(path).map_err(HeaderError::Io)?;
    let Some(h) = buf
        .get(..HEADER_LEN)
        .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
    else {
        return Err(HeaderError::Bad(format!(
            "truncated: {} bytes, shorter than the header",
            buf.len()
        )));
    };
    let header = parse_header(h)?;
    if buf.len() as u64 != header.size {
        return Err(HeaderError::Bad(format!(
            "truncated or padded: {} bytes, header says {}",
            buf.len(),
            header.size
        )));
    }
    let payload = buf.split_off(HEADER_LEN);
    if ring::digest::digest(&ring::digest::SHA256, &payload).as_ref() != header.digest {
        return Err(HeaderError::Bad("checksum mismatch".into()));
    }
    // Written by a release whose records this one cannot read: unsendable.
    let batch = wire::decode_spooled_batch(&payload)
        .map_err(|e| HeaderError::Bad(format!("batch does not decode: {e}")))?;
    let _ = header.payload_len;
    Ok((header, batch))
}

fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot fsync the spool directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::{CounterSample, TrafficScope};

    fn sample(ts: u64) -> CounterSample {
        CounterSample {
            ts,
            agency: "dinkes".into(),
            unit: "sekretariat".into(),
            scope: TrafficScope::Internet,
            bytes_in: 1000 + ts,
            bytes_out: 10,
            packets_in: 3,
            packets_out: 1,
        }
    }

    fn batch(epoch: u64, seq: u64, records: usize) -> Batch {
        Batch {
            boot_epoch: epoch,
            seq,
            sealed_ms: 1_700_000_000_000 + seq,
            flows: vec![],
            counters: (0..records)
                .map(|i| sample(seq * 1000 + i as u64))
                .collect(),
            blocked: vec![],
            dropped_records: 0,
            dropped_batches: 0,
        }
    }

    /// Batches the quota dropped are counted per boot, and the counts (and
    /// the records lost) survive a restart: the collector is told how big a
    /// gap in each boot's sequence is explained, and the node's health
    /// keeps showing the loss.
    #[test]
    fn losses_are_counted_per_boot_and_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let one = {
            let (mut s, _) = Spool::open(tmp.path(), 1 << 30).unwrap();
            let id = s.push(batch(1, 1, 50)).unwrap();
            let size = s.stats().bytes;
            s.ack(id);
            size
        };
        // Room for about three batches.
        let (mut s, _) = Spool::open(tmp.path(), one * 3 + 200).unwrap();
        for seq in 1..=5 {
            s.push(batch(7, seq, 50)).unwrap();
        }
        let dropped = s.dropped_batches(7);
        assert!(dropped >= 2, "{dropped}");
        assert_eq!(s.dropped_batches(8), 0);
        let lost = s.stats().dropped_records;
        assert_eq!(lost, dropped * 50);
        drop(s);
        let (s, _) = Spool::open(tmp.path(), one * 3 + 200).unwrap();
        assert_eq!(s.dropped_batches(7), dropped);
        assert_eq!(s.stats().dropped_records, lost);
        // drops.json is not taken for a batch.
        assert_eq!(s.len() as u64, 5 - dropped);
        // Only the agent reads the spool.
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(tmp.path()), 0o700);
        assert_eq!(mode(&tmp.path().join(DROPS_FILE)), 0o600);
        for id in s.ids() {
            assert_eq!(mode(&tmp.path().join(id.file_name())), 0o600);
        }
    }

    /// Batches come back decoded (the spool checks them on read).
    fn decode(b: Batch) -> Batch {
        b
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != DROPS_FILE)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn survives_restart_in_delivery_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        {
            let (mut s, r) = Spool::open(&dir, 1 << 20).unwrap();
            assert_eq!(r, OpenReport::default());
            // An older boot's batch pushed after newer ones still sorts first.
            s.push(batch(20, 1, 3)).unwrap();
            s.push(batch(20, 2, 3)).unwrap();
            s.push(batch(20, 10, 3)).unwrap();
            s.push(batch(7, 99, 2)).unwrap();
            assert!(s.ack(BatchId {
                boot_epoch: 20,
                seq: 2
            }));
        }
        let (mut s, r) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(r.loaded, 3);
        let ids = s.ids();
        let want =
            [(7, 99), (20, 1), (20, 10)].map(|(boot_epoch, seq)| BatchId { boot_epoch, seq });
        assert_eq!(ids, want);
        assert_eq!(s.next_after(None), Some(want[0]));
        assert_eq!(s.next_after(Some(want[1])), Some(want[2]));
        assert_eq!(s.next_after(Some(want[2])), None);
        assert_eq!(s.max_epoch(), Some(20));
        let b = decode(s.read_batch(want[1]).unwrap());
        assert_eq!(b, batch(20, 1, 3));
        assert_eq!(s.stats().batches, 3);
        for id in want {
            assert!(s.ack(id));
        }
        assert!(!s.ack(want[0]), "second ack is a no-op");
        assert!(files(&dir).is_empty(), "{:?}", files(&dir));
        assert_eq!(s.stats().bytes, 0);
    }

    #[test]
    fn quota_drops_oldest_and_counts_records() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let one = (HEADER_LEN + wire::encode_batch(&batch(1, 1, 100)).len()) as u64;
        // Room for three batches of 100 records, not four.
        let quota = one * 3 + one / 2;
        let (mut s, _) = Spool::open(&dir, quota).unwrap();
        for seq in 1..=3 {
            s.push(batch(1, seq, 100)).unwrap();
        }
        assert_eq!(s.stats().dropped_records, 0);
        s.push(batch(1, 4, 100)).unwrap();
        let ids: Vec<u64> = s.ids().iter().map(|i| i.seq).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(s.stats().dropped_records, 100);
        assert!(s.stats().bytes <= quota);
        assert_eq!(files(&dir).len(), 3);
        // The batch that forced the drop reports it.
        let b4 = decode(
            s.read_batch(BatchId {
                boot_epoch: 1,
                seq: 4,
            })
            .unwrap(),
        );
        assert_eq!(b4.dropped_records, 100);
        let b3 = decode(
            s.read_batch(BatchId {
                boot_epoch: 1,
                seq: 3,
            })
            .unwrap(),
        );
        assert_eq!(b3.dropped_records, 0);
        // Dropping batch 4 later must not lose the 100 it carried.
        s.push(batch(1, 5, 100)).unwrap(); // drops 2
        s.push(batch(1, 6, 100)).unwrap(); // drops 3
        s.push(batch(1, 7, 100)).unwrap(); // drops 4 (100 records + 100 carried)
        let b7 = decode(
            s.read_batch(BatchId {
                boot_epoch: 1,
                seq: 7,
            })
            .unwrap(),
        );
        assert_eq!(b7.dropped_records, 200);
        assert_eq!(s.stats().dropped_records, 400);
        // A batch larger than the whole quota is dropped and counted itself.
        assert!(s.push(batch(1, 8, 500)).is_none());
        assert_eq!(s.stats().dropped_records, 900);
        s.push(batch(1, 9, 1)).unwrap();
        let b9 = decode(
            s.read_batch(BatchId {
                boot_epoch: 1,
                seq: 9,
            })
            .unwrap(),
        );
        assert_eq!(b9.dropped_records, 500);
        // A lower quota at the next start applies at once.
        drop(s);
        let (s, r) = Spool::open(&dir, one + one / 2).unwrap();
        // 5 and 6 go; 7 and the tiny 9 fit in one and a half.
        assert_eq!(r.dropped_batches, 2);
        let seqs: Vec<u64> = s.ids().iter().map(|i| i.seq).collect();
        assert_eq!(seqs, [7, 9]);
    }

    #[test]
    fn corrupt_and_partial_files_are_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        for seq in 1..=4 {
            s.push(batch(3, seq, 5)).unwrap();
        }
        drop(s);
        let path = |seq: u64| dir.join(BatchId { boot_epoch: 3, seq }.file_name());
        // 1: torn by a power cut.
        let data = fs::read(path(1)).unwrap();
        fs::write(path(1), &data[..data.len() / 2]).unwrap();
        // 2: a flipped bit in the payload (caught only by the checksum at read).
        let mut data = fs::read(path(2)).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x40;
        fs::write(path(2), &data).unwrap();
        // 3: garbage header.
        fs::write(
            path(3),
            b"not a spool file at all, but long enough to have a header.......",
        )
        .unwrap();
        // A complete temp file (power cut between fsync and rename) and a torn one.
        let mut b5 = Spool::open(&tmp.path().join("other"), 1 << 20).unwrap().0;
        b5.push(batch(3, 5, 5)).unwrap();
        let done = tmp.path().join("other").join(
            BatchId {
                boot_epoch: 3,
                seq: 5,
            }
            .file_name(),
        );
        fs::copy(
            &done,
            dir.join(format!(
                "{}.tmp",
                BatchId {
                    boot_epoch: 3,
                    seq: 5
                }
                .file_name()
            )),
        )
        .unwrap();
        fs::write(
            dir.join(format!(
                "{}.tmp",
                BatchId {
                    boot_epoch: 3,
                    seq: 6
                }
                .file_name()
            )),
            b"SMPLSPL1",
        )
        .unwrap();
        fs::write(dir.join("README"), b"left alone").unwrap();

        let (mut s, r) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(r.corrupt, 3, "{r:?}");
        assert_eq!(r.recovered, 1, "{r:?}");
        let seqs: Vec<u64> = s.ids().iter().map(|i| i.seq).collect();
        assert_eq!(seqs, [2, 4, 5]);
        let err = s
            .read_batch(BatchId {
                boot_epoch: 3,
                seq: 2,
            })
            .unwrap_err();
        assert!(
            matches!(err, SpoolError::Corrupt { ref reason, .. } if reason == "checksum mismatch"),
            "{err}"
        );
        assert_eq!(s.stats().dropped_records, 5);
        assert_eq!(
            decode(
                s.read_batch(BatchId {
                    boot_epoch: 3,
                    seq: 5
                })
                .unwrap()
            ),
            batch(3, 5, 5)
        );
        let corrupt = files(&dir.join("corrupt"));
        assert_eq!(corrupt.len(), 4, "{corrupt:?}");
        assert!(files(&dir).contains(&"README".to_string()));
        // The next batch reports the lost records.
        s.push(batch(3, 7, 1)).unwrap();
        let b = decode(
            s.read_batch(BatchId {
                boot_epoch: 3,
                seq: 7,
            })
            .unwrap(),
        );
        assert_eq!(b.dropped_records, 5);
    }

    #[test]
    fn unwritable_disk_keeps_batches_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        // Replace the directory by a file: every write now fails.
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, b"x").unwrap();
        let id = s.push(batch(1, 1, 4)).unwrap();
        assert_eq!(s.stats().memory_batches, 1);
        assert_eq!(decode(s.read_batch(id).unwrap()), batch(1, 1, 4));
        assert!(s.ack(id));
        assert!(s.is_empty());
    }

    #[test]
    fn file_names_round_trip() {
        let id = BatchId {
            boot_epoch: u64::MAX,
            seq: 1,
        };
        assert_eq!(BatchId::from_file_name(&id.file_name()), Some(id));
        assert_eq!(BatchId::from_file_name("1-2.batch"), None);
        assert_eq!(BatchId::from_file_name("README"), None);
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    /// A spool the previous release's agent wrote (tests/fixtures/spool-v1,
    /// from `replay --realtime` with an unreachable collector) opens whole
    /// and every batch reads back as this release's records.
    #[test]
    fn a_previous_release_spool_is_read_whole() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/spool-v1");
        let tmp = tempfile::tempdir().unwrap();
        for e in fs::read_dir(&fixture).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "batch") {
                fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
            }
        }
        let (mut s, report) = Spool::open(tmp.path(), 1 << 30).unwrap();
        assert_eq!((report.loaded, report.corrupt), (8, 0), "{report:?}");
        let mut flows = 0;
        for id in s.ids() {
            let b = s.read_batch(id).unwrap();
            assert_eq!((b.boot_epoch, b.seq), (id.boot_epoch, id.seq));
            flows += b.flows.len();
        }
        let expected = fs::read_to_string(fixture.join("flows.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert_eq!(flows, expected);
    }
}

fn load_drops(path: &Path) -> Drops {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "unreadable loss counts; starting them again");
            Drops::default()
        }),
        Err(_) => Drops::default(),
    }
}

//! Live capture: per interface, `capture.threads` TPACKET_V3 rings in one
//! PACKET_FANOUT group ([`super::ring`], one thread each), or one AF_PACKET
//! socket read through `pnet` when the ring cannot be set up (or
//! `capture.method = "pnet"`). Either hands batches of frames to the
//! processing thread through a bounded lock-free channel; batches come back
//! to their capture thread for reuse when dropped, so steady capture
//! allocates nothing. The capture threads never wait on the consumer: a full
//! channel drops the batch and counts it.
//!
//! One interface with `capture.threads` > 1 is the exception: its rings
//! are handed to the caller whole ([`LiveCapture::take_shards`]), for
//! threads that each process their own ring with a flow table of their
//! own (`crate::live_shards`); nothing is copied or handed over per frame.
//!
//! Beside each ring, when names are being blocked, a name lane
//! ([`super::name_lane`]) sees the few frames that may name a site at once,
//! without waiting for the ring's block to be handed over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use pnet_datalink::{Channel, Config};

use super::name_lane::{NameLaneHooks, NameLaneStats};
use super::ring::{Ring, RingParams};
use crate::config::{CaptureConfig, CaptureMethod};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interfaces to capture on: set capture.interfaces in the config")]
    NoInterfaces,
    #[error("interface {name:?} not found (available: {available})")]
    NoSuchInterface { name: String, available: String },
    #[error("cannot open AF_PACKET socket on {name}: {cause} (capture needs root or CAP_NET_RAW)")]
    Socket { name: String, cause: std::io::Error },
}

/// Frames captured back to back, copied once into one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    pub data: Vec<u8>,
    /// (timestamp ns, offset, length)
    pub frames: Vec<(u64, u32, u32)>,
    /// Where the emptied batch goes when dropped (its capture thread).
    pool: Option<Sender<Batch>>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let mut data = std::mem::take(&mut self.data);
            let mut frames = std::mem::take(&mut self.frames);
            data.clear();
            frames.clear();
            // A full or closed pool just frees it.
            let _ = pool.try_send(Batch {
                data,
                frames,
                pool: None,
            });
        }
    }
}

impl Batch {
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.frames.iter().filter_map(|&(ts, off, len)| {
            self.data
                .get(off as usize..off as usize + len as usize)
                .map(|f| (ts, f))
        })
    }
}

/// Counters per interface, readable from any thread.
#[derive(Debug, Default)]
pub struct InterfaceStats {
    pub name: String,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets the kernel delivered to the socket (PACKET_STATISTICS tp_packets).
    pub kernel_packets: AtomicU64,
    /// Packets the kernel dropped because the socket buffer was full (tp_drops).
    pub kernel_drops: AtomicU64,
    /// Frames dropped by us because the processing thread was behind.
    pub queue_drops: AtomicU64,
    pub read_errors: AtomicU64,
    /// "ring" (TPACKET_V3, with the number of fanout threads) or "pnet".
    pub method: String,
    /// Frames per fanout ring, in ring order (empty without fanout): a
    /// ring that never gets any means the group is not spreading flows.
    pub per_thread: Box<[AtomicU64]>,
    /// The ring's name lane, when it has one.
    /// Set once, after the ring's threads hold these stats.
    pub name_lane: OnceLock<Arc<NameLaneStats>>,
}

pub struct LiveCapture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<InterfaceStats>>,
    inline: Option<InlineRing>,
    /// One interface, several rings in a fanout group: each read by a
    /// thread of the caller's that owns a flow table of its own.
    shards: Vec<InlineRing>,
}

impl InterfaceStats {
    /// `per_thread` as text for the logs ("1200,1187").
    pub fn per_thread_text(&self) -> String {
        let v: Vec<String> = self
            .per_thread
            .iter()
            .map(|n| n.load(Ordering::Relaxed).to_string())
            .collect();
        v.join(",")
    }
}

/// The one ring of a one-interface, one-thread capture, read by the
/// processing thread itself: frames are handled where the kernel wrote
/// them, with no copy, no second thread and no hand-off to wake it.
pub struct InlineRing {
    ring: Ring,
    stats: Arc<InterfaceStats>,
    seen: super::ring::RingStats,
    last_stats: Instant,
    /// Its place in the fanout group (0 without one).
    index: usize,
    /// Frames received before every ring of the group had joined are
    /// skipped: until then a ring sees all traffic, and the group deals by
    /// a count still growing, so they would be counted twice or apart.
    since_ns: u64,
}

impl InlineRing {
    /// Wait up to `timeout_ms` for frames and hand each to `f(ts_ns, frame)`.
    /// Returns how many there were.
    pub fn poll<F: FnMut(u64, &[u8])>(&mut self, timeout_ms: i32, mut f: F) -> usize {
        let (mut bytes, mut frames) = (0u64, 0u64);
        let since = self.since_ns;
        let r = self.ring.next_blocks(timeout_ms, |meta, frame| {
            if meta.ts_ns < since {
                return;
            }
            frames += 1;
            bytes += frame.len() as u64;
            f(meta.ts_ns, frame);
        });
        if let Err(e) = r {
            self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(interface = %self.stats.name, error = %e, "capture poll failed");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stats.frames.fetch_add(frames, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(n) = self.stats.per_thread.get(self.index) {
            n.fetch_add(frames, Ordering::Relaxed);
        }
        if frames == 0 || self.last_stats.elapsed() >= Duration::from_secs(1) {
            self.last_stats = Instant::now();
            add_ring_stats(&mut self.ring, &mut self.seen, &self.stats);
        }
        frames as usize
    }
}

impl Drop for InlineRing {
    fn drop(&mut self) {
        add_ring_stats(&mut self.ring, &mut self.seen, &self.stats);
    }
}

const BATCH_FRAMES: usize = 64;
const BATCH_MAX_AGE: Duration = Duration::from_millis(5);
/// After a frame that may name a blocked site, batches go as soon as the
/// socket is drained, for this long (a ClientHello or QUIC Initial in two
/// packets arrives back to back): a name block races the server's answer.
const URGENT_WINDOW: Duration = Duration::from_millis(10);

impl LiveCapture {
    /// Open every configured interface and start capturing.
    pub fn start(cfg: &CaptureConfig) -> Result<(LiveCapture, Receiver<Batch>), LiveError> {
        Self::start_with_lane(cfg, None)
    }

    /// As [`LiveCapture::start`]; with `lane`, each ring gets a name lane
    /// (pnet capture needs none: it hands a naming frame over at once).
    pub fn start_with_lane(
        cfg: &CaptureConfig,
        lane: Option<NameLaneHooks>,
    ) -> Result<(LiveCapture, Receiver<Batch>), LiveError> {
        if cfg.interfaces.is_empty() {
            return Err(LiveError::NoInterfaces);
        }
        let all = pnet_datalink::interfaces();
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue_batches.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let mut cap = LiveCapture {
            stop: stop.clone(),
            threads: Vec::new(),
            stats: Vec::new(),
            inline: None,
            shards: Vec::new(),
        };
        for name in &cfg.interfaces {
            let iface =
                all.iter()
                    .find(|i| &i.name == name)
                    .ok_or_else(|| LiveError::NoSuchInterface {
                        name: name.clone(),
                        available: all
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
            if cfg.method != CaptureMethod::Pnet && cfg.interfaces.len() == 1 && cfg.threads <= 1 {
                match Ring::open(iface.index, ring_params(cfg), None) {
                    Ok(ring) => {
                        let stats = Arc::new(InterfaceStats {
                            name: name.clone(),
                            method: "ring".into(),
                            ..Default::default()
                        });
                        start_lane(iface.index, &stats, lane.as_ref(), &mut cap);
                        tracing::info!(interface = %name, method = %stats.method, "capturing");
                        cap.stats.push(stats.clone());
                        cap.inline = Some(InlineRing {
                            ring,
                            stats,
                            seen: Default::default(),
                            last_stats: Instant::now(),
                            index: 0,
                            since_ns: 0,
                        });
                        continue;
                    }
                    Err(e) => ring_unavailable(cfg.method, name, e)?,
                }
            } else if cfg.method != CaptureMethod::Pnet && cfg.interfaces.len() == 1 {
                match open_shards(cfg, iface.index, name) {
                    Ok(shards) => {
                        let stats = shards[0].stats.clone();
                        start_lane(iface.index, &stats, lane.as_ref(), &mut cap);
                        tracing::info!(interface = %name, method = %stats.method, "capturing");
                        cap.stats.push(stats);
                        cap.shards = shards;
                        continue;
                    }
                    Err(e) => ring_unavailable(cfg.method, name, e)?,
                }
            } else if cfg.method != CaptureMethod::Pnet {
                match start_rings(cfg, iface.index, name, &tx, &stop) {
                    Ok((stats, threads)) => {
                        start_lane(iface.index, &stats, lane.as_ref(), &mut cap);
                        tracing::info!(interface = %name, method = %stats.method, "capturing");
                        cap.stats.push(stats);
                        cap.threads.extend(threads);
                        continue;
                    }
                    Err(e) => ring_unavailable(cfg.method, name, e)?,
                }
            }
            // Our own socket, so PACKET_STATISTICS can be read from it.
            // SAFETY: plain socket(2) call; the fd is handed to pnet, which owns it.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    i32::from((libc::ETH_P_ALL as u16).to_be()),
                )
            };
            if fd < 0 {
                return Err(LiveError::Socket {
                    name: name.clone(),
                    cause: std::io::Error::last_os_error(),
                });
            }
            set_receive_buffer(fd, cfg.socket_buffer_bytes, name);
            let config = Config {
                read_buffer_size: cfg.read_buffer_size,
                read_timeout: Some(Duration::from_millis(100)),
                socket_fd: Some(fd),
                ..Config::default()
            };
            let rx_chan = match pnet_datalink::channel(iface, config) {
                Ok(Channel::Ethernet(_tx, rx)) => rx,
                Ok(_) => {
                    return Err(LiveError::Socket {
                        name: name.clone(),
                        cause: std::io::Error::other("unexpected channel type"),
                    })
                }
                Err(cause) => {
                    return Err(LiveError::Socket {
                        name: name.clone(),
                        cause,
                    })
                }
            };
            let stats = Arc::new(InterfaceStats {
                name: name.clone(),
                method: "pnet".into(),
                ..Default::default()
            });
            cap.stats.push(stats.clone());
            let tx = tx.clone();
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || capture_loop(rx_chan, fd, tx, stop, stats))
                .map_err(|cause| LiveError::Socket {
                    name: name.clone(),
                    cause,
                })?;
            cap.threads.push(handle);
            tracing::info!(interface = %name, method = %"pnet", "capturing");
        }
        Ok((cap, rx))
    }

    pub fn stats(&self) -> &[Arc<InterfaceStats>] {
        &self.stats
    }

    /// The ring to read on the processing thread, when the capture is one
    /// ring (then nothing arrives on the batch channel).
    pub fn take_inline(&mut self) -> Option<InlineRing> {
        self.inline.take()
    }

    /// The rings of a one-interface fanout group, for threads that each
    /// process their own ring (then nothing arrives on the batch channel).
    pub fn take_shards(&mut self) -> Vec<InlineRing> {
        std::mem::take(&mut self.shards)
    }

    /// Stop the capture threads and wait for them (they wake every 100 ms).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The name lane beside a ring, its thread joining the capture's; none
/// when names are not being blocked, or (logged) when it cannot open: the
/// ring's packet path still refuses blocked names, a block later.
fn start_lane(
    ifindex: u32,
    stats: &InterfaceStats,
    hooks: Option<&NameLaneHooks>,
    cap: &mut LiveCapture,
) {
    let Some(hooks) = hooks else { return };
    let name = &stats.name;
    match super::name_lane::start(ifindex, name, hooks.clone(), cap.stop.clone()) {
        Ok((handle, lane)) => {
            cap.threads.push(handle);
            let _ = stats.name_lane.set(lane);
            tracing::info!(interface = %name, name_lane = "active", "blocked names are refused from a filtered socket beside the ring, without waiting for its blocks");
        }
        Err(e) => {
            tracing::warn!(interface = %name, name_lane = "off", error = %e, "no name lane: blocked names are refused from the ring's blocks only (up to ~10 ms later)");
        }
    }
}

/// The fanout group's id: groups are per network namespace, so keep ours
/// apart from another process's on the same interface.
fn fanout_group(ifindex: u32) -> u16 {
    (std::process::id() as u16) ^ (ifindex as u16).rotate_left(8)
}

/// `cfg.threads` rings on one interface in one fanout group, for the
/// caller's threads. All or nothing.
fn open_shards(
    cfg: &CaptureConfig,
    ifindex: u32,
    name: &str,
) -> Result<Vec<InlineRing>, super::ring::RingError> {
    let threads = cfg.threads.max(2);
    let params = ring_params(cfg);
    let group = fanout_group(ifindex);
    let mut rings = Vec::with_capacity(threads);
    for _ in 0..threads {
        rings.push(Ring::open(ifindex, params, Some(group))?);
    }
    let since_ns = now_ns();
    let stats = Arc::new(InterfaceStats {
        name: name.to_owned(),
        method: format!("ring ({threads} fanout threads)"),
        per_thread: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        ..Default::default()
    });
    Ok(rings
        .into_iter()
        .enumerate()
        .map(|(index, ring)| InlineRing {
            ring,
            stats: stats.clone(),
            seen: Default::default(),
            last_stats: Instant::now(),
            index,
            since_ns,
        })
        .collect())
}

/// Open `cfg.threads` rings on one interface, in one fanout group when
/// more than one, and start a thread per ring. All or nothing.
fn start_rings(
    cfg: &CaptureConfig,
    ifindex: u32,
    name: &str,
    tx: &Sender<Batch>,
    stop: &Arc<AtomicBool>,
) -> Result<(Arc<InterfaceStats>, Vec<JoinHandle<()>>), super::ring::RingError> {
    let threads = cfg.threads.max(1);
    let params = ring_params(cfg);
    let fanout = (threads > 1).then_some(fanout_group(ifindex));
    let mut rings = Vec::with_capacity(threads);
    for _ in 0..threads {
        rings.push(Ring::open(ifindex, params, fanout)?);
    }
    let stats = Arc::new(InterfaceStats {
        name: name.to_owned(),
        method: if threads > 1 {
            format!("ring ({threads} fanout threads)")
        } else {
            "ring".into()
        },
        per_thread: (0..threads)
            .filter(|_| threads > 1)
            .map(|_| AtomicU64::new(0))
            .collect(),
        ..Default::default()
    });
    let mut handles = Vec::with_capacity(threads);
    for (i, ring) in rings.into_iter().enumerate() {
        let (tx, stop, stats) = (tx.clone(), stop.clone(), stats.clone());
        let h = std::thread::Builder::new()
            .name(format!("capture-{name}-{i}"))
            .spawn(move || ring_loop(ring, i, tx, stop, stats))
            .map_err(|cause| super::ring::RingError::Sys {
                step: "spawn a capture thread",
                cause,
            })?;
        handles.push(h);
    }
    Ok((stats, handles))
}

fn ring_params(cfg: &CaptureConfig) -> RingParams {
    RingParams {
        block_size: cfg.ring_block_kib.saturating_mul(1024),
        block_count: cfg.ring_blocks,
        block_timeout_ms: cfg.ring_block_timeout_ms.max(1),
    }
}

/// Frames per batch handed over from a ring (a block holds thousands).
const RING_BATCH_FRAMES: usize = 256;
/// Recycled batches kept per ring thread.
const RING_POOL: usize = 64;

fn ring_loop(
    mut ring: Ring,
    index: usize,
    tx: Sender<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<InterfaceStats>,
) {
    let (pool_tx, pool_rx) = crossbeam_channel::bounded::<Batch>(RING_POOL);
    let fresh = |pool: &Sender<Batch>, rx: &Receiver<Batch>| {
        let mut b = rx.try_recv().unwrap_or_else(|_| Batch {
            data: Vec::with_capacity(RING_BATCH_FRAMES * 1600),
            frames: Vec::with_capacity(RING_BATCH_FRAMES),
            pool: None,
        });
        b.pool = Some(pool.clone());
        b
    };
    // Sends `batch` (and takes a fresh one); false once the consumer is gone.
    let hand_over = |batch: &mut Batch| -> bool {
        let n = batch.frames.len() as u64;
        let full = std::mem::replace(batch, fresh(&pool_tx, &pool_rx));
        match tx.try_send(full) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                stats.queue_drops.fetch_add(n, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    };
    let mut batch = fresh(&pool_tx, &pool_rx);
    let mut last_stats = Instant::now();
    let mut seen = super::ring::RingStats::default();
    let mut open = true;
    while open && !stop.load(Ordering::Relaxed) {
        let (mut frames, mut bytes) = (0u64, 0u64);
        let r = ring.next_blocks(100, |meta, frame| {
            if !open {
                return;
            }
            let off = batch.data.len() as u32;
            batch.data.extend_from_slice(frame);
            batch.frames.push((meta.ts_ns, off, frame.len() as u32));
            frames += 1;
            bytes += frame.len() as u64;
            if batch.frames.len() >= RING_BATCH_FRAMES {
                open = hand_over(&mut batch);
            }
        });
        if let Err(e) = r {
            stats.read_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(interface = %stats.name, error = %e, "capture poll failed");
            std::thread::sleep(Duration::from_millis(10));
        }
        stats.frames.fetch_add(frames, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(n) = stats.per_thread.get(index) {
            n.fetch_add(frames, Ordering::Relaxed);
        }
        // What a block retired with goes at once: nothing waits for more.
        if open && !batch.frames.is_empty() {
            open = hand_over(&mut batch);
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            add_ring_stats(&mut ring, &mut seen, &stats);
        }
    }
    if !batch.frames.is_empty() {
        let _ = tx.send_timeout(batch, Duration::from_millis(200));
    }
    add_ring_stats(&mut ring, &mut seen, &stats);
}

/// Add what the ring's kernel counters gained since `seen`.
fn add_ring_stats(ring: &mut Ring, seen: &mut super::ring::RingStats, stats: &InterfaceStats) {
    let now = ring.stats();
    stats
        .kernel_packets
        .fetch_add(now.packets - seen.packets, Ordering::Relaxed);
    stats
        .kernel_drops
        .fetch_add(now.drops - seen.drops, Ordering::Relaxed);
    *seen = now;
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn capture_loop(
    mut rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    fd: i32,
    tx: Sender<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<InterfaceStats>,
) {
    let mut batch = Batch::default();
    let mut batch_started = Instant::now();
    let mut last_stats = Instant::now();
    let mut urgent_until: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        // Without this, a lone frame waits for the next one or the 100 ms
        // read timeout.
        if !batch.frames.is_empty()
            && urgent_until.is_some_and(|t| Instant::now() < t)
            && !readable_now(fd)
        {
            let n = batch.frames.len() as u64;
            match tx.try_send(std::mem::take(&mut batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    stats.queue_drops.fetch_add(n, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        match rx.next() {
            Ok(frame) => {
                let ts = now_ns();
                if batch.frames.is_empty() {
                    batch_started = Instant::now();
                }
                let off = batch.data.len() as u32;
                batch.data.extend_from_slice(frame);
                batch.frames.push((ts, off, frame.len() as u32));
                if crate::enforce::names::may_carry_name(frame) {
                    urgent_until = Some(Instant::now() + URGENT_WINDOW);
                }
                stats.frames.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(interface = %stats.name, error = %e, "capture read failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if !batch.frames.is_empty()
            && (batch.frames.len() >= BATCH_FRAMES || batch_started.elapsed() >= BATCH_MAX_AGE)
        {
            let n = batch.frames.len() as u64;
            match tx.try_send(std::mem::take(&mut batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    stats.queue_drops.fetch_add(n, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            read_kernel_stats(fd, &stats);
        }
    }
    if !batch.frames.is_empty() {
        let _ = tx.send_timeout(batch, Duration::from_millis(200));
    }
    read_kernel_stats(fd, &stats);
}

/// Whether a frame is waiting on the socket (poll without waiting).
fn readable_now(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: p is valid for the duration of the call.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

/// SO_RCVBUFFORCE (root) ignores net.core.rmem_max; fall back to SO_RCVBUF.
fn set_receive_buffer(fd: i32, bytes: usize, name: &str) {
    let val = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: val outlives the call; fd is a fresh socket we own.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
    tracing::warn!(interface = %name, bytes, "cannot enlarge the socket receive buffer; bursts may be dropped by the kernel");
}

/// PACKET_STATISTICS counts since the previous read, so accumulate.
fn read_kernel_stats(fd: i32, stats: &InterfaceStats) {
    let mut s = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: s and len are valid for the duration of the call; fd is owned by the receiver.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut s as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        stats
            .kernel_packets
            .fetch_add(u64::from(s.tp_packets), Ordering::Relaxed);
        stats
            .kernel_drops
            .fetch_add(u64::from(s.tp_drops), Ordering::Relaxed);
    }
}

/// A ring that could not be opened: an error when the configuration asked
/// for the ring, otherwise the pnet fallback, said in the log.
fn ring_unavailable(
    method: CaptureMethod,
    name: &str,
    e: impl std::fmt::Display,
) -> Result<(), LiveError> {
    if method == CaptureMethod::Ring {
        return Err(LiveError::Socket {
            name: name.to_string(),
            cause: std::io::Error::other(e.to_string()),
        });
    }
    tracing::warn!(
        interface = %name, error = %e,
        "no TPACKET_V3 ring; falling back to one pnet socket (a system call per frame)"
    );
    Ok(())
}

//! Live capture: one AF_PACKET socket (through `pnet`) and one thread per
//! interface, handing batches of frames to the processing thread through a
//! bounded lock-free channel. The capture thread never waits on the consumer:
//! a full channel drops the batch and counts it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use pnet_datalink::{Channel, Config};

use crate::config::CaptureConfig;

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
}

pub struct LiveCapture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<InterfaceStats>>,
}

const BATCH_FRAMES: usize = 64;
const BATCH_MAX_AGE: Duration = Duration::from_millis(5);

impl LiveCapture {
    /// Open every configured interface and start capturing.
    pub fn start(cfg: &CaptureConfig) -> Result<(LiveCapture, Receiver<Batch>), LiveError> {
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
            tracing::info!(interface = %name, "capturing");
        }
        Ok((cap, rx))
    }

    pub fn stats(&self) -> &[Arc<InterfaceStats>] {
        &self.stats
    }

    /// Stop the capture threads and wait for them (they wake every 100 ms).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
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
    while !stop.load(Ordering::Relaxed) {
        match rx.next() {
            Ok(frame) => {
                let ts = now_ns();
                if batch.frames.is_empty() {
                    batch_started = Instant::now();
                }
                let off = batch.data.len() as u32;
                batch.data.extend_from_slice(frame);
                batch.frames.push((ts, off, frame.len() as u32));
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

//! AF_PACKET with a TPACKET_V3 receive ring: the kernel writes frames into
//! blocks of memory shared with us and hands over a whole block at a time
//! (when it is full or after a short timeout), so a busy link costs one
//! `poll` per block instead of one `recvfrom` per frame. Several rings on one
//! interface can join a PACKET_FANOUT group: the kernel then spreads flows
//! over them by their address pair (both directions and every fragment
//! alike, [`super::fanout`]), one thread per ring.
//!
//! Every `unsafe` of the capture path is in this file, each with its reason.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Geometry of one ring.
#[derive(Debug, Clone, Copy)]
pub struct RingParams {
    /// Bytes per block; a power of two multiple of the page size.
    pub block_size: u32,
    pub block_count: u32,
    /// The kernel retires a block that is not full after this long, so a
    /// quiet link still delivers its frames within a few milliseconds.
    pub block_timeout_ms: u32,
}

impl Default for RingParams {
    /// Many small blocks rather than a few big ones: at low rates every
    /// block is handed over after the timeout however little it holds, so
    /// the ring buffers `block_count` timeouts' worth of traffic (256 × 2 ms
    /// = 0.5 s), while 128 KiB still holds a 64 KiB GRO frame whole.
    fn default() -> Self {
        Self {
            block_size: 128 << 10,
            block_count: 256,
            block_timeout_ms: 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{step} failed: {cause}")]
    Sys {
        step: &'static str,
        cause: io::Error,
    },
    #[error("ring geometry refused: block size {block_size} must be a multiple of the page size and blocks at least 1")]
    Geometry { block_size: u32 },
}

fn sys(step: &'static str) -> RingError {
    RingError::Sys {
        step,
        cause: io::Error::last_os_error(),
    }
}

/// Kernel counters of one ring, since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames the kernel delivered to this socket (tp_packets).
    pub packets: u64,
    /// Frames the kernel dropped because the ring was full (tp_drops).
    pub drops: u64,
}

/// Per-frame metadata handed to the visitor.
#[derive(Debug, Clone, Copy)]
pub struct FrameMeta {
    /// Kernel receive time, Unix nanoseconds.
    pub ts_ns: u64,
    /// Length on the wire (the frame handed over may be shorter if snapped).
    pub wire_len: u32,
}

/// One mapped receive ring on one interface.
pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    params: RingParams,
    next_block: u32,
    stats: RingStats,
    /// Frames with the VLAN tag put back (the kernel strips it into the
    /// frame's metadata); reused, so no allocation per frame.
    scratch: Vec<u8>,
}

// SAFETY: the mapping is owned by this value alone (no other handle to it
// exists in the process) and is only touched through `&mut self`, so moving
// the ring to another thread is sound.
unsafe impl Send for Ring {}

/// `setsockopt(2)` with a typed value; the name lane uses it too.
pub(super) fn set_opt<T>(fd: &OwnedFd, level: i32, opt: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised T of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: i32,
    opt: i32,
    val: &T,
    step: &'static str,
) -> Result<(), RingError> {
    set_opt(fd, level, opt, val).map_err(|cause| RingError::Sys { step, cause })
}

impl Ring {
    /// Open a ring on interface `ifindex`; with `fanout`, join that group id,
    /// dealing by address pair ([`super::fanout`]).
    pub fn open(ifindex: u32, params: RingParams, fanout: Option<u16>) -> Result<Ring, RingError> {
        let page = 4096u32;
        if params.block_size == 0
            || !params.block_size.is_multiple_of(page)
            || params.block_count == 0
        {
            return Err(RingError::Geometry {
                block_size: params.block_size,
            });
        }
        let proto_be = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the fd is wrapped in an OwnedFd at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto_be),
            )
        };
        if raw < 0 {
            return Err(sys("socket(AF_PACKET)"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let version: libc::c_int = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION TPACKET_V3",
        )?;
        // Frames are variable-sized in V3; tp_frame_size/nr only have to be consistent.
        let frame_size = 2048u32;
        let req = libc::tpacket_req3 {
            tp_block_size: params.block_size,
            tp_block_nr: params.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: params.block_size / frame_size * params.block_count,
            tp_retire_blk_tov: params.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        let map_len = params.block_size as usize * params.block_count as usize;
        // SAFETY: a fresh shared mapping of the ring the kernel just allocated
        // for this socket; unmapped in Drop, never aliased outside `Ring`.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                // Not populated: only the pages frames land in count as ours.
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(sys("mmap of the ring"));
        }
        let ring = Ring {
            fd,
            map: map.cast(),
            map_len,
            params,
            next_block: 0,
            stats: RingStats::default(),
            scratch: Vec::with_capacity(64 << 10),
        };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto_be;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the length we pass.
        let rc = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(sys("bind to the interface"));
        }
        if let Some(group) = fanout {
            let arg: u32 = u32::from(group) | (libc::PACKET_FANOUT_CBPF << 16);
            setsockopt(
                &ring.fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &arg,
                "PACKET_FANOUT",
            )?;
            // The group's program; each member sets the same one, so the
            // group never deals by another while its rings join.
            let prog = super::fanout::address_pair_program();
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr().cast_mut(),
            };
            setsockopt(
                &ring.fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT_DATA,
                &fprog,
                "PACKET_FANOUT_DATA (the fanout program)",
            )?;
        }
        Ok(ring)
    }

    pub fn params(&self) -> RingParams {
        self.params
    }

    /// The block header's status word, shared with the kernel.
    fn block_status(&self, block: u32) -> &AtomicU32 {
        let off = block as usize * self.params.block_size as usize;
        // SAFETY: `off` is inside the mapping (block < block_count); a block
        // starts with tpacket_block_desc, whose `hdr.bh1.block_status` is an
        // aligned u32 at offset 8 that the kernel and we hand back and forth
        // (libpcap uses atomic loads and stores on it too).
        unsafe { &*(self.map.add(off + 8) as *const AtomicU32) }
    }

    /// Wait up to `timeout_ms` for a block, then hand every frame of every
    /// ready block to `f` and give the blocks back. Returns frames visited.
    pub fn next_blocks<F: FnMut(FrameMeta, &[u8])>(
        &mut self,
        timeout_ms: i32,
        mut f: F,
    ) -> io::Result<usize> {
        if self.block_status(self.next_block).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(0)
                } else {
                    Err(e)
                };
            }
        }
        let mut frames = 0;
        // At most one lap: the kernel may refill blocks behind us meanwhile.
        for _ in 0..self.params.block_count {
            let block = self.next_block;
            let status = self.block_status(block);
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            frames += self.walk_block(block, &mut f);
            // Hand the block back only after every frame of it was visited.
            self.block_status(block)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (block + 1) % self.params.block_count;
        }
        Ok(frames)
    }

    fn walk_block<F: FnMut(FrameMeta, &[u8])>(&mut self, block: u32, f: &mut F) -> usize {
        let bs = self.params.block_size as usize;
        let base = block as usize * bs;
        // SAFETY: the block [base, base + bs) lies inside the mapping and is
        // ours (TP_STATUS_USER) until we store TP_STATUS_KERNEL; the kernel
        // does not write it meanwhile, so a shared slice over it is sound.
        let blk: &[u8] = unsafe { std::slice::from_raw_parts(self.map.add(base), bs) };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(blk.get(at..at + 4)?.try_into().ok()?))
        };
        let u16_at = |at: usize| -> Option<u16> {
            Some(u16::from_ne_bytes(blk.get(at..at + 2)?.try_into().ok()?))
        };
        // tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1
        // (block_status, num_pkts, offset_to_first_pkt, ...).
        let (Some(num), Some(first)) = (u32_at(12), u32_at(16)) else {
            return 0;
        };
        let mut at = first as usize;
        let mut n = 0;
        for _ in 0..num {
            // tpacket3_hdr: next_offset 0, sec 4, nsec 8, snaplen 12, len 16,
            // status 20, mac 24, net 26, rxhash 28, vlan_tci 32, vlan_tpid 36.
            let (Some(next), Some(sec), Some(nsec), Some(snap), Some(len), Some(st), Some(mac)) = (
                u32_at(at),
                u32_at(at + 4),
                u32_at(at + 8),
                u32_at(at + 12),
                u32_at(at + 16),
                u32_at(at + 20),
                u16_at(at + 24),
            ) else {
                break;
            };
            let start = at + usize::from(mac);
            let Some(frame) = blk.get(start..start + snap as usize) else {
                break;
            };
            let meta = FrameMeta {
                ts_ns: u64::from(sec) * 1_000_000_000 + u64::from(nsec),
                wire_len: len,
            };
            let tci = u32_at(at + 32).unwrap_or(0) as u16;
            if st & libc::TP_STATUS_VLAN_VALID != 0 && frame.len() >= 12 {
                // The tag was taken off into metadata; flows are keyed by
                // VLAN, so put it back where it was on the wire.
                let tpid = if st & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    u16_at(at + 36).unwrap_or(0x8100)
                } else {
                    0x8100
                };
                self.scratch.clear();
                self.scratch.extend_from_slice(&frame[..12]);
                self.scratch.extend_from_slice(&tpid.to_be_bytes());
                self.scratch.extend_from_slice(&tci.to_be_bytes());
                self.scratch.extend_from_slice(&frame[12..]);
                f(meta, &self.scratch);
            } else {
                f(meta, frame);
            }
            n += 1;
            if next == 0 {
                break;
            }
            at += next as usize;
        }
        n
    }

    /// PACKET_STATISTICS counts since its previous read; accumulated here.
    pub fn stats(&mut self) -> RingStats {
        let mut s = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `s` and `len` are valid for writes for the call.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut s as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.stats.packets += u64::from(s.tp_packets);
            self.stats.drops += u64::from(s.tp_drops);
        }
        self.stats
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once; no borrow of it
        // outlives `&mut self` calls.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_checked_before_any_syscall() {
        let bad = RingParams {
            block_size: 1000,
            block_count: 4,
            block_timeout_ms: 4,
        };
        assert!(matches!(
            Ring::open(1, bad, None),
            Err(RingError::Geometry { .. })
        ));
    }
}

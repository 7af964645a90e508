//! pcap and pcapng files, memory-mapped and walked without copying.
//!
//! Hand-written rather than `pcap-file` 2.x: that crate reads pcapng
//! timestamps as nanoseconds whatever the interface's `if_tsresol` says
//! (dumpcap writes microseconds), and a replay must keep exact packet times.

use std::fs::File;
use std::path::{Path, PathBuf};

use simpul_core::decode::LinkType;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path}: {cause}")]
    Open {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file (magic {magic:02x?})")]
    NotPcap { path: PathBuf, magic: Vec<u8> },
    #[error(
        "{path}: unsupported link type {linktype} (Ethernet, Linux SLL and raw IP are supported)"
    )]
    LinkType { path: PathBuf, linktype: u32 },
    #[error("{path}: corrupt {what} at byte offset {offset}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        offset: usize,
    },
}

/// How a file read ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub frames: u64,
    /// Frames of interfaces with a link type we cannot decode (pcapng only).
    pub skipped_frames: u64,
    /// Set when the file ends in the middle of a record (capture cut short).
    pub truncated_at: Option<usize>,
}

/// Map a capture file into memory (read-only).
pub fn map_file(path: &Path) -> Result<memmap2::Mmap, FileError> {
    let open_err = |cause| FileError::Open {
        path: path.to_owned(),
        cause,
    };
    let file = File::open(path).map_err(open_err)?;
    if file.metadata().map_err(open_err)?.len() == 0 {
        return Err(FileError::NotPcap {
            path: path.to_owned(),
            magic: Vec::new(),
        });
    }
    // SAFETY: the map is read-only and private; a file truncated underneath us
    // by another process is the documented risk of mmap, accepted for replay.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(open_err)?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// Read every frame of `path`, calling `f(link, ts_unix_ns, frame)`.
pub fn read_file<F>(path: &Path, f: F) -> Result<ReadSummary, FileError>
where
    F: FnMut(LinkType, u64, &[u8]),
{
    let map = map_file(path)?;
    read_bytes(&map, path, f)
}

/// Same as [`read_file`] over bytes in memory (`path` labels errors).
pub fn read_bytes<'a, F>(data: &'a [u8], path: &Path, mut f: F) -> Result<ReadSummary, FileError>
where
    F: FnMut(LinkType, u64, &'a [u8]),
{
    let (mut walker, at) = Walker::start(data, path)?;
    let body = data.get(at..).unwrap_or_default();
    let used = walker.walk(body, at, true, &mut f)?;
    walker.finish(at + used, data.len())
}

/// The record format a [`Walker`] reads.
enum Format {
    Pcap {
        be: bool,
        /// Nanoseconds per fraction unit (1000 for microsecond files).
        frac_ns: u64,
        link: LinkType,
    },
    Pcapng {
        be: bool,
        ifaces: Vec<Interface>,
    },
}

/// Reads the records of a capture file piece by piece, so a file can be
/// read in chunks as well as walked in one piece when memory-mapped: one
/// implementation of the formats for both.
pub struct Walker {
    path: PathBuf,
    format: Format,
    summary: ReadSummary,
}

impl Walker {
    /// Recognise the format from the file's first bytes (24 suffice);
    /// returns the walker and how many of those bytes were the file header.
    pub fn start(head: &[u8], path: &Path) -> Result<(Self, usize), FileError> {
        let corrupt = |what, offset| FileError::Corrupt {
            path: path.to_owned(),
            what,
            offset,
        };
        let (format, used) = match head.get(..4) {
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => (
                Format::Pcapng {
                    be: false,
                    ifaces: Vec::new(),
                },
                0,
            ),
            Some(m) if pcap_magic(m).is_some() => {
                let (be, nanos) = pcap_magic(m).ok_or_else(|| corrupt("header", 0))?;
                // The top bits of the link type field carry FCS information (pcap 2.4 addendum).
                let linktype =
                    u32_at(head, 20, be).ok_or_else(|| corrupt("header", 0))? & 0x0fff_ffff;
                let link = LinkType::from_pcap(linktype).ok_or_else(|| FileError::LinkType {
                    path: path.to_owned(),
                    linktype,
                })?;
                let frac_ns = if nanos { 1 } else { 1000 };
                (Format::Pcap { be, frac_ns, link }, 24)
            }
            _ => {
                return Err(FileError::NotPcap {
                    path: path.to_owned(),
                    magic: head.iter().take(4).copied().collect(),
                })
            }
        };
        let walker = Self {
            path: path.to_owned(),
            format,
            summary: ReadSummary::default(),
        };
        Ok((walker, used))
    }

    /// Call `f` for every whole record in `buf`, which holds the file from
    /// offset `base` on; returns how many bytes of `buf` were whole records
    /// (the next piece starts there). `prefetch`: hint the CPU ahead (for a
    /// memory-mapped file, whose pages are not yet in cache).
    pub fn walk<'a, F>(
        &mut self,
        buf: &'a [u8],
        base: usize,
        prefetch: bool,
        f: &mut F,
    ) -> Result<usize, FileError>
    where
        F: FnMut(LinkType, u64, &'a [u8]),
    {
        match &mut self.format {
            Format::Pcap { be, frac_ns, link } => {
                let (be, frac_ns, link) = (*be, *frac_ns, *link);
                Ok(walk_pcap(
                    buf,
                    be,
                    frac_ns,
                    link,
                    prefetch,
                    &mut self.summary,
                    f,
                ))
            }
            Format::Pcapng { be, ifaces } => {
                walk_pcapng(buf, base, &self.path, be, ifaces, &mut self.summary, f)
            }
        }
    }

    /// The file ended after `end` bytes, of which the records took `used`.
    pub fn finish(mut self, used: usize, end: usize) -> Result<ReadSummary, FileError> {
        if used < end {
            self.summary.truncated_at = Some(used);
        }
        if matches!(self.format, Format::Pcapng { .. })
            && self.summary.frames == 0
            && self.summary.skipped_frames > 0
        {
            return Err(FileError::LinkType {
                path: self.path,
                linktype: 0,
            });
        }
        Ok(self.summary)
    }
}

/// (big endian, nanosecond timestamps)
fn pcap_magic(m: &[u8]) -> Option<(bool, bool)> {
    match m {
        [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, false)),
        [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, false)),
        [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, true)),
        [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, true)),
        _ => None,
    }
}

#[inline]
fn u32_at(d: &[u8], off: usize, be: bool) -> Option<u32> {
    let b: [u8; 4] = d.get(off..off + 4)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

#[inline]
fn u16_at(d: &[u8], off: usize, be: bool) -> Option<u16> {
    let b: [u8; 2] = d.get(off..off + 2)?.try_into().ok()?;
    Some(if be {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

fn walk_pcap<'a, F>(
    data: &'a [u8],
    be: bool,
    frac_ns: u64,
    link: LinkType,
    hint: bool,
    summary: &mut ReadSummary,
    f: &mut F,
) -> usize
where
    F: FnMut(LinkType, u64, &'a [u8]),
{
    let mut off = 0;
    while off < data.len() {
        if hint {
            prefetch(data, off + PREFETCH_AHEAD);
        }
        let (Some(sec), Some(frac), Some(incl)) = (
            u32_at(data, off, be),
            u32_at(data, off + 4, be),
            u32_at(data, off + 8, be),
        ) else {
            break;
        };
        let start = off + 16;
        let Some(frame) = data.get(start..start + incl as usize) else {
            break;
        };
        let ts = u64::from(sec) * 1_000_000_000 + u64::from(frac) * frac_ns;
        f(link, ts, frame);
        summary.frames += 1;
        off = start + incl as usize;
    }
    off
}

/// Records are a few hundred bytes apart and the walk reads only their
/// headers: without a hint each one is a fresh miss to memory.
const PREFETCH_AHEAD: usize = 2048;

/// Ask the CPU to start loading `data[at]`'s cache line (no-op past the end).
#[inline(always)]
fn prefetch(data: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = data.get(at) {
        // SAFETY: a prefetch never faults and reads nothing into the
        // program; the pointer is in bounds anyway, and SSE is part of the
        // x86_64 baseline.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

struct Interface {
    link: Option<LinkType>,
    /// Nanoseconds per timestamp unit, or a divisor when units are finer than 1 ns.
    unit_ns: u64,
    finer_div: u64,
}

fn walk_pcapng<'a, F>(
    data: &'a [u8],
    base: usize,
    path: &Path,
    be: &mut bool,
    ifaces: &mut Vec<Interface>,
    summary: &mut ReadSummary,
    f: &mut F,
) -> Result<usize, FileError>
where
    F: FnMut(LinkType, u64, &'a [u8]),
{
    let corrupt = |what, offset: usize| FileError::Corrupt {
        path: path.to_owned(),
        what,
        offset: base + offset,
    };
    let mut off = 0usize;
    while off < data.len() {
        if data.len() - off < 12 {
            break;
        }
        let raw_type = &data[off..off + 4];
        if raw_type == [0x0a, 0x0d, 0x0d, 0x0a] {
            // Section header: its byte-order magic decides the endianness of the section.
            *be = match data.get(off + 8..off + 12) {
                Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                _ => return Err(corrupt("section header byte-order magic", off)),
            };
            ifaces.clear();
        }
        let be = *be;
        let btype = u32_at(data, off, be).ok_or_else(|| corrupt("block", off))?;
        let blen = u32_at(data, off + 4, be).ok_or_else(|| corrupt("block", off))? as usize;
        if blen < 12 || !blen.is_multiple_of(4) {
            return Err(corrupt("block length", off));
        }
        let Some(block) = data.get(off..off + blen) else {
            break;
        };
        let body = &block[8..blen - 4];
        match btype {
            // Interface description
            1 => {
                let lt =
                    u32::from(u16_at(body, 0, be).ok_or_else(|| corrupt("interface block", off))?);
                let mut iface = Interface {
                    link: LinkType::from_pcap(lt),
                    unit_ns: 1000,
                    finer_div: 1,
                };
                // Options: code(2) len(2) value padded to 4.
                let mut o = 8;
                while let (Some(code), Some(olen)) = (u16_at(body, o, be), u16_at(body, o + 2, be))
                {
                    if code == 0 {
                        break;
                    }
                    let olen = olen as usize;
                    if code == 9 && olen >= 1 {
                        if let Some(&r) = body.get(o + 4) {
                            let (unit_ns, finer_div) = tsresol(r);
                            iface.unit_ns = unit_ns;
                            iface.finer_div = finer_div;
                        }
                    }
                    o += 4 + olen.div_ceil(4) * 4;
                }
                ifaces.push(iface);
            }
            // Enhanced packet
            6 => {
                let (Some(id), Some(hi), Some(lo), Some(cap)) = (
                    u32_at(body, 0, be),
                    u32_at(body, 4, be),
                    u32_at(body, 8, be),
                    u32_at(body, 12, be),
                ) else {
                    return Err(corrupt("enhanced packet block", off));
                };
                let frame = body
                    .get(20..20 + cap as usize)
                    .ok_or_else(|| corrupt("enhanced packet length", off))?;
                let iface = ifaces
                    .get(id as usize)
                    .ok_or_else(|| corrupt("packet on undeclared interface", off))?;
                let raw = (u64::from(hi) << 32) | u64::from(lo);
                match iface.link {
                    Some(link) => {
                        let ts = raw.saturating_mul(iface.unit_ns) / iface.finer_div;
                        f(link, ts, frame);
                        summary.frames += 1;
                    }
                    None => summary.skipped_frames += 1,
                }
            }
            // Simple packet: no timestamp, interface 0.
            3 => {
                let orig =
                    u32_at(body, 0, be).ok_or_else(|| corrupt("simple packet block", off))?;
                let frame = body
                    .get(4..(4 + orig as usize).min(body.len()))
                    .ok_or_else(|| corrupt("simple packet block", off))?;
                match ifaces.first().and_then(|i| i.link) {
                    Some(link) => {
                        f(link, 0, frame);
                        summary.frames += 1;
                    }
                    None => summary.skipped_frames += 1,
                }
            }
            _ => {}
        }
        off += blen;
    }
    Ok(off)
}

/// if_tsresol: high bit set = negative power of 2, else negative power of 10.
fn tsresol(r: u8) -> (u64, u64) {
    let exp = u32::from(r & 0x7f);
    if r & 0x80 != 0 {
        // 2^-exp seconds per unit.
        (1_000_000_000, 1u64.checked_shl(exp).unwrap_or(u64::MAX))
    } else if exp <= 9 {
        (10u64.pow(9 - exp), 1)
    } else {
        (1, 10u64.checked_pow(exp - 9).unwrap_or(u64::MAX))
    }
}

/// Read from `file` into `buf[from..]` until it is full or the file ends;
/// how far `buf` is filled (short of its length only at the end of the file).
pub(crate) fn fill(
    file: &mut impl std::io::Read,
    buf: &mut [u8],
    from: usize,
) -> std::io::Result<usize> {
    let mut filled = from;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_le(frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (s, us, d) in frames {
            v.extend_from_slice(&s.to_le_bytes());
            v.extend_from_slice(&us.to_le_bytes());
            v.extend_from_slice(&(d.len() as u32).to_le_bytes());
            v.extend_from_slice(&(d.len() as u32).to_le_bytes());
            v.extend_from_slice(d);
        }
        v
    }

    #[test]
    fn pcap_frames_and_timestamps() {
        let data = pcap_le(&[(10, 5, b"abc"), (11, 999_999, b"de")]);
        let mut got = Vec::new();
        let s = read_bytes(&data, Path::new("t"), |_, ts, fr| {
            got.push((ts, fr.to_vec()))
        })
        .unwrap();
        assert_eq!(s.frames, 2);
        assert_eq!(got[0], (10_000_005_000, b"abc".to_vec()));
        assert_eq!(got[1].0, 11_999_999_000);
    }

    #[test]
    fn cut_file_reports_where() {
        let data = pcap_le(&[(10, 5, b"abcdef"), (11, 0, b"xyz")]);
        let cut = &data[..data.len() - 2];
        let s = read_bytes(cut, Path::new("t"), |_, _, _| {}).unwrap();
        assert_eq!(s.frames, 1);
        assert_eq!(s.truncated_at, Some(24 + 16 + 6));
    }

    #[test]
    fn not_a_pcap() {
        let e = read_bytes(b"hello world", Path::new("x.txt"), |_, _, _| {}).unwrap_err();
        assert!(e.to_string().contains("not a pcap"), "{e}");
    }

    #[test]
    fn tsresol_units() {
        assert_eq!(tsresol(6), (1000, 1));
        assert_eq!(tsresol(9), (1, 1));
        assert_eq!(tsresol(0x80 | 10), (1_000_000_000, 1024));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..600 {
            let mut d = vec![0x0a, 0x0d, 0x0d, 0x0a];
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                d.push(x as u8);
            }
            let _ = read_bytes(&d, Path::new("t"), |_, _, _| {});
            d[..4].copy_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1]);
            let _ = read_bytes(&d, Path::new("t"), |_, _, _| {});
        }
    }
}

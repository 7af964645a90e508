//! Flow export protocols on byte slices: NetFlow v5 ([`v5`]), NetFlow v9
//! ([`v9`]) and IPFIX, RFC 7011 ([`ipfix`]). One [`Decoder`] per listening
//! socket keeps what the exporters told it earlier — templates and options
//! (sampling) per exporter and observation domain / source id, sequence
//! numbers — in a bounded cache ([`templates`]): a hostile or broken
//! exporter can fill its own share and no more.
//!
//! Nothing here reads a clock or a socket: the caller hands in the datagram
//! and the exporter's address, and gets typed records or a typed error.

pub mod ipfix;
pub mod synth;
pub mod templates;
pub mod v5;
pub mod v9;

use std::net::IpAddr;

use templates::Cache;
pub use templates::{DomainInfo, Limits, Sampling};

/// A datagram that cannot be read, with what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetflowError {
    #[error("datagram too short for the {what} at byte {at}: {need} bytes needed, {have} left")]
    Truncated {
        what: &'static str,
        at: usize,
        need: usize,
        have: usize,
    },
    #[error("export version {0} is not NetFlow v5, v9 or IPFIX (10)")]
    Version(u16),
    #[error("{what} at byte {at}: {why}")]
    Malformed {
        what: &'static str,
        at: usize,
        why: &'static str,
    },
    #[error("{limit} exporters are already known; datagrams from {exporter} are not read")]
    TooManyExporters { exporter: IpAddr, limit: usize },
}

/// Which protocol a datagram spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V5,
    V9,
    Ipfix,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::V5 => "netflow-v5",
            Version::V9 => "netflow-v9",
            Version::Ipfix => "ipfix",
        }
    }
}

/// One exported flow, as the exporter counted it (sampled counts are not
/// scaled here: `sampling` says by how much they should be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfFlow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub tcp_flags: u8,
    pub bytes: u64,
    pub packets: u64,
    /// The reverse direction of a biflow (RFC 5103), or the egress counters
    /// of a NetFlow v9 exporter that reports both; 0 otherwise.
    pub rev_bytes: u64,
    pub rev_packets: u64,
    /// Unix milliseconds.
    pub start_ms: u64,
    pub end_ms: u64,
    pub vlan: Option<u16>,
    pub input_if: u32,
    pub output_if: u32,
    /// RFC 7012 flowEndReason (1 idle, 2 active, 3 end of flow, 4 forced, 5
    /// lack of resources), 0 when not exported.
    pub end_reason: u8,
    /// One packet in `sampling` was counted (1: unsampled).
    pub sampling: u32,
    /// Observation domain (IPFIX), source id (v9), engine type/id (v5).
    pub domain: u32,
}

/// What one datagram carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    pub version: Option<Version>,
    pub domain: u32,
    /// Export time, Unix seconds.
    pub export_secs: u64,
    pub flows: Vec<NfFlow>,
    /// Records the sequence numbers say were lost before this datagram
    /// (flows for v5 and IPFIX, datagrams for v9, as the protocols count).
    pub lost: u64,
    /// Templates and options templates learned (or refreshed) / withdrawn.
    pub templates: u32,
    pub withdrawn: u32,
    /// Templates not kept: the exporter's share of the cache is full.
    pub templates_refused: u32,
    /// Data sets skipped because their template is not known (yet).
    pub sets_without_template: u32,
    /// Options data records read (sampling, system init time).
    pub options_records: u32,
}

/// The stateful reader of every exporter's datagrams.
#[derive(Debug, Default)]
pub struct Decoder {
    cache: Cache,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            cache: Cache::new(limits),
        }
    }

    /// Read one datagram from `exporter`. An error leaves what earlier
    /// datagrams taught (templates, sequence) as it was, except templates
    /// this datagram defined before its broken part.
    pub fn decode(&mut self, exporter: IpAddr, data: &[u8]) -> Result<Decoded, NetflowError> {
        let mut r = Reader::new(data);
        let version = r.u16("version")?;
        match version {
            5 => v5::decode(&mut self.cache, exporter, data),
            9 => v9::decode(&mut self.cache, exporter, data),
            10 => ipfix::decode(&mut self.cache, exporter, data),
            v => Err(NetflowError::Version(v)),
        }
    }

    /// Exporters known now.
    pub fn exporters(&self) -> usize {
        self.cache.exporters()
    }

    /// Templates held for `exporter`, all domains.
    pub fn templates_of(&self, exporter: IpAddr) -> usize {
        self.cache.templates_of(exporter)
    }

    /// The sampling an exporter's options told (any domain), if any.
    pub fn sampling_of(&self, exporter: IpAddr) -> Option<Sampling> {
        self.cache.sampling_of(exporter)
    }

    /// Templates and sampling per domain of `exporter`.
    pub fn domains_of(&self, exporter: IpAddr) -> Vec<DomainInfo> {
        self.cache.domains_of(exporter)
    }

    /// Forget an exporter (its templates, sequence, sampling).
    pub fn forget(&mut self, exporter: IpAddr) {
        self.cache.forget(exporter);
    }
}

/// Bounds-checked big-endian reads that say what was being read and where.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data` in the datagram, for error positions.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader {
            data,
            pos: 0,
            base: 0,
        }
    }

    pub(crate) fn at(data: &'a [u8], base: usize) -> Reader<'a> {
        Reader { data, pos: 0, base }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], NetflowError> {
        if self.left() < n {
            return Err(NetflowError::Truncated {
                what,
                at: self.offset(),
                need: n,
                have: self.left(),
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, NetflowError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, NetflowError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, NetflowError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Big-endian unsigned integer of 1–8 bytes (reduced-size encoding, RFC
/// 7011 section 6.2); other lengths read as 0.
pub(crate) fn uint(b: &[u8]) -> u64 {
    if b.is_empty() || b.len() > 8 {
        return 0;
    }
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// Sequence bookkeeping of one stream: how many units were lost between
/// the last datagram and this one. A sequence behind the expected one
/// (reordering, an exporter restart) resynchronises without a loss.
pub(crate) fn sequence_gap(expected: Option<u32>, got: u32) -> u64 {
    match expected {
        Some(e) => {
            let d = got.wrapping_sub(e);
            if d < (1 << 31) {
                u64::from(d)
            } else {
                0
            }
        }
        None => 0,
    }
}

/// Fuzzing entry: every datagram through one decoder, never a panic.
pub fn fuzz(data: &[u8]) {
    let mut d = Decoder::new(Limits {
        max_exporters: 4,
        max_templates_per_exporter: 16,
        ..Limits::default()
    });
    let exporter = IpAddr::from([192, 0, 2, 1]);
    // Several datagrams in one input: templates of one, data of the next.
    for chunk in data.split(|&b| b == 0xA5).take(16) {
        let _ = d.decode(exporter, chunk);
    }
    let _ = d.decode(exporter, data);
}

#[cfg(test)]
mod tests;

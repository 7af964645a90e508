//! Templates, options and sequence state per exporter and domain, bounded;
//! and reading a data record with a template (v9 and IPFIX share it).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{uint, NetflowError, NfFlow, Reader, Version};

/// What the cache may hold: a hostile exporter fills its own share only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_exporters: usize,
    /// Templates and options templates, all domains of one exporter.
    pub max_templates_per_exporter: usize,
    /// Observation domains / source ids of one exporter.
    pub max_domains_per_exporter: usize,
    /// Fields of one template.
    pub max_fields: usize,
    /// Sampler ids remembered per domain.
    pub max_samplers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_exporters: 4096,
            max_templates_per_exporter: 512,
            max_domains_per_exporter: 64,
            max_fields: 256,
            max_samplers: 64,
        }
    }
}

/// The sampling an exporter announced (options data or a v5 header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sampling {
    /// One packet in `interval`; 0 or 1: unsampled.
    pub interval: u32,
    /// RFC 7012 samplingAlgorithm / v9 FLOW_SAMPLER_MODE (1 deterministic,
    /// 2 random), 0 when not told.
    pub algorithm: u8,
}

/// What a field of a template means to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Bytes,
    Packets,
    RevBytes,
    RevPackets,
    Proto,
    TcpFlags,
    SrcPort,
    DstPort,
    IcmpTypeCode,
    Src4,
    Dst4,
    Src6,
    Dst6,
    InputIf,
    OutputIf,
    /// sysUpTime ms (v9 FIRST/LAST_SWITCHED, IPFIX 22/21).
    StartUptime,
    EndUptime,
    StartSecs,
    EndSecs,
    StartMs,
    EndMs,
    /// NTP-format timestamps (dateTimeMicroseconds / Nanoseconds).
    StartNtp,
    EndNtp,
    /// Microseconds before the export time (IPFIX 158/159).
    StartDeltaUs,
    EndDeltaUs,
    SystemInitMs,
    Vlan,
    EndReason,
    SamplingInterval,
    SamplingAlgorithm,
    SamplerId,
    /// samplingPacketInterval / samplingPacketSpace (RFC 5477).
    PacketInterval,
    PacketSpace,
    Other,
}

/// RFC 5103 reverse information elements.
const REVERSE_PEN: u32 = 29305;

pub(crate) fn field_of(id: u16, enterprise: u32, len: u16) -> Field {
    if enterprise == REVERSE_PEN {
        return match id {
            1 | 85 => Field::RevBytes,
            2 | 86 => Field::RevPackets,
            _ => Field::Other,
        };
    }
    if enterprise != 0 {
        return Field::Other;
    }
    match (id, len) {
        (1 | 85, _) => Field::Bytes,
        (2 | 86, _) => Field::Packets,
        (23, _) => Field::RevBytes,
        (24, _) => Field::RevPackets,
        (4, _) => Field::Proto,
        (6, _) => Field::TcpFlags,
        (7, _) => Field::SrcPort,
        (11, _) => Field::DstPort,
        (32 | 139, _) => Field::IcmpTypeCode,
        (8, 4) => Field::Src4,
        (12, 4) => Field::Dst4,
        (27, 16) => Field::Src6,
        (28, 16) => Field::Dst6,
        (10, _) => Field::InputIf,
        (14, _) => Field::OutputIf,
        (22, _) => Field::StartUptime,
        (21, _) => Field::EndUptime,
        (150, _) => Field::StartSecs,
        (151, _) => Field::EndSecs,
        (152, _) => Field::StartMs,
        (153, _) => Field::EndMs,
        (154 | 156, 8) => Field::StartNtp,
        (155 | 157, 8) => Field::EndNtp,
        (158, _) => Field::StartDeltaUs,
        (159, _) => Field::EndDeltaUs,
        (160, _) => Field::SystemInitMs,
        (58 | 243, _) => Field::Vlan,
        (136, _) => Field::EndReason,
        (34 | 50, _) => Field::SamplingInterval,
        (35 | 49 | 304, _) => Field::SamplingAlgorithm,
        (48 | 302, _) => Field::SamplerId,
        (305, _) => Field::PacketInterval,
        (306, _) => Field::PacketSpace,
        _ => Field::Other,
    }
}

/// A field of a template: its meaning and length (`VARIABLE`: IPFIX
/// variable length, the length is in the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec {
    pub field: Field,
    pub len: u16,
}

pub(crate) const VARIABLE: u16 = 65535;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub specs: Vec<Spec>,
    /// Options template: its records tell sampling and init time.
    pub options: bool,
    /// The smallest record (variable fields at one length byte).
    pub min_len: usize,
}

impl Template {
    /// Refuses a template whose records would take no bytes (a data set
    /// of them would never end).
    pub(crate) fn new(
        specs: Vec<Spec>,
        options: bool,
        at: usize,
    ) -> Result<Template, NetflowError> {
        let min_len = specs
            .iter()
            .map(|s| {
                if s.len == VARIABLE {
                    1
                } else {
                    usize::from(s.len)
                }
            })
            .sum();
        if min_len == 0 {
            return Err(NetflowError::Malformed {
                what: "template",
                at,
                why: "its records would be zero bytes long",
            });
        }
        Ok(Template {
            specs,
            options,
            min_len,
        })
    }
}

/// One domain of an exporter as the cache holds it (for the NOC's view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    pub version: Version,
    /// Observation domain (IPFIX), source id (v9), engine type/id (v5).
    pub domain: u32,
    pub templates: usize,
    pub options_templates: usize,
    /// The domain-wide sampling its options (or v5 header) announced.
    pub sampling: Sampling,
    /// Samplers it named by id (v9 FLOW_SAMPLER_ID, IPFIX selectorId).
    pub samplers: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Domain {
    pub templates: HashMap<u16, Template>,
    /// The sequence number the next datagram should carry.
    pub expected: Option<u32>,
    /// The previous datagram's sequence number (IPFIX: see `ipfix::decode`).
    pub last_seq: Option<u32>,
    pub sampling: Sampling,
    samplers: HashMap<u64, u32>,
    /// systemInitTimeMilliseconds from options data (IPFIX uptime fields).
    pub init_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Exporter {
    domains: HashMap<(Version, u32), Domain>,
    templates: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Cache {
    limits: Limits,
    exporters: HashMap<IpAddr, Exporter>,
}

/// The outcome of offering a template to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learned {
    Kept,
    Refused,
}

impl Cache {
    pub(crate) fn new(limits: Limits) -> Cache {
        Cache {
            limits,
            exporters: HashMap::new(),
        }
    }

    pub(crate) fn exporters(&self) -> usize {
        self.exporters.len()
    }

    pub(crate) fn templates_of(&self, exporter: IpAddr) -> usize {
        self.exporters.get(&exporter).map_or(0, |e| e.templates)
    }

    pub(crate) fn sampling_of(&self, exporter: IpAddr) -> Option<Sampling> {
        self.exporters
            .get(&exporter)?
            .domains
            .values()
            .map(|d| d.sampling)
            .find(|s| s.interval > 1)
    }

    /// What the cache holds per domain of `exporter`, by (version, domain).
    pub(crate) fn domains_of(&self, exporter: IpAddr) -> Vec<DomainInfo> {
        let Some(e) = self.exporters.get(&exporter) else {
            return Vec::new();
        };
        let mut out: Vec<DomainInfo> = e
            .domains
            .iter()
            .map(|(&(version, domain), d)| DomainInfo {
                version,
                domain,
                templates: d.templates.values().filter(|t| !t.options).count(),
                options_templates: d.templates.values().filter(|t| t.options).count(),
                sampling: d.sampling,
                samplers: d.samplers.len(),
            })
            .collect();
        out.sort_by_key(|d| (d.version.name(), d.domain));
        out
    }

    pub(crate) fn forget(&mut self, exporter: IpAddr) {
        self.exporters.remove(&exporter);
    }

    /// The exporter's entry, made if the cache has room.
    fn exporter(&mut self, ip: IpAddr) -> Result<&mut Exporter, NetflowError> {
        let limit = self.limits.max_exporters;
        if !self.exporters.contains_key(&ip) && self.exporters.len() >= limit {
            return Err(NetflowError::TooManyExporters {
                exporter: ip,
                limit,
            });
        }
        Ok(self.exporters.entry(ip).or_default())
    }

    /// The domain's state; a domain past the exporter's share is refused
    /// like an exporter past the cache's.
    pub(crate) fn domain(
        &mut self,
        ip: IpAddr,
        version: Version,
        domain: u32,
    ) -> Result<&mut Domain, NetflowError> {
        let max_domains = self.limits.max_domains_per_exporter;
        let e = self.exporter(ip)?;
        if !e.domains.contains_key(&(version, domain)) && e.domains.len() >= max_domains {
            return Err(NetflowError::Malformed {
                what: "observation domain",
                at: 0,
                why: "the exporter already has as many domains as allowed",
            });
        }
        Ok(e.domains.entry((version, domain)).or_default())
    }

    pub(crate) fn learn(
        &mut self,
        ip: IpAddr,
        version: Version,
        domain: u32,
        id: u16,
        t: Template,
    ) -> Result<Learned, NetflowError> {
        let max = self.limits.max_templates_per_exporter;
        let e = self.exporter(ip)?;
        let full = e.templates >= max;
        let Some(d) = e.domains.get_mut(&(version, domain)) else {
            return Ok(Learned::Refused);
        };
        if let Some(old) = d.templates.get_mut(&id) {
            *old = t;
            return Ok(Learned::Kept);
        }
        if full {
            return Ok(Learned::Refused);
        }
        d.templates.insert(id, t);
        e.templates += 1;
        Ok(Learned::Kept)
    }

    /// Withdraw one template, or with `all` every (options) template of the
    /// domain. Returns how many went.
    pub(crate) fn withdraw(
        &mut self,
        ip: IpAddr,
        version: Version,
        domain: u32,
        id: u16,
        all: Option<bool>,
    ) -> u32 {
        let Some(e) = self.exporters.get_mut(&ip) else {
            return 0;
        };
        let Some(d) = e.domains.get_mut(&(version, domain)) else {
            return 0;
        };
        let before = d.templates.len();
        match all {
            Some(options) => d.templates.retain(|_, t| t.options != options),
            None => {
                d.templates.remove(&id);
            }
        }
        let gone = before - d.templates.len();
        e.templates -= gone;
        gone as u32
    }

    pub(crate) fn max_fields(&self) -> usize {
        self.limits.max_fields
    }

    pub(crate) fn sampler_limit(&self) -> usize {
        self.limits.max_samplers
    }
}

impl Domain {
    /// Remember what an options record told (sampling, init time).
    pub(crate) fn absorb_options(&mut self, o: &RecordValues, max_samplers: usize) {
        if let Some(ms) = o.init_ms {
            self.init_ms = Some(ms);
        }
        let interval = o.interval();
        if let Some(alg) = o.algorithm {
            self.sampling.algorithm = alg;
        }
        let Some(interval) = interval else { return };
        match o.sampler_id {
            Some(id) if self.samplers.len() < max_samplers || self.samplers.contains_key(&id) => {
                self.samplers.insert(id, interval);
                // A domain with one sampler: its records need not name it.
                self.sampling.interval = interval;
            }
            Some(_) => {}
            None => self.sampling.interval = interval,
        }
    }

    /// The sampling a data record was made with.
    pub(crate) fn rate_for(&self, v: &RecordValues) -> u32 {
        let r = v
            .interval()
            .or_else(|| v.sampler_id.and_then(|id| self.samplers.get(&id).copied()))
            .unwrap_or(self.sampling.interval);
        r.max(1)
    }
}

/// Everything one record said, before it becomes an [`NfFlow`].
#[derive(Debug, Default, Clone)]
pub(crate) struct RecordValues {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: u16,
    pub dst_port: u16,
    pub icmp: Option<u16>,
    pub proto: u8,
    pub tcp_flags: u8,
    pub bytes: u64,
    pub packets: u64,
    pub rev_bytes: u64,
    pub rev_packets: u64,
    pub start_uptime: Option<u64>,
    pub end_uptime: Option<u64>,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub start_delta_us: Option<u64>,
    pub end_delta_us: Option<u64>,
    pub init_ms: Option<u64>,
    pub vlan: Option<u16>,
    pub input_if: u32,
    pub output_if: u32,
    pub end_reason: u8,
    pub sampling_interval: Option<u32>,
    pub algorithm: Option<u8>,
    pub sampler_id: Option<u64>,
    pub packet_interval: Option<u64>,
    pub packet_space: Option<u64>,
}

impl RecordValues {
    /// One packet in N, from whichever way the exporter said it.
    pub(crate) fn interval(&self) -> Option<u32> {
        if let Some(i) = self.sampling_interval.filter(|&i| i > 0) {
            return Some(i);
        }
        let n = self.packet_interval.filter(|&n| n > 0)?;
        let space = self.packet_space.unwrap_or(0);
        u32::try_from(n.saturating_add(space) / n).ok()
    }
}

/// NTP timestamp (seconds since 1900, binary fraction) → Unix ms.
fn ntp_ms(v: u64) -> u64 {
    const NTP_UNIX: u64 = 2_208_988_800;
    let secs = (v >> 32).saturating_sub(NTP_UNIX);
    let frac = ((v & 0xffff_ffff) * 1000) >> 32;
    secs.saturating_mul(1000).saturating_add(frac)
}

/// Read one record of `t` at the reader's position.
pub(crate) fn read_record(r: &mut Reader<'_>, t: &Template) -> Result<RecordValues, NetflowError> {
    let mut v = RecordValues::default();
    for s in &t.specs {
        let len = if s.len == VARIABLE {
            match r.u8("variable-length field length")? {
                255 => usize::from(r.u16("variable-length field length")?),
                n => usize::from(n),
            }
        } else {
            usize::from(s.len)
        };
        let b = r.take(len, "data record field")?;
        let n = uint(b);
        match s.field {
            Field::Bytes => v.bytes = v.bytes.saturating_add(n),
            Field::Packets => v.packets = v.packets.saturating_add(n),
            Field::RevBytes => v.rev_bytes = v.rev_bytes.saturating_add(n),
            Field::RevPackets => v.rev_packets = v.rev_packets.saturating_add(n),
            Field::Proto => v.proto = n as u8,
            Field::TcpFlags => v.tcp_flags = n as u8,
            Field::SrcPort => v.src_port = n as u16,
            Field::DstPort => v.dst_port = n as u16,
            Field::IcmpTypeCode => v.icmp = Some(n as u16),
            Field::Src4 | Field::Dst4 => {
                let ip = IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
                if s.field == Field::Src4 {
                    v.src = Some(ip);
                } else {
                    v.dst = Some(ip);
                }
            }
            Field::Src6 | Field::Dst6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                let ip = IpAddr::V6(Ipv6Addr::from(a));
                if s.field == Field::Src6 {
                    v.src = Some(ip);
                } else {
                    v.dst = Some(ip);
                }
            }
            Field::InputIf => v.input_if = n as u32,
            Field::OutputIf => v.output_if = n as u32,
            Field::StartUptime => v.start_uptime = Some(n),
            Field::EndUptime => v.end_uptime = Some(n),
            Field::StartSecs => v.start_ms = Some(n.saturating_mul(1000)),
            Field::EndSecs => v.end_ms = Some(n.saturating_mul(1000)),
            Field::StartMs => v.start_ms = Some(n),
            Field::EndMs => v.end_ms = Some(n),
            Field::StartNtp => v.start_ms = Some(ntp_ms(n)),
            Field::EndNtp => v.end_ms = Some(ntp_ms(n)),
            Field::StartDeltaUs => v.start_delta_us = Some(n),
            Field::EndDeltaUs => v.end_delta_us = Some(n),
            Field::SystemInitMs => v.init_ms = Some(n),
            Field::Vlan => v.vlan = Some((n & 0x0fff) as u16),
            Field::EndReason => v.end_reason = n as u8,
            Field::SamplingInterval => v.sampling_interval = u32::try_from(n).ok(),
            Field::SamplingAlgorithm => v.algorithm = Some(n as u8),
            Field::SamplerId => v.sampler_id = Some(n),
            Field::PacketInterval => v.packet_interval = Some(n),
            Field::PacketSpace => v.packet_space = Some(n),
            Field::Other => {}
        }
    }
    Ok(v)
}

/// Timing context of a datagram: its export time and (v9) the exporter's
/// uptime at export.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub export_ms: u64,
    /// v9 header sysUptime; IPFIX has none.
    pub uptime_ms: Option<u64>,
    /// IPFIX systemInitTimeMilliseconds from options.
    pub init_ms: Option<u64>,
}

impl Clock {
    fn at_uptime(&self, up: u64, record_init: Option<u64>) -> Option<u64> {
        if let Some(init) = record_init.or(self.init_ms) {
            return Some(init.saturating_add(up));
        }
        // Uptime counters are 32-bit milliseconds: they wrap after 49 days.
        let now_up = self.uptime_ms?;
        let ago = (now_up as u32).wrapping_sub(up as u32);
        Some(self.export_ms.saturating_sub(u64::from(ago)))
    }
}

/// A data record as a flow; None for a record with no addresses (an
/// options-like record in a data template, which carries no traffic).
pub(crate) fn to_flow(
    v: &RecordValues,
    clock: &Clock,
    sampling: u32,
    domain: u32,
) -> Option<NfFlow> {
    let (src, dst) = (v.src?, v.dst?);
    let start = v
        .start_ms
        .or_else(|| v.start_uptime.and_then(|u| clock.at_uptime(u, v.init_ms)))
        .or_else(|| {
            v.start_delta_us
                .map(|d| clock.export_ms.saturating_sub(d / 1000))
        });
    let end = v
        .end_ms
        .or_else(|| v.end_uptime.and_then(|u| clock.at_uptime(u, v.init_ms)))
        .or_else(|| {
            v.end_delta_us
                .map(|d| clock.export_ms.saturating_sub(d / 1000))
        });
    let end_ms = end.unwrap_or(clock.export_ms);
    let start_ms = start.unwrap_or(end_ms).min(end_ms);
    let (mut src_port, mut dst_port) = (v.src_port, v.dst_port);
    if let Some(tc) = v.icmp {
        if src_port == 0 && dst_port == 0 {
            dst_port = tc;
            src_port = 0;
        }
    }
    Some(NfFlow {
        src,
        dst,
        src_port,
        dst_port,
        proto: v.proto,
        tcp_flags: v.tcp_flags,
        bytes: v.bytes,
        packets: v.packets,
        rev_bytes: v.rev_bytes,
        rev_packets: v.rev_packets,
        start_ms,
        end_ms,
        vlan: v.vlan,
        input_if: v.input_if,
        output_if: v.output_if,
        end_reason: v.end_reason,
        sampling,
        domain,
    })
}

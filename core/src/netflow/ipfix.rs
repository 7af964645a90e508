//! IPFIX (RFC 7011): sets of templates (2), options templates (3) and data
//! (256 and up), per exporter and observation domain; enterprise fields,
//! variable-length fields, template withdrawal. Its sequence number counts
//! data records.

use std::net::IpAddr;

use super::templates::{
    field_of, read_record, to_flow, Cache, Clock, Field, Learned, Spec, Template,
};
use super::{sequence_gap, Decoded, NetflowError, Reader, Version};

pub const HEADER_LEN: usize = 16;

pub(crate) fn decode(
    cache: &mut Cache,
    exporter: IpAddr,
    data: &[u8],
) -> Result<Decoded, NetflowError> {
    let mut r = Reader::new(data);
    r.u16("version")?;
    let length = usize::from(r.u16("message length")?);
    let secs = r.u32("export time")?;
    let sequence = r.u32("sequence number")?;
    let domain = r.u32("observation domain id")?;
    if length < HEADER_LEN || length > data.len() {
        return Err(NetflowError::Truncated {
            what: "IPFIX message (its header's length)",
            at: 2,
            need: length,
            have: data.len(),
        });
    }
    let mut r = Reader::at(&data[HEADER_LEN..length], HEADER_LEN);
    cache.domain(exporter, Version::Ipfix, domain)?;
    let mut out = Decoded {
        version: Some(Version::Ipfix),
        domain,
        export_secs: u64::from(secs),
        ..Decoded::default()
    };
    let clock = Clock {
        export_ms: u64::from(secs) * 1000,
        uptime_ms: None,
        init_ms: None,
    };
    let mut records = 0u32;
    let mut counted = true;
    while r.left() > 0 {
        let at = r.offset();
        let id = r.u16("set id")?;
        let len = usize::from(r.u16("set length")?);
        if len < 4 {
            return Err(NetflowError::Malformed {
                what: "set length",
                at: at + 2,
                why: "shorter than its own header",
            });
        }
        let body = Reader::at(r.take(len - 4, "set")?, at + 4);
        match id {
            2 => templates(cache, exporter, domain, body, false, &mut out)?,
            3 => templates(cache, exporter, domain, body, true, &mut out)?,
            0..=255 => {}
            _ => {
                let before = out.flows.len() as u32 + out.options_records;
                let skipped = out.sets_without_template;
                data_set(
                    cache,
                    exporter,
                    Version::Ipfix,
                    domain,
                    id,
                    body,
                    &clock,
                    &mut out,
                )?;
                if out.sets_without_template > skipped {
                    counted = false;
                }
                records =
                    records.wrapping_add(out.flows.len() as u32 + out.options_records - before);
            }
        }
    }
    let d = cache.domain(exporter, Version::Ipfix, domain)?;
    // RFC 7011 numbers a message by the data records sent before it; some
    // exporters (softflowd 1.1) by those sent up to its end. Either reading
    // that explains the number is taken, so neither counts phantom losses.
    let before = sequence_gap(d.expected, sequence);
    let inclusive = d
        .last_seq
        .filter(|_| counted)
        .map(|p| sequence_gap(Some(p.wrapping_add(records)), sequence));
    out.lost = inclusive.map_or(before, |i| i.min(before));
    // Records of an unknown template cannot be counted: the next gap would
    // be a guess, so the stream resynchronises instead.
    d.expected = counted.then(|| sequence.wrapping_add(records));
    d.last_seq = counted.then_some(sequence);
    Ok(out)
}

fn templates(
    cache: &mut Cache,
    exporter: IpAddr,
    domain: u32,
    mut r: Reader<'_>,
    options: bool,
    out: &mut Decoded,
) -> Result<(), NetflowError> {
    while r.left() >= 4 {
        let at = r.offset();
        let id = r.u16("template id")?;
        let n = usize::from(r.u16("template field count")?);
        if n == 0 {
            // Withdrawal (RFC 7011 8.1): the set id itself withdraws all.
            let all = (id == 2 || id == 3).then_some(options);
            if id < 256 && all.is_none() {
                return Err(NetflowError::Malformed {
                    what: "template withdrawal",
                    at,
                    why: "template id below 256",
                });
            }
            out.withdrawn += cache.withdraw(exporter, Version::Ipfix, domain, id, all);
            continue;
        }
        if id < 256 {
            return Err(NetflowError::Malformed {
                what: "template id",
                at,
                why: "below 256",
            });
        }
        let scope = if options {
            usize::from(r.u16("scope field count")?)
        } else {
            0
        };
        if n > cache.max_fields() || scope > n || (options && scope == 0) {
            return Err(NetflowError::Malformed {
                what: "template field count",
                at: at + 2,
                why: "more fields than allowed, or an options template without a scope",
            });
        }
        let mut specs = Vec::with_capacity(n);
        for i in 0..n {
            let raw = r.u16("information element id")?;
            let len = r.u16("field length")?;
            let enterprise = if raw & 0x8000 != 0 {
                r.u32("enterprise number")?
            } else {
                0
            };
            let field = field_of(raw & 0x7fff, enterprise, len);
            let field = match field {
                Field::Src4 | Field::Dst4 | Field::Src6 | Field::Dst6
                    if len == super::templates::VARIABLE =>
                {
                    Field::Other
                }
                f if i < scope && f != Field::SamplerId => Field::Other,
                f => f,
            };
            specs.push(Spec { field, len });
        }
        let t = Template::new(specs, options, at)?;
        match cache.learn(exporter, Version::Ipfix, domain, id, t)? {
            Learned::Kept => out.templates += 1,
            Learned::Refused => out.templates_refused += 1,
        }
    }
    Ok(())
}

/// The records of one data set (v9 and IPFIX): flows, or options that
/// tell the domain's sampling and init time. A set whose template is not
/// known is skipped and counted.
#[allow(clippy::too_many_arguments)]
pub(crate) fn data_set(
    cache: &mut Cache,
    exporter: IpAddr,
    version: Version,
    domain: u32,
    id: u16,
    mut r: Reader<'_>,
    clock: &Clock,
    out: &mut Decoded,
) -> Result<(), NetflowError> {
    let max_samplers = cache.sampler_limit();
    let d = cache.domain(exporter, version, domain)?;
    let Some(t) = d.templates.get(&id) else {
        out.sets_without_template += 1;
        return Ok(());
    };
    if t.options {
        let t = t.clone();
        while r.left() >= t.min_len {
            let v = read_record(&mut r, &t)?;
            d.absorb_options(&v, max_samplers);
            out.options_records += 1;
        }
        return Ok(());
    }
    let d = &*d;
    let clock = Clock {
        init_ms: d.init_ms,
        ..*clock
    };
    // Padding is shorter than a record; anything longer is read.
    while r.left() >= t.min_len {
        let v = read_record(&mut r, t)?;
        if let Some(f) = to_flow(&v, &clock, d.rate_for(&v), domain) {
            out.flows.push(f);
        } else {
            out.options_records += 1;
        }
    }
    Ok(())
}

//! NetFlow v9 (RFC 3954): flowsets of templates (0), options templates (1)
//! and data (256 and up), per exporter and source id. Its sequence number
//! counts datagrams.

use std::net::IpAddr;

use super::templates::{field_of, Cache, Clock, Learned, Spec, Template};
use super::{sequence_gap, Decoded, NetflowError, Reader, Version};

pub const HEADER_LEN: usize = 20;

pub(crate) fn decode(
    cache: &mut Cache,
    exporter: IpAddr,
    data: &[u8],
) -> Result<Decoded, NetflowError> {
    let mut r = Reader::new(data);
    r.u16("version")?;
    let _count = r.u16("record count")?;
    let uptime = r.u32("sysUptime")?;
    let secs = r.u32("unix_secs")?;
    let sequence = r.u32("sequence")?;
    let source = r.u32("source id")?;
    let d = cache.domain(exporter, Version::V9, source)?;
    let lost = sequence_gap(d.expected, sequence);
    d.expected = Some(sequence.wrapping_add(1));
    let mut out = Decoded {
        version: Some(Version::V9),
        domain: source,
        export_secs: u64::from(secs),
        lost,
        ..Decoded::default()
    };
    let clock = Clock {
        export_ms: u64::from(secs) * 1000,
        uptime_ms: Some(u64::from(uptime)),
        init_ms: None,
    };
    while r.left() >= 4 {
        let at = r.offset();
        let id = r.u16("flowset id")?;
        let len = usize::from(r.u16("flowset length")?);
        if len < 4 {
            return Err(NetflowError::Malformed {
                what: "flowset length",
                at: at + 2,
                why: "shorter than its own header",
            });
        }
        let body = Reader::at(r.take(len - 4, "flowset")?, at + 4);
        match id {
            0 => templates(cache, exporter, source, body, &mut out)?,
            1 => options_templates(cache, exporter, source, body, &mut out)?,
            2..=255 => {}
            _ => super::ipfix::data_set(
                cache,
                exporter,
                Version::V9,
                source,
                id,
                body,
                &clock,
                &mut out,
            )?,
        }
    }
    Ok(out)
}

fn spec(r: &mut Reader<'_>) -> Result<Spec, NetflowError> {
    let id = r.u16("field type")?;
    let len = r.u16("field length")?;
    Ok(Spec {
        field: field_of(id, 0, len),
        len,
    })
}

fn templates(
    cache: &mut Cache,
    exporter: IpAddr,
    source: u32,
    mut r: Reader<'_>,
    out: &mut Decoded,
) -> Result<(), NetflowError> {
    // Whatever is shorter than a template header is padding.
    while r.left() >= 4 {
        let at = r.offset();
        let id = r.u16("template id")?;
        let n = usize::from(r.u16("template field count")?);
        if id < 256 {
            return Err(NetflowError::Malformed {
                what: "template id",
                at,
                why: "below 256",
            });
        }
        if n > cache.max_fields() {
            return Err(NetflowError::Malformed {
                what: "template field count",
                at: at + 2,
                why: "more fields than allowed",
            });
        }
        let specs = (0..n)
            .map(|_| spec(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let t = Template::new(specs, false, at)?;
        keep(cache, exporter, source, id, t, out)?;
    }
    Ok(())
}

fn options_templates(
    cache: &mut Cache,
    exporter: IpAddr,
    source: u32,
    mut r: Reader<'_>,
    out: &mut Decoded,
) -> Result<(), NetflowError> {
    while r.left() >= 6 {
        let at = r.offset();
        let id = r.u16("options template id")?;
        let scope_len = usize::from(r.u16("option scope length")?);
        let option_len = usize::from(r.u16("option length")?);
        if id < 256 || scope_len % 4 != 0 || option_len % 4 != 0 {
            return Err(NetflowError::Malformed {
                what: "options template",
                at,
                why: "id below 256 or lengths not a multiple of 4",
            });
        }
        let n = (scope_len + option_len) / 4;
        if n > cache.max_fields() {
            return Err(NetflowError::Malformed {
                what: "options template",
                at,
                why: "more fields than allowed",
            });
        }
        let mut specs = Vec::with_capacity(n);
        for i in 0..n {
            let s = spec(&mut r)?;
            // Scope fields (system, interface…) are not options; reading
            // them as such would take an interface index for a sampler.
            specs.push(
                if i < scope_len / 4 && s.field != super::templates::Field::SamplerId {
                    Spec {
                        field: super::templates::Field::Other,
                        len: s.len,
                    }
                } else {
                    s
                },
            );
        }
        let t = Template::new(specs, true, at)?;
        keep(cache, exporter, source, id, t, out)?;
    }
    Ok(())
}

fn keep(
    cache: &mut Cache,
    exporter: IpAddr,
    source: u32,
    id: u16,
    t: Template,
    out: &mut Decoded,
) -> Result<(), NetflowError> {
    match cache.learn(exporter, Version::V9, source, id, t)? {
        Learned::Kept => out.templates += 1,
        Learned::Refused => out.templates_refused += 1,
    }
    Ok(())
}

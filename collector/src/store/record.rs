//! The stored form of a flow record: one compact BLOB per row.
//!
//! Binding and storing 29 columns costs SQLite about twice as much as a
//! handful (measured: 3.2 µs vs 1.6 µs per row), which alone would cap ingest
//! near the target. So `flows` keeps as columns only what SQL needs (id, flow
//! key, state, last_seen) and the record here.
//!
//! The format belongs to the store, not to the wire protocol: a change to
//! `FlowRecord` adds a format version here, and old rows stay readable.
//!
//! Format 1: version byte, presence bits (u16 LE), then in order: end_reason,
//! scope, site_source? (one byte each), proto, src ip, dst ip, src_port?,
//! dst_port?, vlan?, vlan_inner?, packets_up, bytes_up, packets_down,
//! bytes_down, first_seen, last_seen, tcp_flags_up?, tcp_flags_down? (one byte
//! each), site?, sni?, http_host?, dns_query?, agency, unit. Integers are
//! LEB128 varints, strings and addresses a varint length then the bytes. The
//! site is usually the SNI, Host or DNS name verbatim: such a name is not
//! stored twice, a presence bit says "same as site" (a fifth of a row).

use std::net::IpAddr;

use simpul_proto::{FlowRecord, RecordKind, SiteSource, TrafficScope};

use super::codec::{
    end_reason_code, end_reason_from, ip_from_blob, scope_code, scope_from, site_source_code,
    site_source_from, IpBlob,
};
use super::StoreError;

const FORMAT: u8 = 1;

const SRC_PORT: u16 = 1 << 0;
const DST_PORT: u16 = 1 << 1;
const VLAN: u16 = 1 << 2;
const VLAN_INNER: u16 = 1 << 3;
const FLAGS_UP: u16 = 1 << 4;
const FLAGS_DOWN: u16 = 1 << 5;
const SNI: u16 = 1 << 6;
const HTTP_HOST: u16 = 1 << 7;
const DNS_QUERY: u16 = 1 << 8;
const SITE: u16 = 1 << 9;
const SITE_SOURCE: u16 = 1 << 10;
const SNI_IS_SITE: u16 = 1 << 11;
const HTTP_HOST_IS_SITE: u16 = 1 << 12;
const DNS_QUERY_IS_SITE: u16 = 1 << 13;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Append the stored form of `rec` (attributed to `agency`) to `out`.
pub(crate) fn encode(rec: &FlowRecord, agency: &str, out: &mut Vec<u8>) {
    let mut bits = 0u16;
    let mut set = |present: bool, bit: u16| {
        if present {
            bits |= bit;
        }
    };
    set(rec.src_port.is_some(), SRC_PORT);
    set(rec.dst_port.is_some(), DST_PORT);
    set(rec.vlan.is_some(), VLAN);
    set(rec.vlan_inner.is_some(), VLAN_INNER);
    set(rec.tcp_flags_up.is_some(), FLAGS_UP);
    set(rec.tcp_flags_down.is_some(), FLAGS_DOWN);
    let site = rec.site.as_deref();
    let same = |name: &Option<String>| name.is_some() && name.as_deref() == site;
    let names = [
        (&rec.sni, SNI, SNI_IS_SITE),
        (&rec.http_host, HTTP_HOST, HTTP_HOST_IS_SITE),
        (&rec.dns_query, DNS_QUERY, DNS_QUERY_IS_SITE),
    ];
    for (name, bit, same_bit) in names {
        set(same(name), same_bit);
        set(name.is_some() && !same(name), bit);
    }
    set(site.is_some(), SITE);
    set(rec.site_source.is_some(), SITE_SOURCE);
    out.push(FORMAT);
    out.extend_from_slice(&bits.to_le_bytes());
    out.push(end_reason_code(rec.end_reason));
    out.push(scope_code(rec.scope));
    if let Some(s) = rec.site_source {
        out.push(site_source_code(s));
    }
    put_bytes(out, rec.proto.as_bytes());
    put_bytes(out, IpBlob::new(rec.src_ip).as_slice());
    put_bytes(out, IpBlob::new(rec.dst_ip).as_slice());
    for v in [rec.src_port, rec.dst_port, rec.vlan, rec.vlan_inner]
        .into_iter()
        .flatten()
    {
        put_varint(out, v.into());
    }
    for v in [
        rec.packets_up,
        rec.bytes_up,
        rec.packets_down,
        rec.bytes_down,
        rec.first_seen,
        rec.last_seen,
    ] {
        put_varint(out, v);
    }
    for f in [rec.tcp_flags_up, rec.tcp_flags_down].into_iter().flatten() {
        out.push(f);
    }
    if let Some(site) = site {
        put_bytes(out, site.as_bytes());
    }
    for (name, _, _) in names {
        if let Some(n) = name.as_deref().filter(|_| !same(name)) {
            put_bytes(out, n.as_bytes());
        }
    }
    put_bytes(out, agency.as_bytes());
    put_bytes(out, rec.unit.as_bytes());
}

/// A stored record, borrowing its strings from the row: the fold and the
/// query filters read thousands of rows and need no allocation per row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct View<'a> {
    pub end_reason: u8,
    pub scope: TrafficScope,
    pub site_source: Option<SiteSource>,
    pub proto: &'a str,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub vlan: Option<u16>,
    pub vlan_inner: Option<u16>,
    pub packets_up: u64,
    pub bytes_up: u64,
    pub packets_down: u64,
    pub bytes_down: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    pub tcp_flags_up: Option<u8>,
    pub tcp_flags_down: Option<u8>,
    pub sni: Option<&'a str>,
    pub http_host: Option<&'a str>,
    pub dns_query: Option<&'a str>,
    pub site: Option<&'a str>,
    pub agency: &'a str,
    pub unit: &'a str,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bad(what: &str) -> StoreError {
        StoreError::Corrupt {
            table: "flows",
            detail: format!("record: {what}"),
        }
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| Self::bad("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Self::bad("varint too long"))
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        u16::try_from(self.varint()?).map_err(|_| Self::bad("16-bit field out of range"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = usize::try_from(self.varint()?).map_err(|_| Self::bad("length"))?;
        if n > self.buf.len() {
            return Err(Self::bad("truncated"));
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Self::bad("invalid UTF-8"))
    }
}

pub(crate) fn decode(buf: &[u8]) -> Result<View<'_>, StoreError> {
    let mut r = Reader { buf };
    let format = r.byte()?;
    if format != FORMAT {
        return Err(Reader::bad("unknown format version"));
    }
    let bits = u16::from_le_bytes([r.byte()?, r.byte()?]);
    let has = |bit: u16| bits & bit != 0;
    let end_reason = r.byte()?;
    end_reason_from(end_reason.into())?;
    let scope = scope_from(r.byte()?.into())?;
    let site_source = if has(SITE_SOURCE) {
        Some(site_source_from(r.byte()?.into())?)
    } else {
        None
    };
    let proto = r.str()?;
    let src_ip = ip_from_blob(r.bytes()?, "flows")?;
    let dst_ip = ip_from_blob(r.bytes()?, "flows")?;
    let mut opt16 = |bit: u16| -> Result<Option<u16>, StoreError> {
        if has(bit) {
            r.u16().map(Some)
        } else {
            Ok(None)
        }
    };
    let (src_port, dst_port, vlan, vlan_inner) = (
        opt16(SRC_PORT)?,
        opt16(DST_PORT)?,
        opt16(VLAN)?,
        opt16(VLAN_INNER)?,
    );
    let (packets_up, bytes_up, packets_down, bytes_down) =
        (r.varint()?, r.varint()?, r.varint()?, r.varint()?);
    let (first_seen, last_seen) = (r.varint()?, r.varint()?);
    let tcp_flags_up = if has(FLAGS_UP) { Some(r.byte()?) } else { None };
    let tcp_flags_down = if has(FLAGS_DOWN) {
        Some(r.byte()?)
    } else {
        None
    };
    let site = if has(SITE) { Some(r.str()?) } else { None };
    let mut name = |bit: u16, same_bit: u16| -> Result<Option<&str>, StoreError> {
        if has(same_bit) {
            site.map(Some)
                .ok_or_else(|| Reader::bad("name same as missing site"))
        } else if has(bit) {
            r.str().map(Some)
        } else {
            Ok(None)
        }
    };
    let sni = name(SNI, SNI_IS_SITE)?;
    let http_host = name(HTTP_HOST, HTTP_HOST_IS_SITE)?;
    let dns_query = name(DNS_QUERY, DNS_QUERY_IS_SITE)?;
    let agency = r.str()?;
    let unit = r.str()?;
    Ok(View {
        end_reason,
        scope,
        site_source,
        proto,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        vlan,
        vlan_inner,
        packets_up,
        bytes_up,
        packets_down,
        bytes_down,
        first_seen,
        last_seen,
        tcp_flags_up,
        tcp_flags_down,
        sni,
        http_host,
        dns_query,
        site,
        agency,
        unit,
    })
}

impl View<'_> {
    pub(crate) fn to_record(&self, flow_id: u64, is_final: bool) -> Result<FlowRecord, StoreError> {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Ok(FlowRecord {
            flow_id,
            kind: if is_final {
                RecordKind::Final
            } else {
                RecordKind::Interim
            },
            end_reason: end_reason_from(self.end_reason.into())?,
            proto: self.proto.to_owned(),
            src_ip: self.src_ip,
            src_port: self.src_port,
            dst_ip: self.dst_ip,
            dst_port: self.dst_port,
            vlan: self.vlan,
            vlan_inner: self.vlan_inner,
            packets_up: self.packets_up,
            bytes_up: self.bytes_up,
            packets_down: self.packets_down,
            bytes_down: self.bytes_down,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            tcp_flags_up: self.tcp_flags_up,
            tcp_flags_down: self.tcp_flags_down,
            sni: own(self.sni),
            http_host: own(self.http_host),
            dns_query: own(self.dns_query),
            site: own(self.site),
            site_source: self.site_source,
            agency: self.agency.to_owned(),
            unit: self.unit.to_owned(),
            scope: self.scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::EndReason;

    fn record() -> FlowRecord {
        FlowRecord {
            flow_id: 7,
            kind: RecordKind::Final,
            end_reason: EndReason::Rst,
            proto: "tcp".into(),
            src_ip: "10.1.2.3".parse().unwrap(),
            src_port: Some(51234),
            dst_ip: "2001:db8::1".parse().unwrap(),
            dst_port: Some(443),
            vlan: Some(100),
            vlan_inner: None,
            packets_up: 1,
            bytes_up: u64::MAX,
            packets_down: 0,
            bytes_down: 300,
            first_seen: 1,
            last_seen: u64::MAX,
            tcp_flags_up: Some(0x12),
            tcp_flags_down: None,
            sni: Some("Ünïcode.example".into()),
            http_host: None,
            dns_query: Some("x'); DROP TABLE flows;--".into()),
            site: Some("Ünïcode.example".into()),
            site_source: Some(SiteSource::Sni),
            agency: "dinkes".into(),
            unit: "sekretariat".into(),
            scope: TrafficScope::Internet,
        }
    }

    #[test]
    fn round_trip() {
        let rec = record();
        let mut buf = Vec::new();
        encode(&rec, "dinkes", &mut buf);
        let back = decode(&buf).unwrap().to_record(7, true).unwrap();
        assert_eq!(back, rec);
        let mut bare = rec.clone();
        bare.src_port = None;
        bare.dst_port = None;
        bare.vlan = None;
        bare.tcp_flags_up = None;
        bare.sni = None;
        bare.dns_query = None;
        bare.site = None;
        bare.site_source = None;
        bare.kind = RecordKind::Interim;
        buf.clear();
        encode(&bare, "dinkes", &mut buf);
        assert_eq!(decode(&buf).unwrap().to_record(7, false).unwrap(), bare);
    }

    #[test]
    fn damaged_rows_are_errors() {
        let mut buf = Vec::new();
        encode(&record(), "dinkes", &mut buf);
        for n in 0..buf.len() {
            assert!(decode(&buf[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        let mut bad = buf.clone();
        bad[0] = 99;
        assert!(decode(&bad).is_err());
        assert!(decode(&[1, 0, 0, 0, 0, 0x80, 0x80, 0x80]).is_err());
    }
}

//! Conversions between wire values and stored values. Everything an agent
//! sends is untrusted: conversions saturate or fail with a typed error, never
//! panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use simpul_proto::{BlockMethod, EndReason, SiteSource, TrafficScope};

use super::StoreError;

/// Largest stored counter. Far above any real flow or bucket (9 PB), and low
/// enough that adding two never overflows SQLite's i64, so an agent sending
/// `u64::MAX` cannot make later sums fail.
pub(crate) const MAX_COUNT: i64 = (1 << 53) - 1;

pub(crate) fn count(v: u64) -> i64 {
    v.min(MAX_COUNT as u64) as i64
}

pub(crate) fn add_count(a: i64, b: i64) -> i64 {
    a.saturating_add(b).min(MAX_COUNT)
}

/// A time in Unix ns or s; past year 2262 (i64 ns) is clamped, not wrapped,
/// so ordering stays right.
pub(crate) fn time(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Identifiers (boot epoch, seq, flow id) are compared for equality or in
/// Rust as u64, so a lossless bit-cast is what storage needs.
pub(crate) fn id(v: u64) -> i64 {
    v as i64
}

pub(crate) fn id_back(v: i64) -> u64 {
    v as u64
}

pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

pub(crate) fn nanos(t: SystemTime) -> i64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// RFC 3339 of a stored nanosecond time.
pub(crate) fn rfc_ns(ns: i64) -> String {
    simpul_proto::time_format::rfc3339(u64::try_from(ns).unwrap_or(0))
}

/// RFC 3339 of a stored second (bucket start).
pub(crate) fn rfc_s(s: i64) -> String {
    simpul_proto::time_format::rfc3339(u64::try_from(s).unwrap_or(0).saturating_mul(1_000_000_000))
}

pub(crate) fn floor(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

pub(crate) fn scope_code(s: TrafficScope) -> u8 {
    match s {
        TrafficScope::Internet => 0,
        TrafficScope::Intranet => 1,
    }
}

pub(crate) fn scope_from(c: i64) -> Result<TrafficScope, StoreError> {
    match c {
        0 => Ok(TrafficScope::Internet),
        1 => Ok(TrafficScope::Intranet),
        _ => Err(corrupt("scope", c)),
    }
}

/// Also the rank used to keep the best-named source in `top_sites_1m`.
pub(crate) fn site_source_code(s: SiteSource) -> u8 {
    match s {
        SiteSource::Sni => 0,
        SiteSource::Quic => 1,
        SiteSource::Http => 2,
        SiteSource::Dns => 3,
    }
}

pub(crate) fn site_source_from(c: i64) -> Result<SiteSource, StoreError> {
    match c {
        0 => Ok(SiteSource::Sni),
        1 => Ok(SiteSource::Quic),
        2 => Ok(SiteSource::Http),
        3 => Ok(SiteSource::Dns),
        _ => Err(corrupt("site_source", c)),
    }
}

pub(crate) fn end_reason_code(r: EndReason) -> u8 {
    match r {
        EndReason::Idle => 0,
        EndReason::Fin => 1,
        EndReason::Rst => 2,
        EndReason::Evicted => 3,
        EndReason::Shutdown => 4,
        EndReason::Active => 5,
        EndReason::AgentRestart => 6,
    }
}

pub(crate) fn end_reason_from(c: i64) -> Result<EndReason, StoreError> {
    match c {
        0 => Ok(EndReason::Idle),
        1 => Ok(EndReason::Fin),
        2 => Ok(EndReason::Rst),
        3 => Ok(EndReason::Evicted),
        4 => Ok(EndReason::Shutdown),
        5 => Ok(EndReason::Active),
        6 => Ok(EndReason::AgentRestart),
        _ => Err(corrupt("end_reason", c)),
    }
}

/// `blocked_attempts.method`: the order of [`BlockMethod::ALL`]; a new
/// method gets the next code (stored codes never change meaning).
pub(crate) fn block_method_code(m: BlockMethod) -> u8 {
    match m {
        BlockMethod::Dns => 0,
        BlockMethod::Sni => 1,
        BlockMethod::Quic => 2,
        BlockMethod::Http => 3,
        BlockMethod::Address => 4,
        BlockMethod::Port => 5,
        BlockMethod::Dot => 6,
        BlockMethod::Doh => 7,
        BlockMethod::QuicProtocol => 8,
    }
}

pub(crate) fn block_method_from(c: i64) -> Result<BlockMethod, StoreError> {
    BlockMethod::ALL
        .into_iter()
        .find(|&m| i64::from(block_method_code(m)) == c)
        .ok_or_else(|| StoreError::Corrupt {
            table: "blocked_attempts",
            detail: format!("method code {c}"),
        })
}

fn corrupt(what: &str, c: i64) -> StoreError {
    StoreError::Corrupt {
        table: "flows",
        detail: format!("{what} code {c}"),
    }
}

/// An address as a 4- or 16-byte BLOB, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct IpBlob {
    len: u8,
    buf: [u8; 16],
}

impl IpBlob {
    pub(crate) fn new(ip: IpAddr) -> Self {
        let mut buf = [0; 16];
        match ip {
            IpAddr::V4(a) => {
                buf[..4].copy_from_slice(&a.octets());
                Self { len: 4, buf }
            }
            IpAddr::V6(a) => Self {
                len: 16,
                buf: a.octets(),
            },
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

pub(crate) fn ip_from_blob(b: &[u8], table: &'static str) -> Result<IpAddr, StoreError> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        Ok(IpAddr::V4(Ipv4Addr::from(a)))
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        Ok(IpAddr::V6(Ipv6Addr::from(a)))
    } else {
        Err(StoreError::Corrupt {
            table,
            detail: format!("address of {} bytes", b.len()),
        })
    }
}

/// "Portal.Example.go.id." → "id.go.example.portal.": DNS names compare
/// ASCII-case-insensitively, and with the labels reversed a name and all its
/// subdomains share the prefix "id.go.example." — one index range.
pub(crate) fn site_key(site: &str) -> String {
    let lower = site.trim_end_matches('.').to_ascii_lowercase();
    let mut key = String::with_capacity(lower.len() + 1);
    for label in lower.rsplit('.') {
        key.push_str(label);
        key.push('.');
    }
    key
}

/// The `[lo, hi)` range of site keys matching `site` or any subdomain: every
/// key starting with "id.go.example." sorts before "id.go.example/" ('/' is
/// the byte after '.').
pub(crate) fn site_range(site: &str) -> (String, String) {
    let lo = site_key(site);
    let mut hi = lo.clone();
    hi.pop();
    hi.push('/');
    (lo, hi)
}

/// Which address of a flow is the agency's own. The agent decides this from
/// its subnet map (the initiator, unless only the responder is in an agency
/// subnet) but the record does not carry the decision, so it is inferred: the
/// responder is local only when a public initiator reached a non-public
/// responder (an inbound connection from the internet). Replace with the
/// agent's answer once `FlowRecord` carries it.
pub(crate) fn local_is_src(src: IpAddr, dst: IpAddr) -> bool {
    !is_public(src) || is_public(dst)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT, used on intranets too.
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_codes_round_trip_and_match_serde_names() {
        for r in [
            EndReason::Idle,
            EndReason::Fin,
            EndReason::Rst,
            EndReason::Evicted,
            EndReason::Shutdown,
            EndReason::Active,
        ] {
            assert_eq!(end_reason_from(end_reason_code(r).into()).ok(), Some(r));
        }
        for s in [
            SiteSource::Sni,
            SiteSource::Quic,
            SiteSource::Http,
            SiteSource::Dns,
        ] {
            assert_eq!(site_source_from(site_source_code(s).into()).ok(), Some(s));
        }
        for s in [TrafficScope::Internet, TrafficScope::Intranet] {
            assert_eq!(scope_from(scope_code(s).into()).ok(), Some(s));
        }
        assert!(end_reason_from(99).is_err());
        let mut codes = std::collections::HashSet::new();
        for m in BlockMethod::ALL {
            assert!(codes.insert(block_method_code(m)), "{m:?} shares a code");
            assert_eq!(block_method_from(block_method_code(m).into()).ok(), Some(m));
        }
        assert!(block_method_from(99).is_err());
    }

    #[test]
    fn site_keys_match_subdomains_only() {
        assert_eq!(site_key("Portal.Example.go.id."), "id.go.example.portal.");
        let (lo, hi) = site_range("example.go.id");
        let inside = |s: &str| {
            let k = site_key(s);
            k >= lo && k < hi
        };
        assert!(inside("example.go.id"));
        assert!(inside("a.b.EXAMPLE.go.id"));
        assert!(!inside("foo-example.go.id"));
        assert!(!inside("example.go.id.evil.com"));
        assert!(!inside("go.id"));
    }

    #[test]
    fn local_side() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(local_is_src(ip("10.1.1.1"), ip("8.8.8.8")));
        assert!(!local_is_src(ip("8.8.8.8"), ip("10.1.1.1")));
        assert!(local_is_src(ip("10.1.1.1"), ip("10.2.2.2")));
        assert!(!local_is_src(ip("2001:db8::1"), ip("fd00::1")));
    }

    #[test]
    fn hostile_numbers_saturate() {
        assert_eq!(count(u64::MAX), MAX_COUNT);
        assert_eq!(add_count(MAX_COUNT, MAX_COUNT), MAX_COUNT);
        assert_eq!(time(u64::MAX), i64::MAX);
        assert_eq!(id_back(id(u64::MAX)), u64::MAX);
    }
}

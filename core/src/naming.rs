//! Naming the site a flow reaches: the per-flow DPI state, and the DNS
//! attribution cache that remembers which name a client looked up for an address.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;
use simpul_proto::SiteSource;

use crate::dpi::{http, quic, tls};

/// Bounded (client, address) → name map. Two generations: when the young one
/// fills, the old one is dropped whole, so memory is capped without per-entry
/// bookkeeping and recently used names survive (they are re-inserted on hit).
pub struct DnsCache {
    young: HashMap<(IpAddr, IpAddr), Arc<str>>,
    old: HashMap<(IpAddr, IpAddr), Arc<str>>,
    /// Address → name for clients that did not do the lookup themselves
    /// (a shared resolver, or a lookup before the agent started watching).
    young_any: HashMap<IpAddr, Arc<str>>,
    old_any: HashMap<IpAddr, Arc<str>>,
    half: usize,
}

impl DnsCache {
    pub fn new(entries: usize) -> Self {
        let half = (entries / 2).max(16);
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            young_any: HashMap::new(),
            old_any: HashMap::new(),
            half,
        }
    }

    pub fn insert(&mut self, client: IpAddr, addr: IpAddr, name: Arc<str>) {
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        if self.young_any.len() >= self.half {
            self.old_any = std::mem::take(&mut self.young_any);
        }
        self.young.insert((client, addr), name.clone());
        self.young_any.insert(addr, name);
    }

    /// The name `client` looked up for `addr`, else anyone's name for `addr`.
    pub fn lookup(&mut self, client: IpAddr, addr: IpAddr) -> Option<Arc<str>> {
        self.lookup_whose(client, addr).map(|(n, _)| n)
    }

    /// As [`Self::lookup`], and whether the name is `client`'s own lookup
    /// (false: someone else's name for `addr`).
    pub fn lookup_whose(&mut self, client: IpAddr, addr: IpAddr) -> Option<(Arc<str>, bool)> {
        if let Some(n) = self.young.get(&(client, addr)) {
            return Some((n.clone(), true));
        }
        if let Some(n) = self.old.get(&(client, addr)).cloned() {
            self.insert(client, addr, n.clone());
            return Some((n, true));
        }
        self.young_any
            .get(&addr)
            .or_else(|| self.old_any.get(&addr))
            .map(|n| (n.clone(), false))
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Names learned for one flow.
#[derive(Debug, Default, Clone)]
pub struct FlowNames {
    pub sni: Option<Box<str>>,
    pub quic_sni: Option<Box<str>>,
    pub http_host: Option<Box<str>>,
    pub dns_query: Option<Box<str>>,
    /// From the DNS cache when the flow started.
    pub dns_name: Option<Arc<str>>,
    /// `dns_name` is another client's lookup of the address: a live shard
    /// replaces it with the client's own answer if that comes over late.
    pub dns_anyone: bool,
}

impl FlowNames {
    /// The best name and how it was learned: what the client said in the
    /// connection beats what it looked up before.
    pub fn site(&self) -> Option<(&str, SiteSource)> {
        if let Some(s) = &self.sni {
            return Some((s, SiteSource::Sni));
        }
        if let Some(s) = &self.quic_sni {
            return Some((s, SiteSource::Quic));
        }
        if let Some(s) = &self.http_host {
            return Some((s, SiteSource::Http));
        }
        self.dns_name.as_deref().map(|s| (s, SiteSource::Dns))
    }
}

/// What the stream inspector concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep feeding.
    More,
    /// Stop inspecting this flow.
    Done,
}

/// Client-stream inspection state, alive only until the flow is named.
#[derive(Debug, Default)]
pub struct StreamInspector {
    buf: Vec<u8>,
    next_seq: Option<u32>,
    packets: u32,
    quic: Option<quic::QuicInitialState>,
}

#[derive(Debug, Clone, Copy)]
pub struct InspectLimits {
    pub max_bytes: usize,
    pub max_packets: u32,
}

impl StreamInspector {
    /// Feed a client→server TCP segment. Segments are appended in sequence
    /// order; retransmissions are skipped and a gap ends inspection.
    pub fn feed_tcp(
        &mut self,
        seq: u32,
        payload: &[u8],
        limits: InspectLimits,
        names: &mut FlowNames,
    ) -> Verdict {
        if payload.is_empty() {
            return Verdict::More;
        }
        self.packets += 1;
        match self.next_seq {
            None => {}
            Some(expected) => {
                let delta = seq.wrapping_sub(expected) as i32;
                if delta > 0 {
                    return Verdict::Done; // a segment is missing
                }
                let skip = delta.unsigned_abs() as usize;
                if skip >= payload.len() {
                    return self.budget(limits); // pure retransmission
                }
                return self.append(
                    &payload[skip..],
                    seq.wrapping_add(payload.len() as u32),
                    limits,
                    names,
                );
            }
        }
        self.append(
            payload,
            seq.wrapping_add(payload.len() as u32),
            limits,
            names,
        )
    }

    fn append(
        &mut self,
        data: &[u8],
        next: u32,
        limits: InspectLimits,
        names: &mut FlowNames,
    ) -> Verdict {
        self.next_seq = Some(next);
        let room = limits.max_bytes.saturating_sub(self.buf.len());
        // The common case (whole hello in one segment) needs no copy.
        let stream: &[u8] = if self.buf.is_empty() && data.len() <= room {
            data
        } else {
            self.buf.extend_from_slice(&data[..data.len().min(room)]);
            &self.buf
        };
        match tls::client_hello_sni(stream) {
            tls::TlsSni::Found(n) => {
                names.sni = Some(n.into());
                return Verdict::Done;
            }
            tls::TlsSni::Absent => return Verdict::Done,
            tls::TlsSni::Incomplete => {
                self.keep(data, room);
                return self.budget(limits);
            }
            tls::TlsSni::NotTls => {}
        }
        match http::request_host(stream) {
            http::HttpHost::Found(h) => {
                names.http_host = Some(h.into());
                Verdict::Done
            }
            http::HttpHost::Incomplete => {
                self.keep(data, room);
                self.budget(limits)
            }
            http::HttpHost::Absent | http::HttpHost::NotHttp => Verdict::Done,
        }
    }

    /// Make sure the bytes seen so far are buffered for the next segment.
    fn keep(&mut self, data: &[u8], room: usize) {
        if self.buf.is_empty() {
            self.buf.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    fn budget(&self, limits: InspectLimits) -> Verdict {
        if self.packets >= limits.max_packets || self.buf.len() >= limits.max_bytes {
            Verdict::Done
        } else {
            Verdict::More
        }
    }

    /// Feed a client→server UDP datagram (QUIC Initial).
    pub fn feed_udp(
        &mut self,
        payload: &[u8],
        limits: InspectLimits,
        names: &mut FlowNames,
    ) -> Verdict {
        self.packets += 1;
        let state = self.quic.get_or_insert_with(Default::default);
        match state.feed(payload) {
            quic::QuicSni::Found(n) => {
                names.quic_sni = Some(n.into());
                Verdict::Done
            }
            quic::QuicSni::Incomplete => self.budget(limits),
            quic::QuicSni::Absent | quic::QuicSni::NotQuic => Verdict::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: InspectLimits = InspectLimits {
        max_bytes: 16384,
        max_packets: 12,
    };

    #[test]
    fn http_host_across_segments_with_retransmission() {
        let req = b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: www.example.go.id\r\n\r\n";
        let mut s = StreamInspector::default();
        let mut n = FlowNames::default();
        assert_eq!(s.feed_tcp(100, &req[..20], LIMITS, &mut n), Verdict::More);
        // retransmission of the first segment changes nothing
        assert_eq!(s.feed_tcp(100, &req[..20], LIMITS, &mut n), Verdict::More);
        // overlapping segment
        assert_eq!(s.feed_tcp(110, &req[10..], LIMITS, &mut n), Verdict::Done);
        assert_eq!(n.http_host.as_deref(), Some("www.example.go.id"));
        assert_eq!(n.site().unwrap().1, SiteSource::Http);
    }

    #[test]
    fn gap_stops_inspection() {
        let mut s = StreamInspector::default();
        let mut n = FlowNames::default();
        s.feed_tcp(1, b"GET / HT", LIMITS, &mut n);
        assert_eq!(
            s.feed_tcp(100, b"Host: x\r\n", LIMITS, &mut n),
            Verdict::Done
        );
        assert!(n.http_host.is_none());
    }

    #[test]
    fn dns_cache_prefers_the_client_own_lookup_and_stays_bounded() {
        let mut c = DnsCache::new(64);
        let a: IpAddr = "10.10.1.10".parse().unwrap();
        let b: IpAddr = "10.10.2.10".parse().unwrap();
        let srv: IpAddr = "203.0.113.11".parse().unwrap();
        c.insert(a, srv, "portal.example.go.id".into());
        c.insert(b, srv, "cdn.example.com".into());
        assert_eq!(c.lookup(a, srv).as_deref(), Some("portal.example.go.id"));
        assert_eq!(c.lookup(b, srv).as_deref(), Some("cdn.example.com"));
        let other: IpAddr = "10.10.3.3".parse().unwrap();
        assert!(c.lookup(other, srv).is_some());
        for i in 0..1000u32 {
            c.insert(a, IpAddr::from(i.to_be_bytes()), "x".into());
        }
        assert!(c.len() <= 64);
    }
}

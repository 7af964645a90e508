//! DNS messages → the name a client asked for and the addresses it got back.
//!
//! Only what naming needs: the first question, and every A/AAAA answer reached
//! through the CNAME chain. Parsing is delegated to `simple-dns`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::{rdata::RData, Packet, PacketFlag};

/// What one DNS message says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsMessage {
    pub id: u16,
    pub is_response: bool,
    /// RCODE (0 = NOERROR, 3 = NXDOMAIN).
    pub rcode: u8,
    /// The first question's name, lowercased, without the trailing dot.
    pub query: Option<String>,
    /// Every address in the answer section with its TTL (seconds).
    pub addresses: Vec<(IpAddr, u32)>,
    /// CNAME records in the answer section as (alias, target).
    pub cnames: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("not a DNS message: {0}")]
    Malformed(String),
    #[error("DNS-over-TCP message incomplete")]
    Incomplete,
}

/// Parse a DNS message carried over UDP.
pub fn parse(payload: &[u8]) -> Result<DnsMessage, DnsError> {
    let packet = Packet::parse(payload).map_err(|e| DnsError::Malformed(e.to_string()))?;
    let mut msg = DnsMessage {
        id: packet.id(),
        is_response: packet.has_flags(PacketFlag::RESPONSE),
        rcode: packet.rcode() as u8,
        query: packet
            .questions
            .first()
            .map(|q| normalize(&q.qname.to_string())),
        ..Default::default()
    };
    for rr in &packet.answers {
        match &rr.rdata {
            RData::A(a) => msg
                .addresses
                .push((IpAddr::V4(Ipv4Addr::from(a.address)), rr.ttl)),
            RData::AAAA(a) => msg
                .addresses
                .push((IpAddr::V6(Ipv6Addr::from(a.address)), rr.ttl)),
            RData::CNAME(c) => msg
                .cnames
                .push((normalize(&rr.name.to_string()), normalize(&c.0.to_string()))),
            _ => {}
        }
    }
    Ok(msg)
}

/// Parse the first DNS message of a DNS-over-TCP byte stream (2-byte length prefix).
pub fn parse_tcp(stream: &[u8]) -> Result<DnsMessage, DnsError> {
    let len = match stream {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err(DnsError::Incomplete),
    };
    match stream.get(2..2 + len) {
        Some(msg) => parse(msg),
        None => Err(DnsError::Incomplete),
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{rdata, Name, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};

    fn response() -> Vec<u8> {
        let mut p = Packet::new_reply(0x4242);
        p.questions.push(Question::new(
            Name::new_unchecked("WWW.Portal.example.go.id"),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("www.portal.example.go.id"),
            CLASS::IN,
            60,
            RData::CNAME(rdata::CNAME(Name::new_unchecked(
                "cdn.portal.example.go.id",
            ))),
        ));
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("cdn.portal.example.go.id"),
            CLASS::IN,
            60,
            RData::A(rdata::A {
                address: u32::from(Ipv4Addr::new(203, 0, 113, 11)),
            }),
        ));
        p.build_bytes_vec().unwrap()
    }

    #[test]
    fn answers_follow_the_question() {
        let m = parse(&response()).unwrap();
        assert!(m.is_response);
        assert_eq!(m.query.as_deref(), Some("www.portal.example.go.id"));
        assert_eq!(
            m.addresses,
            vec![(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)), 60)]
        );
        assert_eq!(m.cnames.len(), 1);
    }

    #[test]
    fn tcp_framing() {
        let body = response();
        let mut s = (body.len() as u16).to_be_bytes().to_vec();
        s.extend_from_slice(&body);
        assert!(parse_tcp(&s).is_ok());
        assert_eq!(parse_tcp(&s[..10]), Err(DnsError::Incomplete));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"\x00\x01garbage").is_err());
        for n in 0..response().len() {
            let _ = parse(&response()[..n]);
        }
    }
}

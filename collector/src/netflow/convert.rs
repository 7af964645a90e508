//! Exported flows → the agent's records: counts scaled by the sampling
//! rate, the local side's agency and unit from the inventory's subnets,
//! the remote side's scope (intranet or internet).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use simpul_core::cidr::parse_cidr;
use simpul_core::netflow::NfFlow;
use simpul_proto::{
    proto_name, EndReason, FlowRecord, Inventory, RecordKind, TrafficScope, UNKNOWN,
};

/// Every agency's unit subnets in one sorted table, and the intranet.
#[derive(Debug, Default)]
pub struct Attribution {
    pub version: u64,
    v4: Vec<(u32, u32, u32)>,
    v6: Vec<(u128, u128, u32)>,
    /// (agency, unit) per label index.
    labels: Vec<(String, String)>,
    intranet: Vec<IpNetwork>,
}

impl Attribution {
    pub fn new(inv: &Inventory) -> Attribution {
        let mut a = Attribution {
            version: inv.version,
            intranet: inv
                .intranet
                .iter()
                .filter_map(|s| parse_cidr(s).ok())
                .collect(),
            ..Attribution::default()
        };
        for agency in &inv.agencies {
            for unit in &agency.units {
                let id = a.labels.len() as u32;
                a.labels.push((agency.code.clone(), unit.code.clone()));
                for net in unit.subnets.iter().filter_map(|s| parse_cidr(s).ok()) {
                    match net {
                        IpNetwork::V4(n) => {
                            a.v4.push((u32::from(n.network()), u32::from(n.broadcast()), id))
                        }
                        IpNetwork::V6(n) => {
                            let start = u128::from(n.network());
                            let host = 128 - u32::from(n.prefix());
                            let end = if host == 128 {
                                u128::MAX
                            } else {
                                start | ((1u128 << host) - 1)
                            };
                            a.v6.push((start, end, id));
                        }
                    }
                }
            }
        }
        a.v4.sort_unstable();
        a.v6.sort_unstable();
        a
    }

    /// The (agency, unit) an address belongs to.
    pub fn unit_of(&self, ip: IpAddr) -> Option<(&str, &str)> {
        fn find<T: Ord + Copy>(r: &[(T, T, u32)], ip: T) -> Option<u32> {
            let i = r.partition_point(|(s, _, _)| *s <= ip).checked_sub(1)?;
            r.get(i).filter(|(_, e, _)| ip <= *e).map(|(_, _, id)| *id)
        }
        let id = match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }?;
        self.labels
            .get(id as usize)
            .map(|(a, u)| (a.as_str(), u.as_str()))
    }

    fn scope_of(&self, remote: IpAddr) -> TrafficScope {
        if self.unit_of(remote).is_some() || self.intranet.iter().any(|n| n.contains(remote)) {
            TrafficScope::Intranet
        } else {
            TrafficScope::Internet
        }
    }

    /// Agency, unit and scope of a flow. With `agency` fixed (the exporter
    /// map) the local side is the one in that agency's subnets; otherwise
    /// the first side in any agency's.
    pub fn attribute(
        &self,
        src: IpAddr,
        dst: IpAddr,
        agency: Option<&str>,
    ) -> (String, String, TrafficScope) {
        let (s, d) = (self.unit_of(src), self.unit_of(dst));
        let ok = |u: &(&str, &str)| agency.is_none_or(|f| f == u.0);
        let (local, remote) = match (s.filter(ok), d.filter(ok)) {
            (Some(u), _) => (Some(u), dst),
            (None, Some(u)) => (Some(u), src),
            (None, None) => (None, dst),
        };
        let scope = self.scope_of(remote);
        match (local, agency) {
            (Some((a, u)), _) => (a.to_string(), u.to_string(), scope),
            (None, Some(a)) => (a.to_string(), UNKNOWN.to_string(), scope),
            (None, None) => (UNKNOWN.to_string(), UNKNOWN.to_string(), scope),
        }
    }
}

/// A record's RFC 7012 flowEndReason as the agent's.
fn end_reason(r: u8) -> EndReason {
    match r {
        2 => EndReason::Active,
        3 => EndReason::Fin,
        4 => EndReason::Shutdown,
        5 => EndReason::Evicted,
        _ => EndReason::Idle,
    }
}

/// The agent's record of one exported flow: counts times the sampling
/// interval (one packet in N was counted, so N stand for it).
pub fn to_record(
    f: &NfFlow,
    flow_id: u64,
    agency: String,
    unit: String,
    scope: TrafficScope,
) -> FlowRecord {
    let n = u64::from(f.sampling.max(1));
    let ports = matches!(f.proto, 6 | 17 | 132);
    let ns = |ms: u64| ms.saturating_mul(1_000_000);
    FlowRecord {
        flow_id,
        kind: RecordKind::Final,
        end_reason: end_reason(f.end_reason),
        proto: proto_name(f.proto),
        src_ip: f.src,
        src_port: ports.then_some(f.src_port),
        dst_ip: f.dst,
        dst_port: ports.then_some(f.dst_port),
        vlan: f.vlan.filter(|v| *v != 0),
        vlan_inner: None,
        packets_up: f.packets.saturating_mul(n),
        bytes_up: f.bytes.saturating_mul(n),
        packets_down: f.rev_packets.saturating_mul(n),
        bytes_down: f.rev_bytes.saturating_mul(n),
        first_seen: ns(f.start_ms),
        last_seen: ns(f.end_ms),
        tcp_flags_up: (f.proto == 6).then_some(f.tcp_flags),
        tcp_flags_down: None,
        sni: None,
        http_host: None,
        dns_query: None,
        site: None,
        site_source: None,
        agency,
        unit,
        scope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        toml::from_str(
            r#"
intranet = ["10.99.0.0/16"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "sekretariat"
subnets = ["10.10.1.0/24", "fd00:10::/64"]
[[agencies]]
code = "bappeda"
[[agencies.units]]
code = "umum"
subnets = ["10.20.0.0/16"]
"#,
        )
        .expect("inventory")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn local_side_agency_unit_and_scope() {
        let a = Attribution::new(&inv());
        let t = |s, d, f| a.attribute(ip(s), ip(d), f);
        assert_eq!(
            t("10.10.1.5", "8.8.8.8", None),
            (
                "dinkes".into(),
                "sekretariat".into(),
                TrafficScope::Internet
            )
        );
        assert_eq!(
            t("8.8.8.8", "10.20.3.4", None),
            ("bappeda".into(), "umum".into(), TrafficScope::Internet)
        );
        assert_eq!(t("10.10.1.5", "10.99.1.1", None).2, TrafficScope::Intranet);
        // Fixed agency: the side in its subnets is local, whichever it is.
        assert_eq!(
            t("10.20.3.4", "10.10.1.5", Some("dinkes")),
            (
                "dinkes".into(),
                "sekretariat".into(),
                TrafficScope::Intranet
            )
        );
        assert_eq!(
            t("1.1.1.1", "8.8.8.8", Some("dinkes")),
            ("dinkes".into(), UNKNOWN.into(), TrafficScope::Internet)
        );
        assert_eq!(t("1.1.1.1", "8.8.8.8", None).0, UNKNOWN);
        assert_eq!(t("fd00:10::9", "2001:db8::1", None).1, "sekretariat");
    }

    #[test]
    fn sampled_counts_are_scaled() {
        let f = NfFlow {
            src: ip("10.10.1.5"),
            dst: ip("8.8.8.8"),
            src_port: 5353,
            dst_port: 53,
            proto: 17,
            tcp_flags: 0,
            bytes: 100,
            packets: 2,
            rev_bytes: 7,
            rev_packets: 1,
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_001_000,
            vlan: None,
            input_if: 1,
            output_if: 2,
            end_reason: 3,
            sampling: 64,
            domain: 0,
        };
        let r = to_record(&f, 9, "dinkes".into(), "x".into(), TrafficScope::Internet);
        assert_eq!(
            (r.bytes_up, r.packets_up, r.bytes_down, r.packets_down),
            (6400, 128, 448, 64)
        );
        assert_eq!(
            (r.proto.as_str(), r.dst_port, r.end_reason),
            ("udp", Some(53), EndReason::Fin)
        );
        assert_eq!(r.first_seen, 1_700_000_000_000_000_000);
    }
}

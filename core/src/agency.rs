//! Address → agency/unit attribution and the internet/intranet split.
//!
//! Unit subnets never overlap (inventory validation refuses it), so each
//! family is a sorted list of disjoint ranges searched by binary search.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use simpul_proto::{TrafficScope, UNKNOWN};

use crate::inventory::NodeView;

/// Index of an (agency, unit) pair in [`AgencyMap::labels`]; 0 is "unknown".
pub type UnitId = u32;
pub const UNKNOWN_UNIT: UnitId = 0;

#[derive(Debug, Clone)]
pub struct UnitLabel {
    pub agency: String,
    pub unit: String,
}

#[derive(Debug, Clone)]
pub struct AgencyMap {
    v4: Vec<(u32, u32, UnitId)>,
    v6: Vec<(u128, u128, UnitId)>,
    intranet: Vec<IpNetwork>,
    labels: Vec<UnitLabel>,
}

impl AgencyMap {
    /// Nothing known: every address is "unknown", every remote internet
    /// (a node that has no inventory yet).
    pub fn empty() -> Self {
        Self::build(None, Vec::new())
    }

    /// Attribution to the node's agency and units; the intranet is the
    /// view's (which includes every other agency's subnets).
    pub fn new(view: &NodeView) -> Self {
        Self::build(Some(view), view.intranet.clone())
    }

    fn build(view: Option<&NodeView>, intranet: Vec<IpNetwork>) -> Self {
        let mut labels = vec![UnitLabel {
            agency: UNKNOWN.into(),
            unit: UNKNOWN.into(),
        }];
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for unit in view.iter().flat_map(|v| v.agency.units.iter()) {
            if unit.subnets.is_empty() {
                continue;
            }
            labels.push(UnitLabel {
                agency: view.map_or_else(String::new, |v| v.agency.code.clone()),
                unit: unit.code.clone(),
            });
            let id = (labels.len() - 1) as UnitId;
            for net in &unit.subnets {
                match net {
                    IpNetwork::V4(n) => {
                        let start = u32::from(n.network());
                        let end = u32::from(n.broadcast());
                        v4.push((start, end, id));
                    }
                    IpNetwork::V6(n) => {
                        let start = u128::from(n.network());
                        let host_bits = 128 - u32::from(n.prefix());
                        let end = if host_bits == 128 {
                            u128::MAX
                        } else {
                            start | ((1u128 << host_bits) - 1)
                        };
                        v6.push((start, end, id));
                    }
                }
            }
        }
        v4.sort_unstable();
        v6.sort_unstable();
        Self {
            v4,
            v6,
            intranet,
            labels,
        }
    }

    /// The unit an address belongs to, or [`UNKNOWN_UNIT`].
    pub fn unit_of(&self, ip: IpAddr) -> UnitId {
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }
    }

    pub fn label(&self, id: UnitId) -> &UnitLabel {
        self.labels.get(id as usize).unwrap_or(&self.labels[0])
    }

    pub fn labels(&self) -> &[UnitLabel] {
        &self.labels
    }

    /// Where the remote end of a conversation lives: any agency subnet or a
    /// configured intranet CIDR is intranet, everything else internet.
    pub fn scope_of(&self, remote: IpAddr) -> TrafficScope {
        if self.unit_of(remote) != UNKNOWN_UNIT || self.intranet.iter().any(|n| n.contains(remote))
        {
            TrafficScope::Intranet
        } else {
            TrafficScope::Internet
        }
    }
}

fn find<T: Ord + Copy>(ranges: &[(T, T, UnitId)], ip: T) -> UnitId {
    let idx = ranges.partition_point(|(start, _, _)| *start <= ip);
    match idx.checked_sub(1).and_then(|i| ranges.get(i)) {
        Some((_, end, id)) if ip <= *end => *id,
        _ => UNKNOWN_UNIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_proto::Inventory;

    fn map() -> AgencyMap {
        let inv = Inventory::parse(
            r#"
intranet = ["10.99.0.0/16"]
[[agencies]]
code = "diskominfo"
[[agencies.units]]
code = "sekretariat"
subnets = ["10.10.1.0/24", "fd00:10:10:1::/64"]
[[agencies.units]]
code = "bidang-it"
subnets = ["10.10.2.0/24"]
[[nodes]]
id = "n"
agency = "diskominfo"
"#,
        )
        .unwrap();
        AgencyMap::new(&NodeView::from_inventory(&inv, "n").unwrap())
    }

    #[test]
    fn longest_and_only_match() {
        let m = map();
        let u = m.unit_of("10.10.2.200".parse().unwrap());
        assert_eq!(m.label(u).unit, "bidang-it");
        let u = m.unit_of("fd00:10:10:1::10".parse().unwrap());
        assert_eq!(m.label(u).unit, "sekretariat");
        assert_eq!(m.unit_of("10.10.3.1".parse().unwrap()), UNKNOWN_UNIT);
        assert_eq!(m.unit_of("10.10.0.255".parse().unwrap()), UNKNOWN_UNIT);
        assert_eq!(m.label(UNKNOWN_UNIT).agency, "unknown");
    }

    #[test]
    fn scopes() {
        let m = map();
        assert_eq!(
            m.scope_of("10.99.0.10".parse().unwrap()),
            TrafficScope::Intranet
        );
        assert_eq!(
            m.scope_of("10.10.2.3".parse().unwrap()),
            TrafficScope::Intranet
        );
        assert_eq!(
            m.scope_of("203.0.113.10".parse().unwrap()),
            TrafficScope::Internet
        );
    }
}

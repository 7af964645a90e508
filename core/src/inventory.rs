//! The inventory checked, and the slice of it one node works with.
//!
//! [`validate`] reports every problem with its place (the collector refuses
//! an inventory file with problems; so does a standalone agent).
//! [`NodeView`] is what a node attributes and enforces with: its agency with
//! parsed subnets, the intranet (the configured ranges plus every other
//! agency's subnets: all of them are the government network), and its
//! uplink. [`for_node`] is the part of the inventory the collector sends a
//! node — no other agency's names or units.

use std::collections::HashSet;

use ipnetwork::IpNetwork;
use simpul_proto::inventory::{Agency, Capacity, Inventory};
use simpul_proto::{valid_code, Problem};

use crate::cidr::{overlaps, parse_cidr};

/// Severities of a node's outages, most severe first.
pub const SEVERITIES: [&str; 4] = ["critical", "major", "minor", "info"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitView {
    pub code: String,
    pub name: String,
    pub subnets: Vec<IpNetwork>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyView {
    pub code: String,
    pub name: String,
    pub units: Vec<UnitView>,
}

impl AgencyView {
    /// An agency of a valid inventory (CIDRs that do not parse are skipped:
    /// [`validate`] has reported them).
    pub fn from_agency(a: &Agency) -> AgencyView {
        AgencyView {
            code: a.code.clone(),
            name: a.display_name().to_string(),
            units: a
                .units
                .iter()
                .map(|u| UnitView {
                    code: u.code.clone(),
                    name: if u.name.is_empty() {
                        u.code.clone()
                    } else {
                        u.name.clone()
                    },
                    subnets: u
                        .subnets
                        .iter()
                        .filter_map(|s| parse_cidr(s).ok())
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn unit(&self, code: &str) -> Option<&UnitView> {
        self.units.iter().find(|u| u.code == code)
    }

    pub fn unit_codes(&self) -> Vec<&str> {
        self.units.iter().map(|u| u.code.as_str()).collect()
    }
}

/// What one node attributes and enforces with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub inventory_version: u64,
    pub node: String,
    pub agency: AgencyView,
    /// Never capped, blocked nor suspended.
    pub intranet: Vec<IpNetwork>,
    /// The node's own uplink (an allocation may not exceed it).
    pub uplink: Option<Capacity>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("the inventory has {}", simpul_proto::problem::describe(.0))]
    Invalid(Vec<Problem>),
    #[error("node {node:?} is not in the inventory (its nodes: {known})")]
    UnknownNode { node: String, known: String },
}

impl NodeView {
    /// The view of `node` in a valid inventory.
    pub fn from_inventory(inv: &Inventory, node: &str) -> Result<NodeView, InventoryError> {
        validate(inv).map_err(InventoryError::Invalid)?;
        let n = inv.node(node).ok_or_else(|| InventoryError::UnknownNode {
            node: node.to_string(),
            known: if inv.nodes.is_empty() {
                "none".into()
            } else {
                inv.nodes
                    .iter()
                    .map(|n| n.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
        // validate() checked that the node's agency exists.
        let agency = inv
            .agency(&n.agency)
            .map(AgencyView::from_agency)
            .unwrap_or_else(|| AgencyView {
                code: n.agency.clone(),
                name: n.agency.clone(),
                units: Vec::new(),
            });
        let mut intranet: Vec<IpNetwork> = inv
            .intranet
            .iter()
            .filter_map(|s| parse_cidr(s).ok())
            .collect();
        for other in inv.agencies.iter().filter(|a| a.code != n.agency) {
            for u in &other.units {
                intranet.extend(u.subnets.iter().filter_map(|s| parse_cidr(s).ok()));
            }
        }
        Ok(NodeView {
            inventory_version: inv.version,
            node: node.to_string(),
            agency,
            intranet,
            uplink: n.uplink,
        })
    }
}

/// The smallest uplink among `agency`'s nodes: its allocation must fit on
/// every one of them (None when no node of it names an uplink).
pub fn agency_uplink(inv: &Inventory, agency: &str) -> Option<Capacity> {
    inv.nodes
        .iter()
        .filter(|n| n.agency == agency)
        .filter_map(|n| n.uplink)
        .reduce(|a, b| Capacity {
            down_bps: a.down_bps.min(b.down_bps),
            up_bps: a.up_bps.min(b.up_bps),
        })
}

/// The part of `inv` that `node` is sent: its own node and agency, and the
/// intranet with every other agency's subnets folded in (they are intranet
/// to this node; their names and units are not its business). None when
/// the node is not in the inventory.
pub fn for_node(inv: &Inventory, node: &str) -> Option<Inventory> {
    let n = inv.node(node)?;
    let mut intranet = inv.intranet.clone();
    for other in inv.agencies.iter().filter(|a| a.code != n.agency) {
        for u in &other.units {
            intranet.extend(u.subnets.iter().cloned());
        }
    }
    Some(Inventory {
        version: inv.version,
        intranet,
        uplink: None,
        agencies: inv.agency(&n.agency).cloned().into_iter().collect(),
        // Its parent is the collector's business (outage grouping).
        nodes: vec![simpul_proto::inventory::Node {
            parent: None,
            ..n.clone()
        }],
    })
}

/// Check an inventory; every problem with its place.
pub fn validate(inv: &Inventory) -> Result<(), Vec<Problem>> {
    let mut out = Vec::new();
    let mut nets: Vec<(IpNetwork, String)> = Vec::new();
    for (i, s) in inv.intranet.iter().enumerate() {
        if let Err(m) = parse_cidr(s) {
            out.push(Problem::new(format!("intranet[{i}]"), m));
        }
    }
    if let Some(u) = inv.uplink {
        check_capacity("uplink", u, &mut out);
    }
    let mut agencies = HashSet::new();
    for (ai, a) in inv.agencies.iter().enumerate() {
        let aloc = format!("agencies[{ai}] ({})", a.code);
        if !valid_code(&a.code) {
            out.push(Problem::new(
                format!("agencies[{ai}].code"),
                format!(
                    "{:?} is not a valid code (1-64 letters, digits, '-', '_')",
                    a.code
                ),
            ));
        } else if !agencies.insert(a.code.as_str()) {
            out.push(Problem::new(&aloc, "duplicate agency code"));
        }
        let mut units = HashSet::new();
        for (ui, u) in a.units.iter().enumerate() {
            let uloc = format!("{aloc}.units[{ui}] ({})", u.code);
            if !valid_code(&u.code) {
                out.push(Problem::new(
                    &uloc,
                    "invalid unit code (1-64 letters, digits, '-', '_')",
                ));
            } else if !units.insert(u.code.as_str()) {
                out.push(Problem::new(&uloc, "duplicate unit code in this agency"));
            }
            for (si, s) in u.subnets.iter().enumerate() {
                let sloc = format!("{uloc}.subnets[{si}]");
                match parse_cidr(s) {
                    Err(m) => out.push(Problem::new(sloc, m)),
                    Ok(net) => {
                        if let Some((other, oloc)) = nets.iter().find(|(o, _)| overlaps(o, &net)) {
                            out.push(Problem::new(
                                &sloc,
                                format!("{net} overlaps {other} at {oloc}"),
                            ));
                        }
                        nets.push((net, sloc));
                    }
                }
            }
        }
    }
    let mut nodes = HashSet::new();
    for (ni, n) in inv.nodes.iter().enumerate() {
        let loc = format!("nodes[{ni}] ({})", n.id);
        if !valid_code(&n.id) {
            out.push(Problem::new(
                format!("nodes[{ni}].id"),
                format!(
                    "{:?} is not a valid node id (1-64 letters, digits, '-', '_')",
                    n.id
                ),
            ));
        } else if !nodes.insert(n.id.as_str()) {
            out.push(Problem::new(&loc, "duplicate node id"));
        }
        if inv.agency(&n.agency).is_none() {
            out.push(Problem::new(
                format!("{loc}.agency"),
                format!("{:?} is not an agency of the inventory", n.agency),
            ));
        }
        if let Some(u) = n.uplink {
            check_capacity(&format!("{loc}.uplink"), u, &mut out);
        }
        if let Some(c) = &n.criticality {
            if !SEVERITIES.contains(&c.as_str()) {
                out.push(Problem::new(
                    format!("{loc}.criticality"),
                    format!("{c:?} is not one of {}", SEVERITIES.join(", ")),
                ));
            }
        }
        if let Some(p) = &n.parent {
            if p == &n.id {
                out.push(Problem::new(
                    format!("{loc}.parent"),
                    "a node cannot be its own parent",
                ));
            } else if inv.node(p).is_none() {
                out.push(Problem::new(
                    format!("{loc}.parent"),
                    format!("{p:?} is not a node of the inventory"),
                ));
            }
        }
    }
    // A parent chain must end: follow each at most len hops.
    for (ni, n) in inv.nodes.iter().enumerate() {
        let mut cur = n.parent.as_deref();
        let mut hops = 0;
        while let Some(p) = cur {
            hops += 1;
            if p == n.id || hops > inv.nodes.len() {
                if p != n.id || hops > 1 {
                    out.push(Problem::new(
                        format!("nodes[{ni}] ({}).parent", n.id),
                        "parents form a cycle",
                    ));
                }
                break;
            }
            cur = inv.node(p).and_then(|x| x.parent.as_deref());
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

/// The view of `node` in an inventory written as TOML (tests and benches).
#[doc(hidden)]
pub fn view_of(inventory_toml: &str, node: &str) -> NodeView {
    let inv = Inventory::parse(inventory_toml).unwrap_or_else(|e| panic!("test inventory: {e}"));
    NodeView::from_inventory(&inv, node).unwrap_or_else(|e| panic!("test inventory: {e}"))
}

fn check_capacity(place: &str, c: Capacity, out: &mut Vec<Problem>) {
    if c.down_bps == 0 || c.up_bps == 0 {
        out.push(Problem::new(
            place,
            "down_bps and up_bps must be at least 1",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = r#"
intranet = ["10.99.0.0/16"]
[[agencies]]
code = "dinkes"
[[agencies.units]]
code = "a"
subnets = ["10.1.0.0/24", "fd00:1::/64"]
[[agencies.units]]
code = "b"
subnets = ["10.1.1.0/24"]
[[agencies]]
code = "bappeda"
[[agencies.units]]
code = "x"
subnets = ["10.2.0.0/24"]
[[nodes]]
id = "hub"
agency = "dinkes"
criticality = "critical"
[[nodes]]
id = "dinkes-01"
agency = "dinkes"
parent = "hub"
uplink = { down_bps = 100000000, up_bps = 50000000 }
"#;

    fn inv(text: &str) -> Inventory {
        Inventory::parse(text).unwrap()
    }

    #[test]
    fn a_node_sees_its_agency_and_the_intranet() {
        let v = NodeView::from_inventory(&inv(INV), "dinkes-01").unwrap();
        assert_eq!(v.agency.code, "dinkes");
        assert_eq!(v.agency.unit_codes(), ["a", "b"]);
        let intranet: Vec<String> = v.intranet.iter().map(|n| n.to_string()).collect();
        assert_eq!(intranet, ["10.99.0.0/16", "10.2.0.0/24"]);
        assert_eq!(v.uplink.map(|u| u.down_bps), Some(100_000_000));
        let e = NodeView::from_inventory(&inv(INV), "nope").unwrap_err();
        assert!(e.to_string().contains("hub, dinkes-01"), "{e}");
        let slice = for_node(&inv(INV), "dinkes-01").unwrap();
        assert_eq!(slice.agencies.len(), 1);
        assert_eq!(slice.nodes.len(), 1);
        assert!(slice.intranet.contains(&"10.2.0.0/24".to_string()));
        assert_eq!(
            NodeView::from_inventory(&slice, "dinkes-01")
                .unwrap()
                .intranet,
            v.intranet
        );
    }

    #[test]
    fn every_problem_is_placed() {
        let text = format!(
            "{INV}\n[[agencies]]\ncode = \"bad code\"\n[[agencies]]\ncode = \"dinkes\"\n[[agencies.units]]\ncode = \"y\"\nsubnets = [\"10.1.0.128/25\", \"10.3.0.1/24\"]\n[[nodes]]\nid = \"n2\"\nagency = \"nobody\"\nparent = \"n3\"\ncriticality = \"urgent\"\n[[nodes]]\nid = \"n3\"\nagency = \"dinkes\"\nparent = \"n2\"\n"
        );
        let e: Vec<String> = validate(&inv(&text))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        for want in [
            "agencies[2].code: \"bad code\" is not a valid code",
            "agencies[3] (dinkes): duplicate agency code",
            "agencies[3] (dinkes).units[0] (y).subnets[0]: 10.1.0.128/25 overlaps 10.1.0.0/24 at agencies[0] (dinkes).units[0] (a).subnets[0]",
            "agencies[3] (dinkes).units[0] (y).subnets[1]: \"10.3.0.1/24\" has host bits set",
            "nodes[2] (n2).agency: \"nobody\" is not an agency",
            "nodes[2] (n2).criticality: \"urgent\" is not one of",
            "nodes[2] (n2).parent: parents form a cycle",
            "nodes[3] (n3).parent: parents form a cycle",
        ] {
            assert!(e.iter().any(|p| p.starts_with(want)), "{want} not in {e:#?}");
        }
        assert_eq!(e.len(), 8, "{e:#?}");
    }
}

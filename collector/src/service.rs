//! The service layer between the HTTP handlers and storage: it puts the
//! flow store's traffic together with the inventory, the policies in force
//! and the registry, so no handler knows SQL or which store answers.
//! Blocking: call it from `spawn_blocking` ([`crate::api::read`]).

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::state::AppState;
use crate::store::{
    AgencyInfo, AgencyUsage, FlowReader, NodeInfo, NodeStatus, Overview, StoreError, UnitInfo,
    Uplink,
};

fn bps(bytes: u64, secs: u64) -> u64 {
    bytes.saturating_mul(8) / secs.max(1)
}

fn at(now: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(now)
}

/// The allocation of `agency` in force at `now` (0 without a policy).
pub fn allocation(s: &AppState, agency: &str, now: SystemTime) -> (u64, u64) {
    s.policies
        .allocation_at(agency, at(now))
        .map_or((0, 0), |(d, u)| (d.rate_bps, u.rate_bps))
}

/// Every enrolled node, with its policy state.
pub fn nodes(s: &AppState, now: SystemTime) -> Result<Vec<NodeInfo>, StoreError> {
    let timeout = Duration::from_secs(s.config.nodes.down_after_secs);
    let mut nodes = s.control.nodes(now, timeout)?;
    // The SQLite registry counts drops itself when the flows are in its
    // file too (the streams beside the nodes); otherwise the flow store
    // has them (a PostgreSQL registry, or flows on ClickHouse).
    let dropped = if s.control.backend() == "sqlite" && s.flows.kind() == "sqlite" {
        Default::default()
    } else {
        s.flows.reader()?.dropped_records()?
    };
    let inv = s.inventory.current();
    let live = s.nodes.snapshot();
    for n in &mut nodes {
        if let Some(&d) = dropped.get(&n.node_id) {
            n.dropped_records = d;
        }
        if let Some(l) = live.get(&n.node_id) {
            n.refused_records = l.refused_records;
        }
        // The inventory decides which agency a node speaks for.
        if let Some(entry) = inv.node(&n.node_id) {
            n.agency = entry.agency.clone();
        }
        let in_force = n
            .health
            .as_ref()
            .and_then(|h| h.get("policy_version"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        n.policy = Some(policy_of(s, &n.node_id, &n.agency, in_force));
    }
    Ok(nodes)
}

/// A node's policy: the version in force there, pending, rejected or failed.
fn policy_of(s: &AppState, node: &str, agency: &str, in_force: u64) -> crate::store::NodePolicy {
    let latest = s.policies.latest(agency).map(|p| p.policy.version);
    crate::store::NodePolicy::from_state(latest, s.policies.state(node), in_force)
}

/// The agencies of the inventory with their units, nodes and allocation in
/// force now.
pub fn agencies(s: &AppState, now: SystemTime) -> Result<Vec<AgencyInfo>, StoreError> {
    let inv = s.inventory.current();
    let nodes = s
        .control
        .nodes(now, Duration::from_secs(s.config.nodes.down_after_secs))?;
    let mut out: Vec<AgencyInfo> = inv
        .agencies
        .iter()
        .map(|a| {
            let (down, up) = allocation(s, &a.code, now);
            let mut node_ids: Vec<String> = inv
                .nodes
                .iter()
                .filter(|n| n.agency == a.code)
                .map(|n| n.id.clone())
                .chain(
                    nodes
                        .iter()
                        .filter(|n| n.agency == a.code)
                        .map(|n| n.node_id.clone()),
                )
                .collect();
            node_ids.sort();
            node_ids.dedup();
            AgencyInfo {
                code: a.code.clone(),
                name: a.display_name().to_string(),
                alloc_down_bps: down,
                alloc_up_bps: up,
                units: a
                    .units
                    .iter()
                    .map(|u| UnitInfo {
                        code: u.code.clone(),
                        name: if u.name.is_empty() {
                            u.code.clone()
                        } else {
                            u.name.clone()
                        },
                    })
                    .collect(),
                nodes: node_ids,
            }
        })
        .collect();
    out.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(out)
}

/// The NOC wall: rates over the `window_secs` whole seconds before `end`,
/// against the allocations in force; nodes; the last 15 minutes' top sites
/// and agencies.
pub fn overview(
    s: &AppState,
    reader: &dyn FlowReader,
    end: SystemTime,
    window_secs: u32,
) -> Result<Overview, StoreError> {
    let w = u64::from(window_secs.max(1));
    let traffic = reader.traffic(end, window_secs)?;
    let nodes = nodes(s, end)?;
    let inv = s.inventory.current();
    let mut agencies = Vec::new();
    let (mut up_in, mut up_out) = (0u64, 0u64);
    for t in traffic.agencies.values() {
        up_in = up_in.saturating_add(t[0]);
        up_out = up_out.saturating_add(t[1]);
    }
    for a in &inv.agencies {
        let t = traffic.agencies.get(&a.code).copied().unwrap_or_default();
        let (down, up) = allocation(s, &a.code, end);
        let mine = nodes.iter().filter(|n| n.agency == a.code);
        agencies.push(AgencyUsage {
            code: a.code.clone(),
            name: a.display_name().to_string(),
            alloc_down_bps: down,
            alloc_up_bps: up,
            in_bps: bps(t[0].saturating_add(t[2]), w),
            out_bps: bps(t[1].saturating_add(t[3]), w),
            internet_in_bps: bps(t[0], w),
            internet_out_bps: bps(t[1], w),
            intranet_in_bps: bps(t[2], w),
            intranet_out_bps: bps(t[3], w),
            nodes_up: mine.clone().filter(|n| n.status == NodeStatus::Up).count() as u32,
            nodes_total: mine.count() as u32,
        });
    }
    agencies.sort_by(|a, b| a.code.cmp(&b.code));
    let uplink = inv.uplink.unwrap_or(simpul_proto::inventory::Capacity {
        down_bps: 0,
        up_bps: 0,
    });
    Ok(Overview {
        ts: simpul_proto::time_format::rfc3339(
            u64::try_from(at(end).unix_timestamp_nanos()).unwrap_or(0),
        ),
        window_secs: window_secs.max(1),
        uplink: Uplink {
            capacity_down_bps: uplink.down_bps,
            capacity_up_bps: uplink.up_bps,
            in_bps: bps(up_in, w),
            out_bps: bps(up_out, w),
        },
        agencies,
        nodes,
        top_sites: traffic.top_sites,
        top_agencies: traffic.top_agencies,
    })
}

/// The overview as an agency officer may see it: its agency, its nodes,
/// its own top sites (`own_sites`, the last 15 minutes), and the uplink
/// figures of its own traffic only (the network's total would tell the
/// other agencies' traffic).
pub fn scope_overview(ov: &mut Overview, agency: &str, own_sites: Vec<crate::store::OverviewSite>) {
    ov.agencies.retain(|a| a.code == agency);
    ov.nodes.retain(|n| n.agency == agency);
    ov.top_agencies.retain(|a| a.code == agency);
    ov.top_sites = own_sites;
    let (i, o) = ov
        .agencies
        .first()
        .map_or((0, 0), |a| (a.internet_in_bps, a.internet_out_bps));
    ov.uplink.in_bps = i;
    ov.uplink.out_bps = o;
}

/// The top sites of one agency over the 15 minutes before `end`, in the
/// overview's shape.
pub fn agency_sites(
    reader: &dyn FlowReader,
    agency: &str,
    end: SystemTime,
) -> Result<Vec<crate::store::OverviewSite>, StoreError> {
    let to = end
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(reader
        .top_sites(Some(agency), to.saturating_sub(15 * 60), to, 10)?
        .into_iter()
        .map(|t| crate::store::OverviewSite {
            site: t.site,
            bytes: t.bytes,
            flows: t.flows,
        })
        .collect())
}

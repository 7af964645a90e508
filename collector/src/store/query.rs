//! Read-side queries. The structs serialize to exactly the JSON of
//! `collector/API.md`; times are RFC 3339 strings, volumes bytes, rates bps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use simpul_proto::{FlowRecord, SiteSource};

use super::codec::{floor, ip_from_blob, nanos, rfc_ns, rfc_s, secs, site_source_from, time};
use super::traits::Traffic;
use super::{Reader, StoreError, USAGE_1M_RETENTION_SECS, USAGE_1S_RETENTION_SECS};

/// The distinct agencies of a usage table, by jumping from one to the next in
/// the primary key (a "skip scan"): a handful of index seeks instead of a
/// scan of every row. `{table}` is replaced by the table name.
pub(crate) const AGENCIES_IN_USAGE: &str = "WITH RECURSIVE ag(a) AS (
        SELECT (SELECT min(agency) FROM {table})
        UNION ALL
        SELECT (SELECT min(agency) FROM {table} WHERE agency > ag.a) FROM ag
        WHERE ag.a IS NOT NULL)
    SELECT a FROM ag WHERE a IS NOT NULL";

/// Same walk, as a CTE named `ag(a)` to join usage rows against.
fn agencies_cte(table: &str) -> String {
    format!(
        "WITH RECURSIVE ag(a) AS (
            SELECT (SELECT min(agency) FROM {table})
            UNION ALL
            SELECT (SELECT min(agency) FROM {table} WHERE agency > ag.a) FROM ag
            WHERE ag.a IS NOT NULL)"
    )
}

/// How many sites and which minutes the overview's "last 15 minutes" covers:
/// the current minute and the 14 before it.
const OVERVIEW_TOP_SITES: i64 = 10;
const OVERVIEW_MINUTES: i64 = 15;
/// Flows API page limit (API.md: max 1000).
pub(crate) const MAX_FLOWS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Up,
    Down,
    Never,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub agency: String,
    pub hostname: Option<String>,
    pub address: Option<String>,
    pub agent_version: Option<String>,
    pub status: NodeStatus,
    pub last_seen: Option<String>,
    pub enrolled_at: String,
    pub revoked: bool,
    /// The last `proto::wire::Health` exactly as the agent reported it.
    pub health: Option<serde_json::Value>,
    /// The outage detector's view: up, down, unreachable, flapping or
    /// unknown (not heard from since the collector started). Filled in by
    /// the API; `status` follows it when the detector knows the node.
    #[serde(default)]
    pub liveness: Option<String>,
    /// The node's policy: filled in by the service layer.
    #[serde(default)]
    pub policy: Option<NodePolicy>,
    /// Records the agent reported it had to drop (its spool quota, corrupt
    /// files), over every boot the collector still keeps.
    #[serde(default)]
    pub dropped_records: u64,
    /// Records the collector refused from it since it connected (dated in
    /// the future or before retention, impossible rates).
    #[serde(default)]
    pub refused_records: u64,
}

/// Where a node stands with its agency's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePolicy {
    /// The version in force on the node (its last heartbeat; 0: none).
    pub version: u64,
    /// applied: the newest version is in force; pending: not yet reported;
    /// rejected: refused before anything changed (problems say why);
    /// failed: the kernel refused it (error says why; the previous one
    /// stays); none: the agency has no policy at the collector.
    pub state: String,
    /// The newest version while it is not in force on the node.
    pub pending_version: Option<u64>,
    pub error: Option<String>,
    pub problems: Vec<simpul_proto::Problem>,
    /// When the node reported its last state.
    pub reported_at: Option<String>,
    /// When the node said it applied the version in force (None when its
    /// last report is about another version or not `applied`).
    pub applied_at: Option<String>,
}

impl NodePolicy {
    /// From the newest version at the collector, the node's last report and
    /// the version its last heartbeat said is in force.
    pub fn from_state(
        latest: Option<u64>,
        report: Option<super::NodePolicyState>,
        in_force: u64,
    ) -> NodePolicy {
        let reported_at = report.as_ref().map(|r| {
            rfc_ns(
                i64::try_from(r.at_ms)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000),
            )
        });
        // The agent reports `applied` the moment it applied; its heartbeat
        // carries the version in force only later: the report wins.
        let in_force = match &report {
            Some(r) if r.state == simpul_proto::wire::PolicyOutcome::Applied => {
                in_force.max(r.version)
            }
            _ => in_force,
        };
        let applied_at = report
            .as_ref()
            .filter(|r| {
                r.version == in_force && r.state == simpul_proto::wire::PolicyOutcome::Applied
            })
            .and(reported_at.clone());
        let (state, pending, error, problems) = match (latest, report) {
            (None, _) => ("none", None, None, Vec::new()),
            (Some(l), Some(r)) if r.version == l => (
                r.state.name(),
                (r.state != simpul_proto::wire::PolicyOutcome::Applied).then_some(l),
                r.error,
                r.problems,
            ),
            (Some(l), _) if in_force == l => ("applied", None, None, Vec::new()),
            (Some(l), _) => ("pending", Some(l), None, Vec::new()),
        };
        NodePolicy {
            version: in_force,
            state: state.to_string(),
            pending_version: pending,
            error,
            problems,
            reported_at,
            applied_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInfo {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyInfo {
    pub code: String,
    pub name: String,
    pub alloc_down_bps: u64,
    pub alloc_up_bps: u64,
    pub units: Vec<UnitInfo>,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uplink {
    pub capacity_down_bps: u64,
    pub capacity_up_bps: u64,
    /// Internet scope only: the central uplink carries internet traffic.
    pub in_bps: u64,
    pub out_bps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyUsage {
    pub code: String,
    pub name: String,
    pub alloc_down_bps: u64,
    pub alloc_up_bps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
    pub internet_in_bps: u64,
    pub internet_out_bps: u64,
    pub intranet_in_bps: u64,
    pub intranet_out_bps: u64,
    pub nodes_up: u32,
    pub nodes_total: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewSite {
    pub site: String,
    pub bytes: u64,
    pub flows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopAgency {
    pub code: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub ts: String,
    pub window_secs: u32,
    pub uplink: Uplink,
    pub agencies: Vec<AgencyUsage>,
    pub nodes: Vec<NodeInfo>,
    pub top_sites: Vec<OverviewSite>,
    pub top_agencies: Vec<TopAgency>,
}

/// Resolution of a usage series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    #[serde(rename = "1s")]
    Second,
    #[serde(rename = "1m")]
    Minute,
    #[serde(rename = "1h")]
    Hour,
}

impl Step {
    pub fn secs(self) -> u64 {
        match self {
            Step::Second => 1,
            Step::Minute => 60,
            Step::Hour => 3600,
        }
    }

    pub(crate) fn table(self) -> &'static str {
        match self {
            Step::Second => "usage_1s",
            Step::Minute => "usage_1m",
            Step::Hour => "usage_1h",
        }
    }

    /// "1s", "1m", "1h" as in the API's `step` parameter.
    pub fn parse(s: &str) -> Option<Step> {
        match s {
            "1s" => Some(Step::Second),
            "1m" => Some(Step::Minute),
            "1h" => Some(Step::Hour),
            _ => None,
        }
    }

    /// The API default: the finest step giving at most 1500 points whose
    /// table still holds `from` (per-second rows live an hour, minutes 30
    /// days).
    pub fn auto(from: u64, to: u64, now: SystemTime) -> Step {
        let span = to.saturating_sub(from);
        let now = secs(now);
        if span <= 1500 && from >= now.saturating_sub(USAGE_1S_RETENTION_SECS) {
            Step::Second
        } else if span <= 1500 * 60 && from >= now.saturating_sub(USAGE_1M_RETENTION_SECS) {
            Step::Minute
        } else {
            Step::Hour
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsagePoint {
    pub ts: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub in_bps: f64,
    pub out_bps: f64,
    pub internet_bytes_in: u64,
    pub internet_bytes_out: u64,
    /// The step's highest one-second rate, bps (None: stored before peaks
    /// were kept).
    pub peak_in_bps: Option<u64>,
    pub peak_out_bps: Option<u64>,
    /// The 95th percentile of the step's one-second rates (idle seconds are
    /// zeros), bps, within 1 %.
    pub p95_in_bps: Option<u64>,
    pub p95_out_bps: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSeries {
    pub agency: String,
    pub step_secs: u64,
    /// The requested range widened to whole steps; the totals are exact over it.
    pub from: String,
    pub to: String,
    pub points: Vec<UsagePoint>,
    pub total_bytes_in: u64,
    pub total_bytes_out: u64,
    /// The range's peak and p95 (see `peaks.rs`).
    #[serde(flatten)]
    pub peaks: super::RangePeaks,
    /// Each step's sketches, for [`UsageSeries::seconds_above`]; not sent.
    #[serde(skip)]
    pub sketches: Vec<super::StepSketch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopHost {
    pub host: String,
    pub agency: String,
    pub unit: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub flows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopSite {
    pub site: String,
    pub bytes: u64,
    pub flows: u64,
    /// The best source any of its flows named it by (sni > quic > http > dns).
    pub site_source: Option<SiteSource>,
}

/// `GET /api/v1/flows` parameters; `from`/`to` are Unix seconds and select
/// flows by their last packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFilter {
    pub from: u64,
    pub to: u64,
    pub agency: Option<String>,
    /// Either address of the flow.
    pub host: Option<IpAddr>,
    /// The site or any subdomain of it (ASCII case-insensitive).
    pub site: Option<String>,
    /// At most 1000; 0 means the API default of 100.
    pub limit: usize,
    /// Either address of the flow in this network.
    pub net: Option<super::Net>,
    /// The remote side (not the agency's host) in this network.
    pub peer: Option<super::Net>,
    pub unit: Option<String>,
    /// "tcp", "udp", "icmp", … (ASCII case-insensitive).
    pub proto: Option<String>,
    pub sort: super::FlowSort,
    /// Rows after this one in `sort` order (the previous page's end).
    pub cursor: Option<super::FlowCursor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRow {
    pub node_id: String,
    #[serde(flatten)]
    pub record: FlowRecord,
}

/// One second of one agency for the live feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub ts: String,
    pub in_bps: u64,
    pub out_bps: u64,
}

/// Sums from `total()` are floats (it never fails on overflow, unlike
/// `sum()`); they are exact for every value below 2^53, which stored counters
/// are.
pub(crate) fn u(v: f64) -> u64 {
    v as u64
}

pub(crate) fn nodes_on(
    conn: &Connection,
    now: SystemTime,
    timeout: Duration,
) -> Result<Vec<NodeInfo>, StoreError> {
    let now_ns = nanos(now);
    let timeout_ns = i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
    let mut st = conn.prepare_cached(
        "SELECT n.node_id, n.agency, n.hostname, n.address, n.agent_version, n.last_seen,
                n.enrolled_at, n.revoked, n.last_health_json,
                (SELECT total(s.dropped_records) FROM streams s WHERE s.node_id = n.node_id)
         FROM nodes n ORDER BY n.agency, n.node_id",
    )?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let last_seen: Option<i64> = r.get(5)?;
        let revoked: bool = r.get(7)?;
        let status = match last_seen {
            _ if revoked => NodeStatus::Revoked,
            None => NodeStatus::Never,
            Some(t) if now_ns.saturating_sub(t) <= timeout_ns => NodeStatus::Up,
            Some(_) => NodeStatus::Down,
        };
        let health: Option<String> = r.get(8)?;
        let health = match health {
            Some(h) => Some(serde_json::from_str(&h).map_err(|e| StoreError::Corrupt {
                table: "nodes",
                detail: format!("health JSON: {e}"),
            })?),
            None => None,
        };
        out.push(NodeInfo {
            node_id: r.get(0)?,
            agency: r.get(1)?,
            hostname: r.get(2)?,
            address: r.get(3)?,
            agent_version: r.get(4)?,
            status,
            last_seen: last_seen.map(rfc_ns),
            enrolled_at: rfc_ns(r.get(6)?),
            revoked,
            health,
            liveness: None,
            policy: None,
            dropped_records: r.get::<_, f64>(9)? as u64,
            refused_records: 0,
        });
    }
    Ok(out)
}

impl Reader {
    /// Bytes per agency and scope over the `window_secs` whole seconds
    /// before `now`, and the top sites and agencies of the last 15 minutes.
    pub fn traffic(&self, now: SystemTime, window_secs: u32) -> Result<Traffic, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let w = u64::from(window_secs.max(1));
        let end = time(secs(now));
        let start = end.saturating_sub(time(w));
        // agency → [internet in, internet out, intranet in, intranet out].
        let mut agencies: HashMap<String, [u64; 4]> = HashMap::new();
        {
            let mut st = tx.prepare_cached(&format!(
                "{} SELECT u.agency, u.scope, total(u.bytes_in), total(u.bytes_out)
                 FROM ag CROSS JOIN usage_1s u
                 WHERE ag.a IS NOT NULL AND u.agency = ag.a AND u.ts >= ?1 AND u.ts < ?2
                 GROUP BY u.agency, u.scope",
                agencies_cte("usage_1s")
            ))?;
            let mut rows = st.query(params![start, end])?;
            while let Some(r) = rows.next()? {
                let agency: String = r.get(0)?;
                let scope: i64 = r.get(1)?;
                let (bi, bo) = (u(r.get(2)?), u(r.get(3)?));
                let t = agencies.entry(agency).or_default();
                let at = if scope == 0 { 0 } else { 2 };
                t[at] = t[at].saturating_add(bi);
                t[at + 1] = t[at + 1].saturating_add(bo);
            }
        }
        let first_minute = floor(end, 60) - (OVERVIEW_MINUTES - 1) * 60;
        let top_sites = {
            let mut st = tx.prepare_cached(
                "SELECT site, total(bytes) AS b, total(flows) FROM top_sites_1m
                 WHERE minute >= ?1 AND minute <= ?2
                 GROUP BY site ORDER BY b DESC, site LIMIT ?3",
            )?;
            let rows = st.query_map(params![first_minute, end, OVERVIEW_TOP_SITES], |r| {
                Ok(OverviewSite {
                    site: r.get(0)?,
                    bytes: u(r.get(1)?),
                    flows: u(r.get(2)?),
                })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let top_agencies = {
            let mut st = tx.prepare_cached(&format!(
                "{} SELECT u.agency, total(u.bytes_in) + total(u.bytes_out) AS b
                 FROM ag CROSS JOIN usage_1m u
                 WHERE ag.a IS NOT NULL AND u.agency = ag.a AND u.ts >= ?1 AND u.ts <= ?2
                 GROUP BY u.agency ORDER BY b DESC, u.agency",
                agencies_cte("usage_1m")
            ))?;
            let rows = st.query_map(params![first_minute, end], |r| {
                Ok(TopAgency {
                    code: r.get(0)?,
                    bytes: u(r.get(1)?),
                })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        Ok(Traffic {
            agencies,
            top_sites,
            top_agencies,
        })
    }

    /// One agency's traffic (all units) over [from, to) (Unix seconds),
    /// widened to whole steps. Steps without traffic are omitted; the totals
    /// are the exact sums of the stored counters over the range.
    pub fn usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<UsageSeries, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let s = time(step.secs());
        let from = floor(time(from), s);
        let to = floor(time(to).saturating_add(s - 1), s).max(from);
        // sum() is exact and cannot overflow here: a bucket has one row per
        // unit and scope, each below 2^53.
        let mut st = tx.prepare_cached(&format!(
            "SELECT ts, sum(bytes_in), sum(bytes_out),
                    sum(CASE WHEN scope = 0 THEN bytes_in ELSE 0 END),
                    sum(CASE WHEN scope = 0 THEN bytes_out ELSE 0 END)
             FROM {} WHERE agency = ?1 AND ts >= ?2 AND ts < ?3
             GROUP BY ts HAVING sum(bytes_in) + sum(bytes_out) > 0 ORDER BY ts LIMIT {}",
            step.table(),
            super::MAX_USAGE_STEPS + 1
        ))?;
        let mut rows = st.query(params![agency, from, to])?;
        let (mut total_in, mut total_out) = (0u64, 0u64);
        let mut points = Vec::new();
        let mut point_ts = Vec::new();
        let c = |v: i64| u64::try_from(v).unwrap_or(0);
        while let Some(r) = rows.next()? {
            let (bytes_in, bytes_out) = (c(r.get(1)?), c(r.get(2)?));
            total_in = total_in.saturating_add(bytes_in);
            total_out = total_out.saturating_add(bytes_out);
            point_ts.push(r.get(0)?);
            points.push(UsagePoint {
                ts: rfc_s(r.get(0)?),
                bytes_in,
                bytes_out,
                in_bps: bytes_in as f64 * 8.0 / s as f64,
                out_bps: bytes_out as f64 * 8.0 / s as f64,
                internet_bytes_in: c(r.get(3)?),
                internet_bytes_out: c(r.get(4)?),
                peak_in_bps: None,
                peak_out_bps: None,
                p95_in_bps: None,
                p95_out_bps: None,
            });
        }
        drop(rows);
        super::peaks::check_points(points.len())?;
        let steps = super::peaks::read_steps(&tx, agency, from, to, s)?;
        let now = time(secs(SystemTime::now())) + 1;
        let (peaks, sketches) =
            super::peaks::apply(&mut points, &point_ts, steps, (from, to, s), now);
        Ok(UsageSeries {
            agency: agency.to_owned(),
            step_secs: step.secs(),
            from: rfc_s(from),
            to: rfc_s(to),
            points,
            total_bytes_in: total_in,
            total_bytes_out: total_out,
            peaks,
            sketches,
        })
    }

    /// Agency-side hosts by bytes over the minutes overlapping [from, to).
    pub fn top_hosts(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT host, agency, unit, total(bytes_up) AS up, total(bytes_down) AS down,
                    total(flows)
             FROM top_hosts_1m
             WHERE minute >= ?1 AND minute < ?2 AND (?3 IS NULL OR agency = ?3)
             GROUP BY agency, unit, host ORDER BY up + down DESC, host LIMIT ?4",
        )?;
        let mut rows = st.query(params![
            floor(time(from), 60),
            time(to),
            agency,
            limit.min(MAX_FLOWS) as i64
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let host: Vec<u8> = r.get(0)?;
            out.push(TopHost {
                host: ip_from_blob(&host, "top_hosts_1m")?.to_string(),
                agency: r.get(1)?,
                unit: r.get(2)?,
                bytes_up: u(r.get(3)?),
                bytes_down: u(r.get(4)?),
                flows: u(r.get(5)?),
            });
        }
        Ok(out)
    }

    /// Sites by bytes over the minutes overlapping [from, to).
    pub fn top_sites(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopSite>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT site, total(bytes) AS b, total(flows), min(site_source)
             FROM top_sites_1m
             WHERE minute >= ?1 AND minute < ?2 AND (?3 IS NULL OR agency = ?3)
             GROUP BY site ORDER BY b DESC, site LIMIT ?4",
        )?;
        let mut rows = st.query(params![
            floor(time(from), 60),
            time(to),
            agency,
            limit.min(MAX_FLOWS) as i64
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(TopSite {
                site: r.get(0)?,
                bytes: u(r.get(1)?),
                flows: u(r.get(2)?),
                site_source: r
                    .get::<_, Option<i64>>(3)?
                    .map(site_source_from)
                    .transpose()?,
            });
        }
        Ok(out)
    }

    /// Per-second rates of every agency from `since_sec` (Unix seconds) on,
    /// for the live feed's snapshot. Per-second rows are kept one hour.
    pub fn usage_series_since(
        &self,
        since_sec: u64,
    ) -> Result<HashMap<String, Vec<SeriesPoint>>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "{} SELECT u.agency, u.ts, sum(u.bytes_in), sum(u.bytes_out)
             FROM ag CROSS JOIN usage_1s u
             WHERE ag.a IS NOT NULL AND u.agency = ag.a AND u.ts >= ?1
             GROUP BY u.agency, u.ts ORDER BY u.agency, u.ts",
            agencies_cte("usage_1s")
        ))?;
        let mut rows = st.query([time(since_sec)])?;
        let mut out: HashMap<String, Vec<SeriesPoint>> = HashMap::new();
        let c = |v: i64| u64::try_from(v).unwrap_or(0);
        while let Some(r) = rows.next()? {
            let agency: String = r.get(0)?;
            out.entry(agency).or_default().push(SeriesPoint {
                ts: rfc_s(r.get(1)?),
                in_bps: c(r.get(2)?).saturating_mul(8),
                out_bps: c(r.get(3)?).saturating_mul(8),
            });
        }
        Ok(out)
    }
}

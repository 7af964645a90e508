//! `/api/v1/incidents`, `/api/v1/availability`, `/api/v1/maintenance`.
//!
//! Reads open their own connection; writes (acknowledgements, maintenance
//! windows) go through the outage monitor, the incidents' single writer.

use std::collections::BTreeMap;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{bad, not_found, optional_code, row_limit, time_range, ApiError, Body, Q};
use crate::auth::{audit, event, forbidden, Principal, Role};
use crate::outage::monitor::MaintenanceChange;
use crate::state::{now_ms, AppState};
use crate::store::{Incident, IncidentFilter, IncidentStore, Maintenance, NodeSpan, StoreError};

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn with_incidents<T, F>(s: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&IncidentStore) -> Result<T, StoreError> + Send + 'static,
{
    let store = s.control.clone();
    tokio::task::spawn_blocking(move || {
        let st = store.incidents()?;
        f(&st)
    })
    .await
    .map_err(internal)?
    .map_err(internal)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub node: Option<String>,
    /// `true`: open incidents only.
    pub open: Option<bool>,
    pub limit: Option<usize>,
}

/// Incidents, unacknowledged open ones first, then newest (default: those
/// touching the last 7 days, 100 rows).
pub async fn incidents(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<IncidentQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 7 * 86_400)?;
    let filter = IncidentFilter {
        node_id: optional_code("node", q.node.as_ref())?,
        agency: p.scope(optional_code("agency", q.agency.as_ref())?)?,
        open_only: q.open.unwrap_or(false),
        from_ms: Some(from * 1000),
        to_ms: Some(to * 1000),
        limit: row_limit(q.limit, 100, 10_000)?,
    };
    Ok(Json(with_incidents(&s, move |st| st.list(&filter)).await?))
}

/// Acknowledge under the caller's own name (the session's or token's,
/// never one from the request).
pub async fn ack(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("incident id {id:?} is not a number")))?;
    let by = p.display_name.clone();
    match s.outage.ack(id, &by).await.map_err(internal)? {
        Some(inc) => {
            audit(
                &s,
                event(
                    &p,
                    "incident.ack",
                    &id.to_string(),
                    json!({"node": inc.node_id, "acked_by": inc.acked_by}),
                ),
            )
            .await;
            Ok(Json(inc))
        }
        None => Err(not_found(format!("no incident {id}"))),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub node: Option<String>,
    /// `csv` for a spreadsheet.
    pub format: Option<String>,
}

/// The longest range availability is computed over, and how far ahead its
/// end may lie: a year (of 366 days). Every node reads its incidents over
/// the range, so the work stays bounded.
pub const MAX_AVAILABILITY_SECS: u64 = 366 * 86_400;

/// Columns of availability in CSV: the JSON's fields, in its order.
pub const AVAILABILITY_COLUMNS: &[&str] = &[
    "node_id",
    "agency",
    "from_ms",
    "to_ms",
    "down_ms",
    "unreachable_ms",
    "maintenance_ms",
    "unmonitored_ms",
    "availability_pct",
    "incidents",
    "never_seen",
];

/// `from`/`to` of an availability question: as every range of the API
/// (RFC 3339 or Unix seconds, from before to), at most a year long and
/// ending at most a year ahead (a calendar month not over yet is fine).
pub(crate) fn availability_range(
    from: Option<&str>,
    to: Option<&str>,
    now_secs: u64,
) -> Result<(u64, u64), ApiError> {
    let (from, to) = time_range(from, to, 86_400)?;
    if to > now_secs.saturating_add(MAX_AVAILABILITY_SECS) {
        return Err(bad("to: more than a year ahead"));
    }
    if to - from > MAX_AVAILABILITY_SECS {
        return Err(bad(format!(
            "from: {} days before to; a range spans at most 366 days (a year)",
            (to - from).div_ceil(86_400)
        )));
    }
    Ok((from, to))
}

/// Availability per node over the period (default: the last 24 hours;
/// `format=csv` for a spreadsheet named after the range).
pub async fn availability(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<AvailabilityQuery>,
) -> Result<Response, ApiError> {
    let as_csv = crate::csv::wanted(q.format.as_deref())?;
    let (from, to) =
        availability_range(q.from.as_deref(), q.to.as_deref(), crate::state::now_secs())?;
    let agency = p.scope(optional_code("agency", q.agency.as_ref())?)?;
    let node = optional_code("node", q.node.as_ref())?;
    let mut list = crate::api::read(&s, |s, _| {
        crate::service::nodes(s, std::time::SystemTime::now())
    })
    .await?;
    list.retain(|n| agency.as_ref().is_none_or(|a| &n.agency == a));
    list.retain(|n| node.as_ref().is_none_or(|x| &n.node_id == x));
    let nodes = node_spans(&list);
    let now = now_ms();
    let name = crate::csv::range_name(
        &[
            "availability",
            agency.as_deref().unwrap_or_default(),
            node.as_deref().unwrap_or_default(),
        ],
        from,
        to,
    );
    let rows = with_incidents(&s, move |st| {
        st.availability(&nodes, from * 1000, to * 1000, now)
    })
    .await?;
    if as_csv {
        let t = crate::csv::table(&rows, AVAILABILITY_COLUMNS);
        return Ok(crate::csv::response(&name, t));
    }
    Ok(Json(rows).into_response())
}

/// The enrolled, unrevoked nodes of `nodes` as availability asks for them:
/// from their enrollment, and whether they ever connected.
pub(crate) fn node_spans(nodes: &[crate::store::NodeInfo]) -> Vec<NodeSpan> {
    nodes
        .iter()
        .filter(|n| !n.revoked)
        .map(|n| NodeSpan {
            node_id: n.node_id.clone(),
            agency: n.agency.clone(),
            enrolled_ms: simpul_proto::time_format::parse_rfc3339(&n.enrolled_at)
                .map_or(0, |ns| ns / 1_000_000),
            seen: n.last_seen.is_some(),
        })
        .collect()
}

/// `/api/v1/incidents/stats` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub node: Option<String>,
}

/// Time to acknowledge and to resolve, by severity.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct SeverityStats {
    pub incidents: u32,
    pub acknowledged: u32,
    pub resolved: u32,
    pub mean_ack_secs: Option<f64>,
    pub max_ack_secs: Option<f64>,
    pub mean_resolve_secs: Option<f64>,
    pub max_resolve_secs: Option<f64>,
}

pub async fn stats(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<StatsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 30 * 86_400)?;
    let filter = IncidentFilter {
        node_id: optional_code("node", q.node.as_ref())?,
        agency: p.scope(optional_code("agency", q.agency.as_ref())?)?,
        from_ms: Some(from * 1000),
        to_ms: Some(to * 1000),
        limit: 100_000,
        ..Default::default()
    };
    let list = with_incidents(&s, move |st| st.list(&filter)).await?;
    Ok(Json(severity_stats(&list)))
}

/// Time to acknowledge (from detection) and to resolve (from the start),
/// per severity; unreachable spells and incidents in maintenance are not
/// counted (nobody was alerted, nothing was the node's fault).
pub fn severity_stats(list: &[Incident]) -> BTreeMap<String, SeverityStats> {
    let mut by: BTreeMap<String, (SeverityStats, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for inc in list
        .iter()
        .filter(|i| i.kind != "unreachable" && !i.maintenance)
    {
        let e = by.entry(inc.severity.clone()).or_default();
        e.0.incidents += 1;
        if let Some(a) = inc.acked_ms {
            e.0.acknowledged += 1;
            e.1.push(a.saturating_sub(inc.detected_ms) as f64 / 1000.0);
        }
        if let Some(r) = inc.resolved_ms {
            e.0.resolved += 1;
            e.2.push(r.saturating_sub(inc.started_ms) as f64 / 1000.0);
        }
    }
    by.into_iter()
        .map(|(sev, (mut st, acks, res))| {
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            let max = |v: &[f64]| {
                v.iter()
                    .cloned()
                    .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
            };
            st.mean_ack_secs = mean(&acks);
            st.max_ack_secs = max(&acks);
            st.mean_resolve_secs = mean(&res);
            st.max_resolve_secs = max(&res);
            (sev, st)
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    pub node: Option<String>,
    pub agency: Option<String>,
    /// RFC 3339 or Unix seconds (a string or a number).
    pub from: TimeArg,
    pub to: TimeArg,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    Secs(u64),
    Text(String),
}

impl TimeArg {
    fn text(&self) -> String {
        match self {
            TimeArg::Secs(s) => s.to_string(),
            TimeArg::Text(t) => t.clone(),
        }
    }
}

/// A window may be planned at most this far ahead, and last at most this long.
const MAX_AHEAD_MS: u64 = 366 * 86_400_000;
/// Windows not yet ended, at most (a forgotten script must not silence the NOC).
const MAX_OPEN_WINDOWS: u64 = 1000;
/// A start this close to now counts as "now" (clocks, typing).
const NOW_SLACK_MS: u64 = 60_000;

fn reason_ok(reason: &str) -> Result<String, ApiError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(bad("reason: say why (1-200 characters)"));
    }
    simpul_proto::problem::check_free_text(r, 200).map_err(|e| bad(format!("reason: {e}")))?;
    Ok(r.to_string())
}

/// Times of a window: in order, not too long, not too far ahead, not over;
/// a start in the past only for an admin. Returns whether it is retroactive.
fn check_times(p: &Principal, from_ms: u64, to_ms: u64, now: u64) -> Result<bool, ApiError> {
    if to_ms <= from_ms {
        return Err(bad("to must be after from"));
    }
    if to_ms <= now {
        return Err(bad("to is in the past: a window must not have ended"));
    }
    if to_ms > now + MAX_AHEAD_MS || to_ms - from_ms > MAX_AHEAD_MS {
        return Err(bad("a window lasts at most a year and ends within a year"));
    }
    let retroactive = from_ms + NOW_SLACK_MS < now;
    if retroactive && p.role != Role::Admin {
        return Err(forbidden(
            "a window starting in the past rewrites availability: admin only",
        ));
    }
    Ok(retroactive)
}

pub async fn add_maintenance(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<MaintenanceBody>,
) -> Result<impl IntoResponse, ApiError> {
    let node = optional_code("node", b.node.as_ref())?;
    let agency = optional_code("agency", b.agency.as_ref())?;
    if node.is_some() && agency.is_some() {
        return Err(bad("give node or agency, not both"));
    }
    let inv = s.inventory.current();
    if let Some(n) = &node {
        if inv.node(n).is_none() {
            return Err(not_found(format!(
                "unknown node {n:?} (not in the inventory)"
            )));
        }
    }
    if let Some(a) = &agency {
        crate::api::known_agency(&s, a)?;
    }
    let (from, to) = time_range(Some(&b.from.text()), Some(&b.to.text()), 0)?;
    let now = now_ms();
    let retroactive = check_times(&p, from * 1000, to * 1000, now)?;
    let reason = reason_ok(&b.reason)?;
    let open = with_incidents(&s, move |st| st.open_maintenance_count(now)).await?;
    if open >= MAX_OPEN_WINDOWS {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("{open} windows are open or planned (limit {MAX_OPEN_WINDOWS}); end or delete some first"),
        ));
    }
    let m = Maintenance {
        id: 0,
        node_id: node,
        agency,
        starts_ms: from * 1000,
        ends_ms: to * 1000,
        reason,
        created_by: p.display_name.clone(),
        created_ms: now,
    };
    let saved = s
        .outage
        .maintenance(MaintenanceChange::Add(m))
        .await
        .map_err(internal)?
        .ok_or_else(|| internal("the window was not stored"))?;
    audit(
        &s,
        event(
            &p,
            "maintenance.create",
            &saved.id.to_string(),
            json!({"node": saved.node_id, "agency": saved.agency, "starts_ms": saved.starts_ms,
                   "ends_ms": saved.ends_ms, "reason": saved.reason, "retroactive": retroactive}),
        ),
    )
    .await;
    Ok((StatusCode::CREATED, Json(saved)))
}

async fn window(s: &AppState, id: &str) -> Result<Maintenance, ApiError> {
    let n: i64 = id
        .parse()
        .map_err(|_| bad(format!("window id {id:?} is not a number")))?;
    with_incidents(s, move |st| st.maintenance_window(n))
        .await?
        .ok_or_else(|| not_found(format!("no maintenance window {n}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceChangeBody {
    pub from: Option<TimeArg>,
    pub to: Option<TimeArg>,
    pub reason: Option<String>,
}

/// Change a window that has not ended: a started one keeps its start
/// (unless an admin moves it), and nothing moves into the past but by an admin.
pub async fn change_maintenance(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Body(b): Body<MaintenanceChangeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let w = window(&s, &id).await?;
    let now = now_ms();
    if w.ends_ms <= now {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "the window has ended; it is history now".into(),
        ));
    }
    let from = match &b.from {
        Some(t) => crate::api::parse_time("from", &t.text())? * 1000,
        None => w.starts_ms,
    };
    let to = match &b.to {
        Some(t) => crate::api::parse_time("to", &t.text())? * 1000,
        None => w.ends_ms,
    };
    if from != w.starts_ms && w.starts_ms <= now && p.role != Role::Admin {
        return Err(forbidden(
            "the window has started: its start is history (admin only)",
        ));
    }
    let retroactive = if from != w.starts_ms {
        check_times(&p, from, to, now)?
    } else {
        if to <= from {
            return Err(bad("to must be after from"));
        }
        if to <= now {
            return Err(bad("to is in the past: end the window instead"));
        }
        if to > now + MAX_AHEAD_MS || to - from > MAX_AHEAD_MS {
            return Err(bad("a window lasts at most a year and ends within a year"));
        }
        false
    };
    let reason = match &b.reason {
        Some(r) => reason_ok(r)?,
        None => w.reason.clone(),
    };
    let changed = Maintenance {
        starts_ms: from,
        ends_ms: to,
        reason,
        ..w.clone()
    };
    let saved = s
        .outage
        .maintenance(MaintenanceChange::Update(changed))
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no maintenance window {}", w.id)))?;
    audit(
        &s,
        event(
            &p,
            "maintenance.change",
            &saved.id.to_string(),
            json!({"before": {"starts_ms": w.starts_ms, "ends_ms": w.ends_ms, "reason": w.reason},
                   "after": {"starts_ms": saved.starts_ms, "ends_ms": saved.ends_ms, "reason": saved.reason},
                   "retroactive": retroactive}),
        ),
    )
    .await;
    Ok(Json(saved))
}

/// End a running window now.
pub async fn end_maintenance(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let w = window(&s, &id).await?;
    let now = now_ms();
    if w.ends_ms <= now {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "the window has already ended".into(),
        ));
    }
    if w.starts_ms > now {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "the window has not started: delete it instead".into(),
        ));
    }
    let ended = Maintenance {
        ends_ms: now.max(w.starts_ms + 1),
        ..w.clone()
    };
    let saved = s
        .outage
        .maintenance(MaintenanceChange::Update(ended))
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no maintenance window {}", w.id)))?;
    audit(
        &s,
        event(
            &p,
            "maintenance.end",
            &saved.id.to_string(),
            json!({"planned_end_ms": w.ends_ms, "ended_ms": saved.ends_ms}),
        ),
    )
    .await;
    Ok(Json(saved))
}

/// Delete a window that has not started (one that has is history: end it).
pub async fn delete_maintenance(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let w = window(&s, &id).await?;
    if w.starts_ms <= now_ms() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "the window has started: end it instead of deleting it".into(),
        ));
    }
    s.outage
        .maintenance(MaintenanceChange::Delete(w.id))
        .await
        .map_err(internal)?;
    audit(
        &s,
        event(
            &p,
            "maintenance.delete",
            &w.id.to_string(),
            json!({"node": w.node_id, "agency": w.agency, "starts_ms": w.starts_ms, "ends_ms": w.ends_ms, "reason": w.reason}),
        ),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Current and future maintenance windows (and those of the last 30 days);
/// an agency officer sees the network-wide ones and its agency's.
pub async fn maintenance(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(_): Q<crate::api::NoParams>,
) -> Result<impl IntoResponse, ApiError> {
    let since = now_ms().saturating_sub(30 * 86_400_000);
    let mut list = with_incidents(&s, move |st| st.maintenance_since(since)).await?;
    if let Some(own) = p.role.agency() {
        let inv = s.inventory.current();
        list.retain(|m| match (&m.node_id, &m.agency) {
            (None, None) => true,
            (_, Some(a)) => a == own,
            (Some(n), None) => inv.node(n).is_some_and(|x| x.agency == own),
        });
    }
    Ok(Json(list))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    pub limit: Option<usize>,
    pub incident: Option<i64>,
}

/// The notification log: what was sent (or is pending, or failed) on which
/// channel, newest first.
pub async fn notifications(
    State(s): State<AppState>,
    Q(q): Q<NotificationsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = row_limit(q.limit, 100, 10_000)?;
    let handle = s.notify.clone();
    let rows = tokio::task::spawn_blocking(move || match q.incident {
        Some(id) => handle.for_incident(id),
        None => handle.recent(limit),
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(rows))
}

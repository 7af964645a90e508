//! `/api/v1/incidents`, `/api/v1/availability`, `/api/v1/maintenance`.
//!
//! Reads open their own connection; writes (acknowledgements, maintenance
//! windows) go through the outage monitor, the incidents' single writer.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::{bad, optional_code, query, row_limit, time_range, ApiError};
use crate::state::{now_ms, AppState};
use crate::store::{IncidentFilter, IncidentStore, Maintenance, StoreError};

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
    q: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 7 * 86_400)?;
    let filter = IncidentFilter {
        node_id: optional_code("node", q.node.as_ref())?,
        agency: optional_code("agency", q.agency.as_ref())?,
        open_only: q.open.unwrap_or(false),
        from_ms: Some(from * 1000),
        to_ms: Some(to * 1000),
        limit: row_limit(q.limit, 100, 10_000)?,
    };
    Ok(Json(with_incidents(&s, move |st| st.list(&filter)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Who takes it (name or call sign of the person on duty).
    pub by: String,
}

pub async fn ack(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<AckBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("incident id {id:?} is not a number")))?;
    let Json(body) = body.map_err(|e| bad(e.body_text()))?;
    let by = body.by.trim();
    if by.is_empty() || by.chars().count() > 64 || by.chars().any(char::is_control) {
        return Err(bad("by: 1-64 printable characters (who acknowledges)"));
    }
    match s.outage.ack(id, by).await.map_err(internal)? {
        Some(inc) => {
            tracing::info!(target: "audit", incident = id, by, "incident acknowledged");
            Ok(Json(inc))
        }
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no incident {id}"))),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub node: Option<String>,
}

/// Availability per node over the period (default: the last 24 hours).
pub async fn availability(
    State(s): State<AppState>,
    q: Result<Query<AvailabilityQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 86_400)?;
    let agency = optional_code("agency", q.agency.as_ref())?;
    let node = optional_code("node", q.node.as_ref())?;
    let nodes: Vec<(String, String)> = crate::api::read(&s, |s, _| {
        crate::service::nodes(s, std::time::SystemTime::now())
    })
    .await?
    .into_iter()
    .filter(|n| !n.revoked)
    .filter(|n| agency.as_ref().is_none_or(|a| &n.agency == a))
    .filter(|n| node.as_ref().is_none_or(|x| &n.node_id == x))
    .map(|n| (n.node_id, n.agency))
    .collect();
    let now = now_ms();
    Ok(Json(
        with_incidents(&s, move |st| {
            st.availability(&nodes, from * 1000, to * 1000, now)
        })
        .await?,
    ))
}

/// Time to acknowledge and to resolve, by severity.
#[derive(Debug, Serialize, Default)]
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
    q: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 30 * 86_400)?;
    let filter = IncidentFilter {
        node_id: optional_code("node", q.node.as_ref())?,
        agency: optional_code("agency", q.agency.as_ref())?,
        from_ms: Some(from * 1000),
        to_ms: Some(to * 1000),
        limit: 100_000,
        ..Default::default()
    };
    let list = with_incidents(&s, move |st| st.list(&filter)).await?;
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
    let out: BTreeMap<String, SeverityStats> = by
        .into_iter()
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
        .collect();
    Ok(Json(out))
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
    pub by: String,
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

pub async fn add_maintenance(
    State(s): State<AppState>,
    body: Result<Json<MaintenanceBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let node = optional_code("node", b.node.as_ref())?;
    let agency = optional_code("agency", b.agency.as_ref())?;
    let (from, to) = time_range(Some(&b.from.text()), Some(&b.to.text()), 0)?;
    let text_ok = |t: &str, max: usize| {
        !t.trim().is_empty() && t.chars().count() <= max && !t.chars().any(char::is_control)
    };
    if !text_ok(&b.reason, 200) {
        return Err(bad("reason: 1-200 printable characters"));
    }
    if !text_ok(&b.by, 64) {
        return Err(bad("by: 1-64 printable characters"));
    }
    let m = Maintenance {
        id: 0,
        node_id: node,
        agency,
        starts_ms: from * 1000,
        ends_ms: to * 1000,
        reason: b.reason.trim().to_string(),
        created_by: b.by.trim().to_string(),
        created_ms: now_ms(),
    };
    let saved = s.outage.add_maintenance(m).await.map_err(internal)?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Current and future maintenance windows (and those of the last 30 days).
pub async fn maintenance(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let since = now_ms().saturating_sub(30 * 86_400_000);
    Ok(Json(
        with_incidents(&s, move |st| st.maintenance_since(since)).await?,
    ))
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
    q: Result<Query<NotificationsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
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

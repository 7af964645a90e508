//! JSON API under /api/v1 (see collector/API.md and /api/v1/openapi.json).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use simpul_proto::BlockMethod;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::state::{now_secs, AppState};
use crate::store::{BlockedFilter, FlowFilter, FlowReader, Step, StoreError, MAX_BLOCKED};

/// An API error: status and a sentence that says what was wrong.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Run a query with a fresh flow reader, off the async threads.
pub async fn read<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&AppState, &dyn FlowReader) -> Result<T, StoreError> + Send + 'static,
{
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let r = s.flows.reader()?;
        f(&s, r.as_ref())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(store_error)
}

/// A storage error as an API answer.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownAgency(_) | StoreError::UnknownNode(_) => {
            ApiError(StatusCode::NOT_FOUND, e.to_string())
        }
        StoreError::Invalid { .. } => bad(e.to_string()),
        other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// `from`/`to` as RFC 3339 or Unix seconds.
fn parse_time(name: &str, v: &str) -> Result<u64, ApiError> {
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(secs);
    }
    simpul_proto::time_format::parse_rfc3339(v)
        .map(|ns| ns / 1_000_000_000)
        .map_err(|e| bad(format!("{name}: {e}")))
}

fn check_code(name: &str, v: &str) -> Result<(), ApiError> {
    if crate::config::valid_code(v) {
        Ok(())
    } else {
        Err(bad(format!("{name}: {v:?} is not a valid code")))
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub limit: Option<usize>,
    pub step: Option<String>,
    pub host: Option<String>,
    pub site: Option<String>,
}

/// `from`/`to` resolved to Unix seconds, defaulting to the last `default_secs`.
pub(crate) fn time_range(
    from: Option<&str>,
    to: Option<&str>,
    default_secs: u64,
) -> Result<(u64, u64), ApiError> {
    let to = match to {
        Some(t) => parse_time("to", t)?,
        None => now_secs() + 1,
    };
    let from = match from {
        Some(f) => parse_time("from", f)?,
        None => to.saturating_sub(default_secs),
    };
    if from >= to {
        return Err(bad("from must be before to"));
    }
    Ok((from, to))
}

pub(crate) fn optional_code(name: &str, v: Option<&String>) -> Result<Option<String>, ApiError> {
    if let Some(a) = v {
        check_code(name, a)?;
    }
    Ok(v.cloned())
}

pub(crate) fn row_limit(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(0) => Err(bad("limit must be at least 1")),
        Some(n) if n > max => Err(bad(format!("limit must be at most {max}"))),
        Some(n) => Ok(n),
    }
}

impl RangeQuery {
    /// Resolve the range, defaulting to the last `default_secs`.
    fn range(&self, default_secs: u64) -> Result<(u64, u64), ApiError> {
        time_range(self.from.as_deref(), self.to.as_deref(), default_secs)
    }

    fn agency(&self) -> Result<Option<String>, ApiError> {
        optional_code("agency", self.agency.as_ref())
    }

    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        row_limit(self.limit, default, max)
    }
}

/// `/api/v1/blocked` and `/api/v1/blocked/summary` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BlockedQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    pub node: Option<String>,
    pub method: Option<String>,
    pub limit: Option<usize>,
}

impl BlockedQuery {
    fn filter(&self, default_secs: u64, default_limit: usize) -> Result<BlockedFilter, ApiError> {
        let (from, to) = time_range(self.from.as_deref(), self.to.as_deref(), default_secs)?;
        let method = match self.method.as_deref() {
            None => None,
            Some(m) => Some(BlockMethod::from_name(m).ok_or_else(|| {
                let names: Vec<&str> = BlockMethod::ALL.iter().map(|m| m.name()).collect();
                bad(format!("method: {m:?} is not one of {}", names.join(", ")))
            })?),
        };
        Ok(BlockedFilter {
            from,
            to,
            agency: optional_code("agency", self.agency.as_ref())?,
            node: optional_code("node", self.node.as_ref())?,
            method,
            limit: row_limit(self.limit, default_limit, MAX_BLOCKED)?,
        })
    }
}

pub async fn nodes(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut nodes = read(&s, |s, _| crate::service::nodes(s, SystemTime::now())).await?;
    apply_liveness(&s.outage, &mut nodes);
    Ok(Json(nodes))
}

/// Fill in the outage detector's view of each node (`liveness`) and let
/// `status` follow it where the detector knows the node: a node the
/// detector holds down, unreachable or flapping is not "up" because its
/// last heartbeat happens to be recent, and one it has heard from since
/// the collector started is up.
pub(crate) fn apply_liveness(
    outage: &crate::outage::monitor::OutageMonitor,
    nodes: &mut [crate::store::NodeInfo],
) {
    let live: std::collections::HashMap<String, &'static str> = outage
        .nodes()
        .into_iter()
        .map(|v| (v.node_id, v.status))
        .collect();
    for n in nodes {
        let Some(l) = live.get(&n.node_id) else {
            continue;
        };
        n.liveness = Some(l.to_string());
        if n.status != crate::store::NodeStatus::Revoked {
            match *l {
                "up" => n.status = crate::store::NodeStatus::Up,
                "down" | "unreachable" | "flapping" => n.status = crate::store::NodeStatus::Down,
                _ => {}
            }
        }
    }
}

/// [`apply_liveness`] for an overview: its nodes, and each agency's
/// `nodes_up` counted again from them.
pub(crate) fn overview_liveness(
    outage: &crate::outage::monitor::OutageMonitor,
    ov: &mut crate::store::Overview,
) {
    apply_liveness(outage, &mut ov.nodes);
    for a in &mut ov.agencies {
        a.nodes_up = ov
            .nodes
            .iter()
            .filter(|n| n.agency == a.code && n.status == crate::store::NodeStatus::Up)
            .count() as u32;
    }
}

pub async fn agencies(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        read(&s, |s, _| crate::service::agencies(s, SystemTime::now())).await?,
    ))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    pub window: Option<u32>,
}

/// The overview covers whole seconds that have fully arrived: agents seal a
/// batch every second, so the newest two seconds are still filling. Every
/// request within one second sees the same window.
pub fn overview_end() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(now_secs().saturating_sub(2))
}

pub async fn overview(
    State(s): State<AppState>,
    Query(q): Query<OverviewQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let window = q.window.unwrap_or(5);
    if !(1..=3600).contains(&window) {
        return Err(bad("window must be 1..3600 seconds"));
    }
    let end = overview_end();
    let mut ov = read(&s, move |s, r| crate::service::overview(s, r, end, window)).await?;
    overview_liveness(&s.outage, &mut ov);
    Ok(Json(ov))
}

pub async fn usage(
    State(s): State<AppState>,
    Path(agency): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    check_code("agency", &agency)?;
    if s.inventory.current().agency(&agency).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown agency {agency:?}"),
        ));
    }
    let (from, to) = q.range(24 * 3600)?;
    let step = match q.step.as_deref() {
        None => Step::auto(from, to, SystemTime::now()),
        Some(s) => Step::parse(s).ok_or_else(|| bad(format!("step {s:?}: use 1s, 1m or 1h")))?,
    };
    Ok(Json(
        read(&s, move |_, r| r.usage(&agency, from, to, step)).await?,
    ))
}

pub async fn top_hosts(
    State(s): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (from, to) = q.range(15 * 60)?;
    let agency = q.agency()?;
    let limit = q.limit(10, 1000)?;
    Ok(Json(
        read(&s, move |_, r| {
            r.top_hosts(agency.as_deref(), from, to, limit)
        })
        .await?,
    ))
}

pub async fn top_sites(
    State(s): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (from, to) = q.range(15 * 60)?;
    let agency = q.agency()?;
    let limit = q.limit(10, 1000)?;
    Ok(Json(
        read(&s, move |_, r| {
            r.top_sites(agency.as_deref(), from, to, limit)
        })
        .await?,
    ))
}

pub async fn flows(
    State(s): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (from, to) = q.range(3600)?;
    let filter = FlowFilter {
        from,
        to,
        agency: q.agency()?,
        host: match &q.host {
            Some(h) => Some(
                h.parse::<std::net::IpAddr>()
                    .map_err(|_| bad(format!("host: {h:?} is not an IP address")))?,
            ),
            None => None,
        },
        site: q
            .site
            .clone()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase()),
        limit: q.limit(100, 1000)?,
    };
    Ok(Json(read(&s, move |_, r| r.flows(&filter)).await?))
}

/// The query string, or a 400 in the API's JSON error shape (an unknown
/// parameter or a `limit` that is not a number).
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| bad(e.body_text()))
}

/// Blocked attempts, newest first (default: the last hour, 100 rows).
pub async fn blocked(
    State(s): State<AppState>,
    q: Result<Query<BlockedQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = query(q)?.filter(3600, 100)?;
    Ok(Json(read(&s, move |_, r| r.blocked(&filter)).await?))
}

/// Attempts per agency, top targets and top clients (default: the last 15
/// minutes, 10 entries per list).
pub async fn blocked_summary(
    State(s): State<AppState>,
    q: Result<Query<BlockedQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = query(q)?.filter(15 * 60, 10)?;
    Ok(Json(
        read(&s, move |_, r| r.blocked_summary(&filter)).await?,
    ))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    db: String,
}

pub async fn healthz(State(s): State<AppState>) -> Response {
    match read(&s, |s, r| {
        r.check()?;
        s.control.check()
    })
    .await
    {
        Ok(()) => Json(Health {
            status: "ok",
            db: "ok".into(),
        })
        .into_response(),
        Err(ApiError(_, e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "degraded",
                db: e,
            }),
        )
            .into_response(),
    }
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        s.metrics.render(),
    )
}

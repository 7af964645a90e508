//! JSON API under /api/v1 (see collector/API.md and /api/v1/openapi.json).

use axum::extract::{Extension, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use simpul_proto::BlockMethod;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::Principal;
use crate::state::{now_secs, AppState};
use crate::store::{BlockedFilter, FlowReader, Step, StoreError, MAX_BLOCKED};

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

pub(crate) fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

/// The query string, refused in the API's JSON error shape when it has an
/// unknown parameter or a value of the wrong type (axum's own `Query`
/// answers text/plain).
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|e| bad(format!("query string: {}", e.body_text())))
    }
}

/// A JSON body, refused in the API's JSON error shape (wrong content type,
/// malformed JSON, unknown or missing fields, over the body limit).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| Body(v))
            .map_err(|e| {
                // 400 for anything wrong with the body, as for the query;
                // 413 keeps saying it was too large.
                let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    e.status()
                } else {
                    StatusCode::BAD_REQUEST
                };
                ApiError(status, format!("request body: {}", e.body_text()))
            })
    }
}

/// For routes that take no parameters: any query string is refused.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

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
pub(crate) fn parse_time(name: &str, v: &str) -> Result<u64, ApiError> {
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(secs);
    }
    simpul_proto::time_format::parse_rfc3339(v)
        .map(|ns| ns / 1_000_000_000)
        .map_err(|e| bad(format!("{name}: {e}")))
}

pub(crate) fn check_code(name: &str, v: &str) -> Result<(), ApiError> {
    if crate::config::valid_code(v) {
        Ok(())
    } else {
        Err(bad(format!("{name}: {v:?} is not a valid code")))
    }
}

/// `/api/v1/agencies/{code}/usage` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub step: Option<String>,
}

/// `/api/v1/top/hosts` and `/api/v1/top/sites` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TopQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub agency: Option<String>,
    /// Hosts of one unit (with `agency`).
    pub unit: Option<String>,
    pub limit: Option<usize>,
    /// `csv` for a spreadsheet.
    pub format: Option<String>,
}

/// `/api/v1/nodes` parameters.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodesQuery {
    pub agency: Option<String>,
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
    /// `csv` for a spreadsheet (`/api/v1/blocked` only).
    pub format: Option<String>,
}

/// Columns of a blocked attempt in CSV: the JSON's fields, in its order.
pub const BLOCKED_COLUMNS: &[&str] = &[
    "node_id",
    "first_seen",
    "last_seen",
    "client",
    "agency",
    "unit",
    "method",
    "target",
    "server",
    "port",
    "proto",
    "rule",
    "list",
    "attempts",
];

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

pub async fn nodes(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<NodesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let agency = p.scope(optional_code("agency", q.agency.as_ref())?)?;
    if let Some(a) = &agency {
        known_agency(&s, a)?;
    }
    let mut nodes = read(&s, |s, _| crate::service::nodes(s, SystemTime::now())).await?;
    nodes.retain(|n| agency.as_ref().is_none_or(|a| &n.agency == a));
    apply_liveness(&s.outage, &mut nodes);
    Ok(Json(nodes))
}

/// 404 for an agency the inventory does not know.
pub(crate) fn known_agency(s: &AppState, code: &str) -> Result<(), ApiError> {
    if s.inventory.current().agency(code).is_none() {
        return Err(not_found(format!("unknown agency {code:?}")));
    }
    Ok(())
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

pub async fn agencies(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(_): Q<NoParams>,
) -> Result<impl IntoResponse, ApiError> {
    let mut list = read(&s, |s, _| crate::service::agencies(s, SystemTime::now())).await?;
    list.retain(|a| p.sees(&a.code));
    Ok(Json(list))
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
    Extension(p): Extension<Principal>,
    Q(q): Q<OverviewQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let window = q.window.unwrap_or(5);
    if !(1..=3600).contains(&window) {
        return Err(bad("window must be 1..3600 seconds"));
    }
    let end = overview_end();
    let own = p.role.agency().map(str::to_string);
    let mut ov = read(&s, move |s, r| {
        let mut ov = crate::service::overview(s, r, end, window)?;
        if let Some(a) = own {
            let sites = crate::service::agency_sites(r, &a, end)?;
            crate::service::scope_overview(&mut ov, &a, sites);
        }
        Ok(ov)
    })
    .await?;
    overview_liveness(&s.outage, &mut ov);
    Ok(Json(ov))
}

pub async fn usage(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(agency): Path<String>,
    Q(q): Q<UsageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    check_code("agency", &agency)?;
    p.scope(Some(agency.clone()))?;
    known_agency(&s, &agency)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 24 * 3600)?;
    let step = match q.step.as_deref() {
        None => Step::auto(from, to, SystemTime::now()),
        Some(s) => Step::parse(s).ok_or_else(|| bad(format!("step {s:?}: use 1s, 1m or 1h")))?,
    };
    let code = agency.clone();
    let series = read(&s, move |_, r| r.usage(&code, from, to, step)).await?;
    // The allocation in force over the range, for the chart's lines.
    let (st, code) = (s.clone(), agency.clone());
    let step_secs = series.step_secs;
    let runs = tokio::task::spawn_blocking(move || {
        st.policies.allocation_runs(&code, from, to, step_secs)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut v = serde_json::to_value(&series)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // How long the per-second rate stood above 95 % of the allocation in
    // force (null before the agency has one).
    let rates: Vec<(u64, u64, u64)> = runs
        .iter()
        .map(|(t, d, u)| (*t, d.rate_bps, u.rate_bps))
        .collect();
    v["hours_above_95"] = if rates.is_empty() {
        serde_json::Value::Null
    } else {
        let [down, up] = series.seconds_above(&rates, 0.95);
        serde_json::json!({ "download": down as f64 / 3600.0, "upload": up as f64 / 3600.0 })
    };
    v["allocation"] = serde_json::Value::Array(
        runs.into_iter()
            .map(|(t, d, u)| {
                serde_json::json!({
                    "from": simpul_proto::time_format::rfc3339(t * 1_000_000_000),
                    "download": d, "upload": u,
                })
            })
            .collect(),
    );
    Ok(Json(v))
}

impl TopQuery {
    fn resolve(&self, p: &Principal) -> Result<(u64, u64, Option<String>, usize), ApiError> {
        let (from, to) = time_range(self.from.as_deref(), self.to.as_deref(), 15 * 60)?;
        let agency = p.scope(optional_code("agency", self.agency.as_ref())?)?;
        Ok((from, to, agency, row_limit(self.limit, 10, 1000)?))
    }
}

pub async fn top_hosts(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<TopQuery>,
) -> Result<Response, ApiError> {
    let (from, to, agency, limit) = q.resolve(&p)?;
    let as_csv = crate::csv::wanted(q.format.as_deref())?;
    let unit = match (&q.unit, &agency) {
        (None, _) => None,
        (Some(u), Some(_)) => {
            check_code("unit", u)?;
            Some(u.clone())
        }
        (Some(_), None) => return Err(bad("unit: give the agency too")),
    };
    let rows = read(&s, move |_, r| match (&agency, &unit) {
        (Some(a), Some(u)) => r.unit_hosts(a, u, from, to, limit),
        _ => r.top_hosts(agency.as_deref(), from, to, limit),
    })
    .await?;
    if as_csv {
        let t = crate::csv::table(&rows, crate::search_api::HOST_COLUMNS);
        return Ok(crate::csv::response("simpul-hosts", t));
    }
    Ok(Json(rows).into_response())
}

pub async fn top_sites(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<TopQuery>,
) -> Result<Response, ApiError> {
    if q.unit.is_some() {
        return Err(bad("unit: sites are counted per agency, not per unit"));
    }
    let (from, to, agency, limit) = q.resolve(&p)?;
    let as_csv = crate::csv::wanted(q.format.as_deref())?;
    let rows = read(&s, move |_, r| {
        r.top_sites(agency.as_deref(), from, to, limit)
    })
    .await?;
    if as_csv {
        let t = crate::csv::table(&rows, crate::search_api::SITE_COLUMNS);
        return Ok(crate::csv::response("simpul-sites", t));
    }
    Ok(Json(rows).into_response())
}

/// Blocked attempts, newest first (default: the last hour, 100 rows;
/// `format=csv`: as many as the limit allows unless told fewer).
pub async fn blocked(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<BlockedQuery>,
) -> Result<Response, ApiError> {
    let as_csv = crate::csv::wanted(q.format.as_deref())?;
    let mut filter = q.filter(3600, if as_csv { MAX_BLOCKED } else { 100 })?;
    filter.agency = p.scope(filter.agency)?;
    let name = crate::csv::range_name(
        &[
            "blocked",
            filter.agency.as_deref().unwrap_or_default(),
            filter.node.as_deref().unwrap_or_default(),
        ],
        filter.from,
        filter.to,
    );
    let rows = read(&s, move |_, r| r.blocked(&filter)).await?;
    if as_csv {
        let t = crate::csv::table(&rows, BLOCKED_COLUMNS);
        return Ok(crate::csv::response(&name, t));
    }
    Ok(Json(rows).into_response())
}

/// Attempts per agency, top targets and top clients (default: the last 15
/// minutes, 10 entries per list).
pub async fn blocked_summary(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<BlockedQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if crate::csv::wanted(q.format.as_deref())? {
        return Err(bad(
            "format: the summary is JSON only; /api/v1/blocked?format=csv exports the attempts",
        ));
    }
    let mut filter = q.filter(15 * 60, 10)?;
    filter.agency = p.scope(filter.agency)?;
    Ok(Json(
        read(&s, move |_, r| r.blocked_summary(&filter)).await?,
    ))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    db: String,
    /// "sqlite" or "postgres".
    control: &'static str,
    /// This collector's outage detector leads (always, alone on SQLite).
    outage_leader: bool,
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
            control: s.control.backend(),
            outage_leader: s.outage.is_leading(),
        })
        .into_response(),
        Err(ApiError(_, e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "degraded",
                db: e,
                control: s.control.backend(),
                outage_leader: s.outage.is_leading(),
            }),
        )
            .into_response(),
    }
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, crate::prom::CONTENT_TYPE)],
        crate::prom::render(&s).await,
    )
}

/// A one-time enrollment token for a node of the inventory (valid a day).
pub async fn enrollment_token(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(node): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    check_code("node", &node)?;
    let agency = s
        .inventory
        .node(&node)
        .map(|n| n.agency)
        .ok_or_else(|| not_found(format!("node {node:?} is not in the inventory")))?;
    let ttl = Duration::from_secs(24 * 3600);
    let (control, n, a) = (s.control.clone(), node.clone(), agency.clone());
    let token = tokio::task::spawn_blocking(move || control.create_enrollment_token(&a, &n, ttl))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(store_error)?;
    let expires_ms = crate::state::now_ms() + 24 * 3_600_000;
    crate::auth::audit(
        &s,
        crate::auth::event(
            &p,
            "node.enrollment_token",
            &node,
            serde_json::json!({"agency": agency, "expires_ms": expires_ms}),
        ),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({"node_id": node, "agency": agency, "token": token, "expires_ms": expires_ms}),
        ),
    ))
}

/// Revoke a node's credential; its live session ends at once.
pub async fn revoke_node(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(node): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    check_code("node", &node)?;
    let (control, n) = (s.control.clone(), node.clone());
    tokio::task::spawn_blocking(move || control.revoke_node(&n))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(store_error)?;
    let kicked = s.agents.kick(&node, "the node's credential was revoked");
    crate::auth::audit(
        &s,
        crate::auth::event(
            &p,
            "node.revoke",
            &node,
            serde_json::json!({"live_session_closed": kicked}),
        ),
    )
    .await;
    let nodes = read(&s, |s, _| crate::service::nodes(s, SystemTime::now())).await?;
    let info = nodes.into_iter().find(|n| n.node_id == node);
    Ok(Json(info))
}

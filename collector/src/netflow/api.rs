//! `GET /api/v1/netflow/exporters`: each exporter's protocol, sampling in
//! force and over time, templates, sequence gaps per observation domain
//! and last export. An agency officer sees only exporters mapped to their
//! agency (one attributed per flow by subnets speaks for several).

use axum::extract::{Extension, State};
use axum::Json;

use crate::api::{known_agency, optional_code, ApiError, NodesQuery, Q};
use crate::auth::Principal;
use crate::state::AppState;

use super::status::ExporterStatus;

pub async fn exporters(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<NodesQuery>,
) -> Result<Json<Vec<ExporterStatus>>, ApiError> {
    let agency = p.scope(optional_code("agency", q.agency.as_ref())?)?;
    if let Some(a) = &agency {
        known_agency(&s, a)?;
    }
    let mut list = s.netflow.list();
    list.retain(|e| agency.is_none() || e.agency == agency);
    Ok(Json(list))
}

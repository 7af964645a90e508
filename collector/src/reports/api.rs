//! `GET /api/v1/reports/monthly?month=YYYY-MM[&agency=CODE]&format=json|csv|pdf&lang=id|en`

use axum::extract::{Extension, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{assemble, file_name, gather, Lang, Month, ReportError};
use crate::api::{bad, known_agency, not_found, optional_code, ApiError, Q};
use crate::auth::Principal;
use crate::state::{now_secs, AppState};

/// Reports built at once, at most: a province's month reads every
/// agency's minutes; more callers wait their turn.
static BUILDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MonthlyQuery {
    pub month: Option<String>,
    pub agency: Option<String>,
    pub format: Option<String>,
    pub lang: Option<String>,
}

fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::Month { .. } => bad(e.to_string()),
        ReportError::UnknownAgency(_) => not_found(e.to_string()),
        other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// The report of a month (default: the last whole one) for an agency or,
/// for the NOC's roles without `agency`, the province; an agency officer
/// gets its own agency's only.
pub async fn monthly(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Q(q): Q<MonthlyQuery>,
) -> Result<Response, ApiError> {
    let off = s.config.utc_offset().seconds();
    let now = now_secs();
    let month = match &q.month {
        Some(m) => Month::parse(m).map_err(report_error)?,
        None => Month::containing(now, off).previous(),
    };
    month.check(now, off).map_err(report_error)?;
    let agency = p.scope(optional_code("agency", q.agency.as_ref())?)?;
    if let Some(a) = &agency {
        known_agency(&s, a)?;
    }
    let format = q.format.as_deref().unwrap_or("json");
    if !["json", "csv", "pdf"].contains(&format) {
        return Err(bad(format!("format: {format:?} is not json, csv or pdf")));
    }
    let lang = match q.lang.as_deref() {
        None => Lang::Id,
        Some(l) => Lang::parse(l).ok_or_else(|| bad(format!("lang: {l:?} is not id or en")))?,
    };
    let _permit = BUILDS
        .acquire()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let st = s.clone();
    let report = tokio::task::spawn_blocking(move || {
        gather(&st, month, agency.as_deref(), now).map(|i| assemble(&i))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(report_error)?;
    let name = file_name(&report, lang, format);
    let (ct, body): (&str, Vec<u8>) = match format {
        "csv" => (
            "text/csv; charset=utf-8",
            super::csv::write(&report).into_bytes(),
        ),
        "pdf" => {
            let r = report.clone();
            let pdf = tokio::task::spawn_blocking(move || super::pdf::write(&r, lang))
                .await
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            ("application/pdf", pdf)
        }
        _ => (
            "application/json",
            serde_json::to_vec(&report)
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
        ),
    };
    let disposition = if format == "json" {
        "inline"
    } else {
        "attachment"
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

//! The named lists API: upload (plain, hosts, adblock; gzip accepted),
//! sources synced from a URL, held versions confirmed or discarded, the
//! content for download. Admins write; every role but the viewer reads
//! (an agency officer sees what its agency may be blocked with). A change
//! of the version in force gives every agency that enables the list a new
//! policy version (`Policies::lists_changed`), pushed at once.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use simpul_core::policy::domains::ListFormat;

use crate::api::{bad, not_found, ApiError, Body, Q};
use crate::auth::{audit, event, Principal};
use crate::lists::{ListError, Outcome, SourceSpec};
use crate::state::AppState;
use crate::store::NewAudit;

impl IntoResponse for ListError {
    fn into_response(self) -> Response {
        let msg = self.to_string();
        let status = match self {
            ListError::NoList(_) | ListError::NoContent(_) | ListError::NotHeld { .. } => {
                StatusCode::NOT_FOUND
            }
            ListError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ListError::TooManyDomains { .. } | ListError::Read(_) | ListError::Gzip(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ListError::Name(_) | ListError::Source(_) | ListError::Offset { .. } => {
                StatusCode::BAD_REQUEST
            }
            ListError::Sync { .. } => StatusCode::BAD_GATEWAY,
            ListError::Io(_) | ListError::Store(_) => {
                tracing::error!(error = %msg, "lists API");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(json!({ "error": msg }))).into_response()
    }
}

/// A list error, or a plain API error (a bad comment, a bad format).
pub enum ListsApiError {
    List(ListError),
    Api(ApiError),
}

impl From<ListError> for ListsApiError {
    fn from(e: ListError) -> Self {
        ListsApiError::List(e)
    }
}

impl From<ApiError> for ListsApiError {
    fn from(e: ApiError) -> Self {
        ListsApiError::Api(e)
    }
}

impl IntoResponse for ListsApiError {
    fn into_response(self) -> Response {
        match self {
            ListsApiError::List(e) => e.into_response(),
            ListsApiError::Api(e) => e.into_response(),
        }
    }
}

type Answer = Result<Response, ListsApiError>;

/// Largest upload body the route reads (the configured limits, checked
/// after, are usually lower: `[policy.lists]`).
pub const MAX_UPLOAD_BODY: usize = 512 << 20;

fn err(e: impl Into<ListsApiError>) -> ListsApiError {
    e.into()
}

fn name_ok(name: &str) -> Result<(), ListsApiError> {
    if simpul_core::lists::valid_name(name) {
        Ok(())
    } else {
        Err(err(ListError::Name(name.chars().take(80).collect())))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ListError> + Send + 'static,
) -> Result<T, ListsApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(err),
        Err(e) => Err(err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ))),
    }
}

/// After the version in force of a list changed: new policy versions for
/// the agencies that enable it (signed and pushed by `Policies`).
pub async fn follow(s: &AppState, by: &str, why: &str) -> Vec<Value> {
    let (st, by, why) = (s.clone(), by.to_string(), why.to_string());
    let r =
        tokio::task::spawn_blocking(move || st.policies.lists_changed(&st.inventory, &by, &why))
            .await;
    match r {
        Ok(Ok(v)) => v
            .iter()
            .map(|p| json!({"agency": p.policy.agency, "version": p.policy.version}))
            .collect(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot make the policies follow a list change");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot make the policies follow a list change");
            Vec::new()
        }
    }
}

/// Sync `name` from its source; when the version in force changed, the
/// policies follow. → what the sync did and the agencies' new versions.
async fn sync_then_follow(
    s: &AppState,
    name: &str,
    by: &str,
) -> Result<(Outcome, Vec<Value>), ListError> {
    let o = s.lists.sync(name, by).await?;
    let policies = if o.in_force_changed {
        follow(s, by, &format!("list {name} v{} (sync)", o.version.version)).await
    } else {
        Vec::new()
    };
    Ok((o, policies))
}

fn sync_detail(o: &Outcome, policies: &[Value]) -> Value {
    json!({"version": o.version.version, "changed": o.changed, "state": o.version.state,
           "domains": o.version.domains, "sha256": o.version.sha256,
           "hold_reason": o.version.hold_reason, "policies": policies})
}

/// The scheduled sync of `name`; errors are kept on the source (shown by
/// the API) and logged by `Lists::sync`.
pub async fn sync_and_follow(s: &AppState, name: &str, by: &str) {
    if let Ok((o, policies)) = sync_then_follow(s, name, by).await {
        if o.changed {
            audit(
                s,
                NewAudit {
                    actor: "system:sync".into(),
                    address: "collector".into(),
                    action: "list.sync".into(),
                    target: name.to_string(),
                    detail: sync_detail(&o, &policies).to_string(),
                    outcome: "ok".into(),
                },
            )
            .await;
        }
    }
}

fn outcome_answer(o: &Outcome, policies: Vec<Value>) -> Value {
    json!({
        "version": o.version, "changed": o.changed, "in_force_changed": o.in_force_changed,
        "lines": o.lines, "duplicates": o.duplicates, "invalid": o.invalid,
        "first_invalid": o.first_invalid.iter().map(|l| json!({"line": l.line, "text": l.text, "reason": l.reason.to_string()})).collect::<Vec<_>>(),
        "policies": policies,
    })
}

/// `GET /api/v1/lists`
pub async fn lists(State(s): State<AppState>) -> Answer {
    let st = s.clone();
    let all = blocking(move || st.lists.summaries()).await?;
    Ok(Json(all).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/lists/{list}`: the list, its source and its versions.
pub async fn list(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Q(q): Q<ListQuery>,
) -> Answer {
    name_ok(&name)?;
    let (st, n) = (s.clone(), name.clone());
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let (summary, versions) =
        blocking(move || Ok((st.lists.summary(&n)?, st.lists.versions(&n, limit)?))).await?;
    let mut v = serde_json::to_value(summary).unwrap_or(Value::Null);
    v["versions"] = serde_json::to_value(versions).unwrap_or(Value::Null);
    Ok(Json(v).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ContentQuery {
    version: Option<u64>,
}

/// `GET /api/v1/lists/{list}/content`: the canonical text (gzip-encoded).
pub async fn content(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Q(q): Q<ContentQuery>,
) -> Answer {
    name_ok(&name)?;
    let (st, n) = (s.clone(), name.clone());
    let (v, bytes) = blocking(move || st.lists.content(&n, q.version)).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (header::CONTENT_ENCODING, "gzip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-v{}.txt\"", v.name, v.version),
            ),
            (header::ETAG, format!("\"{}\"", v.sha256)),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// plain, hosts, adblock or auto (default).
    format: Option<String>,
    comment: Option<String>,
}

/// `PUT /api/v1/lists/{list}`: the body is the list (text, or gzip).
pub async fn upload(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Q(q): Q<UploadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    name_ok(&name)?;
    let comment = crate::policy_api::comment_ok(q.comment.as_deref().unwrap_or("")).map_err(err)?;
    let format = match q.format.as_deref() {
        None => ListFormat::Auto,
        Some(f) => f.parse::<ListFormat>().map_err(|_| {
            err(bad(format!(
                "format: {f:?} is not plain, hosts, adblock or auto"
            )))
        })?,
    };
    let gz_header = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if gz_header && !body.starts_with(&[0x1f, 0x8b]) {
        return Err(err(bad("Content-Encoding: gzip, but the body is not gzip")));
    }
    let cfg = s.lists.config();
    let limit = if body.starts_with(&[0x1f, 0x8b]) {
        cfg.max_upload_bytes
    } else {
        cfg.max_bytes
    };
    if body.len() as u64 > limit {
        return Err(err(ListError::TooLarge { limit }));
    }
    let (st, n, by, why) = (
        s.clone(),
        name.clone(),
        p.display_name.clone(),
        comment.clone(),
    );
    let o = blocking(move || st.lists.store(&n, &body, format, "upload", &by, &why, None)).await?;
    let policies = if o.in_force_changed {
        follow(
            &s,
            &p.display_name,
            &format!("list {name} v{}: {comment}", o.version.version),
        )
        .await
    } else {
        Vec::new()
    };
    if o.changed {
        audit(
            &s,
            event(
                &p,
                "list.upload",
                &name,
                json!({"version": o.version.version, "state": o.version.state, "domains": o.version.domains,
                       "sha256": o.version.sha256, "invalid": o.invalid, "hold_reason": o.version.hold_reason,
                       "comment": comment, "policies": policies}),
            ),
        )
        .await;
    }
    Ok(Json(outcome_answer(&o, policies)).into_response())
}

/// `PUT /api/v1/lists/{list}/source`
pub async fn set_source(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Body(spec): Body<SourceSpec>,
) -> Answer {
    name_ok(&name)?;
    let (st, n, by, sp) = (
        s.clone(),
        name.clone(),
        p.display_name.clone(),
        spec.clone(),
    );
    let src = blocking(move || st.lists.set_source(&n, Some(sp), &by)).await?;
    audit(
        &s,
        event(
            &p,
            "list.source",
            &name,
            json!({"url": spec.url, "format": spec.format, "interval_secs": spec.interval_secs,
                   "max_shrink_percent": spec.max_shrink_percent}),
        ),
    )
    .await;
    Ok(Json(src).into_response())
}

/// `DELETE /api/v1/lists/{list}/source`: no more syncs (the versions stay).
pub async fn remove_source(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Answer {
    name_ok(&name)?;
    let (st, n) = (s.clone(), name.clone());
    let had = blocking(move || Ok(st.lists.source(&n)?.is_some())).await?;
    if !had {
        return Err(err(not_found(format!("list {name:?} has no source"))));
    }
    let (st, n, by) = (s.clone(), name.clone(), p.display_name.clone());
    blocking(move || st.lists.set_source(&n, None, &by)).await?;
    audit(&s, event(&p, "list.source.remove", &name, json!({}))).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/lists/{list}/sync`: sync now (admins; the schedule goes on).
pub async fn sync_now(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Answer {
    name_ok(&name)?;
    let (o, policies) = sync_then_follow(&s, &name, &p.display_name)
        .await
        .map_err(err)?;
    audit(
        &s,
        event(&p, "list.sync", &name, sync_detail(&o, &policies)),
    )
    .await;
    Ok(Json(outcome_answer(&o, policies)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    comment: String,
}

/// `POST /api/v1/lists/{list}/versions/{version}/confirm`
pub async fn confirm(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((name, version)): Path<(String, u64)>,
    Body(b): Body<DecideBody>,
) -> Answer {
    decide(s, p, name, version, b, true).await
}

/// `POST /api/v1/lists/{list}/versions/{version}/discard`
pub async fn discard(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((name, version)): Path<(String, u64)>,
    Body(b): Body<DecideBody>,
) -> Answer {
    decide(s, p, name, version, b, false).await
}

async fn decide(
    s: AppState,
    p: Principal,
    name: String,
    version: u64,
    b: DecideBody,
    confirm: bool,
) -> Answer {
    name_ok(&name)?;
    let comment = crate::policy_api::comment_ok(&b.comment).map_err(err)?;
    let (st, n, by) = (s.clone(), name.clone(), p.display_name.clone());
    let v = blocking(move || st.lists.decide(&n, version, confirm, &by)).await?;
    let policies = if confirm {
        follow(
            &s,
            &p.display_name,
            &format!("list {name} v{version} confirmed: {comment}"),
        )
        .await
    } else {
        Vec::new()
    };
    audit(
        &s,
        event(
            &p,
            if confirm {
                "list.confirm"
            } else {
                "list.discard"
            },
            &name,
            json!({"version": version, "comment": comment, "policies": policies}),
        ),
    )
    .await;
    Ok(Json(json!({"version": v, "policies": policies})).into_response())
}

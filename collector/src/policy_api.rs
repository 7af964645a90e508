//! The policy API: each agency's document and the province-wide default,
//! their versions, preview, rollback. Admins write; operators and the
//! agency's own officer read. Every save is validated by the core code the
//! agents run, optimistic (`base_version`, 409 when another save came
//! first) and written to the audit chain with its comment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{bad, check_code, not_found, ApiError, Body, Q};
use crate::auth::{audit, event, Principal};
use crate::policies::{parse_document, policy_value, InForce, PolicyError, Preview};
use crate::state::AppState;
use crate::store::{DefaultPolicyVersion, PolicyVersion};

/// Largest policy document a save or preview reads (inline domain lists
/// included; named lists travel apart).
pub const MAX_POLICY_BYTES: usize = 4 * 1024 * 1024;
/// Longest comment (the letter's number and why).
const MAX_COMMENT: usize = 500;

/// A policy error as the API answers it: 422 with every problem, 409 with
/// the version in force, 404 for what does not exist; or a plain API error.
pub enum PolicyApiError {
    Policy(PolicyError),
    Api(ApiError),
}

impl From<PolicyError> for PolicyApiError {
    fn from(e: PolicyError) -> Self {
        PolicyApiError::Policy(e)
    }
}

impl From<ApiError> for PolicyApiError {
    fn from(e: ApiError) -> Self {
        PolicyApiError::Api(e)
    }
}

impl IntoResponse for PolicyApiError {
    fn into_response(self) -> Response {
        let e = match self {
            PolicyApiError::Api(e) => return e.into_response(),
            PolicyApiError::Policy(e) => e,
        };
        let msg = e.to_string();
        match e {
            PolicyError::Invalid { problems, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": format!("the policy is refused: {}", simpul_proto::problem::describe(&problems)),
                    "problems": problems,
                })),
            )
                .into_response(),
            PolicyError::Conflict { current, .. } => (
                StatusCode::CONFLICT,
                Json(json!({ "error": msg, "current_version": current })),
            )
                .into_response(),
            PolicyError::UnknownAgency(_) | PolicyError::NoVersion { .. } => {
                not_found(msg).into_response()
            }
            other => {
                tracing::error!(error = %other, "policy API");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg).into_response()
            }
        }
    }
}

type Answer = Result<Response, PolicyApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveBody {
    /// The version this edit started from (0 before any save).
    base_version: u64,
    policy: Value,
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The earlier version whose document becomes the next version.
    version: u64,
    base_version: u64,
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    policy: Value,
    /// A node of the agency: the nft/tc plan it would apply.
    #[serde(default)]
    node: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    limit: Option<usize>,
}

pub(crate) fn comment_ok(c: &str) -> Result<String, ApiError> {
    let c = c.trim();
    if c.chars().count() < 3 {
        return Err(bad(
            "comment: say why (the letter's number, the request), at least 3 characters",
        ));
    }
    simpul_proto::problem::check_free_text(c, MAX_COMMENT)
        .map_err(|e| bad(format!("comment: {e}")))?;
    Ok(c.to_string())
}

/// The agency named in the path, if this caller may read it.
fn agency_of(p: &Principal, s: &AppState, code: &str) -> Result<String, ApiError> {
    check_code("agency", code)?;
    p.scope(Some(code.to_string()))?;
    crate::api::known_agency(s, code)?;
    Ok(code.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PolicyError> + Send + 'static,
) -> Result<T, PolicyApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PolicyApiError::Policy(PolicyError::Internal(e.to_string())))?
        .map_err(PolicyApiError::Policy)
}

/// `GET /api/v1/agencies/{code}/policy`: the agency's document, the merged
/// policy it enforces and where they came from.
pub async fn agency_policy(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(code): Path<String>,
) -> Answer {
    let code = agency_of(&p, &s, &code)?;
    Ok(Json(agency_answer(&s, &code)).into_response())
}

fn agency_answer(s: &AppState, code: &str) -> Value {
    match s.policies.latest(code) {
        Some(v) => in_force_answer(&v),
        None => {
            let (effective, problems) = match s.policies.derived(code) {
                Ok(p) => (policy_value(&p), Vec::new()),
                Err(problems) => (Value::Null, problems),
            };
            json!({
                "agency": code, "version": 0, "policy": {}, "effective": effective,
                "problems": problems, "follows_default": true,
                "default_version": s.policies.default_policy().version,
                "created_ms": null, "created_by": null, "comment": null,
            })
        }
    }
}

fn in_force_answer(v: &InForce) -> Value {
    json!({
        "agency": v.policy.agency, "version": v.policy.version, "policy": v.document(),
        "effective": policy_value(&v.policy), "problems": [],
        "follows_default": v.follows_default(), "default_version": v.stored.default_version,
        "created_ms": v.stored.created_ms, "created_by": v.stored.created_by,
        "comment": v.stored.comment,
    })
}

/// `PUT /api/v1/agencies/{code}/policy`
pub async fn put_agency_policy(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(code): Path<String>,
    Body(b): Body<SaveBody>,
) -> Answer {
    let code = agency_of(&p, &s, &code)?;
    let comment = comment_ok(&b.comment)?;
    save_agency(&s, &p, &code, b.base_version, b.policy, comment, None).await
}

async fn save_agency(
    s: &AppState,
    p: &Principal,
    code: &str,
    base: u64,
    doc: Value,
    comment: String,
    rollback_to: Option<u64>,
) -> Answer {
    let (st, c, by, why) = (
        s.clone(),
        code.to_string(),
        p.display_name.clone(),
        comment.clone(),
    );
    let saved = blocking(move || {
        st.policies
            .put_agency(&c, base, &doc, &st.inventory, &by, &why)
    })
    .await?;
    let v = &saved.in_force;
    if saved.changed {
        let action = if rollback_to.is_some() {
            "policy.rollback"
        } else {
            "policy.save"
        };
        audit(
            s,
            event(
                p,
                action,
                code,
                json!({"version": v.policy.version, "base_version": base, "rollback_to": rollback_to,
                       "comment": comment, "default_version": v.stored.default_version}),
            ),
        )
        .await;
    }
    let mut answer = in_force_answer(v);
    answer["changed"] = Value::Bool(saved.changed);
    Ok(Json(answer).into_response())
}

/// `POST /api/v1/agencies/{code}/policy/rollback`: an earlier version's
/// document as the next version.
pub async fn rollback_agency_policy(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(code): Path<String>,
    Body(b): Body<RollbackBody>,
) -> Answer {
    let code = agency_of(&p, &s, &code)?;
    let comment = comment_ok(&b.comment)?;
    let (st, c, n) = (s.clone(), code.clone(), b.version);
    let old = blocking(move || st.policies.version(&c, n)).await?;
    let doc = match &old.document {
        Some(d) => parse_document(d),
        None => whole(&old),
    };
    let why = format!("rollback to v{}: {comment}", b.version);
    save_agency(&s, &p, &code, b.base_version, doc, why, Some(b.version)).await
}

/// A version that came whole, as a document.
fn whole(v: &PolicyVersion) -> Value {
    let mut d = parse_document(&v.policy_json);
    if let Value::Object(m) = &mut d {
        m.remove("version");
        m.remove("agency");
    }
    d
}

/// `GET /api/v1/agencies/{code}/policy/versions`
pub async fn agency_versions(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(code): Path<String>,
    Q(q): Q<VersionsQuery>,
) -> Answer {
    let code = agency_of(&p, &s, &code)?;
    let limit = crate::api::row_limit(q.limit, 100, 1000)?;
    let st = s.clone();
    let rows = blocking(move || st.policies.versions(&code, limit)).await?;
    let rows: Vec<Value> = rows.iter().map(version_row).collect();
    Ok(Json(rows).into_response())
}

fn version_row(v: &PolicyVersion) -> Value {
    json!({
        "version": v.version, "created_ms": v.created_ms, "created_by": v.created_by,
        "comment": v.comment, "follows_default": v.document.is_some(),
        "default_version": v.default_version, "key_id": v.key_id,
    })
}

/// `GET /api/v1/agencies/{code}/policy/versions/{version}`
pub async fn agency_version(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((code, version)): Path<(String, u64)>,
    Q(q): Q<CompareQuery>,
) -> Answer {
    let code = agency_of(&p, &s, &code)?;
    let st = s.clone();
    let v = blocking(move || {
        let v = st.policies.version(&code, version)?;
        let against = match q.against {
            Some(n) => Some(st.policies.version(&code, n)?),
            None => None,
        };
        Ok((v, against))
    })
    .await?;
    let (v, against) = v;
    let mut row = version_row(&v);
    row["policy"] = match &v.document {
        Some(d) => parse_document(d),
        None => whole(&v),
    };
    row["effective"] = parse_document(&v.policy_json);
    if let Some(a) = against {
        // Leaf by leaf, from the other version's effective policy to this one's.
        let changes = simpul_core::policy::document::diff(
            &parse_document(&a.policy_json),
            &parse_document(&v.policy_json),
        );
        row["against"] = json!(a.version);
        row["changes"] = serde_json::to_value(changes).unwrap_or(Value::Null);
    }
    Ok(Json(row).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// Another version: the answer adds what changed from it to this one.
    against: Option<u64>,
}

/// `POST /api/v1/agencies/{code}/policy/preview`: problems, the merged
/// policy, what changes against the version in force, and for a node the
/// nft/tc plan it would apply now.
pub async fn preview_agency_policy(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(code): Path<String>,
    Body(b): Body<PreviewBody>,
) -> Answer {
    let code = agency_of(&p, &s, &code)?;
    let node = match &b.node {
        Some(n) => {
            check_code("node", n)?;
            let inv = s.inventory.current();
            match inv.node(n) {
                Some(found) if found.agency == code => Some(n.clone()),
                _ => return Err(not_found(format!("no node {n:?} of agency {code:?}")).into()),
            }
        }
        None => None,
    };
    let st = s.clone();
    let (preview, plan) = blocking(move || {
        let preview = st.policies.preview(&code, &b.policy, &st.inventory);
        let plan = match (&node, &preview.effective) {
            (Some(n), Some(policy)) if preview.problems.is_empty() => {
                Some(plan_for(&st, n, policy))
            }
            _ => None,
        };
        Ok((preview, plan))
    })
    .await?;
    let Preview {
        problems,
        effective,
        changes,
    } = preview;
    Ok(Json(json!({
        "problems": problems,
        "effective": effective.as_ref().map(policy_value),
        "changes": changes,
        "plan": plan,
    }))
    .into_response())
}

/// The plan a node would apply for `policy` now. The collector does not
/// know the router's interface names: `lan`/`wan` stand for them.
fn plan_for(s: &AppState, node: &str, policy: &simpul_proto::policy::Policy) -> Value {
    let inv = s.inventory.current();
    let view = match simpul_core::inventory::NodeView::from_inventory(&inv, node) {
        Ok(v) => v,
        Err(e) => return json!({"node": node, "error": e.to_string()}),
    };
    let target = simpul_core::enforce::plan::EnforceTarget {
        lan: "lan".into(),
        wan: "wan".into(),
        always_allow: Vec::new(),
        dns_redirect: None,
    };
    let now = time::OffsetDateTime::now_utc();
    match simpul_core::enforce::plan::plan(
        policy,
        &view,
        &target,
        now,
        // What a real edge router offers; the node detects its own kernel's.
        simpul_core::enforce::plan::LeafQdisc::PREFERENCE[0],
    ) {
        Ok(plan) => json!({
            "node": node, "interfaces": "lan and wan stand for the router's own interfaces",
            "schedule": plan.schedule, "agency_suspended": plan.agency_suspended,
            "suspended_units": plan.suspended_units,
            "classes": plan.classes.iter().map(|c| json!({"classid": c.classid, "name": c.name,
                "download": c.download, "upload": c.upload})).collect::<Vec<_>>(),
            "nft": plan.nft, "tc": plan.tc,
        }),
        Err(e) => json!({"node": node, "error": e.to_string()}),
    }
}

/// `GET /api/v1/policy/default`
pub async fn default_policy(State(s): State<AppState>) -> Answer {
    Ok(Json(default_answer(&s.policies.default_policy())).into_response())
}

fn default_answer(d: &DefaultPolicyVersion) -> Value {
    json!({
        "version": d.version, "policy": parse_document(&d.document),
        "created_ms": if d.version == 0 { None } else { Some(d.created_ms) },
        "created_by": if d.version == 0 { None } else { Some(d.created_by.clone()) },
        "comment": if d.version == 0 { None } else { Some(d.comment.clone()) },
    })
}

/// `PUT /api/v1/policy/default`
pub async fn put_default_policy(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<SaveBody>,
) -> Answer {
    let comment = comment_ok(&b.comment)?;
    save_default(&s, &p, b.base_version, b.policy, comment, None).await
}

async fn save_default(
    s: &AppState,
    p: &Principal,
    base: u64,
    doc: Value,
    comment: String,
    rollback_to: Option<u64>,
) -> Answer {
    let (st, by, why) = (s.clone(), p.display_name.clone(), comment.clone());
    let saved = blocking(move || {
        st.policies
            .put_default(base, &doc, &st.inventory, &by, &why)
    })
    .await?;
    let agencies: Vec<Value> = saved
        .agencies
        .iter()
        .map(|v| json!({"agency": v.policy.agency, "version": v.policy.version}))
        .collect();
    let action = if rollback_to.is_some() {
        "policy.default.rollback"
    } else {
        "policy.default.save"
    };
    audit(
        s,
        event(
            p,
            action,
            "default",
            json!({"version": saved.default.version, "base_version": base, "rollback_to": rollback_to,
                   "comment": comment, "agencies": agencies}),
        ),
    )
    .await;
    let mut answer = default_answer(&saved.default);
    answer["agencies"] = Value::Array(agencies);
    Ok(Json(answer).into_response())
}

/// `GET /api/v1/policy/default/versions`
pub async fn default_versions(State(s): State<AppState>, Q(q): Q<VersionsQuery>) -> Answer {
    let limit = crate::api::row_limit(q.limit, 100, 1000)?;
    let st = s.clone();
    let rows = blocking(move || st.policies.default_versions(limit)).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|d| json!({"version": d.version, "created_ms": d.created_ms, "created_by": d.created_by, "comment": d.comment}))
        .collect();
    Ok(Json(rows).into_response())
}

/// `GET /api/v1/policy/default/versions/{version}`
pub async fn default_version(State(s): State<AppState>, Path(version): Path<u64>) -> Answer {
    let st = s.clone();
    let d = blocking(move || st.policies.default_version(version)).await?;
    Ok(Json(default_answer(&d)).into_response())
}

/// `POST /api/v1/policy/default/rollback`
pub async fn rollback_default_policy(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<RollbackBody>,
) -> Answer {
    let comment = comment_ok(&b.comment)?;
    let (st, n) = (s.clone(), b.version);
    let old = blocking(move || st.policies.default_version(n)).await?;
    let why = format!("rollback to v{}: {comment}", b.version);
    save_default(
        &s,
        &p,
        b.base_version,
        parse_document(&old.document),
        why,
        Some(b.version),
    )
    .await
}

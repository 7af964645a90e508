//! `/api/v1/auth/*`, `/api/v1/users`, `/api/v1/tokens`, `/api/v1/audit`:
//! logging in and out, sessions, operator accounts, API tokens, and the
//! audit log. Every change here is audited.

use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;

use super::{audit, client_address, event, password, Principal, Role, Via, COOKIE};
use crate::api::{bad, Body, Q};
use crate::api::{time_range, ApiError};
use crate::state::{now_ms, AppState};
use crate::store::{AuditEntry, AuditFilter, NewApiToken, NewAudit, NewSession, StoreError, User};

/// Whether this listener is HTTPS (cookies get `Secure`, answers HSTS).
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    pub tls: bool,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn blocking<T, F>(s: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn crate::store::AccessStore) -> Result<T, StoreError> + Send + 'static,
{
    let store = s.access.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(internal)?
        .map_err(crate::api::store_error)
}

fn cookie_header(secret: &str, tls: bool, max_age_secs: Option<u64>) -> Option<HeaderValue> {
    let mut v = format!("{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict");
    if tls {
        v.push_str("; Secure");
    }
    if let Some(a) = max_age_secs {
        v.push_str(&format!("; Max-Age={a}"));
    }
    HeaderValue::from_str(&v).ok()
}

/// What a login (and `/auth/me`) answers.
#[derive(Debug, Serialize)]
pub struct Me {
    pub username: String,
    pub display_name: String,
    #[serde(flatten)]
    pub role: Role,
    /// Repeat as `X-CSRF-Token` on every POST, PATCH and DELETE (sessions only).
    pub csrf_token: Option<String>,
    pub kiosk: bool,
    pub session_id: Option<String>,
    /// The NOC's time zone (`notify.utc_offset`): the dashboard shows every
    /// time in it, whatever zone the browser or the collector's host runs in.
    pub zone: Zone,
}

#[derive(Debug, Serialize)]
pub struct Zone {
    pub offset_secs: i32,
    /// WIB, WITA, WIT for +7, +8, +9 (Indonesia has no DST), else "UTC+hh:mm".
    pub label: String,
}

impl Zone {
    fn of(offset_secs: i32) -> Zone {
        let label = match offset_secs {
            25_200 => "WIB".to_string(),
            28_800 => "WITA".to_string(),
            32_400 => "WIT".to_string(),
            s => {
                let sign = if s < 0 { '-' } else { '+' };
                let a = s.unsigned_abs();
                format!("UTC{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
            }
        };
        Zone { offset_secs, label }
    }
}

impl Me {
    fn of(p: &Principal, s: &AppState) -> Me {
        let (csrf, kiosk, sid) = match &p.via {
            Via::Session { id, csrf, kiosk } => (Some(csrf.clone()), *kiosk, Some(id.clone())),
            Via::Token { .. } => (None, false, None),
        };
        Me {
            username: p.name.clone(),
            display_name: p.display_name.clone(),
            role: p.role.clone(),
            csrf_token: csrf,
            kiosk,
            session_id: sid,
            zone: Zone::of(s.config.utc_offset().seconds()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

const WRONG: &str = "wrong username or password";

fn too_many(secs: u64) -> Response {
    let mut r = ApiError(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed logins; try again in {secs} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub async fn login(
    State(s): State<AppState>,
    Extension(listener): Extension<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(b): Body<LoginBody>,
) -> Result<Response, ApiError> {
    let address = client_address(&headers, Some(peer), s.auth.config.trust_forwarded_for);
    let username: String = b.username.trim().chars().take(64).collect();
    let now = now_ms();
    if let Err(secs) = s.auth.throttled(&username, &address, now) {
        metrics::counter!("simpul_auth_logins_total", "result" => "throttled").increment(1);
        audit(
            &s,
            NewAudit {
                actor: username.clone(),
                address: address.clone(),
                action: "auth.login".into(),
                target: username.clone(),
                detail: json!({"reason": "throttled", "retry_after_secs": secs}).to_string(),
                outcome: "denied".into(),
            },
        )
        .await;
        return Ok(too_many(secs));
    }
    let permit = s.auth.hashing.acquire().await.map_err(internal)?;
    let (name, pw) = (username.clone(), b.password);
    let store = s.access.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let found = store.user(&name)?;
        Ok::<_, StoreError>(match found {
            Some((u, phc)) => {
                let ok = password::verify(&pw, &phc);
                Some((u, ok))
            }
            None => {
                password::verify_nothing(&pw);
                None
            }
        })
    })
    .await
    .map_err(internal)?
    .map_err(crate::api::store_error)?;
    drop(permit);
    let user = match checked {
        Some((u, true)) if !u.disabled => u,
        other => {
            let reason = match other {
                None => "unknown username",
                Some((_, false)) => "wrong password",
                Some(_) => "account disabled",
            };
            s.auth.login_failed(&username, &address, now);
            metrics::counter!("simpul_auth_logins_total", "result" => "failed").increment(1);
            audit(
                &s,
                NewAudit {
                    actor: username.clone(),
                    address,
                    action: "auth.login".into(),
                    target: username,
                    detail: json!({ "reason": reason }).to_string(),
                    outcome: "denied".into(),
                },
            )
            .await;
            return Err(ApiError(StatusCode::UNAUTHORIZED, WRONG.into()));
        }
    };
    s.auth.login_succeeded(&username);
    metrics::counter!("simpul_auth_logins_total", "result" => "ok").increment(1);
    let ua: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (idle, max) = (s.auth.idle_ms(), s.auth.max_ms());
    let (uname, addr) = (user.username.clone(), address.clone());
    let (secret, session) = blocking(&s, move |st| {
        st.create_session(&NewSession {
            username: &uname,
            address: &addr,
            user_agent: &ua,
            now_ms: now,
            expires_ms: now + max,
            idle_ms: Some(idle),
            token_id: None,
        })
    })
    .await?;
    audit(
        &s,
        NewAudit {
            actor: user.username.clone(),
            address: address.clone(),
            action: "auth.login".into(),
            target: user.username.clone(),
            detail: json!({"session": session.id, "role": user.role.to_string()}).to_string(),
            outcome: "ok".into(),
        },
    )
    .await;
    let p = Principal {
        name: user.username,
        display_name: user.display_name,
        role: user.role,
        via: Via::Session {
            id: session.id,
            csrf: session.csrf_token,
            kiosk: false,
        },
        address,
    };
    let mut r = Json(Me::of(&p, &s)).into_response();
    if let Some(c) = cookie_header(&secret, listener.tls, None) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskBody {
    pub token: String,
}

/// Trade a kiosk token (from the wall's URL) for a read-only session, so
/// the token leaves the address bar and the live feed gets a cookie.
pub async fn kiosk(
    State(s): State<AppState>,
    Extension(listener): Extension<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(b): Body<KioskBody>,
) -> Result<Response, ApiError> {
    let address = client_address(&headers, Some(peer), s.auth.config.trust_forwarded_for);
    let now = now_ms();
    // Per address: a shared key would let six bogus tokens from anywhere
    // lock every wall out. Kiosk tokens are 256 random bits: guessing is
    // hopeless, the throttle only stops noise.
    let key_owned = format!("kiosk@{address}");
    let key = key_owned.as_str();
    if let Err(secs) = s.auth.throttled(key, &address, now) {
        return Ok(too_many(secs));
    }
    let token = b.token.trim().to_string();
    let found = blocking(&s, move |st| st.api_token(&token)).await?;
    let t = match found {
        Some(t) if t.kiosk && super::token_problem(&t, now).is_none() => t,
        _ => {
            s.auth.login_failed(key, &address, now);
            audit(
                &s,
                NewAudit {
                    actor: "kiosk".into(),
                    address,
                    action: "auth.kiosk".into(),
                    target: String::new(),
                    detail: json!({"reason": "unknown, revoked, expired or not a kiosk token"})
                        .to_string(),
                    outcome: "denied".into(),
                },
            )
            .await;
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "unknown, revoked or expired kiosk token".into(),
            ));
        }
    };
    let ends = t
        .expires_ms
        .unwrap_or(u64::MAX)
        .min(now + s.auth.kiosk_ms());
    let (name, id, addr) = (t.name.clone(), t.id.clone(), address.clone());
    let ua: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (secret, session) = blocking(&s, move |st| {
        st.create_session(&NewSession {
            username: &name,
            address: &addr,
            user_agent: &ua,
            now_ms: now,
            expires_ms: ends,
            idle_ms: None,
            token_id: Some(&id),
        })
    })
    .await?;
    audit(
        &s,
        NewAudit {
            actor: format!("kiosk:{}", t.name),
            address: address.clone(),
            action: "auth.kiosk".into(),
            target: t.id.clone(),
            detail: json!({"session": session.id}).to_string(),
            outcome: "ok".into(),
        },
    )
    .await;
    let p = Principal {
        name: t.name.clone(),
        display_name: t.name,
        role: t.role,
        via: Via::Session {
            id: session.id,
            csrf: session.csrf_token,
            kiosk: true,
        },
        address,
    };
    let mut r = Json(Me::of(&p, &s)).into_response();
    let max_age = ends.saturating_sub(now) / 1000;
    if let Some(c) = cookie_header(&secret, listener.tls, Some(max_age)) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

pub async fn logout(
    State(s): State<AppState>,
    Extension(listener): Extension<Listener>,
    Extension(p): Extension<Principal>,
) -> Result<Response, ApiError> {
    let Via::Session { id, .. } = &p.via else {
        return Err(bad("API tokens do not log out; revoke the token instead"));
    };
    let sid = id.clone();
    blocking(&s, move |st| st.revoke_session(&sid, now_ms())).await?;
    audit(&s, event(&p, "auth.logout", id, json!({}))).await;
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Some(c) = cookie_header("", listener.tls, Some(0)) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

pub async fn me(State(s): State<AppState>, Extension(p): Extension<Principal>) -> Json<Me> {
    Json(Me::of(&p, &s))
}

/// Open sessions: an admin sees everyone's, others their own.
pub async fn sessions(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<impl IntoResponse, ApiError> {
    let own = (p.role != Role::Admin).then(|| p.name.clone());
    Ok(Json(
        blocking(&s, move |st| st.sessions(own.as_deref(), now_ms())).await?,
    ))
}

pub async fn end_session(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let now = now_ms();
    let own = (p.role != Role::Admin).then(|| p.name.clone());
    let sid = id.clone();
    let ended = blocking(&s, move |st| {
        let open = st.sessions(own.as_deref(), now)?;
        if open.iter().any(|x| x.id == sid) {
            st.revoke_session(&sid, now)
        } else {
            Ok(false)
        }
    })
    .await?;
    if !ended {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no open session {id:?} of yours"),
        ));
    }
    audit(&s, event(&p, "auth.session_revoke", &id, json!({}))).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn users(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&s, |st| st.users()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub username: String,
    pub display_name: Option<String>,
    pub role: String,
    pub agency: Option<String>,
    pub password: String,
}

/// A username: the code rules (`A-Za-z0-9_-`, 1-64) plus dots, so
/// `budi.santoso` works.
pub fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Checks shared by the CLI and the API; the user to add.
pub fn new_user(
    s_inventory: &crate::inventory::Inventories,
    username: &str,
    display_name: Option<&str>,
    role: &str,
    agency: Option<&str>,
    pw: &str,
    now: u64,
) -> Result<User, String> {
    if !valid_username(username) {
        return Err("username: 1-64 characters of A-Z a-z 0-9 . _ -".into());
    }
    let role = Role::parse(role, agency).map_err(|e| e.to_string())?;
    if let Some(a) = role.agency() {
        if s_inventory.current().agency(a).is_none() {
            return Err(format!("agency {a:?} is not in the inventory"));
        }
    }
    let display = display_name.unwrap_or(username).trim().to_string();
    simpul_proto::problem::check_free_text(&display, 80)
        .map_err(|e| format!("display_name: {e}"))?;
    password::check_rules(username, pw).map_err(|e| e.to_string())?;
    Ok(User {
        username: username.to_string(),
        display_name: display,
        role,
        disabled: false,
        created_ms: now,
        password_changed_ms: now,
    })
}

pub async fn add_user(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<NewUserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let now = now_ms();
    let user = new_user(
        &s.inventory,
        b.username.trim(),
        b.display_name.as_deref(),
        &b.role,
        b.agency.as_deref(),
        &b.password,
        now,
    )
    .map_err(bad)?;
    let pw = b.password;
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let u = user.clone();
    blocking(&s, move |st| st.add_user(&u, &hash)).await?;
    audit(
        &s,
        event(
            &p,
            "user.add",
            &user.username,
            json!({"role": user.role.to_string()}),
        ),
    )
    .await;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub password: Option<String>,
    pub disabled: Option<bool>,
    /// A new role (`agency` with `agency`); ends the account's sessions.
    pub role: Option<String>,
    pub agency: Option<String>,
}

pub async fn change_user(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Body(b): Body<UserChange>,
) -> Result<impl IntoResponse, ApiError> {
    let now = now_ms();
    if b.password.is_none() && b.disabled.is_none() && b.role.is_none() {
        return Err(bad(
            "nothing to change: give password, disabled and/or role",
        ));
    }
    if b.agency.is_some() && b.role.is_none() {
        return Err(bad("agency goes with role (\"role\": \"agency\")"));
    }
    let role = match &b.role {
        None => None,
        Some(r) => {
            let role = Role::parse(r, b.agency.as_deref()).map_err(|e| bad(e.to_string()))?;
            if let Some(a) = role.agency() {
                if s.inventory.current().agency(a).is_none() {
                    return Err(bad(format!("agency {a:?} is not in the inventory")));
                }
            }
            if name == p.name && role != Role::Admin {
                return Err(bad(
                    "an admin cannot take the admin role from their own account",
                ));
            }
            Some(role)
        }
    };
    if b.disabled == Some(true) && name == p.name {
        return Err(bad("an admin cannot disable their own account"));
    }
    let n = name.clone();
    let exists = blocking(&s, move |st| st.user(&n)).await?.is_some();
    if !exists {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no user {name:?}")));
    }
    if let Some(pw) = b.password {
        password::check_rules(&name, &pw).map_err(|e| bad(e.to_string()))?;
        let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let n = name.clone();
        blocking(&s, move |st| st.set_password(&n, &hash, now)).await?;
        audit(&s, event(&p, "user.password", &name, json!({}))).await;
    }
    if let Some(d) = b.disabled {
        let n = name.clone();
        blocking(&s, move |st| st.set_disabled(&n, d, now)).await?;
        audit(
            &s,
            event(
                &p,
                if d { "user.disable" } else { "user.enable" },
                &name,
                json!({}),
            ),
        )
        .await;
    }
    if let Some(role) = role {
        let (n, r) = (name.clone(), role.clone());
        blocking(&s, move |st| st.set_role(&n, &r, now)).await?;
        audit(
            &s,
            event(&p, "user.role", &name, json!({"role": role.to_string()})),
        )
        .await;
    }
    let n = name.clone();
    let u = blocking(&s, move |st| st.user(&n)).await?.map(|(u, _)| u);
    Ok(Json(u))
}

pub async fn tokens(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(&s, |st| st.api_tokens()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    pub name: String,
    pub role: String,
    pub agency: Option<String>,
    pub expires_days: Option<u64>,
    /// A kiosk token opens a read-only wall session (role must be viewer).
    #[serde(default)]
    pub kiosk: bool,
}

/// Checks shared by the CLI and the API.
pub fn check_token(
    inv: &crate::inventory::Inventories,
    name: &str,
    role: &str,
    agency: Option<&str>,
    kiosk: bool,
    expires_days: Option<u64>,
) -> Result<Role, String> {
    simpul_proto::problem::check_free_text(name, 80).map_err(|e| format!("name: {e}"))?;
    if name.trim().is_empty() {
        return Err("name: give the token a name (who or what uses it)".into());
    }
    let role = Role::parse(role, agency).map_err(|e| e.to_string())?;
    if let Some(a) = role.agency() {
        if inv.current().agency(a).is_none() {
            return Err(format!("agency {a:?} is not in the inventory"));
        }
    }
    if kiosk && role != Role::Viewer {
        return Err("a kiosk token has role viewer (the wall is read-only)".into());
    }
    if expires_days == Some(0) || expires_days.is_some_and(|d| d > 3660) {
        return Err("expires_days: 1..3660".into());
    }
    Ok(role)
}

#[derive(Debug, Serialize)]
pub struct CreatedToken {
    /// Shown once: only its hash is kept.
    pub token: String,
    #[serde(flatten)]
    pub info: crate::store::ApiToken,
}

pub async fn add_token(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(b): Body<NewTokenBody>,
) -> Result<impl IntoResponse, ApiError> {
    let role = check_token(
        &s.inventory,
        &b.name,
        &b.role,
        b.agency.as_deref(),
        b.kiosk,
        b.expires_days,
    )
    .map_err(bad)?;
    let now = now_ms();
    let expires = b.expires_days.map(|d| now + d * 86_400_000);
    let (name, by, kiosk) = (b.name.trim().to_string(), p.actor(), b.kiosk);
    let r = role.clone();
    let (token, info) = blocking(&s, move |st| {
        st.create_api_token(&NewApiToken {
            name: &name,
            role: &r,
            kiosk,
            created_by: &by,
            now_ms: now,
            expires_ms: expires,
        })
    })
    .await?;
    audit(
        &s,
        event(
            &p,
            "token.create",
            &info.id,
            json!({"name": info.name, "role": role.to_string(), "kiosk": kiosk, "expires_ms": expires}),
        ),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

pub async fn revoke_token(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let i = id.clone();
    if !blocking(&s, move |st| st.revoke_api_token(&i, now_ms())).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no active token {id:?}"),
        ));
    }
    audit(&s, event(&p, "token.revoke", &id, json!({}))).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub limit: Option<usize>,
    /// `csv` for a spreadsheet; JSON otherwise.
    pub format: Option<String>,
}

/// The audit log, newest first (default: the last 7 days, 500 rows).
pub async fn audit_log(
    State(s): State<AppState>,
    Q(q): Q<AuditQuery>,
) -> Result<Response, ApiError> {
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), 7 * 86_400)?;
    let limit = crate::api::row_limit(q.limit, 500, 100_000)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => return Err(bad(format!("format: {f:?} is not json or csv"))),
    };
    let filter = AuditFilter {
        from_ms: from * 1000,
        to_ms: to * 1000,
        actor: q.actor,
        action: q.action,
        limit,
    };
    let rows = blocking(&s, move |st| st.audit(&filter)).await?;
    if !csv {
        return Ok(Json(rows).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"simpul-audit.csv\"",
            ),
        ],
        audit_csv(&rows),
    )
        .into_response())
}

/// RFC 4180 CSV; a cell that a spreadsheet would run as a formula gets a
/// leading apostrophe.
pub fn audit_csv(rows: &[AuditEntry]) -> String {
    fn cell(v: &str) -> String {
        let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{v}")
        } else {
            v.to_string()
        };
        if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v
        }
    }
    let mut out =
        String::from("seq,time,actor,address,action,target,outcome,detail,prev_hash,hash\n");
    for r in rows {
        let time = simpul_proto::time_format::rfc3339(r.at_ms.saturating_mul(1_000_000));
        let cells = [
            r.seq.to_string(),
            time,
            r.event.actor.clone(),
            r.event.address.clone(),
            r.event.action.clone(),
            r.event.target.clone(),
            r.event.outcome.clone(),
            r.event.detail.clone(),
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        let line: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let rows = vec![AuditEntry {
            seq: 1,
            at_ms: 1_800_000_000_000,
            event: NewAudit {
                actor: "=cmd|' /C calc'!A0".into(),
                address: "10.0.0.1".into(),
                action: "auth.login".into(),
                target: "a,b".into(),
                detail: "{\"reason\":\"x\"}".into(),
                outcome: "denied".into(),
            },
            prev_hash: "00".into(),
            hash: "ab".into(),
        }];
        let csv = audit_csv(&rows);
        let line = csv.lines().nth(1).unwrap();
        assert!(line.contains(",'=cmd|' /C calc'!A0,"), "{line}");
        assert!(line.contains(",\"a,b\","), "{line}");
        assert!(line.contains("\"{\"\"reason\"\":\"\"x\"\"}\""), "{line}");
    }

    #[test]
    fn zone_labels() {
        assert_eq!(Zone::of(7 * 3600).label, "WIB");
        assert_eq!(Zone::of(8 * 3600).label, "WITA");
        assert_eq!(Zone::of(9 * 3600).label, "WIT");
        assert_eq!(Zone::of(0).label, "UTC+00:00");
        assert_eq!(Zone::of(5 * 3600 + 1800).label, "UTC+05:30");
        assert_eq!(Zone::of(-3 * 3600).label, "UTC-03:00");
    }

    #[test]
    fn usernames() {
        assert!(valid_username("budi.santoso"));
        assert!(!valid_username("budi santoso"));
        assert!(!valid_username(""));
        assert!(!valid_username(&"a".repeat(65)));
    }
}

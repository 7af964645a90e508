//! Who is asking, and may they: operator sessions (cookie + CSRF token),
//! bearer API tokens, kiosk sessions for the wall; the role check every
//! route makes (`routes.rs` names each route's [`Access`]); login
//! throttling; the audit trail's entry point.
//!
//! The pure parts (roles, password rules, throttling, session validity) are
//! here and in the submodules; the storage is `store/access.rs`; the HTTP
//! endpoints are `api.rs` in this module.

pub mod api;
pub mod cli;
pub mod password;
pub mod role;
pub mod throttle;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use role::{Access, Role, RoleError};

use crate::api::ApiError;
use crate::state::{now_ms, AppState};
use crate::store::{ApiToken, NewAudit, Session, User};

/// The session cookie's name.
pub const COOKIE: &str = "simpul_session";
/// Header that must repeat the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Activity is written back at most this often per session or token.
const TOUCH_EVERY_MS: u64 = 60_000;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Via {
    /// A browser session (a password login, or a kiosk token traded for one).
    Session {
        id: String,
        #[serde(skip)]
        csrf: String,
        kiosk: bool,
    },
    /// `Authorization: Bearer` with an API token.
    Token { id: String },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The username, or the token's name.
    pub name: String,
    pub display_name: String,
    #[serde(flatten)]
    pub role: Role,
    pub via: Via,
    /// The client address (after a trusted proxy's X-Forwarded-For).
    pub address: String,
}

impl Principal {
    /// Who to name in the audit log and on acknowledgements.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Token { id } => format!("token:{}:{id}", self.name),
            Via::Session { kiosk: true, .. } => format!("kiosk:{}", self.name),
            Via::Session { .. } => self.name.clone(),
        }
    }

    /// The agency filter a request runs with: an agency officer gets their
    /// agency whatever they asked, and asking for another one is refused.
    pub fn scope(&self, asked: Option<String>) -> Result<Option<String>, ApiError> {
        match (self.role.agency(), asked) {
            (None, asked) => Ok(asked),
            (Some(own), None) => Ok(Some(own.to_string())),
            (Some(own), Some(a)) if a == own => Ok(Some(a)),
            (Some(own), Some(a)) => Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("this account sees agency {own:?} only, not {a:?}"),
            )),
        }
    }

    /// Whether data of `agency` may appear in an answer to this caller.
    pub fn sees(&self, agency: &str) -> bool {
        self.role.agency().is_none_or(|own| own == agency)
    }
}

/// Session lengths and throttling (collector.toml `[auth]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A session ends after this long without a request.
    pub session_idle_minutes: u64,
    /// ...and this long after the login, whatever the activity.
    pub session_max_hours: u64,
    /// A kiosk session (the wall) lasts this long, or until its token ends.
    pub kiosk_session_days: u64,
    /// Failed logins allowed per account, then 30 s, 60 s, … up to 15 min.
    pub free_failures_per_account: u32,
    /// The same per client address (several people may share one).
    pub free_failures_per_address: u32,
    /// Trust X-Forwarded-For from a proxy on loopback (the plain `listen`
    /// behind a reverse proxy): the client address is its last hop.
    pub trust_forwarded_for: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_idle_minutes: 30,
            session_max_hours: 12,
            kiosk_session_days: 30,
            free_failures_per_account: 5,
            free_failures_per_address: 20,
            trust_forwarded_for: false,
        }
    }
}

impl AuthConfig {
    pub fn problems(&self) -> Vec<simpul_proto::Problem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, msg: &str| {
            out.push(simpul_proto::Problem::new(format!("auth.{key}"), msg));
        };
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            bad("session_idle_minutes", "must be 1..1440");
        }
        if !(1..=24 * 30).contains(&self.session_max_hours) {
            bad("session_max_hours", "must be 1..720");
        }
        if !(1..=366).contains(&self.kiosk_session_days) {
            bad("kiosk_session_days", "must be 1..366");
        }
        if self.free_failures_per_account == 0 || self.free_failures_per_address == 0 {
            bad(
                "free_failures_per_account",
                "free failures must be at least 1",
            );
        }
        out
    }
}

/// Shared authentication state: throttles and the argon2 gate.
pub struct Auth {
    pub config: AuthConfig,
    accounts: Mutex<throttle::Throttle>,
    addresses: Mutex<throttle::Throttle>,
    /// argon2 is deliberately slow: at most two checks run at once, so a
    /// login flood cannot take every core from ingest.
    pub hashing: tokio::sync::Semaphore,
}

impl Auth {
    pub fn new(config: AuthConfig) -> Auth {
        Auth {
            accounts: Mutex::new(throttle::Throttle::new(config.free_failures_per_account)),
            addresses: Mutex::new(throttle::Throttle::new(config.free_failures_per_address)),
            config,
            hashing: tokio::sync::Semaphore::new(2),
        }
    }

    /// Ok, or the seconds to wait (the longer of the two locks).
    pub fn throttled(&self, account: &str, address: &str, now: u64) -> Result<(), u64> {
        let a = lock(&self.accounts).check(account, now);
        let b = lock(&self.addresses).check(address, now);
        match (a, b) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(x), Err(y)) => Err(x.max(y)),
            (Err(x), _) | (_, Err(x)) => Err(x),
        }
    }

    pub fn login_failed(&self, account: &str, address: &str, now: u64) {
        lock(&self.accounts).failed(account, now);
        lock(&self.addresses).failed(address, now);
    }

    pub fn login_succeeded(&self, account: &str) {
        lock(&self.accounts).clear(account);
    }

    pub fn idle_ms(&self) -> u64 {
        self.config.session_idle_minutes * 60_000
    }

    pub fn max_ms(&self) -> u64 {
        self.config.session_max_hours * 3_600_000
    }

    pub fn kiosk_ms(&self) -> u64 {
        self.config.kiosk_session_days * 86_400_000
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a session cannot be used (None: it can).
pub fn session_problem(s: &Session, user: Option<&User>, now_ms: u64) -> Option<&'static str> {
    if s.revoked_ms.is_some() {
        return Some("the session ended (logged out or revoked); log in again");
    }
    if now_ms >= s.expires_ms {
        return Some("the session expired; log in again");
    }
    if s.idle_ms
        .is_some_and(|idle| now_ms >= s.last_seen_ms.saturating_add(idle))
    {
        return Some("the session expired after inactivity; log in again");
    }
    if user.is_some_and(|u| u.disabled) {
        return Some("the account is disabled");
    }
    None
}

/// Why an API token cannot be used (None: it can).
pub fn token_problem(t: &ApiToken, now_ms: u64) -> Option<&'static str> {
    if t.revoked_ms.is_some() {
        return Some("the API token was revoked");
    }
    if t.expires_ms.is_some_and(|e| now_ms >= e) {
        return Some("the API token expired");
    }
    None
}

/// The client address: the TCP peer, or with `trust_forwarded_for` and a
/// loopback peer, the last address in X-Forwarded-For.
pub fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>, trust: bool) -> String {
    let peer_ip = peer.map(|p| p.ip());
    if trust && peer_ip.is_some_and(|ip| ip.is_loopback()) {
        if let Some(last) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return last.to_string();
        }
    }
    peer_ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

/// The session cookie's value, if the request carries one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && token.len() <= 256).then(|| token.trim().to_string())
}

/// Compares every byte whatever the first difference.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

pub fn unauthorized(msg: &str) -> ApiError {
    ApiError(StatusCode::UNAUTHORIZED, msg.to_string())
}

pub fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::FORBIDDEN, msg.into())
}

/// Who sent this request, from its cookie or bearer token; Ok(None) when it
/// carries neither.
pub async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Option<Principal>, ApiError> {
    let address = client_address(headers, peer, state.auth.config.trust_forwarded_for);
    let store = state.access.clone();
    let now = now_ms();
    if let Some(token) = bearer(headers) {
        let t = tokio::task::spawn_blocking(move || store.api_token(&token))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let Some(t) = t else {
            return Err(unauthorized("unknown API token"));
        };
        if let Some(why) = token_problem(&t, now) {
            return Err(unauthorized(why));
        }
        if t.last_used_ms
            .is_none_or(|l| now.saturating_sub(l) >= TOUCH_EVERY_MS)
        {
            let store = state.access.clone();
            let id = t.id.clone();
            tokio::task::spawn_blocking(move || store.touch_api_token(&id, now));
        }
        return Ok(Some(Principal {
            name: t.name.clone(),
            display_name: t.name.clone(),
            role: t.role.clone(),
            via: Via::Token { id: t.id },
            address,
        }));
    }
    let Some(secret) = cookie(headers) else {
        return Ok(None);
    };
    let store = state.access.clone();
    let found = tokio::task::spawn_blocking(move || {
        let Some((s, user)) = store.session(&secret)? else {
            return Ok(None);
        };
        // A kiosk session lives as long as its token does.
        let token = match &s.token_id {
            Some(id) => store.api_tokens()?.into_iter().find(|t| &t.id == id),
            None => None,
        };
        Ok::<_, crate::store::StoreError>(Some((s, user, token)))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    let Some((s, user, token)) = found else {
        return Err(unauthorized("unknown session; log in again"));
    };
    if let Some(why) = session_problem(&s, user.as_ref(), now) {
        return Err(unauthorized(why));
    }
    let (name, display_name, role) = match (&s.token_id, user, token) {
        (None, Some(u), _) => (u.username, u.display_name, u.role),
        (Some(_), _, Some(t)) => {
            if let Some(why) = token_problem(&t, now) {
                return Err(unauthorized(why));
            }
            (t.name.clone(), t.name, t.role)
        }
        _ => return Err(unauthorized("the session's account no longer exists")),
    };
    if now.saturating_sub(s.last_seen_ms) >= TOUCH_EVERY_MS {
        let store = state.access.clone();
        let id = s.id.clone();
        tokio::task::spawn_blocking(move || store.touch_session(&id, now));
    }
    Ok(Some(Principal {
        name,
        display_name,
        role,
        via: Via::Session {
            id: s.id,
            csrf: s.csrf_token,
            kiosk: s.token_id.is_some(),
        },
        address,
    }))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The per-route check: who is asking, may their role use this route, and
/// does a cookie-authenticated change carry the session's CSRF token. The
/// principal goes into the request for the handler.
pub async fn require(
    State(state): State<AppState>,
    access: Access,
    mut req: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let p = match identify(&state, req.headers(), peer).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            metrics::counter!("simpul_auth_denied_total", "status" => "401").increment(1);
            return unauthorized("log in first (session cookie or Authorization: Bearer token)")
                .into_response();
        }
        Err(e) => {
            metrics::counter!("simpul_auth_denied_total", "status" => "401").increment(1);
            return e.into_response();
        }
    };
    if !p.role.allows(access) {
        metrics::counter!("simpul_auth_denied_total", "status" => "403").increment(1);
        return forbidden(format!(
            "the {} role may not use this ({} access)",
            p.role.name(),
            access.name()
        ))
        .into_response();
    }
    if let Via::Session { csrf, kiosk, .. } = &p.via {
        if state_changing(req.method()) {
            if *kiosk {
                metrics::counter!("simpul_auth_denied_total", "status" => "403").increment(1);
                return forbidden("a kiosk session is read-only").into_response();
            }
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ct_eq(sent.as_bytes(), csrf.as_bytes()) {
                metrics::counter!("simpul_auth_denied_total", "status" => "403").increment(1);
                return forbidden("missing or wrong X-CSRF-Token header (reload the page)")
                    .into_response();
            }
        }
    }
    req.extensions_mut().insert(p);
    next.run(req).await
}

/// Append to the audit chain; a failure to write is logged loudly (the
/// action itself already happened).
pub async fn audit(state: &AppState, event: NewAudit) {
    let store = state.access.clone();
    tracing::info!(target: "audit", actor = %event.actor, address = %event.address, action = %event.action, target_ = %event.target, outcome = %event.outcome, detail = %event.detail);
    let r = tokio::task::spawn_blocking(move || store.append_audit(&event, now_ms())).await;
    match r {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot append to the audit log"),
        Err(e) => tracing::error!(error = %e, "cannot append to the audit log"),
    }
}

/// An audit event by an authenticated caller.
pub fn event(p: &Principal, action: &str, target: &str, detail: serde_json::Value) -> NewAudit {
    NewAudit {
        actor: p.actor(),
        address: p.address.clone(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
        outcome: "ok".into(),
    }
}

/// Shared, cheap to clone.
pub type SharedAuth = Arc<Auth>;

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: u64) -> Session {
        Session {
            id: "s".into(),
            username: "budi".into(),
            csrf_token: "c".into(),
            address: "10.0.0.1".into(),
            user_agent: "t".into(),
            created_ms: now,
            last_seen_ms: now,
            expires_ms: now + 12 * 3_600_000,
            idle_ms: Some(30 * 60_000),
            revoked_ms: None,
            token_id: None,
        }
    }

    #[test]
    fn sessions_end_on_revocation_idle_and_absolute_expiry() {
        let t0 = 1_000_000_000;
        let s = session(t0);
        assert_eq!(session_problem(&s, None, t0 + 1), None);
        assert!(session_problem(&s, None, t0 + 30 * 60_000)
            .unwrap()
            .contains("inactivity"));
        let busy = Session {
            last_seen_ms: t0 + 12 * 3_600_000 - 1,
            ..s.clone()
        };
        assert!(session_problem(&busy, None, t0 + 12 * 3_600_000)
            .unwrap()
            .contains("expired"));
        let revoked = Session {
            revoked_ms: Some(t0),
            ..s.clone()
        };
        assert!(session_problem(&revoked, None, t0 + 1)
            .unwrap()
            .contains("ended"));
        let kiosk = Session { idle_ms: None, ..s };
        assert_eq!(session_problem(&kiosk, None, t0 + 3 * 3_600_000), None);
    }

    #[test]
    fn agency_officers_are_confined_to_their_agency() {
        let p = Principal {
            name: "ani".into(),
            display_name: "Ani".into(),
            role: Role::Agency("dinkes".into()),
            via: Via::Token { id: "t".into() },
            address: "10.0.0.1".into(),
        };
        assert_eq!(p.scope(None).ok().flatten().as_deref(), Some("dinkes"));
        assert!(p.scope(Some("dinkes".into())).is_ok());
        assert!(p.scope(Some("bappeda".into())).is_err());
        assert!(p.sees("dinkes") && !p.sees("bappeda"));
        let admin = Principal {
            role: Role::Admin,
            ..p
        };
        assert_eq!(admin.scope(None).ok().flatten(), None);
        assert!(admin.sees("bappeda"));
    }

    #[test]
    fn cookies_and_forwarded_addresses() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; simpul_session=abc123; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc123"));
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.1.5".parse().unwrap());
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let far: SocketAddr = "10.9.9.9:5000".parse().unwrap();
        assert_eq!(client_address(&h, Some(lo), true), "10.1.1.5");
        assert_eq!(client_address(&h, Some(lo), false), "127.0.0.1");
        assert_eq!(client_address(&h, Some(far), true), "10.9.9.9");
    }
}

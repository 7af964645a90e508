//! The router, built from one table (`openapi::ENDPOINTS`): every route
//! carries the access level its handler is wrapped in, so the role check
//! cannot be forgotten for a new route, the OpenAPI document lists exactly
//! what is served, and `tests/access.rs` walks every route with every role.
//! Besides: the dashboard's files, JSON answers for unknown `/api` paths and
//! wrong methods, security headers on every answer, Host checks.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::{Extension, Router};

use crate::api::ApiError;
use crate::auth::api::Listener;
use crate::auth::Access;
use crate::openapi::{Endpoint, ENDPOINTS};
use crate::state::AppState;

/// Largest JSON body a route reads (logins, maintenance, users, tokens).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The handler of an endpoint of the table (None: the table names a route
/// this code does not serve, which a test forbids).
pub fn handler(e: &Endpoint, tls: bool) -> Option<MethodRouter<AppState>> {
    use crate::auth::api as auth;
    use crate::{api, lists_api as lists, outage, policy_api as pol};
    // Policy documents may carry inline domain lists.
    let big = axum::extract::DefaultBodyLimit::max(pol::MAX_POLICY_BYTES);
    let h = match (e.method, e.path) {
        ("get", "/healthz") => get(api::healthz),
        ("get", "/metrics") => get(api::metrics),
        ("get", "/api/v1/agent") if tls => get(crate::agent_ws::upgrade),
        ("get", "/api/v1/agent") => get(agent_needs_tls),
        ("post", "/api/v1/auth/login") => post(auth::login),
        ("post", "/api/v1/auth/kiosk") => post(auth::kiosk),
        ("post", "/api/v1/auth/logout") => post(auth::logout),
        ("get", "/api/v1/auth/me") => get(auth::me),
        ("get", "/api/v1/auth/sessions") => get(auth::sessions),
        ("delete", "/api/v1/auth/sessions/{id}") => delete(auth::end_session),
        ("get", "/api/v1/openapi.json") => get(crate::openapi::document),
        ("get", "/api/v1/live") => get(crate::live::upgrade),
        ("get", "/api/v1/nodes") => get(api::nodes),
        ("get", "/api/v1/netflow/exporters") => get(crate::netflow::api::exporters),
        ("post", "/api/v1/nodes/{id}/enrollment-token") => post(api::enrollment_token),
        ("post", "/api/v1/nodes/{id}/revoke") => post(api::revoke_node),
        ("get", "/api/v1/agencies") => get(api::agencies),
        ("get", "/api/v1/overview") => get(api::overview),
        ("get", "/api/v1/agencies/{code}/usage") => get(api::usage),
        ("get", "/api/v1/agencies/{code}/policy") => get(pol::agency_policy),
        ("put", "/api/v1/agencies/{code}/policy") => put(pol::put_agency_policy).layer(big),
        ("get", "/api/v1/agencies/{code}/policy/versions") => get(pol::agency_versions),
        ("get", "/api/v1/agencies/{code}/policy/versions/{version}") => get(pol::agency_version),
        ("post", "/api/v1/agencies/{code}/policy/preview") => {
            post(pol::preview_agency_policy).layer(big)
        }
        ("post", "/api/v1/agencies/{code}/policy/rollback") => post(pol::rollback_agency_policy),
        ("get", "/api/v1/policy/default") => get(pol::default_policy),
        ("put", "/api/v1/policy/default") => put(pol::put_default_policy).layer(big),
        ("get", "/api/v1/policy/default/versions") => get(pol::default_versions),
        ("get", "/api/v1/policy/default/versions/{version}") => get(pol::default_version),
        ("post", "/api/v1/policy/default/rollback") => post(pol::rollback_default_policy),
        ("get", "/api/v1/lists") => get(lists::lists),
        ("get", "/api/v1/lists/{list}") => get(lists::list),
        ("put", "/api/v1/lists/{list}") => {
            put(lists::upload).layer(axum::extract::DefaultBodyLimit::max(lists::MAX_UPLOAD_BODY))
        }
        ("get", "/api/v1/lists/{list}/content") => get(lists::content),
        ("put", "/api/v1/lists/{list}/source") => put(lists::set_source),
        ("delete", "/api/v1/lists/{list}/source") => delete(lists::remove_source),
        ("post", "/api/v1/lists/{list}/sync") => post(lists::sync_now),
        ("post", "/api/v1/lists/{list}/versions/{version}/confirm") => post(lists::confirm),
        ("post", "/api/v1/lists/{list}/versions/{version}/discard") => post(lists::discard),
        ("get", "/api/v1/top/hosts") => get(api::top_hosts),
        ("get", "/api/v1/top/sites") => get(api::top_sites),
        ("get", "/api/v1/flows") => get(crate::search_api::flows),
        ("get", "/api/v1/search") => get(crate::search_api::search),
        ("get", "/api/v1/agencies/{code}/units") => get(crate::search_api::agency_units),
        ("get", "/api/v1/blocked") => get(api::blocked),
        ("get", "/api/v1/blocked/summary") => get(api::blocked_summary),
        ("get", "/api/v1/incidents") => get(outage::api::incidents),
        ("get", "/api/v1/incidents/stats") => get(outage::api::stats),
        ("post", "/api/v1/incidents/{id}/ack") => post(outage::api::ack),
        ("get", "/api/v1/availability") => get(outage::api::availability),
        ("get", "/api/v1/maintenance") => get(outage::api::maintenance),
        ("post", "/api/v1/maintenance") => post(outage::api::add_maintenance),
        ("patch", "/api/v1/maintenance/{id}") => patch(outage::api::change_maintenance),
        ("post", "/api/v1/maintenance/{id}/end") => post(outage::api::end_maintenance),
        ("delete", "/api/v1/maintenance/{id}") => delete(outage::api::delete_maintenance),
        ("get", "/api/v1/notifications") => get(outage::api::notifications),
        ("get", "/api/v1/collectors") => get(crate::collectors_api::collectors),
        ("get", "/api/v1/users") => get(auth::users),
        ("post", "/api/v1/users") => post(auth::add_user),
        ("patch", "/api/v1/users/{name}") => patch(auth::change_user),
        ("get", "/api/v1/tokens") => get(auth::tokens),
        ("post", "/api/v1/tokens") => post(auth::add_token),
        ("delete", "/api/v1/tokens/{id}") => delete(auth::revoke_token),
        ("get", "/api/v1/audit") => get(auth::audit_log),
        ("get", "/api/v1/reports/monthly") => get(crate::reports::api::monthly),
        _ => return None,
    };
    Some(h)
}

/// The whole router of one listener (`tls`: the HTTPS one, which also
/// takes agents).
pub fn router(state: AppState, tls: bool) -> Router {
    let mut r: Router<AppState> = Router::new();
    for e in ENDPOINTS {
        let Some(h) = handler(e, tls) else {
            tracing::error!(method = e.method, path = e.path, "route without a handler");
            continue;
        };
        let access = e.access;
        let guard = axum::middleware::from_fn_with_state(
            state.clone(),
            move |st: State<AppState>, req: Request, next: Next| {
                crate::auth::require(st, access, req, next)
            },
        );
        r = r.route(e.path, h.route_layer(guard));
    }
    let names = allowed_hosts(&state);
    r.fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| edge(names.clone(), tls, req, next),
        ))
        .layer(Extension(Listener { tls }))
        .with_state(state)
}

/// Host names requests may carry: when `server.tls_names` is set, those
/// and loopback only (a DNS name rebound to this server is refused); when
/// it is not, any.
fn allowed_hosts(state: &AppState) -> Option<std::sync::Arc<Vec<String>>> {
    let names = &state.config.server.tls_names;
    if names.is_empty() {
        return None;
    }
    let mut all: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    all.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    Some(std::sync::Arc::new(all))
}

/// The host part of a Host header (`[v6]:port`, `name:port`, `name`).
fn host_only(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => h,
    }
}

/// The edge of every answer: unknown Host headers refused, security
/// headers added (a CSP without inline script, no framing, no sniffing,
/// no referrer; HSTS under HTTPS).
async fn edge(
    hosts: Option<std::sync::Arc<Vec<String>>>,
    tls: bool,
    req: Request,
    next: Next,
) -> Response {
    if let Some(allowed) = &hosts {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(host_only)
            .or_else(|| req.uri().host().map(host_only));
        if !host.as_ref().is_some_and(|h| allowed.contains(h)) {
            return ApiError(
                StatusCode::MISDIRECTED_REQUEST,
                "unknown Host: this collector answers to its configured names only".into(),
            )
            .into_response();
        }
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-opener-policy", "same-origin");
    if tls {
        set(
            h,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    r
}

async fn agent_needs_tls() -> Response {
    ApiError(
        StatusCode::FORBIDDEN,
        "agents connect over TLS (listen_tls), never plain HTTP".into(),
    )
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not served on {}", uri.path()),
    )
    .into_response()
}

/// Unknown `/api` paths answer JSON; anything else is a dashboard file.
async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/api" {
        return ApiError(StatusCode::NOT_FOUND, format!("no route {path}")).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not served on {path}"),
        )
        .into_response();
    }
    crate::server::static_file(uri).await
}

/// The access level of a method and path of the table (for tests and docs).
pub fn access_of(method: &str, path: &str) -> Option<Access> {
    ENDPOINTS
        .iter()
        .find(|e| e.method == method && e.path == path)
        .map(|e| e.access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_a_handler_on_both_listeners() {
        for e in ENDPOINTS {
            assert!(handler(e, true).is_some(), "{} {}", e.method, e.path);
            assert!(handler(e, false).is_some(), "{} {}", e.method, e.path);
        }
    }

    #[test]
    fn host_headers() {
        assert_eq!(host_only("noc.example.go.id:8443"), "noc.example.go.id");
        assert_eq!(host_only("[::1]:8080"), "::1");
        assert_eq!(host_only("Localhost"), "localhost");
        assert_eq!(host_only("10.0.0.1"), "10.0.0.1");
    }
}

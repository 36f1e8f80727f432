//! What every `/_sockpit/` request passes first: the `Host` check (DNS rebinding), the
//! API key (header, session cookie, or `?key=` on the events socket), and CORS for the
//! desktop window.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::origin::{DESKTOP_ORIGINS, HostError, check_host};
use crate::state::Shared;

/// Cookie set by the login URL; its value is the API key (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "sockpit_session";

/// Every method a `/_sockpit/` route answers, for the desktop window's preflights.
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";

/// CORS for the desktop webview only ([`DESKTOP_ORIGINS`]; letting it read the API
/// cross-origin opens nothing to the web, and the API key is still required): it loads
/// the embedded UI from its own origin and talks to the server over HTTP. Preflights are
/// answered here, before the key check (a preflight never carries credentials).
pub(super) async fn desktop_cors(req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| DESKTOP_ORIGINS.iter().any(|d| o.as_bytes() == d.as_bytes()))
        .cloned();
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, x-api-key, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

pub(super) async fn require_host(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match check_host(&shared.config.api.hosts, host) {
        Ok(()) => Ok(next.run(req).await),
        Err(HostError::Missing) => Err(ApiError::BadRequest("missing Host header".into())),
        Err(HostError::NotAllowed(h)) => Err(ApiError::Forbidden(format!(
            "Host {h} is not allowed (add it to [api] hosts)"
        ))),
    }
}

/// The API key from `Authorization: Bearer`, `X-API-Key`, the session cookie, or (for
/// the events WebSocket, which browsers cannot give headers) `?key=`.
fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>, ws: bool) -> Option<&'a str> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    h("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| h("x-api-key"))
        .or_else(|| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| *k == SESSION_COOKIE)
                .map(|(_, v)| v)
        })
        .or_else(|| {
            ws.then(|| query?.split('&').find_map(|p| p.strip_prefix("key=")))
                .flatten()
        })
}

/// Whether `presented` is the API key (constant time).
pub(super) fn key_matches(shared: &Shared, presented: &str) -> bool {
    presented
        .trim()
        .as_bytes()
        .ct_eq(shared.api_key.as_bytes())
        .into()
}

pub(super) async fn require_key(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let is_ws = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    match presented_key(req.headers(), req.uri().query(), is_ws) {
        Some(k) if key_matches(&shared, k) => Ok(next.run(req).await),
        Some(_) => Err(ApiError::Unauthorized("wrong API key".into())),
        None => Err(ApiError::Unauthorized(
            "API key required (Authorization: Bearer <key> or X-API-Key: <key>)".into(),
        )),
    }
}

//! What every `/_sockpit/` request passes first: the `Host` check (DNS rebinding), the
//! API key (header, session cookie, or `?key=` on the events socket), and CORS for the
//! desktop window.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::auth;
use crate::origin::{DESKTOP_ORIGINS, HostError, check_host, is_same_origin};
use crate::state::Shared;

/// Cookie set by the login URL (HttpOnly, SameSite=Strict, 12 h): a signed session,
/// never the API key.
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

/// How a request proves it may use the API.
enum Credential<'a> {
    /// The key in `Authorization: Bearer` or `X-API-Key`: no web page can send these
    /// to us without a CORS preflight, which only the desktop window passes.
    Header(&'a str),
    /// The key in `?key=`, on the events WebSocket only (browsers cannot give it headers).
    Query(&'a str),
    /// The session cookie(s) the login URL set: a browser sends them with any request,
    /// from any page, so what they may do is checked further ([`is_same_origin`]). All
    /// of them: a page on another localhost port can plant a bogus one that comes first.
    Session(Vec<&'a str>),
}

fn credential<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    ws: bool,
) -> Option<Credential<'a>> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(k) = h("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| h("x-api-key"))
    {
        return Some(Credential::Header(k));
    }
    let sessions: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
        // Each is a signature check: a request stuffed with cookies costs no more than 8.
        .take(8)
        .collect();
    if !sessions.is_empty() {
        return Some(Credential::Session(sessions));
    }
    ws.then(|| query?.split('&').find_map(|p| p.strip_prefix("key=")))
        .flatten()
        .map(Credential::Query)
}

/// Whether `presented` is the API key (constant time).
pub(super) fn key_matches(shared: &Shared, presented: &str) -> bool {
    presented
        .trim()
        .as_bytes()
        .ct_eq(shared.api_key.as_bytes())
        .into()
}

/// How long a UI session lasts.
pub(super) const SESSION_TTL_S: u64 = 12 * 3600;

#[derive(Serialize, Deserialize)]
struct SessionClaims {
    exp: u64,
    sub: String,
}

const SESSION_SUBJECT: &str = "sockpit-ui";

/// A session cookie's value: a token signed with the session key (random, in the data
/// dir) that carries only its expiry. Not the API key (a leaked cookie expires and tells
/// nothing about the key), and stateless, so a session outlives a restart; deleting
/// `session_key` from the data dir ends every session.
pub(super) fn mint_session(shared: &Shared) -> String {
    let claims = SessionClaims {
        exp: auth::now_secs() + SESSION_TTL_S,
        sub: SESSION_SUBJECT.into(),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(shared.session_key.as_bytes()),
    )
    .unwrap_or_default()
}

fn session_valid(shared: &Shared, value: &str) -> bool {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "sub"]);
    v.sub = Some(SESSION_SUBJECT.into());
    jsonwebtoken::decode::<SessionClaims>(
        value,
        &jsonwebtoken::DecodingKey::from_secret(shared.session_key.as_bytes()),
        &v,
    )
    .is_ok()
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
    match credential(req.headers(), req.uri().query(), is_ws) {
        Some(Credential::Header(k) | Credential::Query(k)) if key_matches(&shared, k) => {
            Ok(next.run(req).await)
        }
        Some(Credential::Header(_) | Credential::Query(_)) => {
            Err(ApiError::Unauthorized("wrong API key".into()))
        }
        Some(Credential::Session(s)) if s.iter().any(|v| session_valid(&shared, v)) => {
            // Cookies ignore ports: a page on another localhost port sends ours too.
            // What changes something, or reads the live stream, must come from our own
            // pages; reading a GET's answer cross-origin is already blocked by the
            // browser (no CORS for web origins).
            let changes = !matches!(*req.method(), Method::GET | Method::HEAD) || is_ws;
            let same = {
                let h = |name: header::HeaderName| {
                    req.headers().get(name).and_then(|v| v.to_str().ok())
                };
                is_same_origin(h(header::ORIGIN), h(header::HOST))
            };
            if changes && !same {
                return Err(ApiError::Forbidden(
                    "cross-site request refused: the session cookie only works from Sockpit's own pages (send the API key in a header instead)".into(),
                ));
            }
            Ok(next.run(req).await)
        }
        Some(Credential::Session(_)) => Err(ApiError::Unauthorized(
            "session expired or not valid: open the login URL that `sockpit serve` printed".into(),
        )),
        None => Err(ApiError::Unauthorized(
            "API key required (Authorization: Bearer <key> or X-API-Key: <key>)".into(),
        )),
    }
}

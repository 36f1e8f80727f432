//! The embedded UI at `/_sockpit/`, and the login URL that sets its session cookie.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::ApiError;
use super::guard::{SESSION_COOKIE, SESSION_TTL_S, key_matches, mint_session};
use crate::state::Shared;

/// The UI, built by Vite into `ui/dist` and embedded at compile time (see build.rs).
#[derive(rust_embed::RustEmbed)]
#[folder = "$SOCKPIT_UI_DIR"]
struct UiAssets;

/// What the UI's pages may load: only their own files and their own server (the API and
/// its WebSockets), no inline scripts, never inside a frame.
const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `?key=` of the login URL (a link, not an API body).
#[derive(Deserialize)]
pub(super) struct LoginQuery {
    key: Option<String>,
}

pub(super) async fn login(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let key = q.key.unwrap_or_default();
    if !key_matches(&shared, &key) {
        return Err(ApiError::Unauthorized(
            "wrong or missing key: open the login URL that `sockpit serve` printed".into(),
        ));
    }
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/_sockpit; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_S}",
        mint_session(&shared)
    );
    let mut resp = Redirect::to("/_sockpit/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

pub(super) async fn index() -> Result<Response, ApiError> {
    file(Path("index.html".into())).await
}

pub(super) async fn file(Path(path): Path<String>) -> Result<Response, ApiError> {
    let file = UiAssets::get(&path)
        .ok_or_else(|| ApiError::NotFound(format!("no such route /_sockpit/{path}")))?;
    // Vite puts a content hash in every name under assets/; index.html and the files of
    // ui/public (boot.js) keep their names, so they are revalidated.
    // `private`: these answers needed the key, so no shared cache may keep them.
    let cache = if path.starts_with("assets/") {
        "private, max-age=31536000, immutable"
    } else {
        "private, no-cache"
    };
    let mut resp = (
        [
            (header::CONTENT_TYPE, file.metadata.mimetype().to_string()),
            (header::CACHE_CONTROL, cache.to_string()),
        ],
        file.data,
    )
        .into_response();
    if path.ends_with(".html") {
        resp.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(UI_CSP),
        );
    }
    Ok(resp)
}

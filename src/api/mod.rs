//! The reserved HTTP routes under `/_sockpit/`, split by concern:
//! - [`guard`]: `Host` (DNS rebinding), the API key, the desktop window's CORS;
//! - [`admin`]: publish, stats, connections, kick, token, endpoints, doctor, metrics;
//! - [`events`]: the live events WebSocket the UI reads;
//! - [`settings`]: the config file behind the Settings screen;
//! - [`ui`]: the embedded UI and its login URL.
//!
//! Handlers only extract, call the server state's operations and map the result; request
//! and response bodies are the types of [`crate::wire`]. Errors are [`ApiError`]:
//! `{"error": "...", "detail": "..."}` with the matching status.

mod admin;
mod events;
mod guard;
mod settings;
mod ui;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};

use crate::state::Shared;
use crate::wire::ErrorBody;

pub use guard::SESSION_COOKIE;

/// An API error: status plus `{"error", "detail"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 422.
    #[error("{0}")]
    Unprocessable(String),
    /// 426: a plain HTTP request to a WebSocket endpoint.
    #[error("{0}")]
    UpgradeRequired(String),
    /// A refused handshake with `reject = "http"`.
    #[error("{1}")]
    Handshake(StatusCode, String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::Handshake(s, _) => *s,
        }
    }

    /// The short machine word of the body's `error`.
    fn word(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            StatusCode::UPGRADE_REQUIRED => "upgrade_required",
            _ => "unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: Self::word(status).into(),
            detail: self.to_string(),
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sockpit\""),
            );
        }
        resp
    }
}

/// The `/_sockpit/` routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let body_limit = shared
        .config
        .server
        .max_message_bytes
        .get()
        .saturating_add(64 << 10);
    let keyed = Router::new()
        .route("/_sockpit/api/publish", post(admin::publish))
        .route("/_sockpit/api/stats", get(admin::stats))
        .route("/_sockpit/api/connections", get(admin::connections))
        .route("/_sockpit/api/connections/{id}", delete(admin::kick))
        .route("/_sockpit/api/token", post(admin::token))
        .route("/_sockpit/api/endpoints", get(admin::endpoints))
        .route("/_sockpit/api/doctor", post(admin::doctor))
        .route("/_sockpit/api/webhooks", get(admin::webhooks))
        .route(
            "/_sockpit/api/webhooks/{id}/resend",
            post(admin::resend_webhook),
        )
        .route("/_sockpit/api/events", get(events::handler))
        .route(
            "/_sockpit/api/config",
            get(settings::view).put(settings::apply),
        )
        .route("/_sockpit/api/config/validate", post(settings::validate))
        .route("/_sockpit/metrics", get(admin::metrics))
        .route("/_sockpit/", get(ui::index))
        .route("/_sockpit/{*path}", get(ui::file))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            guard::require_key,
        ));
    Router::new()
        .route(
            "/_sockpit",
            get(|| async { Redirect::permanent("/_sockpit/") }),
        )
        .route("/_sockpit/healthz", get(|| async { "ok" }))
        .route("/_sockpit/login", get(ui::login))
        .merge(keyed)
        .layer(middleware::map_response(hardened))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(guard::desktop_cors))
        .layer(middleware::from_fn_with_state(shared, guard::require_host))
}

/// Headers on every `/_sockpit/` answer: no MIME sniffing, no framing (clickjacking
/// the UI's buttons), no Referer carrying a URL to other sites.
async fn hardened(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// A JSON body, with errors that say what is wrong: 400 for malformed JSON, 422 for
/// JSON of the wrong shape, 413 for too large.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("request body too large: {}", e.body_text()))
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(e.to_string()),
        _ => ApiError::BadRequest(format!("body is not valid JSON: {e}")),
    })
}

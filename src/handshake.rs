//! The WebSocket handshake: the checks in the order a developer would fix them
//! (endpoint, Origin, token, capacity), the typed verdict, and the upgrade that follows.
//!
//! Browsers hide the HTTP status of a refused upgrade (they report 1006), so by default
//! a refusal accepts the upgrade and closes at once with a 4xxx code and a reason the page
//! can read; `reject = "http"` answers 401/403/404/503 instead. Every verdict is counted
//! and recorded as an event with the same reason.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::auth::{self, Rejection};
use crate::close::CloseCode;
use crate::config::{AuthMode, RejectMode, TokenSource};
use crate::connection;
use crate::endpoint::{Matched, NoEndpoint, ReservedChannel};
use crate::events::{Event, EventKind, clip};
use crate::hub::{ConnMeta, Slot};
use crate::origin::{OriginNotAllowed, check_origin};
use crate::socket::{Upgrade, socket_config};
use crate::state::Shared;
use crate::webhook::{self, WebhookKind};

/// Why a handshake was refused; its `Display` is the close reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No endpoint at that path (4004).
    #[error(transparent)]
    NoEndpoint(#[from] NoEndpoint),
    /// The Origin is not allowed (4003).
    #[error(transparent)]
    Origin(#[from] OriginNotAllowed),
    /// No token, or a bad one (4001).
    #[error(transparent)]
    Token(#[from] Rejection),
    /// A path parameter names a channel it may not (4003).
    #[error(transparent)]
    Channel(#[from] ReservedChannel),
    /// `max_connections` reached (4029).
    #[error("max_connections {0} reached")]
    Full(u64),
}

impl Refused {
    /// The close code a page reads.
    pub fn code(&self) -> CloseCode {
        match self {
            Self::NoEndpoint(_) => CloseCode::NoEndpoint,
            Self::Origin(_) | Self::Channel(_) => CloseCode::Forbidden,
            Self::Token(_) => CloseCode::Unauthorized,
            Self::Full(_) => CloseCode::TooManyConnections,
        }
    }

    /// The HTTP status for `reject = "http"`.
    fn status(&self) -> StatusCode {
        match self {
            Self::NoEndpoint(_) => StatusCode::NOT_FOUND,
            Self::Origin(_) | Self::Channel(_) => StatusCode::FORBIDDEN,
            Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What passed the checks.
struct Admitted {
    matched: Matched,
    user: Option<String>,
    channels: Vec<String>,
    slot: Slot,
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request's path as events show it: token parameters redacted, cut to the field limit.
pub(crate) fn shown_path(uri: &axum::http::Uri, sources: &[TokenSource]) -> String {
    clip(&match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), auth::redact_query(q, sources)),
        None => uri.path().to_string(),
    })
}

/// Whether a request asks for a WebSocket.
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_str(headers, header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// Runs the checks on an upgrade request for `resolved` (an endpoint, or why the path
/// names none), then accepts the connection or refuses it.
pub(crate) async fn upgrade(
    shared: Arc<Shared>,
    remote: SocketAddr,
    resolved: Result<Matched, NoEndpoint>,
    mut parts: Parts,
) -> Response {
    let mut ws = match Upgrade::from_parts(&mut parts) {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let path = parts.uri.path().to_string();
    let sent_origin = header_str(&parts.headers, header::ORIGIN);
    // Checked whole, kept cut: a connection holds it for its whole life.
    let origin = sent_origin.map(clip);
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok().map(str::to_string))
        .collect();
    let offered_refs: Vec<&str> = offered.iter().map(String::as_str).collect();
    let query = parts.uri.query();
    // Cut once here: the event, the log line and the reason all show this.
    let shown_path = shown_path(&parts.uri, &shared.config.auth.token_sources);

    let found = auth::find_token(
        &shared.config.auth.token_sources,
        query,
        header_str(&parts.headers, header::AUTHORIZATION),
        &offered_refs,
    );
    // Echo a subprotocol whenever the client offered one: a browser that offered one and
    // got none back fails the handshake with 1006, hiding our close code and reason.
    let echo = found
        .as_ref()
        .and_then(|f| f.echo_protocol.clone())
        .or_else(|| {
            offered
                .iter()
                .find(|p| Some(p.as_str()) != found.as_ref().map(|f| f.token.as_str()))
                .cloned()
        });
    if let Some(p) = echo.as_deref().and_then(|p| p.parse().ok()) {
        ws.set_selected_protocol(p);
    }

    let endpoint_name = resolved
        .as_ref()
        .ok()
        .map(|m| m.endpoint.path.as_str().to_string());
    let cfg = &shared.config.server;
    match check(&shared, resolved, sent_origin, found.map(|f| f.token)) {
        Err(refused) => {
            let attempt = Attempt {
                path: shown_path,
                endpoint: endpoint_name,
                remote,
                origin,
            };
            let reason = clip(&refused.to_string());
            let status = refused.status();
            refuse(&shared, ws, attempt, refused.code(), reason, |reason| {
                ApiError::Handshake(status, reason).into_response()
            })
        }
        Ok(Admitted {
            matched,
            user,
            channels,
            slot,
        }) => {
            let endpoint = matched.endpoint.clone();
            let id = shared.hub.reserve_id();
            let mut meta = ConnMeta {
                endpoint: endpoint.path.as_str().to_string(),
                path,
                channels,
                params: matched.params,
                user,
                remote,
                origin,
            };
            // The connect webhook sees the channels the connection will have.
            meta.join_user_channel();
            if let Some(url) = &endpoint.webhook_connect {
                let asked = webhook::about(id, &meta, "connect");
                let wire_id = format!("c{id}");
                let outcome = tokio::select! {
                    o = shared.webhooks.post(WebhookKind::Connect, url, &wire_id, asked) => o,
                    _ = shared.stop.cancelled() => {
                        return ApiError::Handshake(StatusCode::SERVICE_UNAVAILABLE, "server stopping".into())
                            .into_response();
                    }
                };
                if let Err(no) = webhook::connect_verdict(&outcome) {
                    if !outcome.delivery.ok {
                        shared.events.emit(webhook::failed_event(&outcome.delivery));
                    }
                    let attempt = Attempt {
                        path: shown_path,
                        endpoint: Some(meta.endpoint),
                        remote,
                        origin: meta.origin,
                    };
                    let status = if no.counted == CloseCode::UpstreamFailed {
                        StatusCode::BAD_GATEWAY
                    } else {
                        StatusCode::FORBIDDEN
                    };
                    return refuse_as(
                        &shared,
                        ws,
                        attempt,
                        no.counted,
                        no.code,
                        no.reason,
                        |reason| ApiError::Handshake(status, reason).into_response(),
                    );
                }
            }
            shared.hub.stats.handshake(None);
            let s = shared.clone();
            let guard = shared.sockets.token();
            ws.on_upgrade(socket_config(cfg.max_message_bytes.get()), move |socket| {
                let conn = s.hub.register_as(id, meta);
                // The connection's task is this future alone: nothing the handshake held
                // (its metadata, this closure) is kept for the connection's life.
                connection::run(socket, s, conn, endpoint, slot, guard)
            })
        }
    }
}

/// Who asked for a WebSocket, as the refusal's event names it.
#[derive(Clone)]
pub(crate) struct Attempt {
    /// The path with its query redacted, cut to the event limit.
    pub path: String,
    /// The endpoint it matched, if any.
    pub endpoint: Option<String>,
    pub remote: SocketAddr,
    pub origin: Option<String>,
}

/// A refused handshake: counted and recorded, then answered the way `reject` says —
/// accepted and closed with `code` and `reason` (the page can read them), or with the
/// HTTP answer `http` makes from the reason.
pub(crate) fn refuse(
    shared: &Arc<Shared>,
    ws: Upgrade,
    attempt: Attempt,
    code: CloseCode,
    reason: String,
    http: impl FnOnce(String) -> Response,
) -> Response {
    refuse_as(shared, ws, attempt, code, code.code(), reason, http)
}

/// [`refuse`] with a close code of the backend's choosing (`sent`, 4000–4999), counted
/// in the handshake stats as `counted`.
pub(crate) fn refuse_as(
    shared: &Arc<Shared>,
    ws: Upgrade,
    attempt: Attempt,
    counted: CloseCode,
    sent: u16,
    reason: String,
    http: impl FnOnce(String) -> Response,
) -> Response {
    shared.hub.stats.handshake(Some(counted));
    let mut e = Event::new(EventKind::HandshakeRejected);
    e.path = Some(attempt.path.clone());
    e.endpoint = attempt.endpoint.map(Arc::from);
    e.remote = Some(attempt.remote.to_string().into());
    e.origin = attempt.origin.map(Arc::from);
    e.code = Some(sent);
    e.reason = Some(reason.clone());
    shared.events.emit(e);
    tracing::info!(path = %attempt.path, code = sent, "handshake rejected: {reason}");
    let cfg = &shared.config.server;
    if cfg.reject == RejectMode::Http {
        return http(reason);
    }
    let guard = shared.sockets.token();
    ws.on_upgrade(
        socket_config(cfg.max_message_bytes.get()),
        move |mut socket| async move {
            connection::send_close(&mut socket, sent, &reason).await;
            drop(guard);
        },
    )
}

/// The checks, in the order a developer would fix them.
fn check(
    shared: &Shared,
    resolved: Result<Matched, NoEndpoint>,
    origin: Option<&str>,
    token: Option<String>,
) -> Result<Admitted, Refused> {
    let matched = resolved?;
    check_origin(&shared.config.server.allowed_origins, origin)?;
    let user = match matched.endpoint.auth {
        AuthMode::None => None,
        AuthMode::Jwt => {
            let token = token.ok_or_else(|| auth::no_token(&shared.config.auth.token_sources))?;
            Some(shared.verifier.verify(&token)?.user_id)
        }
    };
    let channels = shared.endpoints.channels(&matched, user.as_deref())?;
    // Reserve last, so a refused handshake never holds a place.
    let slot = shared
        .hub
        .try_admit()
        .ok_or(Refused::Full(shared.config.server.max_connections.0))?;
    Ok(Admitted {
        matched,
        user,
        channels,
        slot,
    })
}

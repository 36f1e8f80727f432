//! The reserved HTTP routes under `/_sockpit/`: health, publish, stats, connections,
//! kick, token minting, the live events WebSocket, Prometheus metrics and the UI login.
//!
//! Every route checks `Host` (DNS rebinding); all but `healthz` and `login` need the API
//! key. Handlers only extract, call the hub/verifier and map the result; errors are
//! `{"error": "...", "detail": "..."}` with the matching status.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;

use crate::events::{Event, EventKind, preview};
use crate::hub::Target;
use crate::origin::{DESKTOP_ORIGINS, HostError, check_host, check_origin};
use crate::server::Shared;
use crate::stats::{self, ConnectionInfo};

/// Cookie set by the login URL; its value is the API key (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "sockpit_session";

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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            StatusCode::UPGRADE_REQUIRED => "upgrade_required",
            _ => "unavailable",
        };
        let mut resp = (
            status,
            Json(json!({"error": error, "detail": self.to_string()})),
        )
            .into_response();
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
        .route("/_sockpit/api/publish", post(publish_handler))
        .route("/_sockpit/api/stats", get(stats_handler))
        .route("/_sockpit/api/connections", get(connections_handler))
        .route("/_sockpit/api/connections/{id}", delete(kick_handler))
        .route("/_sockpit/api/token", post(token_handler))
        .route("/_sockpit/api/events", get(events_handler))
        .route("/_sockpit/api/doctor", post(doctor_handler))
        .route(
            "/_sockpit/api/config",
            get(config_get_handler).put(config_put_handler),
        )
        .route(
            "/_sockpit/api/config/validate",
            post(config_validate_handler),
        )
        .route(
            "/_sockpit/api/endpoints",
            get(|State(shared): State<Arc<Shared>>| async move {
                Json(crate::wire::EndpointsResponse::from_config(&shared.config))
            }),
        )
        .route("/_sockpit/metrics", get(metrics_handler))
        .route("/_sockpit/", get(ui_index))
        .route("/_sockpit/{*path}", get(ui_file))
        .route_layer(middleware::from_fn_with_state(shared.clone(), require_key));
    Router::new()
        .route(
            "/_sockpit",
            get(|| async { Redirect::permanent("/_sockpit/") }),
        )
        .route("/_sockpit/healthz", get(|| async { "ok" }))
        .route("/_sockpit/login", get(login_handler))
        .merge(keyed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(desktop_cors))
        .layer(middleware::from_fn_with_state(shared, require_host))
}

/// CORS for the desktop webview only ([`DESKTOP_ORIGINS`]; letting it read the API
/// cross-origin opens nothing to the web, and the API key is still required): it loads the embedded UI from its own origin and
/// talks to the server over HTTP. Preflights are answered here, before the key check
/// (a preflight never carries credentials).
async fn desktop_cors(req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| DESKTOP_ORIGINS.iter().any(|d| o.as_bytes() == d.as_bytes()))
        .cloned();
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let mut resp = if req.method() == axum::http::Method::OPTIONS {
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
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

async fn require_host(
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

fn key_matches(shared: &Shared, presented: &str) -> bool {
    presented
        .trim()
        .as_bytes()
        .ct_eq(shared.api_key.as_bytes())
        .into()
}

async fn require_key(
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

#[derive(Deserialize)]
struct LoginQuery {
    key: Option<String>,
}

async fn login_handler(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let key = q.key.unwrap_or_default();
    if !key_matches(&shared, &key) {
        return Err(ApiError::Unauthorized(
            "wrong or missing key: open the login URL that `sockpit serve` printed".into(),
        ));
    }
    let cookie = format!("{SESSION_COOKIE}={key}; Path=/_sockpit; HttpOnly; SameSite=Strict");
    let mut resp = Redirect::to("/_sockpit/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// The UI, built by Vite into `ui/dist` and embedded at compile time (see build.rs).
#[derive(rust_embed::RustEmbed)]
#[folder = "$SOCKPIT_UI_DIR"]
struct UiAssets;

async fn ui_index() -> Result<Response, ApiError> {
    ui_file(Path("index.html".into())).await
}

async fn ui_file(Path(path): Path<String>) -> Result<Response, ApiError> {
    let file = UiAssets::get(&path)
        .ok_or_else(|| ApiError::NotFound(format!("no such route /_sockpit/{path}")))?;
    // Vite puts a content hash in every asset name; only index.html may change in place.
    let cache = if path == "index.html" {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    Ok((
        [
            (header::CONTENT_TYPE, file.metadata.mimetype().to_string()),
            (header::CACHE_CONTROL, cache.to_string()),
        ],
        file.data,
    )
        .into_response())
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

/// `POST /api/publish` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    channel: Option<String>,
    /// Django Channels' word for a channel.
    group: Option<String>,
    user: Option<Value>,
    connection: Option<String>,
    data: Option<Value>,
}

async fn publish_handler(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: PublishRequest = parse_body(body)?;
    let user = match req.user {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(ApiError::Unprocessable(
                "user must be a string or a number".into(),
            ));
        }
    };
    let targets: Vec<Target> = [
        req.channel.map(Target::Channel),
        req.group.map(Target::Channel),
        user.map(Target::User),
        req.connection.map(Target::Connection),
    ]
    .into_iter()
    .flatten()
    .collect();
    let [target] = <[Target; 1]>::try_from(targets).map_err(|_| {
        ApiError::Unprocessable(
            "give exactly one target: \"channel\" (or \"group\"), \"user\" or \"connection\""
                .into(),
        )
    })?;
    let data = req
        .data
        .ok_or_else(|| ApiError::Unprocessable("\"data\" is missing".into()))?;
    let delivered = publish(&shared, target, &data);
    Ok(Json(json!({ "delivered": delivered })))
}

/// Publishes `data` to `target`; one `published` event carries the count.
pub(crate) fn publish(shared: &Shared, target: Target, data: &Value) -> u64 {
    let text: Utf8Bytes = match data {
        Value::String(s) => s.clone().into(),
        other => other.to_string().into(),
    };
    let len = text.len();
    let mut e = Event::new(EventKind::Published);
    e.preview = Some(preview(Some(text.as_str()), len));
    e.bytes = Some(len as u64);
    // Name a connection by its wire id whichever form the caller used (`12` or `c12`).
    let target = match target {
        Target::Connection(id) => {
            Target::Connection(shared.hub.get(&id).map(|c| c.wire_id()).unwrap_or(id))
        }
        other => other,
    };
    let delivered = shared.hub.deliver(&target, Message::Text(text), None);
    shared
        .hub
        .stats
        .published
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match target {
        Target::Channel(c) => e.channel = Some(c),
        Target::User(u) => e.user = Some(u),
        Target::Connection(c) => e.conn = Some(c),
    }
    e.delivered = Some(delivered);
    shared.events.emit(e);
    delivered
}

async fn stats_handler(State(shared): State<Arc<Shared>>) -> Json<stats::StatsSnapshot> {
    Json(shared.snapshot_now())
}

pub(crate) fn connection_list(shared: &Shared) -> Vec<ConnectionInfo> {
    shared
        .hub
        .connections()
        .iter()
        .map(|c| ConnectionInfo::from(c.as_ref()))
        .collect()
}

async fn connections_handler(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "connections": connection_list(&shared) }))
}

#[derive(Deserialize)]
struct KickQuery {
    code: Option<u16>,
    reason: Option<String>,
}

async fn kick_handler(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<KickQuery>,
) -> Result<Json<Value>, ApiError> {
    let code = q.code.unwrap_or(1000);
    if !(code == 1000 || (3000..=4999).contains(&code)) {
        return Err(ApiError::Unprocessable(format!(
            "close code {code} cannot be sent (use 1000 or 3000-4999)"
        )));
    }
    let reason = q.reason.unwrap_or_else(|| "closed from Sockpit".into());
    let conn = shared
        .hub
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no connection {id}")))?;
    shared.hub.stats.drop_client("kicked");
    conn.close(code, reason.clone());
    Ok(Json(
        json!({"closed": conn.wire_id(), "code": code, "reason": reason}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user_id: Value,
    #[serde(default = "default_ttl")]
    ttl_s: u64,
    #[serde(default)]
    claims: Map<String, Value>,
}

fn default_ttl() -> u64 {
    3600
}

async fn token_handler(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: TokenRequest = parse_body(body)?;
    let user = match req.user_id {
        Value::String(s) if !s.is_empty() => s,
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ApiError::Unprocessable(
                "user_id must be a non-empty string or a number".into(),
            ));
        }
    };
    if req.ttl_s == 0 || req.ttl_s > crate::auth::MAX_TTL_S {
        return Err(ApiError::Unprocessable(format!(
            "ttl_s must be 1 to {} (ten years)",
            crate::auth::MAX_TTL_S
        )));
    }
    let token = shared
        .verifier
        .mint(&user, Duration::from_secs(req.ttl_s), &req.claims)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    Ok(Json(json!({
        "token": token,
        "user_id": user,
        "exp": crate::auth::now_secs() + req.ttl_s,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DoctorRequest {
    token: Option<String>,
    origin: Option<String>,
}

/// Runs the doctor against this very server.
async fn doctor_handler(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::doctor::Report>, ApiError> {
    let req: DoctorRequest = match &body {
        Ok(b) if b.is_empty() => DoctorRequest::default(),
        _ => parse_body(body)?,
    };
    let mut addr = shared.local_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip([127, 0, 0, 1].into());
    }
    let opts = crate::doctor::Options {
        addr: Some(addr),
        token: req.token.filter(|t| !t.trim().is_empty()),
        origin: req.origin.filter(|o| !o.trim().is_empty()),
    };
    Ok(Json(
        crate::doctor::run(&shared.config, &shared.verifier, &opts).await,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigText {
    toml: String,
}

async fn config_get_handler(
    State(shared): State<Arc<Shared>>,
) -> Json<crate::settings::ConfigView> {
    Json(crate::settings::view(
        shared.paths.config_file.as_deref(),
        shared.local_addr.port(),
    ))
}

async fn config_validate_handler(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::settings::Validated>, ApiError> {
    let req: ConfigText = parse_body(body)?;
    crate::settings::validate(&req.toml, shared.paths.config_file.as_deref())
        .map(|(_, ok)| Json(ok))
        .map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Validates, checks the new address is free, saves the file, and hands the config to
/// the server's owner to restart with. An invalid config changes nothing: the file
/// stays and the server keeps running.
async fn config_put_handler(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::wire::ConfigApplied>, ApiError> {
    let req: ConfigText = parse_body(body)?;
    let file = shared.paths.config_file.as_deref();
    let (mut next, _) = crate::settings::validate(&req.toml, file)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    next.apply_env(|k| std::env::var(k).ok())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let now = shared.local_addr;
    let addr = std::net::SocketAddr::new(next.server.bind, next.server.port);
    if addr != now && addr.port() != 0 {
        // The running server stays if the new address is taken.
        if let Err(e) = std::net::TcpListener::bind(addr) {
            let port = addr.port();
            let holder = tokio::task::spawn_blocking(move || crate::portinfo::holder_of(port))
                .await
                .ok()
                .flatten()
                .map(|h| format!(" (held by {h})"))
                .unwrap_or_default();
            return Err(ApiError::Unprocessable(
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    format!("server.port: port {port} is in use{holder}")
                } else {
                    format!("server.bind: cannot listen on {addr}: {e}")
                },
            ));
        }
    }
    let secrets = crate::server::Secrets::resolve(&next, &shared.paths)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    crate::settings::save(&req.toml, file).map_err(|e| match e {
        crate::settings::SaveError::Invalid(e) => ApiError::Unprocessable(e.to_string()),
        other => ApiError::Conflict(other.to_string()),
    })?;
    let host = if next.server.bind.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        next.server.bind.to_string()
    };
    let port = if next.server.port == 0 {
        now.port()
    } else {
        next.server.port
    };
    let base_url = format!("http://{host}:{port}");
    let login_url = format!("{base_url}/_sockpit/login?key={}", secrets.api_key);
    shared.applied.send_replace(Some(Arc::new(next)));
    Ok(Json(crate::wire::ConfigApplied {
        ok: true,
        restarting: true,
        base_url,
        login_url,
    }))
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> Response {
    let body = stats::prometheus(&shared.snapshot_now(), &shared.hub);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn events_handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // The API key already passed; still refuse foreign pages (a cookie rides along).
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let same_origin = match (origin, host) {
        (Some(o), Some(h)) => o.split_once("://").is_some_and(|(_, rest)| rest == h),
        _ => false,
    };
    if !same_origin && let Err(reason) = check_origin(&shared.config.server.allowed_origins, origin)
    {
        return Err(ApiError::Forbidden(reason));
    }
    let guard = shared.sockets.token();
    Ok(ws.on_upgrade(move |socket| async move {
        stream_events(socket, shared).await;
        drop(guard);
    }))
}

/// Longest batch of events in one frame.
const EVENT_BATCH: usize = 512;

/// `{"type":"hello"}` with the ring and stats, then `{"type":"events"}` batches as they
/// happen and `{"type":"stats"}` every 250 ms, until the client or the server stops.
/// Every write watches the stop signal and has a deadline: a UI tab that stopped
/// reading can neither stall shutdown nor hold this task.
async fn stream_events(mut socket: WebSocket, shared: Arc<Shared>) {
    use crate::connection::{CLOSE_WRITE_GRACE, send_close};
    // Subscribe before reading the ring so nothing falls between; events in both are
    // told apart by `seq`.
    let mut live = shared.events.subscribe();
    let mut stats_rx = shared.stats.clone();
    let recent = shared.events.recent();
    let seen = recent.last().map_or(0, |l| l.event.seq);
    let jsons: Vec<&str> = recent.iter().map(|l| l.json.as_str()).collect();
    let mut pending = Some(hello_frame(&jsons, &stats_rx.borrow_and_update()));
    drop(recent);
    loop {
        if let Some(frame) = pending.take() {
            let sent = tokio::select! {
                biased;
                _ = shared.stop.cancelled() => break,
                r = tokio::time::timeout(CLOSE_WRITE_GRACE, socket.send(Message::Text(frame.into()))) => {
                    matches!(r, Ok(Ok(())))
                }
            };
            if !sent {
                return;
            }
        }
        pending = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            r = live.recv() => match r {
                Ok(first) => {
                    let mut batch = vec![first];
                    while batch.len() < EVENT_BATCH {
                        match live.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    batch.retain(|l| l.event.seq > seen);
                    (!batch.is_empty()).then(|| format!(
                        "{{\"type\":\"events\",\"events\":[{}]}}",
                        join_json(batch.iter().map(|l| l.json.as_str()))
                    ))
                }
                Err(RecvError::Lagged(n)) => Some(format!("{{\"type\":\"lagged\",\"missed\":{n}}}")),
                Err(RecvError::Closed) => break,
            },
            // The sampler stops only with the server.
            r = stats_rx.changed() => match r {
                Ok(()) => {
                    let snap = stats_rx.borrow_and_update().clone();
                    Some(format!(
                        "{{\"type\":\"stats\",\"stats\":{}}}",
                        serde_json::to_string(&*snap).unwrap_or_default()
                    ))
                }
                Err(_) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => None,
            },
        };
    }
    send_close(&mut socket, 1001, "server stopping").await;
}

/// The `hello` frame of [`crate::wire::EventsFrame`], from events already serialised.
pub(crate) fn hello_frame(events: &[&str], stats: &stats::StatsSnapshot) -> String {
    format!(
        "{{\"type\":\"hello\",\"events\":[{}],\"stats\":{}}}",
        join_json(events.iter().copied()),
        serde_json::to_string(stats).unwrap_or_default()
    )
}

fn join_json<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(s);
    }
    out
}

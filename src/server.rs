//! The server object: start it from a [`Config`] and a listener, get a [`ServerHandle`]
//! with the bound address, its URLs, live stats, an event subscription, the domain
//! operations and an idempotent graceful [`ServerHandle::shutdown`]. Also the accept
//! loop and the router: `/_sockpit/` routes, and the dispatcher for everything else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api;
use crate::auth::{self, Verifier};
use crate::bridge::Bridge;
use crate::broker::Broker;
use crate::close::CloseCode;
use crate::config::Config;
use crate::datadir::Paths;
use crate::dispatch;
use crate::endpoint::Endpoints;
use crate::events::{Event, EventKind, EventLog, Feed, Logged};
use crate::hub::{Hub, Target};
use crate::portinfo::{self, Holder};
use crate::proxy::Proxy;
use crate::secrets::{Secrets, SecretsError};
use crate::state::{KickError, Shared};
use crate::stats::{self, ConnectionInfo, StatsSnapshot};
use crate::urls::Urls;
use crate::webhook::Webhooks;
use crate::wire::Kicked;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port is taken.
    #[error("port {port} is in use{}", holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default())]
    PortInUse {
        /// The port.
        port: u16,
        /// Who holds it, when that can be seen.
        holder: Option<Holder>,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The secrets could not be resolved.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The auth setup is wrong.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// `[proxy] upstream` is Sockpit's own address: every request would loop.
    #[error(
        "[proxy] upstream {0} is Sockpit's own address: give the address your app server listens on (e.g. http://127.0.0.1:8001)"
    )]
    ProxyLoop(String),
}

/// Entry point: `Server::start` or `Server::bind`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds `config.server.bind:port` and starts.
    pub async fn bind(config: Config, paths: Paths) -> Result<ServerHandle, StartError> {
        let addr = SocketAddr::new(config.server.bind, config.server.port);
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(source) if source.kind() == std::io::ErrorKind::AddrInUse => {
                // Walking /proc blocks: keep it off the runtime's workers.
                let port = addr.port();
                let holder = tokio::task::spawn_blocking(move || portinfo::holder_of(port))
                    .await
                    .ok()
                    .flatten();
                return Err(StartError::PortInUse { port, holder });
            }
            Err(source) => return Err(StartError::Bind { addr, source }),
        };
        Self::start(config, listener, paths).await
    }

    /// Starts serving on `listener` (tests bind `127.0.0.1:0`).
    pub async fn start(
        config: Config,
        listener: TcpListener,
        paths: Paths,
    ) -> Result<ServerHandle, StartError> {
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: SocketAddr::new(config.server.bind, config.server.port),
            source,
        })?;
        let (shared, stats_tx) = new_state(config, paths, local_addr)?;
        if shared.config.server.bind.is_unspecified() {
            tracing::warn!(
                "binding {} exposes Sockpit to your network; use 127.0.0.1 unless you mean it",
                shared.config.server.bind
            );
        }
        if let Some(up) = &shared.config.proxy.upstream
            && let Ok(addrs) = tokio::net::lookup_host(up.authority()).await
            && addrs.into_iter().any(|a| {
                a == local_addr
                    || (a.port() == local_addr.port() && local_addr.ip().is_unspecified())
            })
        {
            return Err(StartError::ProxyLoop(up.origin()));
        }

        let stop = shared.stop.clone();
        let s = shared.clone();
        shared
            .tracker
            .spawn(stats::run_sampler(move || s.counts_now(), stats_tx, stop));
        // Connections learn of a stop through their outbox, the one thing their loop
        // waits on from the rest of the server.
        let (s, stop) = (shared.clone(), shared.stop.clone());
        shared.tracker.spawn(async move {
            stop.cancelled().await;
            s.hub.close_all(CloseCode::GoingAway, "server stopping");
        });
        if let Some(bridge) = shared.bridge.clone() {
            let (s, e) = (shared.clone(), shared.clone());
            shared.tracker.spawn(bridge.run(
                shared.hub.clone(),
                // Groups nobody here is in are Django's own business: no event for them.
                move |group, data| {
                    s.hub.has_channel(group)
                        && s.publish_via(
                            Target::Channel(group.to_string()),
                            data,
                            Some("channels_redis group_send"),
                        ) > 0
                },
                move |event| e.events.emit(event),
                shared.stop.clone(),
            ));
        }
        if let Some(broker) = shared.broker.clone() {
            let (s, c, e) = (shared.clone(), shared.clone(), shared.clone());
            shared.tracker.spawn(broker.run(
                move |f| {
                    if let Some(target) = f.target() {
                        let via = format!("broker, from instance {}", f.from);
                        s.publish_via(target, &serde_json::Value::String(f.text), Some(&via));
                    }
                },
                move || c.hub.counts(),
                move |event| e.events.emit(event),
                shared.stop.clone(),
            ));
        }
        if let Some(process) = shared.proxy.as_ref().and_then(|p| p.process.clone()) {
            // Stopped before `server_stopped` is written: shutdown waits for `sockets`.
            let s = shared.clone();
            shared
                .sockets
                .spawn(process.run(move |e| s.events.emit(e), shared.stop.clone()));
        }
        let app = router(shared.clone());
        shared
            .tracker
            .spawn(accept_loop(listener, app, shared.clone()));

        let mut e = Event::new(EventKind::ServerStarted);
        e.remote = Some(local_addr.to_string().into());
        e.reason = Some(format!("listening on {local_addr}"));
        shared.events.emit(e);
        tracing::info!("listening on {local_addr}");

        Ok(ServerHandle { shared })
    }
}

/// The state of one server run, with the stats sampler's sender for the caller to spawn.
fn new_state(
    config: Config,
    paths: Paths,
    local_addr: SocketAddr,
) -> Result<(Arc<Shared>, watch::Sender<Arc<StatsSnapshot>>), StartError> {
    let secrets = Secrets::resolve(&config, &paths)?;
    let verifier = Verifier::new(&config.auth, &secrets.jwt_secret)?;
    let tracker = TaskTracker::new();
    let events = EventLog::new(
        config.log.ring.get(),
        Some(paths.log_file(&config)),
        &tracker,
    );
    let hub = Arc::new(Hub::new(
        config.server.max_connections.get(),
        config.server.send_queue.get(),
    ));
    let endpoints = Endpoints::new(&config.endpoints);
    let started = Instant::now();
    let base = paths
        .config_file
        .as_deref()
        .and_then(std::path::Path::parent);
    let proxy = Proxy::new(&config, base);
    let bridge = Bridge::new(&config.bridge, config.server.max_message_bytes.get());
    let broker = Broker::new(config.broker.redis.as_ref());
    let first = stats::snapshot(
        &hub,
        &endpoints,
        started,
        &events,
        proxy.as_deref(),
        bridge.as_deref(),
        broker.as_deref(),
    );
    let (stats_tx, stats_rx) = watch::channel(Arc::new(first));
    let shared = Arc::new(Shared {
        endpoints,
        verifier,
        api_key: secrets.api_key,
        session_key: secrets.session_key,
        hub,
        events,
        proxy,
        bridge,
        broker,
        webhooks: Webhooks::new(config.server.max_message_bytes.get()),
        stats: stats_rx,
        stop: CancellationToken::new(),
        tracker,
        sockets: TaskTracker::new(),
        shutting_down: AtomicBool::new(false),
        paths,
        applied: watch::channel(None).0,
        started,
        local_addr,
        config,
    });
    Ok((shared, stats_tx))
}

/// A running server. Dropping it does not stop it; call [`ServerHandle::shutdown`].
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Where the server answers: HTTP, WebSocket, publish and login URLs.
    pub fn urls(&self) -> Urls {
        self.shared.urls()
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The API key for `/_sockpit/api/*`.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Current stats, counts fresh and rates from the last sample.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.snapshot_now()
    }

    /// The stats as the sampler publishes them (every 250 ms); the sender is dropped
    /// when the server stops.
    pub fn watch_stats(&self) -> watch::Receiver<Arc<StatsSnapshot>> {
        self.shared.stats.clone()
    }

    /// The events in the ring and a live feed of those after them; see
    /// [`crate::events::EventLog::subscribe`].
    pub fn subscribe(&self, open: &'static str) -> (Vec<Arc<Logged>>, Feed) {
        self.shared.events.subscribe(open)
    }

    /// Events in the ring, oldest first.
    pub fn recent_events(&self) -> Vec<Arc<Logged>> {
        self.shared.events.recent()
    }

    /// Current connections.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared.connections()
    }

    /// Publishes `data` (JSON; a string is sent as its text) to a target; returns how
    /// many connections took it.
    pub fn publish(&self, target: Target, data: &serde_json::Value) -> u64 {
        self.shared.publish(target, data)
    }

    /// Closes one connection with `code` (1000 or 3000–4999) and `reason`.
    pub fn kick(&self, id: &str, code: u16, reason: &str) -> Result<Kicked, KickError> {
        self.shared.kick(id, code, reason)
    }

    /// Mints a dev token valid for this server's auth config.
    pub fn mint_token(
        &self,
        user_id: &str,
        ttl: Duration,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, auth::AuthError> {
        self.shared.mint_token(user_id, ttl, claims)
    }

    /// Configs saved through Settings (`PUT /_sockpit/api/config`): the owner restarts
    /// the server with the newest one. The file is already written; the config carries
    /// the environment overrides.
    pub fn applied_config(&self) -> watch::Receiver<Option<Arc<Config>>> {
        self.shared.applied.subscribe()
    }

    /// Whether `other` is a handle to this same server run (not a later one on the
    /// same address).
    pub fn same_run(&self, other: &ServerHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Records a `server_error` event with `reason` (shown in Logs).
    pub(crate) fn record_error(&self, reason: &str) {
        let mut e = Event::new(EventKind::ServerError);
        e.reason = Some(reason.to_string());
        self.shared.events.emit(e);
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// Resolves when shutdown has begun (from any clone of the handle).
    pub async fn stopping(&self) {
        self.shared.stop.cancelled().await
    }

    /// Stops accepting, closes every client with 1001, flushes the log and waits for
    /// every task. Safe to call more than once, from several places.
    pub async fn shutdown(&self) {
        let first = !self.shared.shutting_down.swap(true, Ordering::AcqRel);
        self.shared.stop.cancel();
        if first {
            // Socket tasks see `stop` and send 1001 themselves (a client that does not
            // read gets CLOSE_WRITE_GRACE + CLOSE_GRACE); wait for them so that
            // `server_stopped` really is the last event in the log.
            self.shared.sockets.close();
            let _ = tokio::time::timeout(SOCKETS_GRACE, self.shared.sockets.wait()).await;
            let mut e = Event::new(EventKind::ServerStopped);
            e.reason = Some("server stopping".into());
            self.shared.events.emit(e);
            self.shared.events.close().await;
            self.shared.tracker.close();
        }
        self.shared.tracker.wait().await;
    }
}

/// How long shutdown waits for sockets to close: longer than one close can take.
const SOCKETS_GRACE: Duration = Duration::from_secs(8);

/// The whole HTTP surface: `/_sockpit/*`, and the dispatcher for every other request
/// (WebSocket endpoints, the `[proxy]` upstream, or 404).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(api::router(shared.clone()))
        .fallback_service(dispatch::service(shared.clone()))
        .with_state(shared)
}

/// Plain HTTP connections served at once (a WebSocket stops counting once upgraded).
/// Past it, new connections wait in the kernel's accept queue: a local process opening
/// thousands of idle sockets cannot exhaust memory or file descriptors, and the ones it
/// holds are dropped after `handshake_timeout_s` without a request head.
pub const MAX_HTTP_CONNECTIONS: usize = 1024;

async fn accept_loop(listener: TcpListener, app: Router, shared: Arc<Shared>) {
    let header_timeout = Duration::from_secs(shared.config.server.handshake_timeout_s.0);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shared.stop.cancelled() => return,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shared.stop.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = shared.stop.clone();
        shared.tracker.spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(remote));
                    tower::ServiceExt::oneshot(app.clone(), req)
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // A client that sends half a request head is dropped after this.
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// Resolves on Ctrl-C or SIGTERM: the signals on which a Sockpit process stops
/// gracefully.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    //! The router without a socket (`oneshot`): guards, dispatch and API errors.
    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request, StatusCode, header};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    const KEY: &str = "oneshot-key";

    /// A server's router on a data dir of its own, bound to nothing.
    fn app() -> Router {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sockpit-oneshot-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut config = Config::default();
        config.api.key = KEY.into();
        config.auth.secret = "oneshot-secret".into();
        config.log.file = Some(dir.join("log.jsonl"));
        let (shared, _stats) = new_state(
            config,
            Paths::in_dir(dir),
            SocketAddr::from(([127, 0, 0, 1], 8000)),
        )
        .expect("test state");
        router(shared)
    }

    fn request(method: Method, uri: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:8000")
    }

    async fn send(req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = app().oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = to_bytes(body, 1 << 20).await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn host_and_key_guard_the_api() {
        let no_host = Request::get("/_sockpit/api/stats")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(no_host).await.0, StatusCode::BAD_REQUEST);
        let rebinding = Request::get("/_sockpit/api/stats")
            .header(header::HOST, "evil.test:8000")
            .header("x-api-key", KEY)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(rebinding).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "forbidden");
        let (status, headers, body) = send(
            request(Method::GET, "/_sockpit/api/stats")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("API key required")
        );
        let ok = request(Method::GET, "/_sockpit/api/stats")
            .header("x-api-key", KEY)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(ok).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["connections"], 0);
    }

    #[tokio::test]
    async fn the_ui_cannot_be_framed_sniffed_or_cached_by_others() {
        let ui = request(Method::GET, "/_sockpit/")
            .header("x-api-key", KEY)
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = send(ui).await;
        assert_eq!(status, StatusCode::OK);
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert!(
            headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .starts_with("private")
        );
        // Errors too: nothing under /_sockpit/ is sniffed.
        let (_, headers, _) = send(
            request(Method::GET, "/_sockpit/api/stats")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[tokio::test]
    async fn the_desktop_window_may_save_settings() {
        // Settings saves with PUT: the webview's preflight must allow it.
        let preflight = request(Method::OPTIONS, "/_sockpit/api/config")
            .header(header::ORIGIN, "tauri://localhost")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = send(preflight).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap();
        for m in ["GET", "POST", "PUT", "DELETE"] {
            assert!(methods.contains(m), "{m} missing from {methods}");
        }
        // A web page's origin gets no CORS headers at all.
        let foreign = request(Method::OPTIONS, "/_sockpit/api/config")
            .header(header::ORIGIN, "http://localhost:3000")
            .body(Body::empty())
            .unwrap();
        let (_, headers, _) = send(foreign).await;
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[tokio::test]
    async fn requests_that_are_not_ours_are_dispatched() {
        let plain = request(Method::GET, "/ws/echo/")
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(plain).await;
        assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(
            body["detail"],
            "/ws/echo/ is a WebSocket endpoint: connect with ws://127.0.0.1:8000/ws/echo/"
        );
        let typo = request(Method::POST, "/ws/dashbord/")
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(typo).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body["detail"],
            "no endpoint /ws/dashbord/ — did you mean /ws/dashboard/?"
        );
    }

    #[tokio::test]
    async fn api_errors_name_what_is_wrong() {
        let keyed = |method: Method, uri: &str, body: &str| {
            request(method, uri)
                .header("x-api-key", KEY)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let (status, _, body) = send(keyed(Method::POST, "/_sockpit/api/publish", "{")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));
        let two = json!({"channel": "a", "user": 1, "data": 1}).to_string();
        let (status, _, body) = send(keyed(Method::POST, "/_sockpit/api/publish", &two)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("exactly one target")
        );
        let user = json!({"user": true, "data": 1}).to_string();
        let (status, _, body) = send(keyed(Method::POST, "/_sockpit/api/publish", &user)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("a non-empty string or a number")
        );
        let ok = json!({"user": 7, "data": {"n": 1}}).to_string();
        let (status, _, body) = send(keyed(Method::POST, "/_sockpit/api/publish", &ok)).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"delivered": 0})));
        let (status, _, body) =
            send(keyed(Method::DELETE, "/_sockpit/api/connections/c99", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"error": "not_found", "detail": "no connection c99"})
        );
        let (status, _, body) = send(keyed(
            Method::DELETE,
            "/_sockpit/api/connections/c1?code=1006",
            "",
        ))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("1006 cannot be sent")
        );
        let token = json!({"user_id": "", "ttl_s": 60}).to_string();
        let (status, _, _) = send(keyed(Method::POST, "/_sockpit/api/token", &token)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

//! The server object: start it from a [`Config`] and a listener, get a [`ServerHandle`]
//! with the bound address, live stats, an event subscription and an idempotent graceful
//! [`ServerHandle::shutdown`]. Also the WebSocket handshake and its verdicts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiError};
use crate::auth::{self, Principal, Verifier};
use crate::config::{AuthMode, Config, RejectMode};
use crate::connection;
use crate::datadir;
use crate::endpoint::{Endpoints, Matched};
use crate::events::{Event, EventKind, EventLog, Logged};
use crate::hub::{ConnMeta, Hub, Slot};
use crate::origin::check_origin;
use crate::portinfo::{self, Holder};
use crate::stats::{self, StatsSnapshot};

/// Read buffer per WebSocket. tungstenite's default (128 KiB) stays resident per idle
/// connection; 4 KiB keeps an idle connection small and still reads large messages
/// (the buffer grows for them).
const READ_BUFFER: usize = 4 << 10;
/// Write buffer per WebSocket: frames are flushed once this much is pending.
const WRITE_BUFFER: usize = 8 << 10;

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
    /// The data dir could not be used.
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    /// The auth setup is wrong.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// `api.key_env` names a variable that is not set.
    #[error("api.key_env: environment variable {0} is not set")]
    KeyEnvMissing(String),
}

/// Where the server keeps its files; from `SOCKPIT_DATA_DIR` by default.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The config file Settings reads and writes; `None`: Settings is read-only.
    pub config_file: Option<PathBuf>,
}

impl Paths {
    /// `SOCKPIT_DATA_DIR`, else the OS data dir; no config file.
    pub fn from_env() -> Result<Self, datadir::DataDirError> {
        Ok(Self::in_dir(datadir::resolve()?))
    }

    /// Everything in `data_dir`; no config file.
    pub fn in_dir(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            config_file: None,
        }
    }

    /// The same, with the config file Settings writes.
    pub fn with_config_file(mut self, file: Option<PathBuf>) -> Self {
        self.config_file = file;
        self
    }

    /// The event log file for `config`.
    pub fn log_file(&self, config: &Config) -> PathBuf {
        config
            .log
            .file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(datadir::LOG_FILE))
    }
}

/// Secrets resolved from config, environment and the data dir.
#[derive(Clone)]
pub struct Secrets {
    /// HMAC secret for HS* tokens.
    pub jwt_secret: String,
    /// API key for `/_sockpit/api/*`.
    pub api_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(…redacted)")
    }
}

impl Secrets {
    /// Config value, else the named env var, else the file generated in the data dir.
    pub fn resolve(config: &Config, paths: &Paths) -> Result<Self, StartError> {
        let jwt_secret = if !config.auth.secret.is_empty() {
            config.auth.secret.clone()
        } else if let Some(var) = &config.auth.secret_env {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| auth::AuthError::SecretEnvMissing(var.clone()))?
        } else {
            datadir::read_or_generate(&paths.data_dir, datadir::SECRET_FILE)?
        };
        let api_key = if !config.api.key.is_empty() {
            config.api.key.clone()
        } else if let Some(var) = &config.api.key_env {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| StartError::KeyEnvMissing(var.clone()))?
        } else {
            datadir::read_or_generate(&paths.data_dir, datadir::API_KEY_FILE)?
        };
        Ok(Self {
            jwt_secret,
            api_key,
        })
    }
}

impl Verifier {
    /// The verifier a server with `config` and `paths` uses (same secret, same rules):
    /// what `sockpit token` and `sockpit doctor` need to agree with a running server.
    pub fn for_config(config: &Config, paths: &Paths) -> Result<Self, StartError> {
        let secrets = Secrets::resolve(config, paths)?;
        Ok(Self::new(&config.auth, &secrets.jwt_secret)?)
    }
}

/// State shared by every handler and connection task.
pub(crate) struct Shared {
    pub config: Config,
    pub endpoints: Endpoints,
    pub verifier: Verifier,
    pub api_key: String,
    pub hub: Arc<Hub>,
    pub events: EventLog,
    /// Latest stats snapshot; written by the sampler task only.
    pub stats: watch::Receiver<Arc<StatsSnapshot>>,
    /// Cancelled once, by shutdown: every task watches it.
    pub stop: CancellationToken,
    /// Every background task (accept loop, HTTP connections, sampler, log writer), so
    /// shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Every WebSocket task (clients, refused handshakes being closed, UI event streams):
    /// shutdown waits for these to send their 1001 before the last event is written.
    pub sockets: TaskTracker,
    /// Set by the first `shutdown()`; later calls only wait.
    pub shutting_down: std::sync::atomic::AtomicBool,
    /// Where secrets, the log and the config file live.
    pub paths: Paths,
    /// A config saved through Settings, for whoever owns this server to restart with
    /// (the CLI's serve loop, the desktop controller). Written by the API only.
    pub applied: watch::Sender<Option<Arc<Config>>>,
    pub started: Instant,
    pub local_addr: SocketAddr,
}

impl Shared {
    pub(crate) fn snapshot_now(&self) -> StatsSnapshot {
        let mut s = stats::snapshot(
            &self.hub,
            &self.endpoints,
            self.started,
            self.events.dropped(),
        );
        let latest = self.stats.borrow();
        s.messages_in_per_s = latest.messages_in_per_s;
        s.messages_out_per_s = latest.messages_out_per_s;
        s
    }
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
        let secrets = Secrets::resolve(&config, &paths)?;
        let verifier = Verifier::new(&config.auth, &secrets.jwt_secret)?;
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
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
        let first = stats::snapshot(&hub, &endpoints, started, 0);
        let (stats_tx, stats_rx) = watch::channel(Arc::new(first));
        let shared = Arc::new(Shared {
            endpoints,
            verifier,
            api_key: secrets.api_key,
            hub,
            events,
            stats: stats_rx,
            stop: stop.clone(),
            tracker: tracker.clone(),
            sockets: TaskTracker::new(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            paths,
            applied: watch::channel(None).0,
            started,
            local_addr,
            config,
        });

        if shared.config.server.bind.is_unspecified() {
            tracing::warn!(
                "binding {} exposes Sockpit to your network; use 127.0.0.1 unless you mean it",
                shared.config.server.bind
            );
        }
        if shared.config.proxy.upstream.is_some() {
            tracing::warn!("[proxy] upstream is not implemented yet; other HTTP requests get 404");
        }

        {
            let s = shared.clone();
            tracker.spawn(stats::run_sampler(
                move || stats::snapshot(&s.hub, &s.endpoints, s.started, s.events.dropped()),
                stats_tx,
                stop.clone(),
            ));
        }
        let app = router(shared.clone());
        tracker.spawn(accept_loop(listener, app, shared.clone()));

        let mut e = Event::new(EventKind::ServerStarted);
        e.remote = Some(local_addr.to_string());
        e.reason = Some(format!("listening on {local_addr}"));
        shared.events.emit(e);
        tracing::info!("listening on {local_addr}");

        Ok(ServerHandle { shared })
    }
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

    /// The stats as the sampler publishes them (every 250 ms).
    pub fn watch_stats(&self) -> watch::Receiver<Arc<StatsSnapshot>> {
        self.shared.stats.clone()
    }

    /// Live events; subscribe before reading [`ServerHandle::recent_events`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Logged>> {
        self.shared.events.subscribe()
    }

    /// Events in the ring, oldest first.
    pub fn recent_events(&self) -> Vec<Arc<Logged>> {
        self.shared.events.recent()
    }

    /// Current connections.
    pub fn connections(&self) -> Vec<stats::ConnectionInfo> {
        api::connection_list(&self.shared)
    }

    /// Publishes `data` (JSON; a string is sent as its text) to a target.
    pub fn publish(&self, target: crate::hub::Target, data: &serde_json::Value) -> u64 {
        api::publish(&self.shared, target, data)
    }

    /// Closes one connection; `false` if there is no such connection.
    pub fn kick(&self, id: &str, code: u16, reason: &str) -> bool {
        match self.shared.hub.get(id) {
            Some(c) => {
                c.close(code, reason);
                true
            }
            None => false,
        }
    }

    /// Mints a dev token valid for this server's auth config.
    pub fn mint_token(
        &self,
        user_id: &str,
        ttl: Duration,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, auth::AuthError> {
        self.shared.verifier.mint(user_id, ttl, claims)
    }

    /// Configs saved through Settings (`PUT /_sockpit/api/config`): the owner restarts
    /// the server with the newest one. The file is already written; the config carries
    /// the environment overrides.
    pub fn applied_config(&self) -> watch::Receiver<Option<Arc<Config>>> {
        self.shared.applied.subscribe()
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
        use std::sync::atomic::Ordering;
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

/// The whole HTTP surface: `/_sockpit/*` and, for every other path, the WebSocket
/// endpoints (or a 404 that names the nearest endpoint).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(api::router(shared.clone()))
        .fallback(ws_or_not_found)
        .with_state(shared)
}

async fn accept_loop(listener: TcpListener, app: Router, shared: Arc<Shared>) {
    let header_timeout = Duration::from_secs(shared.config.server.handshake_timeout_s.0);
    loop {
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

/// A refused handshake.
struct Verdict {
    code: u16,
    reason: String,
    endpoint: Option<String>,
}

impl Verdict {
    fn status(&self) -> StatusCode {
        match self.code {
            4001 => StatusCode::UNAUTHORIZED,
            4003 => StatusCode::FORBIDDEN,
            4004 => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What passed the checks.
struct Admitted {
    matched: Matched,
    principal: Option<Principal>,
    slot: Slot,
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_str(headers, header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

async fn ws_or_not_found(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, _body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if !is_websocket_upgrade(&parts.headers) {
        return match shared.endpoints.resolve(&path) {
            Ok(_) => ApiError::UpgradeRequired(format!(
                "{path} is a WebSocket endpoint: connect with ws://{}{path}",
                header_str(&parts.headers, header::HOST).unwrap_or("localhost:8000")
            ))
            .into_response(),
            Err(reason) => ApiError::NotFound(reason).into_response(),
        };
    }
    let mut ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let origin = header_str(&parts.headers, header::ORIGIN).map(str::to_string);
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok().map(str::to_string))
        .collect();
    let offered_refs: Vec<&str> = offered.iter().map(String::as_str).collect();
    let query = parts.uri.query();
    let shown_path = match query {
        Some(q) => format!("{path}?{}", auth::redact_query(q)),
        None => path.clone(),
    };

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

    let verdict = check(&shared, &path, origin.as_deref(), found.map(|f| f.token));
    let cfg = &shared.config.server;
    match verdict {
        Err(v) => {
            shared.hub.stats.handshake("rejected", v.code);
            let mut e = Event::new(EventKind::HandshakeRejected);
            e.path = Some(shown_path.clone());
            e.endpoint = v.endpoint.clone();
            e.remote = Some(remote.to_string());
            e.origin = origin.clone();
            e.code = Some(v.code);
            e.reason = Some(v.reason.clone());
            shared.events.emit(e);
            tracing::info!(path = %shown_path, code = v.code, "handshake rejected: {}", v.reason);
            if shared.config.server.reject == RejectMode::Http {
                let status = v.status();
                return ApiError::Handshake(status, v.reason).into_response();
            }
            let guard = shared.sockets.token();
            ws.max_message_size(cfg.max_message_bytes.get())
                .read_buffer_size(READ_BUFFER)
                .on_upgrade(move |mut socket| async move {
                    connection::send_close(&mut socket, v.code, &v.reason).await;
                    drop(guard);
                })
        }
        Ok(Admitted {
            matched,
            principal,
            slot,
        }) => {
            shared.hub.stats.handshake("accepted", 0);
            let user = principal.map(|p| p.user_id);
            let endpoint = matched.endpoint.clone();
            let channels = matched.channels(user.as_deref());
            let s = shared.clone();
            let guard = shared.sockets.token();
            ws.max_message_size(cfg.max_message_bytes.get())
                .max_frame_size(cfg.max_message_bytes.get())
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(WRITE_BUFFER)
                .on_upgrade(move |socket| async move {
                    let (conn, rx) = s.hub.register(ConnMeta {
                        endpoint: endpoint.path.as_str().to_string(),
                        path,
                        channels,
                        user,
                        remote,
                        origin,
                    });
                    connection::run(socket, s.clone(), conn, rx, endpoint, slot).await;
                    drop(guard);
                })
        }
    }
}

/// The handshake checks, in the order a developer would fix them.
fn check(
    shared: &Arc<Shared>,
    path: &str,
    origin: Option<&str>,
    token: Option<String>,
) -> Result<Admitted, Verdict> {
    let matched = shared.endpoints.resolve(path).map_err(|reason| Verdict {
        code: 4004,
        reason,
        endpoint: None,
    })?;
    let endpoint = Some(matched.endpoint.path.as_str().to_string());
    check_origin(&shared.config.server.allowed_origins, origin).map_err(|reason| Verdict {
        code: 4003,
        reason,
        endpoint: endpoint.clone(),
    })?;
    let principal = match matched.endpoint.auth {
        AuthMode::None => None,
        AuthMode::Jwt => {
            let source_hint = || match shared.config.auth.token_sources.first() {
                Some(crate::config::TokenSource::Query(q)) => format!("?{q}=…"),
                Some(crate::config::TokenSource::Header) => "Authorization: Bearer …".into(),
                _ => "Sec-WebSocket-Protocol".into(),
            };
            let token = token.ok_or_else(|| Verdict {
                code: 4001,
                reason: format!("no token (expected {})", source_hint()),
                endpoint: endpoint.clone(),
            })?;
            Some(shared.verifier.verify(&token).map_err(|reason| Verdict {
                code: 4001,
                reason,
                endpoint: endpoint.clone(),
            })?)
        }
    };
    // Reserve last, so a refused handshake never holds a place.
    let slot = shared.hub.try_admit().ok_or_else(|| Verdict {
        code: 4029,
        reason: format!(
            "max_connections {} reached",
            shared.config.server.max_connections.0
        ),
        endpoint,
    })?;
    Ok(Admitted {
        matched,
        principal,
        slot,
    })
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

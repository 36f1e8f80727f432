//! The one owner of the server's lifecycle in the desktop app: start, stop, restart,
//! status. Knows nothing of Tauri: the shell watches [`Controller::watch`] and mirrors
//! the status into the tray, the window and notifications.

use std::time::Duration;

use serde::Serialize;
use sockpit::config::Config;
use sockpit::server::StartError;
use sockpit::{Paths, Server, ServerHandle};
use tokio::sync::{Mutex, watch};
use ts_rs::TS;

/// What the server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Serving.
    Running,
    /// Stopped on purpose.
    Stopped,
    /// Could not start (see `error`).
    Error,
}

/// The process holding a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct PortHolder {
    /// Process id.
    pub pid: u32,
    /// Process name.
    pub name: String,
}

/// Everything the tray and the window show about the server.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Status {
    /// Running, stopped or error.
    pub state: ServerState,
    /// The configured (or, when running, bound) port.
    pub port: u16,
    /// `http://127.0.0.1:8000` while running.
    #[ts(optional)]
    pub base_url: Option<String>,
    /// The first endpoint's WebSocket URL while running.
    #[ts(optional)]
    pub ws_url: Option<String>,
    /// The API key while running (the UI uses it to call the API).
    #[ts(optional)]
    pub api_key: Option<String>,
    /// Open connections (kept current by the shell for the tooltip).
    pub connections: u64,
    /// Why the server is not running.
    #[ts(optional)]
    pub error: Option<String>,
    /// Who holds the port, when the port was taken.
    #[ts(optional)]
    pub holder: Option<PortHolder>,
    /// Whether a tray icon is shown (false where the tray library is missing).
    pub tray: bool,
}

impl Status {
    fn stopped(port: u16, tray: bool) -> Self {
        Self {
            state: ServerState::Stopped,
            port,
            base_url: None,
            ws_url: None,
            api_key: None,
            connections: 0,
            error: None,
            holder: None,
            tray,
        }
    }

    /// `Sockpit · :8000 · 3 connections`.
    pub fn tooltip(&self) -> String {
        match self.state {
            ServerState::Running => format!(
                "Sockpit · :{} · {} connection{}",
                self.port,
                self.connections,
                if self.connections == 1 { "" } else { "s" }
            ),
            ServerState::Stopped => format!("Sockpit · :{} · stopped", self.port),
            ServerState::Error => format!(
                "Sockpit · :{} · {}",
                self.port,
                self.error.as_deref().unwrap_or("error")
            ),
        }
    }
}

/// Why a lifecycle call failed; serialised to the window as `{kind, message}`.
#[derive(Debug, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum ControlError {
    /// The server could not start.
    #[error("{0}")]
    Start(String),
    /// Minting a token failed.
    #[error("{0}")]
    Token(String),
    /// Writing the config failed.
    #[error("{0}")]
    Config(String),
}

struct Inner {
    config: Config,
    handle: Option<ServerHandle>,
}

/// Owns the server. Clone-free: keep it in an `Arc` or Tauri state.
pub struct Controller {
    /// Serialises start/stop/restart. A tokio mutex on purpose: a lifecycle step awaits
    /// the server's start or shutdown, and a second click must wait for the first.
    inner: Mutex<Inner>,
    /// Data dir, and the desktop config file (`paths.config_file`).
    paths: Paths,
    /// The current status; the shell watches it.
    status: watch::Sender<Status>,
}

impl Controller {
    /// A stopped controller for `config`.
    pub fn new(config: Config, paths: Paths, tray: bool) -> Self {
        let (status, _) = watch::channel(Status::stopped(config.server.port, tray));
        Self {
            inner: Mutex::new(Inner {
                config,
                handle: None,
            }),
            paths,
            status,
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Status changes, for the tray and the window.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// The running server, if any.
    pub async fn handle(&self) -> Option<ServerHandle> {
        self.inner.lock().await.handle.clone()
    }

    /// Starts the server (a no-op when running). A bind error is a value: the status
    /// becomes `error` with the reason and, for a taken port, who holds it.
    pub async fn start(&self) -> Result<Status, ControlError> {
        let mut inner = self.inner.lock().await;
        if inner.handle.is_some() {
            return Ok(self.status());
        }
        let tray = self.status.borrow().tray;
        match Server::bind(inner.config.clone(), self.paths.clone()).await {
            Ok(handle) => {
                let addr = handle.local_addr();
                let host = if addr.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    addr.ip().to_string()
                };
                let ws_path = handle
                    .config()
                    .endpoints
                    .first()
                    .map(|e| e.path.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                let status = Status {
                    state: ServerState::Running,
                    port: addr.port(),
                    base_url: Some(format!("http://{host}:{}", addr.port())),
                    ws_url: Some(format!("ws://{host}:{}{ws_path}", addr.port())),
                    api_key: Some(handle.api_key().to_string()),
                    connections: 0,
                    error: None,
                    holder: None,
                    tray,
                };
                inner.handle = Some(handle);
                self.status.send_replace(status.clone());
                Ok(status)
            }
            Err(e) => {
                let holder = match &e {
                    StartError::PortInUse {
                        holder: Some(h), ..
                    } => Some(PortHolder {
                        pid: h.pid,
                        name: h.name.clone(),
                    }),
                    _ => None,
                };
                let mut status = Status::stopped(inner.config.server.port, tray);
                status.state = ServerState::Error;
                status.error = Some(e.to_string());
                status.holder = holder;
                self.status.send_replace(status);
                Err(ControlError::Start(e.to_string()))
            }
        }
    }

    /// Stops the server gracefully (clients get 1001); a no-op when stopped.
    pub async fn stop(&self) -> Status {
        let mut inner = self.inner.lock().await;
        if let Some(handle) = inner.handle.take() {
            handle.shutdown().await;
        }
        let tray = self.status.borrow().tray;
        let status = Status::stopped(inner.config.server.port, tray);
        self.status.send_replace(status.clone());
        status
    }

    /// Stops, then starts.
    pub async fn restart(&self) -> Result<Status, ControlError> {
        self.stop().await;
        self.start().await
    }

    /// Switches to a free port (the "use another port" button), saves it in the desktop
    /// config file, and starts. Only the port is changed on disk: overrides from the
    /// environment (secrets among them) never reach the file, and a file that does not
    /// load is left alone.
    pub async fn use_free_port(&self) -> Result<Status, ControlError> {
        let bind = self.inner.lock().await.config.server.bind;
        let port =
            free_port(bind).ok_or_else(|| ControlError::Start("no free port found".into()))?;
        if let Some(file) = &self.paths.config_file {
            let text = if file.exists() {
                let mut on_disk = Config::from_file(file).map_err(|e| {
                    ControlError::Config(format!(
                        "{e} (fix the config file first; it was left as it is)"
                    ))
                })?;
                on_disk.server.port = port;
                on_disk.to_toml()
            } else {
                format!("[server]\nport = {port}\n")
            };
            sockpit::datadir::write_private(file, text.as_bytes())
                .map_err(|e| ControlError::Config(e.to_string()))?;
        }
        let mut config = self.inner.lock().await.config.clone();
        config.server.port = port;
        self.apply(config).await
    }

    /// Restarts with `config` (saved through Settings, or a new port).
    pub async fn apply(&self, config: Config) -> Result<Status, ControlError> {
        self.stop().await;
        self.inner.lock().await.config = config;
        self.start().await
    }

    /// Mints a test token for `user_id`, valid for an hour.
    pub async fn mint_token(&self, user_id: &str) -> Result<String, ControlError> {
        let handle = self
            .handle()
            .await
            .ok_or_else(|| ControlError::Token("the server is not running".into()))?;
        handle
            .mint_token(user_id, Duration::from_secs(3600), &Default::default())
            .map_err(|e| ControlError::Token(e.to_string()))
    }

    /// Records the live connection count (from the server's stats) in the status.
    pub fn set_connections(&self, n: u64) {
        self.status.send_if_modified(|s| {
            let changed = s.state == ServerState::Running && s.connections != n;
            if changed {
                s.connections = n;
            }
            changed
        });
    }
}

/// A port the OS says is free right now, on `bind`.
fn free_port(bind: std::net::IpAddr) -> Option<u16> {
    std::net::TcpListener::bind((bind, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

/// The TypeScript the window imports for [`Status`] (`ui/src/lib/desktop-wire.ts`).
pub fn typescript() -> String {
    use ts_rs::TS as _;
    sockpit::wire::ts_module(
        "src-tauri/src/controller.rs",
        "cargo test -p sockpit-desktop wire",
        [ServerState::decl(), PortHolder::decl(), Status::decl()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_wire_ts_is_fresh() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/desktop-wire.ts");
        sockpit::wire::check_generated(&path, &typescript(), "cargo test -p sockpit-desktop wire")
            .unwrap();
    }

    #[test]
    fn tooltip_reads_like_the_design() {
        let mut s = Status::stopped(8000, true);
        s.state = ServerState::Running;
        s.connections = 3;
        assert_eq!(s.tooltip(), "Sockpit · :8000 · 3 connections");
        s.connections = 1;
        assert_eq!(s.tooltip(), "Sockpit · :8000 · 1 connection");
    }
}

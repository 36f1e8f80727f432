//! The desktop's controller: the library's [`Supervisor`] (start, stop, restart, apply,
//! another port) plus the [`Status`] the tray and the window show. Knows nothing of
//! Tauri: the shell watches [`Controller::watch`] and mirrors the status into the tray,
//! the window and notifications.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sockpit::config::Config;
use sockpit::init;
use sockpit::{Lifecycle, LifecycleError, Paths, ServerHandle, StartError, Supervisor};
use tokio::sync::watch;
use ts_rs::TS;

use crate::profiles::{self, Profile, ProfileError, Profiles, ProjectPreview};

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
    /// A Django project could not be read, or a profile not used.
    #[error("{0}")]
    Project(String),
}

impl From<ProfileError> for ControlError {
    fn from(e: ProfileError) -> Self {
        Self::Project(e.to_string())
    }
}

impl From<init::InitError> for ControlError {
    fn from(e: init::InitError) -> Self {
        Self::Project(e.to_string())
    }
}

impl From<LifecycleError> for ControlError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::ConfigFile(_) | LifecycleError::Write(_) => Self::Config(e.to_string()),
            _ => Self::Start(e.to_string()),
        }
    }
}

/// The desktop's view of the library's [`Supervisor`]: the same lifecycle, plus the
/// [`Status`] the tray and the window show.
pub struct Controller {
    /// Owns the server's lifecycle.
    supervisor: Supervisor,
    /// The current status; derived from the supervisor's state by [`Controller::refresh`].
    status: watch::Sender<Status>,
    /// The config files to switch between.
    profiles: Profiles,
    /// One switch at a time, so the profile marked active is the one that runs (a tokio
    /// mutex: held across the switch's stop and start).
    switching: tokio::sync::Mutex<()>,
}

impl Controller {
    /// A stopped controller for `config` (from `paths.config_file`, one of `profiles`).
    pub fn new(config: Config, paths: Paths, tray: bool, profiles: Profiles) -> Self {
        let (status, _) = watch::channel(Status::stopped(config.server.port, tray));
        Self {
            supervisor: Supervisor::new(config, paths),
            status,
            profiles,
            switching: tokio::sync::Mutex::new(()),
        }
    }

    /// Every profile, the active one marked.
    pub fn profiles(&self) -> Vec<Profile> {
        self.profiles.list()
    }

    /// Makes `name` the active profile and runs its config (one server at a time). A
    /// profile whose file does not load is refused and the server keeps running as it was.
    pub async fn switch_profile(&self, name: &str) -> Result<Status, ControlError> {
        let _one = self.switching.lock().await;
        let file = self
            .profiles
            .file(name)
            .ok_or_else(|| ProfileError::Unknown(name.into()))?;
        let mut config = if file.exists() {
            Config::from_file(&file).map_err(|e| ControlError::Config(e.to_string()))?
        } else {
            Config::default()
        };
        config
            .apply_env(|k| std::env::var(k).ok())
            .map_err(|e| ControlError::Config(e.to_string()))?;
        self.profiles.set_active(name)?;
        let r = self.supervisor.switch(config, Some(file)).await;
        let status = self.refresh();
        r.map(|_| status).map_err(Into::into)
    }

    /// Reads the Django project at `dir` ("Open a Django project…"): what a profile made
    /// from it would say, its secret hidden.
    pub async fn inspect_project(
        &self,
        dir: PathBuf,
        python: Option<PathBuf>,
    ) -> Result<ProjectPreview, ControlError> {
        let proposal = self.propose(dir, python, false).await?;
        Ok(ProjectPreview {
            name: self.profiles.name_for(&proposal.project),
            project: proposal.project.display().to_string(),
            report: (proposal.rendered.report.into_iter())
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            guesses: proposal.rendered.guesses,
            relays: proposal.rendered.relays,
            toml: proposal.rendered.toml,
        })
    }

    /// Saves the Django project at `dir` as a new profile and switches to it.
    pub async fn add_project(
        &self,
        dir: PathBuf,
        python: Option<PathBuf>,
    ) -> Result<Status, ControlError> {
        let proposal = self.propose(dir, python, true).await?;
        let name = self.profiles.name_for(&proposal.project);
        self.profiles.add(&name, &proposal.rendered.toml)?;
        self.switch_profile(&name).await
    }

    /// `sockpit init`'s detection, off the runtime's threads (it runs the project's Python).
    async fn propose(
        &self,
        dir: PathBuf,
        python: Option<PathBuf>,
        include_secret: bool,
    ) -> Result<init::Proposal, ControlError> {
        // The port in use (a configured 0 binds a random one), so the profile keeps the
        // address the user has; the project's server gets the next port.
        let port = match self.handle() {
            Some(h) => h.local_addr().port(),
            None => self.supervisor.config().server.port,
        };
        // Not running on a random (0) or the last port: DESIGN's default, so the project's
        // server has a next port.
        let port = if (1..u16::MAX).contains(&port) {
            port
        } else {
            8000
        };
        tokio::task::spawn_blocking(move || {
            init::propose(
                &dir,
                &init::ProposeOptions {
                    python: python.as_deref(),
                    port,
                    include_secret,
                    elsewhere: true,
                },
            )
        })
        .await
        .map_err(|e| ControlError::Project(e.to_string()))?
        .map_err(Into::into)
    }

    /// The lifecycle owner, for the task that follows configs saved through Settings.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
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
    pub fn handle(&self) -> Option<ServerHandle> {
        self.supervisor.handle()
    }

    /// Starts the server (a no-op when running). A bind error is a value: the status
    /// becomes `error` with the reason and, for a taken port, who holds it.
    pub async fn start(&self) -> Result<Status, ControlError> {
        let r = self.supervisor.start().await;
        let status = self.refresh();
        r.map(|_| status).map_err(Into::into)
    }

    /// Stops the server gracefully (clients get 1001); a no-op when stopped.
    pub async fn stop(&self) -> Status {
        self.supervisor.stop().await;
        self.refresh()
    }

    /// Stops, then starts.
    pub async fn restart(&self) -> Result<Status, ControlError> {
        let r = self.supervisor.restart().await;
        let status = self.refresh();
        r.map(|_| status).map_err(Into::into)
    }

    /// Switches to a free port (the "use another port" button), saves it in the desktop
    /// config file, and starts.
    pub async fn use_free_port(&self) -> Result<Status, ControlError> {
        let r = self.supervisor.use_free_port().await;
        let status = self.refresh();
        r.map(|_| status).map_err(Into::into)
    }

    /// Mints a test token for `user_id`, valid for an hour.
    pub async fn mint_token(&self, user_id: &str) -> Result<String, ControlError> {
        let handle = self
            .handle()
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

    /// Recomputes the status from the supervisor's state and publishes it if it changed.
    pub fn refresh(&self) -> Status {
        let old = self.status();
        let port = || self.supervisor.config().server.port;
        let next = match self.supervisor.state() {
            Lifecycle::Running(h) => {
                let urls = h.urls();
                let ws_path = h
                    .config()
                    .endpoints
                    .first()
                    .map_or("/", |e| e.path.as_str());
                Status {
                    state: ServerState::Running,
                    port: h.local_addr().port(),
                    ws_url: Some(urls.ws(ws_path)),
                    base_url: Some(urls.http()),
                    api_key: Some(h.api_key().to_string()),
                    connections: h.stats().connections,
                    error: None,
                    holder: None,
                    tray: old.tray,
                }
            }
            Lifecycle::Failed(e) => Status {
                state: ServerState::Error,
                error: Some(e.to_string()),
                holder: match &*e {
                    StartError::PortInUse {
                        holder: Some(h), ..
                    } => Some(PortHolder {
                        pid: h.pid,
                        name: h.name.clone(),
                    }),
                    _ => None,
                },
                ..Status::stopped(port(), old.tray)
            },
            Lifecycle::Stopped => Status::stopped(port(), old.tray),
        };
        self.status.send_if_modified(|s| {
            let changed = *s != next;
            if changed {
                *s = next.clone();
            }
            changed
        });
        next
    }
}

/// The TypeScript the window imports for [`Status`] (`ui/src/lib/desktop-wire.ts`).
pub fn typescript() -> String {
    use ts_rs::TS as _;
    sockpit::wire::ts_module(
        "src-tauri/src/controller.rs",
        "cargo test -p sockpit-desktop wire",
        [
            ServerState::decl(),
            PortHolder::decl(),
            Status::decl(),
            profiles::Profile::decl(),
            profiles::ProjectPreview::decl(),
        ],
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

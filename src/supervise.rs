//! The lifecycle of a server that outlives one run: start, stop, restart, apply a new
//! config (falling back to the last one that started), follow configs saved through
//! Settings, and stop on a signal. `sockpit serve`, the desktop controller and the
//! desktop's headless mode all run their server through one [`Supervisor`].

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::datadir::{DataDirError, Paths};
use crate::server::{Server, ServerHandle, StartError};
use crate::settings;

/// What the supervised server is doing.
#[derive(Debug, Clone)]
pub enum Lifecycle {
    /// Not running: never started, or stopped on purpose.
    Stopped,
    /// Serving.
    Running(ServerHandle),
    /// The last start failed.
    Failed(Arc<StartError>),
}

impl Lifecycle {
    /// The running server, if any.
    pub fn running(&self) -> Option<&ServerHandle> {
        match self {
            Self::Running(h) => Some(h),
            _ => None,
        }
    }
}

/// Why a lifecycle step did not leave the server running as asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LifecycleError {
    /// The server could not start.
    #[error(transparent)]
    Start(Arc<StartError>),
    /// A new config did not start; the last good one runs again.
    #[error("the new config does not start ({0}); the previous one runs again")]
    FellBack(Arc<StartError>),
    /// No free port could be found.
    #[error("no free port found")]
    NoFreePort,
    /// The config file does not load, so it cannot be edited.
    #[error("{0} (fix the config file first; it was left as it is)")]
    ConfigFile(Arc<ConfigError>),
    /// Writing the config file failed.
    #[error(transparent)]
    Write(Arc<DataDirError>),
}

impl From<settings::PortSaveError> for LifecycleError {
    fn from(e: settings::PortSaveError) -> Self {
        match e {
            settings::PortSaveError::Load(e) => Self::ConfigFile(Arc::new(e)),
            settings::PortSaveError::Write(e) => Self::Write(Arc::new(e)),
        }
    }
}

/// The configs a supervisor knows.
#[derive(Debug)]
struct Configs {
    /// What the next start uses.
    next: Config,
    /// The last config that started: where a failed apply falls back to.
    last_good: Option<Config>,
}

/// Owns one server's lifecycle.
#[derive(Debug)]
pub struct Supervisor {
    /// Serialises lifecycle steps. A tokio mutex on purpose: a step awaits a start or a
    /// shutdown, and a second click must wait for the first to finish.
    steps: tokio::sync::Mutex<()>,
    /// Plain data, locked only to read or swap a config (never across an await).
    configs: Mutex<Configs>,
    /// Data dir and the config file Settings writes (a desktop profile switch changes
    /// the file; locked only to read or swap it).
    paths: Mutex<Paths>,
    /// The current state; written under `steps` only, watched by the owners (the CLI
    /// banner, the desktop's tray and window).
    state: watch::Sender<Lifecycle>,
}

impl Supervisor {
    /// A stopped supervisor for `config`.
    pub fn new(config: Config, paths: Paths) -> Self {
        Self {
            steps: tokio::sync::Mutex::new(()),
            configs: Mutex::new(Configs {
                next: config,
                last_good: None,
            }),
            paths: Mutex::new(paths),
            state: watch::channel(Lifecycle::Stopped).0,
        }
    }

    /// Where the server keeps its files.
    pub fn paths(&self) -> Paths {
        self.paths.lock().clone()
    }

    /// The config the server runs with (or will, at the next start).
    pub fn config(&self) -> Config {
        self.configs.lock().next.clone()
    }

    /// The current state.
    pub fn state(&self) -> Lifecycle {
        self.state.borrow().clone()
    }

    /// State changes.
    pub fn watch(&self) -> watch::Receiver<Lifecycle> {
        self.state.subscribe()
    }

    /// The running server, if any.
    pub fn handle(&self) -> Option<ServerHandle> {
        self.state.borrow().running().cloned()
    }

    /// Starts the server; a no-op when it runs.
    pub async fn start(&self) -> Result<ServerHandle, LifecycleError> {
        let _step = self.steps.lock().await;
        if let Some(h) = self.handle() {
            return Ok(h);
        }
        let config = self.config();
        self.start_with(config).await.map_err(LifecycleError::Start)
    }

    /// Stops the server gracefully (clients get 1001); a no-op when it is not running.
    pub async fn stop(&self) {
        let _step = self.steps.lock().await;
        self.stop_locked().await;
    }

    /// Stops, then starts with the same config.
    pub async fn restart(&self) -> Result<ServerHandle, LifecycleError> {
        let _step = self.steps.lock().await;
        self.stop_locked().await;
        let config = self.config();
        self.start_with(config).await.map_err(LifecycleError::Start)
    }

    /// Restarts with `config`. If it does not start, the last config that did comes back
    /// and the error says so.
    pub async fn apply(&self, config: Config) -> Result<ServerHandle, LifecycleError> {
        let _step = self.steps.lock().await;
        self.apply_locked(config).await
    }

    async fn apply_locked(&self, config: Config) -> Result<ServerHandle, LifecycleError> {
        self.stop_locked().await;
        let fallback = {
            let mut c = self.configs.lock();
            c.next = config.clone();
            c.last_good.clone().filter(|good| *good != config)
        };
        let new_error = match self.start_with(config).await {
            Ok(h) => return Ok(h),
            Err(e) => e,
        };
        let Some(good) = fallback else {
            return Err(LifecycleError::Start(new_error));
        };
        self.configs.lock().next = good.clone();
        match self.start_with(good).await {
            Ok(h) => {
                let e = LifecycleError::FellBack(new_error);
                // Said where the user looks: the Logs screen of the server that runs.
                h.record_error(&e.to_string());
                Err(e)
            }
            Err(previous) => {
                tracing::error!(
                    "the new config does not start ({new_error}), and neither does the previous one"
                );
                Err(LifecycleError::Start(previous))
            }
        }
    }

    /// Switches to another config file (a desktop profile): stops, then starts with
    /// `config`, and Settings edits `config_file` from now on. No fallback: a profile that
    /// does not start shows why, and the previous one is one switch away.
    pub async fn switch(
        &self,
        config: Config,
        config_file: Option<std::path::PathBuf>,
    ) -> Result<ServerHandle, LifecycleError> {
        let _step = self.steps.lock().await;
        self.stop_locked().await;
        {
            let mut c = self.configs.lock();
            c.next = config.clone();
            c.last_good = None;
        }
        self.paths.lock().config_file = config_file;
        self.start_with(config).await.map_err(LifecycleError::Start)
    }

    /// Moves the server to a free port (after "port in use"), saves that port in the
    /// config file, and starts. Only the port changes on disk: environment overrides
    /// (secrets among them) never reach the file, and a file that does not load is left
    /// alone.
    pub async fn use_free_port(&self) -> Result<ServerHandle, LifecycleError> {
        let mut config = self.config();
        let port = std::net::TcpListener::bind((config.server.bind, 0))
            .and_then(|l| l.local_addr())
            .map_err(|_| LifecycleError::NoFreePort)?
            .port();
        if let Some(file) = &self.paths().config_file {
            settings::save_port(file, port)?;
        }
        config.server.port = port;
        self.apply(config).await
    }

    /// Runs until `stop` resolves, restarting with every config saved through Settings;
    /// then stops the server. Start it first ([`Supervisor::start`]); a stopped server
    /// stays stopped until someone starts it.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut state = self.watch();
        loop {
            let running = state.borrow_and_update().running().cloned();
            let saved = async {
                let Some(h) = running else {
                    return std::future::pending().await;
                };
                let mut rx = h.applied_config();
                // The current value counts too: a config saved before this subscribed.
                let _ = rx.wait_for(Option::is_some).await;
                h
            };
            tokio::select! {
                _ = &mut stop => break,
                r = state.changed() => if r.is_err() { break },
                from = saved => if let Err(e) = self.apply_saved(&from).await {
                    tracing::warn!("{e}");
                },
            }
        }
        self.stop().await;
    }

    /// [`Supervisor::run`] for a command line: calls `on_start` with every server that
    /// starts (the one running now included), and ends with an error when a restart
    /// leaves no server running, so the process can exit non-zero.
    pub async fn run_announcing(
        &self,
        stop: impl Future<Output = ()>,
        mut on_start: impl FnMut(&ServerHandle),
    ) -> Result<(), LifecycleError> {
        let announce = async {
            let mut state = self.watch();
            loop {
                let now = state.borrow_and_update().clone();
                match now {
                    Lifecycle::Running(h) => on_start(&h),
                    Lifecycle::Failed(e) => return LifecycleError::Start(e),
                    Lifecycle::Stopped => {}
                }
                if state.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            _ = self.run(stop) => Ok(()),
            e = announce => {
                self.stop().await;
                Err(e)
            }
        }
    }

    /// Applies the newest config saved through `from`'s Settings, if `from` is still the
    /// server running: a user who stopped or restarted it meanwhile keeps what they
    /// chose, and the saved config becomes the one the next start uses.
    async fn apply_saved(&self, from: &ServerHandle) -> Result<(), LifecycleError> {
        let _step = self.steps.lock().await;
        let Some(config) = from.applied_config().borrow().clone() else {
            return Ok(());
        };
        let config = (*config).clone();
        if !self.handle().is_some_and(|h| h.same_run(from)) {
            self.configs.lock().next = config;
            return Ok(());
        }
        tracing::info!("config saved through Settings: restarting");
        self.apply_locked(config).await.map(|_| ())
    }

    async fn start_with(&self, config: Config) -> Result<ServerHandle, Arc<StartError>> {
        match Server::bind(config.clone(), self.paths()).await {
            Ok(h) => {
                self.configs.lock().last_good = Some(config);
                self.state.send_replace(Lifecycle::Running(h.clone()));
                Ok(h)
            }
            Err(e) => {
                let e = Arc::new(e);
                self.state.send_replace(Lifecycle::Failed(e.clone()));
                Err(e)
            }
        }
    }

    async fn stop_locked(&self) {
        if let Some(h) = self.handle() {
            h.shutdown().await;
        }
        if !matches!(*self.state.borrow(), Lifecycle::Stopped) {
            self.state.send_replace(Lifecycle::Stopped);
        }
    }
}

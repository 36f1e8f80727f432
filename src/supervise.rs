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
    /// Data dir and the config file Settings writes.
    paths: Paths,
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
            paths,
            state: watch::channel(Lifecycle::Stopped).0,
        }
    }

    /// Where the server keeps its files.
    pub fn paths(&self) -> &Paths {
        &self.paths
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
        match &*self.state.borrow() {
            Lifecycle::Running(h) => Some(h.clone()),
            _ => None,
        }
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
        self.stop_locked().await;
        let fallback = {
            let mut c = self.configs.lock();
            c.next = config.clone();
            c.last_good.clone().filter(|good| *good != config)
        };
        match self.start_with(config).await {
            Ok(h) => Ok(h),
            Err(e) => match fallback {
                Some(good) => {
                    tracing::warn!("the new config does not start ({e}); back to the previous one");
                    self.configs.lock().next = good.clone();
                    self.start_with(good).await.map_err(LifecycleError::Start)?;
                    Err(LifecycleError::FellBack(e))
                }
                None => Err(LifecycleError::Start(e)),
            },
        }
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
        if let Some(file) = &self.paths.config_file {
            settings::save_port(file, port).map_err(|e| match e {
                settings::PortSaveError::Load(e) => LifecycleError::ConfigFile(Arc::new(e)),
                settings::PortSaveError::Write(e) => LifecycleError::Write(Arc::new(e)),
            })?;
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
            let running = match &*state.borrow_and_update() {
                Lifecycle::Running(h) => Some(h.clone()),
                _ => None,
            };
            let applied = async {
                let Some(h) = running else {
                    return std::future::pending().await;
                };
                let mut rx = h.applied_config();
                // The current value counts too: a config saved before this subscribed.
                let saved = rx.wait_for(Option::is_some).await.map(|c| c.clone());
                match saved {
                    Ok(c) => c,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                r = state.changed() => if r.is_err() { break },
                next = applied => if let Some(config) = next {
                    tracing::info!("config saved through Settings: restarting");
                    if let Err(e) = self.apply((*config).clone()).await {
                        tracing::warn!("{e}");
                    }
                },
            }
        }
        self.stop().await;
    }

    /// [`Supervisor::run`], calling `on_start` with every server that starts, the one
    /// running now included: where a command line prints where the server answers.
    pub async fn run_announcing(
        &self,
        stop: impl Future<Output = ()>,
        mut on_start: impl FnMut(&ServerHandle),
    ) {
        let announce = async {
            let mut state = self.watch();
            loop {
                let running = match &*state.borrow_and_update() {
                    Lifecycle::Running(h) => Some(h.clone()),
                    _ => None,
                };
                if let Some(h) = running {
                    on_start(&h);
                }
                if state.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            _ = self.run(stop) => {}
            () = announce => {}
        }
    }

    async fn start_with(&self, config: Config) -> Result<ServerHandle, Arc<StartError>> {
        match Server::bind(config.clone(), self.paths.clone()).await {
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

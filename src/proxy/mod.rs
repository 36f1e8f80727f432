//! The `[proxy]` upstream as the rest of the server sees it: where it is, the HTTP
//! client that reaches it, its traffic counters and latest errors, and the command that
//! runs it ([`process`]). The requests themselves are forwarded at the edge (`relay`).

pub mod page;
pub mod process;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use serde::Serialize;
use ts_rs::TS;

use crate::client;
use crate::config::{Config, UpstreamUrl};
pub use process::{Process, ProcessState, ProcessStatus};

pub use crate::client::CONNECT_TIMEOUT;
/// How long a request waits for a command that is still starting to answer.
pub const READY_WAIT: Duration = Duration::from_secs(30);
/// Latest errors kept for the Overview.
const ERRORS_KEPT: usize = 5;

/// The upstream of one server run.
pub struct Proxy {
    /// Where requests go.
    pub upstream: UpstreamUrl,
    /// Whether upgrades on unknown paths are relayed.
    pub websockets: bool,
    /// Pooled HTTP/1 connections to the upstream.
    pub client: Client<HttpConnector, Body>,
    /// The supervised command, when `[proxy] command` is set.
    pub process: Option<Arc<Process>>,
    requests: AtomicU64,
    errors: Mutex<VecDeque<String>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

/// The proxy in a stats snapshot (the Overview's card).
#[derive(Debug, Clone, Serialize, TS)]
pub struct ProxyStatus {
    /// `http://host:port`.
    pub upstream: String,
    /// Whether WebSockets on unknown paths are relayed.
    pub websockets: bool,
    /// Requests forwarded since start.
    pub requests: u64,
    /// Requests per second over the last second (set by the sampler).
    pub requests_per_s: f64,
    /// The latest errors, oldest first (`12:00:01 GET /api/: 502 connection refused`).
    pub errors: Vec<String>,
    /// The command Sockpit runs, if it runs one.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessStatus>,
}

impl Proxy {
    /// The proxy of `config`, or `None` without an upstream. A relative `cwd` is taken
    /// from `base` (the config file's folder).
    pub fn new(whole: &Config, base: Option<&Path>) -> Option<Arc<Self>> {
        let config = &whole.proxy;
        let upstream = config.upstream.clone()?;
        // `sockpit.toml`'s folder is "": the working directory.
        let base = base.filter(|b| !b.as_os_str().is_empty());
        // Host is the browser's, not the upstream's: Django's ALLOWED_HOSTS and CSRF
        // checks see the address the page was loaded from.
        let client = client::new(true);
        let process = config.command.as_ref().map(|command| {
            let cwd = match (&config.cwd, base) {
                (Some(dir), Some(base)) if dir.is_relative() => Some(base.join(dir)),
                (Some(dir), _) => Some(dir.clone()),
                (None, base) => base.map(Path::to_path_buf),
            };
            Arc::new(Process::new(
                command.clone(),
                cwd,
                config.env.clone(),
                upstream.clone(),
                whole.auth.token_sources.clone(),
            ))
        });
        Some(Arc::new(Self {
            upstream,
            websockets: config.websockets,
            client,
            process,
            requests: AtomicU64::new(0),
            errors: Mutex::new(VecDeque::new()),
        }))
    }

    /// Counts a forwarded request.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests forwarded since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Keeps `what` among the latest errors, stamped with the time.
    pub fn record_error(&self, what: &str) {
        let ts = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        // `2026-12-02T15:04:05Z` → `15:04:05`
        let time = ts.get(11..19).unwrap_or(&ts);
        let mut errors = self.errors.lock();
        if errors.len() == ERRORS_KEPT {
            errors.pop_front();
        }
        errors.push_back(crate::events::clip(&format!("{time} {what}")));
    }

    /// Waits until a command that is still starting answers, for at most `within`;
    /// returns at once when there is no command or it is in any other state.
    pub async fn ready(&self, within: Duration) {
        if let Some(p) = &self.process {
            p.wait_ready(within).await;
        }
    }

    /// The snapshot for stats (rates are added by the sampler).
    pub fn status(&self) -> ProxyStatus {
        ProxyStatus {
            upstream: self.upstream.origin(),
            websockets: self.websockets,
            requests: self.requests(),
            requests_per_s: 0.0,
            errors: self.errors.lock().iter().cloned().collect(),
            process: self.process.as_ref().map(|p| p.status()),
        }
    }
}

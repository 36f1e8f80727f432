//! Sockpit: a local realtime (WebSocket) server for web development.
//!
//! The map, from the edge inwards:
//! - [`supervise`]: a server's lifecycle across runs (start, stop, apply a saved config
//!   with fallback, stop on a signal) — what the CLI and the desktop app drive.
//! - [`server`]: one server run (`Server::start` → [`ServerHandle`]), its accept loop and
//!   router, and idempotent shutdown.
//! - [`api`]: the `/_sockpit/` HTTP routes, split into guard (Host, key, CORS), admin,
//!   events, settings and UI.
//! - `dispatch`: every other request — a WebSocket endpoint, a 426, the upstream, or 404.
//! - `relay`: requests passed to the `[proxy]` upstream: HTTP streamed both ways, and
//!   WebSockets relayed frame by frame (refusals turned into readable closes).
//! - [`proxy`]: the upstream itself: its address, client, counters, the 502 page, and
//!   the supervised command (`[proxy] command`).
//! - `handshake`: the upgrade's checks in order and its typed verdict ([`handshake::Refused`]).
//! - `connection`: one WebSocket's task: read, write its queue, ping, close.
//! - `state`: the server's state and its domain operations (publish, connections, kick,
//!   stats, tokens), called by the API and the handle alike.
//! - [`bridge`]: Channels' `group_send` through channels_redis (both layers) delivered
//!   to Sockpit's channels.
//! - [`broker`]: several instances sharing channels through Redis pub/sub, with
//!   cluster-wide counts.
//! - [`webhook`]: messages, connects and disconnects POSTed to the backend, with retries
//!   and a delivery log; [`client`]: the HTTP client both it and the proxy use.
//! - [`hub`]: connections, channels and fan-out (bounded queues, slow clients closed 1008).
//! - [`events`]: the typed event log (ring, live subscribers, rotating JSON-lines file).
//! - [`stats`]: live snapshots with rates, and Prometheus text.
//! - [`auth`]: SimpleJWT-compatible token checks with typed rejections; dev token minting.
//! - [`endpoint`]: which endpoint a path names, its channels, the nearest-path suggestion.
//! - [`pattern`]: path patterns (`/ws/chat/{room}/`) and channel templates (`chat.{room}`).
//! - [`origin`]: the Origin and Host allowlists.
//! - [`close`]: the close codes Sockpit sends and why clients are dropped.
//! - [`config`]: the TOML schema, parsed and validated once.
//! - [`secrets`]: the JWT secret and API key, from config, environment or the data dir.
//! - [`datadir`]: where generated secrets and the log live ([`Paths`]).
//! - [`settings`]: the config file behind Settings: view, validate, save.
//! - [`doctor`]: the checks behind `sockpit doctor` and the Doctor screen.
//! - [`init`]: `sockpit init`: a Django project read (with its own interpreter) into a
//!   proposed config.
//! - [`urls`]: the URLs a server answers at (one builder, IPv6 right).
//! - [`portinfo`]: which process holds a port.
//! - [`wire`]: the request and response types shared with the UI, and their TypeScript.
//!
//! Imports point inwards only: no module imports one that imports it (a test checks).
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod bridge;
pub mod broker;
pub mod client;
pub mod close;
pub mod config;
mod connection;
pub mod datadir;
mod dispatch;
pub mod doctor;
pub mod endpoint;
pub mod events;
pub mod handshake;
pub mod hub;
pub mod init;
pub mod origin;
pub mod outbox;
pub mod pattern;
pub mod portinfo;
pub mod proxy;
mod relay;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod socket;
mod state;
pub mod stats;
pub mod supervise;
pub mod urls;
pub mod webhook;
pub mod wire;

pub use config::Config;
pub use datadir::Paths;
pub use server::{Server, ServerHandle, StartError};
pub use state::KickError;
pub use supervise::{Lifecycle, LifecycleError, Supervisor};
pub use urls::Urls;

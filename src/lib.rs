//! Sockpit: a local realtime (WebSocket) server for web development.
//!
//! The map, from the edge inwards:
//! - [`server`]: the server object (`Server::start` → [`ServerHandle`]), the accept loop,
//!   the WebSocket handshake and its verdicts (close codes 4001/4003/4004/4029).
//! - [`api`]: the `/_sockpit/` HTTP routes (publish, stats, connections, token, events,
//!   metrics, login), guarded by `Host` and the API key.
//! - [`connection`]: one WebSocket's task: read, write its queue, ping, close.
//! - [`hub`]: connections, channels and fan-out (bounded queues, slow clients closed 1008).
//! - [`auth`]: SimpleJWT-compatible token checks with human reasons; dev token minting.
//! - [`endpoint`]: path patterns, channel templates, nearest-path suggestions.
//! - [`origin`]: the Origin and Host allowlists.
//! - [`events`]: the typed event log (ring, live subscribers, rotating JSON-lines file).
//! - [`stats`]: live snapshots with rates, and Prometheus text.
//! - [`config`]: the TOML schema, parsed and validated once.
//! - [`datadir`]: generated secrets and the log file's home.
//! - [`settings`]: the config file behind Settings: view, validate, save.
//! - [`doctor`]: the checks behind `sockpit doctor` and the Doctor screen.
//! - [`portinfo`]: which process holds a port.
//! - [`wire`]: the types shared with the UI and their generated TypeScript.
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod config;
pub mod connection;
pub mod datadir;
pub mod doctor;
pub mod endpoint;
pub mod events;
pub mod hub;
pub mod origin;
pub mod portinfo;
pub mod server;
pub mod settings;
pub mod stats;
pub mod wire;

pub use config::Config;
pub use server::{Paths, Server, ServerHandle, StartError};

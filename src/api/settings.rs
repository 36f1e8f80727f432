//! The config file behind the Settings screen: view it, validate a text, save and apply
//! it. Applying hands the new config to the server's owner (the supervisor), which
//! restarts; an invalid config changes nothing, on disk or in the running server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;

use super::{ApiError, parse_body};
use crate::secrets::Secrets;
use crate::settings::{self, ConfigView, SaveError, Validated};
use crate::state::Shared;
use crate::urls::Urls;
use crate::wire::{ConfigApplied, ConfigText};

pub(super) async fn view(State(shared): State<Arc<Shared>>) -> Json<ConfigView> {
    Json(settings::view(
        shared.paths.config_file.as_deref(),
        shared.local_addr.port(),
    ))
}

pub(super) async fn validate(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Validated>, ApiError> {
    let req: ConfigText = parse_body(body)?;
    settings::validate(&req.toml, shared.paths.config_file.as_deref())
        .map(|(_, ok)| Json(ok))
        .map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Validates, checks the new address is free, saves the file, and hands the config to
/// the server's owner to restart with.
pub(super) async fn apply(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ConfigApplied>, ApiError> {
    let req: ConfigText = parse_body(body)?;
    let file = shared.paths.config_file.as_deref();
    let invalid = |e: &dyn std::fmt::Display| ApiError::Unprocessable(e.to_string());
    let (mut next, _) = settings::validate(&req.toml, file).map_err(|e| invalid(&e))?;
    next.apply_env(|k| std::env::var(k).ok())
        .map_err(|e| invalid(&e))?;
    // The server appends client-controlled text to this file and renames it when it
    // rotates: whoever holds the API key must not be able to point it at ~/.bashrc.
    if next.log.file != shared.config.log.file {
        return Err(ApiError::Unprocessable(
            "log.file cannot be changed through Settings: it is fixed when Sockpit starts (edit the file by hand and restart)".into(),
        ));
    }
    // A command set over HTTP would be run by Sockpit: any page that can reach the API
    // (with `[proxy]`, the app's own pages share this origin) must not choose programs.
    let (was, will) = (&shared.config.proxy, &next.proxy);
    if (&was.command, &was.cwd, &was.env) != (&will.command, &will.cwd, &will.env) {
        return Err(ApiError::Unprocessable(
            "proxy.command, proxy.cwd and proxy.env cannot be changed through Settings: Sockpit runs that command, so it is set only in the file (edit it by hand and restart)".into(),
        ));
    }
    let now = shared.local_addr;
    // Port 0 (any free port) keeps the port in force: the page must know where to go.
    if next.server.port == 0 {
        next.server.port = now.port();
    }
    let port = next.server.port;
    let addr = SocketAddr::new(next.server.bind, port);
    if addr != now {
        // The running server stays if the new address is taken.
        if let Err(e) = std::net::TcpListener::bind(addr) {
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
    let secrets = Secrets::resolve(&next, &shared.paths).map_err(|e| invalid(&e))?;
    settings::save(&req.toml, file).map_err(|e| match e {
        SaveError::Invalid(e) => invalid(&e),
        other => ApiError::Conflict(other.to_string()),
    })?;
    let urls = Urls::new(addr);
    shared.applied.send_replace(Some(Arc::new(next)));
    Ok(Json(ConfigApplied {
        ok: true,
        restarting: true,
        base_url: urls.http(),
        login_url: urls.login(&secrets.api_key),
    }))
}

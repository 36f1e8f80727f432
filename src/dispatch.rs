//! The dispatcher for every request that is not a `/_sockpit/` route: a WebSocket
//! endpoint's handshake, a plain request to an endpoint (426), or the passthrough.
//!
//! The passthrough is where "not ours" goes, as one tower `Service`: today it answers 404
//! naming the nearest endpoint; the upstream proxy of `[proxy]` slots in here, and with
//! its `websockets` flag it also takes upgrades on paths no endpoint names.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::api::ApiError;
use crate::endpoint::NoEndpoint;
use crate::handshake;
use crate::state::Shared;

/// Where requests that name no endpoint go.
#[derive(Clone)]
pub(crate) struct Passthrough {
    /// Answers them. The request carries the [`NoEndpoint`] verdict as an extension.
    service: BoxCloneSyncService<Request, Response, Infallible>,
    /// Whether WebSocket upgrades on unknown paths go here too, instead of a 4004 close
    /// (false until the proxy relays WebSockets).
    websockets: bool,
}

impl Passthrough {
    /// 404 with the nearest endpoint; upgrades on unknown paths get the 4004 close.
    pub(crate) fn not_found() -> Self {
        Self {
            service: BoxCloneSyncService::new(tower::service_fn(|req: Request| async move {
                let reason = req
                    .extensions()
                    .get::<NoEndpoint>()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| format!("no endpoint {}", req.uri().path()));
                Ok(ApiError::NotFound(reason).into_response())
            })),
            websockets: false,
        }
    }
}

/// The fallback service of the router: routes a request that is not Sockpit's own.
pub(crate) fn service(
    shared: Arc<Shared>,
    passthrough: Passthrough,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send {
    tower::service_fn(move |req: Request| {
        let shared = shared.clone();
        let passthrough = passthrough.clone();
        async move { Ok(dispatch(shared, passthrough, req).await) }
    })
}

async fn dispatch(shared: Arc<Shared>, passthrough: Passthrough, mut req: Request) -> Response {
    // Set by the accept loop; a router driven without a socket (tests) has none.
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let upgrade = handshake::is_websocket_upgrade(req.headers());
    let resolved = shared.endpoints.resolve(req.uri().path());
    match resolved {
        Ok(matched) if upgrade => {
            let (parts, _body) = req.into_parts();
            handshake::upgrade(shared, remote, Ok(matched), parts).await
        }
        Ok(_) => {
            let path = req.uri().path();
            // The address the client used, else the server's own.
            let url = match req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
            {
                Some(host) => format!("ws://{host}{path}"),
                None => shared.urls().ws(path),
            };
            ApiError::UpgradeRequired(format!(
                "{path} is a WebSocket endpoint: connect with {url}"
            ))
            .into_response()
        }
        Err(none) if upgrade && !passthrough.websockets => {
            let (parts, _body) = req.into_parts();
            handshake::upgrade(shared, remote, Err(none), parts).await
        }
        Err(none) => {
            req.extensions_mut().insert(none);
            match passthrough.service.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }
    }
}

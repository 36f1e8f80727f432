//! The dispatcher for every request that is not a `/_sockpit/` route: a WebSocket
//! endpoint's handshake, a plain request to an endpoint (426), or what is not ours —
//! the `[proxy]` upstream when there is one (upgrades too, with `websockets = true`),
//! else 404 naming the nearest endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tower::Service;

use crate::api::ApiError;
use crate::handshake;
use crate::relay;
use crate::state::Shared;

/// The fallback service of the router: routes a request that is not Sockpit's own.
pub(crate) fn service(
    shared: Arc<Shared>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send {
    tower::service_fn(move |req: Request| {
        let shared = shared.clone();
        async move { Ok(dispatch(shared, req).await) }
    })
}

async fn dispatch(shared: Arc<Shared>, req: Request) -> Response {
    // Set by the accept loop; a router driven without a socket (tests) has none.
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let upgrade = handshake::is_websocket_upgrade(req.headers());
    let resolved = shared.endpoints.resolve(req.uri().path());
    match (resolved, shared.proxy.clone()) {
        (Ok(matched), _) if upgrade => {
            let (parts, _body) = req.into_parts();
            handshake::upgrade(shared, remote, Ok(matched), parts).await
        }
        (Ok(_), _) => {
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
        (Err(_), Some(proxy)) if upgrade && proxy.websockets => {
            let (parts, _body) = req.into_parts();
            relay::ws::relay(shared, proxy, remote, parts).await
        }
        (Err(none), _) if upgrade => {
            let (parts, _body) = req.into_parts();
            handshake::upgrade(shared, remote, Err(none), parts).await
        }
        (Err(_), Some(proxy)) => relay::http::forward(shared, proxy, remote, req).await,
        (Err(none), None) => ApiError::NotFound(none.to_string()).into_response(),
    }
}

//! The admin routes: publish, stats, connections and kick, token minting, the endpoint
//! list, the doctor run against this server, and Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, parse_body};
use crate::auth::{self, MAX_TTL_S};
use crate::close::CloseCode;
use crate::doctor;
use crate::hub::Target;
use crate::state::{KickError, ResendError, Shared};
use crate::stats::{self, StatsSnapshot};
use crate::wire::{
    ConnectionsResponse, DoctorRequest, EndpointsResponse, KickRequest, Kicked, PublishRequest,
    PublishResponse, TokenRequest, TokenResponse, WebhooksResponse,
};

pub(super) async fn publish(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PublishResponse>, ApiError> {
    let req: PublishRequest = parse_body(body)?;
    let targets: Vec<Target> = [
        req.channel.map(Target::Channel),
        req.group.map(Target::Channel),
        req.user.map(|u| Target::User(u.0)),
        req.connection.map(Target::Connection),
    ]
    .into_iter()
    .flatten()
    .collect();
    let [target] = <[Target; 1]>::try_from(targets).map_err(|_| {
        ApiError::Unprocessable(
            "give exactly one target: \"channel\" (or \"group\"), \"user\" or \"connection\""
                .into(),
        )
    })?;
    let data = req
        .data
        .ok_or_else(|| ApiError::Unprocessable("\"data\" is missing".into()))?;
    Ok(Json(PublishResponse {
        delivered: shared.publish(target, &data),
    }))
}

pub(super) async fn stats(State(shared): State<Arc<Shared>>) -> Json<StatsSnapshot> {
    Json(shared.snapshot_now())
}

pub(super) async fn connections(State(shared): State<Arc<Shared>>) -> Json<ConnectionsResponse> {
    Json(ConnectionsResponse {
        connections: shared.connections(),
    })
}

pub(super) async fn kick(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<KickRequest>,
) -> Result<Json<Kicked>, ApiError> {
    let reason = q.reason.as_deref().unwrap_or("closed from Sockpit");
    shared
        .kick(&id, q.code.unwrap_or(CloseCode::Normal.code()), reason)
        .map(Json)
        .map_err(|e| match e {
            KickError::NoSuchConnection(_) => ApiError::NotFound(e.to_string()),
            KickError::BadCode(_) => ApiError::Unprocessable(e.to_string()),
        })
}

pub(super) async fn webhooks(State(shared): State<Arc<Shared>>) -> Json<WebhooksResponse> {
    Json(WebhooksResponse {
        deliveries: shared.webhooks.deliveries(),
    })
}

pub(super) async fn resend_webhook(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
) -> Result<Json<crate::webhook::Delivery>, ApiError> {
    shared
        .resend_webhook(id)
        .await
        .map(Json)
        .map_err(|e| match e {
            ResendError::NoSuchDelivery(_) => ApiError::NotFound(e.to_string()),
            ResendError::NotKept(_) => ApiError::Conflict(e.to_string()),
        })
}

pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let req: TokenRequest = parse_body(body)?;
    let ttl_s = req.ttl_s.unwrap_or(3600);
    if ttl_s == 0 || ttl_s > MAX_TTL_S {
        return Err(ApiError::Unprocessable(format!(
            "ttl_s must be 1 to {MAX_TTL_S} (ten years)"
        )));
    }
    let claims = req.claims.unwrap_or_default();
    let token = shared
        .mint_token(&req.user_id.0, Duration::from_secs(ttl_s), &claims)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    Ok(Json(TokenResponse {
        token,
        exp: auth::now_secs() + ttl_s,
        user_id: req.user_id.0,
    }))
}

pub(super) async fn endpoints(State(shared): State<Arc<Shared>>) -> Json<EndpointsResponse> {
    Json(EndpointsResponse::from_config(&shared.config))
}

/// Runs the doctor against this very server.
pub(super) async fn doctor(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<doctor::Report>, ApiError> {
    let req: DoctorRequest = match &body {
        Ok(b) if b.is_empty() => DoctorRequest::default(),
        _ => parse_body(body)?,
    };
    let opts = doctor::Options {
        addr: Some(shared.urls().connect_addr()),
        token: req.token.filter(|t| !t.trim().is_empty()),
        origin: req.origin.filter(|o| !o.trim().is_empty()),
    };
    Ok(Json(
        doctor::run(&shared.config, &shared.verifier, &opts).await,
    ))
}

pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = stats::prometheus(&shared.snapshot_now(), &shared.hub);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

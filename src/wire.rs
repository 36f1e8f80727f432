//! Wire types shared with the UI, and the generator of their TypeScript.
//!
//! One set of types: the HTTP handlers deserialise requests into these and serialise
//! responses from them, and `ui/src/lib/wire.ts` is generated from them by
//! [`typescript`]; a test fails when the committed file is stale
//! (`SOCKPIT_UPDATE_WIRE=1 cargo test wire` rewrites it).

use std::fmt;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::close::{CloseCode, DropReason};
use crate::doctor::{Check, Report, Verdict};
use crate::events::{Event, EventKind};
use crate::stats::{ConnectionInfo, StatsSnapshot};

/// A frame of the `/_sockpit/api/events` WebSocket.
///
/// The server writes `Hello` and `Events` by joining each event's JSON, serialised once
/// when it happened; a test checks that this matches serde's encoding of this type.
#[derive(Debug, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventsFrame {
    /// First frame: the ring's contents and the current stats.
    Hello {
        /// Events kept in the ring, oldest first.
        events: Vec<Event>,
        /// Stats at connect time.
        stats: StatsSnapshot,
    },
    /// Events as they happen, in batches.
    Events {
        /// The batch, oldest first.
        events: Vec<Event>,
    },
    /// The stats, every 250 ms.
    Stats {
        /// The snapshot.
        stats: StatsSnapshot,
    },
    /// The reader fell behind and `missed` events were skipped.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// A user id: a string, or a number taken as its decimal text (`3` and `"3"` are the
/// same user, as in DESIGN.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(type = "string | number")]
pub struct UserId(pub String);

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UserId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-empty string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UserId, E> {
                if v.is_empty() {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                } else {
                    Ok(UserId(v.to_string()))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<UserId, E> {
                Ok(UserId(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<UserId, E> {
                Ok(UserId(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<UserId, E> {
                serde_json::Number::from_f64(v)
                    .map(|n| UserId(n.to_string()))
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `POST /_sockpit/api/publish`: exactly one of `channel`, `group`, `user`, `connection`.
#[derive(Debug, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// A channel.
    #[ts(optional)]
    pub channel: Option<String>,
    /// Django Channels' word for a channel.
    #[ts(optional)]
    pub group: Option<String>,
    /// A user id.
    #[ts(optional)]
    pub user: Option<UserId>,
    /// A connection id.
    #[ts(optional)]
    pub connection: Option<String>,
    /// The payload; a string is sent as its text, anything else as JSON. Required:
    /// a publish without it is refused with a 422 that says so.
    #[serde(default)]
    #[ts(type = "unknown")]
    pub data: Option<serde_json::Value>,
}

/// Answer to a publish.
#[derive(Debug, Serialize, Deserialize, TS)]
pub struct PublishResponse {
    /// Recipients whose queue took the message.
    pub delivered: u64,
}

/// `POST /_sockpit/api/token`.
#[derive(Debug, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user id claim.
    pub user_id: UserId,
    /// Lifetime in seconds (default 3600).
    #[ts(optional)]
    pub ttl_s: Option<u64>,
    /// Extra claims.
    #[ts(optional, type = "Record<string, unknown>")]
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Answer to a token request.
#[derive(Debug, Serialize, Deserialize, TS)]
pub struct TokenResponse {
    /// The JWT.
    pub token: String,
    /// The user id, as a string.
    pub user_id: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// `GET /_sockpit/api/connections`.
#[derive(Debug, Serialize, TS)]
pub struct ConnectionsResponse {
    /// Live connections, oldest first.
    pub connections: Vec<ConnectionInfo>,
}

/// `GET /_sockpit/api/webhooks`.
#[derive(Debug, Serialize, TS)]
pub struct WebhooksResponse {
    /// The latest deliveries (up to 200), oldest first.
    pub deliveries: Vec<crate::webhook::Delivery>,
}

/// `DELETE /_sockpit/api/connections/{id}?code=…&reason=…` (the query).
#[derive(Debug, Default, Serialize, Deserialize, TS)]
pub struct KickRequest {
    /// Close code: 1000 (default) or 3000–4999.
    #[ts(optional)]
    pub code: Option<u16>,
    /// Close reason (default `closed from Sockpit`).
    #[ts(optional)]
    pub reason: Option<String>,
}

/// Answer to a kick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Kicked {
    /// The connection's wire id.
    pub closed: String,
    /// The close code sent.
    pub code: u16,
    /// The close reason sent.
    pub reason: String,
}

/// `POST /_sockpit/api/doctor` (an empty body runs the checks without these).
#[derive(Debug, Default, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct DoctorRequest {
    /// A token to decode and explain.
    #[ts(optional)]
    pub token: Option<String>,
    /// An Origin to check.
    #[ts(optional)]
    pub origin: Option<String>,
}

/// One configured endpoint, as the test client needs it.
#[derive(Debug, Serialize, TS)]
pub struct EndpointInfo {
    /// The path pattern, e.g. `/ws/chat/{room}/`.
    pub path: String,
    /// Names of its `{params}`.
    pub params: Vec<String>,
    /// Channel templates it joins.
    pub channels: Vec<String>,
    /// `jwt` or `none`.
    pub auth: String,
    /// `broadcast`, `echo`, `drop` or `webhook`.
    pub on_message: String,
    /// Whether a broadcast reaches its sender.
    pub echo_self: bool,
}

/// `GET /_sockpit/api/endpoints`.
#[derive(Debug, Serialize, TS)]
pub struct EndpointsResponse {
    /// The endpoints, in config order.
    pub endpoints: Vec<EndpointInfo>,
    /// Where tokens are looked for (`query:token`, `header`, `subprotocol`).
    pub token_sources: Vec<String>,
    /// The query parameter a browser should use for the token, if any.
    #[ts(optional)]
    pub token_query: Option<String>,
    /// `allowed_origins` as written.
    pub allowed_origins: Vec<String>,
}

impl EndpointsResponse {
    /// Built from the config in force.
    pub fn from_config(c: &crate::config::Config) -> Self {
        use crate::config::{AuthMode, OnMessage, TokenSource};
        Self {
            endpoints: c
                .endpoints
                .iter()
                .map(|e| EndpointInfo {
                    path: e.path.as_str().to_string(),
                    params: e.path.params().map(str::to_string).collect(),
                    channels: e.channels.iter().map(|t| String::from(t.clone())).collect(),
                    auth: match e.auth {
                        AuthMode::Jwt => "jwt",
                        AuthMode::None => "none",
                    }
                    .into(),
                    on_message: match e.on_message {
                        OnMessage::Broadcast => "broadcast",
                        OnMessage::Echo => "echo",
                        OnMessage::Drop => "drop",
                        OnMessage::Webhook => "webhook",
                    }
                    .into(),
                    echo_self: e.echo_self,
                })
                .collect(),
            token_sources: c
                .auth
                .token_sources
                .iter()
                .cloned()
                .map(String::from)
                .collect(),
            token_query: c.auth.token_sources.iter().find_map(|s| match s {
                TokenSource::Query(q) => Some(q.clone()),
                _ => None,
            }),
            allowed_origins: c
                .server
                .allowed_origins
                .iter()
                .cloned()
                .map(String::from)
                .collect(),
        }
    }
}

/// `PUT /_sockpit/api/config`: the file is saved and the server restarts.
#[derive(Debug, Serialize, Deserialize, TS)]
pub struct ConfigApplied {
    /// Always true.
    pub ok: bool,
    /// Always true: the owner restarts the server with the new config.
    pub restarting: bool,
    /// Where the restarted server answers.
    pub base_url: String,
    /// Its UI login URL (a browser follows it after the restart).
    pub login_url: String,
}

/// `PUT /_sockpit/api/config` and `POST /_sockpit/api/config/validate` body.
#[derive(Debug, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct ConfigText {
    /// The whole TOML file.
    pub toml: String,
}

/// An API error body.
#[derive(Debug, Serialize, Deserialize, TS)]
pub struct ErrorBody {
    /// A short machine word: `unauthorized`, `bad_request`, …
    pub error: String,
    /// What is wrong, for a person.
    pub detail: String,
}

/// The TypeScript module the UI imports.
pub fn typescript() -> String {
    let decls = [
        CloseCode::typescript(),
        DropReason::decl(),
        UserId::decl(),
        EventKind::decl(),
        Event::decl(),
        crate::bridge::BridgeState::decl(),
        crate::broker::BrokerState::decl(),
        crate::broker::BrokerStatus::decl(),
        crate::bridge::BridgeStatus::decl(),
        crate::proxy::ProcessState::decl(),
        crate::proxy::ProcessStatus::decl(),
        crate::proxy::ProxyStatus::decl(),
        StatsSnapshot::decl(),
        ConnectionInfo::decl(),
        EventsFrame::decl(),
        PublishRequest::decl(),
        PublishResponse::decl(),
        TokenRequest::decl(),
        TokenResponse::decl(),
        ConnectionsResponse::decl(),
        crate::webhook::WebhookKind::decl(),
        crate::webhook::Delivery::decl(),
        WebhooksResponse::decl(),
        KickRequest::decl(),
        Kicked::decl(),
        ErrorBody::decl(),
        Verdict::decl(),
        Check::decl(),
        Report::decl(),
        DoctorRequest::decl(),
        EndpointInfo::decl(),
        EndpointsResponse::decl(),
        crate::settings::ConfigView::decl(),
        crate::settings::Validated::decl(),
        ConfigApplied::decl(),
        ConfigText::decl(),
    ];
    ts_module("src/wire.rs", "cargo test wire", decls)
}

/// A generated TypeScript module: a header naming its source and how to regenerate it,
/// then each declaration exported.
pub fn ts_module(
    source: &str,
    regenerate: &str,
    decls: impl IntoIterator<Item = String>,
) -> String {
    let mut out = format!(
        "// Generated from the Rust types in {source} by `SOCKPIT_UPDATE_WIRE=1 {regenerate}`.\n// Do not edit by hand.\n"
    );
    for d in decls {
        out.push_str("\nexport ");
        // ts-rs maps u64 to `bigint`, but JSON.parse yields numbers; every u64 here is a
        // count, size or time far below 2^53.
        out.push_str(&d.replace("bigint", "number"));
        out.push('\n');
    }
    out
}

/// For staleness tests: with `SOCKPIT_UPDATE_WIRE` set, writes `want` to `path`;
/// otherwise returns an error naming the command when the file differs.
pub fn check_generated(path: &std::path::Path, want: &str, regenerate: &str) -> Result<(), String> {
    if std::env::var_os("SOCKPIT_UPDATE_WIRE").is_some() {
        std::fs::write(path, want).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match std::fs::read_to_string(path) {
        Ok(have) if have == want => Ok(()),
        _ => Err(format!(
            "{} is stale: run `SOCKPIT_UPDATE_WIRE=1 {regenerate}`",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ts_is_fresh() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/lib/wire.ts");
        check_generated(&path, &typescript(), "cargo test wire").unwrap();
    }
}

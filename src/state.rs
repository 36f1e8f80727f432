//! The server's state and its domain operations: publish to a target, list and kick
//! connections, stats, tokens. Each operation delivers, counts and records its event
//! wherever it is called from (the HTTP API, the library handle, later the bridge and
//! webhook replies), so no caller needs to know about HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tungstenite::{Message, Utf8Bytes};

use crate::auth::{AuthError, Verifier};
use crate::bridge::Bridge;
use crate::broker::Broker;
use crate::close::{CloseCode, DropReason};
use crate::config::Config;
use crate::datadir::Paths;
use crate::endpoint::Endpoints;
use crate::events::{Event, EventKind, EventLog, preview};
use crate::hub::{Conn, Hub, Target};
use crate::proxy::Proxy;
use crate::stats::{self, ConnectionInfo, StatsSnapshot};
use crate::urls::Urls;
use crate::webhook::{self, WebhookKind, Webhooks};
use crate::wire::Kicked;

/// Why a webhook delivery could not be sent again.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// Not in the log (it keeps the last 200).
    #[error("no webhook delivery {0} (the log keeps the last 200)")]
    NoSuchDelivery(u64),
    /// Its body was too large to keep.
    #[error("webhook delivery {0} was too large to keep for re-sending (over 64 KiB)")]
    NotKept(u64),
}

/// Why a kick did not happen.
#[derive(Debug, thiserror::Error)]
pub enum KickError {
    /// No live connection has that id.
    #[error("no connection {0}")]
    NoSuchConnection(String),
    /// The code cannot be sent in a close frame.
    #[error("close code {0} cannot be sent (use 1000 or 3000-4999)")]
    BadCode(u16),
}

/// State shared by every handler and connection task of one server run.
pub(crate) struct Shared {
    pub config: Config,
    pub endpoints: Endpoints,
    pub verifier: Verifier,
    pub api_key: String,
    /// Signs UI session cookies (see [`crate::secrets::Secrets::session_key`]).
    pub session_key: String,
    pub hub: Arc<Hub>,
    pub events: EventLog,
    /// The `[proxy]` upstream, if one is configured.
    pub proxy: Option<Arc<Proxy>>,
    /// The channels_redis bridge, if one is configured.
    pub bridge: Option<Arc<Bridge>>,
    /// The cross-instance broker, if one is configured.
    pub broker: Option<Arc<Broker>>,
    /// Webhook deliveries and their log.
    pub webhooks: Webhooks,
    /// Latest stats snapshot; written by the sampler task only.
    pub stats: watch::Receiver<Arc<StatsSnapshot>>,
    /// Cancelled once, by shutdown: every task watches it.
    pub stop: CancellationToken,
    /// Every background task (accept loop, HTTP connections, sampler, log writer), so
    /// shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Every WebSocket task (clients, refused handshakes being closed, UI event streams):
    /// shutdown waits for these to send their 1001 before the last event is written.
    pub sockets: TaskTracker,
    /// Set by the first `shutdown()`; later calls only wait.
    pub shutting_down: AtomicBool,
    /// Where secrets, the log and the config file live.
    pub paths: Paths,
    /// A config saved through Settings, for whoever owns this server to restart with
    /// (the [`crate::supervise::Supervisor`]). Written by the settings API only.
    pub applied: watch::Sender<Option<Arc<Config>>>,
    pub started: Instant,
    pub local_addr: SocketAddr,
}

impl Shared {
    /// Where this server answers.
    pub fn urls(&self) -> Urls {
        Urls::new(self.local_addr)
    }

    /// Stats with counts taken now, without rates (what the sampler adds rates to).
    pub fn counts_now(&self) -> StatsSnapshot {
        stats::snapshot(
            &self.hub,
            &self.endpoints,
            self.started,
            &self.events,
            self.proxy.as_deref(),
            self.bridge.as_deref(),
            self.broker.as_deref(),
        )
    }

    /// Stats with counts taken now and rates from the last sample.
    pub fn snapshot_now(&self) -> StatsSnapshot {
        let mut s = self.counts_now();
        let latest = self.stats.borrow();
        s.messages_in_per_s = latest.messages_in_per_s;
        s.messages_out_per_s = latest.messages_out_per_s;
        if let (Some(p), Some(l)) = (&mut s.proxy, &latest.proxy) {
            p.requests_per_s = l.requests_per_s;
        }
        s
    }

    /// Publishes `data` (a string is sent as its text, anything else as JSON) to
    /// `target`: encoded once, counted, and recorded as one `published` event carrying
    /// the number of recipients.
    pub fn publish(&self, target: Target, data: &Value) -> u64 {
        self.publish_via(target, data, None)
    }

    /// [`Shared::publish`], saying where the publish came from (`via`, in the event's
    /// reason) when it is not this instance's API: the channels_redis bridge, or another
    /// instance through the broker. Only this instance's own publishes are forwarded to
    /// the others (each bridge hears `group_send` itself), and never to a connection id
    /// (ids are per instance).
    pub fn publish_via(&self, target: Target, data: &Value, via: Option<&str>) -> u64 {
        let text: Utf8Bytes = match data {
            Value::String(s) => s.clone().into(),
            other => other.to_string().into(),
        };
        let len = text.len();
        let mut e = Event::new(EventKind::Published);
        e.preview = Some(preview(Some(text.as_str()), len));
        e.bytes = Some(len as u64);
        // Name a connection by its wire id whichever form the caller used (`12` or `c12`).
        let target = match target {
            Target::Connection(id) => {
                Target::Connection(self.hub.get(&id).map(|c| c.wire_id()).unwrap_or(id))
            }
            other => other,
        };
        if let (Some(broker), None, Target::Channel(_) | Target::User(_)) =
            (&self.broker, via, &target)
        {
            broker.forward(&target, text.as_str());
        }
        let delivered = self.hub.deliver(&target, Message::Text(text), None);
        self.hub.stats.published.fetch_add(1, Ordering::Relaxed);
        match target {
            Target::Channel(c) => e.channel = Some(c),
            Target::User(u) => e.user = Some(u.into()),
            Target::Connection(c) => e.conn = Some(c.into()),
        }
        e.delivered = Some(delivered);
        e.reason = via.map(str::to_string);
        self.events.emit(e);
        delivered
    }

    /// Every live connection, oldest first.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.hub
            .connections()
            .iter()
            .map(|c| ConnectionInfo::from(c.as_ref()))
            .collect()
    }

    /// Closes one connection with `code` (1000 or 3000–4999) and `reason`.
    pub fn kick(&self, id: &str, code: u16, reason: &str) -> Result<Kicked, KickError> {
        if !(code == CloseCode::Normal.code() || (3000..=4999).contains(&code)) {
            return Err(KickError::BadCode(code));
        }
        let conn = self
            .hub
            .get(id)
            .ok_or_else(|| KickError::NoSuchConnection(id.to_string()))?;
        self.hub.stats.drop_client(DropReason::Kicked);
        conn.close(code, reason);
        Ok(Kicked {
            closed: conn.wire_id(),
            code,
            reason: reason.to_string(),
        })
    }

    /// A message webhook's outcome for `conn`: its reply (a non-empty 2xx body) to the
    /// sender as one frame (text if it is UTF-8) and a `message_out` event, or a
    /// `webhook_failed` event.
    pub fn webhook_reply(&self, conn: &Arc<Conn>, outcome: &webhook::Outcome) {
        if !outcome.delivery.ok {
            self.events.emit(webhook::failed_event(&outcome.delivery));
            return;
        }
        let Some(reply) = outcome.reply.clone().filter(|r| !r.is_empty()) else {
            return;
        };
        let len = reply.len();
        let (msg, text) = match Utf8Bytes::try_from(reply.clone()) {
            Ok(t) => {
                let p = preview(Some(t.as_str()), len);
                (Message::Text(t), p)
            }
            Err(_) => (Message::Binary(reply), preview(None, len)),
        };
        let delivered = self.hub.send_to(conn, msg);
        let mut out = conn.event(EventKind::MessageOut);
        out.bytes = Some(len as u64);
        out.preview = Some(text);
        out.delivered = Some(u64::from(delivered));
        out.reason = Some("webhook reply".into());
        self.events.emit(out);
    }

    /// Sends logged delivery `id` again; a message webhook's reply goes to its connection
    /// if that is still open.
    pub async fn resend_webhook(&self, id: u64) -> Result<webhook::Delivery, ResendError> {
        let (kind, conn, url, body) = self
            .webhooks
            .kept(id)
            .ok_or(ResendError::NoSuchDelivery(id))?;
        let body = body.ok_or(ResendError::NotKept(id))?;
        let outcome = self.webhooks.post(kind, &url, &conn, body).await;
        match (kind, self.hub.get(&conn)) {
            (WebhookKind::Message, Some(c)) => self.webhook_reply(&c, &outcome),
            _ if !outcome.delivery.ok => self.events.emit(webhook::failed_event(&outcome.delivery)),
            _ => {}
        }
        Ok(outcome.delivery)
    }

    /// Mints a dev token valid for this server's auth config.
    pub fn mint_token(
        &self,
        user_id: &str,
        ttl: Duration,
        claims: &serde_json::Map<String, Value>,
    ) -> Result<String, AuthError> {
        self.verifier.mint(user_id, ttl, claims)
    }
}

//! The channels_redis bridge (`[bridge] channels_redis`): Django's unchanged
//! `group_send("dashboard", {"type": …, "data": …})` reaches Sockpit's channel of the
//! same name, for both layers channels_redis ships.
//!
//! - `RedisPubSubChannelLayer` publishes each group message on the Redis channel
//!   `{prefix}__group__{group}`: the bridge pattern-subscribes to all of them.
//! - `RedisChannelLayer` (the default) keeps each group as a sorted set
//!   `{prefix}:group:{group}` of channel names and pushes a copy of the message into each
//!   member channel's sorted set. The bridge joins every group Sockpit has members for
//!   with one process-local channel per group (`sockpit.<id>!<group>`, so all land in one
//!   inbox `{prefix}sockpit.<id>!` and the message's `__asgi_channel__` names the group),
//!   refreshes its membership every minute, and leaves when the group empties here.
//!
//! Messages are msgpack (channels_redis's serializer; the default layer puts 12 random
//! bytes in front). Lost connections are retried with backoff; the state is in stats
//! and `bridge_state` events.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::config::{BridgeConfig, BridgeMessage, RedisUrl};
use crate::events::{Event, EventKind};
use crate::hub::Hub;

/// Bytes channels_redis's default layer puts before each message (`random_prefix_length`).
const CORE_RANDOM_PREFIX: usize = 12;
/// How often group memberships are renewed (channels_redis drops members older than
/// `group_expiry`, one day by default).
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// How long a group membership key lives without a refresh.
const GROUP_EXPIRY_S: u64 = 86_400;
/// Seconds each blocking read of the inbox waits.
const INBOX_POLL_S: u64 = 1;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Nesting a message may have: deeper is refused, not recursed into.
const MAX_DEPTH: usize = 64;

/// Whether the bridge is listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum BridgeState {
    /// First connection attempt.
    Connecting,
    /// Subscribed and in its groups.
    Connected,
    /// The connection failed or dropped; retrying with backoff.
    Reconnecting,
}

/// The bridge in a stats snapshot.
#[derive(Debug, Clone, Serialize, TS)]
pub struct BridgeStatus {
    /// The Redis URL, password hidden.
    pub url: String,
    /// channels_redis's prefix.
    pub prefix: String,
    /// Listening or not.
    pub state: BridgeState,
    /// One line for people.
    pub detail: String,
    /// `group_send` messages delivered to a channel with members here, since start
    /// (the pub/sub layer carries every group's messages; the others are not counted).
    pub received: u64,
    /// Groups joined on the default layer (the channels with members here).
    pub groups: u64,
}

/// Why a bridge session ended.
#[derive(Debug, thiserror::Error)]
enum BridgeError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("connecting timed out")]
    Timeout,
    #[error("the connection closed")]
    Closed,
}

/// The bridge of one server run.
#[derive(Debug)]
pub struct Bridge {
    url: RedisUrl,
    prefix: String,
    message: BridgeMessage,
    max_bytes: usize,
    /// `sockpit.<random>`: this run's channel names start with it.
    channel_base: String,
    status: watch::Sender<BridgeStatus>,
    received: AtomicU64,
    /// Groups this run's channels are in on the default layer (left on the way out).
    joined: parking_lot::Mutex<HashSet<String>>,
}

impl Bridge {
    /// The bridge of `config`, or `None` when `channels_redis` is not set.
    pub fn new(config: &BridgeConfig, max_bytes: usize) -> Option<Arc<Self>> {
        let url = config.channels_redis.clone()?;
        let status = BridgeStatus {
            url: url.redacted(),
            prefix: config.prefix.clone(),
            state: BridgeState::Connecting,
            detail: "connecting".into(),
            received: 0,
            groups: 0,
        };
        Some(Arc::new(Self {
            url,
            prefix: config.prefix.clone(),
            message: config.message,
            max_bytes,
            channel_base: format!("sockpit.{:016x}", rand::random::<u64>()),
            status: watch::channel(status).0,
            received: AtomicU64::new(0),
            joined: parking_lot::Mutex::new(HashSet::new()),
        }))
    }

    /// The state now.
    pub fn status(&self) -> BridgeStatus {
        let mut s = self.status.borrow().clone();
        s.received = self.received.load(Ordering::Relaxed);
        s
    }

    /// Listens until `stop`, reconnecting with backoff. `deliver(group, data)` publishes
    /// to Sockpit's channel and says whether it has members here; `emit` records events.
    pub async fn run(
        self: Arc<Self>,
        hub: Arc<Hub>,
        deliver: impl Fn(&str, &Value) -> bool + Send + Sync,
        emit: impl Fn(Event) + Send + Sync,
        stop: CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let mut connected = false;
            let session = self.session(&hub, &deliver, &emit, &mut connected);
            let ended = tokio::select! {
                r = session => r,
                _ = stop.cancelled() => {
                    self.leave_all().await;
                    return;
                }
            };
            if connected {
                backoff = BACKOFF_MIN;
            }
            let why = match ended {
                Ok(()) => BridgeError::Closed,
                Err(e) => e,
            };
            let detail = format!("{why}; retrying in {:.1}s", backoff.as_secs_f64());
            self.status.send_modify(|s| {
                s.state = BridgeState::Reconnecting;
                s.detail = detail.clone();
                s.groups = 0;
            });
            emit(state_event(detail));
            tokio::select! {
                _ = sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's life: subscribe, join groups, read both layers until an error.
    async fn session(
        &self,
        hub: &Hub,
        deliver: &(impl Fn(&str, &Value) -> bool + Send + Sync),
        emit: &(impl Fn(Event) + Send + Sync),
        connected: &mut bool,
    ) -> Result<(), BridgeError> {
        let client = redis::Client::open(self.url.as_str())?;
        let connect = Duration::from_secs(3);
        let config = AsyncConnectionConfig::new().set_connection_timeout(Some(connect));
        let mut pubsub = timeout(connect, client.get_async_pubsub())
            .await
            .map_err(|_| BridgeError::Timeout)??;
        pubsub
            .psubscribe(format!("{}__group__*", self.prefix))
            .await?;
        let mut commands = client
            .get_multiplexed_async_connection_with_config(
                &config
                    .clone()
                    .set_response_timeout(Some(Duration::from_secs(5))),
            )
            .await?;
        // A blocking read holds its connection: it gets one of its own, with no
        // response timeout shorter than the read's.
        let mut inbox = client
            .get_multiplexed_async_connection_with_config(
                &config.set_response_timeout(Some(Duration::from_secs(INBOX_POLL_S + 3))),
            )
            .await?;

        // A new connection (Redis restarted, or forgot): join everything again.
        self.joined.lock().clear();
        self.sync_groups(hub, &mut commands).await?;
        *connected = true;
        let detail = format!(
            "listening for group_send on {} (prefix {:?}, both channels_redis layers)",
            self.url.redacted(),
            self.prefix
        );
        self.status.send_modify(|s| {
            s.state = BridgeState::Connected;
            s.detail = detail.clone();
        });
        emit(state_event(detail));

        let group_prefix = format!("{}__group__", self.prefix);
        let pubsub_loop = async {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                if let Some(group) = msg.get_channel_name().strip_prefix(&group_prefix) {
                    self.handle(&[group.to_string()], msg.get_payload_bytes(), deliver, emit);
                }
            }
            Err::<(), _>(BridgeError::Closed)
        };
        let inbox_key = format!("{}{}!", self.prefix, self.channel_base);
        let inbox_loop = async {
            loop {
                let popped: Option<(Vec<u8>, Vec<u8>, String)> = match redis::cmd("BZPOPMIN")
                    .arg(&inbox_key)
                    .arg(INBOX_POLL_S)
                    .query_async(&mut inbox)
                    .await
                {
                    Ok(p) => p,
                    Err(e) => return Err::<(), BridgeError>(e.into()),
                };
                let Some((_, member, _)) = popped else {
                    continue;
                };
                self.handle_core(&member, deliver, emit);
                // A burst (a loop of group_send) is taken in one go: the inbox holds
                // channels_redis's `capacity` (100) at most, then drops silently.
                loop {
                    let more: Vec<Vec<u8>> = match redis::cmd("ZPOPMIN")
                        .arg(&inbox_key)
                        .arg(100)
                        .query_async(&mut inbox)
                        .await
                    {
                        Ok(m) => m,
                        Err(e) => return Err::<(), BridgeError>(e.into()),
                    };
                    if more.is_empty() {
                        break;
                    }
                    // Member, score, member, score…
                    for member in more.iter().step_by(2) {
                        self.handle_core(member, deliver, emit);
                    }
                }
            }
        };
        let mut channel_set = hub.watch_channel_set();
        let membership_loop = async {
            let mut refresh = tokio::time::interval(REFRESH_EVERY);
            refresh.reset();
            loop {
                tokio::select! {
                    changed = channel_set.changed() => {
                        if changed.is_err() {
                            return Err::<(), BridgeError>(BridgeError::Closed);
                        }
                        self.sync_groups(hub, &mut commands).await?;
                    }
                    _ = refresh.tick() => {
                        let all: Vec<String> = self.joined.lock().iter().cloned().collect();
                        self.join(&mut commands, &all).await?;
                        // A connection that died quietly shows here, not at the next message.
                        redis::cmd("PING").query_async::<String>(&mut commands).await?;
                    }
                }
            }
        };
        tokio::try_join!(pubsub_loop, inbox_loop, membership_loop).map(|_| ())
    }

    /// This run's channel for `group`.
    fn channel_for(&self, group: &str) -> String {
        format!("{}!{group}", self.channel_base)
    }

    /// Joins the groups that gained members here and leaves those that lost them.
    async fn sync_groups(
        &self,
        hub: &Hub,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), BridgeError> {
        let want: HashSet<String> = hub
            .channel_names()
            .into_iter()
            .filter(|g| valid_group(g))
            .collect();
        let (new, gone): (Vec<String>, Vec<String>) = {
            let joined = self.joined.lock();
            (
                want.difference(&joined).cloned().collect(),
                joined.difference(&want).cloned().collect(),
            )
        };
        self.join(conn, &new).await?;
        if !gone.is_empty() {
            let mut pipe = redis::pipe();
            for g in &gone {
                pipe.cmd("ZREM")
                    .arg(self.group_key(g))
                    .arg(self.channel_for(g))
                    .ignore();
            }
            pipe.query_async::<()>(conn).await?;
        }
        let n = want.len() as u64;
        *self.joined.lock() = want;
        self.status.send_modify(|s| s.groups = n);
        Ok(())
    }

    /// Adds (or renews) this run's channel in each group's sorted set.
    async fn join(
        &self,
        conn: &mut MultiplexedConnection,
        groups: &[String],
    ) -> Result<(), BridgeError> {
        if groups.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut pipe = redis::pipe();
        for g in groups {
            let key = self.group_key(g);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(now)
                .arg(self.channel_for(g))
                .ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(GROUP_EXPIRY_S).ignore();
        }
        let _: () = pipe.query_async(conn).await?;
        Ok(())
    }

    /// Leaves every group on the way out, so `group_send` stops queueing for a channel
    /// nobody reads (best effort, one pipeline: Redis may be why we are stopping).
    async fn leave_all(&self) {
        let groups: Vec<String> = self.joined.lock().drain().collect();
        if groups.is_empty() {
            return;
        }
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let _ = timeout(Duration::from_secs(1), async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            let mut pipe = redis::pipe();
            for g in &groups {
                pipe.cmd("ZREM")
                    .arg(self.group_key(g))
                    .arg(self.channel_for(g))
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        })
        .await;
    }

    fn group_key(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// A message from the default layer's inbox: the groups are in `__asgi_channel__`.
    fn handle_core(
        &self,
        raw: &[u8],
        deliver: &(impl Fn(&str, &Value) -> bool + Send + Sync),
        emit: &(impl Fn(Event) + Send + Sync),
    ) {
        if !self.small_enough(raw.len(), "", emit) {
            return;
        }
        let Some(body) = raw.get(CORE_RANDOM_PREFIX..) else {
            emit(error_event(
                "a message shorter than channels_redis's prefix".into(),
            ));
            return;
        };
        let value = match decode(body) {
            Ok(v) => v,
            Err(why) => {
                emit(error_event(format!(
                    "a {} byte message that is not msgpack: {why}; dropped",
                    raw.len()
                )));
                return;
            }
        };
        let base = format!("{}!", self.channel_base);
        let groups: Vec<String> = value
            .get("__asgi_channel__")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str()?.strip_prefix(&base).map(str::to_string))
            .collect();
        self.deliver(&groups, value, deliver);
    }

    /// Whether a message may be decoded: one over `max_message_bytes` could never be
    /// sent to a browser, and decoding multiplies its size.
    fn small_enough(
        &self,
        size: usize,
        group: &str,
        emit: &(impl Fn(Event) + Send + Sync),
    ) -> bool {
        if size <= self.max_bytes {
            return true;
        }
        let group = if group.is_empty() {
            String::new()
        } else {
            format!(" for group {group}")
        };
        emit(error_event(format!(
            "a {size} byte message{group} is over max_message_bytes: dropped"
        )));
        false
    }

    /// A pub/sub message for `groups`.
    fn handle(
        &self,
        groups: &[String],
        raw: &[u8],
        deliver: &(impl Fn(&str, &Value) -> bool + Send + Sync),
        emit: &(impl Fn(Event) + Send + Sync),
    ) {
        if !self.small_enough(raw.len(), &groups.join(", "), emit) {
            return;
        }
        match decode(raw) {
            Ok(value) => self.deliver(groups, value, deliver),
            Err(why) => emit(error_event(format!(
                "a {} byte message for group {} that is not msgpack: {why}; dropped",
                raw.len(),
                groups.join(", ")
            ))),
        }
    }

    fn deliver(
        &self,
        groups: &[String],
        mut event: Value,
        deliver: &(impl Fn(&str, &Value) -> bool + Send + Sync),
    ) {
        if let Some(map) = event.as_object_mut() {
            map.remove("__asgi_channel__");
            map.remove("__asgi_group__");
        }
        let data = match (self.message, event.get("data")) {
            (BridgeMessage::Data, Some(data)) => data.clone(),
            _ => event,
        };
        let mut done: HashSet<&str> = HashSet::new();
        for g in groups {
            // Only channels named like channels' groups, each once.
            if valid_group(g) && done.insert(g.as_str()) && deliver(g, &data) {
                self.received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// channels' rule for group names (`require_valid_group_name`).
fn valid_group(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn state_event(reason: String) -> Event {
    let mut e = Event::new(EventKind::BridgeState);
    e.reason = Some(reason);
    e
}

fn error_event(reason: String) -> Event {
    let mut e = Event::new(EventKind::ServerError);
    e.reason = Some(format!("channels_redis bridge: {reason}"));
    e
}

/// msgpack → JSON. Binary becomes an array of bytes' numbers, non-string map keys
/// their JSON text; NaN and extension types become null.
fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut rd = bytes;
    let v =
        rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH).map_err(|e| e.to_string())?;
    if !rd.is_empty() {
        return Err(format!("{} bytes after the message", rd.len()));
    }
    match to_json(v) {
        // Channels messages are dicts with a `type`.
        event @ Value::Object(_) if event.get("type").is_some_and(Value::is_string) => Ok(event),
        _ => Err("not a Channels event (a map with a \"type\")".into()),
    }
}

fn to_json(v: rmpv::Value) -> Value {
    use rmpv::Value as M;
    match v {
        M::Nil | M::Ext(..) => Value::Null,
        M::Boolean(b) => Value::Bool(b),
        M::Integer(i) => i
            .as_i64()
            .map(Value::from)
            .or_else(|| i.as_u64().map(Value::from))
            .unwrap_or(Value::Null),
        M::F32(f) => serde_json::Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number),
        M::F64(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        M::String(s) => Value::String(s.into_str().unwrap_or_default()),
        M::Binary(b) => Value::Array(b.into_iter().map(Value::from).collect()),
        M::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        M::Map(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        M::String(s) => s.into_str().unwrap_or_default(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_becomes_json() {
        let mut buf = Vec::new();
        let v = rmpv::Value::Map(vec![
            ("type".into(), "dashboard.update".into()),
            (
                "data".into(),
                rmpv::Value::Map(vec![
                    ("count".into(), 3.into()),
                    ("ok".into(), true.into()),
                    ("ratio".into(), rmpv::Value::F64(0.5)),
                    ("raw".into(), rmpv::Value::Binary(vec![1, 2])),
                ]),
            ),
        ]);
        rmpv::encode::write_value(&mut buf, &v).unwrap();
        let json = decode(&buf).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "dashboard.update", "data": {"count": 3, "ok": true, "ratio": 0.5, "raw": [1, 2]}})
        );
    }

    #[test]
    fn hostile_messages_are_refused_not_recursed() {
        // 100,000 nested one-element arrays.
        let deep = [vec![0x91u8; 100_000], vec![0xc0]].concat();
        assert!(decode(&deep).is_err());
        // An array header claiming 4 billion elements, and nothing after it.
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[]).is_err());
        // Valid msgpack that is not an event, or is followed by more bytes.
        assert!(decode(&[0xc0]).is_err());
        assert!(decode(&[0x81, 0xa4, b't', b'y', b'p', b'e', 0xa1, b'x', 0xc0]).is_err());
        assert!(decode(&[0x81, 0xa4, b't', b'y', b'p', b'e', 0xa1, b'x']).is_ok());
    }

    #[test]
    fn group_names_follow_channels_rules() {
        assert!(valid_group("dashboard"));
        assert!(valid_group("user.42"));
        assert!(valid_group("chat_room-1"));
        assert!(!valid_group("chat room"));
        assert!(!valid_group("ünï"));
        assert!(!valid_group(&"a".repeat(100)));
    }
}

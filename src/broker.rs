//! The cross-instance broker (`[broker] redis`): several Sockpit instances behind one
//! name share channels through Redis pub/sub.
//!
//! Every publish an instance makes (API, library, a client's broadcast) is delivered to
//! its own clients at once, then handed to this broker, which PUBLISHes it on
//! `sockpit:broker` tagged with the instance's id; every other instance delivers it to its
//! clients, and ignores its own — so each subscriber gets it exactly once. Publishing
//! never waits on Redis: the hand-off is a bounded queue, and with Redis away local
//! delivery goes on (what could not be forwarded is counted, and the state says so).
//! Each instance also writes its counts to `sockpit:presence:<id>` (expiring) and reads
//! everyone's, for cluster-wide counts in stats.
//!
//! channels_redis bridge deliveries are not forwarded: every instance's bridge receives
//! the same `group_send` itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::config::RedisUrl;
use crate::events::{Event, EventKind};
use crate::hub::{Counts, Target};

/// The Redis pub/sub channel publishes travel on.
const CHANNEL: &str = "sockpit:broker";
/// The hash where each instance keeps its counts (field: its id).
const PRESENCE: &str = "sockpit:presence";
/// How often counts are written and read.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);
/// Counts older than this are an instance that is gone.
const PRESENCE_STALE_S: u64 = 5;
/// Largest message read from the broker channel or the presence hash: bigger is not
/// from a Sockpit.
const MAX_WIRE: usize = 2 << 20;
/// Cluster channels listed in stats at most (the busiest), as for one instance.
const CHANNELS_LISTED: usize = 200;
/// Publishes waiting to be forwarded at most.
const QUEUE: usize = 4096;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Whether the broker reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// First connection attempt.
    Connecting,
    /// Subscribed; publishes travel between instances.
    Connected,
    /// Redis is away: local clients are served, nothing crosses; retrying.
    Reconnecting,
}

/// The broker in a stats snapshot.
#[derive(Debug, Clone, Serialize, TS)]
pub struct BrokerStatus {
    /// The Redis URL, password hidden.
    pub url: String,
    /// This instance's id.
    pub instance: String,
    /// Connected or not.
    pub state: BrokerState,
    /// One line for people.
    pub detail: String,
    /// Publishes sent to the other instances.
    pub forwarded: u64,
    /// Publishes received from the other instances.
    pub received: u64,
    /// Publishes that could not be forwarded (Redis away, or the queue full).
    pub lost: u64,
    /// Instances seen in the last few seconds, this one included.
    pub instances: u64,
    /// Open connections on all of them.
    pub connections: u64,
    /// Members by channel on all of them (the busiest 200).
    pub channels: BTreeMap<String, u64>,
}

/// One publish on the wire between instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// The sending instance.
    pub from: String,
    /// `channel`, `user` or `connection`.
    pub kind: String,
    /// The channel, user or connection id.
    pub name: String,
    /// The message text.
    pub text: String,
}

impl Forwarded {
    /// Where it goes.
    pub fn target(&self) -> Option<Target> {
        match self.kind.as_str() {
            "channel" => Some(Target::Channel(self.name.clone())),
            "user" => Some(Target::User(self.name.clone())),
            // Connection ids are per instance: never taken from the wire.
            _ => None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Presence {
    /// Seconds since the epoch when written.
    at: u64,
    connections: u64,
    /// The busiest channels.
    channels: BTreeMap<String, u64>,
}

/// The broker of one server run.
#[derive(Debug)]
pub struct Broker {
    url: RedisUrl,
    instance: String,
    tx: mpsc::Sender<Forwarded>,
    rx: parking_lot::Mutex<Option<mpsc::Receiver<Forwarded>>>,
    status: watch::Sender<BrokerStatus>,
    forwarded: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
}

impl Broker {
    /// The broker for `url`, or `None` without one.
    pub fn new(url: Option<&RedisUrl>) -> Option<Arc<Self>> {
        let url = url?.clone();
        let instance = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = mpsc::channel(QUEUE);
        let status = BrokerStatus {
            url: url.redacted(),
            instance: instance.clone(),
            state: BrokerState::Connecting,
            detail: "connecting".into(),
            forwarded: 0,
            received: 0,
            lost: 0,
            instances: 1,
            connections: 0,
            channels: BTreeMap::new(),
        };
        Some(Arc::new(Self {
            url,
            instance,
            tx,
            rx: parking_lot::Mutex::new(Some(rx)),
            status: watch::channel(status).0,
            forwarded: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }))
    }

    /// The state now.
    pub fn status(&self) -> BrokerStatus {
        let mut s = self.status.borrow().clone();
        s.forwarded = self.forwarded.load(Ordering::Relaxed);
        s.received = self.received.load(Ordering::Relaxed);
        s.lost = self.lost.load(Ordering::Relaxed);
        s
    }

    /// Hands a publish to the other instances; never waits.
    pub fn forward(&self, target: &Target, text: &str) {
        let (kind, name) = match target {
            Target::Channel(c) => ("channel", c),
            Target::User(u) => ("user", u),
            Target::Connection(c) => ("connection", c),
        };
        let f = Forwarded {
            from: self.instance.clone(),
            kind: kind.into(),
            name: name.clone(),
            text: text.to_string(),
        };
        if self.tx.try_send(f).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs until `stop`, reconnecting with backoff. `deliver` delivers a publish from
    /// another instance locally; `counts` reads this instance's counts; `emit` records.
    pub async fn run(
        self: Arc<Self>,
        deliver: impl Fn(Forwarded) + Send + Sync,
        counts: impl Fn() -> Counts + Send + Sync,
        emit: impl Fn(Event) + Send + Sync,
        stop: CancellationToken,
    ) {
        let Some(mut outbox) = self.rx.lock().take() else {
            return;
        };
        let mut backoff = BACKOFF_MIN;
        loop {
            let mut connected = false;
            let ended = tokio::select! {
                r = self.session(&mut outbox, &deliver, &counts, &emit, &mut connected) => r,
                _ = stop.cancelled() => return,
            };
            if connected {
                backoff = BACKOFF_MIN;
            }
            let why = match ended {
                Ok(()) => "the connection closed".to_string(),
                Err(e) => e.to_string(),
            };
            let detail = format!(
                "{why}; serving local clients only, retrying in {:.1}s",
                backoff.as_secs_f64()
            );
            let here = counts();
            self.status.send_modify(|s| {
                s.state = BrokerState::Reconnecting;
                s.detail = detail.clone();
                s.instances = 1;
                s.connections = here.total;
                s.channels = top(here.per_channel);
            });
            let mut e = Event::new(EventKind::BrokerState);
            e.reason = Some(detail);
            emit(e);
            // What waits to be forwarded while Redis is away is lost, not held.
            let lost_until = tokio::time::Instant::now() + backoff;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(lost_until) => break,
                    f = outbox.recv() => match f {
                        Some(_) => { self.lost.fetch_add(1, Ordering::Relaxed); }
                        None => return,
                    },
                    _ = stop.cancelled() => return,
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn session(
        &self,
        outbox: &mut mpsc::Receiver<Forwarded>,
        deliver: &(impl Fn(Forwarded) + Send + Sync),
        counts: &(impl Fn() -> Counts + Send + Sync),
        emit: &(impl Fn(Event) + Send + Sync),
        connected: &mut bool,
    ) -> Result<(), redis::RedisError> {
        let client = redis::Client::open(self.url.as_str())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)));
        let mut pubsub = match timeout(Duration::from_secs(3), client.get_async_pubsub()).await {
            Ok(p) => p?,
            Err(_) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connecting timed out",
                )));
            }
        };
        pubsub.subscribe(CHANNEL).await?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *connected = true;
        let detail = format!(
            "sharing channels through {} as instance {}",
            self.url.redacted(),
            self.instance
        );
        self.status.send_modify(|s| {
            s.state = BrokerState::Connected;
            s.detail = detail.clone();
        });
        let mut e = Event::new(EventKind::BrokerState);
        e.reason = Some(detail);
        emit(e);

        let mut incoming = pubsub.on_message();
        let mut presence = tokio::time::interval(PRESENCE_EVERY);
        loop {
            tokio::select! {
                msg = incoming.next() => {
                    let Some(msg) = msg else { return Ok(()) };
                    let payload = msg.get_payload_bytes();
                    if payload.len() > MAX_WIRE {
                        continue;
                    }
                    let Ok(f) = serde_json::from_slice::<Forwarded>(payload) else {
                        continue;
                    };
                    if f.from != self.instance {
                        self.received.fetch_add(1, Ordering::Relaxed);
                        deliver(f);
                    }
                }
                out = outbox.recv() => {
                    let Some(f) = out else { return Ok(()) };
                    let payload = serde_json::to_vec(&f).unwrap_or_default();
                    let _: i64 = redis::cmd("PUBLISH").arg(CHANNEL).arg(payload).query_async(&mut conn).await?;
                    self.forwarded.fetch_add(1, Ordering::Relaxed);
                }
                _ = presence.tick() => self.presence(&mut conn, counts()).await?,
            }
        }
    }

    /// Writes this instance's counts and reads everyone's (one hash: two round trips,
    /// however many instances).
    async fn presence(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        mine: Counts,
    ) -> Result<(), redis::RedisError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let me = Presence {
            at: now,
            connections: mine.total,
            channels: top(mine.per_channel),
        };
        let all: Vec<(String, Vec<u8>)> = redis::pipe()
            .cmd("HSET")
            .arg(PRESENCE)
            .arg(&self.instance)
            .arg(serde_json::to_string(&me).unwrap_or_default())
            .ignore()
            .cmd("HGETALL")
            .arg(PRESENCE)
            .query_async::<(Vec<(String, Vec<u8>)>,)>(conn)
            .await?
            .0;
        let mut instances = 0;
        let mut connections = 0;
        let mut channels: BTreeMap<String, u64> = BTreeMap::new();
        let mut gone = Vec::new();
        for (id, text) in all.iter().take(1000) {
            let fresh = (text.len() <= MAX_WIRE)
                .then(|| serde_json::from_slice::<Presence>(text).ok())
                .flatten()
                .filter(|p| p.at + PRESENCE_STALE_S >= now);
            let Some(p) = fresh else {
                gone.push(id.clone());
                continue;
            };
            instances += 1;
            connections += p.connections;
            for (c, n) in p.channels {
                *channels.entry(c).or_default() += n;
            }
        }
        if !gone.is_empty() {
            let _: () = redis::cmd("HDEL")
                .arg(PRESENCE)
                .arg(gone)
                .query_async(conn)
                .await?;
        }
        self.status.send_modify(|s| {
            s.instances = instances;
            s.connections = connections;
            s.channels = top(channels);
        });
        Ok(())
    }
}

/// The busiest [`CHANNELS_LISTED`] channels.
fn top(channels: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    if channels.len() <= CHANNELS_LISTED {
        return channels;
    }
    let mut v: Vec<_> = channels.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(CHANNELS_LISTED);
    v.into_iter().collect()
}

//! The hub: live connections, channel membership and fan-out.
//!
//! A publish encodes its payload once (an `Utf8Bytes`, reference-counted) and hands each
//! member's bounded queue a clone. Locks are `parking_lot` and only guard maps; nothing
//! here awaits. This is the seam a cross-instance broker would sit in front of:
//! [`Hub::deliver`] is the local delivery for a target.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use ts_rs::TS;
use tungstenite::Message;

use crate::close::{CloseCode, DropReason};
use crate::events::{ConnFields, Event, EventKind};
use crate::outbox::{self, Outbox};

/// A close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// WebSocket close code: one of [`CloseCode`], or any code a kick or the client chose.
    pub code: u16,
    /// Human reason.
    pub reason: String,
}

impl Close {
    /// A close with `code` and `reason`.
    pub fn new(code: impl Into<u16>, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

/// Per-connection traffic counters, updated by the connection's own task.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages received from the client.
    pub msgs_in: AtomicU64,
    /// Messages written to the client.
    pub msgs_out: AtomicU64,
    /// Payload bytes received.
    pub bytes_in: AtomicU64,
    /// Payload bytes written.
    pub bytes_out: AtomicU64,
}

/// A live connection as the rest of the server sees it.
#[derive(Debug)]
pub struct Conn {
    /// Numeric id (`c<id>` on the wire).
    pub id: u64,
    /// Who and where, fixed at the handshake.
    pub meta: ConnMeta,
    /// The same, as every event about this connection names it: written as JSON once
    /// here, then shared by each event (a reference count, not a string per event).
    pub tags: ConnFields,
    /// When the handshake completed.
    pub since: SystemTime,
    /// Traffic counters.
    pub counters: Counters,
    /// Outbound frames; the connection task is the only reader. Bounded by `send_queue`:
    /// when a push finds it full the client is too slow and is closed with 1008 — the
    /// publisher never waits, so one slow client cannot delay the others.
    outbox: Outbox,
    /// Why the connection is being closed; set once, before the outbox is asked to close.
    close_reason: Mutex<Option<Close>>,
    send_queue: usize,
}

impl Conn {
    /// The wire id, `c<id>`.
    pub fn wire_id(&self) -> String {
        format!("c{}", self.id)
    }

    /// Asks the connection to close with `code`/`reason`; the first request wins.
    pub fn close(&self, code: impl Into<u16>, reason: impl Into<String>) {
        {
            let mut r = self.close_reason.lock();
            if r.is_none() {
                *r = Some(Close::new(code, reason));
            }
        }
        self.outbox.ask_close();
    }

    /// Resolves when someone asked this connection to close.
    pub async fn closing(&self) {
        self.outbox.closing().await
    }

    /// The close requested, if any.
    pub fn close_reason(&self) -> Option<Close> {
        self.close_reason.lock().clone()
    }

    /// An event about this connection, naming it as all its events do.
    pub fn event(&self, kind: EventKind) -> Event {
        let mut e = Event::new(kind);
        e.conn_fields = Some(self.tags.clone());
        e
    }

    /// Queues a frame; a full queue closes the connection (slow-client policy).
    /// Returns whether the frame was queued.
    fn push(&self, msg: Message, stats: &HubStats) -> bool {
        match self.outbox.push(msg, self.send_queue) {
            Ok(()) => true,
            Err(outbox::Refused::Full) => {
                if !self.outbox.is_closing() {
                    stats.drop_client(DropReason::SendQueueFull);
                    self.close(
                        CloseCode::Policy,
                        format!("send queue full ({} messages)", self.send_queue),
                    );
                }
                false
            }
            Err(outbox::Refused::Closed) => false,
        }
    }

    /// The next queued frame, waiting for one; `None` once the connection is asked to
    /// close ([`Conn::close_reason`] says why). Only the connection's own task calls it.
    pub(crate) async fn next_out(&self) -> Option<Message> {
        self.outbox.pop().await
    }

    /// Whether nothing waits to be written.
    pub(crate) fn nothing_queued(&self) -> bool {
        self.outbox.is_empty()
    }

    /// The next queued frame, if one waits.
    pub(crate) fn try_next_out(&self) -> Option<Message> {
        self.outbox.try_pop()
    }
}

/// Where a publish goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every member of a channel (group).
    Channel(String),
    /// Every connection of a user.
    User(String),
    /// One connection, by wire id.
    Connection(String),
}

/// The channel every authenticated connection of `user` joins.
pub fn user_channel(user: &str) -> String {
    format!("user.{user}")
}

/// A server-wide count that every message adds to, from every worker thread: one slot
/// per thread (a cache line each), summed when read. One atomic bumped by every message
/// on both cores would move its cache line between them on every message.
#[derive(Debug, Default)]
pub struct Counter([CounterSlot; COUNTER_SLOTS]);

/// Threads beyond this many share slots (still correct, only contended again).
const COUNTER_SLOTS: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct CounterSlot(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        thread_local! {
            static SLOT: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed) % COUNTER_SLOTS
            };
        }
        let slot = SLOT.with(|s| *s);
        self.0[slot].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total so far.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// Server-wide counters behind `/api/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Messages received from clients.
    pub messages_in: Counter,
    /// Messages written to clients.
    pub messages_out: Counter,
    /// Bytes received from clients.
    pub bytes_in: Counter,
    /// Bytes written to clients.
    pub bytes_out: Counter,
    /// Publishes (API, library, UI).
    pub published: AtomicU64,
    /// Handshakes by verdict: `None` accepted, else the refusal's close code.
    handshakes: Mutex<BTreeMap<Option<CloseCode>, u64>>,
    /// Clients the server dropped, by reason.
    dropped: Mutex<BTreeMap<DropReason, u64>>,
}

impl HubStats {
    /// Counts a handshake: accepted (`None`) or refused with a close code.
    pub fn handshake(&self, refused: Option<CloseCode>) {
        *self.handshakes.lock().entry(refused).or_default() += 1;
    }

    /// Counts a client dropped by the server.
    pub fn drop_client(&self, reason: DropReason) {
        *self.dropped.lock().entry(reason).or_default() += 1;
    }

    /// Handshake counts by verdict (`None`: accepted).
    pub fn handshakes(&self) -> BTreeMap<Option<CloseCode>, u64> {
        self.handshakes.lock().clone()
    }

    /// Dropped clients by reason.
    pub fn dropped(&self) -> BTreeMap<DropReason, u64> {
        self.dropped.lock().clone()
    }
}

/// Registry of connections and channels.
#[derive(Debug)]
pub struct Hub {
    next_id: AtomicU64,
    /// Connections admitted, including handshakes still upgrading (see [`Slot`]).
    admitted: AtomicUsize,
    max_connections: usize,
    send_queue: usize,
    /// Every live connection by id. Written on connect/disconnect, read by the API.
    conns: RwLock<HashMap<u64, Arc<Conn>>>,
    /// Channel name → members. Read-locked for the whole of a fan-out (pushes never block).
    channels: RwLock<HashMap<String, HashMap<u64, Arc<Conn>>>>,
    /// Bumped whenever a channel gets its first member or loses its last: what the
    /// channels_redis bridge watches to join and leave groups.
    channel_set: tokio::sync::watch::Sender<u64>,
    /// Set by [`Hub::close_all`]: what a connection registered later is closed with.
    closed_all: Mutex<Option<Close>>,
    /// Counters.
    pub stats: HubStats,
}

/// A reserved place under `max_connections`; released when dropped.
#[derive(Debug)]
pub struct Slot {
    hub: Arc<Hub>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.hub.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection is, fixed at the handshake.
#[derive(Debug)]
pub struct ConnMeta {
    /// The endpoint's path pattern.
    pub endpoint: String,
    /// The requested path (no query).
    pub path: String,
    /// Channels joined (rendered templates; [`Hub::register`] adds `user.<id>`).
    pub channels: Vec<String>,
    /// Values the endpoint's `{params}` captured.
    pub params: BTreeMap<String, String>,
    /// The token's user id.
    pub user: Option<String>,
    /// Peer address.
    pub remote: SocketAddr,
    /// Origin header.
    pub origin: Option<String>,
}

impl ConnMeta {
    /// Adds `user.<id>` to the channels of an authenticated connection (once).
    pub fn join_user_channel(&mut self) {
        if let Some(u) = &self.user {
            let uc = user_channel(u);
            if !self.channels.contains(&uc) {
                self.channels.push(uc);
            }
        }
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(max_connections: usize, send_queue: usize) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            admitted: AtomicUsize::new(0),
            max_connections,
            send_queue,
            conns: RwLock::new(HashMap::new()),
            channels: RwLock::new(HashMap::new()),
            channel_set: tokio::sync::watch::channel(0).0,
            closed_all: Mutex::new(None),
            stats: HubStats::default(),
        }
    }

    /// Reserves a place, or `None` when `max_connections` are admitted.
    pub fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_connections).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot { hub: self.clone() })
    }

    /// A connection id for [`Hub::register_as`], taken before the connection exists (a
    /// connect webhook names it).
    pub fn reserve_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a connection and joins its channels.
    pub fn register(&self, meta: ConnMeta) -> Arc<Conn> {
        self.register_as(self.reserve_id(), meta)
    }

    /// [`Hub::register`] under an id from [`Hub::reserve_id`].
    pub fn register_as(&self, id: u64, mut meta: ConnMeta) -> Arc<Conn> {
        meta.join_user_channel();
        let conn = Arc::new(Conn {
            id,
            tags: ConnFields::new(
                &format!("c{id}"),
                &meta.endpoint,
                meta.user.as_deref(),
                &meta.remote.to_string(),
                meta.origin.as_deref(),
            ),
            meta,
            since: SystemTime::now(),
            counters: Counters::default(),
            outbox: Outbox::default(),
            close_reason: Mutex::new(None),
            send_queue: self.send_queue,
        });
        self.conns.write().insert(conn.id, conn.clone());
        // Registered after `close_all` went through the map: closed here instead.
        if let Some(c) = self.closed_all.lock().clone() {
            conn.close(c.code, c.reason);
        }
        let mut created = false;
        {
            let mut chans = self.channels.write();
            for c in &conn.meta.channels {
                let members = chans.entry(c.clone()).or_default();
                created |= members.is_empty();
                members.insert(conn.id, conn.clone());
            }
        }
        if created {
            self.channel_set.send_modify(|n| *n += 1);
        }
        conn
    }

    /// Asks every connection, and any registered from now on, to close with `code` and
    /// `reason` (the server is stopping).
    pub fn close_all(&self, code: impl Into<u16>, reason: &str) {
        let close = Close::new(code, reason);
        *self.closed_all.lock() = Some(close.clone());
        for conn in self.conns.read().values() {
            conn.close(close.code, close.reason.clone());
        }
    }

    /// Removes a connection from every map.
    pub fn unregister(&self, conn: &Conn) {
        conn.outbox.close();
        self.conns.write().remove(&conn.id);
        let mut removed = false;
        {
            let mut chans = self.channels.write();
            for c in &conn.meta.channels {
                if let Some(members) = chans.get_mut(c) {
                    members.remove(&conn.id);
                    if members.is_empty() {
                        chans.remove(c);
                        removed = true;
                    }
                }
            }
        }
        if removed {
            self.channel_set.send_modify(|n| *n += 1);
        }
    }

    /// Delivers `msg` to `target`, skipping `except`; returns how many queues took it.
    /// Each recipient gets a clone of the same bytes: the payload is never re-encoded.
    pub fn deliver(&self, target: &Target, msg: Message, except: Option<u64>) -> u64 {
        match target {
            Target::Channel(c) => self.deliver_channel(c, &msg, except),
            Target::User(u) => self.deliver_channel(&user_channel(u), &msg, except),
            Target::Connection(id) => match self.get(id) {
                Some(conn) => u64::from(conn.push(msg, &self.stats)),
                None => 0,
            },
        }
    }

    fn deliver_channel(&self, channel: &str, msg: &Message, except: Option<u64>) -> u64 {
        let chans = self.channels.read();
        let Some(members) = chans.get(channel) else {
            return 0;
        };
        let mut n = 0;
        for (id, conn) in members {
            if Some(*id) != except && conn.push(msg.clone(), &self.stats) {
                n += 1;
            }
        }
        n
    }

    /// Queues a frame to one connection (echo); `false` if it was not queued.
    pub fn send_to(&self, conn: &Conn, msg: Message) -> bool {
        conn.push(msg, &self.stats)
    }

    /// A connection by wire id (`c12`, or `12`).
    pub fn get(&self, wire_id: &str) -> Option<Arc<Conn>> {
        let id: u64 = wire_id.strip_prefix('c').unwrap_or(wire_id).parse().ok()?;
        self.conns.read().get(&id).cloned()
    }

    /// Every live connection.
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        let mut v: Vec<_> = self.conns.read().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Every channel with at least one member.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels.read().keys().cloned().collect()
    }

    /// Whether `channel` has members.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.read().contains_key(channel)
    }

    /// Changes whenever the set of [`Hub::channel_names`] does.
    pub fn watch_channel_set(&self) -> tokio::sync::watch::Receiver<u64> {
        self.channel_set.subscribe()
    }

    /// Live connection count.
    pub fn connection_count(&self) -> usize {
        self.conns.read().len()
    }

    /// A point-in-time view of counts (without rates; see `stats.rs`).
    pub fn counts(&self) -> Counts {
        let mut per_endpoint: BTreeMap<String, u64> = BTreeMap::new();
        let total = {
            let conns = self.conns.read();
            for c in conns.values() {
                *per_endpoint.entry(c.meta.endpoint.clone()).or_default() += 1;
            }
            conns.len() as u64
        };
        let per_channel = self
            .channels
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect();
        Counts {
            total,
            per_endpoint,
            per_channel,
        }
    }
}

/// Connection counts at one instant.
#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct Counts {
    /// Open WebSocket connections.
    pub total: u64,
    /// By endpoint path pattern.
    pub per_endpoint: BTreeMap<String, u64>,
    /// By channel.
    pub per_channel: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_adds_up_across_threads() {
        let c = Arc::new(Counter::default());
        // More threads than slots: shared slots still add up.
        let threads: Vec<_> = (0..COUNTER_SLOTS + 3)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.add(3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), (COUNTER_SLOTS as u64 + 3) * 30_000);
    }
}

//! The event log: one stream of typed events, serialised once, kept in a bounded ring
//! for the UI, fanned out live to subscribers, and appended as JSON lines to a rotating
//! file by a writer task that never slows the caller.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use tokio::sync::Notify;
use ts_rs::TS;

mod json;

pub use json::ConnFields;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum EventKind {
    ServerStarted,
    ServerStopped,
    ServerError,
    HandshakeRejected,
    Connected,
    Disconnected,
    MessageIn,
    MessageOut,
    Published,
    WebhookFailed,
    /// A request passed to the `[proxy]` upstream, with its answer.
    HttpRequest,
    /// A line the upstream's command printed.
    UpstreamOutput,
    /// The upstream's command started, became ready, exited or stopped.
    UpstreamState,
    /// The channels_redis bridge connected, lost its connection, or is retrying.
    BridgeState,
    /// The cross-instance broker connected to Redis, or lost it and serves locally.
    BrokerState,
}

impl EventKind {
    /// Its name on the wire (`message_in`), as serde writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ServerStarted => "server_started",
            Self::ServerStopped => "server_stopped",
            Self::ServerError => "server_error",
            Self::HandshakeRejected => "handshake_rejected",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::MessageIn => "message_in",
            Self::MessageOut => "message_out",
            Self::Published => "published",
            Self::WebhookFailed => "webhook_failed",
            Self::HttpRequest => "http_request",
            Self::UpstreamOutput => "upstream_output",
            Self::UpstreamState => "upstream_state",
            Self::BridgeState => "bridge_state",
            Self::BrokerState => "broker_state",
        }
    }
}

/// One event. Fields that do not apply are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Event {
    /// Position in this server run's event stream, from 1; set by [`EventLog::emit`].
    /// A reader that has seen up to N skips anything at or below N.
    pub seq: u64,
    /// RFC 3339 time with milliseconds, UTC.
    #[ts(type = "string")]
    pub ts: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// Connection id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub conn: Option<Arc<str>>,
    /// Endpoint path pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub endpoint: Option<Arc<str>>,
    /// Request path (query redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub path: Option<String>,
    /// Channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub channel: Option<String>,
    /// User id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub user: Option<Arc<str>>,
    /// Peer address.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub remote: Option<Arc<str>>,
    /// Origin header.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub origin: Option<Arc<str>>,
    /// Close code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub code: Option<u16>,
    /// Human reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reason: Option<String>,
    /// Payload size.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub bytes: Option<u64>,
    /// First 200 characters of a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub preview: Option<Arc<str>>,
    /// Recipients reached (publish, broadcast).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub delivered: Option<u64>,
    /// HTTP method (proxied requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub method: Option<String>,
    /// HTTP status (proxied requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status: Option<u16>,
    /// Milliseconds from the request to the end of its answer (proxied requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub duration_ms: Option<u64>,
    /// `conn`, `endpoint`, `user`, `remote` and `origin` as a connection's events all say
    /// them, written as JSON once per connection; an event about a connection carries
    /// these instead of the five fields (which it leaves empty). Only the log's writer
    /// reads it (`events/json.rs`, which writes every event the log keeps); the derive
    /// above describes the JSON either way.
    #[serde(skip)]
    #[ts(skip)]
    pub conn_fields: Option<ConnFields>,
}

impl Event {
    /// An event of `kind` stamped now, with every optional field empty.
    pub fn new(kind: EventKind) -> Self {
        Self {
            seq: 0,
            ts: Timestamp(SystemTime::now()),
            kind,
            conn: None,
            endpoint: None,
            path: None,
            channel: None,
            user: None,
            remote: None,
            origin: None,
            code: None,
            reason: None,
            bytes: None,
            preview: None,
            delivered: None,
            method: None,
            status: None,
            duration_ms: None,
            conn_fields: None,
        }
    }
}

/// When an event happened; written as RFC 3339 with milliseconds, UTC, only when the
/// event is serialised (no string per event before that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    /// Its text, given to `f`. Under load many events share a millisecond: each thread
    /// formats a millisecond once.
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        thread_local! {
            static LAST: std::cell::RefCell<(u128, String)> = const {
                std::cell::RefCell::new((u128::MAX, String::new()))
            };
        }
        let ms = self
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        LAST.with_borrow_mut(|(last, text)| {
            if *last != ms {
                use std::fmt::Write;
                text.clear();
                let _ = write!(text, "{}", humantime::format_rfc3339_millis(self.0));
                *last = ms;
            }
            f(text)
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_text(|t| s.serialize_str(t))
    }
}

/// Longest text an event field keeps (path, origin, reason, channel, …), in bytes: a
/// client controls several of them (a 60 KB path, a huge Origin), and every event is
/// held in the ring, sent to each UI and written to the file.
pub const MAX_FIELD_BYTES: usize = 512;

/// `s` cut to [`MAX_FIELD_BYTES`] on a character boundary, with `…` when cut.
pub fn clip(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_string();
    }
    let mut end = MAX_FIELD_BYTES - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The first 200 characters of a text payload; binary is described, not shown.
pub fn preview(text: Option<&str>, len: usize) -> Arc<str> {
    match text {
        // No more bytes than that: no more characters either.
        Some(t) if t.len() <= 200 => t.into(),
        Some(t) => match t.char_indices().nth(200) {
            Some((i, _)) => format!("{}…", &t[..i]).into(),
            None => t.into(),
        },
        None => format!("<binary {len} bytes>").into(),
    }
}

/// An event as the log keeps it: its JSON, serialised once for the ring, the file and
/// every subscriber (the typed event is not kept: nothing reads it back).
#[derive(Debug)]
pub struct Logged {
    /// Its position in the stream (the JSON's `seq`).
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// Its JSON text.
    pub json: String,
}

impl Logged {
    /// What holding it costs.
    fn cost(&self) -> usize {
        self.json.capacity() + std::mem::size_of::<Self>()
    }
}

/// The ring's budget in bytes, by [`Logged::cost`]; older events go first when a count
/// or this is exceeded.
pub const RING_MAX_BYTES: usize = 16 << 20;

/// Bytes of JSON a live [`Feed`] holds until its reader takes them; events past that are
/// counted as missed. Room for a UI that takes a batch every 50 ms while echo traffic
/// makes 250k events/s.
const FEED_MAX_BYTES: usize = 8 << 20;
/// Bytes of JSON lines waiting for the file writer; more events are counted as dropped,
/// never queued.
const FILE_QUEUE_BYTES: usize = 16 << 20;
/// How long the file writer lets events gather once woken: at high rates it writes
/// batches (one wake and one write syscall per batch, not per event); an event reaches
/// the file at most this late.
const FILE_BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(10);
/// Rotate the log file at this size.
pub const ROTATE_BYTES: u64 = 10 << 20;
/// Rotated files kept (`.1` … `.5`).
pub const ROTATE_KEEP: usize = 5;

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Arc<Logged>>,
    /// What `events` holds, by [`Logged::cost`].
    bytes: usize,
    last_seq: u64,
    /// JSON lines the file writer has not taken yet, in `seq` order (at most
    /// [`FILE_QUEUE_BYTES`]). Bytes rather than events: the writer takes the whole
    /// buffer for one write, and never frees the events one by one.
    to_file: Vec<u8>,
    /// Set by [`EventLog::close`]: the writer writes what it has and stops.
    closing: bool,
    /// Every live [`Feed`]'s batch.
    feeds: Vec<FeedBatch>,
    /// The id of the next feed.
    next_feed: u64,
}

/// What waits for one [`Feed`]'s reader.
#[derive(Debug)]
struct FeedBatch {
    id: u64,
    /// What every batch starts with.
    open: &'static str,
    /// `open`, then the events' JSON, separated by commas; empty when nothing waits.
    json: String,
    /// Events that did not fit.
    missed: u64,
    /// Woken when `json` stops being empty.
    ready: Arc<Notify>,
}

/// The ring, and the condition the file writer sleeps on while nothing waits for it.
#[derive(Debug, Default)]
struct Shared {
    ring: Mutex<Ring>,
    to_file: Condvar,
}

/// The event log shared by the whole server.
#[derive(Debug)]
pub struct EventLog {
    /// The newest `ring_cap` events, for a UI that connects late, the last `seq` given,
    /// and the file writer's batch. Locked only to number-push-send one event (already
    /// serialised), or to copy.
    shared: Arc<Shared>,
    ring_cap: usize,
    /// Whether a file writer runs.
    file: bool,
    /// Events the file writer could not take.
    dropped: AtomicU64,
    /// Whether the file takes what it is given; written by the writer thread.
    health: Arc<FileHealth>,
}

/// The log file's state, shared by the writer thread (which sets it) and the log (which
/// reports changes as `server_error` events and in the stats).
#[derive(Debug, Default)]
struct FileHealth {
    /// Why the last write failed (disk full, file gone…), until one succeeds again.
    error: Mutex<Option<String>>,
    /// Set by the writer when `error` changes, cleared by the log once it said so.
    changed: std::sync::atomic::AtomicBool,
}

impl FileHealth {
    fn set(&self, error: Option<String>) {
        let mut e = self.error.lock();
        if e.is_some() != error.is_some() {
            self.changed.store(true, Ordering::Release);
        }
        *e = error;
    }
}

/// What every event's JSON starts with, before its `seq`.
const SEQ_PREFIX: &str = "{\"seq\":";

impl EventLog {
    /// A log with a ring of `ring_cap` events and, if `file` is given, a writer thread
    /// spawned on `tracker` that runs until [`EventLog::close`].
    pub fn new(
        ring_cap: usize,
        file: Option<PathBuf>,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Self {
        let health = Arc::new(FileHealth::default());
        let shared = Arc::new(Shared::default());
        shared.ring.lock().events = VecDeque::with_capacity(ring_cap.min(1024));
        let has_file = file.is_some();
        if let Some(path) = file {
            let (s, h) = (shared.clone(), health.clone());
            tracker.spawn_blocking(move || write_file(path, &s, &h));
        }
        Self {
            shared,
            ring_cap,
            file: has_file,
            dropped: AtomicU64::new(0),
            health,
        }
    }

    /// Records an event (its `seq` is given here), its text fields cut to
    /// [`MAX_FIELD_BYTES`].
    pub fn emit(&self, event: Event) {
        thread_local! {
            static AFTER_SEQ: std::cell::RefCell<String> = const {
                std::cell::RefCell::new(String::new())
            };
        }
        AFTER_SEQ.with_borrow_mut(|after_seq| {
            // Serialised before the lock, numbered under it (`seq` comes first, so the
            // rest is written into a reused buffer, and the lock only joins the two).
            after_seq.clear();
            json::write_after_seq(&event, after_seq);
            // Allocated before the lock, filled under it.
            let mut logged = Arc::new(Logged {
                seq: 0,
                kind: event.kind,
                json: String::with_capacity(SEQ_PREFIX.len() + 20 + after_seq.len()),
            });
            // Numbered, stored and sent under one lock: ring order, live order, file
            // order and `seq` agree, so a reader can join `recent()` and the live stream
            // without gaps or repeats.
            let mut guard = self.shared.ring.lock();
            let ring = &mut *guard;
            ring.last_seq += 1;
            if let Some(l) = Arc::get_mut(&mut logged) {
                // Always: nothing else holds it yet.
                l.seq = ring.last_seq;
                l.json.push_str(SEQ_PREFIX);
                l.json.push_str(itoa::Buffer::new().format(l.seq));
                l.json.push_str(after_seq);
            }
            // Room first, so the ring takes this reference (no count to raise and drop
            // per event); what leaves is freed after the lock.
            let cost = logged.cost();
            let mut evicted = None;
            while ring.events.len() >= self.ring_cap || ring.bytes + cost > RING_MAX_BYTES {
                let Some(old) = ring.events.pop_front() else {
                    break;
                };
                ring.bytes -= old.cost();
                evicted = Some(old);
            }
            ring.bytes += cost;
            ring.events.push_back(logged);
            let json = ring.events.back().map_or("", |l| l.json.as_str());
            for feed in &mut ring.feeds {
                feed.push(json);
            }
            if self.file {
                // Once the writer has stopped (or could not open the file) nothing would
                // take the batch: count instead of holding.
                if !ring.closing && ring.to_file.len() + json.len() < FILE_QUEUE_BYTES {
                    // The writer sleeps only while its batch is empty: one wake per batch.
                    if ring.to_file.is_empty() {
                        self.shared.to_file.notify_one();
                    }
                    ring.to_file.extend_from_slice(json.as_bytes());
                    ring.to_file.push(b'\n');
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(guard);
            drop(evicted);
        });
        // Read before swapped: a swap per event would bounce the flag's cache line
        // between the cores on every event.
        if self.health.changed.load(Ordering::Relaxed)
            && self.health.changed.swap(false, Ordering::AcqRel)
        {
            let mut e = Event::new(EventKind::ServerError);
            e.reason = Some(match self.file_error() {
                Some(err) => format!(
                    "log file: {err} — events still reach the UI; the file misses them until it can be written"
                ),
                None => "log file: writable again".into(),
            });
            self.emit(e);
        }
    }

    /// Why the log file cannot be written right now, if it cannot.
    pub fn file_error(&self) -> Option<String> {
        self.health.error.lock().clone()
    }

    /// The ring's contents, oldest first, and a live feed of every event after them
    /// (taken together: none is in both, none falls between). Each batch the feed gives
    /// starts with `open`.
    pub fn subscribe(&self, open: &'static str) -> (Vec<Arc<Logged>>, Feed) {
        let ready = Arc::new(Notify::new());
        let mut ring = self.shared.ring.lock();
        let id = ring.next_feed;
        ring.next_feed += 1;
        ring.feeds.push(FeedBatch {
            id,
            open,
            json: String::new(),
            missed: 0,
            ready: ready.clone(),
        });
        let recent = ring.events.iter().cloned().collect();
        let feed = Feed {
            id,
            shared: self.shared.clone(),
            ready,
        };
        (recent, feed)
    }

    /// The ring's contents, oldest first.
    pub fn recent(&self) -> Vec<Arc<Logged>> {
        self.shared.ring.lock().events.iter().cloned().collect()
    }

    /// Tells the file writer to write what it has, flush and stop.
    pub async fn close(&self) {
        self.shared.ring.lock().closing = true;
        self.shared.to_file.notify_one();
    }

    /// Events the file writer had to drop.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for EventLog {
    /// A log dropped without [`EventLog::close`] still lets its writer finish and end.
    fn drop(&mut self) {
        self.shared.ring.lock().closing = true;
        self.shared.to_file.notify_one();
    }
}

impl FeedBatch {
    fn push(&mut self, json: &str) {
        if self.json.len() + json.len() + 1 > FEED_MAX_BYTES {
            self.missed += 1;
            return;
        }
        if self.json.is_empty() {
            self.ready.notify_one();
            self.json.push_str(self.open);
        } else {
            self.json.push(',');
        }
        self.json.push_str(json);
    }
}

/// A live subscription to the log ([`EventLog::subscribe`]): the events emitted since,
/// in `seq` order, gathered as JSON for the reader to take a batch at a time. A reader
/// that does not take them for a while is not waited for: what does not fit in
/// [`FEED_MAX_BYTES`] is counted as missed.
#[derive(Debug)]
pub struct Feed {
    id: u64,
    shared: Arc<Shared>,
    ready: Arc<Notify>,
}

impl Feed {
    /// Waits until something may be waiting (it may already have been taken).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Takes what waits: how many events were missed since the last take, and the
    /// batch (its `open`, then the events' JSON separated by commas), if any event waits.
    pub fn take(&self) -> (u64, Option<String>) {
        let mut ring = self.shared.ring.lock();
        let Some(feed) = ring.feeds.iter_mut().find(|f| f.id == self.id) else {
            return (0, None);
        };
        // The next batch starts with room for as much as this one held.
        let room = feed.json.len();
        let json = std::mem::replace(&mut feed.json, String::with_capacity(room));
        let missed = std::mem::take(&mut feed.missed);
        (missed, (!json.is_empty()).then_some(json))
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shared.ring.lock().feeds.retain(|f| f.id != self.id);
    }
}

/// Runs on a blocking thread so a slow disk stalls only this thread, never a runtime worker.
/// It sleeps until an event waits, lets a batch gather for [`FILE_BATCH_DELAY`], takes
/// it whole and writes it with one flush. A failure (disk full, say) is reported once
/// through `health`, and the writer keeps trying: the server serves on, and the file
/// resumes when the disk has room.
fn write_file(path: PathBuf, shared: &Shared, health: &FileHealth) {
    let shown = path.display().to_string();
    let mut out = match RotatingFile::open(path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("event log file {shown}: {e}");
            health.set(Some(format!("{shown}: {e}")));
            // No writer from here on: events are counted as dropped, not held.
            let mut ring = shared.ring.lock();
            ring.closing = true;
            ring.to_file = Vec::new();
            return;
        }
    };
    // The batch written last, emptied: swapped in for the next, so both keep their room.
    let mut batch = Vec::new();
    loop {
        let closing = {
            let mut ring = shared.ring.lock();
            while ring.to_file.is_empty() && !ring.closing {
                shared.to_file.wait(&mut ring);
            }
            ring.closing
        };
        if !closing {
            std::thread::sleep(FILE_BATCH_DELAY);
        }
        std::mem::swap(&mut batch, &mut shared.ring.lock().to_file);
        let r = out.write_lines(&batch).and_then(|()| out.flush());
        batch.clear();
        // A burst's buffer is not kept for good.
        batch.shrink_to(1 << 20);
        match r {
            // Healthy again only once bytes reached the file, not the buffer.
            Ok(()) => health.set(None),
            Err(e) => {
                if health.error.lock().is_none() {
                    tracing::error!("event log file {shown}: {e}");
                }
                health.set(Some(format!("{shown}: {e}")));
                out.discard();
            }
        }
        if closing {
            return;
        }
    }
}

struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    /// Only a regular file is rotated: renaming a device (`/dev/null`) or a pipe a user
    /// pointed the log at would be harmful.
    regular: bool,
    /// An exclusive lock on `<file>.lock`, held while this writer owns the file: two
    /// processes (the desktop app and `sockpit serve`) rotating one file would rename it
    /// under each other. None for a device, which is never rotated.
    _lock: Option<File>,
    /// A write failed part-way: the next line starts on a fresh line.
    broken: bool,
}

impl RotatingFile {
    /// Opens `path`, or, when another writer holds it, a file of this process's own
    /// beside it (`sockpit.log.<pid>.jsonl`).
    fn open(path: PathBuf) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A device or pipe (`/dev/null`) is neither locked nor rotated: no `.lock` file
        // is created beside it.
        let special = std::fs::metadata(&path).is_ok_and(|m| !m.is_file());
        let (path, lock) = if special {
            (path, None)
        } else if let Some(l) = lock(&path)? {
            (path, Some(l))
        } else {
            let own = own_name(&path);
            tracing::warn!(
                "event log {} is written by another Sockpit; this one writes {}",
                path.display(),
                own.display()
            );
            let l = lock(&own)?.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::WouldBlock, "log file locked")
            })?;
            (own, Some(l))
        };
        let file = open_append(&path)?;
        let meta = file.metadata()?;
        Ok(Self {
            path,
            out: BufWriter::with_capacity(64 << 10, file),
            size: meta.len(),
            regular: meta.is_file(),
            _lock: lock,
            broken: false,
        })
    }

    /// Appends `lines` (each ended by `\n`), rotating between two lines whenever the
    /// next would take the file past [`ROTATE_BYTES`].
    fn write_lines(&mut self, mut lines: &[u8]) -> std::io::Result<()> {
        if self.broken && !lines.is_empty() {
            // What a full disk cut short is ended, so the next line stays whole and parseable.
            self.out.write_all(b"\n")?;
            self.broken = false;
        }
        while !lines.is_empty() {
            let room = if self.regular {
                ROTATE_BYTES.saturating_sub(self.size) as usize
            } else {
                usize::MAX
            };
            // The whole lines that fit; at least one, into a fresh file if need be.
            let mut take = match lines.get(..room) {
                None => lines.len(),
                Some(fits) => fits.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1),
            };
            if take == 0 {
                if self.size > 0 {
                    self.rotate()?;
                    continue;
                }
                take = lines
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(lines.len(), |i| i + 1);
            }
            self.out.write_all(&lines[..take])?;
            self.size += take as u64;
            lines = &lines[take..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        for i in (1..ROTATE_KEEP).rev() {
            let _ = std::fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1));
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.out = BufWriter::with_capacity(64 << 10, open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Drops what could not be written, so a full disk neither grows the buffer nor
    /// writes half a line later.
    fn discard(&mut self) {
        if let Ok(f) = self.out.get_ref().try_clone() {
            let old = std::mem::replace(&mut self.out, BufWriter::with_capacity(64 << 10, f));
            // Dropped without the flush a BufWriter's drop would attempt.
            let _ = old.into_parts();
        }
        self.broken = true;
        if let Ok(m) = self.out.get_ref().metadata() {
            self.size = m.len();
        }
    }
}

/// The lock of `path`'s writer, or `None` when another holds it.
fn lock(path: &Path) -> std::io::Result<Option<File>> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = open_append(Path::new(&name))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// `sockpit.log.jsonl` → `sockpit.log.<pid>.jsonl`.
fn own_name(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{}.{}", std::process::id(), ext.to_string_lossy()),
        None => format!("{stem}.{}", std::process::id()),
    };
    path.with_file_name(name)
}

fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_cuts_at_200_chars() {
        let long = "é".repeat(300);
        let p = preview(Some(&long), long.len());
        assert_eq!(p.chars().count(), 201);
        assert_eq!(&*preview(None, 12), "<binary 12 bytes>");
    }

    #[tokio::test]
    async fn ring_is_bounded_and_file_rotates() {
        let dir = std::env::temp_dir().join(format!("sockpit-ev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracker = tokio_util::task::TaskTracker::new();
        let log = EventLog::new(3, Some(dir.join("log.jsonl")), &tracker);
        for i in 0..5 {
            let mut e = Event::new(EventKind::MessageIn);
            e.bytes = Some(i);
            log.emit(e);
        }
        let recent = log.recent();
        assert_eq!(recent.len(), 3);
        assert!(recent[0].json.contains("\"bytes\":2"), "{}", recent[0].json);
        log.close().await;
        tracker.close();
        tracker.wait().await;
        let text = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.lines().all(|l| l.contains("\"kind\":\"message_in\"")));

        let mut f = RotatingFile::open(dir.join("r.jsonl")).unwrap();
        let mut line = "x".repeat(1 << 20);
        line.push('\n');
        for _ in 0..5 {
            f.write_lines(line.repeat(5).as_bytes()).unwrap();
        }
        f.flush().unwrap();
        assert!(numbered(&dir.join("r.jsonl"), 2).exists());
        assert!(std::fs::metadata(dir.join("r.jsonl")).unwrap().len() <= ROTATE_BYTES);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn two_writers_never_share_one_file() {
        let dir = std::env::temp_dir().join(format!("sockpit-ev-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracker = tokio_util::task::TaskTracker::new();
        let path = dir.join("sockpit.log.jsonl");
        let first = EventLog::new(10, Some(path.clone()), &tracker);
        first.emit(Event::new(EventKind::ServerStarted));
        // The first writer holds the lock once its line is on disk.
        for _ in 0..500 {
            if std::fs::read_to_string(&path).is_ok_and(|t| t.contains("server_started")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let second = EventLog::new(10, Some(path.clone()), &tracker);
        second.emit(Event::new(EventKind::Published));
        // Both writers run at once until the second has written (it opens on its thread).
        for _ in 0..500 {
            if std::fs::read_to_string(own_name(&path)).is_ok_and(|t| t.contains("published")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        first.close().await;
        second.close().await;
        tracker.close();
        tracker.wait().await;
        let mine = std::fs::read_to_string(&path).unwrap();
        assert!(
            mine.contains("server_started") && !mine.contains("published"),
            "{mine}"
        );
        let other = std::fs::read_to_string(own_name(&path)).unwrap();
        assert!(other.contains("published") && !other.contains("server_started"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_feed_starts_after_the_ring_and_gathers_what_follows() {
        let log = EventLog::new(10, None, &tokio_util::task::TaskTracker::new());
        log.emit(Event::new(EventKind::ServerStarted));
        let (recent, feed) = log.subscribe("[");
        assert_eq!(recent.iter().map(|l| l.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(feed.take(), (0, None));
        for i in 0..3 {
            let mut e = Event::new(EventKind::MessageIn);
            e.bytes = Some(i);
            log.emit(e);
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), feed.ready())
            .await
            .expect("the first event wakes the reader");
        let (missed, batch) = feed.take();
        let events: Vec<serde_json::Value> =
            serde_json::from_str(&format!("{}]", batch.unwrap())).unwrap();
        assert_eq!(missed, 0);
        let seqs: Vec<_> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert_eq!(events[2]["bytes"], 2);
        assert_eq!(feed.take(), (0, None));
        drop(feed);
        assert!(log.shared.ring.lock().feeds.is_empty());
    }

    #[test]
    fn a_feed_nobody_takes_from_counts_what_does_not_fit() {
        let log = EventLog::new(10, None, &tokio_util::task::TaskTracker::new());
        let (_, feed) = log.subscribe("[");
        let n = FEED_MAX_BYTES / 500 + 100;
        for _ in 0..n {
            let mut e = Event::new(EventKind::Published);
            e.reason = Some("x".repeat(500));
            log.emit(e);
        }
        let (missed, batch) = feed.take();
        let batch = batch.unwrap();
        assert!(batch.len() <= FEED_MAX_BYTES);
        let kept: Vec<serde_json::Value> = serde_json::from_str(&format!("{batch}]")).unwrap();
        assert!(missed > 0);
        assert_eq!(kept.len() as u64 + missed, n as u64);
        // Taken, it gathers again, and the gap shows in `seq`.
        log.emit(Event::new(EventKind::Published));
        let (missed, batch) = feed.take();
        assert_eq!(missed, 0);
        assert!(batch.unwrap().starts_with(&format!("[{{\"seq\":{}", n + 1)));
    }

    #[test]
    fn a_device_is_neither_locked_nor_rotated() {
        let f = RotatingFile::open(PathBuf::from("/dev/null")).unwrap();
        assert!(!f.regular && f._lock.is_none());
    }
}

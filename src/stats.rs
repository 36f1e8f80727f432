//! Live statistics: a sampler task turns the hub's counters into a [`StatsSnapshot`]
//! with rates every 250 ms and publishes it on a `watch` channel (the current value is
//! all anyone needs). Also the Prometheus text rendering of the same counters.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::bridge::{Bridge, BridgeStatus};
use crate::broker::{Broker, BrokerStatus};
use crate::close::DropReason;
use crate::endpoint::Endpoints;
use crate::events::EventLog;
use crate::hub::{Conn, Hub};
use crate::proxy::{Proxy, ProxyStatus};

/// How often the sampler runs (and the UI gets a stats frame).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Channels listed in a snapshot at most (the busiest); `channel_count` has them all.
pub const MAX_CHANNELS_LISTED: usize = 200;

/// Totals, counts and rates at one instant: the body of `GET /_sockpit/api/stats`.
#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct StatsSnapshot {
    /// RFC 3339 time of the sample.
    pub ts: String,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Open connections by endpoint (every configured endpoint is listed).
    pub endpoints: BTreeMap<String, u64>,
    /// Members by channel (the busiest [`MAX_CHANNELS_LISTED`]).
    pub channels: BTreeMap<String, u64>,
    /// Channels with at least one member.
    pub channel_count: u64,
    /// Messages received from clients since start.
    pub messages_in: u64,
    /// Messages written to clients since start.
    pub messages_out: u64,
    /// Bytes received since start.
    pub bytes_in: u64,
    /// Bytes written since start.
    pub bytes_out: u64,
    /// API publishes since start.
    pub published: u64,
    /// Messages in per second over the last second.
    pub messages_in_per_s: f64,
    /// Messages out per second over the last second.
    pub messages_out_per_s: f64,
    /// Clients the server closed, by reason.
    pub dropped_clients: BTreeMap<DropReason, u64>,
    /// Events the log file writer dropped because the disk was behind.
    pub log_dropped: u64,
    /// Why the log file cannot be written right now (disk full…), if it cannot.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
    /// The `[proxy]` upstream, when one is configured.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyStatus>,
    /// The channels_redis bridge, when one is configured.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<BridgeStatus>,
    /// The cross-instance broker, with cluster-wide counts, when one is configured.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerStatus>,
}

/// One connection in `GET /_sockpit/api/connections`.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ConnectionInfo {
    /// Wire id (`c12`).
    pub id: String,
    /// Endpoint path pattern.
    pub endpoint: String,
    /// Requested path.
    pub path: String,
    /// Channels joined.
    pub channels: Vec<String>,
    /// User id.
    #[ts(optional)]
    pub user: Option<String>,
    /// Peer address.
    pub remote: String,
    /// Origin header.
    #[ts(optional)]
    pub origin: Option<String>,
    /// RFC 3339 time of the handshake.
    pub since: String,
    /// Messages received.
    pub msgs_in: u64,
    /// Messages written.
    pub msgs_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

impl From<&Conn> for ConnectionInfo {
    fn from(c: &Conn) -> Self {
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Self {
            id: c.wire_id(),
            endpoint: c.meta.endpoint.clone(),
            path: c.meta.path.clone(),
            channels: c.meta.channels.clone(),
            user: c.meta.user.clone(),
            remote: c.meta.remote.to_string(),
            origin: c.meta.origin.clone(),
            since: humantime::format_rfc3339_millis(c.since).to_string(),
            msgs_in: n(&c.counters.msgs_in),
            msgs_out: n(&c.counters.msgs_out),
            bytes_in: n(&c.counters.bytes_in),
            bytes_out: n(&c.counters.bytes_out),
        }
    }
}

/// Takes a snapshot without rates.
pub fn snapshot(
    hub: &Hub,
    endpoints: &Endpoints,
    started: Instant,
    events: &EventLog,
    proxy: Option<&Proxy>,
    bridge: Option<&Bridge>,
    broker: Option<&Broker>,
) -> StatsSnapshot {
    let counts = hub.counts();
    let mut per_endpoint: BTreeMap<String, u64> = endpoints
        .iter()
        .map(|e| (e.path.as_str().to_string(), 0))
        .collect();
    per_endpoint.extend(counts.per_endpoint);
    let channel_count = counts.per_channel.len() as u64;
    let channels = if counts.per_channel.len() <= MAX_CHANNELS_LISTED {
        counts.per_channel
    } else {
        let mut v: Vec<_> = counts.per_channel.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(MAX_CHANNELS_LISTED);
        v.into_iter().collect()
    };
    let s = &hub.stats;
    StatsSnapshot {
        ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        uptime_s: started.elapsed().as_secs(),
        connections: counts.total,
        endpoints: per_endpoint,
        channels,
        channel_count,
        messages_in: s.messages_in.get(),
        messages_out: s.messages_out.get(),
        bytes_in: s.bytes_in.get(),
        bytes_out: s.bytes_out.get(),
        published: s.published.load(Ordering::Relaxed),
        messages_in_per_s: 0.0,
        messages_out_per_s: 0.0,
        dropped_clients: s.dropped(),
        log_dropped: events.dropped(),
        log_error: events.file_error(),
        proxy: proxy.map(Proxy::status),
        bridge: bridge.map(Bridge::status),
        broker: broker.map(Broker::status),
    }
}

/// Samples every [`SAMPLE_EVERY`] until `stop`, computing rates over the last second.
pub async fn run_sampler(
    take: impl Fn() -> StatsSnapshot,
    tx: watch::Sender<Arc<StatsSnapshot>>,
    stop: CancellationToken,
) {
    // (when, messages in, messages out, proxied requests)
    let mut history: VecDeque<(Instant, u64, u64, u64)> = VecDeque::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let mut snap = take();
        let now = Instant::now();
        let requests = snap.proxy.as_ref().map_or(0, |p| p.requests);
        history.push_back((now, snap.messages_in, snap.messages_out, requests));
        while history.len() > 5 {
            history.pop_front();
        }
        if let Some(&(t0, in0, out0, req0)) = history.front() {
            let dt = now.duration_since(t0).as_secs_f64();
            if dt > 0.0 {
                snap.messages_in_per_s = ((snap.messages_in - in0) as f64 / dt).round();
                snap.messages_out_per_s = ((snap.messages_out - out0) as f64 / dt).round();
                if let Some(p) = &mut snap.proxy {
                    p.requests_per_s = ((requests - req0) as f64 / dt).round();
                }
            }
        }
        tx.send_replace(Arc::new(snap));
    }
}

/// Renders the Prometheus text exposition format.
pub fn prometheus(snap: &StatsSnapshot, hub: &Hub) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    metric(
        "sockpit_connections",
        "gauge",
        "Open WebSocket connections by endpoint.",
    );
    let mut body = String::new();
    for (ep, n) in &snap.endpoints {
        let _ = writeln!(
            body,
            "sockpit_connections{{endpoint=\"{}\"}} {n}",
            escape(ep)
        );
    }
    out.push_str(&body);
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        &mut out,
        "sockpit_messages_in_total",
        "Messages received from clients.",
        snap.messages_in,
    );
    counter(
        &mut out,
        "sockpit_messages_out_total",
        "Messages written to clients.",
        snap.messages_out,
    );
    counter(
        &mut out,
        "sockpit_bytes_in_total",
        "Payload bytes received from clients.",
        snap.bytes_in,
    );
    counter(
        &mut out,
        "sockpit_bytes_out_total",
        "Payload bytes written to clients.",
        snap.bytes_out,
    );
    counter(
        &mut out,
        "sockpit_published_total",
        "Publishes through the HTTP API.",
        snap.published,
    );
    counter(
        &mut out,
        "sockpit_log_dropped_total",
        "Events the log file writer dropped.",
        snap.log_dropped,
    );
    let _ = writeln!(
        out,
        "# HELP sockpit_handshakes_total WebSocket handshakes by verdict and close code.\n# TYPE sockpit_handshakes_total counter"
    );
    for (refused, n) in hub.stats.handshakes() {
        let (verdict, code) = match refused {
            None => ("accepted", 0),
            Some(c) => ("rejected", c.code()),
        };
        let _ = writeln!(
            out,
            "sockpit_handshakes_total{{verdict=\"{verdict}\",code=\"{code}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP sockpit_dropped_clients_total Clients closed by the server, by reason.\n# TYPE sockpit_dropped_clients_total counter"
    );
    for (reason, n) in &snap.dropped_clients {
        let _ = writeln!(
            out,
            "sockpit_dropped_clients_total{{reason=\"{}\"}} {n}",
            reason.as_str()
        );
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

//! One WebSocket connection's task: read the client, write its queue, ping it, and close
//! it with the right code when asked (kick, slow, too big, idle, server stopping).
//!
//! A single task owns the socket; every exit path sends a close frame (bounded by a
//! timeout, since a client that does not read cannot take one either).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;

use crate::close::{CloseCode, DropReason};
use crate::config::{EndpointConfig, OnMessage};
use crate::events::{EventKind, preview};
use crate::hub::{Close, Conn, Slot, Target};
use crate::socket::Socket;
use crate::state::Shared;
use crate::webhook::{self, WebhookKind};

/// How long a close frame may take to write: a client that fell behind gets this long
/// to read what is already in flight and see why it is being closed.
pub(crate) const CLOSE_WRITE_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for the client's answering close frame, or a ping to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Drives an accepted connection until it closes, then unregisters it.
///
/// An `async move` block rather than an `async fn`: an `async fn` keeps its arguments
/// twice in its future (as captured and as moved into locals), and this future is most
/// of what an idle connection costs.
///
/// `slot` and `guard` are held until it ends (its place under `max_connections`, and
/// the server's wait for its sockets).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
pub(crate) fn run(
    mut socket: Socket,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    endpoint: Arc<EndpointConfig>,
    slot: Slot,
    guard: TaskTrackerToken,
) -> impl Future<Output = ()> + Send {
    // Every variable the block uses is captured and used in place: rebinding one (or
    // awaiting a future held in one) would copy it into the future a second time.
    async move {
        let _ = (&slot, &guard);
        // Emitted from a call: an event held in a local would be kept in the future.
        emit_connected(&shared, &conn);

        let cfg = &shared.config.server;
        // Both are at most a day (config), so `Instant` arithmetic cannot overflow.
        let idle = Duration::from_secs(cfg.idle_timeout_s.0);
        let mut ping = tokio::time::interval(Duration::from_secs(cfg.ping_interval_s.0));
        ping.reset();
        let mut last_seen = Instant::now();
        // Webhooks: messages wait here for one worker that posts them in order (a client
        // faster than the backend fills the queue and loses messages, said), then the
        // disconnect, after the last message.
        let (hook, mut bye) = if endpoint.webhook.is_some() || endpoint.webhook_disconnect.is_some()
        {
            let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
            let (bye_tx, bye_rx) = tokio::sync::oneshot::channel();
            shared.sockets.spawn(post_hooks(
                shared.clone(),
                conn.clone(),
                endpoint.clone(),
                rx,
                bye_rx,
            ));
            (endpoint.webhook.is_some().then_some(tx), Some(bye_tx))
        } else {
            (None, None)
        };

        let closed = || {
            conn.close_reason()
                .unwrap_or(Close::new(CloseCode::Normal, ""))
        };
        let close: Close = loop {
            // What to write next: what the server queued, or the reply to what the client
            // just sent (an echo goes straight out, without the queue, when nothing waits).
            let out = tokio::select! {
                biased;
                out = conn.next_out() => match out {
                    Some(out) => out,
                    // Asked to close (a kick, a slow client, the server stopping).
                    None => break closed(),
                },
                frame = socket.next() => {
                    last_seen = Instant::now();
                    match frame {
                        None => break Close::new(CloseCode::Abnormal, "connection dropped"),
                        Some(Err(e)) => break read_error(e, cfg.max_message_bytes.0, &shared),
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.to_string()))
                                .unwrap_or((CloseCode::NoStatus.code(), String::new()));
                            // tungstenite queued the reply when it read the client's close; only
                            // a flush writes it (a second close would be refused unsent), and
                            // leaving first ends the TCP connection without the closing handshake.
                            let _ = timeout(CLOSE_GRACE, socket.flush()).await;
                            finish(&shared, &conn, code, &reason, true);
                            if let Some(b) = bye.take() {
                                let _ = b.send((code, reason));
                            }
                            return;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                        Some(Ok(msg)) => match handle_message(&shared, &conn, msg, &endpoint, hook.as_ref()) {
                            Some(reply) => reply,
                            None => continue,
                        },
                    }
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() >= idle {
                        shared.hub.stats.drop_client(DropReason::IdleTimeout);
                        break Close::new(
                            CloseCode::Policy,
                            format!("no traffic for {}s (idle_timeout_s)", idle.as_secs()),
                        );
                    }
                    let _ = timeout(CLOSE_GRACE, socket.send(Message::Ping(Default::default()))).await;
                    continue;
                }
            };
            // Everything already queued goes out in one flush (one write syscall for a burst,
            // not one per message). A write that cannot finish at once is watched for a
            // close request and a stall: a client that stopped reading (its TCP window
            // closed) blocks it, and is dropped once it has made no progress for
            // idle_timeout_s. One that can (nearly all) arms no timer.
            let write = write_burst(&mut socket, out, &conn);
            tokio::pin!(write);
            let sent = match futures_util::poll!(&mut write) {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => tokio::select! {
                    biased;
                    r = &mut write => r,
                    _ = conn.closing() => break closed(),
                    _ = tokio::time::sleep(idle) => {
                        shared.hub.stats.drop_client(DropReason::WriteStalled);
                        break Close::new(
                            CloseCode::Policy,
                            format!("not reading: a write stalled for {}s (idle_timeout_s)", idle.as_secs()),
                        );
                    }
                },
            };
            let Some((n, bytes)) = sent else {
                break Close::new(CloseCode::Abnormal, "write failed");
            };
            conn.counters.msgs_out.fetch_add(n, Ordering::Relaxed);
            conn.counters.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            shared.hub.stats.messages_out.add(n);
            shared.hub.stats.bytes_out.add(bytes);
        };

        if close.code != CloseCode::Abnormal.code() {
            send_close(&mut socket, close.code, &close.reason).await;
        }
        finish(&shared, &conn, close.code, &close.reason, false);
        if let Some(b) = bye.take() {
            let _ = b.send((close.code, close.reason));
        }
    }
}

fn emit_connected(shared: &Shared, conn: &Conn) {
    let mut connected = conn.event(EventKind::Connected);
    connected.channel = conn.meta.channels.first().cloned();
    shared.events.emit(connected);
}

/// `fut`, given at most `limit` — the timer armed only if it does not finish at once, as
/// nearly every write on a healthy socket does (arming one per message is a clock read
/// and a timer registration each).
pub(crate) async fn within<F: Future>(
    limit: Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    if let std::task::Poll::Ready(out) = futures_util::poll!(&mut fut) {
        return Ok(out);
    }
    timeout(limit, fut).await
}

/// Most frames written per flush.
const BURST: usize = 64;

/// Feeds `first` and whatever else is queued (up to [`BURST`]), then flushes once.
/// Returns the messages and payload bytes written, or `None` if the socket failed.
async fn write_burst(socket: &mut Socket, first: Message, conn: &Conn) -> Option<(u64, u64)> {
    let (mut n, mut bytes) = (1, payload_len(&first));
    socket.feed(first).await.ok()?;
    while (n as usize) < BURST {
        let Some(next) = conn.try_next_out() else {
            break;
        };
        bytes += payload_len(&next);
        n += 1;
        socket.feed(next).await.ok()?;
    }
    socket.flush().await.ok()?;
    Some((n, bytes))
}

/// Sends a close frame, then waits briefly for the client's answer.
pub(crate) async fn send_close(socket: &mut Socket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: code.into(),
        reason: truncate_reason(reason).into(),
    };
    if timeout(CLOSE_WRITE_GRACE, socket.send(Message::Close(Some(frame))))
        .await
        .is_ok_and(|r| r.is_ok())
    {
        let _ = timeout(CLOSE_GRACE, async {
            while let Some(Ok(m)) = socket.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A close reason fits in 123 bytes (RFC 6455 §5.5); cut on a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_string();
    }
    let mut end = 120;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

pub(crate) fn read_error(e: tungstenite::Error, max: u64, shared: &Shared) -> Close {
    if let tungstenite::Error::Capacity(cap) = &e {
        shared.hub.stats.drop_client(DropReason::MessageTooBig);
        let size = match cap {
            tungstenite::error::CapacityError::MessageTooLong { size, .. } => *size as u64,
            _ => max + 1,
        };
        return Close::new(
            CloseCode::TooBig,
            format!(
                "message {} > max_message_bytes {}",
                human_bytes(size),
                human_bytes(max)
            ),
        );
    }
    match &e {
        tungstenite::Error::Utf8(_) => {
            return Close::new(CloseCode::InvalidPayload, "text message is not valid UTF-8");
        }
        // The peer is gone: no close frame can reach it.
        tungstenite::Error::Io(_)
        | tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => {
            return Close::new(CloseCode::Abnormal, "connection dropped");
        }
        _ => {}
    }
    Close::new(CloseCode::ProtocolError, format!("protocol error: {e}"))
}

/// `1 MiB`, `1.5 MiB`, `300 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

pub(crate) fn payload_len(m: &Message) -> u64 {
    match m {
        Message::Text(t) => t.len() as u64,
        Message::Binary(b) => b.len() as u64,
        _ => 0,
    }
}

/// Counts and records a client's message and does what the endpoint says with it;
/// returns the echo to write back at once, if any.
fn handle_message(
    shared: &Shared,
    conn: &Arc<Conn>,
    msg: Message,
    endpoint: &EndpointConfig,
    hook: Option<&mpsc::Sender<Message>>,
) -> Option<Message> {
    let len = payload_len(&msg);
    conn.counters.msgs_in.fetch_add(1, Ordering::Relaxed);
    conn.counters.bytes_in.fetch_add(len, Ordering::Relaxed);
    shared.hub.stats.messages_in.add(1);
    shared.hub.stats.bytes_in.add(len);

    let text = match &msg {
        Message::Text(t) => Some(t.as_str()),
        _ => None,
    };
    let mut ev = conn.event(EventKind::MessageIn);
    ev.bytes = Some(len);
    let preview_text = Some(preview(text, len as usize));
    ev.preview = preview_text.clone();
    shared.events.emit(ev);

    let (reply, delivered, channel) = match endpoint.on_message {
        OnMessage::Drop => return None,
        OnMessage::Webhook => {
            if let Some(Err(_)) = hook.map(|h| h.try_send(msg)) {
                let mut e = conn.event(EventKind::WebhookFailed);
                e.reason = Some(format!(
                    "{WEBHOOK_QUEUE} messages already wait for the webhook: this one is dropped"
                ));
                shared.events.emit(e);
            }
            return None;
        }
        // Straight back when nothing waits; else behind what was queued before it.
        OnMessage::Echo if conn.nothing_queued() => (Some(msg), 1, None),
        OnMessage::Echo => (None, u64::from(shared.hub.send_to(conn, msg)), None),
        OnMessage::Broadcast => {
            let channel = conn.meta.channels.first().cloned()?;
            let except = (!endpoint.echo_self).then_some(conn.id);
            let target = Target::Channel(channel.clone());
            // Members on the other instances too (text: the broker carries text).
            if let (Some(broker), Message::Text(t)) = (&shared.broker, &msg) {
                broker.forward(&target, t.as_str());
            }
            let n = shared.hub.deliver(&target, msg, except);
            (None, n, Some(channel))
        }
    };
    let mut out = conn.event(EventKind::MessageOut);
    out.channel = channel;
    out.bytes = Some(len);
    out.preview = preview_text;
    out.delivered = Some(delivered);
    shared.events.emit(out);
    reply
}

/// Messages a connection may have waiting for its webhook.
const WEBHOOK_QUEUE: usize = 64;

/// Posts a connection's messages to its webhook, one at a time, in order (a reply body
/// goes back to the sender), then — once the connection is gone and its last message
/// posted — its disconnect. Stops with the server: a stopping server tells no backend.
async fn post_hooks(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    endpoint: Arc<EndpointConfig>,
    mut rx: mpsc::Receiver<Message>,
    bye: tokio::sync::oneshot::Receiver<(u16, String)>,
) {
    let stop = shared.stop.clone();
    let id = conn.wire_id();
    if let Some(url) = &endpoint.webhook {
        loop {
            let msg = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = stop.cancelled() => return,
            };
            let mut more = serde_json::Map::new();
            match msg {
                Message::Text(t) => {
                    more.insert("message".into(), t.as_str().into());
                }
                Message::Binary(b) => {
                    use base64::Engine;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(&b);
                    more.insert("message".into(), b64.into());
                    more.insert("binary".into(), true.into());
                }
                _ => continue,
            }
            let body = webhook::about_with(conn.id, &conn.meta, "message", more);
            let outcome = tokio::select! {
                o = shared.webhooks.post(WebhookKind::Message, url, &id, body) => o,
                _ = stop.cancelled() => return,
            };
            shared.webhook_reply(&conn, &outcome);
        }
    }
    let Some(url) = &endpoint.webhook_disconnect else {
        return;
    };
    let (code, reason) = tokio::select! {
        b = bye => match b {
            Ok(b) => b,
            Err(_) => return,
        },
        _ = stop.cancelled() => return,
    };
    let mut more = serde_json::Map::new();
    more.insert("code".into(), code.into());
    more.insert("reason".into(), reason.into());
    let body = webhook::about_with(conn.id, &conn.meta, "disconnect", more);
    let outcome = tokio::select! {
        o = shared.webhooks.post(WebhookKind::Disconnect, url, &id, body) => o,
        _ = stop.cancelled() => return,
    };
    if !outcome.delivery.ok {
        shared.events.emit(webhook::failed_event(&outcome.delivery));
    }
}

pub(crate) fn finish(shared: &Shared, conn: &Conn, code: u16, reason: &str, by_client: bool) {
    shared.hub.unregister(conn);
    let mut e = conn.event(EventKind::Disconnected);
    e.code = Some(code);
    e.reason = Some(if reason.is_empty() && by_client {
        "closed by client".to_string()
    } else {
        reason.to_string()
    });
    shared.events.emit(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(2 << 20), "2 MiB");
        assert_eq!(human_bytes(1 << 20), "1 MiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(human_bytes(12), "12 B");
    }

    #[test]
    fn reasons_fit_a_close_frame() {
        let long = "é".repeat(100);
        let t = truncate_reason(&long);
        assert!(t.len() <= 123);
        assert_eq!(truncate_reason("short"), "short");
    }
}

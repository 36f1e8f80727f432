//! The live events WebSocket the UI reads: a `hello` with the ring and the stats, then
//! event batches as they happen and the stats every 250 ms.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use tokio::time::Instant;
use tungstenite::{Message, Utf8Bytes};

use super::ApiError;
use crate::close::CloseCode;
use crate::connection::{CLOSE_WRITE_GRACE, send_close};
use crate::events::Feed;
use crate::origin::{check_origin, is_same_origin};
use crate::socket::{Socket, Upgrade, socket_config};
use crate::state::Shared;
use crate::stats::StatsSnapshot;

pub(super) async fn handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: Upgrade,
) -> Result<Response, ApiError> {
    // The API key already passed; still refuse foreign pages (a cookie rides along).
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !is_same_origin(origin, host)
        && let Err(reason) = check_origin(&shared.config.server.allowed_origins, origin)
    {
        return Err(ApiError::Forbidden(reason.to_string()));
    }
    let guard = shared.sockets.token();
    // The UI sends nothing but closes.
    Ok(
        ws.on_upgrade(socket_config(64 << 10), move |socket| async move {
            stream_events(socket, shared).await;
            drop(guard);
        }),
    )
}

/// How long the last frame may take to write when the server stops.
const CLOSE_GRACE_UI: Duration = Duration::from_secs(1);

/// Least time between two event frames: under a flood the UI gets a frame this often
/// (every event since the last, up to the feed's room) instead of one per event, so
/// neither this task nor the browser wakes per event; a lone event still goes out at once.
const EVENT_FRAME_GAP: Duration = Duration::from_millis(50);

/// How an `events` frame starts; the feed gathers each batch behind it, so the frame
/// is sent as gathered.
const EVENTS_OPEN: &str = "{\"type\":\"events\",\"events\":[";

/// `{"type":"hello"}` with the ring and stats, then `{"type":"events"}` batches as they
/// happen and `{"type":"stats"}` every 250 ms, until the client or the server stops.
/// Every write watches the stop signal and has a deadline: a UI tab that stopped
/// reading can neither stall shutdown nor hold this task.
async fn stream_events(mut socket: Socket, shared: Arc<Shared>) {
    let (recent, feed) = shared.events.subscribe(EVENTS_OPEN);
    let mut stats_rx = shared.stats.clone();
    let jsons: Vec<&str> = recent.iter().map(|l| l.json.as_str()).collect();
    // Frames to send, oldest first (shared bytes: a retry does not copy a frame).
    let mut pending: Vec<Utf8Bytes> =
        vec![hello_frame(&jsons, &stats_rx.borrow_and_update()).into()];
    drop(jsons);
    drop(recent);
    let mut last_frame = Instant::now();
    'stream: loop {
        while let Some(frame) = pending.first().cloned() {
            let sent = tokio::select! {
                biased;
                _ = shared.stop.cancelled() => break 'stream,
                r = tokio::time::timeout(CLOSE_WRITE_GRACE, socket.send(Message::Text(frame))) => {
                    matches!(r, Ok(Ok(())))
                }
            };
            if !sent {
                return;
            }
            pending.remove(0);
        }
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            () = feed.ready() => {
                let mut stopping = false;
                if let Some(wait) = (last_frame + EVENT_FRAME_GAP).checked_duration_since(Instant::now()) {
                    tokio::select! {
                        biased;
                        _ = shared.stop.cancelled() => stopping = true,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                last_frame = Instant::now();
                take_events(&feed, &mut pending);
                if stopping {
                    break;
                }
            },
            // The sampler stops only with the server.
            r = stats_rx.changed() => match r {
                Ok(()) => {
                    let snap = stats_rx.borrow_and_update().clone();
                    pending.push(format!(
                        "{{\"type\":\"stats\",\"stats\":{}}}",
                        serde_json::to_string(&*snap).unwrap_or_default()
                    ).into());
                }
                Err(_) => break,
            },
            msg = socket.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    // What happened up to the stop still goes out: what was waiting, then the rest, in
    // one bounded last attempt.
    take_events(&feed, &mut pending);
    let _ = tokio::time::timeout(CLOSE_GRACE_UI, async {
        for frame in pending {
            if socket.send(Message::Text(frame)).await.is_err() {
                break;
            }
        }
    })
    .await;
    send_close(&mut socket, CloseCode::GoingAway.code(), "server stopping").await;
}

/// Queues what the feed gathered as an `events` frame, then a `lagged` frame if events
/// did not fit (they came after the batch).
fn take_events(feed: &Feed, pending: &mut Vec<Utf8Bytes>) {
    let (missed, batch) = feed.take();
    if let Some(mut frame) = batch {
        frame.push_str("]}");
        pending.push(frame.into());
    }
    if missed > 0 {
        pending.push(format!("{{\"type\":\"lagged\",\"missed\":{missed}}}").into());
    }
}

/// The `hello` frame of [`crate::wire::EventsFrame`], from events already serialised.
fn hello_frame(events: &[&str], stats: &StatsSnapshot) -> String {
    format!(
        "{{\"type\":\"hello\",\"events\":[{}],\"stats\":{}}}",
        join_json(events.iter().copied()),
        serde_json::to_string(stats).unwrap_or_default()
    )
}

fn join_json<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventKind};
    use crate::wire::EventsFrame;

    #[test]
    fn hand_joined_frames_match_the_type() {
        let mut e = Event::new(EventKind::Connected);
        e.conn = Some("c1".into());
        let json = serde_json::to_string(&e).unwrap();
        let stats = StatsSnapshot::default();
        let joined = hello_frame(&[json.as_str()], &stats);
        let typed = serde_json::to_string(&EventsFrame::Hello {
            events: vec![e],
            stats,
        })
        .unwrap();
        assert_eq!(joined, typed);
    }

    #[test]
    fn gathered_frames_match_the_type() {
        let log = crate::events::EventLog::new(10, None, &tokio_util::task::TaskTracker::new());
        let (_, feed) = log.subscribe(EVENTS_OPEN);
        let mut events = Vec::new();
        for (seq, kind) in [(1, EventKind::Connected), (2, EventKind::MessageIn)] {
            let mut e = Event::new(kind);
            e.conn = Some("c1".into());
            log.emit(e.clone());
            e.seq = seq;
            events.push(e);
        }
        let mut pending = Vec::new();
        take_events(&feed, &mut pending);
        let typed = serde_json::to_string(&EventsFrame::Events { events }).unwrap();
        assert_eq!(pending, [Utf8Bytes::from(typed)]);
    }
}

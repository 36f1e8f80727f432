//! WebSockets relayed to the upstream (`[proxy] websockets = true`): an upgrade on a
//! path no endpoint names is opened against the upstream (daphne, uvicorn…) with the
//! browser's headers, and, once the upstream accepts, frames flow both ways with close
//! codes passed through. The connection is a hub member (endpoint `upstream`), so it is
//! listed, counted, logged and kickable like any other.
//!
//! When the upstream refuses (HTTP 403 for an expired token under daphne, 404, 500, or
//! nothing listening), the browser would only see 1006. Sockpit accepts the browser's
//! handshake instead and closes with a 4xxx code and a reason saying what happened.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::coding::CloseCode as WireCode;

use super::http::{add_forwarded, strip_hop_by_hop};
use crate::api::ApiError;
use crate::close::{CloseCode, DropReason};
use crate::connection::{self, finish, payload_len, truncate_reason};
use crate::events::{EventKind, clip, preview};
use crate::handshake::{self, Attempt};
use crate::hub::{Close, Conn, ConnMeta, Slot};
use crate::origin::check_origin;
use crate::proxy::{CONNECT_TIMEOUT, Proxy, READY_WAIT};
use crate::socket::{Socket, Upgrade, WRITE_BUFFER, socket_config};
use crate::state::Shared;

/// The endpoint name proxied sockets are listed under.
pub const UPSTREAM_ENDPOINT: &str = "upstream";
/// How long the upstream has to answer the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Upstream = WebSocketStream<TcpStream>;

/// Why the upstream did not take the socket.
struct Refusal {
    code: CloseCode,
    reason: String,
    /// For `reject = "http"`: the upstream's own status, or 502.
    status: StatusCode,
}

/// Relays an upgrade on a path no endpoint names to the upstream.
pub(crate) async fn relay(
    shared: Arc<Shared>,
    proxy: Arc<Proxy>,
    remote: SocketAddr,
    mut parts: Parts,
) -> Response {
    let mut ws = match Upgrade::from_parts(&mut parts) {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let sent_origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let attempt = Attempt {
        path: handshake::shown_path(&parts.uri, &shared.config.auth.token_sources),
        endpoint: Some(UPSTREAM_ENDPOINT.into()),
        remote,
        origin: sent_origin.map(clip),
    };
    // A browser that offered subprotocols and gets none back reports 1006, hiding the
    // close reason: a refusal echoes the first one.
    let offered = ws
        .requested_protocols()
        .next()
        .and_then(|p| p.to_str().ok())
        .and_then(|p| p.parse::<HeaderValue>().ok());
    let refuse = |mut ws: Upgrade, r: Refusal| {
        if let Some(p) = offered.clone() {
            ws.set_selected_protocol(p);
        }
        let status = r.status;
        handshake::refuse(&shared, ws, attempt.clone(), r.code, r.reason, |reason| {
            ApiError::Handshake(status, reason).into_response()
        })
    };

    if let Err(e) = check_origin(&shared.config.server.allowed_origins, sent_origin) {
        return refuse(
            ws,
            Refusal {
                code: CloseCode::Forbidden,
                reason: clip(&e.to_string()),
                status: StatusCode::FORBIDDEN,
            },
        );
    }
    let Some(slot) = shared.hub.try_admit() else {
        let max = shared.config.server.max_connections.0;
        return refuse(
            ws,
            Refusal {
                code: CloseCode::TooManyConnections,
                reason: format!("max_connections {max} reached"),
                status: StatusCode::SERVICE_UNAVAILABLE,
            },
        );
    };
    proxy.count_request();
    proxy.ready(READY_WAIT).await;
    let upstream = match open_upstream(&shared, &proxy, &parts, remote).await {
        Ok(u) => u,
        Err(r) => {
            proxy.record_error(&format!("WS {}: {}", attempt.path, r.reason));
            return refuse(ws, r);
        }
    };
    let (upstream, protocol) = upstream;
    if let Some(p) = protocol {
        ws.set_selected_protocol(p);
    }
    shared.hub.stats.handshake(None);
    let cfg = &shared.config.server;
    let guard = shared.sockets.token();
    let s = shared.clone();
    let path = parts.uri.path().to_string();
    ws.on_upgrade(
        socket_config(cfg.max_message_bytes.get()),
        move |socket| async move {
            let conn = s.hub.register(ConnMeta {
                endpoint: UPSTREAM_ENDPOINT.into(),
                path,
                channels: Vec::new(),
                params: Default::default(),
                user: None,
                remote,
                origin: attempt.origin,
            });
            pump(&s, socket, upstream, &conn, slot).await;
            drop(guard);
        },
    )
}

/// Opens the same WebSocket on the upstream, with the browser's headers (cookies,
/// Origin, Authorization, subprotocols) and its Host.
async fn open_upstream(
    shared: &Shared,
    proxy: &Proxy,
    parts: &Parts,
    remote: SocketAddr,
) -> Result<(Upstream, Option<HeaderValue>), Refusal> {
    let up = &proxy.upstream;
    let unreachable = |why: String| Refusal {
        code: CloseCode::UpstreamFailed,
        reason: format!("upstream unreachable: {why}"),
        status: StatusCode::BAD_GATEWAY,
    };
    let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(up.authority())).await {
        Err(_) => return Err(unreachable(format!("connecting to {up} timed out"))),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            let who = match &proxy.process {
                Some(p) => format!("Sockpit's command: {}", p.status().detail),
                None => "is it running?".into(),
            };
            return Err(unreachable(format!("nothing listens on {up} ({who})")));
        }
        Ok(Err(e)) => return Err(unreachable(format!("{up}: {e}"))),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = tungstenite::handshake::client::Request::builder()
        .uri(format!("ws://{}{path}", up.authority()))
        .body(())
        .map_err(|e| unreachable(format!("cannot build the request: {e}")))?;
    let headers = req.headers_mut();
    *headers = parts.headers.clone();
    strip_hop_by_hop(headers);
    // The handshake is ours to make; no extension is negotiated (frames are relayed
    // one by one, not recompressed).
    for name in [
        header::HOST,
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_EXTENSIONS,
    ] {
        headers.remove(name);
    }
    let host = parts.headers.get(header::HOST).cloned();
    headers.insert(
        header::HOST,
        host.clone()
            .or_else(|| up.authority().parse().ok())
            .unwrap_or(HeaderValue::from_static("localhost")),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    if let Ok(key) = tungstenite::handshake::client::generate_key().parse() {
        headers.insert(header::SEC_WEBSOCKET_KEY, key);
    }
    add_forwarded(headers, remote, host.as_ref());

    let max = shared.config.server.max_message_bytes.get();
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // A plain TCP stream (no `LeanIo`): a buffer that reads a large message in few
        // calls; relayed sockets are few.
        .read_buffer_size(8 << 10)
        .write_buffer_size(WRITE_BUFFER);
    let handshake = tokio_tungstenite::client_async_with_config(req, stream, Some(config));
    match timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Err(_) => Err(unreachable(format!(
            "{up} did not answer the handshake within {}s",
            HANDSHAKE_TIMEOUT.as_secs()
        ))),
        Ok(Ok((socket, resp))) => Ok((
            socket,
            resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).cloned(),
        )),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(refused(&resp, parts.uri.path())),
        Ok(Err(e)) => Err(Refusal {
            code: CloseCode::UpstreamFailed,
            reason: clip(&format!("upstream handshake failed: {e}")),
            status: StatusCode::BAD_GATEWAY,
        }),
    }
}

/// The close for an upstream that answered the upgrade with a plain HTTP response.
fn refused(resp: &tungstenite::http::Response<Option<Vec<u8>>>, path: &str) -> Refusal {
    let status = resp.status();
    let server = resp
        .headers()
        .get(header::SERVER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body = resp.body().as_deref().map(first_line).unwrap_or_default();
    let body = if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    };
    let n = status.as_u16();
    // Django's runserver (and any WSGI server) cannot hold a WebSocket at all.
    let wsgi = server.starts_with("WSGIServer");
    let (code, hint) = match n {
        _ if wsgi => (
            CloseCode::UpstreamFailed,
            format!(
                "it is WSGI ({server}) and serves no WebSockets: run daphne or uvicorn, or make {path} a Sockpit endpoint"
            ),
        ),
        401 => (CloseCode::Unauthorized, "token missing or invalid?".into()),
        403 => (
            CloseCode::Forbidden,
            "token expired or invalid? Origin not allowed?".into(),
        ),
        404 => (
            CloseCode::NoEndpoint,
            format!("no route for {path} in routing.py?"),
        ),
        // Daphne answers a path its URLRouter lacks with a bare 500.
        500..=599 => (
            CloseCode::UpstreamFailed,
            format!("no route for {path} in routing.py, or the consumer raised? see Logs"),
        ),
        _ => (
            CloseCode::UpstreamFailed,
            "it did not switch protocols".into(),
        ),
    };
    Refusal {
        code,
        reason: clip(&format!("upstream refused: HTTP {n} ({hint}){body}")),
        status: if status.is_client_error() || status.is_server_error() {
            status
        } else {
            StatusCode::BAD_GATEWAY
        },
    }
}

/// The first readable line of a response body: an HTML page's `<title>`, else its
/// first non-empty line, at most 80 characters.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let lower = text.to_ascii_lowercase();
    let line = match (lower.find("<title>"), lower.find("</title>")) {
        (Some(a), Some(b)) if a + 7 <= b => text[a + 7..b].trim().to_string(),
        _ => text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string(),
    };
    let line: String = line.chars().filter(|c| !c.is_control()).collect();
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// How a relayed connection ended, seen from the browser's side.
enum End {
    /// Close the browser with this (and the upstream with 1001).
    Close(Close),
    /// The browser sent a close: it goes to the upstream, and the browser gets its reply.
    ByBrowser { code: u16, reason: String },
    /// The upstream sent a close: it goes to the browser.
    ByUpstream { code: u16, reason: String },
    /// The browser is gone; the upstream is told.
    BrowserGone,
}

/// Moves frames both ways until one side closes, the connection is kicked, or the
/// server stops. Each direction runs on its own, so a side that stops reading stalls
/// only what is sent to it (nothing is queued without bound), and a write stalled for
/// `idle_timeout_s` ends the connection (drop reason `write_stalled`). The browser is
/// pinged and closed when idle, as on an endpoint.
async fn pump(
    shared: &Arc<Shared>,
    browser: Socket,
    upstream: Upstream,
    conn: &Arc<Conn>,
    _slot: Slot,
) {
    // Every relayed socket is endpoint `upstream`: the path tells them apart.
    let mut connected = conn.event(EventKind::Connected);
    connected.path = Some(conn.meta.path.clone());
    shared.events.emit(connected);

    let cfg = &shared.config.server;
    let idle = Duration::from_secs(cfg.idle_timeout_s.0);
    let started = Instant::now();
    // Milliseconds since `started` of the browser's last frame.
    let last_seen = AtomicU64::new(0);
    let (mut b_tx, mut b_rx) = browser.split();
    let (mut u_tx, mut u_rx) = upstream.split();
    let stalled = || {
        shared.hub.stats.drop_client(DropReason::WriteStalled);
        Close::new(
            CloseCode::Policy,
            format!(
                "not reading: a write stalled for {}s (idle_timeout_s)",
                idle.as_secs()
            ),
        )
    };

    let browser_to_upstream = async {
        loop {
            let frame = b_rx.next().await;
            last_seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            match frame {
                None => return End::BrowserGone,
                Some(Err(e)) => {
                    return match connection::read_error(e, cfg.max_message_bytes.0, shared) {
                        c if c.code == CloseCode::Abnormal.code() => End::BrowserGone,
                        c => End::Close(c),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map_or((CloseCode::NoStatus.code(), String::new()), |f| {
                            (u16::from(f.code), f.reason.to_string())
                        });
                    return End::ByBrowser { code, reason };
                }
                Some(Ok(msg)) => {
                    // Pings and closes are each side's own business.
                    let Some(out) = data(msg) else {
                        continue;
                    };
                    count(shared, conn, &out, EventKind::MessageIn);
                    match connection::within(idle, u_tx.send(out)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => {
                            return End::Close(Close::new(
                                CloseCode::UpstreamFailed,
                                "upstream connection dropped",
                            ));
                        }
                        Err(_) => {
                            return End::Close(Close::new(
                                CloseCode::UpstreamFailed,
                                "the upstream stopped taking messages",
                            ));
                        }
                    }
                }
            }
        }
    };

    let upstream_to_browser = async {
        let mut ping = tokio::time::interval(Duration::from_secs(cfg.ping_interval_s.0));
        ping.reset();
        loop {
            let out = tokio::select! {
                frame = u_rx.next() => match frame {
                    Some(Err(tungstenite::Error::Capacity(_))) => {
                        shared.hub.stats.drop_client(DropReason::MessageTooBig);
                        return End::Close(Close::new(
                            CloseCode::TooBig,
                            "the upstream sent a message over max_message_bytes",
                        ));
                    }
                    None | Some(Err(_)) => {
                        return End::Close(Close::new(CloseCode::UpstreamFailed, "upstream connection dropped"));
                    }
                    Some(Ok(tungstenite::Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((CloseCode::NoStatus.code(), String::new()), |f| {
                            (u16::from(f.code), f.reason.to_string())
                        });
                        return End::ByUpstream { code, reason };
                    }
                    Some(Ok(msg)) => {
                        let Some(msg) = data(msg) else { continue };
                        count(shared, conn, &msg, EventKind::MessageOut);
                        msg
                    }
                },
                // A publish aimed at this connection's id.
                queued = conn.next_out() => match queued {
                    Some(msg) => msg,
                    None => return End::Close(conn.close_reason().unwrap_or(Close::new(CloseCode::Normal, ""))),
                },
                _ = ping.tick() => {
                    let quiet = started.elapsed().saturating_sub(Duration::from_millis(last_seen.load(Ordering::Relaxed)));
                    if quiet >= idle {
                        shared.hub.stats.drop_client(DropReason::IdleTimeout);
                        return End::Close(Close::new(
                            CloseCode::Policy,
                            format!("no traffic for {}s (idle_timeout_s)", idle.as_secs()),
                        ));
                    }
                    Message::Ping(Default::default())
                }
            };
            if !matches!(connection::within(idle, b_tx.send(out)).await, Ok(Ok(()))) {
                return End::Close(stalled());
            }
        }
    };

    let end = tokio::select! {
        biased;
        _ = shared.stop.cancelled() => End::Close(Close::new(CloseCode::GoingAway, "server stopping")),
        _ = conn.closing() => End::Close(conn.close_reason().unwrap_or(Close::new(CloseCode::Normal, ""))),
        end = browser_to_upstream => end,
        end = upstream_to_browser => end,
    };

    let grace = Duration::from_secs(1);
    let (code, reason, by_client) = match end {
        End::Close(close) => {
            let _ = timeout(
                grace,
                u_tx.send(tungstenite::Message::Close(Some(wire_close(
                    CloseCode::GoingAway.code(),
                    &close.reason,
                )))),
            )
            .await;
            if close.code != CloseCode::Abnormal.code() {
                let mut browser = b_tx.reunite(b_rx).expect("halves of one socket");
                connection::send_close(&mut browser, close.code, &close.reason).await;
            }
            (close.code, close.reason, false)
        }
        End::ByBrowser { code, reason } => {
            let _ = timeout(
                grace,
                u_tx.send(tungstenite::Message::Close(
                    sendable(code).map(|c| wire_close(c, &reason)),
                )),
            )
            .await;
            // tungstenite queued the browser's close reply; only a flush writes it.
            let _ = timeout(grace, b_tx.flush()).await;
            (code, reason, true)
        }
        End::ByUpstream { code, reason } => {
            let _ = timeout(grace, u_tx.flush()).await;
            let mut browser = b_tx.reunite(b_rx).expect("halves of one socket");
            let sent = sendable(code).unwrap_or(CloseCode::Normal.code());
            connection::send_close(&mut browser, sent, &reason).await;
            let reason = if reason.is_empty() {
                "closed by upstream".into()
            } else {
                reason
            };
            (code, reason, false)
        }
        End::BrowserGone => {
            let _ = timeout(
                grace,
                u_tx.send(tungstenite::Message::Close(Some(wire_close(
                    CloseCode::GoingAway.code(),
                    "browser went away",
                )))),
            )
            .await;
            (
                CloseCode::Abnormal.code(),
                "connection dropped".to_string(),
                true,
            )
        }
    };
    finish(shared, conn, code, &reason, by_client);
}

/// Counts a frame and records it (`message_in`: browser → upstream; `message_out`:
/// upstream → browser).
fn count(shared: &Shared, conn: &Conn, msg: &Message, kind: EventKind) {
    let len = payload_len(msg);
    let (n, bytes, total_n, total_bytes) = if kind == EventKind::MessageIn {
        (
            &conn.counters.msgs_in,
            &conn.counters.bytes_in,
            &shared.hub.stats.messages_in,
            &shared.hub.stats.bytes_in,
        )
    } else {
        (
            &conn.counters.msgs_out,
            &conn.counters.bytes_out,
            &shared.hub.stats.messages_out,
            &shared.hub.stats.bytes_out,
        )
    };
    n.fetch_add(1, Ordering::Relaxed);
    bytes.fetch_add(len, Ordering::Relaxed);
    total_n.add(1);
    total_bytes.add(len);
    let text = match msg {
        Message::Text(t) => Some(t.as_str()),
        _ => None,
    };
    let mut e = conn.event(kind);
    e.bytes = Some(len);
    e.preview = Some(preview(text, len as usize));
    shared.events.emit(e);
}

/// A close code that may be sent in a frame (1005, 1006 and 1015 only describe).
fn sendable(code: u16) -> Option<u16> {
    (!matches!(code, 1005 | 1006 | 1015) && (1000..5000).contains(&code)).then_some(code)
}

fn wire_close(code: u16, reason: &str) -> tungstenite::protocol::CloseFrame {
    tungstenite::protocol::CloseFrame {
        code: WireCode::from(code),
        reason: truncate_reason(reason).into(),
    }
}

/// `msg` if it is a data frame (text or binary), the only frames relayed.
fn data(msg: Message) -> Option<Message> {
    matches!(msg, Message::Text(_) | Message::Binary(_)).then_some(msg)
}

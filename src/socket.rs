//! The WebSocket upgrade, done here rather than by axum's `WebSocketUpgrade`, so the
//! stream under tungstenite is ours: [`LeanIo`], which lets an idle connection hold
//! almost no read buffer without making large messages cost more reads.
//!
//! tungstenite keeps a read buffer of `read_buffer_size` per connection, zero-filled
//! (so resident) at the first read, and never reads more than that many bytes per call.
//! A large buffer costs every idle connection its size; a small one costs a large message
//! one syscall per buffer-full. [`LeanIo`] reads the socket into a per-thread scratch
//! buffer instead and keeps what tungstenite had no room for until it asks again: one
//! syscall per burst of frames whatever the buffer size, and memory only while bytes wait.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BytesMut};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

/// An accepted WebSocket.
pub type Socket = WebSocketStream<LeanIo<TokioIo<Upgraded>>>;

/// tungstenite's read buffer per connection. [`LeanIo`] makes a small one cheap: a 16 KiB
/// message is still read from the socket in one syscall, then handed over in pieces.
pub const READ_BUFFER: usize = 256;

/// Write buffer per WebSocket: frames are flushed once this much is pending.
pub const WRITE_BUFFER: usize = 8 << 10;

/// The settings of every accepted WebSocket: tungstenite's read buffer kept small (see
/// the module docs), messages capped at `max_message_bytes`.
pub fn socket_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// An upgrade request that passed the RFC 6455 checks, not yet answered.
#[derive(Debug)]
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    key: HeaderValue,
    offered: Vec<HeaderValue>,
    protocol: Option<HeaderValue>,
}

/// Why a request cannot be upgraded; the answer names the header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotUpgradable {
    /// Not a GET.
    #[error("a WebSocket handshake must be a GET request")]
    Method,
    /// No `Connection: upgrade`.
    #[error("`Connection` header did not include 'upgrade'")]
    Connection,
    /// No `Upgrade: websocket`.
    #[error("`Upgrade` header did not include 'websocket'")]
    UpgradeHeader,
    /// Not version 13.
    #[error("`Sec-WebSocket-Version` header did not include '13'")]
    Version,
    /// No key.
    #[error("`Sec-WebSocket-Key` header missing")]
    Key,
    /// The connection cannot switch protocols (not HTTP/1.1).
    #[error("WebSocket request couldn't be upgraded since no upgrade state was present")]
    NoUpgrade,
}

impl IntoResponse for NotUpgradable {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoUpgrade => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, self.to_string()).into_response()
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The subprotocols a client offers, in its order; blank ones (`, chat`) are none.
fn offered_protocols(headers: &HeaderMap) -> Vec<HeaderValue> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter_map(|p| HeaderValue::from_str(p).ok())
        .collect()
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Upgrade {
    type Rejection = NotUpgradable;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts)
    }
}

impl Upgrade {
    /// Checks `parts` and takes its upgrade.
    pub fn from_parts(parts: &mut Parts) -> Result<Self, NotUpgradable> {
        if parts.method != Method::GET {
            return Err(NotUpgradable::Method);
        }
        let h = &parts.headers;
        if !has_token(h, header::CONNECTION, "upgrade") {
            return Err(NotUpgradable::Connection);
        }
        if !has_token(h, header::UPGRADE, "websocket") {
            return Err(NotUpgradable::UpgradeHeader);
        }
        if h.get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(NotUpgradable::Version);
        }
        let key = h
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(NotUpgradable::Key)?;
        let offered = offered_protocols(h);
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(NotUpgradable::NoUpgrade)?;
        Ok(Self {
            on_upgrade,
            key,
            offered,
            protocol: None,
        })
    }

    /// The subprotocols the client offered, in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &HeaderValue> {
        self.offered.iter()
    }

    /// The subprotocol the answer names.
    pub fn set_selected_protocol(&mut self, protocol: HeaderValue) {
        self.protocol = Some(protocol);
    }

    /// Answers 101 and runs the future `callback` makes of the socket once the connection
    /// has switched, on a task of its own. A connection that fails to switch is dropped
    /// quietly (the client went away).
    pub fn on_upgrade<C, Fut>(self, config: WebSocketConfig, callback: C) -> Response
    where
        C: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        // Boxed, so the task keeps 8 bytes of it, not the whole closure, for the life of
        // the connection once it has been called.
        let callback = Box::new(callback);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let io = LeanIo::new(TokioIo::new(upgraded));
            let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            callback(socket).await;
        });
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = response.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = self.protocol {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        response
    }
}

/// Size of each worker thread's scratch buffer: the most one read syscall takes.
const SCRATCH: usize = 64 << 10;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// A stream whose reads go through a per-thread scratch buffer; what the reader had no
/// room for waits in `spill`, which is freed as soon as it is drained.
#[derive(Debug)]
pub struct LeanIo<T> {
    inner: T,
    spill: BytesMut,
}

impl<T> LeanIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            spill: BytesMut::new(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LeanIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.spill.is_empty() {
            let n = buf.remaining().min(this.spill.len());
            buf.put_slice(&this.spill[..n]);
            this.spill.advance(n);
            if this.spill.is_empty() {
                this.spill = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= SCRATCH {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        SCRATCH_BUF.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut read = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let got = read.filled();
            let n = buf.remaining().min(got.len());
            buf.put_slice(&got[..n]);
            if n < got.len() {
                this.spill = BytesMut::from(&got[n..]);
            }
            Poll::Ready(Ok(()))
        })
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LeanIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn blank_subprotocols_are_not_offered() {
        let mut h = HeaderMap::new();
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(", chat"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(" v2 ,"),
        );
        assert_eq!(offered_protocols(&h), ["chat", "v2"]);
    }

    #[tokio::test]
    async fn small_reads_take_one_burst_and_free_the_rest() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        a.write_all(&data).await.unwrap();
        drop(a);
        let mut lean = LeanIo::new(b);
        let mut back = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            let n = lean.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            // After the first read the rest waits in `spill`, not in the socket.
            back.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(back, data);
        assert_eq!(lean.spill.capacity(), 0, "a drained spill holds no memory");
    }
}

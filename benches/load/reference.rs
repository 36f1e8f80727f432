//! The bare reference server: what a developer would write with the same crates
//! (axum's WebSocket over tokio-tungstenite, jsonwebtoken, a tokio broadcast for
//! fan-out), tuned as the notes advise (8 KiB read buffer), and nothing else — no
//! events, no log, no stats beyond a connection count. It answers the routes the bench
//! drives with the same shapes as `sockpit serve`, so the same load runs against both.
//!
//! Started by the bench as its own process (`SOCKPIT_BENCH_REFERENCE=1`), so its CPU
//! and memory are read from /proc exactly like Sockpit's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::broadcast;

struct Ref {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    api_key: String,
    dashboard: broadcast::Sender<Utf8Bytes>,
    connections: AtomicU64,
}

/// Serves on an ephemeral loopback port until killed; prints the URL first, like
/// `sockpit serve`.
pub fn serve(secret: &str, api_key: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        let state = Arc::new(Ref {
            key: jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            validation,
            api_key: api_key.to_string(),
            dashboard: broadcast::channel(1024).0,
            connections: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/ws/echo/", any(echo))
            // What the bench relays through Sockpit's proxy.
            .route("/ws/relay/", any(echo))
            .route("/ws/dashboard/", any(dashboard))
            .route("/_sockpit/api/publish", post(publish))
            .route("/_sockpit/api/stats", get(stats))
            .with_state(state);
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

fn tuned(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(8 << 10)
        .write_buffer_size(0)
        .max_message_size(1 << 20)
        .max_frame_size(1 << 20)
}

async fn echo(ws: WebSocketUpgrade, State(s): State<Arc<Ref>>) -> Response {
    tuned(ws).on_upgrade(move |mut socket| async move {
        s.connections.fetch_add(1, Ordering::Relaxed);
        while let Some(Ok(m)) = socket.recv().await {
            let data = matches!(m, Message::Text(_) | Message::Binary(_));
            if matches!(m, Message::Close(_)) || (data && socket.send(m).await.is_err()) {
                break;
            }
        }
        s.connections.fetch_sub(1, Ordering::Relaxed);
    })
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: String,
}

async fn dashboard(
    ws: WebSocketUpgrade,
    Query(q): Query<TokenQuery>,
    State(s): State<Arc<Ref>>,
) -> Response {
    if jsonwebtoken::decode::<serde_json::Value>(&q.token, &s.key, &s.validation).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let rx = s.dashboard.subscribe();
    tuned(ws).on_upgrade(move |socket| subscriber(socket, rx, s))
}

async fn subscriber(mut socket: WebSocket, mut rx: broadcast::Receiver<Utf8Bytes>, s: Arc<Ref>) {
    s.connections.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(text) => if socket.send(Message::Text(text)).await.is_err() { break },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            },
        }
    }
    s.connections.fetch_sub(1, Ordering::Relaxed);
}

#[derive(serde::Deserialize)]
struct Publish {
    data: serde_json::Value,
}

async fn publish(
    State(s): State<Arc<Ref>>,
    headers: HeaderMap,
    axum::Json(p): axum::Json<Publish>,
) -> Response {
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k == s.api_key);
    if !authorised {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Serialised once; every subscriber shares the bytes.
    let text: Utf8Bytes = p.data.to_string().into();
    let delivered = s.dashboard.send(text).unwrap_or(0);
    axum::Json(serde_json::json!({ "delivered": delivered })).into_response()
}

async fn stats(State(s): State<Arc<Ref>>) -> Response {
    axum::Json(serde_json::json!({ "connections": s.connections.load(Ordering::Relaxed) }))
        .into_response()
}

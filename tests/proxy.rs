//! `[proxy]`: the real server in front of a real upstream (an axum app on 127.0.0.1:0,
//! or a real process started through `command`), driven by real HTTP and WebSocket
//! clients.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message as AxMessage, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Message;

/// An upstream app on a free port; returns its address.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/headers", get(echo_headers))
        .route(
            "/method",
            any(|m: axum::http::Method| async move { m.to_string() }),
        )
        .route(
            "/upload",
            post(|body: Bytes| async move { body.len().to_string() })
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/stream", get(stream))
        .route(
            "/redirect-abs",
            get(move || async move {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("http://{addr}/landing?x=1"))],
                )
            }),
        )
        .route(
            "/redirect-lookalike",
            get(move || async move {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("http://{addr}0/elsewhere"))],
                )
            }),
        )
        .route(
            "/redirect-rel",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/landing")]) }),
        )
        .route(
            "/cookies",
            get(|| async {
                let mut h = HeaderMap::new();
                h.append(header::SET_COOKIE, "a=1; Path=/".parse().unwrap());
                h.append(header::SET_COOKIE, "b=2; Path=/; HttpOnly".parse().unwrap());
                (h, "ok")
            }),
        )
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/ws/echo", get(ws_echo))
        .route(
            "/ws/forbidden",
            get(|| async { (StatusCode::FORBIDDEN, "Forbidden: token expired\n") }),
        )
        .route(
            "/ws/crash",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error") }),
        )
        .route(
            "/ws/wsgi",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    [(header::SERVER, "WSGIServer/0.2 CPython/3.11.2")],
                    "<html><head><title>Page not found at /ws/wsgi</title></head></html>",
                )
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn echo_headers(headers: HeaderMap) -> axum::Json<Value> {
    let h = |n: &str| {
        headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    axum::Json(json!({
        "host": h("host"),
        "xff": h("x-forwarded-for"),
        "proto": h("x-forwarded-proto"),
        "xhost": h("x-forwarded-host"),
        "cookie": h("cookie"),
        "connection": h("connection"),
        "x_custom": h("x-custom"),
    }))
}

/// Three chunks, 300 ms apart.
async fn stream() -> Response {
    let chunks = futures_util::stream::unfold(0, |i| async move {
        if i == 3 {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Some((
            Ok::<_, std::io::Error>(format!("data: tick {i}\n\n")),
            i + 1,
        ))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// Echoes frames; `close <code>` closes with that code; offers the subprotocol `chat`.
async fn ws_echo(ws: WebSocketUpgrade, headers: HeaderMap) -> Response {
    let first = json!({
        "host": headers.get("host").and_then(|v| v.to_str().ok()),
        "cookie": headers.get("cookie").and_then(|v| v.to_str().ok()),
        "origin": headers.get("origin").and_then(|v| v.to_str().ok()),
        "xff": headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    })
    .to_string();
    ws.protocols(["chat"])
        .on_upgrade(move |mut socket| async move {
            let _ = socket.send(AxMessage::Text(first.into())).await;
            while let Some(Ok(msg)) = socket.recv().await {
                match msg {
                    AxMessage::Text(t) if t.starts_with("close ") => {
                        let code = t[6..].parse().unwrap_or(1000);
                        let _ = socket
                            .send(AxMessage::Close(Some(CloseFrame {
                                code,
                                reason: "upstream says bye".into(),
                            })))
                            .await;
                        // Wait for the answer.
                        while let Some(Ok(m)) = socket.recv().await {
                            if matches!(m, AxMessage::Close(_)) {
                                break;
                            }
                        }
                        return;
                    }
                    AxMessage::Close(frame) => {
                        let text = frame
                            .map(|f| format!("got close {} {}", f.code, f.reason))
                            .unwrap_or_default();
                        LAST_CLOSE.lock().unwrap().push(text);
                        return;
                    }
                    other => {
                        let _ = socket.send(other).await;
                    }
                }
            }
        })
}

/// Close frames the upstream received, for the pass-through checks.
static LAST_CLOSE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn proxy_config(upstream: SocketAddr, extra: &str) -> sockpit::Config {
    config_from(&format!(
        "[proxy]\nupstream = \"http://{upstream}\"\n{extra}"
    ))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The newest event of `kind` matching `pred`, waiting up to 5 s.
async fn event(server: &TestServer, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..250 {
        for e in server.handle.recent_events().iter().rev() {
            let v: Value = serde_json::from_str(&e.json).unwrap();
            if v["kind"] == kind && pred(&v) {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {kind} event matched");
}

#[tokio::test]
async fn http_is_forwarded_with_host_kept_and_forwarded_headers() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(up, "")).await;
    let port = server.handle.local_addr().port();
    let v: Value = client()
        .get(server.http("/headers"))
        .header("host", format!("localhost:{port}"))
        .header("cookie", "sessionid=abc; csrftoken=xyz")
        .header("x-custom", "kept")
        .header("connection", "keep-alive, x-custom")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(v["host"], format!("localhost:{port}"), "{v}");
    assert_eq!(v["xff"], "127.0.0.1");
    assert_eq!(v["proto"], "http");
    assert_eq!(v["xhost"], format!("localhost:{port}"));
    assert_eq!(v["cookie"], "sessionid=abc; csrftoken=xyz");
    // Hop-by-hop: Connection itself, and what it names.
    assert_eq!(v["connection"], "");
    assert_eq!(v["x_custom"], "");

    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let r = client()
            .request(m.parse()?, server.http("/method"))
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await?, m);
    }
    // Sockpit's own routes and endpoints stay Sockpit's.
    let r = client()
        .get(server.http("/_sockpit/healthz"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let r = client().get(server.http("/ws/echo/")).send().await?;
    assert_eq!(r.status(), 426);
    Ok(())
}

#[tokio::test]
async fn bodies_stream_both_ways() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(up, "")).await;
    // 8 MiB up, sent as a stream of chunks.
    let chunks = futures_util::stream::iter(
        (0..128).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 << 10]))),
    );
    let r = client()
        .post(server.http("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await?;
    assert_eq!(r.text().await?, (8 << 20).to_string());

    // Down: the first event arrives long before the last is sent.
    let started = Instant::now();
    let mut r = client().get(server.http("/stream")).send().await?;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = r.chunk().await?.unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"data: tick 0\n\n");
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await? {
        rest.extend_from_slice(&c);
    }
    assert!(
        first_at < Duration::from_millis(500) && started.elapsed() >= Duration::from_millis(600),
        "first chunk after {first_at:?}, all after {:?}",
        started.elapsed()
    );
    assert_eq!(rest, b"data: tick 1\n\ndata: tick 2\n\n");
    Ok(())
}

#[tokio::test]
async fn redirects_naming_the_upstream_come_back_to_sockpit() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(up, "")).await;
    let port = server.handle.local_addr().port();
    let loc = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_string();
    let r = client()
        .get(server.http("/redirect-abs"))
        .header("host", format!("localhost:{port}"))
        .send()
        .await?;
    assert_eq!(r.status(), 302);
    assert_eq!(loc(&r), format!("http://localhost:{port}/landing?x=1"));
    let r = client().get(server.http("/redirect-rel")).send().await?;
    assert_eq!(loc(&r), "/landing");
    // `http://127.0.0.1:80010/` is another address, not the upstream's.
    let r = client()
        .get(server.http("/redirect-lookalike"))
        .send()
        .await?;
    assert_eq!(loc(&r), format!("http://{up}0/elsewhere"));

    let r = client().get(server.http("/cookies")).send().await?;
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies.len(), 2);
    assert_eq!(cookies[1], "b=2; Path=/; HttpOnly");
    Ok(())
}

#[tokio::test]
async fn each_request_is_an_event_with_secrets_redacted() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(up, "")).await;
    let r = client()
        .get(server.http("/method?token=very-secret-token&page=2"))
        .send()
        .await?;
    assert_eq!(r.text().await?, "GET");
    let e = event(&server, "http_request", |e| {
        e["path"].as_str().unwrap().starts_with("/method")
    })
    .await;
    assert_eq!(e["method"], "GET");
    assert_eq!(e["status"], 200);
    assert_eq!(e["bytes"], 3);
    assert!(e["duration_ms"].is_u64());
    let path = e["path"].as_str().unwrap();
    assert!(!path.contains("very-secret-token"), "{path}");
    assert!(path.contains("page=2"), "{path}");

    client().get(server.http("/boom")).send().await?;
    let stats = server.get_json("/_sockpit/api/stats").await;
    let proxy = &stats["proxy"];
    assert_eq!(proxy["upstream"], format!("http://{up}"));
    assert!(proxy["requests"].as_u64().unwrap() >= 2);
    assert!(
        proxy["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().ends_with("GET /boom: 500")),
        "{proxy}"
    );
    Ok(())
}

#[tokio::test]
async fn an_upstream_that_is_down_gets_a_502_that_names_it() -> Result<()> {
    // A port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let server = TestServer::start(proxy_config(dead, "")).await;
    let r = client()
        .get(server.http("/dashboard/"))
        .header("accept", "text/html")
        .send()
        .await?;
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()?
            .contains("default-src 'none'")
    );
    let page = r.text().await?;
    assert!(page.contains(&format!("http://{dead}")), "{page}");
    assert!(page.contains("connection refused"), "{page}");
    assert!(page.contains("Sockpit did not start it"), "{page}");
    let r = client().post(server.http("/api/login/")).send().await?;
    assert_eq!(r.status(), 502);
    assert!(
        r.text()
            .await?
            .starts_with("502 Bad Gateway: Sockpit could not reach the upstream")
    );
    let e = event(&server, "http_request", |e| e["path"] == "/dashboard/").await;
    assert_eq!(e["status"], 502);
    assert_eq!(e["method"], "GET");
    Ok(())
}

#[tokio::test]
async fn websockets_are_relayed_both_ways_with_close_codes() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(up, "websockets = true")).await;
    let port = server.handle.local_addr().port();
    let origin = format!("http://localhost:{port}");
    let mut ws = connect(
        &server.ws("/ws/echo?token=abc"),
        &[
            ("origin", &origin),
            ("cookie", "sessionid=s1"),
            ("sec-websocket-protocol", "chat"),
        ],
    )
    .await?;
    let hello: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
    assert_eq!(hello["host"], format!("127.0.0.1:{port}"));
    assert_eq!(hello["cookie"], "sessionid=s1");
    assert_eq!(hello["origin"], origin);
    assert_eq!(hello["xff"], "127.0.0.1");

    send_text(&mut ws, "hello upstream").await;
    assert_eq!(next_text(&mut ws).await?, "hello upstream");
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).await?;
    loop {
        match ws.next().await.unwrap()? {
            Message::Binary(b) => {
                assert_eq!(&b[..], &[0, 1, 2, 255]);
                break;
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Listed, counted and logged like any connection.
    let conns = server.get_json("/_sockpit/api/connections").await;
    let c = &conns["connections"][0];
    assert_eq!(c["endpoint"], "upstream");
    assert_eq!(c["path"], "/ws/echo");
    assert_eq!(c["msgs_in"], 2);
    let e = event(&server, "message_in", |e| e["endpoint"] == "upstream").await;
    assert!(e["preview"].is_string());

    // The upstream's close code reaches the client.
    send_text(&mut ws, "close 4321").await;
    assert_eq!(closed(&mut ws).await?, (4321, "upstream says bye".into()));

    // The client's close code reaches the upstream.
    let mut ws = connect(&server.ws("/ws/echo"), &[]).await?;
    next_text(&mut ws).await?;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4100u16.into(),
        reason: "client leaves".into(),
    }))
    .await?;
    for _ in 0..100 {
        if LAST_CLOSE
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == "got close 4100 client leaves")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        LAST_CLOSE
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == "got close 4100 client leaves"),
        "{:?}",
        LAST_CLOSE.lock().unwrap()
    );

    // Kick works on a relayed socket.
    let mut ws = connect(&server.ws("/ws/echo"), &[]).await?;
    next_text(&mut ws).await?;
    server.wait_connections(1).await;
    let id = server.handle.connections()[0].id.clone();
    server.handle.kick(&id, 4009, "kicked from the UI")?;
    assert_eq!(closed(&mut ws).await?, (4009, "kicked from the UI".into()));
    Ok(())
}

#[tokio::test]
async fn refused_upstream_handshakes_close_with_readable_reasons() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(up, "websockets = true")).await;
    let cases: [(&str, u16, &str); 4] = [
        (
            "/ws/forbidden",
            4003,
            "upstream refused: HTTP 403 (token expired or invalid? Origin not allowed?): Forbidden: token expired",
        ),
        (
            "/ws/nowhere",
            4004,
            "upstream refused: HTTP 404 (no route for /ws/nowhere in routing.py?)",
        ),
        (
            "/ws/crash",
            4502,
            "upstream refused: HTTP 500 (no route for /ws/crash in routing.py, or the consumer raised? see Logs): Internal Server Error",
        ),
        (
            "/ws/wsgi",
            4502,
            "it is WSGI (WSGIServer/0.2 CPython/3.11.2) and serves no WebSockets",
        ),
    ];
    for (path, code, reason) in cases {
        let mut ws = connect(&server.ws(path), &[("sec-websocket-protocol", "chat")]).await?;
        let (got, why) = closed(&mut ws).await?;
        assert_eq!(got, code, "{path}: {why}");
        let e = event(&server, "handshake_rejected", |e| e["path"] == path).await;
        assert_eq!(e["code"], code);
        assert_eq!(e["endpoint"], "upstream");
        // The event has it all; the close frame (123 bytes at most) its beginning.
        let full = e["reason"].as_str().unwrap();
        assert!(full.contains(reason), "{e}");
        assert!(
            full.starts_with(why.trim_end_matches('…')),
            "{full} / {why}"
        );
    }
    // Another Origin is refused by Sockpit's own rule first.
    let mut ws = connect(&server.ws("/ws/echo"), &[("origin", "http://evil.test")]).await?;
    assert_eq!(closed(&mut ws).await?.0, 4003);

    // Nothing listening.
    let dead = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let server = TestServer::start(proxy_config(dead, "websockets = true")).await;
    let mut ws = connect(&server.ws("/ws/dashboard"), &[]).await?;
    let (code, why) = closed(&mut ws).await?;
    assert_eq!(code, 4502);
    assert!(
        why.starts_with(&format!(
            "upstream unreachable: nothing listens on http://{dead}"
        )),
        "{why}"
    );
    Ok(())
}

#[tokio::test]
async fn proxy_config_errors_name_the_key() {
    let bad = [
        (
            "[proxy]\ncommand = \"python manage.py runserver\"\n",
            "proxy.command needs proxy.upstream",
        ),
        (
            "[proxy]\nupstream = \"https://127.0.0.1:8001\"\n",
            "https upstreams are not supported",
        ),
        (
            "[proxy]\nupstream = \"http://127.0.0.1:8001/app/\"\n",
            "no path, query or user",
        ),
        (
            "[proxy]\nupstream = \"127.0.0.1:8001\"\n",
            "expected http://host:port",
        ),
        (
            "[proxy]\nupstream = \"http://127.0.0.1:8001\"\ncommand = \"  \"\n",
            "proxy.command is empty",
        ),
        (
            "[proxy]\nupstream = \"http://127.0.0.1:8001\"\ncommand = \"x\"\nenv = { \"A=B\" = \"1\" }\n",
            "not a variable name",
        ),
        (
            "[proxy]\nupstream = \"http://127.0.0.1:8001\"\nbogus = 1\n",
            "unknown field `bogus`",
        ),
    ];
    for (text, want) in bad {
        let e = sockpit::Config::from_toml(text, "sockpit.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.starts_with("sockpit.toml:"), "{e}");
    }
}

#[tokio::test]
async fn an_upstream_that_is_sockpit_itself_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = temp_dir("loop");
    let e = sockpit::Server::start(
        proxy_config(addr, ""),
        listener,
        sockpit::Paths::in_dir(dir),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("is Sockpit's own address"), "{e}");
}

#[tokio::test]
async fn settings_cannot_set_the_command() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(up, "")).await;
    let toml = format!("[proxy]\nupstream = \"http://{up}\"\ncommand = \"touch /tmp/pwned\"\n");
    let r = client()
        .put(server.http("/_sockpit/api/config"))
        .bearer_auth(KEY)
        .json(&json!({ "toml": toml }))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await?
            .contains("proxy.command, proxy.cwd and proxy.env cannot be changed through Settings")
    );
    Ok(())
}

// --- The supervised command -------------------------------------------------------

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `stats.proxy.process` satisfies `pred`; returns it.
async fn process_until(server: &TestServer, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let p =
            serde_json::to_value(server.handle.stats().proxy.unwrap().process.unwrap()).unwrap();
        if pred(&p) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "process state never matched: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        // state ppid pgrp …; a zombie is gone, only not yet reaped by init.
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test]
async fn the_command_is_started_restarted_and_stopped_with_its_group() -> Result<()> {
    let port = free_port();
    // A background child in the same group, like runserver's autoreloader.
    let cmd = format!(
        "echo starting on {port}; sleep 300 & exec python3 -u -m http.server {port} --bind 127.0.0.1"
    );
    let up: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let server = TestServer::start(proxy_config(up, &format!("command = {cmd:?}\n"))).await;
    let ready = process_until(&server, 20, |p| p["state"] == "ready").await;
    assert!(
        ready["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("ready at http://{up} after"))
    );
    let pid = ready["pid"].as_u64().unwrap() as u32;
    assert!(
        group_members(pid).len() >= 2,
        "sleep and python share the group"
    );

    let r = client().get(server.http("/")).send().await?;
    assert_eq!(r.status(), 200);
    event(&server, "upstream_output", |e| {
        e["reason"] == format!("starting on {port}")
    })
    .await;
    // http.server logs each request on stderr.
    event(&server, "upstream_output", |e| {
        e["reason"]
            .as_str()
            .unwrap()
            .contains("\"GET / HTTP/1.1\" 200")
    })
    .await;

    // Killed behind Sockpit's back: said, the rest of its group killed, restarted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    event(&server, "upstream_state", |e| {
        e["reason"]
            .as_str()
            .unwrap()
            .starts_with("killed by signal 9")
    })
    .await;
    assert!(
        group_members(pid).is_empty(),
        "left of the old group: {:?}",
        group_members(pid)
    );
    let again = process_until(&server, 20, |p| p["state"] == "ready" && p["restarts"] == 1).await;
    let pid2 = again["pid"].as_u64().unwrap() as u32;
    assert_ne!(pid, pid2);
    event(&server, "upstream_state", |e| {
        e["reason"]
            .as_str()
            .unwrap()
            .starts_with("killed by signal 9")
    })
    .await;

    // Stopping the server stops the whole group.
    server.handle.shutdown().await;
    assert!(
        group_members(pid2).is_empty(),
        "left behind: {:?}",
        group_members(pid2)
    );
    Ok(())
}

#[tokio::test]
async fn a_command_that_keeps_failing_is_a_crash_loop_on_the_502_page() -> Result<()> {
    let port = free_port();
    let up: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    // The output says what the command line does not spell out.
    let cmd = "echo Error: That port is already \"in\" use. >&2; exit 3";
    let server = TestServer::start(proxy_config(up, &format!("command = {cmd:?}\n"))).await;
    let p = process_until(&server, 15, |p| p["state"] == "crash_loop").await;
    assert_eq!(p["exit_code"], 3);
    assert!(p["detail"].as_str().unwrap().contains("crash loop"), "{p}");
    let page = client()
        .get(server.http("/"))
        .header("accept", "text/html")
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("Sockpit runs it"), "{page}");
    assert!(page.contains("exited with code 3"), "{page}");
    assert!(
        page.contains("Error: That port is already in use."),
        "{page}"
    );
    // A page loaded through another name does not see the output (DNS rebinding).
    let page = client()
        .get(server.http("/"))
        .header("accept", "text/html")
        .header("host", "evil.test")
        .send()
        .await?
        .text()
        .await?;
    assert!(!page.contains("Its last output"), "{page}");
    assert!(
        !page.contains("exit 3"),
        "the command line is not shown: {page}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_working_directory_is_named() -> Result<()> {
    let up: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let server = TestServer::start(proxy_config(
        up,
        "command = \"true\"\ncwd = \"/nonexistent/project\"\n",
    ))
    .await;
    let p = process_until(&server, 5, |p| p["state"] == "exited").await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("working directory /nonexistent/project does not exist"),
        "{p}"
    );
    Ok(())
}

/// A stand-in for an upstream that answers `/` with `status`, `server` and `body`.
async fn upstream_answering(status: u16, server: &'static str, body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/",
        get(move || async move {
            (
                StatusCode::from_u16(status).unwrap(),
                [(header::SERVER, server)],
                body,
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn doctor(server: &TestServer) -> Vec<Value> {
    let r: Value = client()
        .post(server.http("/_sockpit/api/doctor"))
        .bearer_auth(KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("upstream"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn doctor_tells_wsgi_from_asgi_and_catches_allowed_hosts() {
    // runserver with websockets relayed: a warning that says why.
    let up = upstream_answering(200, "WSGIServer/0.2 CPython/3.11.2", "<html>").await;
    let server = TestServer::start(proxy_config(up, "websockets = true")).await;
    let checks = doctor(&server).await;
    assert_eq!(checks[0]["verdict"], "pass", "{checks:?}");
    assert_eq!(checks[1]["verdict"], "warn");
    assert!(
        checks[1]["detail"]
            .as_str()
            .unwrap()
            .contains("cannot hold a WebSocket")
    );

    // daphne behind Sockpit with websockets relayed.
    let up = upstream_answering(200, "daphne", "<html>").await;
    let server = TestServer::start(proxy_config(up, "websockets = true")).await;
    let checks = doctor(&server).await;
    assert_eq!(checks[1]["verdict"], "pass", "{checks:?}");
    assert!(checks[1]["detail"].as_str().unwrap().contains("ASGI"));

    // Django refusing the Host.
    let up = upstream_answering(
        400,
        "WSGIServer/0.2 CPython/3.11.2",
        "<title>DisallowedHost at /</title> Invalid HTTP_HOST header: 'localhost:8000'.",
    )
    .await;
    let server = TestServer::start(proxy_config(up, "")).await;
    let checks = doctor(&server).await;
    assert_eq!(checks[0]["name"], "upstream ALLOWED_HOSTS");
    assert_eq!(checks[0]["verdict"], "fail");
    assert!(checks[0]["fix"].as_str().unwrap().contains("ALLOWED_HOSTS"));

    // Nothing there.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::start(proxy_config(dead, "")).await;
    let checks = doctor(&server).await;
    assert_eq!(checks[0]["verdict"], "fail");
    assert!(
        checks[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("nothing listens on")
    );
}

#[tokio::test]
async fn hostile_upstream_frames_and_output_are_bounded() -> Result<()> {
    // An upstream socket that sends a message over max_message_bytes: that client gets
    // 1009, the server goes on.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let up = listener.local_addr()?;
    let app = Router::new().route(
        "/ws/huge",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut s| async move {
                let _ = s.send(AxMessage::Text("x".repeat(2 << 20).into())).await;
                while let Some(Ok(_)) = s.recv().await {}
            })
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = TestServer::start(proxy_config(up, "websockets = true")).await;
    let mut ws = connect(&server.ws("/ws/huge"), &[]).await?;
    let (code, reason) = closed(&mut ws).await?;
    assert_eq!(code, 1009, "{reason}");
    assert_eq!(reason, "the upstream sent a message over max_message_bytes");
    let r = client()
        .get(server.http("/_sockpit/healthz"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);

    // A command that prints 8 MB without a newline: one line, cut (in the event to the
    // field limit, in the 502 page's tail to 4 KiB).
    let port = free_port();
    let up: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let cmd = "head -c 8000000 /dev/zero | tr '\\0' x; echo; echo after; exit 1";
    let server = TestServer::start(proxy_config(up, &format!("command = {cmd:?}\n"))).await;
    let e = event(&server, "upstream_output", |e| e["reason"] == "after").await;
    let lines = server.events("upstream_output");
    let long = lines[0]["reason"].as_str().unwrap();
    assert!(long.len() <= 512 && long.ends_with('…'), "{}", long.len());
    process_until(&server, 5, |p| p["state"] != "starting").await;
    let page = client()
        .get(server.http("/"))
        .header("accept", "text/html")
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("after"), "{}", &page[..page.len().min(2000)]);
    assert!(
        page.len() < 64 << 10,
        "the 502 page is {} bytes",
        page.len()
    );
    assert!(e["seq"].as_u64().unwrap() > lines[0]["seq"].as_u64().unwrap());
    Ok(())
}

#[tokio::test]
async fn a_relay_keeps_both_directions_apart_and_kicks_through_a_stuck_write() -> Result<()> {
    // An upstream that talks and never reads.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let up = listener.local_addr()?;
    let app = Router::new().route(
        "/ws/deaf",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut s| async move {
                for i in 0.. {
                    if s.send(AxMessage::Text(format!("tick {i}").into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = TestServer::start(proxy_config(up, "websockets = true")).await;
    let ws = connect(&server.ws("/ws/deaf"), &[]).await?;
    let (mut tx, mut rx) = ws.split();
    // The browser floods the upstream until its writes block (nobody reads them).
    let flood = tokio::spawn(async move {
        let chunk = "x".repeat(64 << 10);
        for _ in 0..2_000 {
            if tx.send(Message::text(chunk.clone())).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // …and still hears the upstream.
    let mut ticks = 0;
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), rx.next()).await
            && t.starts_with("tick ")
        {
            ticks += 1;
        }
    }
    assert!(
        ticks >= 5,
        "only {ticks} upstream messages while the other direction was stuck"
    );
    // A kick does not wait for the stuck write.
    let started = Instant::now();
    let id = server.handle.connections()[0].id.clone();
    server.handle.kick(&id, 4009, "kicked")?;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.next()).await? {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, 4009);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    flood.abort();
    Ok(())
}

#[tokio::test]
async fn a_relayed_message_over_the_limit_closes_1009() -> Result<()> {
    let up = upstream().await;
    let server = TestServer::start(proxy_config(
        up,
        "websockets = true\n[server]\nmax_message_bytes = 1024",
    ))
    .await;
    let mut ws = connect(&server.ws("/ws/echo"), &[]).await?;
    next_text(&mut ws).await?;
    send_text(&mut ws, &"x".repeat(2048)).await;
    let (code, reason) = closed(&mut ws).await?;
    assert_eq!(code, 1009, "{reason}");
    Ok(())
}

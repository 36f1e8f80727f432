//! WebSocket behaviour over real sockets: auth verdicts, origins, paths, channels,
//! limits, liveness.

mod common;

use std::time::Duration;

use anyhow::Result;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::Message;

use common::*;

#[tokio::test]
async fn simplejwt_token_connects_and_receives_a_publish() -> Result<()> {
    let srv = TestServer::default().await;
    let token = sign(&simplejwt_claims(json!(42), 300), SECRET);
    let mut ws = srv.connect(&format!("/ws/dashboard/?token={token}")).await;
    srv.wait_connections(1).await;
    let n = srv
        .publish(json!({"channel": "dashboard", "data": {"type": "update", "n": 1}}))
        .await;
    assert_eq!(n, 1);
    assert_eq!(next_text(&mut ws).await?, r#"{"n":1,"type":"update"}"#);
    // `group` is Channels' word for the same thing; string data is sent as its text.
    assert_eq!(
        srv.publish(json!({"group": "dashboard", "data": "hello"}))
            .await,
        1
    );
    assert_eq!(next_text(&mut ws).await?, "hello");
    Ok(())
}

#[tokio::test]
async fn bad_tokens_close_4001_with_the_cause() -> Result<()> {
    let srv = TestServer::default().await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let mut refresh = simplejwt_claims(json!(1), 300);
    refresh["token_type"] = json!("refresh");
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&simplejwt_claims(json!(1), 300).to_string())
    );
    let cases: Vec<(String, &str)> = vec![
        (
            sign(&simplejwt_claims(json!(1), -192), SECRET),
            "token expired 3m12s ago",
        ),
        (
            sign(&simplejwt_claims(json!(1), 300), "another-secret"),
            "bad signature (check the secret)",
        ),
        (
            sign(&refresh, SECRET),
            "token_type refresh (expected access)",
        ),
        (alg_none, "alg none not allowed (expected HS256)"),
        (
            sign_alg(
                &simplejwt_claims(json!(1), 300),
                SECRET,
                jsonwebtoken::Algorithm::HS512,
            ),
            "alg HS512 not allowed (expected HS256)",
        ),
        (
            "not-a-jwt".into(),
            "token malformed (expected header.payload.signature)",
        ),
    ];
    for (token, reason) in cases {
        let mut ws = srv.connect(&format!("/ws/dashboard/?token={token}")).await;
        let (code, got) = closed(&mut ws).await?;
        assert_eq!((code, got.as_str()), (4001, reason));
    }
    let mut ws = srv.connect("/ws/dashboard/").await;
    assert_eq!(
        closed(&mut ws).await?,
        (4001, "no token (expected ?token=…)".into())
    );

    // Every verdict is also an event with the same reason, and no token in it.
    let events = srv.handle.recent_events();
    let rejected: Vec<_> = events
        .iter()
        .filter(|e| e.json.contains("handshake_rejected"))
        .collect();
    assert_eq!(rejected.len(), 7);
    assert!(
        rejected
            .iter()
            .any(|e| e.json.contains("token expired 3m12s ago"))
    );
    assert!(
        rejected
            .iter()
            .all(|e| e.json.contains("token=…redacted") || e.json.contains("no token"))
    );
    assert!(!events.iter().any(|e| e.json.contains("eyJ")));
    Ok(())
}

#[tokio::test]
async fn token_from_header_and_subprotocol() -> Result<()> {
    let srv = TestServer::default().await;
    let token = srv.token("7");
    let mut ws = connect(
        &srv.ws("/ws/dashboard/"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await?;
    srv.wait_connections(1).await;
    assert_eq!(srv.publish(json!({"user": 7, "data": "a"})).await, 1);
    assert_eq!(next_text(&mut ws).await?, "a");

    // Browsers: new WebSocket(url, ["access_token", token]); the marker is echoed back.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        srv.ws("/ws/dashboard/"),
    )?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("access_token, {token}").parse()?,
    );
    let (mut ws2, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "access_token"
    );
    srv.wait_connections(2).await;
    assert_eq!(srv.publish(json!({"user": "7", "data": "b"})).await, 2);
    assert_eq!(next_text(&mut ws2).await?, "b");
    Ok(())
}

#[tokio::test]
async fn foreign_origin_is_closed_4003() -> Result<()> {
    let srv = TestServer::default().await;
    let mut ws = connect(&srv.ws("/ws/echo/"), &[("origin", "http://evil.test")]).await?;
    assert_eq!(
        closed(&mut ws).await?,
        (
            4003,
            "origin http://evil.test not in allowed_origins".into()
        )
    );
    let mut ok = connect(&srv.ws("/ws/echo/"), &[("origin", "http://localhost:5173")]).await?;
    send_text(&mut ok, "hi").await;
    assert_eq!(next_text(&mut ok).await?, "hi");
    Ok(())
}

#[tokio::test]
async fn unknown_path_closes_4004_naming_the_nearest() -> Result<()> {
    let srv = TestServer::default().await;
    let mut ws = srv.connect("/ws/dashbord/").await;
    assert_eq!(
        closed(&mut ws).await?,
        (
            4004,
            "no endpoint /ws/dashbord/ — did you mean /ws/dashboard/?".into()
        )
    );
    // Plain HTTP to an unknown path is a 404 with the same hint.
    let r = reqwest::get(srv.http("/ws/dashbord/")).await?;
    assert_eq!(r.status(), 404);
    assert!(r.text().await?.contains("did you mean /ws/dashboard/?"));
    Ok(())
}

#[tokio::test]
async fn reject_http_mode_answers_with_statuses() -> Result<()> {
    let mut cfg = config();
    cfg.server.reject = sockpit::config::RejectMode::Http;
    let srv = TestServer::start(cfg).await;
    for (path, headers, status) in [
        ("/ws/dashboard/", vec![], 401),
        ("/ws/echo/", vec![("origin", "http://evil.test")], 403),
        ("/ws/nope/", vec![], 404),
    ] {
        let err = connect(&srv.ws(path), &headers).await.unwrap_err();
        let tokio_tungstenite::tungstenite::Error::Http(resp) =
            err.downcast::<tokio_tungstenite::tungstenite::Error>()?
        else {
            panic!("expected an HTTP refusal for {path}");
        };
        assert_eq!(resp.status(), status, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn chat_rooms_isolate_traffic() -> Result<()> {
    let cfg = config_from(
        r#"
[[endpoint]]
path = "/ws/chat/{room}/"
channel = "chat.{room}"
auth = "none"
on_message = "broadcast"
"#,
    );
    let srv = TestServer::start(cfg).await;
    let mut a1 = srv.connect("/ws/chat/lobby/").await;
    let mut a2 = srv.connect("/ws/chat/lobby/").await;
    let mut b = srv.connect("/ws/chat/kitchen/").await;
    srv.wait_connections(3).await;
    send_text(&mut a1, "hello lobby").await;
    assert_eq!(next_text(&mut a2).await?, "hello lobby");
    assert_eq!(
        next_text(&mut a1).await?,
        "hello lobby",
        "echo_self defaults to true"
    );
    silent(&mut b, 300).await;
    assert_eq!(
        srv.publish(json!({"channel": "chat.kitchen", "data": "k"}))
            .await,
        1
    );
    assert_eq!(next_text(&mut b).await?, "k");
    Ok(())
}

#[tokio::test]
async fn echo_self_false_skips_the_sender() -> Result<()> {
    let cfg = config_from(
        r#"
[[endpoint]]
path = "/ws/room/"
channel = "room"
auth = "none"
on_message = "broadcast"
echo_self = false
"#,
    );
    let srv = TestServer::start(cfg).await;
    let mut a = srv.connect("/ws/room/").await;
    let mut b = srv.connect("/ws/room/").await;
    srv.wait_connections(2).await;
    send_text(&mut a, "x").await;
    assert_eq!(next_text(&mut b).await?, "x");
    silent(&mut a, 300).await;
    Ok(())
}

#[tokio::test]
async fn user_publish_reaches_only_that_user_int_or_string() -> Result<()> {
    let cfg = config_from(
        r#"
[[endpoint]]
path = "/ws/dashboard/"
channel = ["dashboard", "user_{user}"]
"#,
    );
    let srv = TestServer::start(cfg).await;
    let t_int = sign(&simplejwt_claims(json!(3), 300), SECRET);
    let t_str = sign(&simplejwt_claims(json!("3"), 300), SECRET);
    let t_other = sign(&simplejwt_claims(json!(4), 300), SECRET);
    let mut u3a = srv.connect(&format!("/ws/dashboard/?token={t_int}")).await;
    let mut u3b = srv.connect(&format!("/ws/dashboard/?token={t_str}")).await;
    let mut u4 = srv
        .connect(&format!("/ws/dashboard/?token={t_other}"))
        .await;
    srv.wait_connections(3).await;
    assert_eq!(srv.publish(json!({"user": 3, "data": {"for": 3}})).await, 2);
    assert_eq!(next_text(&mut u3a).await?, r#"{"for":3}"#);
    assert_eq!(next_text(&mut u3b).await?, r#"{"for":3}"#);
    silent(&mut u4, 300).await;
    // The Channels-style per-user group from the template works too.
    assert_eq!(
        srv.publish(json!({"channel": "user_4", "data": "four"}))
            .await,
        1
    );
    assert_eq!(next_text(&mut u4).await?, "four");
    let conns = srv.get_json("/_sockpit/api/connections").await;
    let list = conns["connections"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(
        list.iter()
            .all(|c| !c.to_string().contains("eyJ") && c["user"].is_string())
    );
    Ok(())
}

#[tokio::test]
async fn too_big_message_closes_1009_and_others_keep_working() -> Result<()> {
    let srv = TestServer::default().await;
    let mut big = srv.connect("/ws/echo/").await;
    let mut other = srv.connect("/ws/echo/").await;
    let payload = "x".repeat(2 << 20);
    let _ = big.send(Message::text(payload)).await;
    assert_eq!(
        closed(&mut big).await?,
        (1009, "message 2 MiB > max_message_bytes 1 MiB".into())
    );
    send_text(&mut other, "still here").await;
    assert_eq!(next_text(&mut other).await?, "still here");
    Ok(())
}

#[tokio::test]
async fn slow_client_is_closed_1008_and_readers_get_everything() -> Result<()> {
    let mut cfg = config();
    cfg.server.send_queue = sockpit::config::Positive(64);
    let srv = TestServer::start(cfg).await;
    let token = srv.token("1");
    // The slow client never reads; a big payload fills its socket buffers quickly.
    let slow = srv.connect(&format!("/ws/dashboard/?token={token}")).await;
    let mut fast = srv.connect(&format!("/ws/dashboard/?token={token}")).await;
    srv.wait_connections(2).await;
    let count = 3000usize;
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        while got < count {
            match next_text(&mut fast).await {
                Ok(t) => {
                    assert_eq!(t.len(), 8192, "whole payload");
                    got += 1;
                }
                Err(e) => panic!("fast reader failed after {got}: {e}"),
            }
        }
        got
    });
    let filler = "y".repeat(8192);
    let http = reqwest::Client::new();
    let mut slow = Some(slow);
    let mut slow_reader = None;
    for _ in 0..count {
        let r = http
            .post(srv.http("/_sockpit/api/publish"))
            .bearer_auth(KEY)
            .json(&json!({"channel": "dashboard", "data": filler}))
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        // Once the server has given up on the slow client, let it read what is in
        // flight: the last thing it gets is the close frame saying why.
        let dropped = srv
            .handle
            .stats()
            .dropped_clients
            .get(&sockpit::close::DropReason::SendQueueFull)
            .copied();
        if dropped == Some(1)
            && let Some(mut ws) = slow.take()
        {
            slow_reader = Some(tokio::spawn(async move { closed(&mut ws).await }));
        }
    }
    assert_eq!(reader.await?, count);
    let (code, reason) = slow_reader.expect("the slow client was dropped").await??;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "send queue full (64 messages)")
    );
    let metrics = reqwest::Client::new()
        .get(srv.http("/_sockpit/metrics"))
        .bearer_auth(KEY)
        .send()
        .await?
        .text()
        .await?;
    assert!(metrics.contains("sockpit_dropped_clients_total{reason=\"send_queue_full\"} 1"));
    Ok(())
}

#[tokio::test]
async fn kick_closes_one_client() -> Result<()> {
    let srv = TestServer::default().await;
    let mut a = srv.connect("/ws/echo/").await;
    let mut b = srv.connect("/ws/echo/").await;
    srv.wait_connections(2).await;
    let conns = srv.get_json("/_sockpit/api/connections").await;
    let id = conns["connections"][0]["id"].as_str().unwrap().to_string();
    let r = reqwest::Client::new()
        .delete(srv.http(&format!(
            "/_sockpit/api/connections/{id}?code=4000&reason=bye"
        )))
        .bearer_auth(KEY)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(closed(&mut a).await?, (4000, "bye".into()));
    send_text(&mut b, "ok").await;
    assert_eq!(next_text(&mut b).await?, "ok");
    let r = reqwest::Client::new()
        .delete(srv.http("/_sockpit/api/connections/c999"))
        .bearer_auth(KEY)
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    Ok(())
}

#[tokio::test]
async fn max_connections_closes_4029() -> Result<()> {
    let mut cfg = config();
    cfg.server.max_connections = sockpit::config::Positive(2);
    let srv = TestServer::start(cfg).await;
    let _a = srv.connect("/ws/echo/").await;
    let _b = srv.connect("/ws/echo/").await;
    let mut c = srv.connect("/ws/echo/").await;
    assert_eq!(
        closed(&mut c).await?,
        (4029, "max_connections 2 reached".into())
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_every_client_1001() -> Result<()> {
    let srv = TestServer::default().await;
    let mut a = srv.connect("/ws/echo/").await;
    let mut b = srv
        .connect(&format!("/ws/dashboard/?token={}", srv.token("1")))
        .await;
    srv.wait_connections(2).await;
    let h = srv.handle.clone();
    let stopping = tokio::spawn(async move { h.shutdown().await });
    assert_eq!(closed(&mut a).await?, (1001, "server stopping".into()));
    assert_eq!(closed(&mut b).await?, (1001, "server stopping".into()));
    tokio::time::timeout(Duration::from_secs(10), stopping).await??;
    // Idempotent.
    srv.handle.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(srv.handle.local_addr())
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn idle_clients_are_pinged_then_closed() -> Result<()> {
    let mut cfg = config();
    cfg.server.ping_interval_s = sockpit::config::Positive(1);
    cfg.server.idle_timeout_s = sockpit::config::Positive(2);
    let srv = TestServer::start(cfg).await;
    let mut ws = srv.connect("/ws/echo/").await;
    // A reading client answers pings (tungstenite does) and stays.
    let start = std::time::Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(3500) {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        {
            pings += 1;
        }
    }
    assert!(pings >= 2, "got {pings} pings");
    assert_eq!(srv.handle.stats().connections, 1);
    // A client that never answers anything is closed.
    let mut raw = tokio::net::TcpStream::connect(srv.handle.local_addr()).await?;
    raw.write_all(
        b"GET /ws/echo/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await?;
    let mut buf = vec![0u8; 4096];
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        match tokio::time::timeout_at(deadline, raw.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
        if all.windows(2).any(|w| w == [0x88, 0x1f]) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("no traffic for 2s"), "got {text:?}");
    Ok(())
}

#[tokio::test]
async fn half_a_request_head_is_dropped_after_the_handshake_timeout() -> Result<()> {
    let mut cfg = config();
    cfg.server.handshake_timeout_s = sockpit::config::Positive(1);
    let srv = TestServer::start(cfg).await;
    let mut raw = tokio::net::TcpStream::connect(srv.handle.local_addr()).await?;
    raw.write_all(b"GET /ws/echo/ HTTP/1.1\r\nHost: local")
        .await?;
    let mut buf = [0u8; 1024];
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(r.is_ok(), "connection still open after 5s");
    Ok(())
}

#[tokio::test]
async fn events_socket_streams_hello_events_and_stats() -> Result<()> {
    let srv = TestServer::default().await;
    let mut ev = connect(&srv.ws("/_sockpit/api/events"), &[("x-api-key", KEY)]).await?;
    let hello: Value = serde_json::from_str(&next_text(&mut ev).await?)?;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["events"][0]["kind"], "server_started");
    let mut client = srv.connect("/ws/echo/").await;
    send_text(&mut client, "ping me").await;
    let mut kinds = Vec::new();
    let mut seqs: Vec<u64> = hello["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut saw_stats = false;
    while kinds.len() < 3 || !saw_stats {
        let frame: Value = serde_json::from_str(&next_text(&mut ev).await?)?;
        match frame["type"].as_str() {
            Some("events") => {
                for e in frame["events"].as_array().unwrap() {
                    kinds.push(e["kind"].as_str().unwrap().to_string());
                    seqs.push(e["seq"].as_u64().unwrap());
                }
            }
            Some("stats") => saw_stats = true,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(kinds[..3], ["connected", "message_in", "message_out"]);
    // `seq` runs on from the hello without gaps or repeats.
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // Without the key: 401.
    let err = connect(&srv.ws("/_sockpit/api/events"), &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_bad_frame_closes_only_that_client() -> Result<()> {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let srv = TestServer::default().await;
    let mut bad = srv.connect("/ws/echo/").await;
    let mut good = srv.connect("/ws/echo/").await;
    let frame = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
    bad.send(Message::Frame(frame)).await?;
    assert_eq!(
        closed(&mut bad).await?,
        (1007, "text message is not valid UTF-8".into())
    );
    send_text(&mut good, "fine").await;
    assert_eq!(next_text(&mut good).await?, "fine");
    Ok(())
}

#[tokio::test]
async fn public_key_algorithms_verify_with_a_pem() -> Result<()> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (alg, jwt_alg, public, private) in [
        (
            "RS256",
            jsonwebtoken::Algorithm::RS256,
            "rs256-public.pem",
            "rs256-private.pem",
        ),
        (
            "ES256",
            jsonwebtoken::Algorithm::ES256,
            "es256-public.pem",
            "es256-private.pk8.pem",
        ),
    ] {
        let cfg = config_from(&format!(
            "[auth]\nalgorithm = \"{alg}\"\npublic_key_file = \"{}\"\n",
            fixtures.join(public).display()
        ));
        let srv = TestServer::start(cfg).await;
        let pem = std::fs::read(fixtures.join(private))?;
        let key = match jwt_alg {
            jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem)?,
            _ => jsonwebtoken::EncodingKey::from_ec_pem(&pem)?,
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jwt_alg),
            &simplejwt_claims(json!(8), 300),
            &key,
        )?;
        let mut ws = srv.connect(&format!("/ws/dashboard/?token={token}")).await;
        srv.wait_connections(1).await;
        assert_eq!(srv.publish(json!({"user": 8, "data": alg})).await, 1);
        assert_eq!(next_text(&mut ws).await?, alg);
        // An HS256 token signed with the public key as the secret: the classic switch.
        let pem_text = std::fs::read_to_string(fixtures.join(public))?;
        let forged = sign(&simplejwt_claims(json!(8), 300), &pem_text);
        let mut bad = srv.connect(&format!("/ws/dashboard/?token={forged}")).await;
        assert_eq!(
            closed(&mut bad).await?,
            (4001, format!("alg HS256 not allowed (expected {alg})"))
        );
        // Sockpit has no private key, so it cannot mint these.
        assert!(
            srv.handle
                .mint_token("1", Duration::from_secs(60), &Default::default())
                .is_err()
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_ui_that_stopped_reading_cannot_stall_shutdown() -> Result<()> {
    let srv = TestServer::default().await;
    // A UI events socket that never reads after the handshake.
    let mut raw = tokio::net::TcpStream::connect(srv.handle.local_addr()).await?;
    raw.write_all(
        format!(
            "GET /_sockpit/api/events HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {KEY}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    // Enough events to fill every buffer between the server and that socket.
    let mut client = srv.connect("/ws/echo/").await;
    let line = "z".repeat(190);
    for _ in 0..8000 {
        client.send(Message::text(line.clone())).await?;
    }
    for _ in 0..8000 {
        next_text(&mut client).await?;
    }
    let h = srv.handle.clone();
    tokio::time::timeout(Duration::from_secs(20), h.shutdown())
        .await
        .expect("shutdown finished although a UI socket stopped reading");
    drop(raw);
    Ok(())
}

//! Hostile input, no key needed: what any web page the developer opens (or any local
//! process) can send. Each test runs the real `sockpit serve` binary and measures its
//! memory or CPU from /proc, not the test's clock.

mod common;

use std::sync::Arc;

use anyhow::Result;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::Message;

use common::*;

const HUGE: usize = 60_000;

/// Opens a handshake the server refuses and returns its close code and reason.
async fn refused(url: String, headers: Vec<(&'static str, String)>) -> Result<(u16, String)> {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ws = connect(&url, &pairs).await?;
    closed(&mut ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_huge_handshakes_keep_the_server_small() -> Result<()> {
    let srv = Arc::new(Spawned::serve("")?);
    let long_path = format!("/{}", "a".repeat(HUGE));
    let long_origin = format!("http://{}.test", "b".repeat(HUGE));
    // Warm up: buffers, the ring's first allocations.
    for _ in 0..50 {
        refused(srv.ws("/nope/"), vec![]).await?;
    }
    let before = srv.rss_kib();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let (srv, gate) = (srv.clone(), gate.clone());
        let (path, origin) = (long_path.clone(), long_origin.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            if i % 2 == 0 {
                refused(srv.ws(&path), vec![]).await
            } else {
                refused(srv.ws("/ws/echo/"), vec![("origin", origin)]).await
            }
        }));
    }
    for t in tasks {
        let (code, reason) = t.await??;
        assert!([4003, 4004].contains(&code), "{code} {reason}");
        assert!(reason.len() <= 123, "a close reason fits its frame");
    }
    let grown_mib = srv.rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 48,
        "2,000 refused 60 KB handshakes grew the server by {grown_mib} MiB"
    );

    // What the log kept is cut to a documented size, and the UI's first frame is bounded.
    let (mut ui, _) =
        tokio_tungstenite::connect_async(srv.ws(&format!("/_sockpit/api/events?key={KEY}")))
            .await?;
    let Some(Ok(Message::Text(hello))) = ui.next().await else {
        panic!("no hello frame");
    };
    assert!(hello.len() < sockpit::events::RING_MAX_BYTES);
    let hello: Value = serde_json::from_str(&hello)?;
    let events = hello["events"].as_array().unwrap();
    let rejected: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "handshake_rejected")
        .collect();
    assert!(rejected.len() > 1000, "the refusals are in the log");
    for e in rejected {
        for field in ["path", "origin", "reason"] {
            let len = e[field].as_str().map_or(0, str::len);
            assert!(
                len <= sockpit::events::MAX_FIELD_BYTES,
                "{field}: {len} bytes"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_long_path_costs_no_cpu_for_its_suggestion() -> Result<()> {
    // A `{param}` endpoint: the suggestion is built from the request's own segments, so a
    // naive edit distance compares two 60 KB strings.
    let srv = Spawned::serve(
        "[[endpoint]]\npath = \"/ws/chat/{room}/\"\nchannel = \"chat.{room}\"\nauth = \"none\"\n",
    )?;
    let path = format!("/ws/chta/{}/", "r".repeat(HUGE));
    let before = srv.cpu_secs();
    for _ in 0..10 {
        let (code, reason) = refused(srv.ws(&path), vec![]).await?;
        assert_eq!(code, 4004);
        assert!(reason.starts_with("no endpoint /ws/chta/rrr"), "{reason}");
    }
    let used = srv.cpu_secs() - before;
    assert!(used < 1.0, "10 refusals took {used:.2}s of server CPU");
    // A short typo still gets its suggestion.
    let (_, reason) = refused(srv.ws("/ws/chta/lobby/"), vec![]).await?;
    assert!(
        reason.ends_with("did you mean /ws/chat/lobby/?"),
        "{reason}"
    );
    Ok(())
}

/// A client that never reads (its TCP window closes) blocks the server's writes. The
/// connection's timers must keep running meanwhile: it is reaped by the idle timeout,
/// not held for ever, and the others are not slowed.
#[tokio::test]
async fn a_client_that_never_reads_is_reaped_by_the_idle_timeout() -> Result<()> {
    let srv = TestServer::start(config_from(
        "[server]\nping_interval_s = 1\nidle_timeout_s = 2\nsend_queue = 65536\n",
    ))
    .await;
    let token = srv.token("5");
    let stuck = connect(&srv.ws(&format!("/ws/dashboard/?token={token}")), &[]).await?;
    srv.wait_connections(1).await;
    // Far more than the socket buffers hold: the server's write blocks.
    let big = "x".repeat(64 << 10);
    for _ in 0..400 {
        srv.publish(serde_json::json!({"channel": "dashboard", "data": big}))
            .await;
    }
    let started = std::time::Instant::now();
    let mut gone = false;
    for _ in 0..150 {
        if srv.handle.stats().connections == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "still connected after {:?}", started.elapsed());
    let dropped = srv.handle.stats().dropped_clients;
    assert_eq!(
        dropped.get(&sockpit::close::DropReason::WriteStalled),
        Some(&1),
        "{dropped:?}"
    );
    drop(stuck);
    Ok(())
}

/// `channel = "{room}"`: a client choosing `room = user.42` would read user 42's
/// messages, and `room = dashboard` another endpoint's. Both are refused with 4003.
#[tokio::test]
async fn a_path_parameter_cannot_name_another_users_channel() -> Result<()> {
    let srv = TestServer::start(config_from(
        "[[endpoint]]\npath = \"/ws/dashboard/\"\nchannel = \"dashboard\"\n\n\
         [[endpoint]]\npath = \"/ws/room/{room}/\"\nchannel = \"{room}\"\n",
    ))
    .await;
    let token = srv.token("7");
    for taken in ["user.42", "dashboard"] {
        let mut ws = srv
            .connect(&format!("/ws/room/{taken}/?token={token}"))
            .await;
        let (code, reason) = closed(&mut ws).await?;
        assert_eq!(code, 4003);
        assert_eq!(
            reason,
            format!("channel {taken} is reserved: a path parameter cannot name it")
        );
    }
    assert_eq!(
        srv.publish(serde_json::json!({"user": 42, "data": "secret"}))
            .await,
        0
    );
    let mut ok = srv.connect(&format!("/ws/room/lobby/?token={token}")).await;
    srv.wait_connections(1).await;
    assert_eq!(
        srv.publish(serde_json::json!({"channel": "lobby", "data": "hi"}))
            .await,
        1
    );
    assert_eq!(next_text(&mut ok).await?, "hi");
    Ok(())
}

/// A token under a custom `query:NAME`, or a percent-encoded name, is redacted in the
/// events like `?token=` is.
#[tokio::test]
async fn tokens_under_any_name_are_redacted() -> Result<()> {
    let srv = TestServer::start(config_from("[auth]\ntoken_sources = [\"query:access\"]\n")).await;
    for query in [
        "access=SECRET-A&room=1",
        "%74oken=SECRET-B",
        "ACCESS=SECRET-C",
    ] {
        let mut ws = srv.connect(&format!("/ws/nope/?{query}")).await;
        assert_eq!(closed(&mut ws).await?.0, 4004);
    }
    let log: Vec<String> = srv
        .handle
        .recent_events()
        .iter()
        .map(|l| l.json.clone())
        .collect();
    let log = log.join("\n");
    assert!(!log.contains("SECRET"), "{log}");
    assert!(log.contains("access=…redacted&room=1"), "{log}");
    Ok(())
}

/// A full disk (here `/dev/full`, where every write fails with ENOSPC) stops only the log
/// file: clients are served, the UI's stats and Logs say what is wrong.
#[tokio::test]
async fn a_full_disk_for_the_log_keeps_the_server_serving_and_says_so() -> Result<()> {
    let srv = TestServer::start(config_from("[log]\nfile = \"/dev/full\"\n")).await;
    let mut ws = srv.connect("/ws/echo/").await;
    let mut error = None;
    for i in 0..200 {
        send_text(&mut ws, &format!("message {i}")).await;
        assert_eq!(next_text(&mut ws).await?, format!("message {i}"));
        error = srv.handle.stats().log_error;
        if error.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let error = error.expect("the stats name the log file's problem");
    assert!(
        error.contains("/dev/full") && error.contains("No space left"),
        "{error}"
    );
    // Still serving, and the Logs screen has said it once.
    send_text(&mut ws, "after").await;
    assert_eq!(next_text(&mut ws).await?, "after");
    let said: Vec<String> = srv
        .handle
        .recent_events()
        .iter()
        .filter(|l| l.kind == sockpit::events::EventKind::ServerError)
        .filter_map(|l| {
            let event: serde_json::Value = serde_json::from_str(&l.json).ok()?;
            Some(event["reason"].as_str()?.to_string())
        })
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("log file: /dev/full: No space left"),
        "{said:?}"
    );
    Ok(())
}

/// `kill -9` in the middle of a config save leaves the old file or the new one, whole,
/// never an empty or half-written one.
#[tokio::test]
async fn kill_9_during_a_config_save_leaves_a_whole_file() -> Result<()> {
    let padding = "#".repeat(200_000);
    for round in 0..8u64 {
        let old = format!("# old\n{padding}\n[server]\nmax_connections = 100\n");
        let srv = Spawned::serve(&old)?;
        let file = srv.data_dir.join("sockpit.toml");
        let new = format!("# new\n{padding}\n[server]\nmax_connections = 200\n");
        let client = reqwest::Client::new();
        let saves: Vec<_> = (0..4)
            .map(|_| {
                client
                    .put(srv.http("/_sockpit/api/config"))
                    .bearer_auth(KEY)
                    .json(&serde_json::json!({ "toml": new }))
                    .send()
            })
            .collect();
        let pending = tokio::spawn(futures_util::future::join_all(saves));
        // Somewhere inside the saves, at a different point each round.
        tokio::time::sleep(std::time::Duration::from_micros(300 * round)).await;
        let pid = srv.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()?;
        let _ = pending.await;
        let now = std::fs::read_to_string(&file)?;
        assert!(
            now == old || now == new,
            "round {round}: a {} byte file",
            now.len()
        );
        sockpit::Config::from_file(&file)?;
    }
    Ok(())
}

/// A local process opening thousands of idle sockets: the server holds at most
/// `MAX_HTTP_CONNECTIONS` of them (the rest wait in the kernel's queue) and answers again
/// once they go. (That a silent socket is dropped after the handshake timeout is
/// `websocket.rs::half_a_request_head_is_dropped_after_the_handshake_timeout`.)
#[tokio::test]
async fn idle_sockets_are_capped() -> Result<()> {
    let srv = Spawned::serve("[server]\nhandshake_timeout_s = 600\n")?;
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", srv.child.id()))
            .unwrap()
            .count()
    };
    let before = fds();
    // Paced in batches the server has time to accept (the kernel's accept queue is only
    // 128 deep), until 1,300 sockets were offered.
    let mut idle = Vec::new();
    let mut held = 0;
    'offer: for _ in 0..(1300 / 50) {
        for _ in 0..50 {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", srv.port));
            match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
                Ok(Ok(s)) => idle.push(s),
                // The server takes no more and its accept queue is full.
                _ => break 'offer,
            }
        }
        let want = idle.len();
        for _ in 0..40 {
            held = fds().saturating_sub(before);
            if held >= want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    held = held.max(fds().saturating_sub(before));
    let cap = sockpit::server::MAX_HTTP_CONNECTIONS;
    assert!(
        held <= cap + 16 && held + 64 >= cap,
        "the server holds {held} sockets (cap {cap})"
    );
    drop(idle);
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reqwest::get(srv.http("/_sockpit/healthz")),
    )
    .await??;
    assert_eq!(answer.text().await?, "ok");
    Ok(())
}

/// An upstream that answers every request with `mib` MiB, in 64 KiB chunks.
async fn huge_upstream(mib: usize) -> std::net::SocketAddr {
    use axum::body::{Body, Bytes};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        let chunk = Bytes::from(vec![b'x'; 64 << 10]);
        let chunks = futures_util::stream::iter(
            (0..mib * 16).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        Body::from_stream(chunks)
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_huge_upstream_answer_streams_through_in_constant_memory() -> Result<()> {
    let up = huge_upstream(256).await;
    let srv = Spawned::serve(&format!("[proxy]\nupstream = \"http://{up}\"\n"))?;
    // Warm up: the first request builds the client's pool.
    let r = reqwest::get(srv.http("/warm")).await?;
    assert_eq!(r.status(), 200);
    drop(r);
    let before = srv.rss_kib();
    let mut r = reqwest::get(srv.http("/big")).await?;
    let mut total = 0usize;
    while let Some(c) = r.chunk().await? {
        total += c.len();
    }
    assert_eq!(total, 256 << 20);
    let grown_mib = srv.rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "256 MiB through the proxy grew the server by {grown_mib} MiB"
    );
    Ok(())
}

/// A 300 KB frame sent 997 bytes at a time with pauses: the server's reader (tungstenite,
/// patched to read the rest of a frame in one call: vendor/README.md) must put the pieces
/// together as they come, and the echo must be the frame, byte for byte.
#[tokio::test]
async fn a_large_frame_trickled_in_pieces_is_echoed_whole() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start(config_from(
        "[[endpoint]]\npath = \"/ws/echo/\"\nauth = \"none\"\non_message = \"echo\"\n",
    ))
    .await;
    let mut tcp = tokio::net::TcpStream::connect(srv.handle.local_addr()).await?;
    tcp.write_all(
        b"GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await?);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend((payload.len() as u64).to_be_bytes());
    frame.extend(mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    for (i, piece) in frame.chunks(997).enumerate() {
        tcp.write_all(piece).await?;
        if i % 25 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    let mut echo_head = [0u8; 10];
    tcp.read_exact(&mut echo_head).await?;
    assert_eq!(
        echo_head[..2],
        [0x82, 127],
        "an unmasked binary frame, 64-bit length"
    );
    assert_eq!(
        u64::from_be_bytes(echo_head[2..].try_into()?),
        payload.len() as u64
    );
    let mut echo = vec![0u8; payload.len()];
    tcp.read_exact(&mut echo).await?;
    assert!(echo == payload, "the echo differs from what was sent");
    Ok(())
}

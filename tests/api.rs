//! The `/_sockpit/` HTTP routes over real sockets.

mod common;

use anyhow::Result;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn healthz_needs_no_key() -> Result<()> {
    let srv = TestServer::default().await;
    let r = reqwest::get(srv.http("/_sockpit/healthz")).await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await?, "ok");
    Ok(())
}

#[tokio::test]
async fn publish_errors_are_json_with_the_right_status() -> Result<()> {
    let srv = TestServer::default().await;
    let url = srv.http("/_sockpit/api/publish");
    let body = json!({"channel": "dashboard", "data": 1});

    let r = client().post(&url).json(&body).send().await?;
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await?;
    assert_eq!(e["error"], "unauthorized");
    assert!(e["detail"].as_str().unwrap().contains("API key required"));

    let r = client()
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    // X-API-Key works as well as Bearer.
    let r = client()
        .post(&url)
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), 200);

    let r = client()
        .post(&url)
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await?;
    assert_eq!(e["error"], "bad_request");

    let r = client()
        .post(&url)
        .bearer_auth(KEY)
        .json(&json!({"data": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    let r = client()
        .post(&url)
        .bearer_auth(KEY)
        .json(&json!({"channel": "a", "user": "1", "data": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    let r = client()
        .post(&url)
        .bearer_auth(KEY)
        .json(&json!({"channel": "a"}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    assert!(r.text().await?.contains("data"));

    let big = "x".repeat((1 << 20) + (100 << 10));
    let r = client()
        .post(&url)
        .bearer_auth(KEY)
        .json(&json!({"channel": "a", "data": big}))
        .send()
        .await?;
    assert_eq!(r.status(), 413);
    Ok(())
}

#[tokio::test]
async fn foreign_host_is_refused() -> Result<()> {
    let srv = TestServer::default().await;
    let r = client()
        .get(srv.http("/_sockpit/api/stats"))
        .bearer_auth(KEY)
        .header("host", "evil.test:8000")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    // HTTP/1.0 without Host: 400.
    let mut raw = tokio::net::TcpStream::connect(srv.handle.local_addr()).await?;
    raw.write_all(b"GET /_sockpit/healthz HTTP/1.0\r\n\r\n")
        .await?;
    let mut out = String::new();
    raw.read_to_string(&mut out).await?;
    assert!(out.starts_with("HTTP/1.0 400"), "{out}");
    Ok(())
}

#[tokio::test]
async fn stats_connections_and_publish_to_one_connection() -> Result<()> {
    let srv = TestServer::default().await;
    let mut a = srv.connect("/ws/echo/").await;
    let mut b = srv.connect("/ws/echo/").await;
    srv.wait_connections(2).await;
    let stats = srv.get_json("/_sockpit/api/stats").await;
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["endpoints"]["/ws/echo/"], 2);
    assert_eq!(stats["endpoints"]["/ws/dashboard/"], 0);
    let conns = srv.get_json("/_sockpit/api/connections").await;
    let first = &conns["connections"][0];
    for key in [
        "id",
        "endpoint",
        "path",
        "channels",
        "remote",
        "since",
        "msgs_in",
        "msgs_out",
        "bytes_in",
        "bytes_out",
    ] {
        assert!(!first[key].is_null(), "missing {key} in {first}");
    }
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        srv.publish(json!({"connection": id, "data": "only a"}))
            .await,
        1
    );
    assert_eq!(next_text(&mut a).await?, "only a");
    silent(&mut b, 300).await;
    send_text(&mut b, "echo").await;
    assert_eq!(next_text(&mut b).await?, "echo");
    let stats = srv.get_json("/_sockpit/api/stats").await;
    assert_eq!(stats["messages_in"], 1);
    assert_eq!(stats["published"], 1);
    Ok(())
}

#[tokio::test]
async fn minted_tokens_connect() -> Result<()> {
    let srv = TestServer::default().await;
    let r: Value = client()
        .post(srv.http("/_sockpit/api/token"))
        .bearer_auth(KEY)
        .json(&json!({"user_id": "42", "ttl_s": 60, "claims": {"role": "admin"}}))
        .send()
        .await?
        .json()
        .await?;
    let token = r["token"].as_str().unwrap();
    let mut ws = srv.connect(&format!("/ws/dashboard/?token={token}")).await;
    srv.wait_connections(1).await;
    assert_eq!(srv.publish(json!({"user": "42", "data": "x"})).await, 1);
    assert_eq!(next_text(&mut ws).await?, "x");
    let r = client()
        .post(srv.http("/_sockpit/api/token"))
        .bearer_auth(KEY)
        .json(&json!({"ttl_s": 60}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    Ok(())
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() -> Result<()> {
    let srv = TestServer::default().await;
    let _ws = srv.connect("/ws/echo/").await;
    let mut bad = srv.connect("/ws/dashboard/").await;
    let _ = closed(&mut bad).await?;
    srv.wait_connections(1).await;
    let r = client().get(srv.http("/_sockpit/metrics")).send().await?;
    assert_eq!(r.status(), 401, "metrics need the key");
    let r = client()
        .get(srv.http("/_sockpit/metrics"))
        .bearer_auth(KEY)
        .send()
        .await?;
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await?;
    let samples = parse_prometheus(&text);
    let get = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|s| s.2)
    };
    assert_eq!(
        get("sockpit_connections", "endpoint=\"/ws/echo/\""),
        Some(1.0)
    );
    assert_eq!(
        get(
            "sockpit_handshakes_total",
            "verdict=\"rejected\",code=\"4001\""
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            "sockpit_handshakes_total",
            "verdict=\"accepted\",code=\"0\""
        ),
        Some(1.0)
    );
    for name in [
        "sockpit_messages_in_total",
        "sockpit_messages_out_total",
        "sockpit_published_total",
    ] {
        assert!(get(name, "").is_some(), "{name} missing");
    }
    assert!(text.contains("# TYPE sockpit_dropped_clients_total counter"));
    Ok(())
}

/// A strict reader of the text format: every sample line is `name{labels} value`, every
/// metric has a TYPE line before its samples.
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut typed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value.parse().expect("numeric value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closed labels")),
            None => (series, ""),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(typed.contains(name), "sample before TYPE: {line}");
        out.push((name.to_string(), labels.to_string(), value));
    }
    out
}

#[tokio::test]
async fn login_sets_an_httponly_strict_cookie_that_opens_the_api() -> Result<()> {
    let srv = TestServer::default().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = no_redirect
        .get(srv.http("/_sockpit/login?key=wrong"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = no_redirect
        .get(srv.http(&format!("/_sockpit/login?key={KEY}")))
        .send()
        .await?;
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str()?.to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    let r = client()
        .get(srv.http("/_sockpit/api/stats"))
        .header("cookie", pair)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    Ok(())
}

/// Cookies ignore ports: a page on `127.0.0.1:3000` sends Sockpit's session cookie too.
/// The cookie is not the key, expires, and changes nothing unless the request comes from
/// Sockpit's own pages.
#[tokio::test]
async fn the_session_cookie_is_not_the_key_and_refuses_cross_site_requests() -> Result<()> {
    let srv = TestServer::default().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = no_redirect
        .get(srv.http(&format!("/_sockpit/login?key={KEY}")))
        .send()
        .await?;
    let set = r.headers()["set-cookie"].to_str()?.to_string();
    assert!(!set.contains(KEY), "the cookie carries the API key: {set}");
    assert!(set.contains("Max-Age=43200"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let own = format!("http://{}", srv.handle.local_addr());
    let publish = |origin: Option<&str>| {
        let mut r = client()
            .post(srv.http("/_sockpit/api/publish"))
            .header("cookie", &cookie)
            .json(&json!({"channel": "dashboard", "data": 1}));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(publish(Some(&own)).await?.status(), 200);
    for foreign in [
        Some("http://127.0.0.1:3000"),
        Some("http://evil.test"),
        None,
    ] {
        let r = publish(foreign).await?;
        assert_eq!(r.status(), 403, "{foreign:?}");
        let e: Value = r.json().await?;
        assert!(e["detail"].as_str().unwrap().contains("cross-site"), "{e}");
    }
    // The live event stream, from another localhost port, with the cookie: refused.
    let events = srv.ws("/_sockpit/api/events");
    let foreign = connect(
        &events,
        &[("cookie", &cookie), ("origin", "http://localhost:5173")],
    )
    .await;
    assert!(foreign.is_err(), "a foreign page read the live stream");
    assert!(
        connect(&events, &[("cookie", &cookie), ("origin", &own)])
            .await
            .is_ok()
    );
    // A bogus cookie planted by another localhost page (sent first) locks nobody out.
    let r = client()
        .get(srv.http("/_sockpit/api/stats"))
        .header("cookie", format!("sockpit_session=planted; {cookie}"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    // A DELETE from another localhost port, with the cookie: refused too.
    let r = client()
        .delete(srv.http("/_sockpit/api/connections/c1"))
        .header("cookie", &cookie)
        .header("origin", "http://localhost:3000")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    // An expired session, even signed with the right key, is refused.
    let session_key = std::fs::read_to_string(srv.data_dir.join("session_key"))?;
    let expired = sign(
        &json!({"exp": 1_000_000, "sub": "sockpit-ui"}),
        session_key.trim(),
    );
    let r = client()
        .get(srv.http("/_sockpit/api/stats"))
        .header("cookie", format!("sockpit_session={expired}"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    // And the key itself is no session.
    let r = client()
        .get(srv.http("/_sockpit/api/stats"))
        .header("cookie", format!("sockpit_session={KEY}"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    Ok(())
}

#[tokio::test]
async fn plain_http_to_an_endpoint_says_upgrade() -> Result<()> {
    let srv = TestServer::default().await;
    let r = reqwest::get(srv.http("/ws/echo/")).await?;
    assert_eq!(r.status(), 426);
    Ok(())
}

#[tokio::test]
async fn generated_secret_and_key_are_private_and_stable() -> Result<()> {
    let mut cfg = sockpit::Config::default();
    cfg.auth.secret.clear();
    cfg.api.key.clear();
    let srv = TestServer::start(cfg.clone()).await;
    let key = srv.handle.api_key().to_string();
    let token = srv.token("5");
    #[cfg(unix)]
    for f in ["api_key", "jwt_secret"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(srv.data_dir.join(f))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // A second server on the same data dir uses the same secret and key.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let again =
        sockpit::Server::start(cfg, listener, sockpit::Paths::in_dir(srv.data_dir.clone())).await?;
    assert_eq!(again.api_key(), key);
    let addr = again.local_addr();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/dashboard/?token={token}"))
            .await?;
    silent(&mut ws, 200).await;
    assert_eq!(again.stats().connections, 1);
    again.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_ui_is_served_behind_the_key() -> Result<()> {
    let srv = TestServer::default().await;
    let r = client().get(srv.http("/_sockpit/")).send().await?;
    assert_eq!(r.status(), 401, "{:?}", r.text().await);
    let r = client()
        .get(srv.http("/_sockpit/"))
        .bearer_auth(KEY)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    assert!(r.text().await?.to_lowercase().contains("<!doctype html>"));
    let r = client()
        .get(srv.http("/_sockpit/api/nope"))
        .bearer_auth(KEY)
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await?;
    assert_eq!(e["error"], "not_found");
    Ok(())
}

#[tokio::test]
async fn the_desktop_webview_may_call_the_api_cross_origin() -> Result<()> {
    let srv = TestServer::default().await;
    let r = client()
        .request(reqwest::Method::OPTIONS, srv.http("/_sockpit/api/stats"))
        .header("origin", "tauri://localhost")
        .header("access-control-request-headers", "x-api-key")
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "tauri://localhost"
    );
    let r = client()
        .get(srv.http("/_sockpit/api/stats"))
        .header("origin", "tauri://localhost")
        .header("x-api-key", KEY)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "tauri://localhost"
    );
    // A web page's origin gets no CORS headers, and still needs the key.
    let r = client()
        .get(srv.http("/_sockpit/api/stats"))
        .header("origin", "http://evil.test")
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The events socket accepts the desktop origin with ?key=.
    let mut ev = connect(
        &srv.ws(&format!("/_sockpit/api/events?key={KEY}")),
        &[("origin", "tauri://localhost")],
    )
    .await?;
    assert!(next_text(&mut ev).await?.contains("\"type\":\"hello\""));
    let err = connect(
        &srv.ws(&format!("/_sockpit/api/events?key={KEY}")),
        &[("origin", "http://evil.test")],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    Ok(())
}

#[tokio::test]
async fn endpoints_describe_the_config_for_the_test_client() -> Result<()> {
    let srv = TestServer::start(config_from(
        "[[endpoint]]\npath = \"/ws/chat/{room}/\"\nchannel = [\"chat.{room}\", \"user_{user}\"]\non_message = \"broadcast\"\n",
    ))
    .await;
    let r = srv.get_json("/_sockpit/api/endpoints").await;
    let e = &r["endpoints"][0];
    assert_eq!(e["path"], "/ws/chat/{room}/");
    assert_eq!(e["params"], json!(["room"]));
    assert_eq!(e["channels"], json!(["chat.{room}", "user_{user}"]));
    assert_eq!(e["auth"], "jwt");
    assert_eq!(e["on_message"], "broadcast");
    assert_eq!(r["token_query"], "token");
    Ok(())
}

#[tokio::test]
async fn settings_validate_refuse_and_save() -> Result<()> {
    let srv = TestServer::default().await;
    let file = srv.data_dir.join("sockpit.toml");
    let view = srv.get_json("/_sockpit/api/config").await;
    assert_eq!(view["exists"], false);
    assert!(view["toml"].as_str().unwrap().contains("[server]"));

    let bad = client()
        .post(srv.http("/_sockpit/api/config/validate"))
        .bearer_auth(KEY)
        .json(&json!({"toml": "[server]\nport = 9000\nbogus = 1\n"}))
        .send()
        .await?;
    assert_eq!(bad.status(), 422);
    let e: Value = bad.json().await?;
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with("sockpit.toml:3: server.bogus:"),
        "{e}"
    );

    // An invalid PUT writes nothing and the server keeps running.
    let r = client()
        .put(srv.http("/_sockpit/api/config"))
        .bearer_auth(KEY)
        .json(&json!({"toml": "[server]\nbogus = 1\n"}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    assert!(!file.exists());
    let mut applied = srv.handle.applied_config();
    assert!(applied.borrow().is_none());
    assert_eq!(
        reqwest::get(srv.http("/_sockpit/healthz")).await?.status(),
        200
    );

    // The log file cannot be pointed elsewhere through the API (the server appends to
    // it and renames it when it rotates).
    let victim = srv.data_dir.join("victim-rc");
    std::fs::write(&victim, "# the user's shell rc\n")?;
    let r = client()
        .put(srv.http("/_sockpit/api/config"))
        .bearer_auth(KEY)
        .json(&json!({"toml": format!("[log]\nfile = {:?}\n", victim.display().to_string())}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    assert!(r.text().await?.contains("log.file cannot be changed"));
    assert!(!file.exists());
    assert_eq!(std::fs::read_to_string(&victim)?, "# the user's shell rc\n");

    // A taken port is refused too.
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken = held.local_addr()?.port();
    let r = client()
        .put(srv.http("/_sockpit/api/config"))
        .bearer_auth(KEY)
        .json(&json!({"toml": format!("[server]\nport = {taken}\n")}))
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    assert!(r.text().await?.contains(&format!("port {taken} is in use")));

    let free = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let text = format!("[server]\nport = {free}\n");
    let r: Value = client()
        .put(srv.http("/_sockpit/api/config"))
        .bearer_auth(KEY)
        .json(&json!({ "toml": text }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(r["restarting"], true);
    assert_eq!(r["base_url"], format!("http://127.0.0.1:{free}"));
    // The saved file sets no key, so the restarted server uses the generated one.
    let generated = std::fs::read_to_string(srv.data_dir.join("api_key"))?;
    assert!(
        r["login_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("key={generated}"))
    );
    assert_eq!(std::fs::read_to_string(&file)?, text);
    applied.changed().await?;
    assert_eq!(applied.borrow().as_ref().unwrap().server.port, free);
    Ok(())
}

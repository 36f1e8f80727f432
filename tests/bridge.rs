//! `[bridge] channels_redis`: a real `redis-server` (from apt, started here on a free
//! port) and the real channels_redis 4 (from PyPI, in target/django-venv, built by
//! scripts/django-venv.sh) calling `group_send` on both of its layers; a real WebSocket
//! client on Sockpit receives the message.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;
use serde_json::{Value, json};

/// Runs `group_send(group, message)` with channels_redis's `layer` ("core" or "pubsub").
fn group_send(layer: &str, url: &str, group: &str, message: &Value) -> Result<()> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/django-venv/bin/python");
    anyhow::ensure!(
        python.exists(),
        "{} is missing: run scripts/django-venv.sh",
        python.display()
    );
    let script = r#"
import asyncio, json, sys
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
layer_name, url, group, message = sys.argv[1:5]
cls = RedisChannelLayer if layer_name == "core" else RedisPubSubChannelLayer
async def main():
    layer = cls(hosts=[url])
    await layer.group_send(group, json.loads(message))
    if layer_name == "core":
        await layer.close_pools()
    else:
        await layer.flush()
asyncio.run(main())
"#;
    let out = Command::new(python)
        .args(["-c", script, layer, url, group, &message.to_string()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "group_send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn bridge_config(url: &str, extra: &str) -> sockpit::Config {
    config_from(&format!(
        "[bridge]\nchannels_redis = \"{url}\"\n{extra}\n\
         [[endpoint]]\npath = \"/ws/dashboard/\"\nchannel = \"dashboard\"\nauth = \"none\"\n"
    ))
}

/// Waits until the bridge says `state` with at least `groups` groups joined.
async fn bridge_until(server: &TestServer, state: &str, groups: u64, secs: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let b = serde_json::to_value(server.handle.stats().bridge.unwrap()).unwrap();
        if b["state"] == state && b["groups"].as_u64().unwrap() >= groups {
            return b;
        }
        assert!(
            Instant::now() < until,
            "bridge never {state} with {groups} groups: {b}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_send_on_both_layers_reaches_the_browser_with_the_exact_payload() -> Result<()> {
    let redis = Redis::start()?;
    let server = TestServer::start(bridge_config(&redis.url(), "")).await;
    let mut ws = server.connect("/ws/dashboard/").await;
    bridge_until(&server, "connected", 1, 10).await;

    let data =
        json!({"count": 3, "items": ["a", "é"], "nested": {"ok": true, "n": null}, "ratio": 0.25});
    for layer in ["core", "pubsub"] {
        let url = redis.url();
        let d = data.clone();
        tokio::task::spawn_blocking(move || {
            group_send(
                layer,
                &url,
                "dashboard",
                &json!({"type": "dashboard.update", "data": d}),
            )
        })
        .await??;
        let got: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
        assert_eq!(got, data, "{layer}");
    }
    // Counted and logged like a publish, saying where it came from.
    let stats = server.handle.stats();
    assert_eq!(stats.published, 2);
    assert_eq!(stats.bridge.as_ref().unwrap().received, 2);
    let e = server.events("published").remove(0);
    assert_eq!(e["channel"], "dashboard");
    assert_eq!(e["delivered"], 1);
    assert_eq!(e["reason"], "channels_redis group_send");

    // A group nobody here is in: nothing arrives, nothing is logged or counted.
    let url = redis.url();
    tokio::task::spawn_blocking(move || {
        group_send(
            "pubsub",
            &url,
            "elsewhere",
            &json!({"type": "x", "data": 1}),
        )
    })
    .await??;
    silent(&mut ws, 300).await;
    assert_eq!(server.handle.stats().published, 2);
    assert_eq!(server.handle.stats().bridge.unwrap().received, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_event_sends_the_whole_event() -> Result<()> {
    let redis = Redis::start()?;
    let server = TestServer::start(bridge_config(&redis.url(), "message = \"event\"")).await;
    let mut ws = server.connect("/ws/dashboard/").await;
    bridge_until(&server, "connected", 1, 10).await;
    let event = json!({"type": "dashboard.update", "data": {"count": 1}});
    let (url, e) = (redis.url(), event.clone());
    tokio::task::spawn_blocking(move || group_send("pubsub", &url, "dashboard", &e)).await??;
    let got: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
    assert_eq!(got, event);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_redis_restarts() -> Result<()> {
    let redis = Redis::start()?;
    let server = TestServer::start(bridge_config(&redis.url(), "")).await;
    let mut ws = server.connect("/ws/dashboard/").await;
    bridge_until(&server, "connected", 1, 10).await;

    let redis = redis.restart()?;
    // The drop is seen, then the bridge is back and in its groups again (a restarted
    // Redis without persistence forgot them).
    bridge_until(&server, "reconnecting", 0, 10).await;
    let b = bridge_until(&server, "connected", 1, 20).await;
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .starts_with("listening for group_send on redis://127.0.0.1:"),
        "{b}"
    );
    let states = server.reasons("bridge_state");
    assert!(
        states.iter().any(|s| s.contains("retrying in")),
        "{states:?}"
    );

    for layer in ["core", "pubsub"] {
        let url = redis.url();
        tokio::task::spawn_blocking(move || {
            group_send(
                layer,
                &url,
                "dashboard",
                &json!({"type": "t", "data": {"after": "restart"}}),
            )
        })
        .await??;
        let got: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
        assert_eq!(got, json!({"after": "restart"}), "{layer}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_on_the_group_channel_are_dropped_with_a_reason() -> Result<()> {
    let redis = Redis::start()?;
    let server = TestServer::start(bridge_config(&redis.url(), "")).await;
    let mut ws = server.connect("/ws/dashboard/").await;
    bridge_until(&server, "connected", 1, 10).await;
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    // Not msgpack; over max_message_bytes (1 MiB); 100,000 nested arrays.
    let deep = [vec![0x91u8; 100_000], vec![0xc0]].concat();
    for payload in [vec![0xc1u8, 0xff, 0x00], vec![0xc0; 2 << 20], deep] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("asgi__group__dashboard")
            .arg(payload)
            .query_async(&mut conn)
            .await?;
    }
    silent(&mut ws, 300).await;
    let errors = server.reasons("server_error");
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("not msgpack"), "{errors:?}");
    assert!(errors[1].contains("over max_message_bytes"), "{errors:?}");
    // The socket and the bridge are fine afterwards.
    let url = redis.url();
    tokio::task::spawn_blocking(move || {
        group_send(
            "pubsub",
            &url,
            "dashboard",
            &json!({"type": "t", "data": "still here"}),
        )
    })
    .await??;
    assert_eq!(next_text(&mut ws).await?, "still here");
    Ok(())
}

#[tokio::test]
async fn a_bad_redis_url_names_the_key_and_never_shows_a_password() {
    let e = sockpit::Config::from_toml("[bridge]\nchannels_redis = \"http://x\"\n", "sockpit.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bridge.channels_redis"), "{e}");
    assert!(e.contains("expected redis://"), "{e}");
    let e = sockpit::Config::from_toml(
        "[bridge]\nchannels_redis = \"redis://:hunter2@127.0.0.1:notaport/0\"\n",
        "sockpit.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains("hunter2"), "{e}");
    let c = sockpit::Config::from_toml(
        "[bridge]\nchannels_redis = \"unix:///run/redis.sock?db=1&pass=hunter2\"\n",
        "sockpit.toml",
    )
    .unwrap();
    let url = c.bridge.channels_redis.unwrap();
    assert!(!url.redacted().contains("hunter2"), "{}", url.redacted());
    assert!(!format!("{url:?}").contains("hunter2"));
}

/// This run's channel in `group` on the default layer, once the bridge joined.
async fn member_of(redis: &Redis, group: &str) -> Result<Option<String>> {
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("asgi:group:{group}"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    Ok(members.into_iter().find(|m| m.starts_with("sockpit.")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_layers_inbox_refuses_garbage_and_the_group_is_left_when_empty() -> Result<()> {
    let redis = Redis::start()?;
    let server = TestServer::start(bridge_config(&redis.url(), "")).await;
    let mut ws = server.connect("/ws/dashboard/").await;
    bridge_until(&server, "connected", 1, 10).await;
    let channel = member_of(&redis, "dashboard").await?.expect("joined");
    let inbox = format!("asgi{}", &channel[..=channel.find('!').unwrap()]);
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let event = |channels: Vec<&str>| {
        let mut v = vec![0u8; 12];
        let m = rmpv::Value::Map(vec![
            ("type".into(), "t".into()),
            ("data".into(), "once".into()),
            (
                "__asgi_channel__".into(),
                rmpv::Value::Array(channels.into_iter().map(Into::into).collect()),
            ),
        ]);
        rmpv::encode::write_value(&mut v, &m).unwrap();
        v
    };
    // Shorter than the random prefix; not msgpack; then one naming our channel twice and
    // a group with a name channels would refuse.
    let bad_name = format!("{}!no such group", &channel[..channel.find('!').unwrap()]);
    for (i, member) in [
        b"short".to_vec(),
        [vec![0u8; 12], vec![0xc1, 0xc1]].concat(),
        event(vec![&channel, &channel, &bad_name]),
    ]
    .into_iter()
    .enumerate()
    {
        let _: i64 = redis::cmd("ZADD")
            .arg(&inbox)
            .arg(i)
            .arg(member)
            .query_async(&mut conn)
            .await?;
    }
    assert_eq!(next_text(&mut ws).await?, "once");
    silent(&mut ws, 300).await;
    let errors = server.reasons("server_error");
    assert_eq!(errors.len(), 2, "{errors:?}");

    // The last member leaves: so does the bridge's channel.
    ws.close(None).await?;
    let until = Instant::now() + Duration::from_secs(5);
    while member_of(&redis, "dashboard").await?.is_some() {
        assert!(Instant::now() < until, "still in the group");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_bridges_redis() -> Result<()> {
    let doctor = |server: &TestServer| {
        let url = server.http("/_sockpit/api/doctor");
        async move {
            let r: Value = reqwest::Client::new()
                .post(url)
                .bearer_auth(KEY)
                .json(&json!({}))
                .send()
                .await?
                .json()
                .await?;
            let check = r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "bridge")
                .cloned()
                .unwrap();
            anyhow::Ok(check)
        }
    };
    let redis = Redis::start()?;
    let server = TestServer::start(bridge_config(&redis.url(), "")).await;
    let c = doctor(&server).await?;
    assert_eq!(c["verdict"], "pass", "{c}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server = TestServer::start(bridge_config(&format!("redis://127.0.0.1:{dead}/0"), "")).await;
    let c = doctor(&server).await?;
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(c["fix"].as_str().unwrap().contains("redis-server"), "{c}");
    Ok(())
}

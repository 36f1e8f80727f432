//! `[broker] redis`: two real `sockpit serve` processes on different ports share channels
//! through a real `redis-server`; every subscriber gets each message exactly once, and an
//! instance that loses Redis keeps serving its own clients.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;
use serde_json::{Value, json};

fn instance(redis: &Redis) -> Result<Spawned> {
    Spawned::serve(&format!(
        "[broker]\nredis = \"{}\"\n\n[[endpoint]]\npath = \"/ws/chat/{{room}}/\"\nchannel = \"chat.{{room}}\"\n\
         auth = \"none\"\non_message = \"broadcast\"\n",
        redis.url()
    ))
}

async fn stats(s: &Spawned) -> Value {
    reqwest::Client::new()
        .get(s.http("/_sockpit/api/stats"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn publish(s: &Spawned, body: Value) -> Value {
    reqwest::Client::new()
        .post(s.http("/_sockpit/api/publish"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until `s`'s broker is `state` and sees `instances` instances with `connections`.
async fn broker_until(s: &Spawned, state: &str, instances: u64, connections: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let b = stats(s).await["broker"].clone();
        if b["state"] == state && b["instances"] == instances && b["connections"] == connections {
            return b;
        }
        assert!(
            Instant::now() < until,
            "broker never {state}/{instances}/{connections}: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_channel_and_deliver_each_message_once() -> Result<()> {
    let redis = Redis::start()?;
    let (one, two) = (instance(&redis)?, instance(&redis)?);
    let mut a = connect(&one.ws("/ws/chat/r1/"), &[]).await?;
    let mut b = connect(&two.ws("/ws/chat/r1/"), &[]).await?;
    // Presence across instances: both see two instances and two connections.
    let seen = broker_until(&one, "connected", 2, 2).await;
    assert_eq!(seen["channels"]["chat.r1"], 2, "{seen}");
    broker_until(&two, "connected", 2, 2).await;

    for (from, text) in [(&one, "from one"), (&two, "from two")] {
        let r = publish(from, json!({"channel": "chat.r1", "data": text})).await;
        assert_eq!(
            r["delivered"], 1,
            "local delivery is counted where it happened"
        );
        assert_eq!(next_text(&mut a).await?, text);
        assert_eq!(next_text(&mut b).await?, text);
        silent(&mut a, 300).await;
        silent(&mut b, 300).await;
    }
    // A client's broadcast reaches the other instance's members, once.
    send_text(&mut a, "hello r1").await;
    assert_eq!(next_text(&mut a).await?, "hello r1");
    assert_eq!(next_text(&mut b).await?, "hello r1");
    silent(&mut b, 300).await;
    // Another room is not this one.
    publish(&one, json!({"channel": "chat.r2", "data": "elsewhere"})).await;
    silent(&mut b, 300).await;
    let s = stats(&one).await["broker"].clone();
    assert!(s["forwarded"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["received"], 1, "{s}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_loses_redis_serves_its_own_clients_and_says_so() -> Result<()> {
    let redis = Redis::start()?;
    let (one, two) = (instance(&redis)?, instance(&redis)?);
    let mut a = connect(&one.ws("/ws/chat/r1/"), &[]).await?;
    let mut b = connect(&two.ws("/ws/chat/r1/"), &[]).await?;
    broker_until(&one, "connected", 2, 2).await;

    let port = redis.port;
    drop(redis);
    // Away from Redis it counts only its own.
    let down = broker_until(&one, "reconnecting", 1, 1).await;
    assert!(
        down["detail"]
            .as_str()
            .unwrap()
            .contains("serving local clients only"),
        "{down}"
    );
    publish(&one, json!({"channel": "chat.r1", "data": "local only"})).await;
    assert_eq!(next_text(&mut a).await?, "local only");
    silent(&mut b, 300).await;

    // Back: messages cross again.
    let _redis = Redis::start_on(port, temp_dir("redis-again"))?;
    broker_until(&one, "connected", 2, 2).await;
    broker_until(&two, "connected", 2, 2).await;
    publish(
        &one,
        json!({"channel": "chat.r1", "data": "together again"}),
    )
    .await;
    assert_eq!(next_text(&mut a).await?, "together again");
    assert_eq!(next_text(&mut b).await?, "together again");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_send_reaches_every_instances_subscribers_once() -> Result<()> {
    // Both instances hear channels_redis themselves; the broker does not repeat it.
    let redis = Redis::start()?;
    let config = format!(
        "[broker]\nredis = \"{url}\"\n[bridge]\nchannels_redis = \"{url}\"\n\n\
         [[endpoint]]\npath = \"/ws/dashboard/\"\nchannel = \"dashboard\"\nauth = \"none\"\n",
        url = redis.url()
    );
    let (one, two) = (Spawned::serve(&config)?, Spawned::serve(&config)?);
    let mut a = connect(&one.ws("/ws/dashboard/"), &[]).await?;
    let mut b = connect(&two.ws("/ws/dashboard/"), &[]).await?;
    broker_until(&one, "connected", 2, 2).await;
    for s in [&one, &two] {
        let until = Instant::now() + Duration::from_secs(10);
        while stats(s).await["bridge"]["groups"] != 1 {
            assert!(Instant::now() < until, "the bridge never joined");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/django-venv/bin/python");
    anyhow::ensure!(python.exists(), "run scripts/django-venv.sh first");
    for layer in ["core", "pubsub"] {
        let script = format!(
            "import asyncio\nfrom channels_redis.core import RedisChannelLayer\n\
             from channels_redis.pubsub import RedisPubSubChannelLayer\n\
             cls = RedisChannelLayer if '{layer}' == 'core' else RedisPubSubChannelLayer\n\
             async def main():\n    l = cls(hosts=['{}'])\n    await l.group_send('dashboard', {{'type': 't', 'data': '{layer} once'}})\n\
             asyncio.run(main())\n",
            redis.url()
        );
        let out = std::process::Command::new(&python)
            .args(["-c", &script])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!("{layer} once");
        assert_eq!(next_text(&mut a).await?, want);
        assert_eq!(next_text(&mut b).await?, want);
        silent(&mut a, 300).await;
        silent(&mut b, 300).await;
    }
    Ok(())
}

//! The library's lifecycle owner, as `sockpit serve` and the desktop app drive it: a
//! config saved through Settings restarts the server on its new port, a config that does
//! not start brings the last good one back, and the stop future ends it all.

mod common;

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use sockpit::{Lifecycle, LifecycleError, Paths, StartError, Supervisor};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn healthy(port: u16) -> bool {
    match reqwest::get(format!("http://127.0.0.1:{port}/_sockpit/healthz")).await {
        Ok(r) => r.text().await.is_ok_and(|t| t == "ok"),
        Err(_) => false,
    }
}

async fn wait_healthy(port: u16, want: bool) -> Result<()> {
    for _ in 0..200 {
        if healthy(port).await == want {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("port {port} never became healthy={want}")
}

fn supervisor(port: u16, tag: &str) -> (Supervisor, std::path::PathBuf) {
    let dir = temp_dir(tag);
    let mut c = config();
    c.server.port = port;
    let paths = Paths::in_dir(dir.clone()).with_config_file(Some(dir.join("sockpit.toml")));
    (Supervisor::new(c, paths), dir)
}

#[tokio::test]
async fn settings_restart_the_server_and_the_stop_future_ends_it() -> Result<()> {
    let (old, new) = (free_port(), free_port());
    let (sup, dir) = supervisor(old, "sup-run");
    sup.start().await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = async {
        sup.run(async {
            let _ = stop_rx.await;
        })
        .await
    };
    let drive = async {
        let toml = format!("[server]\nport = {new}\n[api]\nkey = \"{KEY}\"\n");
        let r: Value = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{old}/_sockpit/api/config"))
            .bearer_auth(KEY)
            .json(&json!({ "toml": toml }))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(r["base_url"], format!("http://127.0.0.1:{new}"));
        wait_healthy(new, true).await?;
        wait_healthy(old, false).await?;
        assert!(matches!(sup.state(), Lifecycle::Running(h) if h.local_addr().port() == new));
        let _ = stop_tx.send(());
        anyhow::Ok(())
    };
    let (_, driven) = tokio::join!(running, drive);
    driven?;
    assert!(matches!(sup.state(), Lifecycle::Stopped));
    assert!(!healthy(new).await);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test]
async fn a_config_that_does_not_start_brings_the_last_good_one_back() -> Result<()> {
    let port = free_port();
    let (sup, dir) = supervisor(port, "sup-fallback");
    sup.start().await?;
    let holder = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken = holder.local_addr()?.port();
    let mut next = sup.config();
    next.server.port = taken;
    match sup.apply(next).await {
        Err(LifecycleError::FellBack(e)) => {
            assert!(matches!(*e, StartError::PortInUse { port, .. } if port == taken));
            assert!(
                e.to_string()
                    .contains(&format!("pid {})", std::process::id())),
                "{e}"
            );
        }
        other => bail!("expected a fallback, got {other:?}"),
    }
    assert_eq!(sup.config().server.port, port);
    assert!(healthy(port).await);
    // Without a good config to return to, the failure stays visible as the state.
    sup.stop().await;
    let (fresh, dir2) = supervisor(taken, "sup-failed");
    assert!(matches!(fresh.start().await, Err(LifecycleError::Start(_))));
    assert!(matches!(fresh.state(), Lifecycle::Failed(_)));
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

#[tokio::test]
async fn a_switch_moves_the_server_and_settings_to_the_other_file() -> Result<()> {
    let (a, b) = (free_port(), free_port());
    let (sup, dir) = supervisor(a, "sup-switch");
    sup.start().await?;
    let other = dir.join("profiles/django.toml");
    std::fs::create_dir_all(other.parent().unwrap())?;
    let text = format!("[server]\nport = {b}\n[api]\nkey = \"{KEY}\"\n");
    std::fs::write(&other, &text)?;
    let mut next = sockpit::Config::from_file(&other)?;
    next.auth.secret = SECRET.into();
    sup.switch(next, Some(other.clone())).await?;
    wait_healthy(b, true).await?;
    assert!(!healthy(a).await, "one server at a time");
    let view: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{b}/_sockpit/api/config"))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(view["file"], other.display().to_string());
    assert_eq!(view["toml"], text);
    assert_eq!(sup.paths().config_file, Some(other));

    // A profile that does not start shows why; no fallback to another profile's config.
    let holder = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut taken = sup.config();
    taken.server.port = holder.local_addr()?.port();
    assert!(matches!(
        sup.switch(taken, Some(dir.join("sockpit.toml"))).await,
        Err(LifecycleError::Start(_))
    ));
    assert!(matches!(sup.state(), Lifecycle::Failed(_)));
    assert!(!healthy(b).await);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

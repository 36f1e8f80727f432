//! The `sockpit` binary as a user runs it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_sockpit");

fn sockpit(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("SOCKPIT_DATA_DIR", data_dir)
        .env_remove("SOCKPIT_PORT")
        .env_remove("SOCKPIT_BIND")
        .env_remove("SOCKPIT_JWT_SECRET")
        .env_remove("SOCKPIT_API_KEY")
        .current_dir(data_dir);
    c
}

/// A `sockpit serve` child and the port it printed.
struct Served {
    child: Child,
    port: u16,
    stdout: std::thread::JoinHandle<String>,
}

fn serve(data_dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Result<Served> {
    let mut cmd = sockpit(data_dir);
    cmd.args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first)?;
    let port: u16 = first
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in {first:?}"))?;
    let stdout = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        first + &rest
    });
    Ok(Served {
        child,
        port,
        stdout,
    })
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serve_prints_urls_and_sigterm_closes_clients_1001() -> Result<()> {
    let dir = temp_dir("cli-serve");
    let mut s = serve(&dir, &[])?;
    let base = format!("127.0.0.1:{}", s.port);
    let mut a = connect(&format!("ws://{base}/ws/echo/"), &[]).await?;
    let mut b = connect(&format!("ws://{base}/ws/echo/"), &[]).await?;
    send_text(&mut a, "x").await;
    assert_eq!(next_text(&mut a).await?, "x");
    sigterm(&s.child);
    assert_eq!(closed(&mut a).await?, (1001, "server stopping".into()));
    assert_eq!(closed(&mut b).await?, (1001, "server stopping".into()));
    let status = wait_exit(&mut s.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let out = s.stdout.join().unwrap();
    assert!(out.contains(&format!("ws://{base}/ws/dashboard/")), "{out}");
    assert!(out.contains(&format!("ws://{base}/ws/echo/")), "{out}");
    assert!(out.contains(&format!("POST http://{base}/_sockpit/api/publish")));
    assert!(out.contains(&format!("kept in {}", dir.join("api_key").display())));
    assert!(out.contains(&format!("http://{base}/_sockpit/login?key=")));
    // The log was flushed, ending with server_stopped.
    let log = std::fs::read_to_string(dir.join("sockpit.log.jsonl"))?;
    let last: Value = serde_json::from_str(log.lines().last().unwrap())?;
    assert_eq!(last["kind"], "server_stopped");
    assert!(log.contains("\"kind\":\"message_in\""));
    Ok(())
}

#[tokio::test]
async fn a_token_never_reaches_output_or_the_log_file() -> Result<()> {
    let dir = temp_dir("cli-redact");
    let mut s = serve(&dir, &[("SOCKPIT_LOG", "trace")])?;
    let token_out = sockpit(&dir).args(["token", "--user-id", "9"]).output()?;
    assert!(token_out.status.success());
    let good = String::from_utf8(token_out.stdout)?.trim().to_string();
    let bad = sign(&simplejwt_claims(serde_json::json!(9), -60), "wrong");
    let base = format!("ws://127.0.0.1:{}", s.port);
    let mut ok = connect(&format!("{base}/ws/dashboard/?token={good}"), &[]).await?;
    let mut refused = connect(&format!("{base}/ws/dashboard/?token={bad}"), &[]).await?;
    assert_eq!(closed(&mut refused).await?.0, 4001);
    let mut hdr = connect(
        &format!("{base}/ws/dashboard/"),
        &[("authorization", &format!("Bearer {good}"))],
    )
    .await?;
    send_text(&mut ok, "hello").await;
    send_text(&mut hdr, "hello").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&s.child);
    let _ = closed(&mut ok).await;
    wait_exit(&mut s.child, Duration::from_secs(10));
    let mut stderr = String::new();
    s.child.stderr.take().unwrap().read_to_string(&mut stderr)?;
    let stdout = s.stdout.join().unwrap();
    let log = std::fs::read_to_string(dir.join("sockpit.log.jsonl"))?;
    assert!(
        log.contains("token=…redacted"),
        "the path is logged, redacted"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr), ("log file", &log)] {
        for t in [&good, &bad] {
            let sig = t.rsplit('.').next().unwrap();
            assert!(!text.contains(sig), "a token leaked into {name}");
        }
    }
    Ok(())
}

#[test]
fn a_taken_port_names_its_holder() -> Result<()> {
    let dir = temp_dir("cli-port");
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = held.local_addr()?.port();
    let out = sockpit(&dir)
        .args(["serve", "--port", &port.to_string()])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains(&format!("port {port} is in use (held by ")),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {})", std::process::id())),
        "{err}"
    );
    Ok(())
}

#[test]
fn check_names_the_unknown_key_and_line() -> Result<()> {
    let dir = temp_dir("cli-check");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[server]\nport = 9000\nprot = 9001\n")?;
    let out = sockpit(&dir)
        .args(["check", "--config", file.to_str().unwrap()])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("bad.toml:3: server.prot: unknown field `prot`"),
        "{err}"
    );
    // The file is untouched.
    assert_eq!(
        std::fs::read_to_string(&file)?,
        "[server]\nport = 9000\nprot = 9001\n"
    );
    // sockpit.toml in the working dir is picked up.
    std::fs::write(dir.join("sockpit.toml"), "[server]\nport = 9100\n")?;
    let out = sockpit(&dir).arg("check").output()?;
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)?.contains("sockpit.toml: ok (2 endpoints, port 9100)"));
    Ok(())
}

#[test]
fn token_is_simplejwt_shaped_and_verifies() -> Result<()> {
    let dir = temp_dir("cli-token");
    let out = sockpit(&dir)
        .args([
            "token",
            "--user-id",
            "42",
            "--ttl",
            "15m",
            "--claim",
            "role=admin",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    let secret = std::fs::read_to_string(dir.join("jwt_secret"))?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret.trim().as_bytes()),
        &v,
    )?;
    let c = data.claims;
    assert_eq!(c["token_type"], "access");
    assert_eq!(c["user_id"], 42);
    assert_eq!(c["role"], "admin");
    assert!(c["jti"].as_str().is_some_and(|j| j.len() == 32));
    let ttl = c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap();
    assert_eq!(ttl, 900);
    // The env override wins over the generated secret.
    let out = sockpit(&dir)
        .args(["token", "--user-id", "1"])
        .env("SOCKPIT_JWT_SECRET", "from-env")
        .output()?;
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    assert!(
        jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"from-env"),
            &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
        )
        .is_ok()
    );
    Ok(())
}

#[tokio::test]
async fn settings_saved_through_the_api_restart_serve_on_the_new_port() -> Result<()> {
    let dir = temp_dir("cli-settings");
    std::fs::write(dir.join("sockpit.toml"), "[api]\nkey = \"k\"\n")?;
    let mut s = serve(&dir, &[])?;
    let old = format!("127.0.0.1:{}", s.port);
    let mut ws = connect(&format!("ws://{old}/ws/echo/"), &[]).await?;
    let free = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let text = format!("[server]\nport = {free}\n\n[api]\nkey = \"k\"\n");
    let r = reqwest::Client::new()
        .put(format!("http://{old}/_sockpit/api/config"))
        .bearer_auth("k")
        .json(&serde_json::json!({ "toml": text }))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(closed(&mut ws).await?, (1001, "server stopping".into()));
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{free}/_sockpit/healthz")).await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server came back on the new port");
    assert_eq!(std::fs::read_to_string(dir.join("sockpit.toml"))?, text);
    sigterm(&s.child);
    assert_eq!(
        wait_exit(&mut s.child, Duration::from_secs(10)).code(),
        Some(0)
    );
    Ok(())
}

//! `sockpit doctor` as a user runs it: against a healthy server, a port held by another
//! process, and pasted tokens that are expired, signed with the wrong key, or refresh tokens.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_sockpit");

fn sockpit(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("SOCKPIT_DATA_DIR", dir)
        .env("SOCKPIT_JWT_SECRET", SECRET)
        .env_remove("SOCKPIT_PORT")
        .env_remove("SOCKPIT_BIND")
        .env_remove("SOCKPIT_API_KEY")
        .current_dir(dir);
    c
}

fn doctor(dir: &std::path::Path, args: &[&str]) -> Result<(bool, Value)> {
    let out = sockpit(dir)
        .arg("doctor")
        .arg("--json")
        .args(args)
        .output()?;
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))?;
    assert_eq!(out.status.success(), report["ok"].as_bool().unwrap());
    Ok((out.status.success(), report))
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[test]
fn a_healthy_setup_passes() -> Result<()> {
    let dir = temp_dir("doctor-ok");
    let mut child = sockpit(&dir)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first)?;
    let addr = first.trim().rsplit(' ').next().unwrap().to_string();
    let (ok, report) = doctor(&dir, &["--url", &format!("ws://{addr}/")])?;
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "{report}");
    assert_eq!(check(&report, "server")["verdict"], "pass");
    assert!(
        check(&report, "endpoint /ws/dashboard/")["detail"]
            .as_str()
            .unwrap()
            .contains("handshake accepted with a minted token")
    );
    assert_eq!(check(&report, "endpoint /ws/echo/")["verdict"], "pass");
    // The human form says the same.
    Ok(())
}

#[test]
fn a_port_held_by_another_process_is_named() -> Result<()> {
    let dir = temp_dir("doctor-held");
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = held.local_addr()?.port();
    let (ok, report) = doctor(&dir, &["--url", &format!("ws://127.0.0.1:{port}/")])?;
    assert!(!ok);
    let server = check(&report, "server");
    assert_eq!(server["verdict"], "fail");
    let detail = server["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("pid {})", std::process::id())),
        "{detail}"
    );
    assert!(server["fix"].as_str().is_some());

    let out = sockpit(&dir)
        .args(["doctor", "--url", &format!("ws://127.0.0.1:{port}/")])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("FAIL  server"), "{text}");
    assert!(text.contains("fix: "), "{text}");
    assert!(text.contains("problems found"), "{text}");
    Ok(())
}

#[test]
fn nothing_listening_says_how_to_start_it() -> Result<()> {
    let dir = temp_dir("doctor-none");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (_, report) = doctor(&dir, &["--url", &format!("ws://127.0.0.1:{port}/")])?;
    let server = check(&report, "server");
    assert!(
        server["detail"]
            .as_str()
            .unwrap()
            .starts_with("nothing listens on")
    );
    assert!(server["fix"].as_str().unwrap().contains("sockpit serve"));
    Ok(())
}

#[test]
fn tokens_are_explained() -> Result<()> {
    let dir = temp_dir("doctor-token");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("ws://127.0.0.1:{port}/");

    let expired = sign(&simplejwt_claims(json!(3), -192), SECRET);
    let (_, r) = doctor(&dir, &["--url", &url, "--token", &expired])?;
    let exp = check(&r, "token exp");
    assert_eq!(exp["verdict"], "fail");
    let d = exp["detail"].as_str().unwrap();
    assert!(
        d == "token expired 3m12s ago" || d == "token expired 3m13s ago",
        "{d}"
    );
    assert!(exp["fix"].as_str().unwrap().contains("mint a new token"));

    let wrong = sign(&simplejwt_claims(json!(3), 300), "not-the-secret");
    let (_, r) = doctor(&dir, &["--url", &url, "--token", &wrong])?;
    let sig = check(&r, "token signature");
    assert_eq!(sig["detail"], "bad signature (check the secret)");
    assert!(sig["fix"].as_str().unwrap().contains("DJANGO_SECRET_KEY"));

    let mut claims = simplejwt_claims(json!(3), 300);
    claims["token_type"] = json!("refresh");
    let refresh = sign(&claims, SECRET);
    let (_, r) = doctor(&dir, &["--url", &url, "--token", &refresh])?;
    let ty = check(&r, "token type");
    assert_eq!(ty["detail"], "token_type refresh (expected access)");
    assert!(ty["fix"].as_str().unwrap().contains("access token"));

    let good = sign(&simplejwt_claims(json!(3), 300), SECRET);
    let (_, r) = doctor(
        &dir,
        &[
            "--url",
            &url,
            "--token",
            &good,
            "--origin",
            "http://evil.test",
        ],
    )?;
    assert_eq!(check(&r, "token signature")["verdict"], "pass");
    assert_eq!(check(&r, "token user")["detail"], "user 3");
    assert_eq!(check(&r, "origin")["verdict"], "fail");
    Ok(())
}

#[tokio::test]
async fn the_api_runs_the_same_checks_against_itself() -> Result<()> {
    let srv = TestServer::default().await;
    let expired = sign(&simplejwt_claims(json!(1), -60), SECRET);
    let r: Value = reqwest::Client::new()
        .post(srv.http("/_sockpit/api/doctor"))
        .bearer_auth(KEY)
        .json(&json!({"token": expired, "origin": "http://localhost:5173"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(check(&r, "server")["verdict"], "pass");
    assert_eq!(check(&r, "endpoint /ws/dashboard/")["verdict"], "pass");
    assert_eq!(check(&r, "token exp")["verdict"], "fail");
    assert_eq!(check(&r, "origin")["verdict"], "pass");
    assert_eq!(r["ok"], false);
    Ok(())
}

/// The doctor presents its minted token where the config says clients do: a server that
/// only reads `Authorization`, a subprotocol, or `?jwt=` still passes its endpoint check.
#[tokio::test]
async fn the_doctor_honours_token_sources() -> Result<()> {
    for source in ["header", "subprotocol", "query:jwt"] {
        let srv = TestServer::start(config_from(&format!(
            "[auth]\ntoken_sources = [\"{source}\"]\n"
        )))
        .await;
        let r: Value = reqwest::Client::new()
            .post(srv.http("/_sockpit/api/doctor"))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        let dashboard = check(&r, "endpoint /ws/dashboard/");
        assert_eq!(dashboard["verdict"], "pass", "{source}: {dashboard}");
        assert_eq!(r["ok"], true, "{source}: {r}");
    }
    Ok(())
}

//! A real server on 127.0.0.1:0 and real clients for it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sockpit::config::Config;
use sockpit::{Paths, Server, ServerHandle};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The JWT secret every test server uses.
pub const SECRET: &str = "django-insecure-test-secret";
/// The API key every test server uses.
pub const KEY: &str = "test-api-key";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty data dir under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sockpit-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server that stops when dropped.
pub struct TestServer {
    pub handle: ServerHandle,
    pub data_dir: PathBuf,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let h = self.handle.clone();
        // Shutdown is async; a detached task finishes it (the test runtime may be ending).
        tokio::spawn(async move { h.shutdown().await });
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The test config: known secret and key, otherwise the defaults.
pub fn config() -> Config {
    let mut c = Config::default();
    c.auth.secret = SECRET.into();
    c.api.key = KEY.into();
    c
}

/// The test config with extra TOML merged in (endpoints replace the defaults).
pub fn config_from(toml_text: &str) -> Config {
    let mut c = Config::from_toml(toml_text, "test.toml").expect("valid test config");
    if c.auth.secret.is_empty() {
        c.auth.secret = SECRET.into();
    }
    if c.api.key.is_empty() {
        c.api.key = KEY.into();
    }
    c
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let data_dir = temp_dir("srv");
        let handle = Server::start(
            config,
            listener,
            Paths::in_dir(data_dir.clone()).with_config_file(Some(data_dir.join("sockpit.toml"))),
        )
        .await
        .expect("server starts");
        Self { handle, data_dir }
    }

    pub async fn default() -> Self {
        Self::start(config()).await
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.handle.local_addr())
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.handle.local_addr())
    }

    pub fn token(&self, user: &str) -> String {
        self.handle
            .mint_token(user, Duration::from_secs(300), &Default::default())
            .unwrap()
    }

    /// Connects; panics if the handshake itself fails.
    pub async fn connect(&self, path: &str) -> Ws {
        connect(&self.ws(path), &[]).await.unwrap()
    }

    /// `POST /_sockpit/api/publish` with the key; returns `delivered`.
    pub async fn publish(&self, body: Value) -> u64 {
        let r = reqwest::Client::new()
            .post(self.http("/_sockpit/api/publish"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "publish failed");
        r.json::<Value>().await.unwrap()["delivered"]
            .as_u64()
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(self.http(path))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The events of `kind` in the ring, oldest first, as JSON.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.handle
            .recent_events()
            .iter()
            .map(|e| serde_json::from_str::<Value>(&e.json).unwrap())
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// The reasons of the events of `kind`, oldest first.
    pub fn reasons(&self, kind: &str) -> Vec<String> {
        self.events(kind)
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until the server counts `n` connections.
    pub async fn wait_connections(&self, n: u64) {
        for _ in 0..500 {
            if self.handle.stats().connections == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} connections, have {}",
            self.handle.stats().connections
        );
    }
}

/// Connects to `url` with extra headers.
pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws> {
    let mut req = url.into_client_request()?;
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())?,
            v.parse()?,
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

/// The next text message, within 5 s.
pub async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .context("no message within 5s")?
            .context("stream ended")??;
        match msg {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(f) => bail!("closed instead: {f:?}"),
            _ => {}
        }
    }
}

/// Reads until the server's close frame; returns its code and reason.
pub async fn closed(ws: &mut Ws) -> Result<(u16, String)> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no close within 10s")?;
        match msg {
            Some(Ok(Message::Close(Some(f)))) => return Ok((f.code.into(), f.reason.to_string())),
            Some(Ok(Message::Close(None))) => return Ok((1005, String::new())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("error before close: {e}"),
            None => bail!("ended without a close frame"),
        }
    }
}

/// Asserts nothing arrives within `ms`.
pub async fn silent(ws: &mut Ws, ms: u64) {
    if let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(ms), ws.next()).await {
        panic!("expected silence, got {m:?}");
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// Signs `claims` with HS256 and `secret`.
pub fn sign(claims: &Value, secret: &str) -> String {
    sign_alg(claims, secret, jsonwebtoken::Algorithm::HS256)
}

pub fn sign_alg(claims: &Value, secret: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn now() -> u64 {
    sockpit::auth::now_secs()
}

/// Claims as djangorestframework-simplejwt makes them.
pub fn simplejwt_claims(user_id: Value, exp_in: i64) -> Value {
    let now = now() as i64;
    serde_json::json!({
        "token_type": "access",
        "exp": now + exp_in,
        "iat": now,
        "jti": "5c7f0e3a9b2d4e1f8a6b7c9d0e1f2a3b",
        "user_id": user_id,
    })
}

/// A `sockpit serve` process (the real binary), so its memory and CPU can be measured
/// apart from the test's. Killed when dropped.
pub struct Spawned {
    pub child: std::process::Child,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl Spawned {
    /// `sockpit serve --port 0` with `toml` as its config file (key and secret are the
    /// test's).
    pub fn serve(toml: &str) -> Result<Self> {
        use std::io::BufRead;
        let data_dir = temp_dir("spawned");
        let file = data_dir.join("sockpit.toml");
        std::fs::write(&file, toml)?;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sockpit"))
            .args(["--config", file.to_str().unwrap(), "serve", "--port", "0"])
            .env("SOCKPIT_DATA_DIR", &data_dir)
            .env("SOCKPIT_API_KEY", KEY)
            .env("SOCKPIT_JWT_SECRET", SECRET)
            .env("SOCKPIT_LOG", "warn")
            .env_remove("SOCKPIT_PORT")
            .env_remove("SOCKPIT_BIND")
            .current_dir(&data_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first)?;
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {first:?}"))?;
        Ok(Self {
            child,
            port,
            data_dir,
        })
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is alive");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the server is alive");
        // Fields after the parenthesised command name; utime and stime are 14th and 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        (f[0] + f[1]) / 100.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A `redis-server` on 127.0.0.1, killed when dropped.
pub struct Redis {
    child: std::process::Child,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    pub fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Self::start_on(port, temp_dir("redis"))
    }

    pub fn start_on(port: u16, dir: PathBuf) -> Result<Self> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("redis-server (apt install redis-server; make test installs it)")?;
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > until {
                bail!("redis-server did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port, dir })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops it (SIGKILL, as a crash would) and starts a new one on the same port.
    pub fn restart(mut self) -> Result<Self> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (port, dir) = (self.port, self.dir.clone());
        std::mem::forget(self);
        Self::start_on(port, dir)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

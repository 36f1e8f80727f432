//! Load harness: runs the real `sockpit serve` binary as its own process, and beside it a
//! bare reference server built from the same crates (`reference.rs`, the same executable
//! started again), and drives both with the same load over loopback, in one run:
//! 1. echo: N connections in a closed loop (64 B and 16 KiB): server CPU per round trip,
//!    round trips/s and latency, rounds interleaved, medians, the ratio to the reference;
//!    for Sockpit, checks every message still reached the ring, a live UI stream and the
//!    log file;
//! 2. handshakes per second with JWT validation over the first 10,000 connections, and
//!    server RSS per idle authenticated connection at N connections;
//! 3. publish→delivery latency to 1,000 subscribers at 50/s and 10,000 at 10/s;
//! 4. hostile handshakes (Sockpit only): server RSS after 2,000 refused 60 KB handshakes,
//!    and server CPU per refused 60 KB typo of a `{param}` path;
//! 5. the proxy: a 1 KiB page and a WebSocket echo, direct and through Sockpit;
//! 6. the bridge: group_send → browser latency over channels_redis;
//! 7. the UI in headless Chromium while Sockpit handles 20,000 messages/s: long tasks.
//!
//! `cargo bench --bench load` (or `make bench`). Knobs: `SOCKPIT_BENCH_CONNS` (15000),
//! `SOCKPIT_BENCH_SECS` (10, fan-out and proxy), `SOCKPIT_BENCH_ECHO_SECS` (5),
//! `SOCKPIT_BENCH_ROUNDS` (3), `SOCKPIT_BENCH_ONLY` (`echo`, `handshakes`, `fanout`,
//! `hostile`, `proxy`, `bridge` or `ui`: one scenario), `SOCKPIT_BENCH_BIN` (another `sockpit`
//! binary to measure, for before/after runs).
//! Every loop is bounded in count and time; the only target is 127.0.0.1.

/// The integration tests' helpers: the bench starts Redis as they do.
#[path = "../../tests/common/mod.rs"]
mod common;
mod reference;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::{Message, WebSocketConfig};

const SECRET: &str = "bench-secret";
const KEY: &str = "bench-key";
/// Set when this executable is started as the reference server.
const REFERENCE_ENV: &str = "SOCKPIT_BENCH_REFERENCE";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct ServerProc {
    child: Child,
    port: u16,
    pid: u32,
}

impl ServerProc {
    /// Stops the server as Ctrl-C would (so it flushes its log), waiting up to 10 s.
    fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()?;
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("server {} did not stop within 10 s of SIGINT", self.pid)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which server a scenario runs against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// The bare axum + tokio-tungstenite server of `reference.rs`.
    Reference,
    /// `sockpit serve`.
    Sockpit,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Reference => "reference",
            Kind::Sockpit => "sockpit",
        }
    }
}

/// A scratch directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("sockpit-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_server(dir: &std::path::Path) -> Result<ServerProc> {
    start(Kind::Sockpit, dir, "")
}

/// Starts `kind`; for Sockpit, with `extra` TOML appended to its config.
fn start(kind: Kind, dir: &std::path::Path, extra: &str) -> Result<ServerProc> {
    launch(kind, dir, extra, None)
}

/// [`start`], with Sockpit's event log written to `log` instead of its data dir.
fn launch(
    kind: Kind,
    dir: &std::path::Path,
    extra: &str,
    log: Option<&std::path::Path>,
) -> Result<ServerProc> {
    let log_file = log.map_or(String::new(), |p| {
        format!("file = {:?}\n", p.display().to_string())
    });
    let mut cmd = match kind {
        Kind::Reference => {
            let mut c = Command::new(std::env::current_exe()?);
            c.env(REFERENCE_ENV, "1");
            c
        }
        Kind::Sockpit => {
            std::fs::write(
                dir.join("sockpit.toml"),
                format!(
                    "[server]\nmax_connections = 50000\n[log]\nring = 1000\n{log_file}\n\
         [[endpoint]]\npath = \"/ws/dashboard/\"\nchannel = \"dashboard\"\n\n\
         [[endpoint]]\npath = \"/ws/echo/\"\nauth = \"none\"\non_message = \"echo\"\n\n\
         [[endpoint]]\npath = \"/ws/chat/{{room}}/\"\nchannel = \"chat.{{room}}\"\nauth = \"none\"\n{extra}"
                ),
            )?;
            // SOCKPIT_BENCH_BIN: another build of the server, for before/after runs.
            let bin = std::env::var("SOCKPIT_BENCH_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sockpit").to_string());
            let mut c = Command::new(bin);
            c.args(["serve", "--port", "0"])
                .env("SOCKPIT_DATA_DIR", dir)
                .env("SOCKPIT_LOG", "warn");
            c
        }
    };
    let mut child = cmd
        .current_dir(dir)
        .env("SOCKPIT_JWT_SECRET", SECRET)
        .env("SOCKPIT_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first)?;
    // Keep draining what it prints so the pipe never fills.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let port = first
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in {first:?}"))?;
    let pid = child.id();
    Ok(ServerProc { child, port, pid })
}

/// Resident set size in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

/// utime + stime in seconds.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn mint(user: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "token_type": "access", "exp": now + 3600, "iat": now,
        "jti": format!("{user:032x}"), "user_id": user,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(port: u16, user: u64) -> Result<Client> {
    let url = format!("ws://127.0.0.1:{port}/ws/dashboard/?token={}", mint(user));
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true).await?;
    Ok(ws)
}

async fn wait_connections(port: u16, n: u64, within: Duration) -> Result<()> {
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let stats: serde_json::Value = http
            .get(format!("http://127.0.0.1:{port}/_sockpit/api/stats"))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        if stats["connections"].as_u64() == Some(n) {
            return Ok(());
        }
        if start.elapsed() > within {
            bail!(
                "server has {} connections, expected {n}",
                stats["connections"]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Handshakes timed over the first 10,000 (or all) connections, memory at all of them.
struct Idle {
    timed: u64,
    handshakes_per_s: f64,
    cpu_us_per_handshake: f64,
    kib_per_conn: f64,
}

async fn handshakes_and_memory(kind: Kind, conns: u64) -> Result<Idle> {
    let dir = Scratch::new("hs")?;
    let srv = start(kind, &dir.0, "")?;
    // Warm up: one connection, so the baseline includes the runtime's steady state.
    let warm = open(srv.port, 0).await?;
    wait_connections(srv.port, 1, Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(srv.pid)?;

    // Tokens are minted before the clock starts: the figure is the server's handshake rate.
    let tokens: Vec<String> = (1..=conns).map(mint).collect();
    let timed = conns.min(10_000);
    let mut clients = Vec::with_capacity(conns as usize);
    let mut rest = tokens.into_iter();
    let cpu0 = cpu_secs(srv.pid)?;
    let start_at = Instant::now();
    connect_all(srv.port, rest.by_ref().take(timed as usize), &mut clients).await?;
    let elapsed = start_at.elapsed();
    wait_connections(srv.port, timed + 1, Duration::from_secs(30)).await?;
    let cpu1 = cpu_secs(srv.pid)?;
    connect_all(srv.port, rest, &mut clients).await?;
    wait_connections(srv.port, conns + 1, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib(srv.pid)?;
    drop(clients);
    drop(warm);
    Ok(Idle {
        timed,
        handshakes_per_s: timed as f64 / elapsed.as_secs_f64(),
        cpu_us_per_handshake: (cpu1 - cpu0) * 1e6 / timed as f64,
        kib_per_conn: rss1.saturating_sub(rss0) as f64 / conns as f64,
    })
}

/// Opens a `/ws/dashboard/` connection per token, 64 in flight.
async fn connect_all(
    port: u16,
    tokens: impl Iterator<Item = String>,
    into: &mut Vec<Client>,
) -> Result<()> {
    let sem = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for t in tokens {
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let url = format!("ws://127.0.0.1:{port}/ws/dashboard/?token={t}");
            let r = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true)
                .await;
            drop(permit);
            r.map(|(ws, _)| ws)
        }));
    }
    for t in tasks {
        into.push(t.await??);
    }
    Ok(())
}

struct Fanout {
    delivered: u64,
    expected: u64,
    p50: f64,
    p99: f64,
    max: f64,
    cpu_us_per_delivery: f64,
    /// The load generator's own CPU (this process, sharing the cores): the latency floor.
    generator_us_per_delivery: f64,
}

async fn fanout_latency(kind: Kind, subs: u64, rate: u64, secs: u64) -> Result<Fanout> {
    let dir = Scratch::new("fanout")?;
    let srv = start(kind, &dir.0, "")?;
    let publishes = rate * secs;
    let mut clients = Vec::new();
    connect_all(srv.port, (0..subs).map(mint), &mut clients).await?;
    let mut readers = Vec::new();
    for mut ws in clients {
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(publishes as usize);
            let deadline = Instant::now() + Duration::from_secs(secs + 30);
            while (lat.len() as u64) < publishes {
                let msg = match tokio::time::timeout_at(deadline.into(), ws.next()).await {
                    Ok(Some(Ok(m))) => m,
                    _ => break,
                };
                if let Message::Text(t) = msg {
                    let now = now_us();
                    let sent: u64 = t
                        .as_str()
                        .split("\"t\":")
                        .nth(1)
                        .and_then(|r| r.split(['}', ',']).next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(now);
                    lat.push(now.saturating_sub(sent) as f32 / 1000.0);
                }
            }
            lat
        }));
    }
    wait_connections(srv.port, subs, Duration::from_secs(30)).await?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/_sockpit/api/publish", srv.port);
    let (cpu0, gen0) = (cpu_secs(srv.pid)?, cpu_secs(std::process::id())?);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..publishes {
        tick.tick().await;
        let t = now_us();
        let body = format!(
            "{{\"channel\":\"dashboard\",\"data\":{{\"type\":\"dashboard.update\",\"seq\":{i},\"t\":{t}}}}}"
        );
        let r = http
            .post(&url)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("publish failed: {}", r.status());
        }
    }
    let mut all: Vec<f64> = Vec::with_capacity((publishes * subs) as usize);
    for r in readers {
        all.extend(r.await?.into_iter().map(f64::from));
    }
    let (cpu1, gen1) = (cpu_secs(srv.pid)?, cpu_secs(std::process::id())?);
    let delivered = all.len() as u64;
    all.sort_by(|a, b| a.total_cmp(b));
    Ok(Fanout {
        delivered,
        expected: publishes * subs,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        max: all.last().copied().unwrap_or(f64::NAN),
        cpu_us_per_delivery: (cpu1 - cpu0) * 1e6 / delivered.max(1) as f64,
        generator_us_per_delivery: (gen1 - gen0) * 1e6 / delivered.max(1) as f64,
    })
}

/// One echo run, measured over its last `secs` seconds (after a one-second warm-up).
#[derive(Clone, Copy)]
struct Echo {
    round_trips: u64,
    per_s: f64,
    cpu_us_per_rt: f64,
    p50: f64,
    p99: f64,
}

/// `conns` connections to `url`, each sending `size` bytes of text and waiting for the
/// answer, in a loop; `pid` is the process whose CPU is charged.
async fn echo_load(url: &str, pid: u32, conns: usize, size: usize, secs: u64) -> Result<Echo> {
    let payload: tokio_tungstenite::tungstenite::Utf8Bytes = "x".repeat(size).into();
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        let cfg = client_config().read_buffer_size(size.max(4096) + 64);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), true).await?;
        sockets.push(ws);
    }
    let warm = Duration::from_secs(1);
    let begin = Instant::now() + Duration::from_millis(50);
    let (from, until) = (begin + warm, begin + warm + Duration::from_secs(secs));
    let mut tasks = Vec::with_capacity(conns);
    for mut ws in sockets {
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            use futures_util::SinkExt;
            tokio::time::sleep_until(begin.into()).await;
            let mut lat: Vec<f32> = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                ws.send(Message::Text(payload.clone())).await?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.len() == payload.len() => break,
                        Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                            bail!("echo answered with a different message")
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(e.into()),
                        None => bail!("echo connection closed"),
                    }
                }
                if sent >= from {
                    lat.push(sent.elapsed().as_secs_f32() * 1000.0);
                }
            }
            let _ = ws.close(None).await;
            anyhow::Ok(lat)
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let cpu0 = cpu_secs(pid)?;
    tokio::time::sleep_until(until.into()).await;
    let cpu1 = cpu_secs(pid)?;
    let mut all: Vec<f64> = Vec::new();
    for t in tasks {
        all.extend(t.await??.into_iter().map(f64::from));
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let n = all.len() as u64;
    Ok(Echo {
        round_trips: n,
        per_s: n as f64 / secs as f64,
        cpu_us_per_rt: (cpu1 - cpu0) * 1e6 / n.max(1) as f64,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    })
}

/// Counts `message_in` events on a live UI stream (`/_sockpit/api/events`), and the
/// events it was told it missed.
fn watch_ui(port: u16) -> tokio::task::JoinHandle<Result<(u64, u64)>> {
    tokio::spawn(async move {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req =
            format!("ws://127.0.0.1:{port}/_sockpit/api/events?key={KEY}").into_client_request()?;
        req.headers_mut()
            .insert("origin", format!("http://127.0.0.1:{port}").parse()?);
        let cfg = WebSocketConfig::default().max_message_size(Some(256 << 20));
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(req, Some(cfg), true).await?;
        let (mut seen, mut missed) = (0u64, 0u64);
        loop {
            let m = match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => bail!("UI stream failed: {e}"),
                Ok(None) => break,
                Err(_) => bail!("UI stream silent for 3 s"),
            };
            if let Message::Close(_) = m {
                break;
            }
            if let Message::Text(t) = m {
                if t.starts_with("{\"type\":\"events\"") {
                    seen += t.matches("\"kind\":\"message_in\"").count() as u64;
                } else if t.starts_with("{\"type\":\"lagged\"") {
                    let v: serde_json::Value = serde_json::from_str(&t)?;
                    missed += v["missed"].as_u64().unwrap_or(0);
                }
            }
        }
        Ok((seen, missed))
    })
}

/// What Sockpit's own stats say: messages read, events the log file dropped.
async fn server_stats(port: u16) -> Result<serde_json::Value> {
    Ok(reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/_sockpit/api/stats"))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?)
}

/// A FIFO for Sockpit's event log (a pipe is never rotated), and a thread counting the
/// `message_in` lines written to it until the server closes it.
fn count_logged(
    dir: &std::path::Path,
) -> Result<(std::path::PathBuf, std::thread::JoinHandle<u64>)> {
    let fifo = dir.join("events.fifo");
    let ok = Command::new("mkfifo").arg(&fifo).status()?.success();
    anyhow::ensure!(ok, "mkfifo {}", fifo.display());
    let path = fifo.clone();
    let counter = std::thread::spawn(move || {
        let Ok(f) = std::fs::File::open(&path) else {
            return 0;
        };
        BufReader::with_capacity(1 << 20, f)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"kind\":\"message_in\""))
            .count() as u64
    });
    Ok((fifo, counter))
}

/// One echo run against `kind`; for Sockpit, also checks that every message read is an
/// event in the live UI stream and the log file, and says so.
/// One echo run against `kind`, with a UI tab reading the live event stream if `ui`.
/// For Sockpit, also checks that every message read is an event in the log file (and on
/// the UI stream, when one reads it), and says so.
async fn echo_run(kind: Kind, ui: bool, conns: usize, size: usize, secs: u64) -> Result<Echo> {
    let dir = Scratch::new("echo")?;
    let (fifo, logged) = match kind {
        Kind::Sockpit => {
            let (fifo, counter) = count_logged(&dir.0)?;
            (Some(fifo), Some(counter))
        }
        Kind::Reference => (None, None),
    };
    let srv = launch(kind, &dir.0, "", fifo.as_deref())?;
    let ui = ui.then(|| watch_ui(srv.port));
    let url = format!("ws://127.0.0.1:{}/ws/echo/", srv.port);
    let r = echo_load(&url, srv.pid, conns, size, secs).await?;
    if let Some(logged) = logged {
        let stats = server_stats(srv.port).await?;
        let read = stats["messages_in"].as_u64().unwrap_or(0);
        let log_dropped = stats["log_dropped"].as_u64().unwrap_or(0);
        srv.stop()?;
        let on_ui = match ui {
            Some(ui) => {
                let (seen, missed) = ui.await??;
                format!("{seen} message_in events on the live UI stream ({missed} missed), ")
            }
            None => String::new(),
        };
        let logged = logged
            .join()
            .map_err(|_| anyhow::anyhow!("log counter panicked"))?;
        println!(
            "      read {read} messages: {on_ui}{logged} message_in lines in the log file ({log_dropped} dropped)"
        );
    }
    Ok(r)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 0 => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        n => v[n / 2],
    }
}

/// Echo scenarios, `rounds` times each variant in turn, medians and ratios.
async fn echo_scenarios(rounds: usize, secs: u64) -> Result<()> {
    // The reference; Sockpit with every message an event in its ring and log file; the
    // same with a UI tab open, reading every event live.
    let variants = [
        (Kind::Reference, false, "reference"),
        (Kind::Sockpit, false, "sockpit"),
        (Kind::Sockpit, true, "sockpit+UI"),
    ];
    for (conns, size, label) in [(100, 64, "64 B"), (50, 16 << 10, "16 KiB")] {
        println!(
            "\necho: {conns} connections × {label}, closed loop, {secs}s × {rounds} rounds each"
        );
        let mut runs: Vec<(usize, Echo)> = Vec::new();
        for round in 0..rounds {
            // Interleaved, the order alternating: drift on the machine hits all alike.
            let mut order: Vec<usize> = (0..variants.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for v in order {
                let (kind, ui, name) = variants[v];
                let r = echo_run(kind, ui, conns, size, secs).await?;
                println!(
                    "  {name:>10}: {:>8.0} rt/s, server CPU {:>5.2} µs/rt, p50 {:.2} ms, p99 {:.2} ms ({} round trips)",
                    r.per_s, r.cpu_us_per_rt, r.p50, r.p99, r.round_trips
                );
                runs.push((v, r));
            }
        }
        let med = |v: usize, f: fn(&Echo) -> f64| {
            median(
                runs.iter()
                    .filter(|(which, _)| *which == v)
                    .map(|(_, e)| f(e))
                    .collect(),
            )
        };
        let reference = med(0, |e| e.cpu_us_per_rt);
        for (v, (_, _, name)) in variants.iter().enumerate() {
            let cpu = med(v, |e| e.cpu_us_per_rt);
            println!(
                "  median {name:>10}: {cpu:.2} µs/rt, {:.0} rt/s, p99 {:.2} ms; CPU ratio to the reference {:.2}{}",
                med(v, |e| e.per_s),
                med(v, |e| e.p99),
                cpu / reference,
                if v == 1 { " (target ≤ 1.15)" } else { "" }
            );
        }
    }
    Ok(())
}

async fn idle_scenarios(conns: u64) -> Result<()> {
    println!("\nidle: {conns} JWT-authenticated connections (64 handshakes in flight)");
    let mut res = Vec::new();
    for kind in [Kind::Reference, Kind::Sockpit] {
        let r = handshakes_and_memory(kind, conns).await?;
        println!(
            "  {:>9}: first {} handshakes {:.0}/s, server CPU {:.1} µs/handshake; RSS {:.2} KiB per idle connection",
            kind.name(),
            r.timed,
            r.handshakes_per_s,
            r.cpu_us_per_handshake,
            r.kib_per_conn
        );
        res.push(r);
    }
    println!(
        "  ratio: handshakes/s {:.2} (target ≥ 1), KiB per connection {:.2} (target ≤ 4 KiB)",
        res[1].handshakes_per_s / res[0].handshakes_per_s,
        res[1].kib_per_conn
    );
    Ok(())
}

async fn fanout_scenarios(secs: u64) -> Result<()> {
    for (subs, rate, p99_target) in [(1_000u64, 50u64, 13.0), (10_000, 10, 50.0)] {
        println!("\nfan-out: {subs} subscribers × {rate} publishes/s for {secs}s");
        let mut res = Vec::new();
        for kind in [Kind::Reference, Kind::Sockpit] {
            let r = fanout_latency(kind, subs, rate, secs).await?;
            println!(
                "  {:>9}: {}/{} delivered, publish→delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.2} µs per delivery (load generator {:.2})",
                kind.name(),
                r.delivered,
                r.expected,
                r.p50,
                r.p99,
                r.max,
                r.cpu_us_per_delivery,
                r.generator_us_per_delivery
            );
            res.push(r);
        }
        println!(
            "  ratio: CPU per delivery {:.2} (target ≤ 1.1); sockpit p99 {:.2} ms (target ≤ {p99_target} ms), lost {}",
            res[1].cpu_us_per_delivery / res[0].cpu_us_per_delivery,
            res[1].p99,
            res[1].expected - res[1].delivered
        );
    }
    Ok(())
}

/// Opens a handshake the server refuses (reading its close frame); `origin` is sent as-is.
async fn refused(port: u16, path: &str, origin: Option<&str>) -> Result<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}{path}").into_client_request()?;
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse()?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
    Ok(())
}

async fn hostile() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sockpit-bench-h-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let srv = start_server(&dir)?;
    let long_path: Arc<str> = format!("/{}", "a".repeat(60_000)).into();
    let long_origin: Arc<str> = format!("http://{}.test", "b".repeat(60_000)).into();
    for _ in 0..50 {
        refused(srv.port, "/nope/", None).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(srv.pid)?;
    let cpu0 = cpu_secs(srv.pid)?;
    let sem = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let permit = sem.clone().acquire_owned().await?;
        let (port, path, origin) = (srv.port, long_path.clone(), long_origin.clone());
        tasks.push(tokio::spawn(async move {
            let r = if i % 2 == 0 {
                refused(port, &path, None).await
            } else {
                refused(port, "/ws/echo/", Some(&origin)).await
            };
            drop(permit);
            r
        }));
    }
    for t in tasks {
        t.await??;
    }
    let cpu1 = cpu_secs(srv.pid)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss1 = rss_kib(srv.pid)?;
    println!(
        "hostile: 2,000 refused 60 KB handshakes (path or Origin): server RSS {:.1} MiB → {:.1} MiB (+{:.1} MiB); server CPU {:.0} µs per refusal",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        rss1.saturating_sub(rss0) as f64 / 1024.0,
        (cpu1 - cpu0) * 1e6 / 2000.0
    );
    let typo = format!("/ws/chta/{}/", "r".repeat(60_000));
    let cpu0 = cpu_secs(srv.pid)?;
    for _ in 0..200 {
        refused(srv.port, &typo, None).await?;
    }
    let cpu1 = cpu_secs(srv.pid)?;
    println!(
        "hostile: a refused 60 KB typo of /ws/chat/{{room}}/ costs {:.0} µs of server CPU (no suggestion past 256 bytes)",
        (cpu1 - cpu0) * 1e6 / 200.0
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A 1 KiB page from an upstream on its own thread and runtime (so the load generator
/// does not starve it), as Django's runserver would serve it, only faster.
fn page_upstream() -> Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let page = "x".repeat(1024);
            let app = axum::Router::new().fallback(move || {
                let page = page.clone();
                async move { page }
            });
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(addr)
}

/// `conc` keep-alive clients request `url` for `secs`; returns requests/s and the
/// latencies in ms, sorted.
async fn hammer(url: &str, conc: usize, secs: u64) -> Result<(f64, Vec<f64>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()?;
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let r = client.get(&url).send().await?;
                anyhow::ensure!(r.status() == 200, "status {}", r.status());
                r.bytes().await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    Ok((all.len() as f64 / secs as f64, all))
}

/// Requests/s and latency for a 1 KiB page, direct and through Sockpit's `[proxy]`.
async fn proxy_overhead(secs: u64) -> Result<()> {
    let up = page_upstream()?;
    let dir = std::env::temp_dir().join(format!("sockpit-bench-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let server = start(
        Kind::Sockpit,
        &dir,
        &format!("\n[proxy]\nupstream = \"http://{up}\"\n"),
    )?;
    let through = format!("http://127.0.0.1:{}/page", server.port);
    let direct = format!("http://{up}/page");
    // Warm both paths (connection pools, the proxy's client).
    hammer(&through, 4, 1).await?;
    hammer(&direct, 4, 1).await?;
    println!("\nproxy: a 1 KiB page, 1 and 32 keep-alive clients, {secs}s each");
    for conc in [1usize, 32] {
        let (d_rps, d) = hammer(&direct, conc, secs).await?;
        let cpu0 = cpu_secs(server.pid)?;
        let (p_rps, p) = hammer(&through, conc, secs).await?;
        let cpu = cpu_secs(server.pid)? - cpu0;
        println!(
            "  {conc:>2} clients  direct {d_rps:>7.0} req/s p50 {:.3} ms p99 {:.3} ms | through Sockpit {p_rps:>7.0} req/s p50 {:.3} ms p99 {:.3} ms | added p50 {:.3} ms | Sockpit CPU {:.0}%",
            percentile(&d, 0.50),
            percentile(&d, 0.99),
            percentile(&p, 0.50),
            percentile(&p, 0.99),
            percentile(&p, 0.50) - percentile(&d, 0.50),
            cpu / secs as f64 * 100.0,
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A WebSocket echo relayed by Sockpit's `[proxy] websockets = true` to the reference
/// server, against the same echo straight to the reference.
async fn relay_overhead(secs: u64) -> Result<()> {
    let dir = Scratch::new("relay")?;
    let upstream = start(Kind::Reference, &dir.0, "")?;
    let server = start(
        Kind::Sockpit,
        &dir.0,
        &format!(
            "\n[proxy]\nupstream = \"http://127.0.0.1:{}\"\nwebsockets = true\n",
            upstream.port
        ),
    )?;
    println!(
        "\nproxy: WebSocket echo, 100 connections × 64 B, {secs}s, direct and relayed by Sockpit"
    );
    let direct = echo_load(
        &format!("ws://127.0.0.1:{}/ws/relay/", upstream.port),
        upstream.pid,
        100,
        64,
        secs,
    )
    .await?;
    let cpu0 = cpu_secs(upstream.pid)?;
    let relayed = echo_load(
        &format!("ws://127.0.0.1:{}/ws/relay/", server.port),
        server.pid,
        100,
        64,
        secs,
    )
    .await?;
    let upstream_cpu = (cpu_secs(upstream.pid)? - cpu0) * 1e6 / relayed.round_trips.max(1) as f64;
    println!(
        "  direct : {:>8.0} rt/s, reference CPU {:.2} µs/rt, p50 {:.2} ms, p99 {:.2} ms",
        direct.per_s, direct.cpu_us_per_rt, direct.p50, direct.p99
    );
    println!(
        "  relayed: {:>8.0} rt/s, Sockpit's relay CPU {:.2} µs/rt (reference behind it {:.2} µs/rt), p50 {:.2} ms, p99 {:.2} ms",
        relayed.per_s, relayed.cpu_us_per_rt, upstream_cpu, relayed.p50, relayed.p99
    );
    println!(
        "  ratio: relay CPU per round trip / the reference's own {:.2}",
        relayed.cpu_us_per_rt / direct.cpu_us_per_rt
    );
    Ok(())
}

/// `conns` echo connections, each sending a 64 B message every `1/per_conn` s and waiting
/// for its echo, until `until`. Returns the round trips made.
async fn paced_echo(url: &str, conns: usize, per_conn: u64, until: Instant) -> Result<u64> {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true).await?;
        tasks.push(tokio::spawn(async move {
            use futures_util::SinkExt;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_conn as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            while Instant::now() < until {
                tick.tick().await;
                ws.send(Message::text("x".repeat(64))).await?;
                while !matches!(ws.next().await, Some(Ok(Message::Text(_))) | None) {}
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total)
}

/// The UI in headless Chromium (`ui/bench/smooth.mjs`) while Sockpit handles 20,000
/// messages/s (100 connections × 200/s, each echoed): long tasks and frame gaps on the
/// Overview and Logs screens, and a screenshot of each.
async fn ui_smoothness(secs: u64) -> Result<()> {
    let dir = Scratch::new("ui")?;
    let srv = start(Kind::Sockpit, &dir.0, "")?;
    let ui_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&shots)?;
    let login = format!("http://127.0.0.1:{}/_sockpit/login?key={KEY}", srv.port);
    let mut node = Command::new("node")
        .arg("bench/smooth.mjs")
        .arg(&login)
        .arg(secs.to_string())
        .arg(&shots)
        .current_dir(&ui_dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("node (make bench installs the UI's packages first)")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = node.stdout.take().context("node stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
    anyhow::ensure!(
        matches!(&ready, Ok(Some(l)) if l == "ready"),
        "the UI did not open: {ready:?}"
    );
    let before = server_stats(srv.port).await?["messages_in"]
        .as_u64()
        .unwrap_or(0);
    // Both screens, with a margin for switching between them.
    let load_secs = 2 * secs + 2;
    let until = Instant::now() + Duration::from_secs(load_secs);
    let url = format!("ws://127.0.0.1:{}/ws/echo/", srv.port);
    let load = tokio::spawn(async move { paced_echo(&url, 100, 200, until).await });
    let mut lines = Vec::new();
    while let Ok(Some(line)) =
        tokio::time::timeout(Duration::from_secs(4 * secs + 30), rx.recv()).await
    {
        lines.push(line);
    }
    load.await??;
    let after = server_stats(srv.port).await?["messages_in"]
        .as_u64()
        .unwrap_or(0);
    let _ = node.wait();
    println!(
        "\nUI under load: {:.0} messages/s in (each echoed), Chromium on the UI, {secs}s per screen (screenshots in target/bench/)",
        (after - before) as f64 / load_secs as f64
    );
    for l in lines {
        println!("  {l}");
    }
    Ok(())
}

/// Micro-seconds since the epoch: sender and receivers share this machine's clock.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// A channels_redis group message, msgpack as channels_redis writes it, carrying its
/// send time; `channel` adds the default layer's `__asgi_channel__`.
fn group_message(i: u64, channel: Option<&str>) -> Vec<u8> {
    use rmpv::Value as M;
    let mut fields = vec![
        (M::from("type"), M::from("chat.message")),
        (
            M::from("data"),
            M::Map(vec![
                (M::from("t"), M::from(now_us())),
                (M::from("i"), M::from(i)),
            ]),
        ),
    ];
    if let Some(c) = channel {
        fields.push((M::from("__asgi_channel__"), M::Array(vec![M::from(c)])));
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &M::Map(fields)).expect("encodes");
    out
}

/// `group_send` → browser through the channels_redis bridge, for both layers: messages
/// are written to Redis exactly as channels_redis writes them (a PUBLISH for the pub/sub
/// layer; a ZADD into the member channel's sorted set, with 12 random bytes first, for
/// the default layer), `rate` a second for `secs`, to 100 subscribers of one group.
async fn bridge_latency(rate: u64, secs: u64) -> Result<()> {
    const SUBS: usize = 100;
    let redis_server = common::Redis::start()?;
    let url = redis_server.url();
    let scratch = Scratch::new("bridge")?;
    let dir = &scratch.0;
    let server = start(
        Kind::Sockpit,
        dir,
        &format!("\n[bridge]\nchannels_redis = \"{url}\"\n"),
    )?;
    let mut clients = Vec::new();
    for _ in 0..SUBS {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            format!("ws://127.0.0.1:{}/ws/chat/bench/", server.port),
            Some(client_config()),
            true,
        )
        .await?;
        clients.push(ws);
    }
    let redis = redis::Client::open(url.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    // The bridge joins the group once it has members here.
    let channel = loop {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg("asgi:group:chat.bench")
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        if let Some(m) = members.into_iter().next() {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let inbox = format!(
        "asgi{}",
        &channel[..=channel.find('!').unwrap_or(channel.len() - 1)]
    );
    println!(
        "\nbridge: group_send to 1 group of {SUBS} subscribers, {rate}/s for {secs}s, per layer"
    );
    for layer in ["pubsub", "core"] {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
        let total = rate * secs;
        let mut readers = Vec::new();
        for ws in clients.drain(..) {
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut ws = ws;
                let mut got = 0;
                while got < total {
                    let Ok(Some(Ok(Message::Text(t)))) =
                        tokio::time::timeout(Duration::from_secs(10), ws.next()).await
                    else {
                        break;
                    };
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                        let sent = v["t"].as_u64().unwrap_or(0);
                        let _ = tx.send((now_us().saturating_sub(sent)) as f64 / 1000.0);
                    }
                    got += 1;
                }
                ws
            }));
        }
        drop(tx);
        let cpu0 = cpu_secs(server.pid)?;
        let started = Instant::now();
        let every = Duration::from_secs_f64(1.0 / rate as f64);
        for i in 0..total {
            let due = started + every * i as u32;
            tokio::time::sleep_until(due.into()).await;
            if layer == "pubsub" {
                let _: i64 = redis::cmd("PUBLISH")
                    .arg("asgi__group__chat.bench")
                    .arg(group_message(i, None))
                    .query_async(&mut conn)
                    .await?;
            } else {
                let mut member: Vec<u8> = (0..12).map(|_| rand::random::<u8>()).collect();
                member.extend(group_message(i, Some(&channel)));
                let _: i64 = redis::cmd("ZADD")
                    .arg(&inbox)
                    .arg(now_us() as f64 / 1e6)
                    .arg(member)
                    .query_async(&mut conn)
                    .await?;
            }
        }
        let mut lat = Vec::new();
        while let Some(ms) = rx.recv().await {
            lat.push(ms);
        }
        let cpu = cpu_secs(server.pid)? - cpu0;
        for r in readers {
            clients.push(r.await?);
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  {layer:>6}: {} of {} delivered; group_send → browser p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.1} µs server CPU per delivery",
            lat.len(),
            total * SUBS as u64,
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            cpu * 1e6 / lat.len().max(1) as f64,
        );
    }
    drop(server);
    drop(redis_server);
    Ok(())
}

fn main() -> Result<()> {
    if std::env::var_os(REFERENCE_ENV).is_some() {
        return reference::serve(SECRET, KEY);
    }
    // `cargo bench` passes `--bench`; nothing else is parsed.
    let conns = env_num("SOCKPIT_BENCH_CONNS", 15_000);
    let rate = env_num("SOCKPIT_BENCH_RATE", 50);
    let secs = env_num("SOCKPIT_BENCH_SECS", 10);
    let echo_secs = env_num("SOCKPIT_BENCH_ECHO_SECS", 5);
    let rounds = env_num("SOCKPIT_BENCH_ROUNDS", 3) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "sockpit load bench — {} cores, servers and load generator on one machine, loopback",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let only = std::env::var("SOCKPIT_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    rt.block_on(async {
        if run("echo") {
            echo_scenarios(rounds, echo_secs).await?;
        }
        if run("handshakes") {
            idle_scenarios(conns).await?;
        }
        if run("fanout") {
            fanout_scenarios(secs).await?;
        }
        if run("hostile") {
            hostile().await?;
        }
        if run("proxy") {
            proxy_overhead(secs).await?;
            relay_overhead(echo_secs).await?;
        }
        if run("bridge") {
            bridge_latency(rate, secs).await?;
        }
        if run("ui") {
            ui_smoothness(secs.min(5)).await?;
        }
        Ok(())
    })
}

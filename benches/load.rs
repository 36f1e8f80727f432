//! Load harness: runs the real `sockpit serve` binary as its own process and measures,
//! over loopback,
//! 1. handshakes per second with JWT validation (and server CPU per handshake),
//! 2. server RSS per idle authenticated connection at N connections,
//! 3. publish→delivery latency p50/p99 to 1,000 subscribers at 50 publishes/s,
//! 4. hostile handshakes, no key needed: server RSS after 2,000 refused 60 KB handshakes
//!    (60 KB paths and Origins), and server CPU per refused 60 KB typo of a `{param}` path.
//!
//! `cargo bench --bench load` (or `make bench`). Knobs: `SOCKPIT_BENCH_CONNS` (10000),
//! `SOCKPIT_BENCH_SUBS` (1000), `SOCKPIT_BENCH_RATE` (50), `SOCKPIT_BENCH_SECS` (10),
//! `SOCKPIT_BENCH_ONLY` (`handshakes`, `fanout`, `hostile`, `proxy` or `bridge`: one scenario),
//! `SOCKPIT_BENCH_BIN` (another `sockpit` binary to measure, for before/after runs).
//! Every loop is bounded in count and time; the only target is 127.0.0.1.

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

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &std::path::Path) -> Result<ServerProc> {
    start_server_with(dir, "")
}

/// The bench server with `extra` TOML appended to its config.
fn start_server_with(dir: &std::path::Path, extra: &str) -> Result<ServerProc> {
    std::fs::write(
        dir.join("sockpit.toml"),
        format!(
            "[server]\nmax_connections = 50000\n[log]\nring = 1000\n\n\
         [[endpoint]]\npath = \"/ws/dashboard/\"\nchannel = \"dashboard\"\n\n\
         [[endpoint]]\npath = \"/ws/echo/\"\nauth = \"none\"\non_message = \"echo\"\n\n\
         [[endpoint]]\npath = \"/ws/chat/{{room}}/\"\nchannel = \"chat.{{room}}\"\nauth = \"none\"\n{extra}"
        ),
    )?;
    // SOCKPIT_BENCH_BIN: another build of the server, for before/after runs.
    let bin = std::env::var("SOCKPIT_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sockpit").to_string());
    let mut child = Command::new(bin)
        .args(["serve", "--port", "0"])
        .current_dir(dir)
        .env("SOCKPIT_DATA_DIR", dir)
        .env("SOCKPIT_JWT_SECRET", SECRET)
        .env("SOCKPIT_API_KEY", KEY)
        .env("SOCKPIT_LOG", "warn")
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

async fn handshakes_and_memory(conns: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sockpit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let srv = start_server(&dir)?;
    // Warm up: one connection, so the baseline includes the runtime's steady state.
    let warm = open(srv.port, 0).await?;
    wait_connections(srv.port, 1, Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(srv.pid)?;
    let cpu0 = cpu_secs(srv.pid)?;

    // Tokens are minted before the clock starts: the figure is the server's handshake rate.
    let tokens: Vec<String> = (1..=conns).map(mint).collect();
    let sem = Arc::new(Semaphore::new(64));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conns as usize);
    for t in tokens {
        let permit = sem.clone().acquire_owned().await?;
        let port = srv.port;
        tasks.push(tokio::spawn(async move {
            let url = format!("ws://127.0.0.1:{port}/ws/dashboard/?token={t}");
            let r = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true)
                .await;
            drop(permit);
            r.map(|(ws, _)| ws)
        }));
    }
    let mut clients = Vec::with_capacity(conns as usize);
    for t in tasks {
        clients.push(t.await??);
    }
    let elapsed = start.elapsed();
    wait_connections(srv.port, conns + 1, Duration::from_secs(30)).await?;
    let cpu1 = cpu_secs(srv.pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib(srv.pid)?;
    let per_conn = (rss1.saturating_sub(rss0)) as f64 / conns as f64;
    println!(
        "handshakes: {conns} JWT-authenticated connections in {:.2}s = {:.0}/s (64 in flight); server CPU {:.1} µs/handshake",
        elapsed.as_secs_f64(),
        conns as f64 / elapsed.as_secs_f64(),
        (cpu1 - cpu0) * 1e6 / conns as f64
    );
    println!(
        "memory: server RSS {:.1} MiB → {:.1} MiB with {conns} idle connections = {per_conn:.1} KiB per connection",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0
    );
    drop(clients);
    drop(warm);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn fanout_latency(subs: u64, rate: u64, secs: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sockpit-bench-f-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let srv = start_server(&dir)?;
    let publishes = rate * secs;
    let mut readers = Vec::new();
    for u in 0..subs {
        let mut ws = open(srv.port, u).await?;
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(publishes as usize);
            let deadline = Instant::now() + Duration::from_secs(secs + 30);
            while (lat.len() as u64) < publishes {
                let msg = match tokio::time::timeout_at(deadline.into(), ws.next()).await {
                    Ok(Some(Ok(m))) => m,
                    _ => break,
                };
                if let Message::Text(t) = msg {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_micros();
                    let sent: u128 = t
                        .as_str()
                        .split("\"t\":")
                        .nth(1)
                        .and_then(|r| r.split(['}', ',']).next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(now);
                    lat.push((now - sent) as f64 / 1000.0);
                }
            }
            lat
        }));
    }
    wait_connections(srv.port, subs, Duration::from_secs(30)).await?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/_sockpit/api/publish", srv.port);
    let cpu0 = cpu_secs(srv.pid)?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let start = Instant::now();
    for i in 0..publishes {
        tick.tick().await;
        let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros();
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
    let send_time = start.elapsed();
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await?);
    }
    let cpu1 = cpu_secs(srv.pid)?;
    let delivered = all.len() as u64;
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "fan-out: {publishes} publishes at {rate}/s ({:.1}s) to {subs} subscribers: {delivered}/{} delivered ({:.2}% lost)",
        send_time.as_secs_f64(),
        publishes * subs,
        100.0 * (1.0 - delivered as f64 / (publishes * subs) as f64)
    );
    println!(
        "fan-out latency publish→delivery: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.2} µs per delivery",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(f64::NAN),
        (cpu1 - cpu0) * 1e6 / delivered.max(1) as f64
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
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
    let server = start_server_with(&dir, &format!("\n[proxy]\nupstream = \"http://{up}\"\n"))?;
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("sockpit-bench-bridge-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut redis_server = Command::new("redis-server")
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
        .stdout(Stdio::null())
        .spawn()
        .context("redis-server (apt install redis-server)")?;
    let url = format!("redis://127.0.0.1:{port}/0");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = start_server_with(&dir, &format!("\n[bridge]\nchannels_redis = \"{url}\"\n"))?;
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
    let _ = redis_server.kill();
    let _ = redis_server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; nothing else is parsed.
    let conns = env_num("SOCKPIT_BENCH_CONNS", 10_000);
    let subs = env_num("SOCKPIT_BENCH_SUBS", 1_000);
    let rate = env_num("SOCKPIT_BENCH_RATE", 50);
    let secs = env_num("SOCKPIT_BENCH_SECS", 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "sockpit load bench — {} cores, server and load generator on one machine, loopback",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let only = std::env::var("SOCKPIT_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    rt.block_on(async {
        if run("handshakes") {
            handshakes_and_memory(conns).await?;
        }
        if run("fanout") {
            fanout_latency(subs, rate, secs).await?;
        }
        if run("hostile") {
            hostile().await?;
        }
        if run("proxy") {
            proxy_overhead(secs).await?;
        }
        if run("bridge") {
            bridge_latency(rate, secs).await?;
        }
        Ok(())
    })
}

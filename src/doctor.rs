//! The doctor: the checklist a developer runs by hand when a socket fails, as code.
//! Is Sockpit answering on its port (or who holds it), does each endpoint's handshake
//! succeed with a minted token, what does a pasted token say against the config, is an
//! Origin allowed, is the bind address exposed. Each failing check says how to fix it.
//!
//! Shared by `sockpit doctor` and `POST /_sockpit/api/doctor`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ts_rs::TS;

use crate::auth::{self, Rejection, Verifier, human_duration, now_secs};
use crate::close::CloseCode;
use crate::config::{AuthMode, Config, TokenSource};
use crate::origin::check_origin;
use crate::portinfo;
use crate::urls::Urls;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Works, but deserves a look.
    Warn,
    /// Broken.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Check {
    /// What was checked, e.g. `server`, `endpoint /ws/echo/`, `token exp`.
    pub name: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it (for warnings and failures).
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Report {
    /// No check failed.
    pub ok: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

/// What to check beyond the config itself.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the server should answer; default: the config's bind and port.
    pub addr: Option<SocketAddr>,
    /// A token to decode and explain.
    pub token: Option<String>,
    /// An Origin to check against `allowed_origins`.
    pub origin: Option<String>,
}

/// Runs every check. `verifier` is built from the same config and secret the server uses.
pub async fn run(config: &Config, verifier: &Verifier, opts: &Options) -> Report {
    let mut checks = Vec::new();
    let addr = opts.addr.unwrap_or_else(|| {
        Urls::new(SocketAddr::new(config.server.bind, config.server.port)).connect_addr()
    });

    if config.server.bind.is_unspecified() {
        checks.push(Check::warn(
            "bind",
            format!(
                "bound to {}: Sockpit is reachable from your network",
                config.server.bind
            ),
            "set [server] bind = \"127.0.0.1\" unless other machines must connect",
        ));
    } else {
        checks.push(Check::pass(
            "bind",
            format!("bound to {}", config.server.bind),
        ));
    }

    let server = check_server(addr).await;
    let up = server.verdict == Verdict::Pass;
    checks.push(server);
    if up {
        for e in &config.endpoints {
            checks.push(check_endpoint(addr, e, verifier, &config.auth.token_sources).await);
        }
    }
    if let Some(upstream) = &config.proxy.upstream {
        checks.extend(check_upstream(config, upstream, addr).await);
    }
    if let Some(url) = &config.bridge.channels_redis {
        checks.push(
            check_redis(
                "bridge",
                url,
                "group_send on it reaches Sockpit's channels",
                "start Redis (redis-server), or point [bridge] channels_redis at the one in CHANNEL_LAYERS",
            )
            .await,
        );
    }
    if let Some(url) = &config.broker.redis {
        checks.push(
            check_redis(
                "broker",
                url,
                "publishes reach the other instances through it",
                "start Redis (redis-server), or fix [broker] redis; meanwhile each instance serves only its own clients",
            )
            .await,
        );
    }
    if let Some(token) = &opts.token {
        checks.extend(explain_token(config, verifier, token));
    }
    if let Some(origin) = &opts.origin {
        checks.push(
            match check_origin(&config.server.allowed_origins, Some(origin)) {
                Ok(()) => Check::pass("origin", format!("{origin} is allowed")),
                Err(reason) => Check::fail(
                    "origin",
                    reason.to_string(),
                    format!("add \"{origin}\" to [server] allowed_origins"),
                ),
            },
        );
    }
    Report {
        ok: checks.iter().all(|c| c.verdict != Verdict::Fail),
        checks,
    }
}

/// `GET /_sockpit/healthz` over a plain TCP connection; if something else holds the
/// port, name it.
async fn check_server(addr: SocketAddr) -> Check {
    let port = addr.port();
    let held_by = || {
        portinfo::holder_of(port)
            .map(|h| format!(" (held by {h})"))
            .unwrap_or_default()
    };
    let answer = tokio::time::timeout(Duration::from_secs(3), async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET /_sockpit/healthz HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await;
    match answer {
        Ok(Ok(resp)) if resp.starts_with("HTTP/1.") && resp.ends_with("\r\n\r\nok") => {
            Check::pass("server", format!("Sockpit answers on {addr}"))
        }
        Ok(Ok(_)) => Check::fail(
            "server",
            format!("port {port} answers, but not as Sockpit{}", held_by()),
            "stop that process, or run Sockpit on another port (sockpit serve --port N, SOCKPIT_PORT)",
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Check::fail(
            "server",
            format!("nothing listens on {addr}"),
            "start it: sockpit serve (or Start in the tray)",
        ),
        Ok(Err(e)) => Check::fail(
            "server",
            format!("{addr}: {e}{}", held_by()),
            "check that the port is Sockpit's",
        ),
        Err(_) => Check::fail(
            "server",
            format!("{addr} did not answer within 3s{}", held_by()),
            "stop whatever holds the port, or run Sockpit on another port",
        ),
    }
}

/// The `[proxy]` upstream, asked directly the way Sockpit asks it (with the Host a
/// browser sends to Sockpit): does it answer, does Django's `ALLOWED_HOSTS` take that
/// Host, and is it an ASGI server that can hold WebSockets or plain WSGI (runserver).
async fn check_upstream(
    config: &Config,
    upstream: &crate::config::UpstreamUrl,
    sockpit: SocketAddr,
) -> Vec<Check> {
    let name = "upstream";
    let host = format!("localhost:{}", sockpit.port());
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let mut s = TcpStream::connect(upstream.authority()).await?;
        s.write_all(
            format!("GET / HTTP/1.0\r\nHost: {host}\r\nAccept: text/html\r\n\r\n").as_bytes(),
        )
        .await?;
        // The head and the start of the page are enough: an upstream that streams on
        // `/` (server-sent events) must not look silent.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let mut body_until: Option<tokio::time::Instant> = None;
        while buf.len() < 64 << 10 {
            let read = match body_until {
                Some(t) => match tokio::time::timeout_at(t, s.read(&mut chunk)).await {
                    Ok(r) => r?,
                    Err(_) => break,
                },
                None => s.read(&mut chunk).await?,
            };
            if read == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..read]);
            if body_until.is_none() && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                body_until = Some(tokio::time::Instant::now() + Duration::from_millis(500));
            }
        }
        std::io::Result::Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await;
    let runs = match &config.proxy.command {
        Some(cmd) => format!("Sockpit runs `{cmd}`: its output is in Logs (Upstream output)"),
        None => format!(
            "start your app server on {upstream}, or set [proxy] command so Sockpit runs it"
        ),
    };
    let resp = match answer {
        Ok(Ok(resp)) if resp.starts_with("HTTP/") => resp,
        Ok(Ok(_)) => {
            return vec![Check::fail(
                name,
                format!("{upstream} answers, but not with HTTP"),
                "point [proxy] upstream at your app server's HTTP address",
            )];
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return vec![Check::fail(
                name,
                format!("nothing listens on {upstream}"),
                runs,
            )];
        }
        Ok(Err(e)) => return vec![Check::fail(name, format!("{upstream}: {e}"), runs)],
        Err(_) => {
            return vec![Check::fail(
                name,
                format!("{upstream} did not answer GET / within 5s"),
                runs,
            )];
        }
    };
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = resp.split("\r\n\r\n").next().unwrap_or("");
    let server = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("server")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let mut checks = Vec::new();
    if status == 400 && (resp.contains("DisallowedHost") || resp.contains("Invalid HTTP_HOST")) {
        checks.push(Check::fail(
            "upstream ALLOWED_HOSTS",
            format!("Django refuses the Host browsers send through Sockpit ({host}): HTTP 400 DisallowedHost"),
            "add \"localhost\" and \"127.0.0.1\" to ALLOWED_HOSTS in settings.py (Sockpit keeps the browser's Host so CSRF checks pass)",
        ));
    } else {
        checks.push(Check::pass(
            name,
            format!(
                "{upstream} answers GET / with HTTP {status}{}",
                if server.is_empty() {
                    String::new()
                } else {
                    format!(" ({server})")
                }
            ),
        ));
    }
    let lower = server.to_ascii_lowercase();
    let kind = "upstream websockets";
    if lower.starts_with("wsgiserver") {
        checks.push(if config.proxy.websockets {
            Check::warn(
                kind,
                format!("{server} is Django's runserver (WSGI): it cannot hold a WebSocket, so relayed sockets will close with 4502"),
                "run your consumers under daphne or uvicorn as [proxy] command, or move the sockets to Sockpit endpoints and set websockets = false",
            )
        } else {
            Check::pass(
                kind,
                format!("{server} is Django's runserver (WSGI): sockets are Sockpit's endpoints, pages and API are proxied"),
            )
        });
    } else if lower.starts_with("daphne")
        || lower.starts_with("uvicorn")
        || lower.starts_with("hypercorn")
    {
        checks.push(if config.proxy.websockets {
            Check::pass(kind, format!("{server} is an ASGI server: Channels consumers answer behind Sockpit"))
        } else {
            Check::warn(
                kind,
                format!("{server} is an ASGI server, but [proxy] websockets is off: upgrades on paths that are not Sockpit endpoints get 4004"),
                "set [proxy] websockets = true to relay your consumers' sockets",
            )
        });
    }
    checks
}

/// A Redis Sockpit uses (the bridge's, the broker's): does it answer?
async fn check_redis(name: &str, url: &crate::config::RedisUrl, works: &str, fix: &str) -> Check {
    let shown = url.redacted();
    let ping = tokio::time::timeout(Duration::from_secs(3), async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    })
    .await;
    match ping {
        Ok(Ok(_)) => Check::pass(name, format!("Redis at {shown} answers: {works}")),
        Ok(Err(e)) => Check::fail(name, format!("Redis at {shown}: {e}"), fix),
        Err(_) => Check::fail(
            name,
            format!("Redis at {shown} did not answer within 3s"),
            fix,
        ),
    }
}

/// Connects to an endpoint (params filled with `test`) with a minted token, presented
/// where the first of `sources` says, and reports the server's verdict.
async fn check_endpoint(
    addr: SocketAddr,
    endpoint: &crate::config::EndpointConfig,
    verifier: &Verifier,
    sources: &[TokenSource],
) -> Check {
    let name = format!("endpoint {}", endpoint.path);
    let path = endpoint
        .path
        .as_str()
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "test"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let url = Urls::new(addr).ws(&path);
    let token = match endpoint.auth {
        AuthMode::None => None,
        AuthMode::Jwt => {
            match verifier.mint("doctor", Duration::from_secs(60), &Default::default()) {
                Ok(token) => Some(token),
                Err(e) => {
                    return Check::warn(
                        name,
                        format!("not tried: {e}"),
                        "connect with a token from your backend to test it",
                    );
                }
            }
        }
    };
    let request = match handshake_request(&url, token.as_deref(), sources) {
        Ok(r) => r,
        Err(e) => return Check::fail(name, format!("{path}: {e}"), "check the endpoint's path"),
    };
    let attempt = tokio::time::timeout(Duration::from_secs(3), async {
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        // A refused handshake is closed at once; an accepted one stays quiet.
        let first = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
        let _ = ws.close(None).await;
        Ok::<_, tungstenite::Error>(first)
    })
    .await;
    let shown = path.clone();
    match attempt {
        Ok(Ok(Ok(Some(Ok(tungstenite::Message::Close(Some(f))))))) => {
            let code = u16::from(f.code);
            let fix = if code == CloseCode::Unauthorized.code() {
                "the running server uses another secret or auth config than this one: run doctor with the same --config and SOCKPIT_DATA_DIR"
            } else if code == CloseCode::TooManyConnections.code() {
                "raise [server] max_connections"
            } else {
                "see the close reason"
            };
            Check::fail(name, format!("{shown}: closed {code} {}", f.reason), fix)
        }
        Ok(Ok(_)) => Check::pass(
            name,
            format!(
                "{shown}: handshake accepted{}",
                if endpoint.auth == AuthMode::Jwt {
                    " with a minted token"
                } else {
                    ""
                }
            ),
        ),
        Ok(Err(e)) => Check::fail(name, format!("{shown}: {e}"), "check the endpoint's path"),
        Err(_) => Check::fail(
            name,
            format!("{shown}: no answer within 3s"),
            "check that the server is Sockpit",
        ),
    }
}

/// The handshake request for `url`, with `token` where the first configured source
/// looks for it (as a client of this config would send it).
fn handshake_request(
    url: &str,
    token: Option<&str>,
    sources: &[TokenSource],
) -> Result<tungstenite::handshake::client::Request, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::http::HeaderValue;
    let Some(token) = token else {
        return url.into_client_request();
    };
    let header =
        |v: String| HeaderValue::from_str(&v).map_err(|e| tungstenite::Error::HttpFormat(e.into()));
    match sources.first() {
        Some(TokenSource::Query(name)) => format!("{url}?{name}={token}").into_client_request(),
        Some(TokenSource::Header) => {
            let mut r = url.into_client_request()?;
            r.headers_mut()
                .insert("authorization", header(format!("Bearer {token}"))?);
            Ok(r)
        }
        Some(TokenSource::Subprotocol) => {
            let mut r = url.into_client_request()?;
            r.headers_mut().insert(
                "sec-websocket-protocol",
                header(format!("access_token, {token}"))?,
            );
            Ok(r)
        }
        None => url.into_client_request(),
    }
}

/// Decodes a token and explains each part against the config.
pub fn explain_token(config: &Config, verifier: &Verifier, token: &str) -> Vec<Check> {
    explain_token_at(config, verifier, token, now_secs())
}

fn explain_token_at(config: &Config, verifier: &Verifier, token: &str, now: u64) -> Vec<Check> {
    let mut out = Vec::new();
    let (header, claims) = match auth::peek(token) {
        Ok(x) => x,
        Err(reason) => {
            out.push(Check::fail(
                "token",
                reason.to_string(),
                "paste the whole token: three base64url parts separated by dots",
            ));
            return out;
        }
    };
    let want = config.auth.algorithm.to_string();
    match header.get("alg").and_then(Value::as_str) {
        Some(alg) if alg == want => {
            out.push(Check::pass("token alg", format!("{alg}, as configured")))
        }
        other => out.push(Check::fail(
            "token alg",
            format!(
                "alg {} not allowed (expected {want})",
                other.unwrap_or("(none)")
            ),
            format!("sign with {want}, or set [auth] algorithm to the backend's algorithm"),
        )),
    }
    let num = |k: &str| claims.get(k).and_then(Value::as_u64);
    match num("exp") {
        None => out.push(Check::fail(
            "token exp",
            "claim exp missing",
            "mint tokens with an expiry (SimpleJWT always sets exp)",
        )),
        Some(exp) if exp.saturating_add(config.auth.leeway_s.0) < now => out.push(Check::fail(
            "token exp",
            format!("token expired {} ago", human_duration(now - exp)),
            "mint a new token (sockpit token --user-id …, or your backend's /api/token/refresh/)",
        )),
        Some(exp) => out.push(Check::pass(
            "token exp",
            format!("valid for {} more", human_duration(exp.saturating_sub(now))),
        )),
    }
    if let Some(nbf) = num("nbf") {
        if nbf > now + config.auth.leeway_s.0 {
            out.push(Check::fail(
                "token nbf",
                format!("token not valid yet (nbf in {})", human_duration(nbf - now)),
                "check the clocks, or raise [auth] leeway_s",
            ));
        } else {
            out.push(Check::pass("token nbf", "already valid"));
        }
    }
    if let Some(iat) = num("iat")
        && iat > now + 5
    {
        out.push(Check::warn(
            "token iat",
            format!(
                "issued {} in the future: the clocks disagree",
                human_duration(iat - now)
            ),
            "sync the clocks of the backend and this machine, or raise [auth] leeway_s",
        ));
    }
    let want_type = &config.auth.token_type;
    if !want_type.is_empty() {
        match claims.get("token_type").and_then(Value::as_str) {
            Some(t) if t == want_type => {
                out.push(Check::pass("token type", format!("token_type {t}")))
            }
            Some(t) => out.push(Check::fail(
                "token type",
                format!("token_type {t} (expected {want_type})"),
                "send the access token, not the refresh token",
            )),
            None => out.push(Check::fail(
                "token type",
                format!("claim token_type missing (expected {want_type})"),
                "set [auth] token_type = \"\" if your tokens carry no token_type",
            )),
        }
    }
    let claim = &config.auth.user_claim;
    match claims.get(claim).or_else(|| claims.get("sub")) {
        Some(Value::String(u)) => out.push(Check::pass("token user", format!("user {u}"))),
        Some(Value::Number(u)) => out.push(Check::pass("token user", format!("user {u}"))),
        _ => out.push(Check::fail(
            "token user",
            format!("claim {claim} missing"),
            "set [auth] user_claim to the claim that holds the user id",
        )),
    }
    match verifier.check_signature(token) {
        Ok(()) => out.push(Check::pass(
            "token signature",
            format!("valid for the configured {want} key"),
        )),
        Err(reason @ Rejection::BadSignature { public_key: false }) => out.push(Check::fail(
            "token signature",
            reason.to_string(),
            "Sockpit's secret must be the backend's signing key: set [auth] secret_env = \"DJANGO_SECRET_KEY\" (or SOCKPIT_JWT_SECRET)",
        )),
        Err(reason @ Rejection::BadSignature { public_key: true }) => out.push(Check::fail(
            "token signature",
            reason.to_string(),
            "[auth] public_key_file must hold the public half of the backend's signing key",
        )),
        Err(reason) => out.push(Check::fail(
            "token signature",
            reason.to_string(),
            "see the reason",
        )),
    }
    // Last, the verdict a handshake would get, when nothing above already failed.
    if !out.iter().any(|c| c.verdict == Verdict::Fail) {
        match verifier.verify(token) {
            Ok(p) => out.push(Check::pass(
                "token",
                format!(
                    "accepted: a handshake with it connects as user {}",
                    p.user_id
                ),
            )),
            Err(reason) => out.push(Check::fail("token", reason.to_string(), "see the reason")),
        }
    }
    out
}

/// The report for a person: one line a check, a fix under each problem.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let mark = match c.verdict {
            Verdict::Pass => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        out.push_str(&format!("{mark}  {:width$}  {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:width$}  fix: {fix}\n", ""));
        }
    }
    let counts: BTreeMap<&str, usize> = report.checks.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(match c.verdict {
            Verdict::Pass => "passed",
            Verdict::Warn => "warnings",
            Verdict::Fail => "failed",
        })
        .or_default() += 1;
        m
    });
    out.push_str(&format!(
        "\n{}: {} passed, {} warnings, {} failed\n",
        if report.ok {
            "healthy"
        } else {
            "problems found"
        },
        counts.get("passed").unwrap_or(&0),
        counts.get("warnings").unwrap_or(&0),
        counts.get("failed").unwrap_or(&0)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Config, Verifier) {
        let mut c = Config::default();
        c.auth.secret = "s".into();
        let v = Verifier::new(&c.auth, "s").unwrap();
        (c, v)
    }

    fn sign(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn explains_each_part() {
        let (c, v) = setup();
        let now = now_secs();
        let t = sign(
            serde_json::json!({"token_type":"refresh","exp":now-192,"iat":now+60,"user_id":3}),
            "other",
        );
        let checks = explain_token_at(&c, &v, &t, now);
        let find = |n: &str| checks.iter().find(|c| c.name == n).unwrap();
        assert_eq!(find("token exp").detail, "token expired 3m12s ago");
        assert_eq!(find("token type").verdict, Verdict::Fail);
        assert_eq!(find("token iat").verdict, Verdict::Warn);
        assert_eq!(find("token user").detail, "user 3");
        assert_eq!(find("token alg").verdict, Verdict::Pass);
    }

    #[test]
    fn a_good_token_passes_everything() {
        let (c, v) = setup();
        let t = v
            .mint("9", Duration::from_secs(600), &Default::default())
            .unwrap();
        let checks = explain_token(&c, &v, &t);
        assert!(
            checks.iter().all(|c| c.verdict == Verdict::Pass),
            "{checks:?}"
        );
    }
}

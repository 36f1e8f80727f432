//! Configuration: the TOML schema of DESIGN.md, parsed and validated in one step.
//!
//! Every value that can be wrong is checked while deserialising (newtypes with
//! `TryFrom`, `deny_unknown_fields`), so a bad file fails with the TOML span of the
//! offending key and [`ConfigError`] can name the key and line. A [`Config`] that exists
//! is valid; the server never re-checks it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::origin::OriginPattern;
use crate::pattern::{ChannelTemplate, PathPattern};

/// The name of the config file looked up in the working directory.
pub const DEFAULT_FILE: &str = "sockpit.toml";

/// The whole configuration. `Default` is DESIGN.md's built-in config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listener, origins and limits.
    pub server: ServerConfig,
    /// `[auth]`: how WebSocket clients prove who they are.
    pub auth: AuthConfig,
    /// `[api]`: the admin/publish API under `/_sockpit/`.
    pub api: ApiConfig,
    /// `[proxy]`: reverse proxy to an upstream, and the command that runs it.
    pub proxy: ProxyConfig,
    /// `[bridge]`: Channels' `group_send` through channels_redis reaches Sockpit's channels.
    pub bridge: BridgeConfig,
    /// `[broker]`: several instances share channels through Redis.
    pub broker: BrokerConfig,
    /// `[log]`: the event ring and log file.
    pub log: LogConfig,
    /// `[[endpoint]]`: the WebSocket paths; a file that lists any replaces the defaults.
    #[serde(rename = "endpoint")]
    pub endpoints: Vec<EndpointConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            api: ApiConfig::default(),
            proxy: ProxyConfig::default(),
            bridge: BridgeConfig::default(),
            broker: BrokerConfig::default(),
            log: LogConfig::default(),
            endpoints: default_endpoints(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; loopback by default.
    pub bind: IpAddr,
    /// TCP port.
    pub port: u16,
    /// Browser origins allowed to open a WebSocket; a request without Origin is allowed.
    pub allowed_origins: Vec<OriginPattern>,
    /// How a refused handshake is answered.
    pub reject: RejectMode,
    /// Open WebSocket connections at most (then close 4029).
    pub max_connections: Positive<1_000_000>,
    /// Largest message a client may send (then close 1009).
    pub max_message_bytes: Positive<{ 1 << 30 }>,
    /// Outbound messages queued per connection before it is closed with 1008.
    pub send_queue: Positive<65_536>,
    /// Seconds a client has to send its request head.
    pub handshake_timeout_s: Positive<3_600>,
    /// Seconds between server pings.
    pub ping_interval_s: Positive<DAY_S>,
    /// Seconds without any frame from the client before it is closed.
    pub idle_timeout_s: Positive<DAY_S>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            allowed_origins: vec![
                OriginPattern::parse("http://localhost:*").expect("valid default"),
                OriginPattern::parse("http://127.0.0.1:*").expect("valid default"),
            ],
            reject: RejectMode::Close,
            max_connections: Positive(10_000),
            max_message_bytes: Positive(1 << 20),
            send_queue: Positive(256),
            handshake_timeout_s: Positive(10),
            ping_interval_s: Positive(20),
            idle_timeout_s: Positive(60),
        }
    }
}

/// How refused handshakes are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectMode {
    /// Accept the upgrade, then close with a 4xxx code and a reason the page can read.
    Close,
    /// Answer with a plain HTTP 401/403/404/503 (browsers only see 1006).
    Http,
}

/// A whole number from 1 to `MAX`. Every limit has a ceiling: a value the server
/// cannot honour (a queue of 2^64 messages, a timeout past the end of time) is refused
/// when the config loads instead of panicking or overflowing when it is used, and
/// Settings can set nothing the server cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Positive<const MAX: u64 = { u64::MAX }>(pub u64);

impl<const MAX: u64> Positive<MAX> {
    /// The value as a `usize`, saturating.
    pub fn get(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<const MAX: u64> TryFrom<u64> for Positive<MAX> {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match v {
            0 if MAX == u64::MAX => Err("must be greater than 0".into()),
            0 => Err(format!("must be greater than 0 and at most {MAX}")),
            v if v > MAX => Err(format!("must be at most {MAX}")),
            v => Ok(Self(v)),
        }
    }
}

impl<const MAX: u64> From<Positive<MAX>> for u64 {
    fn from(p: Positive<MAX>) -> u64 {
        p.0
    }
}

/// A whole number from 0 to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct AtMost<const MAX: u64>(pub u64);

impl<const MAX: u64> TryFrom<u64> for AtMost<MAX> {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if v > MAX {
            Err(format!("must be at most {MAX}"))
        } else {
            Ok(Self(v))
        }
    }
}

impl<const MAX: u64> From<AtMost<MAX>> for u64 {
    fn from(p: AtMost<MAX>) -> u64 {
        p.0
    }
}

/// A day, in seconds: the ceiling of every timeout and interval.
const DAY_S: u64 = 86_400;

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The one algorithm tokens may use.
    pub algorithm: Algorithm,
    /// HMAC secret (HS*). Empty: see `secret_env`, then the generated dev secret.
    pub secret: String,
    /// Name of an environment variable holding the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// PEM public key for RS256/ES256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// Where a token is looked for, in order.
    pub token_sources: Vec<TokenSource>,
    /// Claim holding the user id (falls back to `sub`).
    pub user_claim: String,
    /// Required `token_type` claim (SimpleJWT); empty turns the check off.
    pub token_type: String,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_s: AtMost<DAY_S>,
    /// Required `aud`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Required `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::HS256,
            secret: String::new(),
            secret_env: None,
            public_key_file: None,
            token_sources: vec![
                TokenSource::Query("token".into()),
                TokenSource::Header,
                TokenSource::Subprotocol,
            ],
            user_claim: "user_id".into(),
            token_type: "access".into(),
            leeway_s: AtMost(0),
            audience: None,
            issuer: None,
        }
    }
}

/// JWT algorithms Sockpit accepts; exactly one is pinned by config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[allow(missing_docs)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    ES256,
}

impl Algorithm {
    /// HS* algorithms sign with a shared secret; the others verify with a public key.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where a token may come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum TokenSource {
    /// `query:NAME`: the query parameter NAME.
    Query(String),
    /// `header`: `Authorization: Bearer <token>`.
    Header,
    /// `subprotocol`: `Sec-WebSocket-Protocol` (see README for the accepted shapes).
    Subprotocol,
}

impl TryFrom<String> for TokenSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "header" => Ok(Self::Header),
            "subprotocol" => Ok(Self::Subprotocol),
            _ => match s.strip_prefix("query:") {
                Some(name) if !name.is_empty() => Ok(Self::Query(name.into())),
                _ => Err(format!(
                    "unknown token source {s:?} (expected \"query:NAME\", \"header\" or \"subprotocol\")"
                )),
            },
        }
    }
}

impl From<TokenSource> for String {
    fn from(s: TokenSource) -> String {
        match s {
            TokenSource::Query(name) => format!("query:{name}"),
            TokenSource::Header => "header".into(),
            TokenSource::Subprotocol => "subprotocol".into(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The API key. Empty: `key_env`, then the generated key in the data dir.
    pub key: String,
    /// Name of an environment variable holding the API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// Host names accepted on `/_sockpit/` (loopback addresses always are).
    pub hosts: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            key: String::new(),
            key_env: None,
            hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
        }
    }
}

/// `[proxy]`: the upstream (Django's runserver, daphne, uvicorn…) that gets every
/// request Sockpit does not answer itself, and the command that runs it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawProxy")]
pub struct ProxyConfig {
    /// Where other requests go (`http://host:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamUrl>,
    /// Whether upgrades on paths no endpoint names are relayed to the upstream.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub websockets: bool,
    /// The upstream's command line, run by `sh -c`, started and stopped with the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The command's working directory, relative to the config file's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Variables added to Sockpit's own environment for the command.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// `[proxy]` as written, before the checks that span keys.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawProxy {
    upstream: Option<UpstreamUrl>,
    websockets: bool,
    command: Option<String>,
    cwd: Option<PathBuf>,
    env: BTreeMap<String, String>,
}

impl TryFrom<RawProxy> for ProxyConfig {
    type Error = String;
    fn try_from(raw: RawProxy) -> Result<Self, String> {
        if raw.upstream.is_none() {
            let orphan = [
                (raw.websockets, "websockets"),
                (raw.command.is_some(), "command"),
                (raw.cwd.is_some(), "cwd"),
                (!raw.env.is_empty(), "env"),
            ];
            if let Some((_, key)) = orphan.iter().find(|(set, _)| *set) {
                return Err(format!(
                    "proxy.{key} needs proxy.upstream (the address the command listens on, e.g. \"http://127.0.0.1:8001\")"
                ));
            }
        }
        if raw.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err("proxy.command is empty (remove it, or give the command line)".into());
        }
        if raw.command.is_none() && (raw.cwd.is_some() || !raw.env.is_empty()) {
            return Err("proxy.cwd and proxy.env apply to proxy.command, which is not set".into());
        }
        for name in raw.env.keys() {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!(
                    "proxy.env: {name:?} is not a variable name (no '=' or NUL, not empty)"
                ));
            }
        }
        if let Some((name, _)) = raw.env.iter().find(|(_, v)| v.contains('\0')) {
            return Err(format!("proxy.env.{name}: a value cannot contain NUL"));
        }
        Ok(Self {
            upstream: raw.upstream,
            websockets: raw.websockets,
            command: raw.command,
            cwd: raw.cwd,
            env: raw.env,
        })
    }
}

/// An upstream's address: `http://host:port` (the port defaults to 80), nothing after it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct UpstreamUrl {
    /// `host:port` as written (the host may be a name or `[v6]`).
    authority: String,
    host: String,
    port: u16,
}

impl UpstreamUrl {
    /// Parses `http://host[:port][/]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = match text.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(format!(
                    "{text}: https upstreams are not supported; give the plain-HTTP address your dev server listens on"
                ));
            }
            _ => return Err(format!("{text}: expected http://host:port")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{text}: expected http://host:port with no path, query or user (requests keep their own path)"
            ));
        }
        let uri: axum::http::uri::Authority = authority
            .parse()
            .map_err(|e| format!("{text}: not a host:port ({e})"))?;
        let port = uri.port_u16().unwrap_or(80);
        if port == 0 {
            return Err(format!("{text}: port 0 is not an address to connect to"));
        }
        let host = uri.host().to_string();
        Ok(Self {
            authority: format!("{host}:{port}"),
            host,
            port,
        })
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The host (a name, an IPv4 address, or `[v6]`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://host:port`, the origin the upstream names itself by in redirects.
    pub fn origin(&self) -> String {
        format!("http://{}", self.authority)
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin())
    }
}

impl TryFrom<String> for UpstreamUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<UpstreamUrl> for String {
    fn from(u: UpstreamUrl) -> String {
        u.origin()
    }
}

/// `[broker]`: the Redis that carries publishes between instances.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `redis://host:port/db`; unset: one instance, the in-process hub only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUrl>,
}

/// `[bridge]`: listen to channels_redis for `group_send`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// The Redis that Django's `CHANNEL_LAYERS` names (`redis://host:port/db`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_redis: Option<RedisUrl>,
    /// channels_redis's `prefix`.
    pub prefix: String,
    /// What reaches the browser: the event's `data` field, or the whole event.
    pub message: BridgeMessage,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            channels_redis: None,
            prefix: "asgi".into(),
            message: BridgeMessage::Data,
        }
    }
}

/// What of a `group_send` event a browser receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeMessage {
    /// `event["data"]` as JSON text (the whole event when it has no `data`).
    Data,
    /// The whole event (`type` included) as JSON text.
    Event,
}

/// A `redis://` (or `unix://`) URL, checked when the config loads. Its `Debug` and
/// [`RedisUrl::redacted`] never show a password.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedisUrl(String);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted()).finish()
    }
}

impl RedisUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced (`user:pass@`, `?pass=`, `?password=`), for
    /// events, stats and the UI.
    pub fn redacted(&self) -> String {
        let (url, query) = match self.0.split_once('?') {
            Some((u, q)) => (u, Some(q)),
            None => (self.0.as_str(), None),
        };
        let url = match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://…@{host}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        };
        match query {
            Some(q) => {
                let q: Vec<String> = q
                    .split('&')
                    .map(|p| match p.split_once('=') {
                        Some((k, _))
                            if k.eq_ignore_ascii_case("pass")
                                || k.eq_ignore_ascii_case("password") =>
                        {
                            format!("{k}=…")
                        }
                        _ => p.to_string(),
                    })
                    .collect();
                format!("{url}?{}", q.join("&"))
            }
            None => url,
        }
    }
}

impl TryFrom<String> for RedisUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        use redis::IntoConnectionInfo;
        let url = Self(s);
        let shown = url.redacted();
        if !url.0.starts_with("redis://") && !url.0.starts_with("unix://") {
            return Err(format!("{shown:?}: expected redis://host:port/db"));
        }
        url.0
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("{shown:?}: {e}"))?;
        Ok(url)
    }
}

impl From<RedisUrl> for String {
    fn from(u: RedisUrl) -> String {
        u.0
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Events kept in memory for the UI.
    pub ring: Positive<1_000_000>,
    /// Log file; default `sockpit.log.jsonl` in the data dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            ring: Positive(10_000),
            file: None,
        }
    }
}

/// What a client's message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMessage {
    /// Sent to every member of the endpoint's first channel.
    Broadcast,
    /// Sent back to the sender.
    Echo,
    /// Ignored (logged).
    Drop,
    /// POSTed to `webhook`; a reply body goes back to the sender.
    Webhook,
}

/// One `[[endpoint]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawEndpoint", into = "RawEndpoint")]
pub struct EndpointConfig {
    /// The WebSocket path, with `{name}` segments.
    pub path: PathPattern,
    /// Channels a connection joins; the first is where `broadcast` goes.
    pub channels: Vec<ChannelTemplate>,
    /// `jwt` or `none`.
    pub auth: AuthMode,
    /// What a client's message does.
    pub on_message: OnMessage,
    /// Backend URL for `on_message = "webhook"`.
    pub webhook: Option<WebhookUrl>,
    /// Told of each connection before it is accepted; its reply may refuse it.
    pub webhook_connect: Option<WebhookUrl>,
    /// Told after each connection closes.
    pub webhook_disconnect: Option<WebhookUrl>,
    /// Whether a broadcast also reaches its sender.
    pub echo_self: bool,
}

/// A webhook's address: `http://host[:port]/path[?query]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(axum::http::Uri);

impl WebhookUrl {
    /// The URL.
    pub fn uri(&self) -> &axum::http::Uri {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<String> for WebhookUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let uri: axum::http::Uri = s.parse().map_err(|e| format!("{s:?}: not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{s:?}: https webhooks are not supported; give your dev server's plain-HTTP address"
                ));
            }
            _ => return Err(format!("{s:?}: expected http://host:port/path")),
        }
        if uri
            .authority()
            .is_none_or(|a| a.host().is_empty() || a.as_str().contains('@'))
        {
            return Err(format!("{s:?}: expected http://host:port/path (no user)"));
        }
        Ok(Self(uri))
    }
}

impl From<WebhookUrl> for String {
    fn from(u: WebhookUrl) -> String {
        u.0.to_string()
    }
}

/// Whether an endpoint requires a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A valid JWT is required.
    Jwt,
    /// Anyone may connect.
    None,
}

/// The file shape of an endpoint, checked as a whole by `TryFrom`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    path: PathPattern,
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    channel: OneOrMany,
    #[serde(default = "default_auth")]
    auth: AuthMode,
    #[serde(default = "default_on_message")]
    on_message: OnMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<WebhookUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook_connect: Option<WebhookUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook_disconnect: Option<WebhookUrl>,
    #[serde(default = "yes")]
    echo_self: bool,
}

fn default_auth() -> AuthMode {
    AuthMode::Jwt
}
fn default_on_message() -> OnMessage {
    OnMessage::Drop
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(ChannelTemplate),
    Many(Vec<ChannelTemplate>),
}

impl OneOrMany {
    fn is_empty(&self) -> bool {
        matches!(self, Self::None) || matches!(self, Self::Many(v) if v.is_empty())
    }
}

impl TryFrom<RawEndpoint> for EndpointConfig {
    type Error = String;
    fn try_from(raw: RawEndpoint) -> Result<Self, String> {
        let channels = match raw.channel {
            OneOrMany::None => vec![],
            OneOrMany::One(c) => vec![c],
            OneOrMany::Many(v) => v,
        };
        let path = raw.path;
        for ch in &channels {
            for name in ch.placeholders() {
                if name == "user" {
                    if raw.auth == AuthMode::None {
                        return Err(format!(
                            "endpoint {path}: channel {ch} uses {{user}} but auth = \"none\" has no user"
                        ));
                    }
                } else if !path.params().any(|p| p == name) {
                    return Err(format!(
                        "endpoint {path}: channel {ch} uses {{{name}}}, which the path does not capture"
                    ));
                }
            }
        }
        if raw.on_message == OnMessage::Broadcast && channels.is_empty() {
            return Err(format!(
                "endpoint {path}: on_message = \"broadcast\" needs a channel"
            ));
        }
        match (raw.on_message, &raw.webhook) {
            (OnMessage::Webhook, None) => {
                return Err(format!(
                    "endpoint {path}: on_message = \"webhook\" needs webhook = \"http://…\" (where to POST each message)"
                ));
            }
            (other, Some(_)) if other != OnMessage::Webhook => {
                return Err(format!(
                    "endpoint {path}: webhook is set but on_message is not \"webhook\" (it would never be called)"
                ));
            }
            _ => {}
        }
        Ok(Self {
            path,
            channels,
            auth: raw.auth,
            on_message: raw.on_message,
            webhook: raw.webhook,
            webhook_connect: raw.webhook_connect,
            webhook_disconnect: raw.webhook_disconnect,
            echo_self: raw.echo_self,
        })
    }
}

impl From<EndpointConfig> for RawEndpoint {
    fn from(e: EndpointConfig) -> Self {
        let channel = match e.channels.len() {
            0 => OneOrMany::None,
            1 => OneOrMany::One(e.channels.into_iter().next().expect("one")),
            _ => OneOrMany::Many(e.channels),
        };
        Self {
            path: e.path,
            channel,
            auth: e.auth,
            on_message: e.on_message,
            webhook: e.webhook,
            webhook_connect: e.webhook_connect,
            webhook_disconnect: e.webhook_disconnect,
            echo_self: e.echo_self,
        }
    }
}

impl EndpointConfig {
    /// An endpoint with the given path and the file defaults otherwise.
    pub fn new(path: &str, channels: &[&str], auth: AuthMode, on_message: OnMessage) -> Self {
        Self {
            path: PathPattern::parse(path).expect("valid endpoint path"),
            channels: channels
                .iter()
                .map(|c| ChannelTemplate::parse(c).expect("valid channel template"))
                .collect(),
            auth,
            on_message,
            webhook: None,
            webhook_connect: None,
            webhook_disconnect: None,
            echo_self: true,
        }
    }
}

/// DESIGN.md's default endpoints, used when the config names none.
pub fn default_endpoints() -> Vec<EndpointConfig> {
    vec![
        EndpointConfig::new(
            "/ws/dashboard/",
            &["dashboard"],
            AuthMode::Jwt,
            OnMessage::Drop,
        ),
        EndpointConfig::new("/ws/echo/", &[], AuthMode::None, OnMessage::Echo),
    ]
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key or value in the file is wrong.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// The file name (or `<config>` for text given directly).
        file: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// Dotted key, e.g. `server.port` or `endpoint[2].channel`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An environment override has a bad value.
    #[error("{var}={value:?}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Parses and validates TOML text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let mut span = e.span().unwrap_or(0..0);
            // toml reports an `[[endpoint]]` entry's own check on the whole array: point
            // at the entry's `path` line instead, which the message names.
            if let Some(at) = e
                .message()
                .strip_prefix("endpoint ")
                .and_then(|m| m.split(':').next())
                .and_then(|path| text.find(&format!("\"{path}\"")))
            {
                span = at..at;
            }
            let (line, key) = locate(text, span);
            ConfigError::Invalid {
                file: file.to_string(),
                line,
                key,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// Reads and validates a file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The CLI's rule: `explicit` if given, else `sockpit.toml` in the working dir if
    /// present, else the built-in defaults; then the `SOCKPIT_*` environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match explicit {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_FILE).exists() => Self::from_file(Path::new(DEFAULT_FILE))?,
            None => Self::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Applies `SOCKPIT_PORT`, `SOCKPIT_BIND`, `SOCKPIT_JWT_SECRET` and `SOCKPIT_API_KEY`
    /// (`SOCKPIT_DATA_DIR` is read by [`crate::datadir`]).
    pub fn apply_env(
        &mut self,
        get: impl Fn(&'static str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = get("SOCKPIT_PORT") {
            self.server.port = v.trim().parse().map_err(|_| ConfigError::Env {
                var: "SOCKPIT_PORT",
                value: v.clone(),
                message: "expected a port number 0-65535".into(),
            })?;
        }
        if let Some(v) = get("SOCKPIT_BIND") {
            self.server.bind = v.trim().parse().map_err(|_| ConfigError::Env {
                var: "SOCKPIT_BIND",
                value: v.clone(),
                message: "expected an IP address such as 127.0.0.1".into(),
            })?;
        }
        if let Some(v) = get("SOCKPIT_JWT_SECRET").filter(|v| !v.is_empty()) {
            self.auth.secret = v;
        }
        if let Some(v) = get("SOCKPIT_API_KEY").filter(|v| !v.is_empty()) {
            self.api.key = v;
        }
        Ok(())
    }

    /// The config as TOML text (what Settings will write back).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// 1-based line of `span.start` and the dotted key written there.
fn locate(text: &str, span: std::ops::Range<usize>) -> (usize, String) {
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line_no - 1).copied().unwrap_or("").trim();
    // The table this line belongs to: the nearest header at or above it.
    let mut section = String::new();
    for (i, l) in lines.iter().enumerate().take(line_no).rev() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let index = lines[..i]
                .iter()
                .filter(|p| p.trim().starts_with(&format!("[[{name}]]")))
                .count();
            section = format!("{}[{index}]", name.trim());
            break;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = name.trim().to_string();
            break;
        }
    }
    let key = match here.split_once('=') {
        Some((k, _)) if !here.starts_with('[') => k.trim().trim_matches('"').to_string(),
        _ => String::new(),
    };
    let key = match (section.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".to_string(),
        (true, false) => key,
        (false, true) => section,
        (false, false) => format!("{section}.{key}"),
    };
    (line_no, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_matches_design() {
        let c = Config::default();
        assert_eq!(c.server.port, 8000);
        assert_eq!(c.server.bind.to_string(), "127.0.0.1");
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(c.endpoints[0].path.as_str(), "/ws/dashboard/");
        assert_eq!(c.endpoints[1].on_message, OnMessage::Echo);
        assert_eq!(c.auth.leeway_s.0, 0);
    }

    #[test]
    fn empty_file_is_the_builtin_config() {
        assert_eq!(Config::from_toml("", "x").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[server]\nport = 9000\nbogus = 1\n";
        let err = Config::from_toml(text, "s.toml").unwrap_err().to_string();
        assert!(err.starts_with("s.toml:3: server.bogus:"), "{err}");
        assert!(err.contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let text = "[server]\n\nport = \"abc\"\n";
        let err = Config::from_toml(text, "s.toml").unwrap_err().to_string();
        assert!(err.starts_with("s.toml:3: server.port:"), "{err}");
    }

    #[test]
    fn endpoint_errors_name_the_endpoint() {
        let text = "[[endpoint]]\npath = \"/a/\"\n\n[[endpoint]]\npath = \"/ws/{room}/\"\nchannel = \"chat.{rom}\"\n";
        let err = Config::from_toml(text, "s.toml").unwrap_err().to_string();
        assert!(err.contains("endpoint[1]"), "{err}");
        assert!(err.contains("{rom}"), "{err}");
    }

    #[test]
    fn channel_is_one_or_many_and_round_trips() {
        let text = "[[endpoint]]\npath = \"/ws/d/\"\nchannel = [\"dashboard\", \"user_{user}\"]\n";
        let c = Config::from_toml(text, "x").unwrap();
        assert_eq!(c.endpoints[0].channels.len(), 2);
        let again = Config::from_toml(&c.to_toml(), "x").unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn env_overrides_and_their_errors() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "SOCKPIT_PORT").then(|| "9001".to_string()))
            .unwrap();
        assert_eq!(c.server.port, 9001);
        let err = c
            .apply_env(|k| (k == "SOCKPIT_BIND").then(|| "nope".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("SOCKPIT_BIND"));
    }

    #[test]
    fn zero_limits_are_refused() {
        let err = Config::from_toml("[server]\nsend_queue = 0\n", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.send_queue"), "{err}");
        assert!(err.contains("greater than 0"), "{err}");
    }

    #[test]
    fn limits_the_server_cannot_honour_are_refused_with_key_and_line() {
        let huge = u64::MAX;
        for (section, key) in [
            ("server", "send_queue"),
            ("server", "handshake_timeout_s"),
            ("server", "ping_interval_s"),
            ("server", "idle_timeout_s"),
            ("server", "max_connections"),
            ("server", "max_message_bytes"),
            ("auth", "leeway_s"),
            ("log", "ring"),
        ] {
            let text = format!("# limits\n[{section}]\n{key} = {huge}\n");
            let e = Config::from_toml(&text, "sockpit.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("sockpit.toml:3: {section}.{key}:"))
                    && e.contains("at most"),
                "{e}"
            );
        }
        let ok = Config::from_toml("[server]\nsend_queue = 65536\n", "t").unwrap();
        assert_eq!(ok.server.send_queue.0, 65_536);
    }
}

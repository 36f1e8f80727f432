//! Plain HTTP to the upstream: the request streamed as it arrives, the answer streamed
//! back, as a development proxy should (Host kept, `X-Forwarded-*` added, hop-by-hop
//! headers dropped, redirects that name the upstream pointed back at Sockpit). Each
//! request becomes one `http_request` event once its answer is done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::client;
use crate::events::{Event, EventKind};
use crate::handshake;
use crate::origin::check_host;
use crate::proxy::page;
use crate::proxy::{Proxy, READY_WAIT};
use crate::state::Shared;

/// Forwards `req` to the upstream and streams its answer back.
pub(crate) async fn forward(
    shared: Arc<Shared>,
    proxy: Arc<Proxy>,
    remote: SocketAddr,
    req: Request,
) -> Response {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let mut log = RequestLog {
        shared: shared.clone(),
        started,
        method: parts.method.to_string(),
        path: handshake::shown_path(&parts.uri, &shared.config.auth.token_sources),
        remote,
        status: 0,
        bytes: 0,
    };
    proxy.count_request();
    proxy.ready(READY_WAIT).await;

    let host = parts.headers.get(header::HOST).cloned();
    // Browsers navigating get the page; `fetch()` and curl get one line of text.
    let html = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = match format!("http://{}{path_and_query}", proxy.upstream.authority()).parse() {
        Ok(uri) => uri,
        Err(_) => {
            log.status = 400;
            return (
                StatusCode::BAD_REQUEST,
                "request target cannot be forwarded\n",
            )
                .into_response();
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, remote, host.as_ref());
    parts.version = axum::http::Version::HTTP_11;

    let answer = proxy
        .client
        .request(axum::http::Request::from_parts(parts, body))
        .await;
    let resp = match answer {
        Ok(resp) => resp,
        Err(e) => {
            let why = client::describe(&e);
            log.status = 502;
            proxy.record_error(&format!("{} {}: 502 {why}", log.method, log.path));
            let show_output = check_host(
                &shared.config.api.hosts,
                host.as_ref().and_then(|h| h.to_str().ok()),
            )
            .is_ok();
            return bad_gateway(&proxy, &why, show_output, html);
        }
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    rewrite_location(&mut parts.headers, &proxy, host.as_ref());
    log.status = parts.status.as_u16();
    if parts.status.is_server_error() {
        proxy.record_error(&format!("{} {}: {}", log.method, log.path, log.status));
    }
    // The event is written when the body is done (or the client leaves): dropping the
    // closure drops the log.
    let body = body.map_frame(move |frame| {
        // Names `log` whole, so the closure owns it (not just a copy of `bytes`).
        let log = &mut log;
        if let Some(data) = frame.data_ref() {
            log.bytes += data.len() as u64;
        }
        frame
    });
    Response::from_parts(parts, Body::new(body))
}

/// One request's event, recorded when dropped.
struct RequestLog {
    shared: Arc<Shared>,
    started: Instant,
    method: String,
    path: String,
    remote: SocketAddr,
    status: u16,
    bytes: u64,
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let mut e = Event::new(EventKind::HttpRequest);
        e.method = Some(std::mem::take(&mut self.method));
        e.path = Some(std::mem::take(&mut self.path));
        e.status = Some(self.status);
        e.bytes = Some(self.bytes);
        e.duration_ms = Some(self.started.elapsed().as_millis() as u64);
        e.remote = Some(self.remote.to_string().into());
        e.endpoint = Some("upstream".into());
        self.shared.events.emit(e);
    }
}

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), plus the
/// ones the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// `X-Forwarded-For/Proto/Host`, so the app sees the browser's side of the connection.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    remote: SocketAddr,
    host: Option<&HeaderValue>,
) {
    let ip = remote.ip().to_string();
    let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    // Never the client's own claim.
    match host {
        Some(h) => headers.insert("x-forwarded-host", h.clone()),
        None => headers.remove("x-forwarded-host"),
    };
}

/// A `Location` that names the upstream's own address (`http://127.0.0.1:8001/x`)
/// would send the browser around Sockpit: point it at the address the browser used.
fn rewrite_location(headers: &mut HeaderMap, proxy: &Proxy, host: Option<&HeaderValue>) {
    let (Some(loc), Some(host)) = (
        headers.get(header::LOCATION).and_then(|v| v.to_str().ok()),
        host.and_then(|h| h.to_str().ok()),
    ) else {
        return;
    };
    let upstream = proxy.upstream.origin();
    let Some(rest) = loc.strip_prefix(&upstream) else {
        return;
    };
    // `http://127.0.0.1:8001` must not match `http://127.0.0.1:80012/`.
    if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&format!("http://{host}{rest}")) {
        headers.insert(header::LOCATION, v);
    }
}

fn bad_gateway(proxy: &Proxy, why: &str, show_output: bool, html: bool) -> Response {
    let (kind, body) = if html {
        (
            "text/html; charset=utf-8",
            page::html(proxy, why, show_output),
        )
    } else {
        (
            "text/plain; charset=utf-8",
            page::text(proxy, why, show_output),
        )
    };
    let mut resp = (StatusCode::BAD_GATEWAY, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    resp
}

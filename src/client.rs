//! The HTTP client Sockpit reaches the developer's backend with (the `[proxy]` upstream,
//! webhooks): pooled HTTP/1, a connect timeout, and errors said in a developer's words.

use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled client sending bodies of type `B`; `keep_host` leaves a request's own
/// `Host` header alone instead of setting the target's.
pub fn new<B>(keep_host: bool) -> Client<HttpConnector, B>
where
    B: axum::body::HttpBody + Send + 'static,
    B::Data: Send,
{
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .set_host(!keep_host)
        .build(connector)
}

/// Why a request got no answer: the OS error underneath when there is one.
pub fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (nothing listens there)".into()
                }
                std::io::ErrorKind::TimedOut => "connection timed out".into(),
                _ => io.to_string(),
            };
        }
        source = s.source();
    }
    if e.is_connect() {
        return format!("cannot connect: {e}");
    }
    match std::error::Error::source(e) {
        Some(i) => format!("{e}: {i}"),
        None => e.to_string(),
    }
}

//! Webhooks: client messages, connects and disconnects POSTed as JSON to the backend
//! (`webhook`, `webhook_connect`, `webhook_disconnect` on an endpoint), with a timeout,
//! retries, and a delivery log the UI shows and can re-send from.
//!
//! A delivery is tried up to [`ATTEMPTS`] times: again after a connection error, a
//! timeout or a 5xx; a 4xx is the backend's answer and is not retried. The reply body of
//! a 2xx is what the caller gets (a message webhook sends it back to the sender).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{Method, Request, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use crate::client;
use crate::close::CloseCode;
use crate::config::WebhookUrl;
use crate::events::{Event, EventKind};
use crate::hub::ConnMeta;

/// Tries per delivery.
pub const ATTEMPTS: u32 = 3;
/// How long one try may take, answer included.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries kept for the UI.
const KEPT: usize = 200;
/// Request bodies kept for re-sending; a larger one is logged without it.
const KEPT_BODY: usize = 64 << 10;
/// POSTs in flight at once.
const IN_FLIGHT: usize = 32;
/// What the log shows of a request or reply.
const SHOWN: usize = 2 << 10;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// A client message (`webhook`).
    Message,
    /// A connection asking in (`webhook_connect`).
    Connect,
    /// A connection that closed (`webhook_disconnect`).
    Disconnect,
}

/// One delivery, as the log shows it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Delivery {
    /// Its number in this server run.
    pub id: u64,
    /// RFC 3339 time it started.
    pub ts: String,
    /// Which hook.
    pub kind: WebhookKind,
    /// Where it went.
    pub url: String,
    /// The connection it is about.
    pub conn: String,
    /// The JSON sent (the first 2 KiB).
    pub request: String,
    /// Whether the backend answered 2xx.
    pub ok: bool,
    /// The last answer's status, if any came.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Tries made.
    pub attempts: u32,
    /// Milliseconds from the first try to the end.
    pub duration_ms: u64,
    /// Why it failed.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last answer's body, whatever its status (the first 2 KiB).
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Whether the request is kept and can be re-sent.
    pub resendable: bool,
}

/// A finished delivery: what the caller acts on.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The log entry.
    pub delivery: Delivery,
    /// A 2xx reply's body (may be empty).
    pub reply: Option<Bytes>,
}

struct Kept {
    delivery: Delivery,
    url: WebhookUrl,
    body: Option<Bytes>,
}

/// The webhook client and delivery log of one server run.
pub struct Webhooks {
    client: Client<HttpConnector, Full<Bytes>>,
    log: Mutex<VecDeque<Kept>>,
    next_id: AtomicU64,
    /// POSTs in flight at most: a thousand clients leaving at once wait their turn
    /// instead of opening a thousand connections to the backend.
    permits: tokio::sync::Semaphore,
    /// Largest reply read (`max_message_bytes`: it may be sent to a client).
    max_reply: usize,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

impl Webhooks {
    /// A client whose replies are read up to `max_reply` bytes.
    pub fn new(max_reply: usize) -> Self {
        Self {
            client: client::new(false),
            log: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            permits: tokio::sync::Semaphore::new(IN_FLIGHT),
            max_reply,
        }
    }

    /// The log, newest last.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().iter().map(|k| k.delivery.clone()).collect()
    }

    /// What re-sending delivery `id` needs: its kind, connection, URL and body.
    pub fn kept(&self, id: u64) -> Option<(WebhookKind, String, WebhookUrl, Option<Bytes>)> {
        self.log
            .lock()
            .iter()
            .find(|k| k.delivery.id == id)
            .map(|k| {
                (
                    k.delivery.kind,
                    k.delivery.conn.clone(),
                    k.url.clone(),
                    k.body.clone(),
                )
            })
    }

    /// POSTs `body` to `url`, retrying as the module says, and logs the delivery.
    pub async fn post(
        &self,
        kind: WebhookKind,
        url: &WebhookUrl,
        conn: &str,
        body: Bytes,
    ) -> Outcome {
        let started = Instant::now();
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (mut status, mut error, mut reply, mut attempts) = (None, None, None, 0);
        // The last answer's body, whatever its status, for the log.
        let mut answered: Option<Bytes> = None;
        while attempts < ATTEMPTS {
            if attempts > 0 {
                tokio::time::sleep(Duration::from_millis(500 << (attempts - 1))).await;
            }
            attempts += 1;
            let tried = {
                let _permit = self.permits.acquire().await;
                self.try_once(url, id, body.clone()).await
            };
            match tried {
                Try::Answered { status: s, body: b } if (200..300).contains(&s) => {
                    status = Some(s);
                    error = None;
                    answered = Some(b.clone());
                    reply = Some(b);
                    break;
                }
                Try::Answered { status: s, body: b } => {
                    status = Some(s);
                    let first = String::from_utf8_lossy(&b[..b.len().min(200)])
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    answered = Some(b);
                    error = Some(if first.is_empty() {
                        format!("HTTP {s}")
                    } else {
                        format!("HTTP {s}: {first}")
                    });
                    // The backend's own answer: asking again will not change it.
                    if s < 500 {
                        break;
                    }
                }
                // The backend took the request: another try would repeat it.
                Try::TooLarge { status: s } => {
                    status = Some(s);
                    error = Some(format!(
                        "HTTP {s} with a reply over max_message_bytes ({} bytes): not used",
                        self.max_reply
                    ));
                    break;
                }
                Try::Failed(e) => {
                    status = None;
                    error = Some(e);
                }
            }
        }
        let delivery = Delivery {
            id,
            ts,
            kind,
            // A secret in the query (`?key=…`) is not shown.
            url: crate::auth::redact_text(&url.to_string(), &[]),
            conn: conn.to_string(),
            request: shown(&body),
            ok: error.is_none(),
            status,
            attempts,
            duration_ms: started.elapsed().as_millis() as u64,
            error,
            response: answered
                .as_ref()
                .filter(|r| !r.is_empty())
                .map(|r| shown(r)),
            resendable: body.len() <= KEPT_BODY,
        };
        let mut log = self.log.lock();
        if log.len() == KEPT {
            log.pop_front();
        }
        log.push_back(Kept {
            delivery: delivery.clone(),
            url: url.clone(),
            body: (body.len() <= KEPT_BODY).then_some(body),
        });
        Outcome { delivery, reply }
    }

    /// One POST: the status and the body (read up to `max_reply` bytes), or why none came.
    async fn try_once(&self, url: &WebhookUrl, id: u64, body: Bytes) -> Try {
        let req = Request::builder()
            .method(Method::POST)
            .uri(url.uri().clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("sockpit/", env!("CARGO_PKG_VERSION")),
            )
            // The same on every try: a backend that got a try whose answer was lost
            // can tell the next one is not a new message.
            .header("x-sockpit-delivery", id.to_string())
            .body(Full::new(body));
        let req = match req {
            Ok(r) => r,
            Err(e) => return Try::Failed(format!("cannot build the request: {e}")),
        };
        let answer = tokio::time::timeout(TIMEOUT, async {
            let resp = match self.client.request(req).await {
                Ok(r) => r,
                Err(e) => return Try::Failed(client::describe(&e)),
            };
            let status = resp.status().as_u16();
            match Limited::new(resp.into_body(), self.max_reply)
                .collect()
                .await
            {
                Ok(b) => Try::Answered {
                    status,
                    body: b.to_bytes(),
                },
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Try::TooLarge { status },
                Err(e) => Try::Failed(format!("reading the reply: {e}")),
            }
        })
        .await;
        answer.unwrap_or_else(|_| Try::Failed(format!("no answer within {}s", TIMEOUT.as_secs())))
    }
}

/// One try's result.
enum Try {
    /// A whole answer.
    Answered { status: u16, body: Bytes },
    /// An answer whose body is over the limit: the backend got the request.
    TooLarge { status: u16 },
    /// No answer.
    Failed(String),
}

/// What a log shows of a body: the first 2 KiB as text.
fn shown(b: &[u8]) -> String {
    let cut = &b[..b.len().min(SHOWN)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if b.len() > SHOWN {
        s.push('…');
    }
    s
}

/// What every hook's JSON says about the connection: `event`, `conn`, `user`,
/// `endpoint`, `path`, `channels`, `params` (the disconnect adds `code` and `reason`,
/// the message `message`).
pub fn about(id: u64, meta: &ConnMeta, event: &str) -> Bytes {
    about_with(id, meta, event, serde_json::Map::new())
}

/// [`about`] with more fields.
pub fn about_with(
    id: u64,
    meta: &ConnMeta,
    event: &str,
    mut more: serde_json::Map<String, Value>,
) -> Bytes {
    let mut v = serde_json::Map::new();
    v.insert("event".into(), event.into());
    v.insert("conn".into(), format!("c{id}").into());
    v.insert(
        "user".into(),
        meta.user.clone().map_or(Value::Null, Value::from),
    );
    v.insert("endpoint".into(), meta.endpoint.clone().into());
    v.insert("path".into(), meta.path.clone().into());
    v.insert("channels".into(), meta.channels.clone().into());
    v.insert(
        "params".into(),
        Value::Object(
            meta.params
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect(),
        ),
    );
    v.append(&mut more);
    Bytes::from(Value::Object(v).to_string())
}

/// A connect webhook's refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The close code the client reads.
    pub code: u16,
    /// Why.
    pub reason: String,
    /// How the handshake stats count it.
    pub counted: CloseCode,
}

/// Whether a connect webhook's answer lets the client in: a 2xx whose JSON says
/// `{"accept": false, "code": 4403, "reason": "…"}` refuses with that close (a code
/// outside 4000–4999 becomes 4003); any other 2xx accepts; no 2xx refuses with 4502.
pub fn connect_verdict(outcome: &Outcome) -> Result<(), Refusal> {
    let Some(reply) = &outcome.reply else {
        return Err(Refusal {
            code: CloseCode::UpstreamFailed.code(),
            reason: crate::events::clip(&format!(
                "webhook_connect failed: {}",
                outcome.delivery.error.as_deref().unwrap_or("no answer")
            )),
            counted: CloseCode::UpstreamFailed,
        });
    };
    let answer: Value = serde_json::from_slice(reply).unwrap_or(Value::Null);
    if answer.get("accept") != Some(&Value::Bool(false)) {
        return Ok(());
    }
    let code = answer
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (4000..=4999).contains(c))
        .unwrap_or(CloseCode::Forbidden.code());
    let reason = answer
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("refused by webhook_connect");
    Err(Refusal {
        code,
        reason: crate::events::clip(reason),
        counted: CloseCode::Forbidden,
    })
}

/// The `webhook_failed` event of a delivery that failed.
pub fn failed_event(d: &Delivery) -> Event {
    let mut e = Event::new(EventKind::WebhookFailed);
    e.conn = Some(d.conn.as_str().into());
    e.reason = Some(format!(
        "POST {} ({:?} webhook): {} after {} attempt{}",
        d.url,
        d.kind,
        d.error.as_deref().unwrap_or("failed"),
        d.attempts,
        if d.attempts == 1 { "" } else { "s" }
    ));
    e.status = d.status;
    e.duration_ms = Some(d.duration_ms);
    e
}

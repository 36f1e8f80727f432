//! Webhooks: a real Python HTTP handler (the standard library's `http.server`, as a
//! Django view would answer) receives client messages, connects and disconnects; its
//! replies reach the sender. Failures are retried and logged; the log re-sends.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use serde_json::{Value, json};

/// The backend: answers `/hook` with an echo of what it got, `/connect` with a refusal
/// for user `banned`, `/disconnect` with 204, `/fail` with 500, `/bad` with 400; prints
/// every body it receives on stdout, one JSON line each.
const BACKEND: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        print(json.dumps({"path": self.path, "body": body}), flush=True)
        if self.path == "/hook":
            self.answer(200, {"echo": body["message"], "user": body["user"], "params": body["params"], "conn": body["conn"]})
        elif self.path == "/connect":
            if body["user"] == "banned":
                self.answer(200, {"accept": False, "code": 4403, "reason": "banned from this room"})
            else:
                self.answer(200, {"accept": True})
        elif self.path == "/disconnect":
            self.send_response(204); self.end_headers()
        elif self.path == "/bad":
            self.answer(400, "no such room")
        elif self.path == "/big":
            self.answer(200, "x" * 2000000)
        else:
            self.answer(500, "boom")
    def answer(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

struct Backend {
    child: Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Backend {
    fn start() -> Result<Self> {
        let mut child = Command::new("python3")
            .args(["-c", BACKEND])
            .stdout(Stdio::piped())
            .spawn()
            .context("python3")?;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first)?;
        let port = first.trim().parse()?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || read_lines(out, tx));
        Ok(Self { child, port, lines })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next body the backend received at `path`.
    fn received(&self, path: &str) -> Result<Value> {
        loop {
            let v = self.lines.recv_timeout(Duration::from_secs(10))?;
            if v["path"] == path {
                return Ok(v["body"].clone());
            }
        }
    }
}

fn read_lines(out: BufReader<ChildStdout>, tx: std::sync::mpsc::Sender<Value>) {
    for line in out.lines().map_while(Result::ok) {
        if let Ok(v) = serde_json::from_str(&line) {
            let _ = tx.send(v);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hooked(backend: &Backend, hook: &str, auth: &str) -> sockpit::Config {
    config_from(&format!(
        "[[endpoint]]\npath = \"/ws/room/{{room}}/\"\nchannel = \"room.{{room}}\"\nauth = \"{auth}\"\n\
         on_message = \"webhook\"\nwebhook = \"{}\"\nwebhook_connect = \"{}\"\nwebhook_disconnect = \"{}\"\n",
        backend.url(hook),
        backend.url("/connect"),
        backend.url("/disconnect"),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_connects_and_disconnects_reach_a_python_backend_and_replies_come_back()
-> Result<()> {
    let backend = Backend::start()?;
    let server = TestServer::start(hooked(&backend, "/hook", "jwt")).await;
    let token = server.token("42");
    let mut ws = server.connect(&format!("/ws/room/a1/?token={token}")).await;
    let connect = backend.received("/connect")?;
    assert_eq!(connect["event"], "connect");
    assert_eq!(connect["user"], "42");
    assert_eq!(connect["params"], json!({"room": "a1"}));
    assert_eq!(connect["channels"], json!(["room.a1", "user.42"]));
    let conn = connect["conn"].as_str().unwrap().to_string();

    send_text(&mut ws, "hello backend").await;
    let got: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
    assert_eq!(
        got,
        json!({"echo": "hello backend", "user": "42", "params": {"room": "a1"}, "conn": conn})
    );
    let posted = backend.received("/hook")?;
    assert_eq!(posted["event"], "message");
    assert_eq!(posted["message"], "hello backend");
    // In order, one after another.
    for i in 0..5 {
        send_text(&mut ws, &format!("m{i}")).await;
    }
    for i in 0..5 {
        let got: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
        assert_eq!(got["echo"], format!("m{i}"));
    }

    // The disconnect comes after the last message, not before it.
    send_text(&mut ws, "last words").await;
    ws.close(None).await?;
    let mut order = Vec::new();
    while !order
        .last()
        .is_some_and(|l: &String| l.starts_with("/disconnect"))
    {
        let v = backend.lines.recv_timeout(Duration::from_secs(10))?;
        order.push(format!(
            "{} {}",
            v["path"].as_str().unwrap(),
            v["body"]["message"].as_str().unwrap_or("")
        ));
        if v["path"] == "/disconnect" {
            assert_eq!(v["body"]["conn"], conn);
            assert_eq!(v["body"]["code"], 1005);
        }
    }
    assert_eq!(
        order[order.len() - 2..],
        ["/hook last words", "/disconnect "],
        "{order:?}"
    );

    // The delivery log lists them, and re-sends. The backend has the disconnect; its
    // delivery is logged once the backend's answer is back, so wait for that.
    let mut log: Value = server.get_json("/_sockpit/api/webhooks").await;
    for _ in 0..100 {
        if log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "disconnect")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = server.get_json("/_sockpit/api/webhooks").await;
    }
    let deliveries = log["deliveries"].as_array().unwrap();
    let kinds: Vec<&str> = deliveries
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "connect");
    assert!(
        kinds.contains(&"message") && kinds.contains(&"disconnect"),
        "{kinds:?}"
    );
    let first_message = deliveries.iter().find(|d| d["kind"] == "message").unwrap();
    assert!(first_message["ok"].as_bool().unwrap());
    assert_eq!(first_message["status"], 200);
    let id = first_message["id"].as_u64().unwrap();
    let again: Value = reqwest::Client::new()
        .post(server.http(&format!("/_sockpit/api/webhooks/{id}/resend")))
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(again["ok"], true);
    assert!(again["id"].as_u64().unwrap() > id);
    assert_eq!(backend.received("/hook")?["message"], "hello backend");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_webhook_refuses_with_its_own_code_and_reason() -> Result<()> {
    let backend = Backend::start()?;
    let server = TestServer::start(hooked(&backend, "/hook", "jwt")).await;
    let token = server.token("banned");
    let mut ws = server.connect(&format!("/ws/room/a1/?token={token}")).await;
    assert_eq!(
        closed(&mut ws).await?,
        (4403, "banned from this room".into())
    );
    let e = server.events("handshake_rejected").pop().unwrap();
    assert_eq!(e["code"], 4403);
    assert_eq!(server.handle.stats().connections, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_logged_and_said() -> Result<()> {
    let backend = Backend::start()?;
    // 500: three tries, then webhook_failed; the client gets nothing back.
    let server = TestServer::start(hooked(&backend, "/fail", "none")).await;
    let mut ws = server.connect("/ws/room/a1/").await;
    send_text(&mut ws, "x").await;
    for _ in 0..3 {
        assert_eq!(backend.received("/fail")?["message"], "x");
    }
    let mut failed = Vec::new();
    for _ in 0..100 {
        failed = server.events("webhook_failed");
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("/fail (Message webhook): HTTP 500: \"boom\" after 3 attempts"),
        "{reason}"
    );
    silent(&mut ws, 200).await;

    // 400 is the backend's answer: one try.
    let server = TestServer::start(hooked(&backend, "/bad", "none")).await;
    let mut ws = server.connect("/ws/room/a1/").await;
    send_text(&mut ws, "y").await;
    backend.received("/bad")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log: Value = server.get_json("/_sockpit/api/webhooks").await;
    let d = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "message")
        .cloned()
        .unwrap();
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["ok"], false);

    // A 2xx reply over max_message_bytes: the backend got it once (no retry), the client
    // gets nothing, the log says why.
    let server = TestServer::start(hooked(&backend, "/big", "none")).await;
    let mut ws = server.connect("/ws/room/a1/").await;
    send_text(&mut ws, "z").await;
    backend.received("/big")?;
    silent(&mut ws, 500).await;
    let log: Value = server.get_json("/_sockpit/api/webhooks").await;
    let d = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "message")
        .cloned()
        .unwrap();
    assert_eq!(d["attempts"], 1, "{d}");
    assert!(
        d["error"]
            .as_str()
            .unwrap()
            .contains("over max_message_bytes"),
        "{d}"
    );
    assert!(
        backend
            .lines
            .recv_timeout(Duration::from_millis(1500))
            .is_err(),
        "tried again"
    );

    // Nothing listening: the connect hook fails, the client reads why.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = config_from(&format!(
        "[[endpoint]]\npath = \"/ws/x/\"\nauth = \"none\"\nwebhook_connect = \"http://127.0.0.1:{dead}/connect\"\n"
    ));
    let server = TestServer::start(config).await;
    let mut ws = server.connect("/ws/x/").await;
    let (code, reason) = closed(&mut ws).await?;
    assert_eq!(code, 4502);
    assert!(
        reason.starts_with("webhook_connect failed: connection refused"),
        "{reason}"
    );
    Ok(())
}

#[test]
fn webhook_config_errors_name_the_key() {
    for (extra, want) in [
        ("on_message = \"webhook\"\n", "needs webhook = \"http://…\""),
        (
            "webhook = \"http://127.0.0.1:8001/h/\"\n",
            "on_message is not \"webhook\"",
        ),
        (
            "on_message = \"webhook\"\nwebhook = \"https://x/h/\"\n",
            "https webhooks are not supported",
        ),
        (
            "on_message = \"webhook\"\nwebhook = \"/relative\"\n",
            "expected http://host:port/path",
        ),
    ] {
        let text = format!("[[endpoint]]\npath = \"/ws/x/\"\nauth = \"none\"\n{extra}");
        let e = sockpit::Config::from_toml(&text, "sockpit.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{extra}: {e}");
    }
}

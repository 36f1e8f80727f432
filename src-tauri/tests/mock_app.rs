//! The desktop shell's commands and controller, driven through Tauri's IPC on the mock
//! runtime (no display): the same commands the window and the tray menu use, against a
//! real server on a real port.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sockpit::Paths;
use sockpit::config::Config;
use sockpit_desktop::{Options, run_app};
use tauri::ipc::InvokeBody;
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sockpit-desktop-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct TestApp {
    _app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
}

fn app(tag: &str, port: u16, config_file: Option<PathBuf>) -> TestApp {
    let mut config = Config::default();
    config.server.port = port;
    config.auth.secret = "desktop-test".into();
    let app = run_app(
        mock_builder(),
        mock_context(noop_assets()),
        Options {
            config,
            paths: Paths::in_dir(temp(tag)).with_config_file(config_file),
            tray: false,
            plugins: false,
            hidden: false,
        },
    )
    .expect("app builds");
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("window");
    TestApp { _app: app, window }
}

fn invoke(t: &TestApp, cmd: &str, body: Value) -> Result<Value, Value> {
    get_ipc_response(
        &t.window,
        InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|r| r.deserialize::<Value>().unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn start_stop_restart_through_the_commands() {
    let t = app("lifecycle", 0, None);
    let s = invoke(&t, "status", json!({})).unwrap();
    assert_eq!(s["state"], "stopped");

    let s = invoke(&t, "start", json!({})).unwrap();
    assert_eq!(s["state"], "running");
    let base = s["base_url"].as_str().unwrap().to_string();
    let key = s["api_key"].as_str().unwrap().to_string();
    assert!(s["ws_url"].as_str().unwrap().ends_with("/ws/dashboard/"));

    let rt = rt();
    rt.block_on(async {
        let ok = reqwest::get(format!("{base}/_sockpit/healthz"))
            .await
            .unwrap();
        assert_eq!(ok.text().await.unwrap(), "ok");
        let stats: Value = reqwest::Client::new()
            .get(format!("{base}/_sockpit/api/stats"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["connections"], 0);
    });

    // A client connected while the server stops gets 1001.
    let ws_url = format!("{}/ws/echo/", base.replace("http://", "ws://"));
    let mut ws = rt.block_on(async { tokio_tungstenite::connect_async(&ws_url).await.unwrap().0 });
    let s = invoke(&t, "stop", json!({})).unwrap();
    assert_eq!(s["state"], "stopped");
    let close = rt.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f))))) => {
                    break u16::from(f.code);
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    });
    assert_eq!(close, 1001);

    let s = invoke(&t, "restart", json!({})).unwrap();
    assert_eq!(s["state"], "running");
    let s = invoke(&t, "stop", json!({})).unwrap();
    assert_eq!(s["state"], "stopped");
}

#[test]
fn a_taken_port_is_an_error_state_naming_the_holder_and_a_free_port_fixes_it() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let file = temp("port").join("sockpit.toml");
    let t = app("port-app", port, Some(file.clone()));

    let err = invoke(&t, "start", json!({})).unwrap_err();
    assert_eq!(err["kind"], "start");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("port {port} is in use (held by "))
    );
    let s = invoke(&t, "status", json!({})).unwrap();
    assert_eq!(s["state"], "error");
    assert_eq!(s["holder"]["pid"], std::process::id());

    let s = invoke(&t, "use_free_port", json!({})).unwrap();
    assert_eq!(s["state"], "running");
    let new_port = s["port"].as_u64().unwrap() as u16;
    assert_ne!(new_port, port);
    // The new port is saved in the desktop config, which still parses.
    let saved = Config::from_file(&file).unwrap();
    assert_eq!(saved.server.port, new_port);
    invoke(&t, "stop", json!({})).unwrap();
}

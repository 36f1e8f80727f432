//! The desktop shell's commands and controller, driven through Tauri's IPC on the mock
//! runtime (no display): the same commands the window and the tray menu use, against a
//! real server on a real port.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sockpit::Paths;
use sockpit::config::Config;
use sockpit_desktop::profiles::Profiles;
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
            paths: Paths::in_dir(temp(tag)).with_config_file(config_file.clone()),
            tray: false,
            plugins: false,
            hidden: false,
            profiles: Profiles::new(config_file),
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

/// A copy of the Django fixture with its venv beside manage.py, as a developer has one.
fn django_project(tag: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target/django-venv");
    assert!(venv.exists(), "run scripts/django-venv.sh first");
    let dir = temp(tag).join("mysite");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(root.join("tests/fixtures/django"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink(venv, dir.join(".venv")).unwrap();
    dir
}

#[test]
fn a_django_project_becomes_a_profile_and_profiles_switch_one_server_at_a_time() {
    let dir = temp("profiles-cfg");
    let default_file = dir.join("sockpit.toml");
    let t = app("profiles", 0, Some(default_file.clone()));
    let s = invoke(&t, "start", json!({})).unwrap();
    assert_eq!(s["state"], "running");
    let list = invoke(&t, "profiles", json!({})).unwrap();
    assert_eq!(
        list,
        json!([{"name": "Default", "file": default_file.display().to_string(), "active": true}])
    );

    // Not a project: a clear error, nothing saved, the server untouched.
    let e = invoke(
        &t,
        "inspect_project",
        json!({"dir": dir.display().to_string()}),
    )
    .unwrap_err();
    assert_eq!(e["kind"], "project");
    assert!(
        e["message"].as_str().unwrap().contains("no manage.py here"),
        "{e}"
    );
    // A path as typed: `~/` is the home directory, an empty python is none given.
    let e = invoke(
        &t,
        "inspect_project",
        json!({"dir": " ~/no-such-sockpit-project ", "python": ""}),
    )
    .unwrap_err();
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        e["message"],
        format!("{home}/no-such-sockpit-project: no such directory")
    );
    let e = invoke(&t, "switch_profile", json!({"name": "../../etc/passwd"})).unwrap_err();
    assert_eq!(e["message"], "no profile named \"../../etc/passwd\"");
    assert_eq!(invoke(&t, "status", json!({})).unwrap()["state"], "running");

    let project = django_project("profiles-project");
    let p = invoke(
        &t,
        "inspect_project",
        json!({"dir": project.display().to_string()}),
    )
    .unwrap();
    assert_eq!(p["name"], "mysite");
    assert_eq!(p["relays"], true);
    let toml = p["toml"].as_str().unwrap();
    assert!(
        toml.contains(&format!(
            "cwd = \"{}\"",
            project.canonicalize().unwrap().display()
        )),
        "{toml}"
    );
    assert!(
        !toml.contains("fixture-secret-not-for-production"),
        "{toml}"
    );
    assert!(
        p["report"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0] == "server" && r[1] == "daphne 4.2.3")
    );

    let s = invoke(
        &t,
        "add_project",
        json!({"dir": project.display().to_string()}),
    )
    .unwrap();
    assert_eq!(s["state"], "running");
    assert!(s["ws_url"].is_null() || s["ws_url"].as_str().unwrap().ends_with('/'));
    let list = invoke(&t, "profiles", json!({})).unwrap();
    let names: Vec<(&str, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["active"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("Default", false), ("mysite", true)]);
    assert_eq!(
        list[1]["project"],
        project.canonicalize().unwrap().display().to_string()
    );
    let saved = std::fs::read_to_string(dir.join("profiles/mysite.toml")).unwrap();
    assert!(
        saved.contains("secret = \"fixture-secret-not-for-production"),
        "{saved}"
    );

    let s = invoke(&t, "switch_profile", json!({"name": "Default"})).unwrap();
    assert_eq!(s["state"], "running");
    assert_eq!(
        std::fs::read_to_string(dir.join("profiles/active")).unwrap(),
        "Default"
    );
    let _ = invoke(&t, "stop", json!({}));
}

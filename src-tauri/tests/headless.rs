//! The desktop binary with no display runs the headless server, as a user on a machine
//! without a desktop gets it: it prints the browser UI's URL, restarts on a config saved
//! through Settings (on the new port, announcing the new URL), and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const APP: &str = env!("CARGO_BIN_EXE_sockpit-desktop");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The next printed line containing `needle`, within 20 s.
fn line_with(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("the app never printed {needle:?}");
}

#[test]
fn headless_mode_restarts_on_a_config_saved_through_settings() {
    let dir = std::env::temp_dir().join(format!("sockpit-headless-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (free_port(), free_port());
    let config = dir.join("sockpit.toml");
    std::fs::write(&config, format!("[server]\nport = {old}\n")).unwrap();
    let mut child = Command::new(APP)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("SOCKPIT_PORT")
        .env_remove("SOCKPIT_API_KEY")
        .env("SOCKPIT_DATA_DIR", &dir)
        .env("SOCKPIT_CONFIG", &config)
        .env("SOCKPIT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the desktop binary starts");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let login = line_with(&lines, "Open the UI in a browser:");
    assert!(
        login.contains(&format!("http://127.0.0.1:{old}/_sockpit/login?key=")),
        "{login}"
    );
    let key = login.rsplit("key=").next().unwrap().to_string();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer: Value = rt.block_on(async {
        reqwest::Client::new()
            .put(format!("http://127.0.0.1:{old}/_sockpit/api/config"))
            .header("x-api-key", &key)
            .json(&json!({ "toml": format!("[server]\nport = {new}\n") }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(answer["restarting"], true, "{answer}");
    let moved = line_with(&lines, "Open the UI in a browser:");
    assert!(moved.contains(&format!("127.0.0.1:{new}/")), "{moved}");
    let health = rt.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{new}/_sockpit/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert_eq!(health, "ok");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains(&format!("port = {new}"))
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends it cleanly: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Sockpit's desktop shell: a thin Tauri adapter over the `sockpit` library.
//!
//! - [`controller`]: the one owner of the server's lifecycle (Tauri-free).
//! - [`commands`]: the window's IPC (desktop concerns only).
//! - [`tray`]: the tray icon and menu, following the controller's status.
//! - [`profiles`]: one config file per Django project opened in the app (Tauri-free).
//! - here: wiring — [`run_app`] builds the app on any runtime (tests use the mock
//!   runtime), [`main`] picks the real one, or runs headless without a display.
#![warn(missing_docs)]

pub mod commands;
pub mod controller;
pub mod profiles;
pub mod tray;

use std::path::PathBuf;
use std::sync::Arc;

use sockpit::config::Config;
use sockpit::{Paths, Supervisor};
use tauri::{
    App, AppHandle, Builder, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder,
    WindowEvent,
};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_clipboard_manager::ClipboardExt as _;

use crate::controller::{Controller, ServerState, Status};
use crate::profiles::Profiles;
use crate::tray::{MenuId, Tray};

/// The event carrying [`Status`] to the window whenever it changes.
pub const STATUS_EVENT: &str = "sockpit://status";
/// The event carrying the profile list to the window after a switch or an addition.
pub const PROFILES_EVENT: &str = "sockpit://profiles";
/// The event asking the window to show "Open a Django project…" (from the tray).
pub const OPEN_PROJECT_EVENT: &str = "sockpit://open-project";
/// The main window's label.
pub const MAIN_WINDOW: &str = "main";

/// How to build the app.
pub struct Options {
    /// The server config (already validated).
    pub config: Config,
    /// Data dir for secrets and the log; `paths.config_file` is the desktop config that
    /// Settings and "use another port" write.
    pub paths: Paths,
    /// Whether to create the tray (false where its library is missing, and in tests).
    pub tray: bool,
    /// Whether to register the OS-facing plugins (autostart, notification, clipboard,
    /// single instance); off under the mock runtime.
    pub plugins: bool,
    /// Start in the tray without opening the window (`--hidden`, which Launch at login
    /// passes); ignored without a tray, where the window is the only way in.
    pub hidden: bool,
    /// The config files the tray and the window switch between (`paths.config_file` is
    /// the active one's).
    pub profiles: Profiles,
}

/// The argument that starts the app in the tray (Launch at login uses it).
pub const HIDDEN_ARG: &str = "--hidden";

/// Builds the app on any runtime: state, commands, window behaviour, and a setup that
/// opens the window and starts the server.
pub fn run_app<R: Runtime>(
    mut builder: Builder<R>,
    context: tauri::Context<R>,
    opts: Options,
) -> tauri::Result<App<R>> {
    let controller = Arc::new(Controller::new(
        opts.config,
        opts.paths,
        opts.tray,
        opts.profiles,
    ));
    if opts.plugins {
        builder = builder
            .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
                show_window(app)
            }))
            .plugin(
                tauri_plugin_autostart::Builder::new()
                    .app_name("Sockpit")
                    .args([HIDDEN_ARG])
                    .build(),
            )
            .plugin(tauri_plugin_notification::init())
            .plugin(tauri_plugin_clipboard_manager::init());
    }
    let with_tray = opts.tray;
    let hidden = opts.hidden;
    let with_plugins = opts.plugins;
    builder
        .manage(controller.clone())
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::start,
            commands::stop,
            commands::restart,
            commands::use_free_port,
            commands::autostart_enabled,
            commands::set_autostart,
            commands::copy_text,
            commands::profiles,
            commands::switch_profile,
            commands::inspect_project,
            commands::add_project,
        ])
        .on_window_event(|window, event| {
            // Closing the window hides it to the tray; Quit is in the tray menu.
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.app_handle().state::<Arc<Controller>>().status().tray
            {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            if !(hidden && with_tray) {
                create_window(&handle)?;
            }
            if with_tray {
                let autostart = handle.autolaunch().is_enabled().unwrap_or(false);
                if autostart {
                    // Rewrites an entry made before Launch at login passed --hidden.
                    let _ = handle.autolaunch().enable();
                }
                let tray = Tray::build(
                    &handle,
                    &controller.status(),
                    autostart,
                    &controller.profiles(),
                )?;
                handle.manage(tray);
            } else {
                tracing::warn!(
                    "no tray: the tray library (libayatana-appindicator3-1) is missing; running windowed"
                );
            }
            tauri::async_runtime::spawn(mirror_status(handle.clone(), controller.clone()));
            tauri::async_runtime::spawn(follow_server(controller.clone()));
            if with_plugins {
                // SIGTERM or Ctrl-C, from the start on: stop as Quit does (clients get
                // 1001, the log is flushed). Not under the mock runtime.
                let (c, app) = (controller.clone(), handle.clone());
                tauri::async_runtime::spawn(async move {
                    sockpit::server::shutdown_signal().await;
                    c.stop().await;
                    app.exit(0);
                });
            }
            let c = controller.clone();
            tauri::async_runtime::spawn(async move {
                let _ = c.start().await;
                // Follows configs saved through Settings: restart, or fall back to the
                // last good one. Ends with the app.
                c.supervisor().run(std::future::pending()).await;
            });
            Ok(())
        })
        .build(context)
}

fn create_window<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    if app.get_webview_window(MAIN_WINDOW).is_none() {
        WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::App("index.html".into()))
            .title("Sockpit")
            .inner_size(1180.0, 760.0)
            .min_inner_size(760.0, 480.0)
            .build()?;
    }
    Ok(())
}

/// Shows and focuses the window, creating it if it was never built.
pub fn show_window<R: Runtime>(app: &AppHandle<R>) {
    let _ = create_window(app);
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Turns launch-at-login on or off and mirrors it in the tray.
pub fn set_autostart<R: Runtime>(app: &AppHandle<R>, on: bool) -> Result<bool, String> {
    let launcher = app.autolaunch();
    let r = if on {
        // auto-launch writes ~/.config/autostart/Sockpit.desktop but does not create a
        // missing ~/.config/autostart.
        if cfg!(target_os = "linux")
            && let Some(home) = std::env::var_os("HOME")
        {
            let _ = std::fs::create_dir_all(PathBuf::from(home).join(".config/autostart"));
        }
        launcher.enable()
    } else {
        launcher.disable()
    };
    // The check mark toggles itself on click; make it show what is true either way.
    let now = launcher.is_enabled().unwrap_or(false);
    if let Some(tray) = app.try_state::<Tray<R>>() {
        tray.set_autostart(now);
    }
    r.map_err(|e| e.to_string())?;
    Ok(now)
}

/// Tells the tray and the window that the profiles changed (a switch, an addition).
pub fn profiles_changed<R: Runtime>(app: &AppHandle<R>) {
    let list = app.state::<Arc<Controller>>().profiles();
    if let Some(tray) = app.try_state::<Tray<R>>() {
        tray.set_profiles(app, &list);
    }
    let _ = app.emit(PROFILES_EVENT, &list);
}

/// Switches to the profile `name` (a tray click).
pub fn on_profile<R: Runtime>(app: &AppHandle<R>, name: String) {
    let controller = app.state::<Arc<Controller>>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = controller.switch_profile(&name).await {
            tracing::warn!("switch to profile {name}: {e}");
        }
        profiles_changed(&app);
    });
}

/// Runs a tray menu action.
pub fn on_menu<R: Runtime>(app: &AppHandle<R>, id: MenuId) {
    let controller = app.state::<Arc<Controller>>().inner().clone();
    let app = app.clone();
    match id {
        MenuId::Open => show_window(&app),
        MenuId::OpenProject => {
            show_window(&app);
            let _ = app.emit(OPEN_PROJECT_EVENT, ());
        }
        MenuId::Autostart => {
            let on = !app.autolaunch().is_enabled().unwrap_or(false);
            if let Err(e) = set_autostart(&app, on) {
                tracing::warn!("launch at login: {e}");
            }
        }
        MenuId::CopyUrl => {
            if let Some(url) = controller.status().ws_url {
                let _ = app.clipboard().write_text(url);
            }
        }
        MenuId::Toggle | MenuId::Restart | MenuId::CopyToken | MenuId::Quit => {
            tauri::async_runtime::spawn(async move {
                match id {
                    MenuId::Toggle if controller.status().state == ServerState::Running => {
                        controller.stop().await;
                    }
                    MenuId::Toggle => {
                        let _ = controller.start().await;
                    }
                    MenuId::Restart => {
                        let _ = controller.restart().await;
                    }
                    MenuId::CopyToken => match controller.mint_token("1").await {
                        Ok(token) => {
                            let _ = app.clipboard().write_text(token);
                        }
                        Err(e) => tracing::warn!("copy test token: {e}"),
                    },
                    _ => {
                        controller.stop().await;
                        app.exit(0);
                    }
                }
            });
        }
    }
}

/// Mirrors every status change into the tray, the window and, on a new error, a
/// desktop notification.
async fn mirror_status<R: Runtime>(app: AppHandle<R>, controller: Arc<Controller>) {
    let mut rx = controller.watch();
    let mut last_state = rx.borrow().state;
    loop {
        let status: Status = rx.borrow_and_update().clone();
        if let Some(tray) = app.try_state::<Tray<R>>() {
            tray.update(&status);
        }
        let _ = app.emit(STATUS_EVENT, &status);
        if status.state == ServerState::Error
            && last_state != ServerState::Error
            && let Some(n) = app.try_state::<tauri_plugin_notification::Notification<R>>()
        {
            let _ = n
                .builder()
                .title("Sockpit could not start")
                .body(status.error.clone().unwrap_or_default())
                .show();
        }
        last_state = status.state;
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the status following the server: every lifecycle change (including restarts
/// the supervisor makes on its own for Settings) and, while it runs, the connection
/// count behind the tooltip.
async fn follow_server(controller: Arc<Controller>) {
    let mut lifecycle = controller.supervisor().watch();
    loop {
        controller.refresh();
        let running = controller.handle();
        let counts = async {
            let Some(handle) = running else {
                return std::future::pending().await;
            };
            let mut stats = handle.watch_stats();
            // Ends when the server stops and its sampler drops the sender.
            while stats.changed().await.is_ok() {
                let n = stats.borrow_and_update().connections;
                controller.set_connections(n);
            }
            std::future::pending().await
        };
        tokio::select! {
            r = lifecycle.changed() => if r.is_err() { return },
            () = counts => {}
        }
    }
}

/// Whether a display is available for a window (Linux: X11 or Wayland).
pub fn has_display() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// The desktop's profiles: beside `SOCKPIT_CONFIG`, else beside `sockpit.toml` in the OS
/// config dir (which is the "Default" profile).
pub fn profiles() -> Profiles {
    Profiles::new(
        std::env::var_os("SOCKPIT_CONFIG")
            .map(PathBuf::from)
            .or_else(sockpit::datadir::desktop_config_file),
    )
}

/// Loads the active profile's config (see [`profiles`]), else the defaults; then the
/// environment overrides. A file that fails to load is reported and left as it is; the
/// defaults run meanwhile.
pub fn load_config(profiles: &Profiles) -> (Config, Option<PathBuf>, Option<String>) {
    let file = profiles.file(&profiles.active());
    let (mut config, error) = match &file {
        Some(f) if f.exists() => match Config::from_file(f) {
            Ok(c) => (c, None),
            Err(e) => (Config::default(), Some(e.to_string())),
        },
        _ => (Config::default(), None),
    };
    if let Err(e) = config.apply_env(|k| std::env::var(k).ok()) {
        return (Config::default(), file, Some(e.to_string()));
    }
    (config, file, error)
}

/// The desktop binary's entry point.
pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SOCKPIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let profiles = profiles();
    let (config, config_file, config_error) = load_config(&profiles);
    if let Some(e) = &config_error {
        tracing::error!("config: {e} — running with the defaults; the file is left as it is");
    }
    let paths = Paths::from_env()?.with_config_file(config_file);
    if !has_display() {
        return headless(config, paths);
    }
    let app = run_app(
        tauri::Builder::default(),
        tauri::generate_context!(),
        Options {
            config,
            paths,
            tray: tray::available(),
            plugins: true,
            hidden: std::env::args().any(|a| a == HIDDEN_ARG),
            profiles,
        },
    )?;
    app.run(|app, event| {
        // Any exit (Quit, last window on a tray-less desktop, signals Tauri handles)
        // stops the server first so clients get 1001 and the log is flushed.
        if let tauri::RunEvent::ExitRequested { .. } = event {
            let controller = app.state::<Arc<Controller>>().inner().clone();
            tauri::async_runtime::block_on(async move {
                controller.stop().await;
            });
        }
    });
    Ok(())
}

/// No display: run the server without a window and say where the browser UI is. It
/// restarts with configs saved through Settings, as the windowed app does.
fn headless(config: Config, paths: Paths) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let supervisor = Supervisor::new(config, paths);
        supervisor.start().await?;
        supervisor
            .run_announcing(sockpit::server::shutdown_signal(), |h| {
                // A closed stdout (`| head -1`) must not take the server down.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stdout(),
                    "No display: Sockpit runs headless on {}.\nOpen the UI in a browser: {}",
                    h.local_addr(),
                    h.urls().login(h.api_key())
                );
            })
            .await?;
        anyhow::Ok(())
    })
}

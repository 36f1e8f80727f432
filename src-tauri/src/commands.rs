//! Tauri commands: desktop concerns only (status while stopped, start/stop, autostart,
//! clipboard). Live data reaches the window through the server's own events WebSocket.
//! Each command extracts, calls the controller, and returns its value.

use std::sync::Arc;

use tauri::{AppHandle, Runtime, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_clipboard_manager::ClipboardExt as _;

use crate::controller::{ControlError, Controller, Status};
use crate::profiles::{Profile, ProjectPreview};

type Ctl<'a> = State<'a, Arc<Controller>>;

/// The server's status.
#[tauri::command]
pub fn status(controller: Ctl<'_>) -> Status {
    controller.status()
}

/// Starts the server.
#[tauri::command]
pub async fn start(controller: Ctl<'_>) -> Result<Status, ControlError> {
    controller.start().await
}

/// Stops the server (clients get 1001).
#[tauri::command]
pub async fn stop(controller: Ctl<'_>) -> Result<Status, ControlError> {
    Ok(controller.stop().await)
}

/// Stops and starts the server.
#[tauri::command]
pub async fn restart(controller: Ctl<'_>) -> Result<Status, ControlError> {
    controller.restart().await
}

/// Moves the server to a free port and starts it (after "port in use").
#[tauri::command]
pub async fn use_free_port(controller: Ctl<'_>) -> Result<Status, ControlError> {
    controller.use_free_port().await
}

/// Whether Sockpit launches at login.
#[tauri::command]
pub fn autostart_enabled<R: Runtime>(app: AppHandle<R>) -> bool {
    app.autolaunch().is_enabled().unwrap_or(false)
}

/// Turns launch-at-login on or off; returns the new setting.
#[tauri::command]
pub fn set_autostart<R: Runtime>(app: AppHandle<R>, on: bool) -> Result<bool, String> {
    crate::set_autostart(&app, on)
}

/// Copies text to the clipboard.
#[tauri::command]
pub fn copy_text<R: Runtime>(app: AppHandle<R>, text: String) -> Result<(), String> {
    app.clipboard().write_text(text).map_err(|e| e.to_string())
}

/// The profiles, the active one marked.
#[tauri::command]
pub fn profiles(controller: Ctl<'_>) -> Vec<Profile> {
    controller.profiles()
}

/// Switches to another profile (one server at a time).
#[tauri::command]
pub async fn switch_profile<R: Runtime>(
    app: AppHandle<R>,
    controller: Ctl<'_>,
    name: String,
) -> Result<Status, ControlError> {
    let r = controller.switch_profile(&name).await;
    crate::profiles_changed(&app);
    r
}

/// A path as typed in the window: trimmed, `~/` meaning the home directory (no shell
/// expands it here).
fn typed_path(text: &str) -> std::path::PathBuf {
    let text = text.trim();
    match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => text.into(),
    }
}

/// An optional path field: empty means not given.
fn optional_path(text: Option<String>) -> Option<std::path::PathBuf> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| typed_path(&t))
}

/// Reads a Django project: what a profile made from it would say.
#[tauri::command]
pub async fn inspect_project(
    controller: Ctl<'_>,
    dir: String,
    python: Option<String>,
) -> Result<ProjectPreview, ControlError> {
    controller
        .inspect_project(typed_path(&dir), optional_path(python))
        .await
}

/// Saves a Django project as a profile and switches to it.
#[tauri::command]
pub async fn add_project<R: Runtime>(
    app: AppHandle<R>,
    controller: Ctl<'_>,
    dir: String,
    python: Option<String>,
) -> Result<Status, ControlError> {
    let r = controller
        .add_project(typed_path(&dir), optional_path(python))
        .await;
    crate::profiles_changed(&app);
    r
}

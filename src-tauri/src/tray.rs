//! The tray icon and its menu. Menu ids are one enum, matched in one place; the icon,
//! tooltip and labels follow the controller's status.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Runtime};

use crate::controller::{ServerState, Status};
use crate::profiles::Profile;

/// A profile item's id: this prefix and the profile's name.
const PROFILE_PREFIX: &str = "profile:";

/// Every tray menu item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuId {
    /// Start or Stop, following the state.
    Toggle,
    /// Restart the server.
    Restart,
    /// Show the window.
    Open,
    /// Show the window's "Open a Django project…".
    OpenProject,
    /// Copy the first endpoint's WebSocket URL.
    CopyUrl,
    /// Copy a freshly minted test token.
    CopyToken,
    /// Launch at login (checkbox).
    Autostart,
    /// Stop the server and exit.
    Quit,
}

impl MenuId {
    const ALL: [MenuId; 8] = [
        Self::Toggle,
        Self::Restart,
        Self::Open,
        Self::OpenProject,
        Self::CopyUrl,
        Self::CopyToken,
        Self::Autostart,
        Self::Quit,
    ];

    /// The id string Tauri (and D-Bus menus) carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Toggle => "toggle",
            Self::Restart => "restart",
            Self::Open => "open",
            Self::OpenProject => "open_project",
            Self::CopyUrl => "copy_url",
            Self::CopyToken => "copy_token",
            Self::Autostart => "autostart",
            Self::Quit => "quit",
        }
    }

    /// Parses an id string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

const ICON_RUNNING: &[u8] = include_bytes!("../../icons/tray-running.png");
const ICON_STOPPED: &[u8] = include_bytes!("../../icons/tray-stopped.png");
const ICON_ERROR: &[u8] = include_bytes!("../../icons/tray-error.png");

fn icon_for(state: ServerState) -> tauri::Result<Image<'static>> {
    Image::from_bytes(match state {
        ServerState::Running => ICON_RUNNING,
        ServerState::Stopped => ICON_STOPPED,
        ServerState::Error => ICON_ERROR,
    })
}

/// The tray and the items whose look follows the status.
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    toggle: MenuItem<R>,
    autostart: CheckMenuItem<R>,
    /// "Profile ▸": one check item per profile, the active one checked.
    profiles: Submenu<R>,
    /// What the tray shows now: the count changes up to four times a second, and each
    /// change would otherwise redecode the icon and redraw the menu over D-Bus.
    shown: std::sync::Mutex<(ServerState, String)>,
}

impl<R: Runtime> Tray<R> {
    /// Builds the tray; menu clicks go to [`crate::on_menu`].
    pub fn build(
        app: &AppHandle<R>,
        status: &Status,
        autostart: bool,
        profiles: &[Profile],
    ) -> tauri::Result<Self> {
        let item = |id: MenuId, label: &str| {
            MenuItem::with_id(app, id.as_str(), label, true, None::<&str>)
        };
        let toggle = item(MenuId::Toggle, toggle_label(status.state))?;
        let autostart_item = CheckMenuItem::with_id(
            app,
            MenuId::Autostart.as_str(),
            "Launch at login",
            true,
            autostart,
            None::<&str>,
        )?;
        let profile_menu = Submenu::with_id(app, "profiles", "Profile", true)?;
        fill_profiles(app, &profile_menu, profiles)?;
        let menu = Menu::with_items(
            app,
            &[
                &toggle,
                &item(MenuId::Restart, "Restart")?,
                &PredefinedMenuItem::separator(app)?,
                &profile_menu,
                &item(MenuId::OpenProject, "Open a Django project…")?,
                &PredefinedMenuItem::separator(app)?,
                &item(MenuId::Open, "Open Sockpit")?,
                &item(MenuId::CopyUrl, "Copy WebSocket URL")?,
                &item(MenuId::CopyToken, "Copy test token")?,
                &PredefinedMenuItem::separator(app)?,
                &autostart_item,
                &item(MenuId::Quit, "Quit")?,
            ],
        )?;
        let icon = TrayIconBuilder::with_id("sockpit")
            .icon(icon_for(status.state)?)
            .tooltip(status.tooltip())
            .menu(&menu)
            .show_menu_on_left_click(false)
            .on_menu_event(|app, event| {
                let id = event.id().as_ref();
                if let Some(name) = id.strip_prefix(PROFILE_PREFIX) {
                    crate::on_profile(app, name.to_string());
                } else if let Some(id) = MenuId::parse(id) {
                    crate::on_menu(app, id);
                }
            })
            .on_tray_icon_event(|tray, event| {
                if let TrayIconEvent::Click {
                    button: MouseButton::Left,
                    button_state: MouseButtonState::Up,
                    ..
                } = event
                {
                    crate::show_window(tray.app_handle());
                }
            })
            .build(app)?;
        Ok(Self {
            icon,
            toggle,
            autostart: autostart_item,
            profiles: profile_menu,
            shown: std::sync::Mutex::new((status.state, status.tooltip())),
        })
    }

    /// Mirrors `status` into the icon, tooltip and Start/Stop label.
    pub fn update(&self, status: &Status) {
        let tooltip = status.tooltip();
        let Ok(mut shown) = self.shown.lock() else {
            return;
        };
        if shown.0 != status.state {
            let _ = self.icon.set_icon(icon_for(status.state).ok());
            let _ = self.toggle.set_text(toggle_label(status.state));
        }
        if shown.1 != tooltip {
            let _ = self.icon.set_tooltip(Some(tooltip.clone()));
        }
        *shown = (status.state, tooltip);
    }

    /// Lists `profiles` under "Profile", the active one checked.
    pub fn set_profiles(&self, app: &AppHandle<R>, profiles: &[Profile]) {
        if let Ok(items) = self.profiles.items() {
            for item in items {
                let _ = self.profiles.remove(&item);
            }
        }
        if let Err(e) = fill_profiles(app, &self.profiles, profiles) {
            tracing::warn!("tray profiles: {e}");
        }
    }

    /// Sets the Launch-at-login check mark.
    pub fn set_autostart(&self, on: bool) {
        let _ = self.autostart.set_checked(on);
    }
}

fn fill_profiles<R: Runtime>(
    app: &AppHandle<R>,
    menu: &Submenu<R>,
    profiles: &[Profile],
) -> tauri::Result<()> {
    for p in profiles {
        menu.append(&CheckMenuItem::with_id(
            app,
            format!("{PROFILE_PREFIX}{}", p.name),
            &p.name,
            true,
            p.active,
            None::<&str>,
        )?)?;
    }
    Ok(())
}

fn toggle_label(state: ServerState) -> &'static str {
    match state {
        ServerState::Running => "Stop",
        ServerState::Stopped | ServerState::Error => "Start",
    }
}

/// Whether the tray can be created here: on Linux the tray needs libayatana-appindicator
/// (or libappindicator), and without it tray creation panics instead of failing.
pub fn available() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let names = ["libayatana-appindicator3.so.1", "libappindicator3.so.1"];
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ];
    dirs.iter().any(|d| {
        names
            .iter()
            .any(|n| std::path::Path::new(d).join(n).exists())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_ids_round_trip() {
        for id in MenuId::ALL {
            assert_eq!(MenuId::parse(id.as_str()), Some(id));
        }
        assert_eq!(MenuId::parse("nope"), None);
    }
}

//! Settings: reading, validating and saving the config file behind the Settings screen.
//!
//! The file's own text is the source of truth, never the config in force (which may
//! carry `SOCKPIT_*` overrides, secrets included, that must not land on disk). A save
//! validates first, sets a corrupt file aside instead of overwriting it, and writes
//! through a temp file, fsync and rename.

use std::path::{Path, PathBuf};

use serde::Serialize;
use ts_rs::TS;

use crate::config::{Config, ConfigError};
use crate::datadir;

/// What Settings shows.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ConfigView {
    /// The file's text, or the defaults as TOML when there is no file yet.
    pub toml: String,
    /// The file Settings writes, if this server has one.
    #[ts(optional)]
    pub file: Option<String>,
    /// Whether the file exists yet.
    pub exists: bool,
    /// Why the file on disk does not load, if it does not.
    #[ts(optional)]
    pub error: Option<String>,
    /// The port in force (after environment overrides).
    pub effective_port: u16,
}

/// A successful validation.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Validated {
    /// Always true.
    pub ok: bool,
    /// `2 endpoints, port 8000`.
    pub summary: String,
}

/// Why a save did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The text is not a valid config (nothing was written).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// This server has no config file to write.
    #[error("this server has no config file to write (start it with --config FILE)")]
    NoFile,
    /// Writing failed (nothing changed on disk).
    #[error(transparent)]
    Write(#[from] datadir::DataDirError),
}

/// Name used in error messages for text being validated.
fn shown_name(file: Option<&Path>) -> String {
    file.and_then(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| crate::config::DEFAULT_FILE.to_string())
}

/// The file's current text (or the defaults), and whether it loads.
pub fn view(file: Option<&Path>, effective_port: u16) -> ConfigView {
    let text = file.and_then(|f| std::fs::read_to_string(f).ok());
    let error = text
        .as_deref()
        .and_then(|t| Config::from_toml(t, &shown_name(file)).err())
        .map(|e| e.to_string());
    ConfigView {
        exists: text.is_some(),
        toml: text.unwrap_or_else(default_text),
        file: file.map(|f| f.display().to_string()),
        error,
        effective_port,
    }
}

/// The built-in defaults, written out, for a server that has no file yet.
pub fn default_text() -> String {
    format!(
        "# Sockpit config: every key is optional (see the README's Config section).\n{}",
        Config::default().to_toml()
    )
}

/// Parses and validates `text` as it would be saved.
pub fn validate(text: &str, file: Option<&Path>) -> Result<(Config, Validated), ConfigError> {
    let config = Config::from_toml(text, &shown_name(file))?;
    let n = config.endpoints.len();
    let summary = format!(
        "{n} endpoint{}, port {}",
        if n == 1 { "" } else { "s" },
        config.server.port
    );
    Ok((config, Validated { ok: true, summary }))
}

/// Validates and writes `text` to `file`; a file on disk that does not load is first
/// renamed to `<file>.corrupt-<unix time>`. Returns the config the text describes
/// (without environment overrides).
pub fn save(text: &str, file: Option<&Path>) -> Result<Config, SaveError> {
    let file = file.ok_or(SaveError::NoFile)?;
    let (config, _) = validate(text, Some(file))?;
    if let Ok(old) = std::fs::read_to_string(file)
        && Config::from_toml(&old, &shown_name(Some(file))).is_err()
    {
        let aside = corrupt_name(file);
        std::fs::rename(file, &aside).map_err(|source| datadir::DataDirError::Io {
            path: aside.clone(),
            source,
        })?;
        tracing::warn!(
            "the config file did not load; kept aside as {}",
            aside.display()
        );
    }
    datadir::write_private(file, text.as_bytes())?;
    Ok(config)
}

/// Why [`save_port`] did not write.
#[derive(Debug, thiserror::Error)]
pub enum PortSaveError {
    /// The file on disk does not load (it is left as it is).
    #[error(transparent)]
    Load(ConfigError),
    /// Writing failed (nothing changed on disk).
    #[error(transparent)]
    Write(#[from] datadir::DataDirError),
}

/// Sets `[server] port` in `file` (creating it with only that key when missing). The
/// file's other values are kept; a file that does not load is left alone.
pub fn save_port(file: &Path, port: u16) -> Result<(), PortSaveError> {
    let text = if file.exists() {
        let mut on_disk = Config::from_file(file).map_err(PortSaveError::Load)?;
        on_disk.server.port = port;
        on_disk.to_toml()
    } else {
        format!("[server]\nport = {port}\n")
    };
    datadir::write_private(file, text.as_bytes())?;
    Ok(())
}

fn corrupt_name(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(format!(".corrupt-{}", crate::auth::now_secs()));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sockpit-settings-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn invalid_text_is_refused_and_nothing_written() {
        let d = dir("invalid");
        let f = d.join("sockpit.toml");
        std::fs::write(&f, "[server]\nport = 9000\n").unwrap();
        let err = save("[server]\nprot = 1\n", Some(&f))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sockpit.toml:2: server.prot:"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "[server]\nport = 9000\n"
        );
    }

    #[test]
    fn a_corrupt_file_is_kept_aside() {
        let d = dir("corrupt");
        let f = d.join("sockpit.toml");
        std::fs::write(&f, "this is not toml [").unwrap();
        let v = view(Some(&f), 8000);
        assert!(v.error.is_some());
        save("[server]\nport = 9001\n", Some(&f)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "[server]\nport = 9001\n"
        );
        let aside: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read_to_string(aside[0].path()).unwrap(),
            "this is not toml ["
        );
    }

    #[test]
    fn no_file_shows_the_defaults_which_validate() {
        let v = view(None, 8000);
        assert!(!v.exists);
        assert!(validate(&v.toml, None).is_ok());
        assert!(matches!(save("", None), Err(SaveError::NoFile)));
    }
}

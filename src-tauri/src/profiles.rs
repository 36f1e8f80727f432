//! Profiles: one config file per Django project opened in the desktop app ("Open a Django
//! project…"), kept in `profiles/` beside the desktop's own config file (the "Default"
//! profile). One is active at a time (named in `profiles/active`); the tray and the
//! window switch between them. Knows nothing of Tauri.

use std::path::{Path, PathBuf};

use serde::Serialize;
use ts_rs::TS;

/// The profile that is the desktop's own config file.
pub const DEFAULT: &str = "Default";

/// One profile, as the window and the tray list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Profile {
    /// Its name (the project folder's, made unique).
    pub name: String,
    /// Its config file.
    pub file: String,
    /// The Django project it was made from.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Whether it is the one in force.
    pub active: bool,
}

/// What "Open a Django project…" found, before it is saved.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ProjectPreview {
    /// The project's root.
    pub project: String,
    /// The name the profile would get.
    pub name: String,
    /// What was read from where: `[topic, what]`.
    pub report: Vec<(String, String)>,
    /// What was guessed rather than read.
    pub guesses: Vec<String>,
    /// Whether the project's own consumers serve its sockets (else Sockpit's endpoints).
    pub relays: bool,
    /// The config as it will be saved, its secret hidden.
    pub toml: String,
}

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No profile of that name.
    #[error("no profile named {0:?}")]
    Unknown(String),
    /// The desktop has no config dir to keep profiles in.
    #[error("no config directory for profiles on this system")]
    NoDir,
    /// Reading or writing a profile failed.
    #[error("{0}")]
    Io(String),
}

/// The profiles beside `default_file`.
#[derive(Debug, Clone)]
pub struct Profiles {
    default_file: Option<PathBuf>,
}

impl Profiles {
    /// Profiles kept beside the desktop's config file (`None`: only the defaults).
    pub fn new(default_file: Option<PathBuf>) -> Self {
        Self { default_file }
    }

    fn dir(&self) -> Option<PathBuf> {
        Some(self.default_file.as_ref()?.parent()?.join("profiles"))
    }

    /// The active profile's name ("Default" unless another was chosen and still exists).
    pub fn active(&self) -> String {
        self.dir()
            .and_then(|d| std::fs::read_to_string(d.join("active")).ok())
            .map(|n| n.trim().to_string())
            .filter(|n| n != DEFAULT && self.file(n).is_some())
            .unwrap_or_else(|| DEFAULT.to_string())
    }

    /// A profile's config file.
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        if name == DEFAULT {
            return self.default_file.clone();
        }
        if !valid_name(name) {
            return None;
        }
        let f = self.dir()?.join(format!("{name}.toml"));
        f.is_file().then_some(f)
    }

    /// Every profile, "Default" first, the others by name.
    pub fn list(&self) -> Vec<Profile> {
        let active = self.active();
        let mut names: Vec<String> = self
            .dir()
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e
                    .file_name()
                    .to_string_lossy()
                    .strip_suffix(".toml")?
                    .to_string();
                valid_name(&name).then_some(name)
            })
            .filter(|n| n != DEFAULT)
            .collect();
        names.sort();
        std::iter::once(DEFAULT.to_string())
            .chain(names)
            .map(|name| {
                // Only "Default" can lack a file (no config dir on this system).
                let file = self.file(&name).unwrap_or_default();
                Profile {
                    project: project_of(&file),
                    file: file.display().to_string(),
                    active: name == active,
                    name,
                }
            })
            .collect()
    }

    /// Marks `name` active (it must exist).
    pub fn set_active(&self, name: &str) -> Result<(), ProfileError> {
        if self.file(name).is_none() && name != DEFAULT {
            return Err(ProfileError::Unknown(name.into()));
        }
        let dir = self.dir().ok_or(ProfileError::NoDir)?;
        std::fs::create_dir_all(&dir).map_err(|e| ProfileError::Io(e.to_string()))?;
        std::fs::write(dir.join("active"), name).map_err(|e| ProfileError::Io(e.to_string()))
    }

    /// The name a new profile for `project` gets: the folder's, unique among profiles.
    pub fn name_for(&self, project: &Path) -> String {
        let base: String = project
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let base = base.trim_matches(['.', '-']).to_string();
        let base = if base.is_empty() || base == DEFAULT {
            "project".to_string()
        } else {
            base
        };
        let taken = |n: &str| self.file(n).is_some();
        (1..)
            .map(|i| {
                if i == 1 {
                    base.clone()
                } else {
                    format!("{base}-{i}")
                }
            })
            .find(|n| !taken(n))
            .expect("some suffix is free")
    }

    /// Saves a new profile (owner-only: it may hold the project's secret).
    pub fn add(&self, name: &str, toml: &str) -> Result<PathBuf, ProfileError> {
        if !valid_name(name) || name == DEFAULT {
            return Err(ProfileError::Io(format!("{name:?} is not a profile name")));
        }
        let dir = self.dir().ok_or(ProfileError::NoDir)?;
        let file = dir.join(format!("{name}.toml"));
        sockpit::datadir::write_private(&file, toml.as_bytes())
            .map_err(|e| ProfileError::Io(e.to_string()))?;
        Ok(file)
    }
}

/// Names are file names: letters, digits, `-_.`, not starting with a dot.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The project a profile was proposed for, from the header `sockpit init` writes.
fn project_of(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let first = text.lines().next()?;
    let rest = first.strip_prefix("# sockpit.toml for ")?;
    Some(rest.rsplit_once(", proposed by")?.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_file_names_and_hostile_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("sockpit-profiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = Profiles::new(Some(dir.join("sockpit.toml")));
        assert_eq!(p.active(), DEFAULT);
        assert_eq!(p.name_for(Path::new("/home/ada/my site")), "my-site");
        p.add(
            "my-site",
            "# sockpit.toml for /home/ada/my site, proposed by x\n",
        )
        .unwrap();
        assert_eq!(p.name_for(Path::new("/elsewhere/my site")), "my-site-2");
        assert_eq!(p.name_for(Path::new("/")), "project");
        assert_eq!(p.name_for(Path::new("/srv/Default")), "project");
        for bad in ["../escape", "a/b", ".hidden", "", DEFAULT] {
            assert!(p.add(bad, "x").is_err(), "{bad:?}");
            assert!(bad == DEFAULT || p.file(bad).is_none(), "{bad:?}");
        }
        p.set_active("my-site").unwrap();
        assert!(p.set_active("nope").is_err());
        let list = p.list();
        assert_eq!(
            list.iter()
                .map(|x| (x.name.as_str(), x.active))
                .collect::<Vec<_>>(),
            [(DEFAULT, false), ("my-site", true)]
        );
        assert_eq!(list[1].project.as_deref(), Some("/home/ada/my site"));
        // The active profile's file gone: Default is in force again.
        std::fs::remove_file(dir.join("profiles/my-site.toml")).unwrap();
        assert_eq!(p.active(), DEFAULT);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

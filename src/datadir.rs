//! The data dir: where the generated dev secret, the API key and the event log live;
//! [`Paths`] names it and the config file for one server.
//!
//! `SOCKPIT_DATA_DIR`, else the OS data dir. Generated files are written once, 0600,
//! through a temp file and a rename, so a crash never leaves half a secret behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::config::{self, Config};

/// File name of the generated JWT dev secret.
pub const SECRET_FILE: &str = "jwt_secret";
/// File name of the generated API key.
pub const API_KEY_FILE: &str = "api_key";
/// File name of the generated key that signs UI sessions.
pub const SESSION_KEY_FILE: &str = "session_key";
/// File name of the event log.
pub const LOG_FILE: &str = "sockpit.log.jsonl";

/// Why the data dir could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// No `SOCKPIT_DATA_DIR` and no home directory to derive one from.
    #[error("no data dir: set SOCKPIT_DATA_DIR")]
    NoDir,
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where a server keeps its files: the data dir, and the config file Settings writes.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The config file Settings reads and writes; `None`: Settings is read-only.
    pub config_file: Option<PathBuf>,
}

impl Paths {
    /// `SOCKPIT_DATA_DIR`, else the OS data dir; no config file.
    pub fn from_env() -> Result<Self, DataDirError> {
        Ok(Self::in_dir(resolve()?))
    }

    /// Everything in `data_dir`; no config file.
    pub fn in_dir(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            config_file: None,
        }
    }

    /// The same, with the config file Settings writes.
    pub fn with_config_file(mut self, file: Option<PathBuf>) -> Self {
        self.config_file = file;
        self
    }

    /// The event log file for `config`.
    pub fn log_file(&self, config: &Config) -> PathBuf {
        config
            .log
            .file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(LOG_FILE))
    }
}

/// The data dir in force: `SOCKPIT_DATA_DIR`, else the OS data dir.
pub fn resolve() -> Result<PathBuf, DataDirError> {
    if let Some(dir) = std::env::var_os("SOCKPIT_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "sockpit", "sockpit")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or(DataDirError::NoDir)
}

/// The desktop app's config file: `sockpit.toml` in the OS config dir.
pub fn desktop_config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("dev", "sockpit", "sockpit")
        .map(|d| d.config_dir().join(config::DEFAULT_FILE))
}

/// Reads `dir/name`, or creates it with a fresh random value (hex, 32 bytes).
pub fn read_or_generate(dir: &Path, name: &str) -> Result<String, DataDirError> {
    let path = dir.join(name);
    let existing = match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(DataDirError::Io { path, source }),
    };
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if existing {
        // An empty file is no secret: replace it.
        write_private(&path, value.as_bytes())?;
        return Ok(value);
    }
    // Publish with a hard link, which fails if the file appeared meanwhile: when two
    // processes start at once, both end up with the first one's value.
    let tmp = dir.join(format!(".{name}.new{}", std::process::id()));
    write_private(&tmp, value.as_bytes())?;
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(value),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|source| DataDirError::Io { path, source }),
        Err(source) => Err(DataDirError::Io { path, source }),
    }
}

/// Writes `bytes` to `path` atomically with mode 0600: a temp file of its own (two
/// concurrent saves never share one), fsync, rename, then fsync of the folder so the
/// rename itself survives a crash. A reader sees the old file or the new one, never a
/// part.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        create_private_dir(parent).map_err(io)?;
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        #[cfg(unix)]
        if let Some(parent) = path.parent() {
            let dir = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            // Some filesystems (SMB, FUSE) refuse to sync a folder: the file is already
            // in place, so that is no failed save.
            let _ = fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_and_private() {
        let dir = std::env::temp_dir().join(format!("sockpit-dd-{}", std::process::id()));
        let a = read_or_generate(&dir, "k").unwrap();
        let b = read_or_generate(&dir, "k").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("k")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_saves_leave_one_whole_file() {
        let dir = std::env::temp_dir().join(format!("sockpit-dd-race-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let file = dir.join("sockpit.toml");
        let texts: Vec<String> = (0..8)
            .map(|i| format!("# writer {i}\n{}\n", "x".repeat(200_000)))
            .collect();
        std::thread::scope(|s| {
            for t in &texts {
                let file = &file;
                s.spawn(move || {
                    for _ in 0..10 {
                        write_private(file, t.as_bytes()).expect("every save succeeds");
                    }
                });
            }
        });
        let now = fs::read_to_string(&file).unwrap();
        assert!(texts.contains(&now), "a mix of saves: {} bytes", now.len());
        let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "temp files left behind");
        fs::remove_dir_all(dir).unwrap();
    }
}

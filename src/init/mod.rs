//! `sockpit init`: read a Django project and propose the `sockpit.toml` that serves it.
//!
//! Detection runs `inspect.py` with the project's own interpreter, so it sees the settings
//! as the project's server does (environment, split settings, django-environ…); without
//! Django importable the script reads the files as text. [`render`] turns what it found
//! into a commented config. The desktop app's "Open a Django project…" uses both.

mod render;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use render::{Options as RenderOptions, Rendered, render};

/// The script the project's interpreter runs (on stdin).
const INSPECT_PY: &str = include_str!("inspect.py");

/// How long importing the settings may take: some projects connect to services on import.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Most of the script's output that is read; an answer is a few KiB.
const MAX_OUTPUT: u64 = 4 << 20;

/// Why a project could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The directory does not exist.
    #[error("{0}: no such directory")]
    NoDirectory(PathBuf),
    /// No `manage.py`: not a Django project's root.
    #[error(
        "{0}: no manage.py here, so this is not a Django project's root (give the directory that holds manage.py)"
    )]
    NoManagePy(PathBuf),
    /// `--python` names nothing runnable, or no interpreter was found.
    #[error("cannot run {python}: {reason}")]
    NoPython {
        /// The interpreter tried.
        python: PathBuf,
        /// Why it could not run.
        reason: String,
    },
    /// The interpreter ran but did not answer (crash, timeout, garbage).
    #[error("reading the project with {python} failed: {reason}")]
    Inspect {
        /// The interpreter used.
        python: PathBuf,
        /// What went wrong, with the end of its stderr.
        reason: String,
    },
    /// The project's settings could not be loaded (they raised, or lack a module).
    #[error("{0}")]
    Settings(String),
    /// The signing key is read from an environment variable that is not set.
    #[error("{message}")]
    SecretEnvMissing {
        /// The variable.
        var: String,
        /// The whole explanation.
        message: String,
    },
    /// The proposed config failed Sockpit's own checks (a bug: the message says where).
    #[error("the proposed config does not load: {0}")]
    Invalid(#[from] crate::config::ConfigError),
    /// `--write` found a config already there.
    #[error(
        "{0} exists; it was left as it is (print the proposal with `sockpit init` and merge by hand, or remove the file)"
    )]
    Exists(PathBuf),
    /// The config could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What the inspector found (its JSON answer).
#[derive(Debug, Clone, Deserialize)]
pub struct Found {
    /// The interpreter that read the project.
    pub python: PathBuf,
    /// Its version.
    pub python_version: String,
    /// `"django"` (imported) or `"text"` (files read as text).
    pub mode: String,
    /// Why Django could not be imported (text mode).
    #[serde(default)]
    pub why_text: Option<String>,
    /// Django's version (django mode).
    #[serde(default)]
    pub django_version: Option<String>,
    /// `DJANGO_SETTINGS_MODULE`.
    pub settings_module: String,
    /// Where that came from (`manage.py`, `core/asgi.py`, the environment).
    pub settings_source: String,
    /// The settings file, relative to the project.
    pub settings_file: Option<String>,
    /// Installed ASGI servers and their versions.
    pub servers: Servers,
    /// `DEBUG`.
    pub debug: bool,
    /// `ALLOWED_HOSTS`.
    pub allowed_hosts: Vec<String>,
    /// `CORS_ALLOWED_ORIGINS` (and the older names) and `CSRF_TRUSTED_ORIGINS`.
    pub cors_origins: Vec<String>,
    /// `CORS_ALLOW_ALL_ORIGINS`.
    pub cors_allow_all: bool,
    /// `INSTALLED_APPS`.
    pub installed_apps: Vec<String>,
    /// `CHANNEL_LAYERS["default"]`.
    pub channel_layer: Option<ChannelLayer>,
    /// `ASGI_APPLICATION` (dotted).
    pub asgi_application: Option<String>,
    /// SimpleJWT's effective settings, if it is installed.
    pub jwt: Option<Jwt>,
    /// Where the signing key comes from.
    pub secret: Secret,
    /// The `websocket` routes.
    pub routes: Vec<Route>,
    /// Where the routes were read.
    pub routes_source: Option<String>,
    /// Things the inspector could not read, in words.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Installed ASGI servers.
#[derive(Debug, Clone, Deserialize)]
pub struct Servers {
    /// daphne's version.
    pub daphne: Option<String>,
    /// uvicorn's version.
    pub uvicorn: Option<String>,
}

/// `CHANNEL_LAYERS["default"]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelLayer {
    /// `BACKEND`, dotted.
    pub backend: String,
    /// The first Redis host, as a URL.
    pub redis: Option<String>,
    /// `CONFIG["prefix"]`.
    pub prefix: String,
}

/// SimpleJWT's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwt {
    /// `ALGORITHM`.
    pub algorithm: String,
    /// `USER_ID_CLAIM`.
    pub user_id_claim: String,
    /// `TOKEN_TYPE_CLAIM` (`None`: no type check).
    pub token_type_claim: Option<String>,
    /// `AUTH_TOKEN_CLASSES`, class names.
    pub token_classes: Vec<String>,
    /// `AUDIENCE`.
    pub audience: Option<serde_json::Value>,
    /// `ISSUER`.
    pub issuer: Option<String>,
    /// `LEEWAY`, seconds.
    pub leeway: u64,
    /// Whether `VERIFYING_KEY` is set (RS/ES).
    pub has_verifying_key: bool,
}

/// The HMAC key tokens are signed with.
#[derive(Clone, Deserialize)]
pub struct Secret {
    /// `SECRET_KEY` or `SIMPLE_JWT['SIGNING_KEY']`.
    pub name: String,
    /// Its value, when known.
    pub value: Option<String>,
    /// The environment variable it is read from.
    pub env: Option<String>,
    /// Whether that variable is set here.
    pub env_set: bool,
    /// `file:line` of the assignment.
    pub r#where: Option<String>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "…redacted"))
            .field("env", &self.env)
            .field("env_set", &self.env_set)
            .field("where", &self.r#where)
            .finish()
    }
}

/// One `websocket` route.
#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    /// As a Sockpit path: `/ws/chat/{room}/`.
    pub path: String,
    /// Its parameters.
    pub params: Vec<String>,
    /// Whether the path says all the route matches (false: regex, `<path:…>`).
    pub exact: bool,
    /// The consumer (dotted, or the source text in text mode).
    pub consumer: String,
    /// Groups the consumer joins, where written as constants.
    pub groups: Vec<String>,
}

#[derive(Deserialize)]
struct Refusal {
    error: String,
    message: String,
    env_var: Option<String>,
}

/// A proposal: what was found, the config rendered from it, and the project's root.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The project's root (canonical).
    pub project: PathBuf,
    /// What the inspector found.
    pub found: Found,
    /// The config and the report.
    pub rendered: Rendered,
}

/// How to propose.
#[derive(Debug, Clone, Copy)]
pub struct ProposeOptions<'a> {
    /// The project's interpreter (default: [`find_python`]).
    pub python: Option<&'a Path>,
    /// Sockpit's port.
    pub port: u16,
    /// See [`RenderOptions::include_secret`].
    pub include_secret: bool,
    /// See [`RenderOptions::elsewhere`].
    pub elsewhere: bool,
}

/// Reads the project, renders the config, and checks it loads: what `sockpit init` and
/// the desktop's "Open a Django project…" both do.
pub fn propose(project: &Path, opts: &ProposeOptions) -> Result<Proposal, InitError> {
    let found = detect(project, opts.python)?;
    let project = project
        .canonicalize()
        .map_err(|_| InitError::NoDirectory(project.to_path_buf()))?;
    let rendered = render(
        &found,
        &RenderOptions {
            project: &project,
            port: opts.port,
            include_secret: opts.include_secret,
            elsewhere: opts.elsewhere,
        },
    );
    // A proposal Sockpit's own checks refuse is a bug here; say so rather than write it.
    crate::config::Config::from_toml(&rendered.toml, "the proposed sockpit.toml")?;
    Ok(Proposal {
        project,
        found,
        rendered,
    })
}

/// Reads the project at `project` with `python` (default: [`find_python`]).
pub fn detect(project: &Path, python: Option<&Path>) -> Result<Found, InitError> {
    if !project.is_dir() {
        return Err(InitError::NoDirectory(project.to_path_buf()));
    }
    let project = project
        .canonicalize()
        .map_err(|_| InitError::NoDirectory(project.to_path_buf()))?;
    if !project.join("manage.py").is_file() {
        return Err(InitError::NoManagePy(project));
    }
    let python = match python {
        // Relative to where the user is, not the project; never through the venv's
        // symlink, which would leave the venv.
        Some(p) if p.components().count() > 1 => std::path::absolute(p).unwrap_or(p.into()),
        Some(p) => p.to_path_buf(),
        None => find_python(&project),
    };
    let out = run_inspector(&python, &project)?;
    let line = out.lines().rev().find(|l| l.starts_with('{'));
    let Some(line) = line else {
        return Err(InitError::Inspect {
            python,
            reason: "it printed no answer".into(),
        });
    };
    if let Ok(refusal) = serde_json::from_str::<Refusal>(line) {
        return Err(match (refusal.error.as_str(), refusal.env_var) {
            ("secret_env_missing", Some(var)) => InitError::SecretEnvMissing {
                var,
                message: refusal.message,
            },
            _ => InitError::Settings(refusal.message),
        });
    }
    serde_json::from_str(line).map_err(|e| InitError::Inspect {
        python,
        reason: format!("its answer did not parse: {e}"),
    })
}

/// The project's interpreter: a virtualenv beside `manage.py` or one level up, the active
/// one (`VIRTUAL_ENV`), else `python3` from `PATH`.
pub fn find_python(project: &Path) -> PathBuf {
    let venvs = [".venv", "venv", "env", ".env"];
    let dirs = [Some(project), project.parent()];
    dirs.into_iter()
        .flatten()
        .flat_map(|d| venvs.iter().map(move |v| d.join(v).join("bin/python")))
        .chain(std::env::var_os("VIRTUAL_ENV").map(|v| PathBuf::from(v).join("bin/python")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn run_inspector(python: &Path, project: &Path) -> Result<String, InitError> {
    let mut child = Command::new(python)
        .arg("-")
        .arg(project)
        .current_dir(project)
        // Read-only: no __pycache__ written into the project.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| InitError::NoPython {
            python: python.to_path_buf(),
            reason: format!("{e} (give the project's interpreter with --python)"),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let feeder = std::thread::spawn(move || stdin.write_all(INSPECT_PY.as_bytes()));
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > INSPECT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(InitError::Inspect {
                    python: python.to_path_buf(),
                    reason: format!(
                        "importing the settings took over {} s (do they wait for a service?)",
                        INSPECT_TIMEOUT.as_secs()
                    ),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(InitError::Inspect {
                    python: python.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        }
    };
    let _ = feeder.join();
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(InitError::Inspect {
            python: python.to_path_buf(),
            reason: format!("it exited with {status}: {}", tail.join(" | ")),
        });
    }
    Ok(out)
}

/// Writes `text` to `path` unless a file is there; owner-only when it holds a secret.
pub fn write_new(path: &Path, text: &str, private: bool) -> Result<(), InitError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let _ = private;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            InitError::Exists(path.to_path_buf())
        } else {
            InitError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    file.write_all(text.as_bytes())
        .map_err(|source| InitError::Write {
            path: path.to_path_buf(),
            source,
        })
}

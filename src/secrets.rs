//! Secrets: the JWT secret and the API key, resolved once per server start from the
//! config, the environment or the data dir (generated there on first use). Kept apart
//! from the server object so `sockpit token`, `sockpit doctor` and Settings resolve them
//! exactly as a running server does.

use crate::auth::{AuthError, Verifier};
use crate::config::Config;
use crate::datadir::{self, DataDirError, Paths};

/// Why the secrets could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The data dir could not be used.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// `auth.secret_env` names a variable that is not set.
    #[error("auth.secret_env: environment variable {0} is not set")]
    SecretEnvMissing(String),
    /// `api.key_env` names a variable that is not set.
    #[error("api.key_env: environment variable {0} is not set")]
    KeyEnvMissing(String),
    /// The auth setup is wrong (public key file, algorithm).
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Secrets resolved from config, environment and the data dir.
#[derive(Clone)]
pub struct Secrets {
    /// HMAC secret for HS* tokens.
    pub jwt_secret: String,
    /// API key for `/_sockpit/api/*`.
    pub api_key: String,
    /// Signs the UI's session cookies: random, generated once in the data dir, never the
    /// API key (which a user may have set to something short and guessable).
    pub session_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(…redacted)")
    }
}

impl Secrets {
    /// Config value, else the named env var, else the file generated in the data dir.
    pub fn resolve(config: &Config, paths: &Paths) -> Result<Self, SecretsError> {
        let jwt_secret = pick(
            &config.auth.secret,
            config.auth.secret_env.as_deref(),
            SecretsError::SecretEnvMissing,
            paths,
            datadir::SECRET_FILE,
        )?;
        let api_key = pick(
            &config.api.key,
            config.api.key_env.as_deref(),
            SecretsError::KeyEnvMissing,
            paths,
            datadir::API_KEY_FILE,
        )?;
        let session_key = datadir::read_or_generate(&paths.data_dir, datadir::SESSION_KEY_FILE)?;
        Ok(Self {
            jwt_secret,
            api_key,
            session_key,
        })
    }
}

fn pick(
    value: &str,
    env: Option<&str>,
    missing: fn(String) -> SecretsError,
    paths: &Paths,
    file: &str,
) -> Result<String, SecretsError> {
    if !value.is_empty() {
        return Ok(value.to_string());
    }
    if let Some(var) = env {
        return std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(var.to_string()));
    }
    Ok(datadir::read_or_generate(&paths.data_dir, file)?)
}

impl Verifier {
    /// The verifier a server with `config` and `paths` uses (same secret, same rules):
    /// what `sockpit token` and `sockpit doctor` need to agree with a running server.
    pub fn for_config(config: &Config, paths: &Paths) -> Result<Self, SecretsError> {
        let secrets = Secrets::resolve(config, paths)?;
        Ok(Self::new(&config.auth, &secrets.jwt_secret)?)
    }
}

//! JWT auth, SimpleJWT-compatible: where a token is found, whether it is valid, and in
//! words a developer can act on why not. Also mints dev tokens.
//!
//! The verifier returns a [`Principal`], never a bag of claims. Reasons never contain
//! the token itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde_json::{Map, Value};

use crate::config::{Algorithm, AuthConfig, TokenSource};

/// Who a valid token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id as a string (`3` and `"3"` are the same user).
    pub user_id: String,
    /// Expiry, seconds since the epoch.
    pub exp: Option<u64>,
}

/// Where a handshake's token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundToken {
    /// The token.
    pub token: String,
    /// The subprotocol to echo back when the token came from `Sec-WebSocket-Protocol`.
    pub echo_protocol: Option<String>,
}

/// Subprotocol names after which the next offered protocol is the token, as in
/// `new WebSocket(url, ["access_token", token])`.
const TOKEN_PROTOCOL_MARKERS: &[&str] = &["access_token", "bearer", "jwt", "token"];

/// Looks for a token in the configured sources, in order.
///
/// `query` is the raw query string, `authorization` the header value, `protocols` the
/// offered subprotocols in the client's order.
pub fn find_token(
    sources: &[TokenSource],
    query: Option<&str>,
    authorization: Option<&str>,
    protocols: &[&str],
) -> Option<FoundToken> {
    for source in sources {
        let found = match source {
            TokenSource::Query(name) => query.and_then(|q| {
                form_urlencoded_pairs(q)
                    .find(|(k, v)| k == name && !v.is_empty())
                    .map(|(_, v)| FoundToken {
                        token: v,
                        echo_protocol: None,
                    })
            }),
            TokenSource::Header => authorization
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(|t| FoundToken {
                    token: t.trim().to_string(),
                    echo_protocol: None,
                }),
            TokenSource::Subprotocol => token_from_protocols(protocols),
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn token_from_protocols(protocols: &[&str]) -> Option<FoundToken> {
    for (i, p) in protocols.iter().enumerate() {
        if TOKEN_PROTOCOL_MARKERS.contains(&p.to_ascii_lowercase().as_str())
            && let Some(token) = protocols.get(i + 1)
        {
            return Some(FoundToken {
                token: token.to_string(),
                echo_protocol: Some(p.to_string()),
            });
        }
    }
    // A bare JWT as the only protocol: it has to be echoed back for the browser to
    // accept the handshake.
    protocols
        .iter()
        .find(|p| looks_like_jwt(p))
        .map(|p| FoundToken {
            token: p.to_string(),
            echo_protocol: Some(p.to_string()),
        })
}

fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3 && parts[0].starts_with("eyJ")
}

fn form_urlencoded_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => Some((h * 16 + l, 3)),
                _ => None,
            },
            _ => None,
        };
        let (b, step) = decoded.unwrap_or((bytes[i], 1));
        out.push(b);
        i += step;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces the values of token-carrying query parameters with `…redacted`: the usual
/// names and every `query:NAME` of `sources`, compared after percent-decoding and
/// without case (`%74oken`, `TOKEN` and `token` are one parameter to a server).
pub fn redact_query(query: &str, sources: &[TokenSource]) -> String {
    const SECRET_KEYS: &[&str] = &["token", "access_token", "jwt", "key", "api_key", "apikey"];
    let secret = |k: &str| {
        let k = percent_decode(k).to_lowercase();
        SECRET_KEYS.contains(&k.as_str())
            || sources
                .iter()
                .any(|s| matches!(s, TokenSource::Query(n) if n.to_lowercase() == k))
    };
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret(k) => format!("{k}=…redacted"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A log line with its secrets redacted: the query strings in it ([`redact_query`]) and
/// anything shaped like a JWT (`eyJ….….…`). An upstream's access log prints request URLs
/// whole, tokens included.
pub fn redact_text(text: &str, sources: &[TokenSource]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(q) = rest.find('?') {
        out.push_str(&rest[..=q]);
        let after = &rest[q + 1..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '#'))
            .unwrap_or(after.len());
        out.push_str(&redact_query(&after[..end], sources));
        rest = &after[end..];
    }
    out.push_str(rest);
    redact_jwts(&out)
}

fn redact_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("eyJ") {
        let from = &rest[i..];
        let len = from
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(from.len());
        let candidate = &from[..len];
        out.push_str(&rest[..i]);
        if candidate.split('.').filter(|p| !p.is_empty()).count() == 3 {
            out.push_str("…redacted");
        } else {
            out.push_str(candidate);
        }
        rest = &from[len..];
    }
    out.push_str(rest);
    out
}

/// Why a handshake's token was refused. Its `Display` is the 4001 close reason; the
/// doctor builds its explanations from the variant. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No token in any configured source.
    #[error("no token (expected {expected})")]
    NoToken {
        /// Where the first configured source expects it, e.g. `?token=…`.
        expected: String,
    },
    /// Not three base64url JSON parts.
    #[error("token malformed (expected header.payload.signature)")]
    Malformed,
    /// Rejected by the JWT library for a reason without a better name.
    #[error("token malformed ({0})")]
    Invalid(String),
    /// Signed with another algorithm than the pinned one (`alg: none` included).
    #[error("alg {}not allowed (expected {expected})", got.as_ref().map(|a| format!("{a} ")).unwrap_or_default())]
    Algorithm {
        /// The token's `alg`, when it could be read.
        got: Option<String>,
        /// The configured algorithm.
        expected: Algorithm,
    },
    /// The signature does not match the configured key.
    #[error("bad signature (check the {})", if *public_key { "public key" } else { "secret" })]
    BadSignature {
        /// Whether the key is a PEM public key (RS256/ES256) rather than a secret.
        public_key: bool,
    },
    /// `exp` has passed.
    #[error("token expired{}", ago_s.map(|s| format!(" {} ago", human_duration(s))).unwrap_or_default())]
    Expired {
        /// Seconds since it expired, when `exp` could be read.
        ago_s: Option<u64>,
    },
    /// `nbf` is still ahead.
    #[error("token not valid yet (nbf{})", in_s.map(|s| format!(" in {}", human_duration(s))).unwrap_or_default())]
    NotYetValid {
        /// Seconds until it becomes valid, when `nbf` could be read.
        in_s: Option<u64>,
    },
    /// A required claim is missing (`exp`, the user claim).
    #[error("claim {0} missing")]
    ClaimMissing(String),
    /// A claim has the wrong JSON type.
    #[error("claim {0} has the wrong type")]
    ClaimType(String),
    /// `exp` is not a number.
    #[error("claim exp must be a number")]
    ExpNotNumber,
    /// `aud` is not the configured audience.
    #[error("aud {got} not accepted (expected {expected})")]
    Audience {
        /// The token's `aud`, as JSON.
        got: String,
        /// The configured audience.
        expected: String,
    },
    /// `iss` is not the configured issuer.
    #[error("iss {got} not accepted (expected {expected})")]
    Issuer {
        /// The token's `iss`, as JSON.
        got: String,
        /// The configured issuer.
        expected: String,
    },
    /// A SimpleJWT token of the wrong type (a refresh token, typically).
    #[error("token_type {got} (expected {expected})")]
    TokenType {
        /// The token's `token_type`.
        got: String,
        /// The configured `token_type`.
        expected: String,
    },
    /// No `token_type` claim while one is required.
    #[error("claim token_type missing (expected {expected})")]
    TokenTypeMissing {
        /// The configured `token_type`.
        expected: String,
    },
    /// The user claim is an empty string.
    #[error("claim {0} is empty")]
    UserEmpty(String),
    /// The user claim is neither a string nor a number.
    #[error("claim {0} must be a string or a number")]
    UserType(String),
}

/// The 4001 reason for a handshake without a token: where the first source expects one.
pub fn no_token(sources: &[TokenSource]) -> Rejection {
    let expected = match sources.first() {
        Some(TokenSource::Query(q)) => format!("?{q}=…"),
        Some(TokenSource::Header) => "Authorization: Bearer …".into(),
        _ => "Sec-WebSocket-Protocol".into(),
    };
    Rejection::NoToken { expected }
}

/// Why an auth setup could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The public key file is missing or unreadable.
    #[error("auth.public_key_file: {path}: {message}")]
    PublicKey {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// RS256/ES256 without a key file.
    #[error("auth.algorithm = {0} needs auth.public_key_file")]
    NoPublicKey(Algorithm),
    /// Minting needs the private half.
    #[error(
        "cannot mint {0} tokens: Sockpit only holds the public key (use an HS* algorithm for dev tokens)"
    )]
    CannotMint(Algorithm),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A token verifier (and, for HS*, minter) built once from `[auth]`.
pub struct Verifier {
    config: AuthConfig,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.config.algorithm)
            .finish_non_exhaustive()
    }
}

fn jwt_alg(a: Algorithm) -> jsonwebtoken::Algorithm {
    match a {
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        Algorithm::HS384 => jsonwebtoken::Algorithm::HS384,
        Algorithm::HS512 => jsonwebtoken::Algorithm::HS512,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
    }
}

impl Verifier {
    /// Builds a verifier. `secret` is the HMAC secret already resolved by the caller
    /// (config, env or generated); it is ignored for RS256/ES256.
    pub fn new(config: &AuthConfig, secret: &str) -> Result<Self, AuthError> {
        let alg = config.algorithm;
        let (decoding, encoding) = if alg.uses_secret() {
            (
                DecodingKey::from_secret(secret.as_bytes()),
                Some(EncodingKey::from_secret(secret.as_bytes())),
            )
        } else {
            let path = config
                .public_key_file
                .as_ref()
                .ok_or(AuthError::NoPublicKey(alg))?;
            let pem = std::fs::read(path).map_err(|e| AuthError::PublicKey {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let key = match alg {
                Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                _ => DecodingKey::from_ec_pem(&pem),
            }
            .map_err(|e| AuthError::PublicKey {
                path: path.display().to_string(),
                message: format!("not a PEM public key for {alg}: {e}"),
            })?;
            (key, None)
        };
        let mut validation = Validation::new(jwt_alg(alg));
        validation.leeway = config.leeway_s.0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_aud = config.audience.is_some();
        if let Some(aud) = &config.audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            config: config.clone(),
            decoding,
            encoding,
            validation,
        })
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.config.algorithm
    }

    /// Checks only the algorithm and signature (not `exp`, `nbf`, `aud`, `iss` or the
    /// claims Sockpit adds), so the doctor can say "the signature is fine, it expired".
    pub fn check_signature(&self, token: &str) -> Result<(), Rejection> {
        let mut v = self.validation.clone();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.iss = None;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &v)
            .map(|_| ())
            .map_err(|e| self.explain(e.kind(), &Map::new(), now_secs()))
    }

    /// Verifies `token`; `Err` says why not (close 4001).
    pub fn verify(&self, token: &str) -> Result<Principal, Rejection> {
        self.verify_at(token, now_secs())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Principal, Rejection> {
        let (header, claims) = peek(token)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        if alg != self.config.algorithm.to_string() {
            return Err(Rejection::Algorithm {
                got: Some(alg.to_string()),
                expected: self.config.algorithm,
            });
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation)
                .map_err(|e| self.explain(e.kind(), &claims, now))?;
        let claims = data.claims;
        // The crate allows `exp` up to u64::MAX and unlimited clock skew on `nbf` only
        // through leeway; our own checks below cover what SimpleJWT adds.
        let want = &self.config.token_type;
        if !want.is_empty() {
            match claims.get("token_type") {
                Some(Value::String(t)) if t == want => {}
                Some(Value::String(t)) => {
                    return Err(Rejection::TokenType {
                        got: t.clone(),
                        expected: want.clone(),
                    });
                }
                _ => {
                    return Err(Rejection::TokenTypeMissing {
                        expected: want.clone(),
                    });
                }
            }
        }
        let user_id = self.user_of(&claims)?;
        Ok(Principal {
            user_id,
            exp: claims.get("exp").and_then(Value::as_u64),
        })
    }

    fn user_of(&self, claims: &Map<String, Value>) -> Result<String, Rejection> {
        let claim = &self.config.user_claim;
        let value = claims.get(claim).or_else(|| claims.get("sub"));
        match value {
            Some(Value::String(s)) if s.is_empty() => Err(Rejection::UserEmpty(claim.clone())),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err(Rejection::UserType(claim.clone())),
            None => Err(Rejection::ClaimMissing(claim.clone())),
        }
    }

    fn explain(&self, kind: &ErrorKind, claims: &Map<String, Value>, now: u64) -> Rejection {
        let claim = |k: &str| claims.get(k).map(Value::to_string).unwrap_or_default();
        match kind {
            ErrorKind::InvalidSignature => Rejection::BadSignature {
                public_key: !self.config.algorithm.uses_secret(),
            },
            ErrorKind::ExpiredSignature => Rejection::Expired {
                ago_s: claims
                    .get("exp")
                    .and_then(Value::as_u64)
                    .map(|exp| now.saturating_sub(exp)),
            },
            ErrorKind::ImmatureSignature => Rejection::NotYetValid {
                in_s: claims
                    .get("nbf")
                    .and_then(Value::as_u64)
                    .map(|nbf| nbf.saturating_sub(now)),
            },
            ErrorKind::MissingRequiredClaim(c) => Rejection::ClaimMissing(c.clone()),
            ErrorKind::InvalidClaimFormat(c) => Rejection::ClaimType(c.clone()),
            ErrorKind::InvalidAudience => Rejection::Audience {
                got: claim("aud"),
                expected: self
                    .config
                    .audience
                    .clone()
                    .unwrap_or_else(|| "none".into()),
            },
            ErrorKind::InvalidIssuer => Rejection::Issuer {
                got: claim("iss"),
                expected: self.config.issuer.clone().unwrap_or_else(|| "none".into()),
            },
            ErrorKind::InvalidAlgorithm => Rejection::Algorithm {
                got: None,
                expected: self.config.algorithm,
            },
            ErrorKind::Json(e) if e.to_string().contains("exp") => Rejection::ExpNotNumber,
            other => Rejection::Invalid(format!("{other:?}")),
        }
    }

    /// Mints a SimpleJWT-shaped access token for `user_id`.
    pub fn mint(
        &self,
        user_id: &str,
        ttl: Duration,
        extra: &Map<String, Value>,
    ) -> Result<String, AuthError> {
        let key = self
            .encoding
            .as_ref()
            .ok_or(AuthError::CannotMint(self.config.algorithm))?;
        let now = now_secs();
        let mut claims = Map::new();
        if !self.config.token_type.is_empty() {
            claims.insert("token_type".into(), self.config.token_type.clone().into());
        }
        claims.insert("exp".into(), now.saturating_add(ttl.as_secs()).into());
        claims.insert("iat".into(), now.into());
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        claims.insert(
            "jti".into(),
            jti.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        );
        // SimpleJWT keeps integer primary keys as numbers; "007" stays a string.
        let uid = match user_id.parse::<i64>() {
            Ok(n) if n.to_string() == user_id => Value::from(n),
            _ => Value::from(user_id),
        };
        claims.insert(self.config.user_claim.clone(), uid);
        if let Some(aud) = &self.config.audience {
            claims.insert("aud".into(), aud.clone().into());
        }
        if let Some(iss) = &self.config.issuer {
            claims.insert("iss".into(), iss.clone().into());
        }
        for (k, v) in extra {
            claims.insert(k.clone(), v.clone());
        }
        jsonwebtoken::encode(&Header::new(jwt_alg(self.config.algorithm)), &claims, key)
            .map_err(|e| AuthError::Sign(e.to_string()))
    }
}

/// A JWT header or claim set, as JSON.
pub type Claims = Map<String, Value>;

/// Decodes header and claims without checking anything, for explanations.
pub fn peek(token: &str) -> Result<(Claims, Claims), Rejection> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let decode = |s: &str| -> Option<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    match (decode(h), decode(p)) {
        (Some(h), Some(p)) => Ok((h, p)),
        _ => Err(Rejection::Malformed),
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `3m12s`, `2h5m`, `4d3h`, `42s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// The longest token lifetime Sockpit mints: ten years.
pub const MAX_TTL_S: u64 = 10 * 365 * 86_400;

/// Parses `30s`, `15m`, `1h`, `7d` or plain seconds (at most [`MAX_TTL_S`]).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (expected e.g. 30s, 15m, 1h, 7d)"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "bad duration {s:?} (expected e.g. 30s, 15m, 1h, 7d)"
            ));
        }
    };
    match n.checked_mul(mult) {
        Some(secs) if secs > 0 && secs <= MAX_TTL_S => Ok(Duration::from_secs(secs)),
        _ => Err(format!("duration {s:?} must be from 1s to 10 years")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_lose_their_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl";
        let line = format!(
            "[02/Dec/2026] \"GET /ws/dashboard/?token={jwt}&room=1 HTTP/1.1\" 403 - Bearer {jwt} ?key=k1"
        );
        let out = redact_text(&line, &[TokenSource::Query("t2".into())]);
        assert!(!out.contains("eyJ1c2Vy"), "{out}");
        assert!(!out.contains("k1"), "{out}");
        assert!(out.contains("?token=…redacted&room=1 HTTP/1.1"), "{out}");
        assert!(out.contains("Bearer …redacted"), "{out}");
        assert_eq!(
            redact_text("/x/?t2=s&y=2", &[TokenSource::Query("t2".into())]),
            "/x/?t2=…redacted&y=2"
        );
        assert_eq!(
            redact_text("Are you sure? yes. eyJ alone", &[]),
            "Are you sure? yes. eyJ alone"
        );
    }

    fn hs256() -> Verifier {
        Verifier::new(&AuthConfig::default(), "s3cret").unwrap()
    }

    fn sign(claims: Value, alg: jsonwebtoken::Algorithm, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn simplejwt_token_passes_and_int_user_is_a_string() {
        let now = now_secs();
        let t = sign(
            serde_json::json!({"token_type":"access","exp":now+60,"iat":now,"jti":"x","user_id":3}),
            jsonwebtoken::Algorithm::HS256,
            "s3cret",
        );
        assert_eq!(hs256().verify(&t).unwrap().user_id, "3");
    }

    #[test]
    fn reasons() {
        let v = hs256();
        let now = now_secs();
        let base = |extra: Value| {
            let mut c = serde_json::json!({"token_type":"access","exp":now+60,"user_id":"7"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let expired = sign(
            base(serde_json::json!({"exp": now - 192})),
            jsonwebtoken::Algorithm::HS256,
            "s3cret",
        );
        assert_eq!(
            v.verify_at(&expired, now).unwrap_err().to_string(),
            "token expired 3m12s ago"
        );
        let wrong = sign(
            base(serde_json::json!({})),
            jsonwebtoken::Algorithm::HS256,
            "nope",
        );
        assert_eq!(
            v.verify(&wrong).unwrap_err().to_string(),
            "bad signature (check the secret)"
        );
        let refresh = sign(
            base(serde_json::json!({"token_type":"refresh"})),
            jsonwebtoken::Algorithm::HS256,
            "s3cret",
        );
        assert_eq!(
            v.verify(&refresh).unwrap_err().to_string(),
            "token_type refresh (expected access)"
        );
        let hs512 = sign(
            base(serde_json::json!({})),
            jsonwebtoken::Algorithm::HS512,
            "s3cret",
        );
        assert_eq!(
            v.verify(&hs512).unwrap_err().to_string(),
            "alg HS512 not allowed (expected HS256)"
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(base(serde_json::json!({})).to_string())
        );
        assert_eq!(
            v.verify(&none).unwrap_err().to_string(),
            "alg none not allowed (expected HS256)"
        );
        assert!(
            v.verify("garbage")
                .unwrap_err()
                .to_string()
                .starts_with("token malformed")
        );
        let no_user = sign(
            serde_json::json!({"token_type":"access","exp":now+60}),
            jsonwebtoken::Algorithm::HS256,
            "s3cret",
        );
        assert_eq!(
            v.verify(&no_user).unwrap_err(),
            Rejection::ClaimMissing("user_id".into())
        );
        let no_exp = sign(
            serde_json::json!({"token_type":"access","user_id":1}),
            jsonwebtoken::Algorithm::HS256,
            "s3cret",
        );
        assert_eq!(
            v.verify(&no_exp).unwrap_err().to_string(),
            "claim exp missing"
        );
        let later = sign(
            base(serde_json::json!({"nbf": now + 100})),
            jsonwebtoken::Algorithm::HS256,
            "s3cret",
        );
        assert!(
            v.verify(&later)
                .unwrap_err()
                .to_string()
                .starts_with("token not valid yet")
        );
    }

    #[test]
    fn minted_tokens_verify() {
        let v = hs256();
        let t = v.mint("42", Duration::from_secs(60), &Map::new()).unwrap();
        assert_eq!(v.verify(&t).unwrap().user_id, "42");
    }

    #[test]
    fn token_sources_in_order() {
        let sources = AuthConfig::default().token_sources;
        let f = find_token(&sources, Some("a=1&token=abc"), Some("Bearer def"), &[]).unwrap();
        assert_eq!(f.token, "abc");
        let f = find_token(&sources, Some("a=1"), Some("Bearer def"), &[]).unwrap();
        assert_eq!(f.token, "def");
        let f = find_token(&sources, None, None, &["access_token", "ghi"]).unwrap();
        assert_eq!(
            (f.token.as_str(), f.echo_protocol.as_deref()),
            ("ghi", Some("access_token"))
        );
        assert!(find_token(&sources, None, None, &["chat"]).is_none());
        let f = find_token(&sources, Some("token=a%2Bb"), None, &[]).unwrap();
        assert_eq!(f.token, "a+b");
    }

    #[test]
    fn redaction_and_durations() {
        let sources = [TokenSource::Query("access".into())];
        assert_eq!(
            redact_query("room=1&token=abc", &sources),
            "room=1&token=…redacted"
        );
        assert_eq!(
            redact_query("access=abc&%74oken=def&JWT=ghi&room=x", &sources),
            "access=…redacted&%74oken=…redacted&JWT=…redacted&room=x"
        );
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(42), "42s");
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_ttl("1y").is_err());
    }
}

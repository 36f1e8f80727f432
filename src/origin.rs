//! Browser-facing request guards: the `Origin` allowlist for WebSocket handshakes
//! (cross-site WebSocket hijacking) and the `Host` allowlist for `/_sockpit/` (DNS
//! rebinding).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One entry of `allowed_origins`: `scheme://host[:port]`, where the port may be `*`;
/// or `*` alone for any origin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct OriginPattern {
    text: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    Any,
    Exact {
        scheme: String,
        host: String,
        port: PortRule,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Default,
    Any,
    Is(u16),
}

impl OriginPattern {
    /// Parses `http://localhost:*`, `https://app.example.com`, `*`, …
    pub fn parse(text: &str) -> Result<Self, String> {
        let kind = if text == "*" {
            PatternKind::Any
        } else {
            let (scheme, rest) = text.split_once("://").ok_or_else(|| {
                format!("origin {text:?} must look like http://host:port (or \"*\")")
            })?;
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = split_host_port(rest);
            let port = match port {
                None => PortRule::Default,
                Some("*") => PortRule::Any,
                Some(p) => PortRule::Is(
                    p.parse()
                        .map_err(|_| format!("origin {text:?}: bad port {p:?}"))?,
                ),
            };
            if host.is_empty() || host.contains(['/', '*']) || scheme.is_empty() {
                return Err(format!("origin {text:?} must look like http://host:port"));
            }
            PatternKind::Exact {
                scheme: scheme.to_ascii_lowercase(),
                host: host.to_ascii_lowercase(),
                port,
            }
        };
        Ok(Self {
            text: text.to_string(),
            kind,
        })
    }

    /// Whether the `Origin` header value `origin` matches.
    pub fn allows(&self, origin: &str) -> bool {
        let PatternKind::Exact { scheme, host, port } = &self.kind else {
            return true;
        };
        let Some((o_scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        let (o_host, o_port) = split_host_port(rest);
        if !o_scheme.eq_ignore_ascii_case(scheme) || !o_host.eq_ignore_ascii_case(host) {
            return false;
        }
        match port {
            // A number, or none: not any text after a colon (a 300 KB "port").
            PortRule::Any => o_port.is_none_or(|p| p.parse::<u16>().is_ok()),
            PortRule::Default => o_port.is_none(),
            PortRule::Is(p) => o_port.and_then(|o| o.parse::<u16>().ok()) == Some(*p),
        }
    }
}

/// Splits `host:port`, keeping `[v6]` literals whole.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if s.starts_with('[') {
        return match s.find(']') {
            Some(end) => (&s[..=end], s[end + 1..].strip_prefix(':')),
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    }
}

impl TryFrom<String> for OriginPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<OriginPattern> for String {
    fn from(p: OriginPattern) -> String {
        p.text
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Origins of Sockpit's own desktop window (Linux/macOS, Windows). No web page can have
/// them, so they are always allowed: the window's test client connects from there.
pub const DESKTOP_ORIGINS: &[&str] = &["tauri://localhost", "http://tauri.localhost"];

/// An Origin outside `allowed_origins`; its `Display` is the 4003 close reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {0} not in allowed_origins")]
pub struct OriginNotAllowed(pub String);

/// Whether a request with `origin` comes from a page of the server it was sent to (`host`,
/// the `Host` header), or from the desktop window. Sockpit serves plain HTTP only.
pub fn is_same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    match (origin, host) {
        (Some(o), _) if DESKTOP_ORIGINS.contains(&o) => true,
        (Some(o), Some(h)) => o.strip_prefix("http://") == Some(h),
        _ => false,
    }
}

/// The handshake's Origin verdict.
pub fn check_origin(
    allowed: &[OriginPattern],
    origin: Option<&str>,
) -> Result<(), OriginNotAllowed> {
    match origin {
        None => Ok(()),
        Some(o) if DESKTOP_ORIGINS.contains(&o) => Ok(()),
        Some(o) if allowed.iter().any(|p| p.allows(o)) => Ok(()),
        Some(o) => Err(OriginNotAllowed(o.to_string())),
    }
}

/// Why a `Host` header was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum HostError {
    /// No Host header at all (400).
    Missing,
    /// A host that is neither loopback nor configured (403).
    NotAllowed(String),
}

/// Checks `Host` against loopback names and `hosts` (compared without the port).
pub fn check_host(hosts: &[String], host: Option<&str>) -> Result<(), HostError> {
    let host = host.ok_or(HostError::Missing)?;
    let (name, _) = split_host_port(host);
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let loopback = name.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        Ok(())
    } else {
        Err(HostError::NotAllowed(host.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<OriginPattern> {
        ["http://localhost:*", "http://127.0.0.1:*"]
            .map(|p| OriginPattern::parse(p).unwrap())
            .to_vec()
    }

    #[test]
    fn localhost_any_port() {
        let a = defaults();
        assert!(check_origin(&a, Some("http://localhost:5173")).is_ok());
        assert!(check_origin(&a, Some("http://localhost")).is_ok());
        assert!(check_origin(&a, Some("http://127.0.0.1:3000")).is_ok());
        assert!(check_origin(&a, None).is_ok());
        assert_eq!(
            check_origin(&a, Some("http://evil.test"))
                .unwrap_err()
                .to_string(),
            "origin http://evil.test not in allowed_origins"
        );
        assert!(check_origin(&a, Some("https://localhost:5173")).is_err());
        assert!(check_origin(&a, Some("http://localhost.evil.test:80")).is_err());
        let long_port = format!("http://localhost:{}", "9".repeat(100));
        assert!(check_origin(&a, Some(&long_port)).is_err());
        assert!(is_same_origin(
            Some("http://127.0.0.1:8000"),
            Some("127.0.0.1:8000")
        ));
        assert!(!is_same_origin(
            Some("https://127.0.0.1:8000"),
            Some("127.0.0.1:8000")
        ));
        assert!(!is_same_origin(
            Some("http://127.0.0.1:3000"),
            Some("127.0.0.1:8000")
        ));
        assert!(!is_same_origin(None, Some("127.0.0.1:8000")));
        assert!(check_origin(&a, Some("null")).is_err());
        assert!(check_origin(&[], Some("tauri://localhost")).is_ok());
    }

    #[test]
    fn exact_port_only_where_written() {
        let a = vec![OriginPattern::parse("https://app.example.com:8443").unwrap()];
        assert!(check_origin(&a, Some("https://app.example.com:8443")).is_ok());
        assert!(check_origin(&a, Some("https://app.example.com:9443")).is_err());
        assert!(check_origin(&a, Some("https://app.example.com")).is_err());
        assert!(OriginPattern::parse("localhost:3000").is_err());
        assert!(OriginPattern::parse("http://*.example.com").is_err());
    }

    #[test]
    fn hosts() {
        let h = vec!["localhost".to_string(), "devbox".to_string()];
        assert!(check_host(&h, Some("localhost:8000")).is_ok());
        assert!(check_host(&h, Some("127.0.0.5:8000")).is_ok());
        assert!(check_host(&h, Some("[::1]:8000")).is_ok());
        assert!(check_host(&h, Some("devbox")).is_ok());
        assert_eq!(check_host(&h, None), Err(HostError::Missing));
        assert!(matches!(
            check_host(&h, Some("evil.test:8000")),
            Err(HostError::NotAllowed(_))
        ));
    }
}

//! Endpoints: which WebSocket path a request names, what it captures, which channels
//! the connection joins, and the nearest known path when it names none.
//!
//! Plain types, no transport: the dispatcher asks [`Endpoints::resolve`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::config::EndpointConfig;

/// Longest request path that gets a "did you mean" suggestion.
pub const SUGGEST_MAX_BYTES: usize = 256;

/// The configured endpoints, in config order (the first match wins).
#[derive(Debug, Clone)]
pub struct Endpoints {
    list: Vec<Arc<EndpointConfig>>,
}

/// A request path resolved to an endpoint.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The endpoint's config.
    pub endpoint: Arc<EndpointConfig>,
    /// Values captured by `{params}`.
    pub params: BTreeMap<String, String>,
}

impl Matched {
    /// Channel names for a connection of `user` (None when unauthenticated).
    pub fn channels(&self, user: Option<&str>) -> Vec<String> {
        self.endpoint
            .channels
            .iter()
            .map(|t| t.render(&self.params, user))
            .collect()
    }
}

/// A path that names no endpoint; its `Display` is the 4004 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEndpoint {
    /// The requested path.
    pub path: String,
    /// The known path closest to it, params filled from the request.
    pub nearest: Option<String>,
}

impl fmt::Display for NoEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.nearest {
            Some(near) => write!(f, "no endpoint {} — did you mean {near}?", self.path),
            None => write!(f, "no endpoint {}", self.path),
        }
    }
}

impl std::error::Error for NoEndpoint {}

impl Endpoints {
    /// Wraps the endpoint list.
    pub fn new(list: &[EndpointConfig]) -> Self {
        Self {
            list: list.iter().cloned().map(Arc::new).collect(),
        }
    }

    /// The endpoints, in order.
    pub fn iter(&self) -> impl Iterator<Item = &EndpointConfig> {
        self.list.iter().map(|e| e.as_ref())
    }

    /// The endpoint `path` names, or why it names none (with the nearest known path).
    pub fn resolve(&self, path: &str) -> Result<Matched, NoEndpoint> {
        for e in &self.list {
            if let Some(params) = e.path.matches(path) {
                return Ok(Matched {
                    endpoint: e.clone(),
                    params,
                });
            }
        }
        Err(NoEndpoint {
            path: path.to_string(),
            nearest: self.nearest(path),
        })
    }

    /// The known path closest to `path` by edit distance; none for a path longer than
    /// [`SUGGEST_MAX_BYTES`], so a request's cost stays bounded whatever its length
    /// (edit distance is quadratic).
    pub fn nearest(&self, path: &str) -> Option<String> {
        if path.len() > SUGGEST_MAX_BYTES {
            return None;
        }
        self.list
            .iter()
            .map(|e| e.path.filled_like(path))
            .min_by_key(|candidate| strsim::levenshtein(candidate, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMode, OnMessage, default_endpoints};

    #[test]
    fn typo_suggests_nearest() {
        let eps = Endpoints::new(&default_endpoints());
        let err = eps.resolve("/ws/dashbord/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no endpoint /ws/dashbord/ — did you mean /ws/dashboard/?"
        );
        let chat = Endpoints::new(&[EndpointConfig::new(
            "/ws/chat/{room}/",
            &["chat.{room}"],
            AuthMode::None,
            OnMessage::Broadcast,
        )]);
        assert_eq!(
            chat.resolve("/ws/chta/lobby/")
                .unwrap_err()
                .nearest
                .as_deref(),
            Some("/ws/chat/lobby/")
        );
    }
}

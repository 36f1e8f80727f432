//! Endpoints: which WebSocket path a request names, what it captures, which channels
//! the connection joins, and the nearest known path when it names none.
//!
//! Plain types, no transport: the dispatcher asks [`Endpoints::resolve`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::config::EndpointConfig;
use crate::pattern::ChannelTemplate;

/// Longest request path that gets a "did you mean" suggestion.
pub const SUGGEST_MAX_BYTES: usize = 256;

/// The configured endpoints, in config order (the first match wins).
#[derive(Debug, Clone)]
pub struct Endpoints {
    list: Vec<Arc<EndpointConfig>>,
    /// Every channel template of every endpoint, once.
    templates: Vec<ChannelTemplate>,
}

/// A request path resolved to an endpoint.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The endpoint's config.
    pub endpoint: Arc<EndpointConfig>,
    /// Values captured by `{params}`.
    pub params: BTreeMap<String, String>,
}

/// A channel a path parameter may not name; its `Display` is the 4003 reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {channel} is reserved: a path parameter cannot name it")]
pub struct ReservedChannel {
    /// The channel the parameters rendered.
    pub channel: String,
}

/// The prefix of the channel every authenticated connection of a user joins.
const USER_PREFIX: &str = "user.";

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
        let mut templates: Vec<ChannelTemplate> = Vec::new();
        for t in list.iter().flat_map(|e| &e.channels) {
            if !templates.contains(t) {
                templates.push(t.clone());
            }
        }
        Self {
            list: list.iter().cloned().map(Arc::new).collect(),
            templates,
        }
    }

    /// The channels a connection of `user` on `matched` joins. A channel rendered from
    /// path parameters may not reach one the parameter's author does not own: the
    /// reserved `user.` prefix (another user's messages), or a channel of a template
    /// with more fixed text (`{room}` = `dashboard`, or `chat.lobby` of `chat.{room}`).
    pub fn channels(
        &self,
        matched: &Matched,
        user: Option<&str>,
    ) -> Result<Vec<String>, ReservedChannel> {
        let mut out = Vec::with_capacity(matched.endpoint.channels.len());
        for t in &matched.endpoint.channels {
            let channel = t.render(&matched.params, user);
            if t.uses_params() {
                // Another template owns the channel when it is at least as specific (ties
                // too), or names a user (`notify.{user}`).
                let owned_elsewhere = self.templates.iter().any(|other| {
                    other != t
                        && (other.fixed_len() >= t.fixed_len() || other.names_user())
                        && other.matches(&channel)
                });
                let user_channel =
                    channel.starts_with(USER_PREFIX) && !t.as_str().starts_with(USER_PREFIX);
                if owned_elsewhere || user_channel {
                    return Err(ReservedChannel { channel });
                }
            }
            out.push(channel);
        }
        Ok(out)
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
    fn params_cannot_name_channels_they_do_not_own() {
        let eps = Endpoints::new(&[
            EndpointConfig::new(
                "/ws/dashboard/",
                &["dashboard"],
                AuthMode::None,
                OnMessage::Drop,
            ),
            EndpointConfig::new(
                "/ws/chat/{room}/",
                &["chat.{room}"],
                AuthMode::None,
                OnMessage::Drop,
            ),
            EndpointConfig::new(
                "/ws/any/{room}/",
                &["{room}", "user_{user}"],
                AuthMode::None,
                OnMessage::Drop,
            ),
            EndpointConfig::new(
                "/ws/me/",
                &["notify.{user}"],
                AuthMode::Jwt,
                OnMessage::Drop,
            ),
            EndpointConfig::new(
                "/ws/notify/{id}/",
                &["notify.{id}"],
                AuthMode::None,
                OnMessage::Drop,
            ),
        ]);
        let joins = |path: &str, user: Option<&str>| {
            let m = eps.resolve(path).unwrap();
            eps.channels(&m, user).map_err(|e| e.to_string())
        };
        assert_eq!(
            joins("/ws/any/lobby/", Some("7")).unwrap(),
            ["lobby", "user_7"]
        );
        assert_eq!(joins("/ws/chat/a.b/", None).unwrap(), ["chat.a.b"]);
        // A tie with a template that names a user: anyone could read user 42's channel.
        assert!(joins("/ws/notify/42/", None).is_err());
        for taken in [
            "user.42",
            "dashboard",
            "chat.kitchen",
            "user_8",
            "notify.42",
        ] {
            let e = joins(&format!("/ws/any/{taken}/"), Some("7")).unwrap_err();
            assert_eq!(
                e,
                format!("channel {taken} is reserved: a path parameter cannot name it")
            );
        }
    }

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

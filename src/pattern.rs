//! Path patterns and channel templates: the two small languages of `[[endpoint]]`
//! (`/ws/chat/{room}/`, `chat.{room}`). Plain values, parsed once when the config loads.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest value a `{param}` captures: a connection keeps its path and channels for its
/// whole life, so a 60 KB segment would be held 10,000 times over.
pub const MAX_PARAM_BYTES: usize = 256;

/// A path such as `/ws/chat/{room}/`; `{name}` captures one non-empty segment of at most
/// [`MAX_PARAM_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl PathPattern {
    /// Parses a pattern; it must start with `/` and its `{…}` must be whole segments.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("path {text:?} must start with /"));
        }
        if text.starts_with("/_sockpit/") || text == "/_sockpit" {
            return Err(format!(
                "path {text:?} is reserved for Sockpit's own routes"
            ));
        }
        let mut segments = Vec::new();
        for seg in text[1..].split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("path {text:?}: bad parameter {{{name}}}"));
                }
                if name == "user" {
                    return Err(format!(
                        "path {text:?}: {{user}} is the token's user id and cannot be a path parameter"
                    ));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if seg.contains(['{', '}']) {
                return Err(format!(
                    "path {text:?}: a {{param}} must be a whole segment, as in /ws/chat/{{room}}/"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Names of the `{params}`.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The captured params if `path` matches.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Param(name) if !part.is_empty() && part.len() <= MAX_PARAM_BYTES => {
                    // As Django's URL resolver does: `/ws/chat/a%20b/` captures `a b`.
                    params.insert(name.clone(), percent_decode_segment(part));
                }
                _ => return None,
            }
        }
        Some(params)
    }

    /// The pattern with its params filled from `path`'s segments where the shapes line up,
    /// so a typo in `/ws/chta/lobby/` suggests `/ws/chat/lobby/`, not `/ws/chat/{room}/`.
    pub(crate) fn filled_like(&self, path: &str) -> String {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if parts.len() != self.segments.len() {
            return self.text.clone();
        }
        let filled: Vec<&str> = self
            .segments
            .iter()
            .zip(&parts)
            .map(|(seg, part)| match seg {
                Segment::Literal(l) => l.as_str(),
                Segment::Param(_) if !part.is_empty() => part,
                Segment::Param(_) => "x",
            })
            .collect();
        format!("/{}", filled.join("/"))
    }
}

/// Decodes `%XX` escapes in a path segment (`+` stays a plus, as in paths).
fn percent_decode_segment(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TryFrom<String> for PathPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<PathPattern> for String {
    fn from(p: PathPattern) -> String {
        p.text
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A channel name template such as `chat.{room}` or `user_{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelTemplate(String);

impl ChannelTemplate {
    /// Parses a template; braces must pair up around a name.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("channel name must not be empty".into());
        }
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("channel {text:?}: unclosed {{"))?;
            let name = &rest[open + 1..open + close];
            if name.is_empty() || name.contains('{') {
                return Err(format!("channel {text:?}: bad placeholder"));
            }
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("channel {text:?}: unmatched }}"));
        }
        Ok(Self(text.to_string()))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Names inside `{…}`.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.0
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(n, _)| n))
    }

    /// Whether a path parameter (anything but `{user}`) is part of it.
    pub fn uses_params(&self) -> bool {
        self.placeholders().any(|p| p != "user")
    }

    /// Whether it names the token's user (`{user}`).
    pub fn names_user(&self) -> bool {
        self.placeholders().any(|p| p == "user")
    }

    /// How much of it is fixed text (outside placeholders): the more, the more specific.
    pub fn fixed_len(&self) -> usize {
        self.pieces()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Hole => 0,
            })
            .sum()
    }

    /// Whether `channel` is one this template can produce (each placeholder standing for
    /// any non-empty text).
    pub fn matches(&self, channel: &str) -> bool {
        let pieces: Vec<Piece<'_>> = self.pieces().collect();
        glob(&pieces, channel)
    }

    fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        let mut rest = self.0.as_str();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').map_or(rest.len(), |i| i + 1);
                    rest = &rest[end..];
                    Some(Piece::Hole)
                }
                Some(i) => {
                    let (text, tail) = rest.split_at(i);
                    rest = tail;
                    Some(Piece::Text(text))
                }
                None => Some(Piece::Text(std::mem::take(&mut rest))),
            }
        })
    }

    /// The channel name with `{param}` and `{user}` filled in.
    pub fn render(&self, params: &BTreeMap<String, String>, user: Option<&str>) -> String {
        let mut out = self.0.clone();
        for (k, v) in params {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        if let Some(u) = user {
            out = out.replace("{user}", u);
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Text(&'a str),
    Hole,
}

/// Matches `s` against pieces where a hole is any non-empty text. Tracks every position
/// of `s` the pieces so far can end at, so the cost is pieces × length whatever the
/// template (backtracking was exponential in the number of holes: found by fuzzing).
fn glob(pieces: &[Piece<'_>], s: &str) -> bool {
    let n = s.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for piece in pieces {
        let mut next = vec![false; n + 1];
        match piece {
            // Reached positions are char boundaries: the start, or just past a match.
            Piece::Text(t) => {
                for i in (0..=n).filter(|&i| reach[i]) {
                    if s[i..].starts_with(t) {
                        next[i + t.len()] = true;
                    }
                }
            }
            // Any non-empty text: every boundary after the first reached position.
            Piece::Hole => {
                if let Some(first) = reach.iter().position(|&r| r) {
                    for (j, slot) in next.iter_mut().enumerate().skip(first + 1) {
                        *slot = s.is_char_boundary(j);
                    }
                }
            }
        }
        reach = next;
    }
    reach[n]
}

impl TryFrom<String> for ChannelTemplate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ChannelTemplate> for String {
    fn from(c: ChannelTemplate) -> String {
        c.0
    }
}

impl fmt::Display for ChannelTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_capture_one_segment() {
        let p = PathPattern::parse("/ws/chat/{room}/").unwrap();
        let m = p.matches("/ws/chat/lobby/").unwrap();
        assert_eq!(m["room"], "lobby");
        assert_eq!(p.matches("/ws/chat/a%20b/").unwrap()["room"], "a b");
        assert_eq!(p.matches("/ws/chat/100%/").unwrap()["room"], "100%");
        assert!(p.matches("/ws/chat//").is_none());
        assert!(p.matches("/ws/chat/a/b/").is_none());
        assert!(p.matches("/ws/chat/lobby").is_none());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(PathPattern::parse("ws/").is_err());
        assert!(PathPattern::parse("/ws/a{b}/").is_err());
        assert!(PathPattern::parse("/_sockpit/x").is_err());
        assert!(ChannelTemplate::parse("chat.{room").is_err());
        assert!(ChannelTemplate::parse("").is_err());
    }

    #[test]
    fn templates_match_what_they_can_produce() {
        let t = ChannelTemplate::parse("chat.{room}").unwrap();
        assert!(t.matches("chat.lobby"));
        assert!(!t.matches("chat."));
        assert!(!t.matches("user.7"));
        assert_eq!(t.fixed_len(), 5);
        let any = ChannelTemplate::parse("{room}").unwrap();
        assert!(any.matches("dashboard") && any.uses_params());
        let user = ChannelTemplate::parse("user_{user}").unwrap();
        assert!(user.matches("user_7") && !user.uses_params());
        assert!(
            ChannelTemplate::parse("dashboard")
                .unwrap()
                .matches("dashboard")
        );
        let two = ChannelTemplate::parse("{a}.{b}").unwrap();
        assert!(two.matches("x.y.z") && !two.matches("xy"));
        assert!(ChannelTemplate::parse("é{a}").unwrap().matches("éx"));
        assert!(!ChannelTemplate::parse("{a}{b}").unwrap().matches("é"));
        // Many holes against a long channel: linear, not exponential.
        let holes = ChannelTemplate::parse(&"{a}x".repeat(40)).unwrap();
        assert!(!holes.matches(&"y".repeat(256)));
        assert!(holes.matches(&"yx".repeat(40)));
    }

    #[test]
    fn templates_render() {
        let t = ChannelTemplate::parse("chat.{room}.{user}").unwrap();
        let params = BTreeMap::from([("room".to_string(), "lobby".to_string())]);
        assert_eq!(t.render(&params, Some("7")), "chat.lobby.7");
        assert_eq!(t.placeholders().collect::<Vec<_>>(), ["room", "user"]);
    }
}

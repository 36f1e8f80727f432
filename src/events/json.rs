//! An event's JSON, written by hand. The serde derive on [`Event`] stays the contract
//! (the tests hold this writer to it, byte for byte); this exists because every message
//! is two events, and serde's escaping, a table look-up per character, was the largest
//! single cost of an event in the echo bench's profile.

use std::sync::Arc;

use super::{Event, MAX_FIELD_BYTES};

/// A connection's fields of its events (`conn`, `endpoint`, `user`, `remote`, `origin`),
/// written as JSON once, when the connection opens: every message is two events, and
/// escaping and copying five short strings field by field was most of an event's cost.
/// Cloning shares the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnFields {
    /// `,"conn":…,"endpoint":…` then `,"user":…,"remote":…,"origin":…`: the event's
    /// `path` and `channel` go between the two.
    json: Arc<str>,
    split: usize,
}

impl ConnFields {
    /// The fields, each cut to [`MAX_FIELD_BYTES`] as an event's fields are.
    pub fn new(
        conn: &str,
        endpoint: &str,
        user: Option<&str>,
        remote: &str,
        origin: Option<&str>,
    ) -> Self {
        let mut json = String::new();
        text(&mut json, "conn", Some(conn));
        text(&mut json, "endpoint", Some(endpoint));
        let split = json.len();
        text(&mut json, "user", user);
        text(&mut json, "remote", Some(remote));
        text(&mut json, "origin", origin);
        Self {
            json: json.into(),
            split,
        }
    }
}

/// Appends everything of `e`'s JSON after its `{"seq":N` — from `,"ts":` to the closing
/// brace — to `out`, each text field cut to [`MAX_FIELD_BYTES`] as [`super::clip`] cuts.
pub(super) fn write_after_seq(e: &Event, out: &mut String) {
    out.push_str(",\"ts\":\"");
    // RFC 3339 text: nothing in it needs escaping.
    e.ts.with_text(|t| out.push_str(t));
    out.push_str("\",\"kind\":\"");
    out.push_str(e.kind.name());
    out.push('"');
    // A connection's own fields, when the event has them, stand for the five below.
    match &e.conn_fields {
        Some(c) => out.push_str(&c.json[..c.split]),
        None => {
            text(out, "conn", e.conn.as_deref());
            text(out, "endpoint", e.endpoint.as_deref());
        }
    }
    text(out, "path", e.path.as_deref());
    text(out, "channel", e.channel.as_deref());
    match &e.conn_fields {
        Some(c) => out.push_str(&c.json[c.split..]),
        None => {
            text(out, "user", e.user.as_deref());
            text(out, "remote", e.remote.as_deref());
            text(out, "origin", e.origin.as_deref());
        }
    }
    number(out, "code", e.code.map(u64::from));
    text(out, "reason", e.reason.as_deref());
    number(out, "bytes", e.bytes);
    text(out, "preview", e.preview.as_deref());
    number(out, "delivered", e.delivered);
    text(out, "method", e.method.as_deref());
    number(out, "status", e.status.map(u64::from));
    number(out, "duration_ms", e.duration_ms);
    out.push('}');
}

fn key(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

fn number(out: &mut String, name: &str, value: Option<u64>) {
    if let Some(n) = value {
        key(out, name);
        out.push_str(itoa::Buffer::new().format(n));
    }
}

fn text(out: &mut String, name: &str, value: Option<&str>) {
    let Some(s) = value else { return };
    key(out, name);
    out.push('"');
    if s.len() <= MAX_FIELD_BYTES {
        escaped(out, s);
    } else {
        let mut end = MAX_FIELD_BYTES - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        escaped(out, &s[..end]);
        out.push('…');
    }
    out.push('"');
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `s` as the inside of a JSON string, escaped as serde_json escapes it.
fn escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Most text has nothing to escape: find the first byte that does 16 at a time (a
    // fold without an early exit, which the compiler vectorises), and copy up to it.
    let mut clean = 0;
    for chunk in bytes.chunks_exact(16) {
        if chunk.iter().fold(false, |any, &b| any | needs_escape(b)) {
            break;
        }
        clean += 16;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        if !needs_escape(b) {
            continue;
        }
        // Every byte escaped is ASCII, so `i` is a character boundary.
        out.push_str(&s[start..i]);
        start = i + 1;
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{EventKind, SEQ_PREFIX};
    use super::*;

    fn by_hand(e: &Event) -> String {
        let mut out = format!("{SEQ_PREFIX}{}", e.seq);
        write_after_seq(e, &mut out);
        out
    }

    fn all_fields(text: &str) -> Event {
        let mut e = Event::new(EventKind::HttpRequest);
        e.seq = 18_446_744_073_709_551_615;
        let arc = |s: &str| Some(Arc::<str>::from(s));
        (e.conn, e.endpoint, e.user, e.remote, e.origin, e.preview) = (
            arc(text),
            arc(text),
            arc(text),
            arc(text),
            arc(text),
            arc(text),
        );
        (e.path, e.channel, e.reason, e.method) = (
            Some(text.into()),
            Some(text.into()),
            Some(text.into()),
            Some(text.into()),
        );
        (e.code, e.status) = (Some(4001), Some(u16::MAX));
        (e.bytes, e.delivered, e.duration_ms) = (Some(0), Some(7), Some(u64::MAX));
        e
    }

    /// What serde writes for the event, its text fields clipped first (as before the
    /// writer existed).
    fn by_serde(e: &Event) -> String {
        let mut e = e.clone();
        let clip = |s: &mut Option<String>| *s = s.as_deref().map(super::super::clip);
        let clip_arc = |s: &mut Option<Arc<str>>| {
            *s = s.as_deref().map(|t| Arc::from(super::super::clip(t)));
        };
        for f in [&mut e.path, &mut e.channel, &mut e.reason, &mut e.method] {
            clip(f);
        }
        for f in [
            &mut e.conn,
            &mut e.endpoint,
            &mut e.user,
            &mut e.remote,
            &mut e.origin,
            &mut e.preview,
        ] {
            clip_arc(f);
        }
        serde_json::to_string(&e).unwrap()
    }

    #[test]
    fn writes_what_serde_writes() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        let hostile = [
            String::new(),
            "plain".into(),
            "quote \" backslash \\ slash / tab\t newline\n".into(),
            every_control,
            "é😀\u{7f}\u{2028}".into(),
            // 16-byte chunks with the escape in the first, the last and past them.
            format!("{}\"{}", "a".repeat(15), "b".repeat(40)),
            format!("{}\\", "a".repeat(47)),
            // Cut: a multi-byte character across the limit, an escape just before it.
            "é".repeat(MAX_FIELD_BYTES),
            format!("{}\"{}", "x".repeat(MAX_FIELD_BYTES - 4), "é".repeat(10)),
            "\"".repeat(MAX_FIELD_BYTES * 2),
        ];
        for text in &hostile {
            let e = all_fields(text);
            assert_eq!(by_hand(&e), by_serde(&e), "{text:?}");
        }
        let mut bare = Event::new(EventKind::ServerStarted);
        bare.seq = 1;
        assert_eq!(by_hand(&bare), by_serde(&bare));
    }

    #[test]
    fn a_connections_fields_write_what_the_five_fields_write() {
        let long = "\"".repeat(MAX_FIELD_BYTES * 2);
        let hostile = ["c1", "é😀\u{2028}\n\\", long.as_str(), ""];
        for text in hostile {
            for (user, origin) in [(None, None), (Some(text), Some(text))] {
                let mut fields = all_fields(text);
                (fields.user, fields.origin) = (user.map(Arc::from), origin.map(Arc::from));
                let mut tagged = fields.clone();
                tagged.conn_fields = Some(ConnFields::new(text, text, user, text, origin));
                (
                    tagged.conn,
                    tagged.endpoint,
                    tagged.user,
                    tagged.remote,
                    tagged.origin,
                ) = (None, None, None, None, None);
                assert_eq!(by_hand(&tagged), by_serde(&fields), "{text:?}");
            }
        }
    }

    #[test]
    fn every_kind_has_its_serde_name() {
        use EventKind::*;
        for kind in [
            ServerStarted,
            ServerStopped,
            ServerError,
            HandshakeRejected,
            Connected,
            Disconnected,
            MessageIn,
            MessageOut,
            Published,
            WebhookFailed,
            HttpRequest,
            UpstreamOutput,
            UpstreamState,
            BridgeState,
            BrokerState,
        ] {
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
    }
}

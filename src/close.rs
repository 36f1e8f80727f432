//! Close codes and drop reasons: the numbers a page reads in `CloseEvent.code` when
//! Sockpit closes it, and why the server dropped a client. Both reach the UI as
//! generated TypeScript, so the test client's hints and the Logs colours name the same
//! codes as the server.

use serde::Serialize;
use ts_rs::TS;

/// A close code Sockpit sends (DESIGN.md "Handshake verdicts and close codes").
///
/// Clients and kicks may use any other valid code; those travel as plain `u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum CloseCode {
    /// 1000: a normal close (kick without a code).
    Normal = 1000,
    /// 1001: the server is stopping.
    GoingAway = 1001,
    /// 1002: the client broke the protocol.
    ProtocolError = 1002,
    /// 1005: the client's close frame had no code (never sent, only recorded).
    NoStatus = 1005,
    /// 1006: the connection dropped without a close frame (never sent, only recorded).
    Abnormal = 1006,
    /// 1007: a text message that is not UTF-8.
    InvalidPayload = 1007,
    /// 1008: policy: the client fell behind (send queue full) or went idle.
    Policy = 1008,
    /// 1009: a message over `max_message_bytes`.
    TooBig = 1009,
    /// 4001: no token, or the token is invalid.
    Unauthorized = 4001,
    /// 4003: forbidden: the Origin is not in `allowed_origins`, or a path parameter
    /// names a reserved channel.
    Forbidden = 4003,
    /// 4004: no endpoint at that path.
    NoEndpoint = 4004,
    /// 4029: `max_connections` reached.
    TooManyConnections = 4029,
    /// 4502: the `[proxy]` upstream could not be reached, or refused the WebSocket with
    /// an answer that is not about the token, origin or path (500, 400, a plain page).
    UpstreamFailed = 4502,
}

impl CloseCode {
    /// Every code, for the generated TypeScript.
    pub const ALL: [CloseCode; 13] = [
        Self::Normal,
        Self::GoingAway,
        Self::ProtocolError,
        Self::NoStatus,
        Self::Abnormal,
        Self::InvalidPayload,
        Self::Policy,
        Self::TooBig,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NoEndpoint,
        Self::TooManyConnections,
        Self::UpstreamFailed,
    ];

    /// The number on the wire.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The code's name in TypeScript (`CloseCode.Unauthorized`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::GoingAway => "GoingAway",
            Self::ProtocolError => "ProtocolError",
            Self::NoStatus => "NoStatus",
            Self::Abnormal => "Abnormal",
            Self::InvalidPayload => "InvalidPayload",
            Self::Policy => "Policy",
            Self::TooBig => "TooBig",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NoEndpoint => "NoEndpoint",
            Self::TooManyConnections => "TooManyConnections",
            Self::UpstreamFailed => "UpstreamFailed",
        }
    }

    /// The TypeScript declaration: a `const` object of the codes and its value type.
    pub fn typescript() -> String {
        let mut out = String::from("const CloseCode = {\n");
        for c in Self::ALL {
            out.push_str(&format!("  {}: {},\n", c.name(), c.code()));
        }
        out.push_str(
            "} as const;\nexport type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];",
        );
        out
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> u16 {
        c.code()
    }
}

/// Why the server dropped a client (the `reason` label of `sockpit_dropped_clients_total`).
/// Declared in alphabetical order: maps keyed by it list reasons as they always have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Nothing from it for `idle_timeout_s` (close 1008).
    IdleTimeout,
    /// Closed from the API or the UI.
    Kicked,
    /// It sent a message over `max_message_bytes` (close 1009).
    MessageTooBig,
    /// Its send queue was full (close 1008).
    SendQueueFull,
    /// It stopped reading: a write made no progress for `idle_timeout_s` (close 1008).
    WriteStalled,
}

impl DropReason {
    /// The name on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendQueueFull => "send_queue_full",
            Self::WriteStalled => "write_stalled",
            Self::MessageTooBig => "message_too_big",
            Self::IdleTimeout => "idle_timeout",
            Self::Kicked => "kicked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for r in [
            DropReason::SendQueueFull,
            DropReason::MessageTooBig,
            DropReason::IdleTimeout,
            DropReason::Kicked,
            DropReason::WriteStalled,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(u16::from(CloseCode::Unauthorized), 4001);
        assert_eq!(CloseCode::ALL.len(), 13);
    }
}

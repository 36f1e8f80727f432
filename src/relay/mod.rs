//! The `[proxy]` edge: requests Sockpit does not answer itself, passed to the upstream —
//! plain HTTP ([`http`]) and WebSockets ([`ws`]).

pub(crate) mod http;
pub(crate) mod ws;

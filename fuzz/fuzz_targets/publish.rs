//! Publish bodies, as `POST /_sockpit/api/publish` parses them: any bytes either parse
//! into the wire type or fail with an error, never a panic; a user id that parses is a
//! non-empty string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockpit::wire::{PublishRequest, TokenRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<PublishRequest>(data)
        && let Some(user) = req.user
    {
        assert!(!user.0.is_empty());
    }
    if let Ok(req) = serde_json::from_slice::<TokenRequest>(data) {
        assert!(!req.user_id.0.is_empty());
    }
});

//! Path patterns and channel templates: parsing any pattern, matching any request path
//! against it, the nearest-path suggestion and the channels a match joins. Never a panic,
//! and what the reserved-channel rule lets through never starts with `user.`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockpit::config::{AuthMode, EndpointConfig, OnMessage};
use sockpit::endpoint::Endpoints;
use sockpit::pattern::{ChannelTemplate, PathPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // pattern \n template \n request path \n user
    let mut parts = text.splitn(4, '\n');
    let (pattern, template, path, user) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().filter(|u| !u.is_empty()),
    );
    if let Ok(t) = ChannelTemplate::parse(template) {
        let _ = t.matches(path);
        let _ = t.fixed_len();
    }
    let (Ok(_), Ok(t)) = (
        PathPattern::parse(pattern),
        ChannelTemplate::parse(template),
    ) else {
        return;
    };
    let endpoints = Endpoints::new(&[
        EndpointConfig::new(
            pattern,
            &[template, "user_{user}"],
            AuthMode::None,
            OnMessage::Echo,
        ),
        EndpointConfig::new(
            "/ws/dashboard/",
            &["dashboard"],
            AuthMode::None,
            OnMessage::Drop,
        ),
    ]);
    match endpoints.resolve(path) {
        Ok(matched) => {
            if let Ok(channels) = endpoints.channels(&matched, user)
                && t.uses_params()
                && !template.starts_with("user.")
            {
                assert!(!channels[0].starts_with("user."), "{}", channels[0]);
            }
        }
        Err(none) => {
            let _ = none.to_string();
        }
    }
});

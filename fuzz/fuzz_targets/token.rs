//! Token extraction and validation: any query string, Authorization header and offered
//! subprotocols through every source order, then the verifier and the doctor's
//! explanation of whatever was found. Never a panic; a rejection never echoes the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockpit::auth::{Verifier, find_token, peek, redact_query};
use sockpit::config::{Config, TokenSource};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // query \n authorization \n protocols (comma separated)
    let mut parts = text.splitn(3, '\n');
    let (query, authorization, protocols) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let protocols: Vec<&str> = protocols.split(',').map(str::trim).collect();
    let sources = [
        TokenSource::Query("token".into()),
        TokenSource::Header,
        TokenSource::Subprotocol,
        TokenSource::Query("access".into()),
    ];
    let _ = redact_query(query, &sources);
    let mut config = Config::default();
    config.auth.secret = "fuzz".into();
    let verifier = Verifier::new(&config.auth, "fuzz").expect("HS256 with a secret");
    for candidate in [
        find_token(&sources, Some(query), Some(authorization), &protocols).map(|f| f.token),
        Some(text.to_string()),
    ]
    .into_iter()
    .flatten()
    {
        let _ = peek(&candidate);
        if let Err(reason) = verifier.verify(&candidate) {
            let reason = reason.to_string();
            // Reasons are short fixed texts plus claim values; a token long enough to
            // be a real one never appears in them.
            assert!(
                candidate.len() <= 100 || !reason.contains(&candidate),
                "{reason}"
            );
        }
        let _ = sockpit::doctor::explain_token(&config, &verifier, &candidate);
    }
});

//! Config parsing: any text either loads or fails with an error naming a place, and
//! never panics; a config that loads survives its own TOML round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockpit::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text, "fuzz.toml") {
        let again = Config::from_toml(&config.to_toml(), "again.toml")
            .expect("a loaded config writes itself back as valid TOML");
        assert_eq!(again, config);
    }
});

//! Any text as a configuration file: an error of one line or a valid configuration, never a
//! panic; a valid one has at least one listener, each with a primary upstream.
#![no_main]

use std::path::Path;

use ferry_relay::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Config::from_toml_str(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            assert!(!config.listeners.is_empty());
            for listener in &config.listeners {
                assert!(listener.upstreams.iter().any(|u| !u.backup));
                assert!(listener.health.timeout <= listener.health.interval);
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
});

//! Any text as a configuration file: an error of one line or a valid configuration, never a
//! panic; a valid one has at least one listener, each with a primary upstream, and every
//! bounded setting inside its range.
#![no_main]

use std::path::Path;
use std::time::Duration;

use ferry_relay::config::{Config, HostAddrs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // A host with one interface address besides loopback, for the self-forwarding rule.
    let host = HostAddrs::new(["10.0.0.7".parse().unwrap()]);
    match Config::from_toml_str(text, Path::new("fuzz.toml"), &host) {
        Ok(config) => {
            assert!(!config.listeners.is_empty());
            assert!(config.grace <= Duration::from_secs(86400));
            for listener in &config.listeners {
                assert!(listener.upstreams.iter().any(|u| !u.backup));
                let health = &listener.health;
                assert!(health.timeout <= health.interval);
                assert!(health.interval >= Duration::from_millis(100));
                assert!((1..=100).contains(&health.rise) && (1..=100).contains(&health.fall));
                assert!(listener
                    .pipe_size
                    .is_none_or(|size| (4096..=1 << 20).contains(&size)));
                for upstream in &listener.upstreams {
                    assert!(config.listeners.iter().all(|l| l.listen != upstream.addr));
                }
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
});

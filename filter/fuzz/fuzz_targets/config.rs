//! Any bytes as plugin configuration: an error or a valid configuration, never a panic; a
//! valid one always compiles into a rewriter.
#![no_main]

use ferry_filter::config::Config;
use ferry_filter::rewrite::Rewriter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::from_json(data) {
        assert!(!config.domains.is_empty());
        Rewriter::new(&config.domains).expect("validated domains compile");
    }
});

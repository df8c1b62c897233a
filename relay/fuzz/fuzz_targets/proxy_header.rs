//! Any bytes as the start of a connection from a trusted balancer: `parse` never panics; a
//! header it finds fits in the input and in `MAX_HEADER_LEN`, and every shorter prefix of the
//! input is `Incomplete` (the decision never depends on bytes past the header); a refusal
//! stays a refusal when more bytes arrive.
#![no_main]

use ferry_relay::proxy_protocol::{parse, Parsed, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Header { len, .. }) => {
            assert!(len <= data.len(), "len {len} > input {}", data.len());
            assert!(len <= MAX_HEADER_LEN);
            for k in 0..len {
                assert_eq!(parse(&data[..k]), Ok(Parsed::Incomplete), "prefix of {k}");
            }
            // Bytes after the header change nothing.
            assert_eq!(parse(&data[..len]), parse(data));
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < MAX_HEADER_LEN),
        Err(e) => {
            // Shorter prefixes are Incomplete or the same kind of refusal, never a header.
            for k in 0..data.len() {
                assert!(
                    !matches!(parse(&data[..k]), Ok(Parsed::Header { .. })),
                    "prefix of {k} is a header but the whole is refused: {e}"
                );
            }
        }
    }
});

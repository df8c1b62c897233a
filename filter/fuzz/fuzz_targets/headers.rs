//! Any header value through every header rule: no panic, and a rewritten value contains no
//! byte that was not in the input or a configured domain (no CR/LF can be introduced).
#![no_main]

use ferry_filter::domain::{Direction, HostMap};
use ferry_filter::headers;
use ferry_filter::rewrite::{EmailPolicy, Rewriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs = ferry_filter::testing::example_pairs();
    let hosts = HostMap::new(&pairs);
    let rw = Rewriter::new(&pairs).expect("valid patterns");
    let back = Rewriter::build(&pairs, Direction::MirrorToOrigin, EmailPolicy::Keep)
        .expect("valid patterns");
    let outputs = [
        headers::request_url(&hosts, data, b""),
        headers::request_url(&hosts, data, b":8443"),
        headers::request_referer(&hosts, &back, data, b""),
        headers::request_path(&back, data),
        headers::request_authority(&hosts, data),
        headers::set_cookie(&hosts, data),
        headers::response_value("location", data, &hosts, &rw),
    ];
    for out in outputs.into_iter().flatten() {
        for b in [b'\r', b'\n', 0] {
            assert_eq!(
                out.iter().filter(|&&x| x == b).count(),
                data.iter().filter(|&&x| x == b).count()
            );
        }
    }
});

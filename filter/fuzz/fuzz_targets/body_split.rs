//! The HTML body pipeline (same-site `integrity` dropped, then domains rewritten), streamed in
//! fuzzer-chosen chunks, gives exactly the output of one pass over the whole body, and holds
//! back a bounded number of bytes between chunks.
#![no_main]

use ferry_filter::body::{BodyRewriter, StreamBody};
use ferry_filter::config::Config;
use ferry_filter::integrity::MAX_TAG;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, body)) = data.split_first() else {
        return;
    };
    let config = Config::from_json(
        br#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": true},
                         {"origin": "a.io", "mirror": "b.io"}]}"#,
    )
    .expect("valid config");
    let pipeline = BodyRewriter::new(&config).expect("valid patterns");
    let mut whole = Vec::new();
    let mut once = StreamBody::new(&pipeline, true);
    once.push(body, &mut whole);
    once.finish(&mut whole);

    let mut stream = StreamBody::new(&pipeline, true);
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0u32;
    while !rest.is_empty() {
        let len = (((cuts as u32).rotate_left(i) % 29) as usize + 1).min(rest.len());
        stream.push(&rest[..len], &mut out);
        assert!(stream.held() <= MAX_TAG + pipeline.rewriter.max_hold() + 29);
        rest = &rest[len..];
        i += 1;
    }
    stream.finish(&mut out);
    assert_eq!(out, whole);
    assert_eq!(stream.integrity_removed, once.integrity_removed);
});

//! Streaming equals whole-buffer: the body, cut at fuzzer-chosen offsets into chunks, comes out
//! of the streaming rewriter exactly as from one call over the whole body, and the bytes held
//! back between chunks never exceed the bound.
#![no_main]

use ferry_filter::config::DomainPair;
use ferry_filter::rewrite::{Rewriter, StreamRewriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, body)) = data.split_first() else {
        return;
    };
    let mut pairs = ferry_filter::testing::example_pairs();
    pairs.push(DomainPair {
        origin: "a.io".into(),
        mirror: "b.io".into(),
        subdomains: false,
    });
    let rw = Rewriter::new(&pairs).expect("valid patterns");
    let whole = rw.rewrite_value(body).unwrap_or_else(|| body.to_vec());

    // Chunk lengths cycle through small sizes derived from the first byte.
    let mut stream = StreamRewriter::new(&rw);
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0u32;
    while !rest.is_empty() {
        let len = (((cuts as u32).rotate_left(i) % 13) as usize + 1).min(rest.len());
        stream.push(&rest[..len], &mut out);
        assert!(stream.held() <= rw.max_hold());
        rest = &rest[len..];
        i += 1;
    }
    stream.finish(&mut out);
    assert_eq!(out, whole);
});

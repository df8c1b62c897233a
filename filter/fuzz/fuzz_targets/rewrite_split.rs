//! Streaming equals whole-buffer: the body, cut at fuzzer-chosen offsets into chunks, comes out
//! of the streaming driver (domain rewriter only) exactly as from one pass over the whole body,
//! and the bytes carried between chunks never exceed the bound (checked by `deliver`).
#![no_main]

use ferry_filter::body::BodyRewriter;
use ferry_filter::config::{DomainPair, IntegrityPolicy};
use ferry_filter::stream::{BodyKind, BodyStream};
use ferry_filter::testing::{deliver, Ending};
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
    let pipeline = BodyRewriter::new(&pairs, IntegrityPolicy::Keep).expect("valid patterns");
    let whole = pipeline
        .rewriter
        .rewrite_value(body)
        .unwrap_or_else(|| body.to_vec());

    let chunks = ferry_filter::testing::cut(body, cuts, 13);
    let got = deliver(
        &pipeline,
        BodyStream::new(BodyKind::Text, None),
        &chunks,
        Ending::LastChunk,
    );
    assert!(got.failure.is_none());
    assert_eq!(got.body, whole);
});

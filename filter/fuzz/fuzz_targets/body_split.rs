//! The HTML body pipeline (same-site `integrity` dropped, then domains rewritten), streamed in
//! fuzzer-chosen chunks, gives exactly the output of one pass over the whole body, and carries
//! a bounded number of bytes between chunks (checked by `deliver`).
#![no_main]

use ferry_filter::body::BodyRewriter;
use ferry_filter::stream::{BodyKind, BodyStream};
use ferry_filter::testing::{deliver, Ending};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, body)) = data.split_first() else {
        return;
    };
    let config = ferry_filter::testing::fuzz_config();
    let pipeline = BodyRewriter::new(&config.domains, config.integrity).expect("valid patterns");
    let once = deliver(
        &pipeline,
        BodyStream::new(BodyKind::Html, None),
        &[body],
        Ending::LastChunk,
    );

    let chunks = ferry_filter::testing::cut(body, cuts, 29);
    let got = deliver(
        &pipeline,
        BodyStream::new(BodyKind::Html, None),
        &chunks,
        Ending::LastChunk,
    );
    assert!(got.failure.is_none() && once.failure.is_none());
    assert_eq!(got.body, once.body);
    assert_eq!(got.stats.integrity_removed, once.stats.integrity_removed);
});

//! Request bodies, mirror -> origin: a fuzzer-chosen body, as text or as `multipart/form-data`
//! (text parts rewritten, files untouched), cut into fuzzer-chosen chunks, reaches the origin
//! exactly as when it comes in one piece, and the bytes carried between chunks stay bounded
//! (checked by `deliver`). Never a panic.
#![no_main]

use ferry_filter::body::BodyRewriter;
use ferry_filter::multipart::Multipart;
use ferry_filter::stream::{BodyKind, BodyStream};
use ferry_filter::testing::{cut, deliver, Ending};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[knobs, cuts], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let config = ferry_filter::testing::fuzz_config();
    let pipeline = BodyRewriter::for_requests(&config).expect("valid patterns");
    let kind = || {
        if knobs & 1 == 0 {
            BodyKind::Text
        } else {
            BodyKind::Multipart(
                Multipart::from_content_type(b"multipart/form-data; boundary=zz").expect("valid"),
            )
        }
    };
    let whole = deliver(
        &pipeline,
        BodyStream::new(kind(), None),
        &[body],
        Ending::LastChunk,
    );
    let chunks = cut(body, cuts, 1 + u32::from(knobs >> 1) % 64);
    let split = deliver(
        &pipeline,
        BodyStream::new(kind(), None),
        &chunks,
        Ending::LastChunk,
    );
    assert!(whole.failure.is_none() && split.failure.is_none());
    assert_eq!(split.body, whole.body);
});

//! The streaming driver against the simulated Envoy: a fuzzer-chosen body, plain or encoded
//! (gzip, deflate, brotli, zstd), cut into fuzzer-chosen chunks and ended with the last chunk,
//! an empty chunk or trailers, reaches the client exactly as the whole-body rewrite, or (only
//! when trailers follow an undecided end) as a visible failure after a correct prefix. Never a
//! panic, never a different byte.
#![no_main]

use std::io::Write;

use ferry_filter::body::BodyRewriter;
use ferry_filter::config::IntegrityPolicy;
use ferry_filter::decode::{Coding, DecodeLimits, Decoder};
use ferry_filter::stream::{BodyKind, BodyStream, Failure};
use ferry_filter::testing::{deliver, Ending};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[knobs, cuts], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let config = ferry_filter::testing::fuzz_config();
    let integrity = if knobs & 1 == 0 {
        config.integrity
    } else {
        IntegrityPolicy::Keep
    };
    let pipeline = BodyRewriter::new(&config.domains, integrity).expect("valid patterns");
    let html = knobs & 2 == 0;
    let ending =
        [Ending::LastChunk, Ending::EmptyChunk, Ending::Trailers][(knobs >> 2) as usize % 3];
    let coding = [
        None,
        Some(Coding::Gzip),
        Some(Coding::Deflate),
        Some(Coding::Brotli),
        Some(Coding::Zstd),
    ][(knobs >> 4) as usize % 5];

    let whole = deliver(
        &pipeline,
        BodyStream::new(BodyKind::text(html), None),
        &[body],
        Ending::LastChunk,
    );
    assert!(whole.failure.is_none());
    let wire = match coding {
        None => body.to_vec(),
        Some(Coding::Gzip) => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        Some(Coding::Deflate) => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        Some(Coding::Brotli) => {
            let mut out = Vec::new();
            let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            e.write_all(body).unwrap();
            drop(e);
            out
        }
        Some(Coding::Zstd) => zstd::encode_all(body, 3).unwrap(),
    };
    let chunks = ferry_filter::testing::cut(&wire, cuts, 37);
    let decoder = coding.map(|c| Decoder::new(c, DecodeLimits::default()));
    let got = deliver(
        &pipeline,
        BodyStream::new(BodyKind::text(html), decoder),
        &chunks,
        ending,
    );
    match got.failure {
        None => assert_eq!(got.body, whole.body),
        Some(Failure::TrailersAfterUndecided { .. }) => {
            assert_eq!(ending, Ending::Trailers);
            assert!(whole.body.starts_with(&got.body));
        }
        Some(other) => panic!("unexpected failure: {other}"),
    }
});

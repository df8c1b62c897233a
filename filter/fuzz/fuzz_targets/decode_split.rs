//! Any bytes as a gzip, deflate, brotli or zstd body: no panic, output within the limits, and
//! decoding it in fuzzer-chosen chunks gives the same result as decoding it in one piece (the
//! same bytes, or an error in both).
#![no_main]

use ferry_filter::decode::{Coding, DecodeError, DecodeLimits, Decoder};
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: 4 << 20,
    max_ratio: 200,
};

fn run(coding: Coding, chunks: &[&[u8]]) -> Result<Vec<u8>, DecodeError> {
    let mut d = Decoder::new(coding, LIMITS);
    let mut out = Vec::new();
    for c in chunks {
        d.push(c, &mut out)?;
        assert!(out.len() as u64 <= LIMITS.max_bytes);
    }
    d.finish(&mut out)?;
    assert!(out.len() as u64 <= LIMITS.max_bytes);
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[which, cuts], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let coding = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd][which as usize % 4];
    let whole = run(coding, &[body]);
    let chunks = ferry_filter::testing::cut(body, cuts, 41);
    let split = run(coding, &chunks);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        // The ratio is checked against the encoded bytes read so far, so chunks can trip it
        // where the whole body in one piece does not.
        (Ok(_), Err(DecodeError::TooHighRatio { .. })) => {}
        _ => panic!("whole {whole:?} vs split {split:?}"),
    }
});

//! Tests of the decoders: every coding round-trips whatever the chunking, what browsers
//! tolerate is tolerated, corrupt, truncated and mislabelled data is refused, and bombs stop at
//! the limits.

use std::io::Write;

use super::*;

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn encode(coding: Coding, data: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Gzip => gzip(data),
        Coding::Deflate => zlib(data),
        Coding::Brotli => brotli(data),
        Coding::Zstd => zstd(data),
    }
}

const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

/// Decodes `chunks` one after another, then finishes.
fn decode(coding: Coding, limits: DecodeLimits, chunks: &[&[u8]]) -> Result<Vec<u8>, DecodeError> {
    let mut d = Decoder::new(coding, limits);
    let mut out = Vec::new();
    for c in chunks {
        d.push(c, &mut out)?;
    }
    d.finish(&mut out)?;
    assert_eq!(d.decoded(), out.len() as u64);
    Ok(out)
}

fn decode_all(coding: Coding, data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    decode(coding, DecodeLimits::default(), &[data])
}

fn text(len: usize) -> Vec<u8> {
    let words = [
        "<a href=\"https://www.example.com/p\">",
        "example.community ",
        "lorem ",
        "ipsum\n",
        "{\"u\":\"https:\\/\\/example.com\"}",
        "%2F%2Fexample.com ",
    ];
    let mut out = Vec::with_capacity(len + 64);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn content_encoding_headers() {
    use ContentEncoding::*;
    let cases: &[(Option<&str>, ContentEncoding)] = &[
        (None, Identity),
        (Some(""), Identity),
        (Some(" identity "), Identity),
        (Some("gzip"), Decodable(Coding::Gzip)),
        (Some("X-GZIP"), Decodable(Coding::Gzip)),
        (Some("deflate"), Decodable(Coding::Deflate)),
        (Some("br"), Decodable(Coding::Brotli)),
        (Some("zstd"), Decodable(Coding::Zstd)),
        (Some("compress"), Unsupported),
        (Some("dcb"), Unsupported),
        (Some("gzip, br"), Unsupported),
    ];
    for (value, want) in cases {
        assert_eq!(
            ContentEncoding::from_header(value.map(str::as_bytes)),
            *want,
            "{value:?}"
        );
    }
}

#[test]
fn every_coding_round_trips_split_at_every_offset() {
    let body = text(3000);
    for coding in ALL {
        let encoded = encode(coding, &body);
        assert_eq!(decode_all(coding, &encoded).unwrap(), body, "{coding}");
        for cut in 0..=encoded.len() {
            let got = decode(
                coding,
                DecodeLimits::default(),
                &[&encoded[..cut], &encoded[cut..]],
            )
            .unwrap_or_else(|e| panic!("{coding}, cut at {cut}: {e}"));
            assert!(got == body, "{coding}, cut at {cut}");
        }
        let bytes: Vec<&[u8]> = encoded.chunks(1).collect();
        assert!(decode(coding, DecodeLimits::default(), &bytes).unwrap() == body);
    }
}

#[test]
fn large_bodies_round_trip_in_chunks_of_every_size() {
    let body = text(3 << 20);
    for coding in ALL {
        let encoded = encode(coding, &body);
        for size in [1000, 16 * 1024 + 3, 65536, 1 << 20] {
            let chunks: Vec<&[u8]> = encoded.chunks(size).collect();
            let got = decode(coding, DecodeLimits::default(), &chunks).unwrap();
            assert!(got == body, "{coding}, chunks of {size}");
        }
    }
}

#[test]
fn deflate_is_zlib_or_raw_as_browsers_accept() {
    let body = text(5000);
    assert_eq!(decode_all(Coding::Deflate, &zlib(&body)).unwrap(), body);
    assert_eq!(
        decode_all(Coding::Deflate, &raw_deflate(&body)).unwrap(),
        body
    );
    let raw = raw_deflate(&body);
    let one: Vec<&[u8]> = raw.chunks(1).collect();
    assert_eq!(
        decode(Coding::Deflate, DecodeLimits::default(), &one).unwrap(),
        body
    );
}

#[test]
fn gzip_headers_members_and_trailing_bytes() {
    let body = text(4000);
    let mut named = Vec::new();
    {
        let mut e = flate2::GzBuilder::new()
            .filename("page.html")
            .comment("a comment")
            .extra(vec![1, 2, 3, 4])
            .write(&mut named, flate2::Compression::fast());
        e.write_all(&body).unwrap();
        e.finish().unwrap();
    }
    assert_eq!(decode_all(Coding::Gzip, &named).unwrap(), body);
    let one: Vec<&[u8]> = named.chunks(1).collect();
    assert_eq!(
        decode(Coding::Gzip, DecodeLimits::default(), &one).unwrap(),
        body
    );

    // Two members decode to both bodies, like gzip -d.
    let mut two = gzip(b"first ");
    two.extend(gzip(b"second"));
    assert_eq!(decode_all(Coding::Gzip, &two).unwrap(), b"first second");
    // Bytes after the last member are ignored (browsers ignore them too).
    let mut padded = gzip(b"page");
    padded.extend_from_slice(b"\0\0\0garbage");
    assert_eq!(decode_all(Coding::Gzip, &padded).unwrap(), b"page");
    // An empty body with a coding is an empty body.
    for coding in ALL {
        assert_eq!(decode_all(coding, b"").unwrap(), b"", "{coding}");
    }
}

#[test]
fn mislabelled_bodies_are_refused_at_once() {
    let page = b"<!doctype html><html><body>https://example.com/</body></html>".repeat(10);
    for coding in ALL {
        let mut d = Decoder::new(coding, DecodeLimits::default());
        let mut out = Vec::new();
        let first = d.push(&page, &mut out).and_then(|()| d.finish(&mut out));
        let err = first.expect_err(coding.name());
        assert!(!err.is_limit(), "{coding}: {err}");
        assert!(
            out.len() < page.len(),
            "{coding}: decoded {} bytes",
            out.len()
        );
    }
}

#[test]
fn corrupt_data_is_refused() {
    let body = text(20_000);
    for coding in ALL {
        let encoded = encode(coding, &body);
        // Flip bits across the middle of the stream: an error, never a different body.
        for at in [encoded.len() / 3, encoded.len() / 2, encoded.len() - 6] {
            let mut bad = encoded.clone();
            bad[at] ^= 0x55;
            match decode_all(coding, &bad) {
                // brotli has no checksum: a flipped bit may decode to other text.
                Ok(out) if coding != Coding::Brotli => {
                    assert!(
                        out == body,
                        "{coding}: corrupt at {at} decoded to other text"
                    )
                }
                Ok(_) => {}
                Err(e) => assert!(!e.is_limit(), "{coding}: {e}"),
            }
        }
    }
    // Checksums are checked.
    let mut gz = gzip(&body);
    let n = gz.len();
    gz[n - 8] ^= 1;
    assert!(matches!(
        decode_all(Coding::Gzip, &gz),
        Err(DecodeError::Corrupt { .. })
    ));
    let mut zs = zstd(&body);
    let n = zs.len();
    zs[n - 1] ^= 1;
    let err = decode_all(Coding::Zstd, &zs).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    let mut zl = zlib(&body);
    let n = zl.len();
    zl[n - 1] ^= 1;
    assert!(decode_all(Coding::Deflate, &zl).is_err());
}

#[test]
fn truncated_bodies_are_refused() {
    let body = text(20_000);
    for coding in ALL {
        let encoded = encode(coding, &body);
        for cut in [1, 4, encoded.len() / 2, encoded.len() - 1] {
            let err = decode_all(coding, &encoded[..cut]).expect_err(coding.name());
            assert!(
                matches!(
                    err,
                    DecodeError::Truncated { .. } | DecodeError::Corrupt { .. }
                ),
                "{coding} cut at {cut}: {err}"
            );
        }
    }
}

#[test]
fn bombs_stop_at_the_limits() {
    let zeros = vec![0u8; 32 << 20];
    for coding in ALL {
        let bomb = encode(coding, &zeros);
        assert!(bomb.len() < 200 << 10, "{coding}: {} bytes", bomb.len());
        // The ratio: 32 MiB from a few KiB.
        let err = decode_all(coding, &bomb).unwrap_err();
        assert_eq!(err, DecodeError::TooHighRatio { ratio: 200 }, "{coding}");
        // The absolute size, with the ratio out of the way.
        let limits = DecodeLimits {
            max_bytes: 4 << 20,
            max_ratio: u64::MAX,
        };
        let mut d = Decoder::new(coding, limits);
        let mut out = Vec::new();
        let err = d
            .push(&bomb, &mut out)
            .and_then(|()| d.finish(&mut out))
            .unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { limit: 4 << 20 }, "{coding}");
        assert!(out.len() <= 4 << 20, "{coding}: {} bytes out", out.len());
        assert!(err.is_limit());
    }
    // A body within the limits, however compressible, passes.
    let limits = DecodeLimits {
        max_bytes: 64 << 20,
        max_ratio: u64::MAX,
    };
    for coding in ALL {
        let out = decode(coding, limits, &[&encode(coding, &zeros)]).unwrap();
        assert!(out == zeros, "{coding}");
    }
}

#[test]
fn zstd_frames_windows_dictionaries_and_skippable_frames() {
    let body = text(10_000);
    // Two frames and a skippable frame in between.
    let mut data = zstd(b"one ");
    data.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    data.extend(zstd(b"two"));
    assert_eq!(decode_all(Coding::Zstd, &data).unwrap(), b"one two");
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(
        decode(Coding::Zstd, DecodeLimits::default(), &bytes).unwrap(),
        b"one two"
    );
    // A window over 8 MiB (RFC 9659) is refused.
    let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
    e.window_log(24).unwrap();
    e.write_all(&text(20 << 20)).unwrap();
    let big = e.finish().unwrap();
    let err = decode_all(Coding::Zstd, &big).map(|b| b.len()).unwrap_err();
    assert!(err.to_string().contains("frame header"), "{err}");
    // A frame that names a dictionary is refused: the same frame with a dictionary ID.
    let plain = zstd(&body);
    let descriptor = plain[4];
    assert_eq!(
        descriptor & 0x23,
        0,
        "a frame with a window descriptor and no dictionary"
    );
    let mut with_dict = plain[..4].to_vec();
    with_dict.extend_from_slice(&[descriptor | 0x01, plain[5], 0x2a]);
    with_dict.extend_from_slice(&plain[6..]);
    let err = decode_all(Coding::Zstd, &with_dict)
        .map(|b| b.len())
        .unwrap_err();
    assert!(err.to_string().contains("dictionary"), "{err}");
    // A block header that claims more than 128 KiB is refused before its bytes are buffered.
    let mut oversized = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00];
    let header = (200_000u32 << 3) | 1;
    oversized.extend_from_slice(&header.to_le_bytes()[..3]);
    let mut d = Decoder::new(Coding::Zstd, DecodeLimits::default());
    let err = d.push(&oversized, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("128 KiB"), "{err}");
    // Frames without the optional content checksum decode (nothing to check them against).
    let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(false).unwrap();
    e.write_all(&body).unwrap();
    let unchecked = e.finish().unwrap();
    assert_eq!(unchecked[4] & 0x04, 0, "no checksum flag");
    assert_eq!(decode_all(Coding::Zstd, &unchecked).unwrap(), body);
}

#[test]
fn failure_is_final() {
    let mut d = Decoder::new(Coding::Gzip, DecodeLimits::default());
    let mut out = Vec::new();
    assert!(d.push(b"not gzip at all", &mut out).is_err());
    assert!(d.push(&gzip(b"x"), &mut out).is_err());
    assert!(d.finish(&mut out).is_err());
}

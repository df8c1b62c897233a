//! Tests of the streaming driver against the simulated Envoy of [`crate::testing::deliver`]:
//! every split, every chunk size, every ending, every coding gives the whole-body result or the
//! documented failure, and what reaches the client before a failure is correct output.

use super::*;
use crate::config::IntegrityPolicy;
use crate::decode::tests::encode;
use crate::decode::{Coding, DecodeLimits};
use crate::testing::{deliver, example_pairs, Delivered, Ending};
use ferry_testkit::Rng;

const ENDINGS: [Ending; 3] = [Ending::LastChunk, Ending::EmptyChunk, Ending::Trailers];
const CODINGS: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

fn pipeline() -> BodyRewriter {
    BodyRewriter::new(&example_pairs(), IntegrityPolicy::DropSameSite).unwrap()
}

fn stream(html: bool, coding: Option<Coding>) -> BodyStream {
    BodyStream::new(
        BodyKind::text(html),
        coding.map(|c| Decoder::new(c, DecodeLimits::default())),
    )
}

/// The whole plain body rewritten in one pass.
fn whole(p: &BodyRewriter, html: bool, body: &[u8]) -> Vec<u8> {
    let d = deliver(p, stream(html, None), &[body], Ending::LastChunk);
    assert_eq!(d.failure, None);
    d.body
}

/// The bytes a body ending in trailers cannot end with: ones the rewriter must hold.
fn ends_undecided(p: &BodyRewriter, html: bool, body: &[u8]) -> bool {
    let mut out = Vec::new();
    let step = p.step(Default::default(), body, false, html, &mut out);
    step.consumed < body.len()
}

/// Checks one delivery against the whole-body result: equal, or (only with trailers after an
/// undecided end) a visible failure after a correct prefix.
fn check(got: &Delivered, want: &[u8], undecided_end: bool, ending: Ending, what: &str) {
    match &got.failure {
        None => assert!(
            got.body == want,
            "{what}: {:?}",
            String::from_utf8_lossy(&got.body)
        ),
        Some(Failure::TrailersAfterUndecided { held }) => {
            assert!(
                ending == Ending::Trailers && undecided_end,
                "{what}: {held}"
            );
            assert!(want.starts_with(&got.body), "{what}: not a prefix");
        }
        Some(other) => panic!("{what}: {other}"),
    }
    if ending == Ending::Trailers && undecided_end {
        assert!(got.failure.is_some(), "{what}: an undecided end must fail");
    }
}

const CASES: &[&str] = &[
    "",
    "plain text, no names\n",
    "see https://www.example.com/x, not example.community.\n",
    "ends with a name example.com",
    "ends with a prefix exa",
    "ends with an escape https%3A%2F",
    "{\"u\":\"https:\\/\\/example.com\\/p\"}",
    "<script src=\"/a.js\" integrity=\"sha384-x\"></script><p>example.com</p>\n",
    "<p>ends in a tag</p><script src=\"https://example.com/a.js\" integrity=\"x\"",
    "//img.examplecdn.net/a.png and cdn.examplecdn.net.",
];

#[test]
fn every_split_every_ending_plain() {
    let p = pipeline();
    for html in [false, true] {
        for case in CASES {
            let body = case.as_bytes();
            let want = whole(&p, html, body);
            let undecided = ends_undecided(&p, html, body);
            for ending in ENDINGS {
                for cut in 0..=body.len() {
                    let got = deliver(
                        &p,
                        stream(html, None),
                        &[&body[..cut], &body[cut..]],
                        ending,
                    );
                    check(
                        &got,
                        &want,
                        undecided,
                        ending,
                        &format!("{case:?} cut {cut}"),
                    );
                }
                let bytes: Vec<&[u8]> = body.chunks(1).collect();
                let got = deliver(&p, stream(html, None), &bytes, ending);
                check(&got, &want, undecided, ending, &format!("{case:?} bytes"));
            }
        }
    }
}

#[test]
fn every_split_every_ending_encoded() {
    let p = pipeline();
    let body = format!("{}\n", CASES.join(" | "));
    let want = whole(&p, true, body.as_bytes());
    let undecided = ends_undecided(&p, true, body.as_bytes());
    for coding in CODINGS {
        let encoded = encode(coding, body.as_bytes());
        for ending in ENDINGS {
            for cut in 0..=encoded.len() {
                let got = deliver(
                    &p,
                    stream(true, Some(coding)),
                    &[&encoded[..cut], &encoded[cut..]],
                    ending,
                );
                check(
                    &got,
                    &want,
                    undecided,
                    ending,
                    &format!("{coding} cut {cut}"),
                );
                assert_eq!(got.stats.encoded_in, encoded.len() as u64);
            }
        }
    }
}

#[test]
fn an_unchanged_chunk_is_kept_and_a_changed_one_replaced() {
    let p = pipeline();
    let mut s = stream(false, None);
    assert_eq!(s.on_chunk(&p, b"nothing to see\n", false), Plan::Keep);
    assert_eq!(
        s.on_chunk(&p, b"go to example.com/x ", false),
        Plan::Replace(b"go to example.cn/x ")
    );
    // An undecided end is cut off and carried, never held by Envoy.
    assert_eq!(s.on_chunk(&p, b"and exam", false), Plan::Replace(b"and "));
    assert_eq!(s.held(), 4);
    assert_eq!(
        s.on_chunk(&p, b"ple.com.\n", true),
        Plan::Replace(b"example.cn.\n")
    );
    assert_eq!(s.held(), 0);
    let stats = s.stats();
    assert_eq!(stats.matches, 2);
    assert_eq!(stats.bytes_in, 15 + 20 + 8 + 9);
}

#[test]
fn trailers_after_an_undecided_end_fail_visibly() {
    let p = pipeline();
    let mut s = stream(false, None);
    assert_eq!(
        s.on_chunk(&p, b"visit example.com", false),
        Plan::Replace(b"visit ")
    );
    assert_eq!(
        s.on_trailers(),
        Err(Failure::TrailersAfterUndecided { held: 11 })
    );
    // A decided end is fine.
    let mut s = stream(false, None);
    assert_eq!(s.on_chunk(&p, b"visit example.com\n", false), {
        Plan::Replace(b"visit example.cn\n")
    });
    assert_eq!(s.on_trailers(), Ok(()));
}

#[test]
fn corrupt_or_truncated_encoded_bodies_fail_after_a_correct_prefix() {
    let p = pipeline();
    let body: Vec<u8> = "<a href=\"https://www.example.com/\">x</a>\n"
        .repeat(4000)
        .into_bytes();
    let want = whole(&p, true, &body);
    for coding in CODINGS {
        let encoded = encode(coding, &body);
        let truncated = &encoded[..encoded.len() * 3 / 4];
        let chunks: Vec<&[u8]> = truncated.chunks(1000).collect();
        for ending in ENDINGS {
            let got = deliver(&p, stream(true, Some(coding)), &chunks, ending);
            let failure = got
                .failure
                .unwrap_or_else(|| panic!("{coding}: no failure"));
            assert!(matches!(failure, Failure::Decode(_)), "{coding}: {failure}");
            assert!(
                want.starts_with(&got.body),
                "{coding}: wrong bytes released"
            );
        }
        // A body that is not in the coding at all fails before anything is released (except
        // for brotli, whose first bytes may happen to decode).
        let got = deliver(&p, stream(true, Some(coding)), &[&body], Ending::LastChunk);
        assert!(got.failure.is_some(), "{coding}");
    }
}

#[test]
fn a_bomb_fails_without_its_full_size() {
    let p = pipeline();
    let zeros = vec![b'a'; 64 << 20];
    let bomb = encode(Coding::Gzip, &zeros);
    let chunks: Vec<&[u8]> = bomb.chunks(16 * 1024).collect();
    let got = deliver(
        &p,
        stream(false, Some(Coding::Gzip)),
        &chunks,
        Ending::LastChunk,
    );
    let Some(Failure::Decode(e)) = &got.failure else {
        panic!("{:?}", got.failure);
    };
    assert!(e.is_limit(), "{e}");
    assert!(got.body.len() < 64 << 20);
    assert!(got.body.iter().all(|&b| b == b'a'));
}

#[test]
fn random_bodies_chunkings_codings_and_endings() {
    let p = pipeline();
    let pieces = [
        "example.com",
        "www.example.com",
        "examplecdn.net",
        "example.co",
        "exa",
        ".",
        "/",
        "%2F",
        "%3a",
        "\\/",
        "<script src=\"/s.js\" integrity=\"x\">",
        "<link href=\"//example.com/a.css\" integrity=y>",
        "<",
        ">",
        "\"",
        " ",
        "\n",
        "m",
        "-",
        "_",
        "community",
        "integrity",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let mut body = Vec::new();
        for _ in 0..rng.below(40) {
            body.extend_from_slice(pieces[rng.index(pieces.len())].as_bytes());
        }
        let html = rng.below(2) == 0;
        let coding = match rng.below(6) {
            0 => Some(Coding::Gzip),
            1 => Some(Coding::Brotli),
            2 => Some(Coding::Zstd),
            3 => Some(Coding::Deflate),
            _ => None,
        };
        let wire = match coding {
            Some(c) => encode(c, &body),
            None => body.clone(),
        };
        let mut chunks = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = (1 + rng.index(24)).min(rest.len());
            chunks.push(&rest[..n]);
            rest = &rest[n..];
        }
        let ending = ENDINGS[rng.index(3)];
        let want = whole(&p, html, &body);
        let undecided = ends_undecided(&p, html, &body);
        let got = deliver(&p, stream(html, coding), &chunks, ending);
        check(
            &got,
            &want,
            undecided,
            ending,
            &format!(
                "round {round}: {:?} {coding:?}",
                String::from_utf8_lossy(&body)
            ),
        );
    }
}

#[test]
fn large_chunks_of_any_size_stream_with_a_small_carry() {
    let p = pipeline();
    let unit = "<a href=\"https://www.example.com/p\">example.community</a> example.co";
    let body = unit.repeat((4 << 20) / unit.len()).into_bytes();
    let want = whole(&p, true, &body);
    for size in [1, 7, 4096, 16 * 1024 + 3, 65536, 1 << 20, 3 << 20] {
        if size == 1 {
            // One-byte chunks over 4 MiB are slow; a prefix is enough.
            let head = &body[..20_000];
            let chunks: Vec<&[u8]> = head.chunks(1).collect();
            let got = deliver(&p, stream(true, None), &chunks, Ending::LastChunk);
            assert!(got.body == whole(&p, true, head));
            continue;
        }
        let chunks: Vec<&[u8]> = body.chunks(size).collect();
        let got = deliver(&p, stream(true, None), &chunks, Ending::LastChunk);
        assert_eq!(got.failure, None);
        assert!(got.body == want, "chunks of {size}");
        assert_eq!(got.stats.bytes_in, body.len() as u64);
        assert_eq!(got.stats.bytes_out, want.len() as u64);
    }
}

#[test]
fn a_large_decoded_chunk_does_not_stay_allocated() {
    // One compressed chunk that decodes to 1 MiB: while the callback runs the stream needs it,
    // afterwards it keeps no more than its scratch allowance.
    let p = pipeline();
    let text = "<p>https://www.example.com/a</p>\n".repeat(32 * 1024);
    let wire = encode(Coding::Gzip, text.as_bytes());
    let mut s = stream(false, Some(Coding::Gzip));
    let (first, rest) = wire.split_at(wire.len() / 2);
    let mut body = Vec::new();
    for (chunk, end) in [(first, false), (rest, true)] {
        match s.on_chunk(&p, chunk, end) {
            Plan::Replace(bytes) => body.extend_from_slice(bytes),
            other => panic!("unexpected plan {other:?}"),
        }
        assert!(s.retained() > SCRATCH_KEEP, "the test needs a large chunk");
        s.shrink();
        let limit = if end { 0 } else { 3 * SCRATCH_KEEP };
        assert!(s.retained() <= limit, "{} bytes kept", s.retained());
    }
    assert_eq!(body, whole(&p, false, text.as_bytes()));
}

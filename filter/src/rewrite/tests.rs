//! Tests of the rewrite engine: a table of cases, every split of every case, and a differential
//! test against a deliberately naive reference implementation on random inputs.

use super::*;
use crate::body::BodyRewriter;
use crate::config::IntegrityPolicy;
use crate::stream::BodyStream;
use crate::testing::{deliver, Ending, Rng};

fn pairs() -> Vec<DomainPair> {
    let mut pairs = crate::testing::example_pairs();
    pairs.push(DomainPair {
        origin: "static.test".into(),
        mirror: "s.example.org".into(),
        subdomains: false,
    });
    pairs
}

fn rewriter() -> Rewriter {
    Rewriter::new(&pairs()).unwrap()
}

fn whole(rw: &Rewriter, input: &[u8]) -> Vec<u8> {
    rw.rewrite_value(input).unwrap_or_else(|| input.to_vec())
}

/// The domain rewriter alone (no integrity stage), streamed by the driver.
fn pipeline() -> BodyRewriter {
    BodyRewriter::new(&pairs(), IntegrityPolicy::Keep).unwrap()
}

fn streamed(p: &BodyRewriter, chunks: &[&[u8]]) -> Vec<u8> {
    let stream = BodyStream::new(false, None);
    let got = deliver(p, stream, chunks, Ending::LastChunk);
    assert_eq!(got.failure, None);
    got.body
}

/// (input, expected output)
const CASES: &[(&str, &str)] = &[
    ("", ""),
    ("example.com", "example.cn"),
    ("https://example.com/", "https://example.cn/"),
    ("https://EXAMPLE.Com/x", "https://example.cn/x"),
    (
        "<a href=\"https://www.example.com/a?b=c\">",
        "<a href=\"https://www.example.cn/a?b=c\">",
    ),
    ("//img.examplecdn.net/i.png", "//img.cdn.example.cn/i.png"),
    (
        "mail me at info@example.com.",
        "mail me at info@example.cn.",
    ),
    ("example.com.", "example.cn."),
    ("example.com. Next", "example.cn. Next"),
    ("example.com:8443/x", "example.cn:8443/x"),
    ("(example.com)", "(example.cn)"),
    (
        "example.com,example.com;example.com",
        "example.cn,example.cn;example.cn",
    ),
    // Label boundaries: these stay.
    ("example.community", "example.community"),
    ("myexample.com", "myexample.com"),
    ("my-example.com", "my-example.com"),
    ("example.com-shop.org", "example.com-shop.org"),
    ("example.com_x", "example.com_x"),
    ("example.com.au", "example.com.au"),
    ("example.comexample.com", "example.comexample.com"),
    ("example.co", "example.co"),
    ("xexample.com", "xexample.com"),
    ("example.com.-", "example.com.-"),
    ("example.com.\"", "example.cn.\""),
    ("_example.com", "_example.cn"),
    // Subdomains only where allowed.
    ("www.static.test", "www.static.test"),
    ("static.test/x", "s.example.org/x"),
    ("a.b.c.example.com", "a.b.c.example.cn"),
    // Escaped forms.
    ("https:\\/\\/example.com\\/x", "https:\\/\\/example.cn\\/x"),
    (
        "https%3A%2F%2Fexample.com%2Fx",
        "https%3A%2F%2Fexample.cn%2Fx",
    ),
    (
        "https%3a%2f%2fwww.example.com",
        "https%3a%2f%2fwww.example.cn",
    ),
    ("u%40example.com", "u%40example.cn"),
    ("%3Aexample.com", "%3Aexample.cn"),
    ("%2Gexample.com", "%2Gexample.com"),
    ("2Fexample.com", "2Fexample.com"),
    // Bytes that are not UTF-8 are boundaries like any other non-label byte.
    ("\u{e9}example.com\u{e9}", "\u{e9}example.cn\u{e9}"),
    // Longest domain first, and a refused long match does not hide a shorter one.
    ("examplecdn.net", "cdn.example.cn"),
    ("xexamplecdn.net.example.com", "xexamplecdn.net.example.cn"),
    (
        "the mirror example.cn is left alone",
        "the mirror example.cn is left alone",
    ),
];

#[test]
fn table() {
    let rw = rewriter();
    for (input, want) in CASES {
        let got = whole(&rw, input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), *want, "rewriting {input:?}");
    }
}

#[test]
fn invalid_utf8_passes() {
    let rw = rewriter();
    let input = b"\xff\xfeexample.com\x80 example.community \xc3";
    assert_eq!(
        whole(&rw, input),
        b"\xff\xfeexample.cn\x80 example.community \xc3"
    );
}

/// Every case split into two chunks at every offset, and into one-byte chunks, gives exactly
/// the whole-buffer result.
#[test]
fn split_at_every_offset_equals_whole() {
    let p = pipeline();
    for (input, want) in CASES {
        let input = input.as_bytes();
        for cut in 0..=input.len() {
            let got = streamed(&p, &[&input[..cut], &input[cut..]]);
            assert_eq!(
                String::from_utf8_lossy(&got),
                *want,
                "{:?} split at {cut}",
                String::from_utf8_lossy(input)
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(String::from_utf8_lossy(&streamed(&p, &bytes)), *want);
    }
}

#[test]
fn body_ending_on_a_partial_match_is_flushed() {
    let rw = rewriter();
    for tail in [
        "exa",
        "example.co",
        "example.com",
        "example.com.",
        "%2",
        "%2F",
    ] {
        let body = format!("see https://example.com/ or {tail}");
        let want = format!(
            "see https://example.cn/ or {}",
            whole(&rw, tail.as_bytes()).escape_ascii()
        );
        let got = streamed(&pipeline(), &[body.as_bytes()]);
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
}

#[test]
fn hold_back_is_minimal() {
    let rw = rewriter();
    let mut out = Vec::new();
    // A tail that cannot start a match at a label boundary is not held.
    let p = rw.rewrite_chunk(Context::default(), b"some text", false, &mut out);
    assert_eq!(p.consumed, 9);
    let p = rw.rewrite_chunk(Context::default(), b"myexa", false, &mut out);
    assert_eq!(p.consumed, 5, "'exa' after 'my' can never match");
    // A possible start is held.
    let p = rw.rewrite_chunk(Context::default(), b"see exa", false, &mut out);
    assert_eq!(p.consumed, 4);
    // A full match waiting for the byte that decides its end is held from its start.
    let p = rw.rewrite_chunk(Context::default(), b"go to example.com", false, &mut out);
    assert_eq!((p.consumed, p.matches), (6, 0));
    let p = rw.rewrite_chunk(Context::default(), b"go to example.com.", false, &mut out);
    assert_eq!(p.consumed, 6);
    assert!(out.is_empty(), "nothing written when nothing matched");
}

#[test]
fn context_carries_the_escape_across_chunks() {
    let rw = rewriter();
    let ctx = Context::default().advance(b"https%3A%2");
    assert_eq!(ctx.as_slice(), b"A%2");
    let ctx = ctx.advance(b"F");
    assert_eq!(ctx.as_slice(), b"%2F");
    let mut out = Vec::new();
    let p = rw.rewrite_chunk(ctx, b"example.com/", true, &mut out);
    assert_eq!(p.matches, 1);
    assert_eq!(out, b"example.cn/");
}

#[test]
fn eight_mebibytes_stream_with_bounded_hold() {
    let rw = rewriter();
    let unit = b"<a href=\"https://www.example.com/p\">example.community</a> example.co";
    let body: Vec<u8> = unit.iter().copied().cycle().take(8 << 20).collect();
    let want = whole(&rw, &body);
    let chunks: Vec<&[u8]> = body.chunks(16 * 1024 + 7).collect();
    let got = deliver(
        &pipeline(),
        BodyStream::new(false, None),
        &chunks,
        Ending::LastChunk,
    );
    assert_eq!(got.body.len(), want.len());
    assert!(got.body == want);
    assert!(got.stats.matches > 100_000);
}

// ---- differential test against a naive reference ----

/// The semantics spelled out byte by byte, with no automaton and no streaming.
fn reference(pairs: &[DomainPair], input: &[u8]) -> Vec<u8> {
    let label = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let mut out = Vec::new();
    let mut i = 0;
    'outer: while i < input.len() {
        let mut candidates: Vec<&DomainPair> = pairs
            .iter()
            .filter(|p| {
                input.len() - i >= p.origin.len()
                    && input[i..i + p.origin.len()].eq_ignore_ascii_case(p.origin.as_bytes())
            })
            .collect();
        candidates.sort_by_key(|p| std::cmp::Reverse(p.origin.len()));
        // Only the longest domain at a position is considered (leftmost-longest).
        if let Some(p) = candidates.first() {
            let end = i + p.origin.len();
            let before_ok = match i.checked_sub(1).map(|j| input[j]) {
                None => true,
                Some(b'.') => p.subdomains,
                Some(b) if label(b) => {
                    i >= 3 && {
                        let e = input[i - 3..i].to_ascii_lowercase();
                        e == b"%2f" || e == b"%3a" || e == b"%40"
                    }
                }
                Some(_) => true,
            };
            let after_ok = match input.get(end) {
                None => true,
                Some(&b) if label(b) || b == b'_' => false,
                Some(b'.') => !input.get(end + 1).is_some_and(|&b| label(b)),
                Some(_) => true,
            };
            if before_ok && after_ok {
                out.extend_from_slice(p.mirror.as_bytes());
                i = end;
                continue 'outer;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// A small deterministic generator (xorshift), so failures reproduce.
fn random_input(rng: &mut Rng) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"example.com",
        b"EXAMPLE.COM",
        b"intranet",
        b"INTRA",
        b"examplecdn.net",
        b"static.test",
        b"example",
        b".",
        b"-",
        b"_",
        b"/",
        b"%2F",
        b"%3a",
        b"%40",
        b"%2",
        b"www",
        b"a",
        b"com",
        b"x",
        b" ",
        b"\xff",
        b"\\/",
        b"example.co",
        b"net",
        b":",
    ];
    let n = rng.below(12);
    let mut v = Vec::new();
    for _ in 0..n {
        v.extend_from_slice(PIECES[rng.below(PIECES.len())]);
    }
    v
}

/// Both finders: every origin has a dot (the dot scan), and one origin is a single label
/// (the automaton).
fn pair_sets() -> Vec<Vec<DomainPair>> {
    let mut single_label = pairs();
    single_label.push(DomainPair {
        origin: "intranet".into(),
        mirror: "intranet.example.cn".into(),
        subdomains: true,
    });
    vec![pairs(), single_label]
}

#[test]
fn engine_matches_reference_on_random_inputs_and_splits() {
    for pairs in pair_sets() {
        let rw = Rewriter::new(&pairs).unwrap();
        let p = BodyRewriter::new(&pairs, IntegrityPolicy::Keep).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let input = random_input(&mut rng);
            let want = reference(&pairs, &input);
            assert_eq!(
                whole(&rw, &input),
                want,
                "whole: {:?}",
                String::from_utf8_lossy(&input)
            );
            let a = rng.below(input.len() + 1);
            let b = a + rng.below(input.len() - a + 1);
            let got = streamed(&p, &[&input[..a], &input[a..b], &input[b..]]);
            assert_eq!(
                got,
                want,
                "split {a}/{b}: {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn both_finders_agree_on_the_table() {
    let [dots, automaton] = pair_sets().try_into().unwrap();
    let (dots, automaton) = (
        Rewriter::new(&dots).unwrap(),
        Rewriter::new(&automaton).unwrap(),
    );
    assert!(matches!(dots.finder, Finder::Dots { .. }));
    assert!(matches!(automaton.finder, Finder::Automaton(_)));
    for (input, want) in CASES {
        assert_eq!(
            String::from_utf8_lossy(&whole(&automaton, input.as_bytes())),
            *want
        );
    }
    assert_eq!(
        whole(&automaton, b"http://intranet/x"),
        b"http://intranet.example.cn/x"
    );
    assert_eq!(whole(&dots, b"http://intranet/x"), b"http://intranet/x");
}

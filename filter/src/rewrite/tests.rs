//! Tests of the rewrite engine: a table of cases, every split of every case, and a differential
//! test against a deliberately naive reference implementation on random inputs.

use super::*;
use crate::body::BodyRewriter;
use crate::config::IntegrityPolicy;
use crate::domain::Direction;
use crate::stream::{BodyKind, BodyStream};
use crate::testing::{deliver, Ending};
use ferry_testkit::Rng;

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
    let stream = BodyStream::new(BodyKind::Text, None);
    let got = deliver(p, stream, chunks, Ending::LastChunk);
    assert_eq!(got.failure, None);
    got.body
}

/// (input, expected output)
const CASES: &[(&str, &str)] = &[
    ("", ""),
    ("example.com", "example.cn"),
    ("https://example.com/", "https://example.cn/"),
    // The replacement takes the case shape of what it replaces (mixed shapes: lowercase).
    ("https://EXAMPLE.Com/x", "https://example.cn/x"),
    ("HTTPS://WWW.EXAMPLE.COM/", "HTTPS://WWW.EXAMPLE.CN/"),
    ("Example.com is our shop", "Example.cn is our shop"),
    (
        "<a href=\"https://www.example.com/a?b=c\">",
        "<a href=\"https://www.example.cn/a?b=c\">",
    ),
    ("//img.examplecdn.net/i.png", "//img.cdn.example.cn/i.png"),
    // E-mail addresses are data: their domain stays. A URL's user-info is not an address.
    (
        "mail me at info@example.com.",
        "mail me at info@example.com.",
    ),
    ("mailto:help@example.com", "mailto:help@example.com"),
    (
        "email=admin%40example.com&x=1",
        "email=admin%40example.com&x=1",
    ),
    ("a/b@example.com", "a/b@example.com"),
    ("https://user@example.com/", "https://user@example.cn/"),
    (
        "https://user:pw@www.example.com/",
        "https://user:pw@www.example.cn/",
    ),
    (
        "https%3A%2F%2Fuser%40example.com%2F",
        "https%3A%2F%2Fuser%40example.cn%2F",
    ),
    (
        "https://x.org/?u=a@example.com",
        "https://x.org/?u=a@example.com",
    ),
    // In a form, an encoded URL before an address does not make the address a user-info.
    (
        "next=https%3A%2F%2Fwww.example.com%2Fadmin%2F&email=a%40example.com",
        "next=https%3A%2F%2Fwww.example.cn%2Fadmin%2F&email=a%40example.com",
    ),
    (
        "u=https%3A%2F%2Fx.org&email=a%40example.com",
        "u=https%3A%2F%2Fx.org&email=a%40example.com",
    ),
    (
        "u=https%3A%2F%2Fx.org%3Fq%3Da%40example.com",
        "u=https%3A%2F%2Fx.org%3Fq%3Da%40example.com",
    ),
    (
        "https%3A%2F%2Fuser%3Apw%40example.com%2F",
        "https%3A%2F%2Fuser%3Apw%40example.cn%2F",
    ),
    ("@example.com", "@example.cn"),
    (" @example.com", " @example.cn"),
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
    ("u%40example.com", "u%40example.com"),
    ("%40example.com", "%40example.cn"),
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
    assert_eq!(ctx.as_slice(), b"https%3A%2");
    let ctx = ctx.advance(b"F");
    assert_eq!(ctx.as_slice(), b"https%3A%2F");
    let long = vec![b'x'; 2 * CONTEXT];
    assert_eq!(Context::default().advance(&long).as_slice().len(), CONTEXT);
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
        BodyStream::new(BodyKind::Text, None),
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
            if before_ok && after_ok && !reference_is_email(input, i) {
                out.extend_from_slice(&reference_shape(&input[i..end], p.mirror.as_bytes()));
                i = end;
                continue 'outer;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The e-mail rule, spelled out: `@` or `%40` before `at`, a local-part character before
/// that, and the run of user-info characters ending there not preceded by `//` or `%2F%2F`
/// (the run stops at `&` and at an encoded `/`, `?` or `#`: `%2F`, `%3F`, `%23`).
fn reference_is_email(input: &[u8], at: usize) -> bool {
    let head = &input[..at];
    let sign = if head.ends_with(b"@") {
        1
    } else if head.len() >= 3 && head[head.len() - 3..].eq_ignore_ascii_case(b"%40") {
        3
    } else {
        return false;
    };
    let local = &head[..head.len() - sign];
    let local_byte = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b);
    let userinfo_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$'()*+,;=:".contains(&b);
    let ends_with_escape = |text: &[u8], escape: &[u8]| {
        text.len() >= escape.len() && text[text.len() - escape.len()..].eq_ignore_ascii_case(escape)
    };
    if !local.last().is_some_and(|&b| local_byte(b)) {
        return false;
    }
    let mut end = local.len();
    loop {
        let so_far = &local[..end];
        let url = so_far.ends_with(b"//")
            || (so_far.len() >= 6 && so_far[so_far.len() - 6..].eq_ignore_ascii_case(b"%2F%2F"));
        if url {
            return false;
        }
        if [b"%2F", b"%3F", b"%23"]
            .iter()
            .any(|escape| ends_with_escape(so_far, *escape))
        {
            return true;
        }
        if local.len() - end >= 128 {
            return true;
        }
        match so_far.last() {
            Some(&b) if userinfo_byte(b) => end -= 1,
            _ => return true,
        }
    }
}

/// The case shape rule, spelled out.
fn reference_shape(matched: &[u8], replacement: &[u8]) -> Vec<u8> {
    let has_upper = matched.iter().any(u8::is_ascii_uppercase);
    let has_lower = matched.iter().any(u8::is_ascii_lowercase);
    let capitalised =
        matched[0].is_ascii_uppercase() && matched[1..].iter().all(|b| !b.is_ascii_uppercase());
    let mut out = replacement.to_vec();
    if has_upper && !has_lower {
        out.make_ascii_uppercase();
    } else if capitalised {
        out[0].make_ascii_uppercase();
    }
    out
}

/// A random input of mirror and origin names, separators and escapes.
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
        b"@",
        b"user",
        b"//",
        b"%2F%2F",
        b"Example.com",
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
        v.extend_from_slice(PIECES[rng.index(PIECES.len())]);
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
            let a = rng.index(input.len() + 1);
            let b = a + rng.index(input.len() - a + 1);
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

/// The round-trip rule: what the response rewriter turns into mirror names, the request
/// rewriter turns back, byte for byte, for text that names no mirror host itself (the
/// mirror's names are then ambiguous) and writes names in one of the case shapes kept.
#[test]
fn what_the_mirror_shows_comes_back_as_the_origin_wrote_it() {
    let pairs = vec![
        DomainPair {
            origin: "example.com".into(),
            mirror: "example.cn".into(),
            subdomains: true,
        },
        DomainPair {
            origin: "static.test".into(),
            mirror: "s.example.org".into(),
            subdomains: false,
        },
    ];
    let out = Rewriter::build(&pairs, Direction::OriginToMirror, EmailPolicy::Keep).unwrap();
    let back = Rewriter::build(&pairs, Direction::MirrorToOrigin, EmailPolicy::Keep).unwrap();
    const PIECES: &[&[u8]] = &[
        b"example.com",
        b"EXAMPLE.COM",
        b"Example.com",
        b"www.",
        b"static.test",
        b"https://",
        b"user@",
        b"%40",
        b"%2F",
        b"%3A",
        b"\\/",
        b"@",
        b".",
        b"-",
        b"/",
        b"com",
        b"x",
        b" ",
        b"example",
        b"example.co",
        b"\xff",
        b"=",
        b"&",
        b"mailto:",
    ];
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let mut input = Vec::new();
        for _ in 0..rng.below(14) {
            input.extend_from_slice(PIECES[rng.index(PIECES.len())]);
        }
        let shown = whole(&out, &input);
        let returned = whole(&back, &shown);
        assert_eq!(
            String::from_utf8_lossy(&returned),
            String::from_utf8_lossy(&input),
            "shown as {:?}",
            String::from_utf8_lossy(&shown)
        );
    }
    // A mirror name the origin wrote itself cannot be told apart from one the filter made.
    let shown = whole(&out, b"our mirror is example.cn");
    assert_eq!(whole(&back, &shown), b"our mirror is example.com");
}

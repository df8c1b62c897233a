//! Tests of `integrity` stripping: which tags lose the attribute and which keep it, tags cut
//! across chunks, and the whole HTML pipeline against itself split at every offset.

use super::*;
use crate::body::BodyRewriter;
use crate::config::Config;
use crate::stream::{BodyKind, BodyStream};
use crate::testing::{deliver, Ending};

fn config(extra: &str) -> Config {
    let json = format!(
        r#"{{"domains": [
            {{"origin": "example.com", "mirror": "example.cn", "subdomains": true}},
            {{"origin": "examplecdn.net", "mirror": "cdn.example.cn"}}]{extra}}}"#
    );
    Config::from_json(json.as_bytes()).unwrap()
}

fn hosts() -> HostMap {
    HostMap::new(&config("").domains)
}

fn strip_all(html: &str) -> String {
    let mut out = Vec::new();
    match IntegrityStripper::new().strip(html.as_bytes(), true, &hosts(), &mut out) {
        None => html.to_string(),
        Some(s) => {
            assert_eq!(s.consumed, html.len());
            String::from_utf8(out).unwrap()
        }
    }
}

const SRI: &str =
    r#"integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC""#;

#[test]
fn same_site_tags_lose_integrity() {
    let cases: &[(&str, &str)] = &[
        // Relative, root-relative, absolute and scheme-relative URLs of configured hosts.
        (
            r#"<script src="/app.js" {SRI} crossorigin="anonymous"></script>"#,
            r#"<script src="/app.js" crossorigin="anonymous"></script>"#,
        ),
        (
            r#"<script src="app.js" {SRI}></script>"#,
            r#"<script src="app.js"></script>"#,
        ),
        (
            r#"<script {SRI} src="https://www.example.com/a.js"></script>"#,
            r#"<script src="https://www.example.com/a.js"></script>"#,
        ),
        (
            r#"<script src="https://example.cn/a.js" {SRI}></script>"#,
            r#"<script src="https://example.cn/a.js"></script>"#,
        ),
        (
            r#"<script src="//examplecdn.net/a.js" {SRI}></script>"#,
            r#"<script src="//examplecdn.net/a.js"></script>"#,
        ),
        (
            r#"<script src="HTTPS://EXAMPLE.COM:443/a.js" {SRI}></script>"#,
            r#"<script src="HTTPS://EXAMPLE.COM:443/a.js"></script>"#,
        ),
        (
            r#"<link rel="stylesheet" href="/s.css" {SRI}>"#,
            r#"<link rel="stylesheet" href="/s.css">"#,
        ),
        (
            r#"<LINK REL=stylesheet HREF=/s.css Integrity=sha256-abc>"#,
            r#"<LINK REL=stylesheet HREF=/s.css>"#,
        ),
        (
            r#"<script src='/a.js' integrity='sha256-x'/>"#,
            r#"<script src='/a.js'/>"#,
        ),
        (
            r#"<script	src="/a.js"
            integrity = "sha256-x" defer></script>"#,
            r#"<script	src="/a.js" defer></script>"#,
        ),
        // Minified: no space after a quoted value; the tag name must not glue to what follows.
        (
            r#"<script integrity="sha384-x"src="/a.js"></script>"#,
            r#"<script src="/a.js"></script>"#,
        ),
        (
            r#"<link integrity=".."href="/a.css" rel=stylesheet>"#,
            r#"<link href="/a.css" rel=stylesheet>"#,
        ),
        (
            r#"<script src="/a.js"integrity="x"defer></script>"#,
            r#"<script src="/a.js"defer></script>"#,
        ),
        // An unterminated quote ends at the tag's `>`, which stays.
        (
            r#"<link href=/a.css integrity="sha25>x"#,
            r#"<link href=/a.css>x"#,
        ),
        // Every integrity attribute goes, not just the first.
        (
            r#"<script src=/a.js integrity=x integrity=y></script>"#,
            r#"<script src=/a.js></script>"#,
        ),
    ];
    for (input, want) in cases {
        let input = input.replace("{SRI}", SRI);
        assert_eq!(strip_all(&input), *want, "{input}");
    }
}

#[test]
fn other_tags_keep_it() {
    let cases: &[&str] = &[
        r#"<script src="https://cdnjs.cloudflare.com/a.js" {SRI}></script>"#,
        r#"<script src="//evil.test/a.js" {SRI}></script>"#,
        // Browsers read `\` as `/` and drop tabs and newlines in http(s) URLs.
        r#"<script src="/\cdn.other.test/a.js" {SRI}></script>"#,
        r#"<script src="\\cdn.other.test/a.js" {SRI}></script>"#,
        r#"<script src="/
/cdn.other.test/a.js" {SRI}></script>"#,
        r#"<script src="https://example.com.evil.test/a.js" {SRI}></script>"#,
        r#"<script src="https://example.com@evil.test/a.js" {SRI}></script>"#,
        r#"<script src="data:text/javascript,1" {SRI}></script>"#,
        r#"<link rel="stylesheet" href="https://fonts.test/f.css" {SRI}>"#,
        // Without a URL the attribute does nothing; leave it.
        r#"<script {SRI}>inline()</script>"#,
        // Not an attribute of a script or link tag.
        r#"<img src="/a.png" {SRI}>"#,
        r#"<p>Subresource integrity="sha256-x" explained; see <a href="/sri">/sri</a></p>"#,
        r#"<scripts src="/a.js" {SRI}>"#,
        r#"<script src="/a.js" data-integrity="sha256-x"></script>"#,
        // The documented limits: an all-capitals spelling is not searched for, and a `>` inside
        // an attribute value ends the tag early.
        r#"<LINK REL=stylesheet HREF=/s.css INTEGRITY=sha256-abc>"#,
        r#"<script type="module" src="/a.js" data-x="a>b" {SRI}></script>"#,
    ];
    for input in cases {
        let input = input.replace("{SRI}", SRI);
        assert_eq!(strip_all(&input), input);
    }
}

#[test]
fn a_tag_split_across_chunks_is_held() {
    let s = IntegrityStripper::new();
    let h = hosts();
    let cases: &[(&str, usize)] = &[
        ("<p>text</p><script src=\"/a.js\" integ", 11),
        ("<p>text</p><scr", 11),
        ("<p>text</p><", 11),
        ("<p>text</p><LINK", 11),
        ("<p>text</p><li", 11),
        // Tags that cannot become a script or link tag are not held.
        ("<p>text</p><lis", 15),
        ("<p>text</p><p class=", 20),
        ("<p>text</p><script></script>", 28),
        ("<p>text</p>", 11),
    ];
    for (input, consumed) in cases {
        let mut out = Vec::new();
        let got = s
            .strip(input.as_bytes(), false, &h, &mut out)
            .map_or(input.len(), |r| r.consumed);
        assert_eq!(got, *consumed, "{input}");
    }
    // A tag longer than MAX_TAG is passed on rather than held.
    let long = format!("<script src=\"/a.js\" data-x=\"{}\"", "x".repeat(MAX_TAG));
    let mut out = Vec::new();
    assert_eq!(s.strip(long.as_bytes(), false, &h, &mut out), None);
}

/// The page of the demo site and the tests, with every kind of tag and domain mixed in.
fn page() -> String {
    format!(
        r#"<!DOCTYPE html><html><head>
<link rel="stylesheet" href="https://www.example.com/s.css" {SRI} crossorigin>
<link rel="stylesheet" href="https://cdn.other.test/lib.css" {SRI}>
<script src="/app.js" {SRI}></script>
<script src="https://examplecdn.net/lib.js" integrity="sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" crossorigin="anonymous"></script>
</head><body><a href="https://example.com/page">example.com</a>
<p>integrity is a word; so is example.com.</p>
<script>var u = "https://example.com/api";</script>
</body></html>"#
    )
}

fn pipeline(extra: &str) -> BodyRewriter {
    let c = config(extra);
    BodyRewriter::new(&c.domains, c.integrity).unwrap()
}

/// The HTML (or not) pipeline over `chunks`: (output, integrity attributes removed, matches).
fn run(p: &BodyRewriter, html: bool, chunks: &[&[u8]]) -> (String, u64, u64) {
    let got = deliver(
        p,
        BodyStream::new(BodyKind::text(html), None),
        chunks,
        Ending::LastChunk,
    );
    assert_eq!(got.failure, None);
    let out = String::from_utf8(got.body).unwrap();
    (out, got.stats.integrity_removed, got.stats.matches)
}

#[test]
fn pipeline_strips_then_rewrites() {
    let p = pipeline("");
    let page = page();
    let (out, removed, _) = run(&p, true, &[page.as_bytes()]);
    assert_eq!(removed, 3, "{out}");
    assert_eq!(out.matches("integrity=").count(), 1, "{out}");
    assert!(
        out.contains(r#"<link rel="stylesheet" href="https://cdn.other.test/lib.css" integrity="#),
        "{out}"
    );
    assert!(
        out.contains(r#"<link rel="stylesheet" href="https://www.example.cn/s.css" crossorigin>"#),
        "{out}"
    );
    assert!(
        out.contains(
            r#"<script src="https://cdn.example.cn/lib.js" crossorigin="anonymous"></script>"#
        ),
        "{out}"
    );
    assert!(!out.contains("example.com"), "{out}");

    // Not HTML, or "keep": untouched attributes.
    let (plain, _, _) = run(&p, false, &[page.as_bytes()]);
    assert_eq!(plain.matches("integrity=").count(), 4);
    let keep = pipeline(r#", "integrity": "keep""#);
    let (kept, _, _) = run(&keep, true, &[page.as_bytes()]);
    assert_eq!(kept.matches("integrity=").count(), 4);
}

/// Split into two chunks at every offset, and into one-byte chunks: the same output as whole.
#[test]
fn pipeline_split_at_every_offset() {
    let p = pipeline("");
    let page = page();
    let page = page.as_bytes();
    let whole = run(&p, true, &[page]);
    for split in 0..=page.len() {
        let got = run(&p, true, &[&page[..split], &page[split..]]);
        assert!(got == whole, "split at {split}: {}", got.0);
    }
    let bytes: Vec<&[u8]> = page.chunks(1).collect();
    assert!(run(&p, true, &bytes) == whole);
    let threes: Vec<&[u8]> = page.chunks(3).collect();
    assert!(run(&p, true, &threes) == whole);
}

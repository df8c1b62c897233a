//! Response bodies, origin -> mirror, through the minimal config: names rewritten on label
//! boundaries only, also JSON-escaped and percent-encoded; a name split across chunks found at
//! every offset; a body ending on a partial or undecided name flushed; huge bodies streamed in
//! bounded memory; which content types are rewritten; compressed responses (decoded, or passed
//! when Ferry cannot decode them); the framing of a rewritten body (no `Content-Length` or
//! `Accept-Ranges`, a weak `ETag`); trailers kept, and a reset when they come while a body's
//! end is undecided.
//!
//! In the submodules: `streaming_matrix`, every combination of protocols, codings, chunking and
//! endings, also through the US East node; `bad_bodies`, broken and hostile encoded bodies.
//! Related: every text type, byte ranges and event streams in `no_leaks`; request bodies in
//! `round_trip`; a browser loading a large page in `browser`.

mod bad_bodies;
mod streaming_matrix;

use std::io::Read;
use std::time::Duration;

use ferry_tests::client::Version;
use ferry_tests::{
    Client, Digest, Encoding, Envoy, EnvoyConfig, Generator, Origin, Reply, Request,
};

use crate::support::{ferry, ferry_with};

/// (origin text, what the visitor must get)
const BOUNDARIES: &[(&str, &str)] = &[
    ("https://example.com/", "https://example.cn/"),
    ("https://WWW.EXAMPLE.COM/x", "https://WWW.EXAMPLE.CN/x"),
    ("//img.examplecdn.net/a.png", "//img.cdn.example.cn/a.png"),
    ("mail info@example.com.", "mail info@example.com."),
    ("https://info@example.com/", "https://info@example.cn/"),
    ("example.community", "example.community"),
    ("myexample.com", "myexample.com"),
    ("example.com-shop.org", "example.com-shop.org"),
    ("example.com.au", "example.com.au"),
    ("example.com_x", "example.com_x"),
    (
        "{\"u\":\"https:\\/\\/example.com\\/p\"}",
        "{\"u\":\"https:\\/\\/example.cn\\/p\"}",
    ),
    (
        "?next=https%3A%2F%2Fexample.com%2F",
        "?next=https%3A%2F%2Fexample.cn%2F",
    ),
    (
        "?next=https%3a%2f%2fwww.example.com",
        "?next=https%3a%2f%2fwww.example.cn",
    ),
    ("the mirror example.cn stays", "the mirror example.cn stays"),
];

fn joined(pick: fn(&(&'static str, &'static str)) -> &'static str) -> String {
    BOUNDARIES.iter().map(pick).collect::<Vec<_>>().join("\n")
}

#[test]
fn bodies_are_rewritten_on_label_boundaries_only() {
    let origin = Origin::start();
    let input = joined(|c| c.0);
    let want = joined(|c| c.1);
    origin.route("/page.html", Reply::html(input.clone()).content_length());
    origin.route("/api.json", Reply::ok("application/json", input.clone()));
    origin.route(
        "/app.js",
        Reply::ok("text/javascript; charset=utf-8", input.clone()),
    );
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    for path in ["/page.html", "/api.json", "/app.js"] {
        let response = client.get("www.example.cn", path);
        assert_eq!(response.status, 200);
        for (line, (got, want)) in response.text().lines().zip(want.lines()).enumerate() {
            assert_eq!(got, want, "{path}, case {line}: {:?}", BOUNDARIES[line].0);
        }
        assert_eq!(response.text(), want, "{path}");
    }
    let matches_per_body = 7;
    assert_eq!(
        envoy.counter("ferry.body_matches"),
        Some(3 * matches_per_body)
    );
}

#[test]
fn a_domain_split_across_chunks_is_found_at_every_offset() {
    let text = "go to https://www.example.com/x, not example.community, or example.com.";
    let want = "go to https://www.example.cn/x, not example.community, or example.cn.";
    let origin = Origin::start();
    for cut in 1..text.len() {
        origin.route(
            &format!("/cut/{cut}"),
            Reply::html("")
                .chunks([&text[..cut], &text[cut..]])
                .chunk_delay(Duration::from_millis(5)),
        );
    }
    // One byte per chunk: every possible hold.
    origin.route(
        "/bytes",
        Reply::html("")
            .chunks(text.as_bytes().chunks(1).map(<[u8]>::to_vec))
            .chunk_delay(Duration::from_millis(1)),
    );
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    for cut in 1..text.len() {
        let response = client.get("www.example.cn", &format!("/cut/{cut}"));
        assert_eq!(response.text(), want, "split at {cut}");
    }
    let response = client.get("www.example.cn", "/bytes");
    assert_eq!(response.text(), want, "one byte per chunk");
}

#[test]
fn a_body_ending_on_a_partial_or_undecided_match_is_flushed() {
    let origin = Origin::start();
    let cases = [
        ("see example.co", "see example.co"),
        ("see exa", "see exa"),
        ("see https://example.com", "see https://example.cn"),
        ("see example.com.", "see example.cn."),
        ("see %2F", "see %2F"),
    ];
    for (i, (text, _)) in cases.iter().enumerate() {
        // The whole body in one chunk, and split just before its tail.
        origin.route(&format!("/one/{i}"), Reply::html(*text));
        origin.route(
            &format!("/two/{i}"),
            Reply::html("")
                .chunks([&text[..4], &text[4..]])
                .chunk_delay(Duration::from_millis(5)),
        );
    }
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    for (i, (text, want)) in cases.iter().enumerate() {
        for kind in ["one", "two"] {
            let response = client.get("www.example.cn", &format!("/{kind}/{i}"));
            assert_eq!(response.text(), *want, "{kind}: {text:?}");
        }
    }
}

/// A huge body streams through with every domain rewritten, with Envoy's memory bounded by the
/// chunk size (never the body), and never hitting Envoy's buffer limit (that would reset it).
fn huge_body(config: EnvoyConfig, len_mib: u64) {
    // Ends in a line break: the next block's filler must not complete a domain.
    let unit = " <a href=\"https://www.example.com/p\">example.community</a> example.co\n";
    let rewritten = " <a href=\"https://www.example.cn/p\">example.community</a> example.co\n";
    let source = Generator::text(7, 180, unit);
    let expected = Generator::text(7, 180, rewritten);
    let blocks = (len_mib << 20) / source.block_len();
    let origin = Origin::start();
    // 16 KiB + 3 chunks from the origin: domains straddle chunk boundaries all along.
    origin.route(
        "/huge",
        Reply::ok("text/html", "").generated(
            source.clone(),
            blocks * source.block_len(),
            16 * 1024 + 3,
        ),
    );
    let envoy = Envoy::start(&config.origin(origin.addr()));
    let baseline = envoy.rss_kib().expect("Envoy's RSS");
    let mut peak = baseline;
    let mut seen = 0u64;
    let streamed = Client::http1(envoy.listener_addr())
        .stream(&Request::get("www.example.cn", "/huge"), |chunk| {
            seen += chunk.len() as u64;
            // Sample Envoy's memory every few MiB while the body flows.
            if seen % (4 << 20) < chunk.len() as u64 {
                peak = peak.max(envoy.rss_kib().unwrap_or(0));
            }
        })
        .expect("the whole body arrives (a reset would fail here)");
    assert_eq!(streamed.status, 200);
    let want: Digest = expected.digest(blocks * expected.block_len());
    assert_eq!(streamed.digest, want, "rewritten body");
    assert_eq!(envoy.counter("ferry.body_matches"), Some(blocks));
    assert_eq!(
        envoy.counter("ferry.body_bytes_in"),
        Some(blocks * source.block_len())
    );
    for name in [
        "undecided_tail",
        "bad_encoding",
        "decode_limit",
        "host_error",
    ] {
        let counter = format!("ferry.bodies_reset_{name}");
        assert_eq!(envoy.counter(&counter), Some(0), "{counter}");
    }
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("Envoy RSS: {baseline} KiB at start, peak {peak} KiB while streaming {len_mib} MiB");
    assert!(
        growth_mib < 24,
        "Envoy grew by {growth_mib} MiB while streaming {len_mib} MiB: it buffers the body"
    );
}

#[test]
fn huge_bodies_stream_in_bounded_memory() {
    huge_body(EnvoyConfig::shipped(), 64);
}

#[test]
fn huge_bodies_stream_with_large_upstream_reads_too() {
    // 1 MiB upstream reads: chunks of any size are fine, since Envoy never holds one for Ferry.
    let config = EnvoyConfig::shipped().edit(|doc| {
        let cluster = &mut doc["static_resources"]["clusters"][0];
        cluster["per_connection_buffer_limit_bytes"] = 1_048_576.into();
    });
    huge_body(config, 16);
}

#[test]
fn other_content_types_pass_byte_for_byte() {
    let origin = Origin::start();
    let mut binary = b"\x89PNG\r\n\x1a\n https://example.com/ ".to_vec();
    binary.extend((0..=255u8).cycle().take(40_000));
    for (path, content_type) in [
        ("/a.png", "image/png"),
        ("/a.woff2", "font/woff2"),
        ("/a.zip", "application/zip"),
        ("/a.mp4", "video/mp4"),
        ("/none", ""),
    ] {
        let mut reply = Reply::new(200)
            .body(binary.clone())
            .header("etag", "\"b1\"")
            .content_length();
        if !content_type.is_empty() {
            reply = reply.header("content-type", content_type);
        }
        origin.route(path, reply);
    }
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    for path in ["/a.png", "/a.woff2", "/a.zip", "/a.mp4", "/none"] {
        let response = client.get("www.example.cn", path);
        assert_eq!(response.body.as_ref(), binary.as_slice(), "{path}");
        assert_eq!(
            response.header("content-length"),
            Some(binary.len().to_string().as_str()),
            "{path}"
        );
        assert_eq!(response.header("etag"), Some("\"b1\""), "{path}");
    }
    assert_eq!(envoy.counter("ferry.bodies_rewritten"), Some(0));
}

#[test]
fn configured_content_types_replace_the_defaults() {
    let origin = Origin::start();
    origin.route(
        "/a.json",
        Reply::ok("application/json", "https://example.com/"),
    );
    origin.route("/a.txt", Reply::ok("text/x-custom", "https://example.com/"));
    let config = r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                     "content_types": ["text/*"]}"#;
    let envoy = ferry_with(&origin, config);
    let client = Client::http1(envoy.listener_addr());
    assert_eq!(
        client.get("example.cn", "/a.json").text(),
        "https://example.com/"
    );
    assert_eq!(
        client.get("example.cn", "/a.txt").text(),
        "https://example.cn/"
    );
}

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .expect("a valid gzip stream");
    out
}

#[test]
fn bodies_in_a_coding_ferry_cannot_decode_are_never_rewritten_blindly() {
    let page = "<a href=\"https://www.example.com/\">home</a> ".repeat(50);
    let origin = Origin::start();
    for (path, coding) in [
        ("/compress", "compress"),
        ("/stacked", "gzip, br"),
        ("/dcb", "dcb"),
    ] {
        origin.route(
            path,
            Reply::html(page.clone())
                .header("content-encoding", coding)
                .content_length(),
        );
    }
    let envoy = Envoy::start(
        &EnvoyConfig::shipped()
            .without_compressor()
            .origin(origin.addr()),
    );
    let client = Client::http1(envoy.listener_addr());
    for (path, coding) in [
        ("/compress", "compress"),
        ("/stacked", "gzip, br"),
        ("/dcb", "dcb"),
    ] {
        let response = client.get("www.example.cn", path);
        assert_eq!(response.header("content-encoding"), Some(coding), "{path}");
        assert_eq!(response.text(), page, "{path}: passed untouched");
        assert_eq!(
            response.header("content-length"),
            Some(page.len().to_string().as_str()),
            "{path}"
        );
    }
    assert_eq!(envoy.counter("ferry.bodies_passed_compressed"), Some(3));
    assert_eq!(envoy.counter("ferry.bodies_rewritten"), Some(0));
}

#[test]
fn the_shipped_chain_asks_for_identity_decodes_what_comes_anyway_and_compresses() {
    let page = "<a href=\"https://www.example.com/\">home</a> ".repeat(50);
    let want = page.replace("www.example.com", "www.example.cn");
    let origin = Origin::start();
    for encoding in Encoding::ALL {
        origin.route(
            &format!("/{}", encoding.name()),
            Reply::html(page.clone())
                .encoded(encoding)
                .header("etag", "\"v1\"")
                .header("content-digest", "sha-256=:AAAA:"),
        );
    }
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    for encoding in Encoding::ALL {
        let path = format!("/{}", encoding.name());
        // A client that accepts gzip gets gzip (from Envoy's compressor), rewritten.
        let request = Request::get("www.example.cn", &path).header("accept-encoding", "gzip");
        let response = client.send(&request).expect("request through Envoy");
        assert_eq!(response.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(gunzip(&response.body), want, "{path}: gzip client");
        assert_eq!(response.header("etag"), Some("W/\"v1\""), "{path}");
        assert_eq!(response.header("content-digest"), None, "{path}");
        // A plain client gets plain text, rewritten.
        let response = client.get("www.example.cn", &path);
        assert_eq!(response.header("content-encoding"), None, "{path}");
        assert_eq!(response.text(), want, "{path}: plain client");
    }
    for asked in origin.requests() {
        assert_eq!(
            asked.header("accept-encoding"),
            Some("identity"),
            "{}",
            asked.path
        );
    }
    assert_eq!(envoy.counter("ferry.bodies_decoded"), Some(8));
    assert_eq!(envoy.counter("ferry.bodies_rewritten"), Some(8));
}

#[test]
fn highly_compressible_bodies_are_decoded_whole() {
    // About 300:1 with gzip, over Envoy's own decompressor's default ratio of 100; Ferry allows
    // 200:1 plus a first MiB, which a 2 MiB page of one repeated line still fits.
    let unit = "<a href=\"https://www.example.com/\">same</a>\n";
    let page = unit.repeat((2 << 20) / unit.len());
    let want = page.replace("www.example.com", "www.example.cn");
    let origin = Origin::start();
    origin.route("/", Reply::html(page).gzip());
    let envoy = ferry(&origin);
    let response = Client::http1(envoy.listener_addr()).get("www.example.cn", "/");
    assert_eq!(response.body.len(), want.len(), "the whole body arrives");
    assert!(response.text() == want, "rewritten");
}

#[test]
fn framing_follows_the_rewritten_body() {
    let page = "<a href=\"https://example.com/\">x</a>";
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::html(page)
            .content_length()
            .header("etag", "\"strong-1\"")
            .header("accept-ranges", "bytes"),
    );
    origin.route(
        "/weak",
        Reply::html(page).content_length().header("etag", "W/\"w\""),
    );
    let envoy = ferry(&origin);
    for version in [Version::Http1, Version::H2c] {
        let client = Client::new(envoy.listener_addr(), version);
        let response = client.get("example.cn", "/");
        assert_eq!(response.text(), "<a href=\"https://example.cn/\">x</a>");
        assert_eq!(response.header("content-length"), None, "{version:?}");
        assert_eq!(response.header("accept-ranges"), None, "{version:?}");
        assert_eq!(
            response.header("etag"),
            Some("W/\"strong-1\""),
            "{version:?}"
        );
        if version == Version::Http1 {
            assert_eq!(response.header("transfer-encoding"), Some("chunked"));
        }
        let response = client.get("example.cn", "/weak");
        assert_eq!(response.header("etag"), Some("W/\"w\""), "{version:?}");
    }
}

#[test]
fn responses_with_trailers_keep_them_and_fail_visibly_if_their_end_is_undecided() {
    let origin = Origin::start_with(ferry_tests::origin::Protocol::H2c);
    // (route, chunks, what the client gets: the body, or None for a reset)
    let cases: [(&str, Vec<&str>, Option<&str>); 5] = [
        (
            "decided",
            vec!["link: https://exa", "mple.com/x and example.c", "om.\n"],
            Some("link: https://example.cn/x and example.cn.\n"),
        ),
        (
            "json",
            vec!["{\"u\":\"https://example.com\"}"],
            Some("{\"u\":\"https://example.cn\"}"),
        ),
        // A body whose last bytes could still have become a name when the trailers came: the
        // filter can no longer write them, so the stream is reset rather than cut short.
        ("name", vec!["link: https://example.com"], None),
        ("split", vec!["see https://exa", "mple.com/ or exa"], None),
        ("one", vec!["example.co"], None),
    ];
    for (name, chunks, _) in &cases {
        origin.route(
            &format!("/{name}"),
            Reply::ok("text/plain", "")
                .chunks(chunks.clone())
                .chunk_delay(Duration::from_millis(5))
                .trailer("x-checksum", "abc"),
        );
    }
    let envoy = Envoy::start(&EnvoyConfig::shipped().origin_http2().origin(origin.addr()));
    for client in [
        Client::h2c(envoy.listener_addr()),
        Client::http1(envoy.listener_addr()),
    ] {
        for (name, _, want) in &cases {
            let result = client.send(&Request::get("example.cn", &format!("/{name}")));
            match want {
                Some(want) => {
                    let response = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(response.text(), *want, "{name}");
                    if client.version() == Version::H2c {
                        assert_eq!(response.trailer("x-checksum"), Some("abc"), "{name}");
                    }
                }
                None => assert!(result.is_err(), "{name}: {:?}", result.map(|r| r.text())),
            }
        }
    }
    assert_eq!(envoy.counter("ferry.bodies_reset_undecided_tail"), Some(6));
}

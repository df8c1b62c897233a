//! End to end: nothing of the origin's name reaches a mirror visitor through the channels a
//! site uses today: bodies of every text type that carries URLs, the headers that carry URLs or
//! origins, quoted cookie domains, byte ranges of rewritten pages, and event streams (each event
//! rewritten and delivered as soon as it is complete).
//!
//! Related: the single cases of each channel in `rewrite_headers` and `rewrite_bodies`; a
//! browser that sees only the mirror in `browser`.

use std::time::{Duration, Instant};

use ferry_tests::{Client, Origin, Reply, Request};

use crate::support::ferry;

const TEXT: &str = "see https://www.example.com/a and //cdn.example.com/b.js\n";

const MIRRORED: &str = "see https://www.example.cn/a and //cdn.example.cn/b.js\n";

#[test]
fn every_text_type_that_carries_urls_is_rewritten() {
    // Written out, not taken from `ferry_filter::config::DEFAULT_CONTENT_TYPES`: these are the
    // types sites send (with parameters, and the concrete `+json` and `+xml` types the
    // defaults' patterns must match), so a type that goes missing from the defaults fails here.
    let types = [
        "text/html; charset=utf-8",
        "application/xhtml+xml",
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        "application/json",
        "text/json",
        "application/ld+json",
        "application/manifest+json",
        "application/vnd.api+json",
        "application/problem+json",
        "application/x-ndjson",
        "application/xml",
        "text/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/dash+xml",
        "image/svg+xml",
        "text/plain",
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "text/vtt",
    ];
    let origin = Origin::start();
    for (i, content_type) in types.iter().enumerate() {
        origin.route(&format!("/{i}"), Reply::ok(content_type, TEXT));
    }
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    for (i, content_type) in types.iter().enumerate() {
        let response = client.get("www.example.cn", &format!("/{i}"));
        assert_eq!(response.text(), MIRRORED, "{content_type}");
    }
}

#[test]
fn headers_that_carry_urls_or_origins_are_rewritten_and_the_rest_dropped() {
    let origin = Origin::start();
    let headers = [
        ("reporting-endpoints", "default=\"https://www.example.com/reports\""),
        (
            "report-to",
            "{\"group\":\"csp\",\"max_age\":86400,\"endpoints\":[{\"url\":\"https://example.com/r\"}]}",
        ),
        ("timing-allow-origin", "https://www.example.com"),
        ("sourcemap", "https://static.example.com/app.js.map"),
        ("x-sourcemap", "//static.example.com/app.js.map"),
        ("x-frame-options", "ALLOW-FROM https://www.example.com/"),
        ("permissions-policy", "geolocation=(self \"https://maps.example.com\")"),
        ("content-security-policy", "default-src 'self' *.example.com"),
        ("link", "<https://www.example.com/next>; rel=next"),
        ("location", "https://www.example.com/moved"),
        ("content-location", "https://www.example.com/page.en"),
        ("refresh", "5; url=https://www.example.com/next"),
        ("access-control-allow-origin", "https://app.example.com"),
        (
            "content-security-policy-report-only",
            "script-src https://cdn.example.com; report-uri https://example.com/csp",
        ),
        ("x-content-security-policy", "default-src 'self' https://www.example.com"),
        ("x-webkit-csp", "default-src 'self' https://www.example.com"),
        ("permissions-policy-report-only", "camera=(\"https://meet.example.com\")"),
        ("feature-policy", "camera 'self' https://meet.example.com"),
        ("speculation-rules", "\"https://www.example.com/rules.json\""),
        ("x-xss-protection", "1; report=https://example.com/xss"),
        ("expect-ct", "max-age=0, report-uri=\"https://example.com/ct\""),
        ("x-pingback", "https://www.example.com/xmlrpc.php"),
        ("set-cookie", "sid=1; Domain=\"example.com\"; Path=/"),
        ("set-cookie", "pref=dark; Domain=.example.com"),
    ];
    let mut reply = Reply::html("<p>x</p>")
        .with_status(302)
        .header("alt-svc", "h3=\":443\"; ma=86400")
        .header("content-digest", "sha-256=:AAAA:")
        .header("content-md5", "AAAA")
        .content_length();
    for (name, value) in headers {
        reply = reply.header(name, value);
    }
    origin.route("/", reply);
    let envoy = ferry(&origin);
    let response = Client::http1(envoy.listener_addr()).get("www.example.cn", "/");
    for (name, sent) in headers {
        let want = sent.replace("example.com", "example.cn");
        let got = response.header_all(name);
        assert!(
            got.contains(&want.as_str()),
            "{name}: want {want:?}, got {got:?}"
        );
    }
    assert_eq!(
        response.header_all("set-cookie"),
        [
            "sid=1; Domain=\"example.cn\"; Path=/",
            "pref=dark; Domain=.example.cn"
        ]
    );
    // The origin's other endpoints (HTTP/3 on its own servers) are not the mirror's, and the
    // digests and length were of the origin's bytes.
    for gone in ["alt-svc", "content-digest", "content-md5", "content-length"] {
        assert_eq!(response.header(gone), None, "{gone}");
    }
}

#[test]
fn a_range_of_a_rewritten_page_gets_the_whole_rewritten_page() {
    let origin = Origin::start();
    origin.route("*", Reply::html(TEXT).header("accept-ranges", "bytes"));
    let mut video = Reply::new(206)
        .header("content-type", "video/mp4")
        .header("content-range", "bytes 0-3/100")
        .body("\0\0\0\x18");
    video = video.content_length();
    origin.route("/movie.mp4", video);
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());

    let page = client
        .send(
            &Request::get("www.example.cn", "/page")
                .header("range", "bytes=5-9")
                .header("if-range", "\"v1\""),
        )
        .expect("a response");
    assert_eq!(
        page.status, 200,
        "the whole page, not a range of the origin's bytes"
    );
    assert_eq!(page.text(), MIRRORED);
    assert_eq!(
        page.header("accept-ranges"),
        None,
        "a rewritten page offers no ranges"
    );
    let seen = origin.last_request().expect("the origin saw it");
    assert_eq!(seen.header("range"), None);
    assert_eq!(seen.header("if-range"), None);

    // Media keeps its ranges: a player can seek.
    let part = client
        .send(&Request::get("www.example.cn", "/movie.mp4").header("range", "bytes=0-3"))
        .expect("a response");
    assert_eq!(part.status, 206);
    assert_eq!(
        origin.last_request().expect("seen").header("range"),
        Some("bytes=0-3")
    );
    assert_eq!(envoy.counter("ferry.ranges_dropped"), Some(1));
}

#[test]
fn event_streams_are_rewritten_and_each_event_delivered_at_once() {
    let origin = Origin::start();
    origin.route(
        "/events",
        Reply::ok("text/event-stream", "")
            .chunks([
                "data: https://www.example.com/1\n\n",
                "data: https://www.example.com/2\n\n",
            ])
            .chunk_delay(Duration::from_millis(1500)),
    );
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    let started = Instant::now();
    let mut first = None;
    let mut body = Vec::new();
    let streamed = client
        .stream(
            &Request::get("www.example.cn", "/events").header("accept-encoding", "gzip"),
            |chunk| {
                body.extend_from_slice(chunk);
                if first.is_none() && body.ends_with(b"\n\n") {
                    first = Some(started.elapsed());
                }
            },
        )
        .expect("the stream");
    assert_eq!(streamed.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "data: https://www.example.cn/1\n\ndata: https://www.example.cn/2\n\n"
    );
    let first = first.expect("a first event");
    assert!(
        first < Duration::from_millis(1000),
        "the first event came after {first:?}: held until the next one"
    );
}

//! End to end, with the real Envoy and the built filter: response headers, framing, responses
//! without a body, trailers, metrics, and configurations Envoy must refuse.

use std::time::Duration;

use ferry_tests::client::Version;
use ferry_tests::{Client, Envoy, EnvoyConfig, Origin, Reply, Request};

fn ferry(origin: &Origin) -> Envoy {
    Envoy::start(&EnvoyConfig::shipped().origin(origin.addr()))
}

#[test]
fn url_and_cookie_headers_are_rewritten() {
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::redirect(
            302,
            "https://www.example.com/login?next=https%3A%2F%2Fexample.com%2F",
        )
        .header("content-location", "https://example.com/index.html")
        .header("refresh", "5; url=https://example.com/")
        .header(
            "link",
            "<https://img.examplecdn.net/a.css>; rel=preload; as=style",
        )
        .header("access-control-allow-origin", "https://www.example.com")
        .header(
            "content-security-policy",
            "default-src 'self' https://*.example.com; img-src examplecdn.net",
        )
        .header(
            "content-security-policy-report-only",
            "script-src https://example.com",
        )
        .header("set-cookie", "sid=1; Domain=.example.com; Path=/; Secure")
        .header("set-cookie", "lang=en; Path=/")
        .header("set-cookie", "cdn=1; Domain=img.examplecdn.net")
        .header(
            "set-cookie",
            "next=https://example.com/; Domain=example.com",
        )
        .header("x-other", "https://example.com/"),
    );
    let envoy = ferry(&origin);
    let response = Client::http1(envoy.listener_addr()).get("www.example.cn", "/");
    assert_eq!(response.status, 302);
    let expect = [
        (
            "location",
            "https://www.example.cn/login?next=https%3A%2F%2Fexample.cn%2F",
        ),
        ("content-location", "https://example.cn/index.html"),
        ("refresh", "5; url=https://example.cn/"),
        (
            "link",
            "<https://img.cdn.example.cn/a.css>; rel=preload; as=style",
        ),
        ("access-control-allow-origin", "https://www.example.cn"),
        (
            "content-security-policy",
            "default-src 'self' https://*.example.cn; img-src cdn.example.cn",
        ),
        (
            "content-security-policy-report-only",
            "script-src https://example.cn",
        ),
        // Not in the list: untouched.
        ("x-other", "https://example.com/"),
    ];
    for (name, want) in expect {
        assert_eq!(response.header(name), Some(want), "{name}");
    }
    // Every cookie kept, in order; only Domain attributes change, never names or values.
    assert_eq!(
        response.header_all("set-cookie"),
        [
            "sid=1; Domain=.example.cn; Path=/; Secure",
            "lang=en; Path=/",
            "cdn=1; Domain=img.cdn.example.cn",
            "next=https://example.com/; Domain=example.cn",
        ]
    );
}

#[test]
fn the_response_header_list_is_configurable() {
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::html("")
            .header("x-canonical", "https://example.com/")
            .header("location", "https://example.com/"),
    );
    let config = r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                     "response_headers": ["x-canonical"]}"#;
    let envoy = Envoy::start(
        &EnvoyConfig::shipped()
            .plugin_config(config)
            .origin(origin.addr()),
    );
    let response = Client::http1(envoy.listener_addr()).get("example.cn", "/");
    assert_eq!(response.header("x-canonical"), Some("https://example.cn/"));
    assert_eq!(response.header("location"), Some("https://example.com/"));
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
fn head_204_and_304_come_out_right() {
    let page = "<a href=\"https://example.com/\">x</a>";
    let origin = Origin::start();
    origin.route(
        "/page",
        Reply::html(page).content_length().header("etag", "\"e1\""),
    );
    origin.route(
        "/empty",
        Reply::new(204).header("location", "https://example.com/"),
    );
    origin.route(
        "/cached",
        Reply::new(304)
            .header("etag", "\"e1\"")
            .header("content-location", "https://example.com/page"),
    );
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());

    let head = client
        .send(&Request::head("example.cn", "/page"))
        .expect("HEAD through Envoy");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("etag"),
        Some("W/\"e1\""),
        "as the GET would say"
    );
    assert_eq!(head.header("content-length"), None, "as the GET would say");

    let empty = client.get("example.cn", "/empty");
    assert_eq!(empty.status, 204);
    assert!(empty.body.is_empty());
    assert_eq!(empty.header("location"), Some("https://example.cn/"));

    let cached = client
        .send(&Request::get("example.cn", "/cached").header("if-none-match", "W/\"e1\""))
        .expect("conditional GET through Envoy");
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some("W/\"e1\""));
    assert_eq!(
        cached.header("content-location"),
        Some("https://example.cn/page")
    );

    // The GET after all of them is still whole and rewritten.
    assert_eq!(
        client.get("example.cn", "/page").text(),
        "<a href=\"https://example.cn/\">x</a>"
    );
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

#[test]
fn metrics_show_on_admin_stats_and_prometheus() {
    let origin = Origin::start();
    let page = "https://example.com/ https://example.com/x";
    origin.route("/", Reply::html(page));
    origin.route("/gz", Reply::html(page).gzip());
    origin.route(
        "/lzw",
        Reply::html(page).header("content-encoding", "compress"),
    );
    origin.route("/part", Reply::html(page).with_status(206));
    let envoy = Envoy::start(&EnvoyConfig::shipped().origin(origin.addr()));
    let client = Client::http1(envoy.listener_addr());
    client.get("example.cn", "/");
    client.get("example.cn", "/gz");
    client.get("example.cn", "/lzw");
    client.get("example.cn", "/part");
    client
        .send(&Request::get("example.cn", "/").header("range", "bytes=0-3"))
        .unwrap();
    client.get("other.org", "/");
    let want = [
        ("ferry.requests_mirror", 5),
        ("ferry.requests_other", 1),
        ("ferry.bodies_rewritten", 3),
        ("ferry.bodies_decoded", 1),
        ("ferry.bodies_passed_compressed", 1),
        ("ferry.bodies_passed_partial", 1),
        ("ferry.ranges_dropped", 1),
        ("ferry.body_bytes_in", 3 * page.len() as u64),
        ("ferry.body_bytes_out", 3 * (page.len() as u64 - 2)),
        ("ferry.body_matches", 6),
        ("ferry.host_errors", 0),
        ("ferry.bodies_reset_undecided_tail", 0),
        ("ferry.bodies_reset_bad_encoding", 0),
        ("ferry.bodies_reset_decode_limit", 0),
        ("ferry.bodies_reset_host_error", 0),
    ];
    for (name, value) in want {
        assert_eq!(envoy.counter(name), Some(value), "{name}");
    }
    let prometheus = envoy
        .admin_get("/stats/prometheus")
        .expect("admin /stats/prometheus")
        .text();
    assert!(
        prometheus.contains("ferry_body_matches{} 6"),
        "Prometheus output lacks ferry_body_matches:\n{prometheus}"
    );
}

#[test]
fn bad_plugin_configurations_are_refused_with_the_field_named() {
    let cases = [
        ("not json", "invalid configuration"),
        (r#"{"domains": []}"#, "domains: at least one"),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomain": true}]}"#,
            "unknown field `subdomain`",
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": "yes"}]}"#,
            "domains[0].subdomains: invalid type: string \"yes\"",
        ),
        (
            r#"{"domains": [{"origin": "a.com", "mirror": "x.cn"}, {"origin": "b.com", "mirror": "x.cn"}]}"#,
            "domains[1].mirror: \"x.cn\" is also domains[0].mirror",
        ),
        (
            r#"{"domains": [{"origin": "exa mple.com", "mirror": "x.cn"}]}"#,
            "domains[0].origin: \"exa mple.com\" is not a valid domain name",
        ),
    ];
    for (json, needle) in cases {
        let config = EnvoyConfig::shipped()
            .plugin_config(json)
            .origin("127.0.0.1:9".parse().expect("an address"));
        let error = Envoy::try_start(&config)
            .err()
            .unwrap_or_else(|| panic!("Envoy accepted {json}"));
        assert!(
            error.log.contains(needle),
            "for {json}, the log lacks {needle:?}:\n{}",
            error.log
        );
    }
}

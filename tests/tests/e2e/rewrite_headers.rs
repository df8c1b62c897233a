//! Headers, both ways, through the minimal config: which requests are Ferry's (a mirror host,
//! or with `subdomains` one of its subdomains) and what the origin sees of them (`Host`,
//! `Origin`, `Referer`, mirror names in the path and query, `Accept-Encoding: identity`);
//! every other host passes untouched both ways; the response headers that carry URLs and
//! cookies are rewritten (`Set-Cookie` by its `Domain` only), from a list that is
//! configurable; HEAD, 204 and 304 answers get the headers the GET would.
//!
//! Related: every URL-carrying header a site sends today, and the ones dropped, in `no_leaks`;
//! the headers of a rewritten body (`Content-Length`, `ETag`) in `rewrite_bodies`; `Origin`
//! and `Referer` behind the US East node, and a response with 160 cookies, in `chain`.

use ferry_tests::{Client, Origin, Reply, Request};

use crate::support::{ferry, ferry_with};

const PAGE: &str = "<a href=\"https://www.example.com/a\">a</a> example.community";

#[test]
fn a_mirror_request_reaches_the_origin_as_the_origin_host() {
    let origin = Origin::start();
    origin.route("*", Reply::html(PAGE));
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    let cases = [
        // (Host sent, Host the origin must see)
        ("www.example.cn", "www.example.com"),
        ("example.cn", "example.com"),
        ("WWW.Example.CN", "www.example.com"),
        ("example.cn:8443", "example.com:8443"),
        ("cdn.example.cn", "examplecdn.net"),
        ("img.cdn.example.cn", "img.examplecdn.net"),
    ];
    for (sent, seen) in cases {
        let request = Request::get(sent, "/path?q=example.cn&mail=a%40example.cn")
            .header("origin", &format!("https://{sent}"))
            .header(
                "referer",
                "https://www.example.cn/from?next=https%3A%2F%2Fexample.cn%2F",
            )
            .header("accept-encoding", "gzip, br");
        let response = client.send(&request).expect("request through Envoy");
        assert_eq!(response.status, 200, "{sent}");
        let got = origin.last_request().expect("the origin saw the request");
        assert_eq!(got.host(), Some(seen), "Host for {sent}");
        assert_eq!(
            got.path, "/path?q=example.com&mail=a%40example.cn",
            "mirror names in the path come back as the origin's, e-mail addresses stay"
        );
        assert_eq!(
            got.header("origin"),
            Some(format!("https://{seen}").as_str()),
            "Origin for {sent}"
        );
        // A mirror page's URL as the origin wrote it, at the port the request reached the
        // origin with (the mirror's port means nothing there).
        let port = seen
            .split_once(':')
            .map_or(String::new(), |(_, p)| format!(":{p}"));
        assert_eq!(
            got.header("referer"),
            Some(
                format!("https://www.example.com{port}/from?next=https%3A%2F%2Fexample.com%2F")
                    .as_str()
            ),
            "the Referer is the mirror page's URL as the origin wrote it"
        );
        assert_eq!(got.header("accept-encoding"), Some("identity"));
    }
    assert_eq!(
        envoy.counter("ferry.requests_mirror"),
        Some(cases.len() as u64)
    );
    assert_eq!(envoy.counter("ferry.requests_other"), Some(0));
}

#[test]
fn other_hosts_pass_untouched_both_ways() {
    let origin = Origin::start();
    origin.route(
        "*",
        Reply::html(PAGE)
            .header("etag", "\"v1\"")
            .header("location", "https://www.example.com/next")
            .header("set-cookie", "sid=1; Domain=example.com")
            .content_length(),
    );
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    for host in [
        "www.example.com",
        "example.com",
        "other.org",
        "example.cn.evil.org",
    ] {
        let request = Request::get(host, "/x")
            .header("origin", "https://www.example.cn")
            .header("referer", "https://www.example.cn/");
        let response = client.send(&request).expect("request through Envoy");
        assert_eq!(response.text(), PAGE, "{host}: body untouched");
        assert_eq!(
            response.header("content-length"),
            Some(PAGE.len().to_string().as_str()),
            "{host}: framing untouched"
        );
        assert_eq!(response.header("etag"), Some("\"v1\""), "{host}");
        assert_eq!(
            response.header("location"),
            Some("https://www.example.com/next"),
            "{host}"
        );
        assert_eq!(
            response.header("set-cookie"),
            Some("sid=1; Domain=example.com"),
            "{host}"
        );
        let got = origin.last_request().expect("the origin saw the request");
        assert_eq!(got.host(), Some(host));
        assert_eq!(got.header("origin"), Some("https://www.example.cn"));
        assert_eq!(got.header("referer"), Some("https://www.example.cn/"));
    }
    assert_eq!(envoy.counter("ferry.requests_other"), Some(4));
    assert_eq!(envoy.counter("ferry.requests_mirror"), Some(0));
    assert_eq!(envoy.counter("ferry.body_bytes_in"), Some(0));
}

#[test]
fn subdomains_follow_the_pair_setting() {
    let origin = Origin::start();
    origin.route("*", Reply::html("www.example.com sub.example.com"));
    let config = r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}]}"#;
    let envoy = ferry_with(&origin, config);
    let client = Client::http1(envoy.listener_addr());
    // Only the exact mirror host is ours when subdomains is off.
    let response = client.get("www.example.cn", "/");
    assert_eq!(response.text(), "www.example.com sub.example.com");
    assert_eq!(
        origin.last_request().unwrap().host(),
        Some("www.example.cn")
    );
    let response = client.get("example.cn", "/");
    assert_eq!(response.text(), "www.example.com sub.example.com");
    assert_eq!(origin.last_request().unwrap().host(), Some("example.com"));
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
    let envoy = ferry_with(&origin, config);
    let response = Client::http1(envoy.listener_addr()).get("example.cn", "/");
    assert_eq!(response.header("x-canonical"), Some("https://example.cn/"));
    assert_eq!(response.header("location"), Some("https://example.com/"));
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

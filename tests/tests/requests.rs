//! End to end, with the real Envoy and the built filter: which requests are Ferry's, what the
//! origin sees of them, and that everything else passes untouched both ways.

use ferry_tests::{Client, Envoy, EnvoyConfig, Origin, Reply, Request};

const PAGE: &str = "<a href=\"https://www.example.com/a\">a</a> example.community";

fn ferry(origin: &Origin) -> Envoy {
    Envoy::start(&EnvoyConfig::shipped().origin(origin.addr()))
}

#[test]
fn a_mirror_request_reaches_the_origin_as_the_origin_host() {
    let origin = Origin::start();
    origin.route("*", Reply::html(PAGE));
    let envoy = Envoy::start(&EnvoyConfig::shipped().origin(origin.addr()));
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
    let envoy = Envoy::start(
        &EnvoyConfig::shipped()
            .plugin_config(config)
            .origin(origin.addr()),
    );
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

//! End to end: what the mirror showed comes back to the origin as the origin wrote it. Values a
//! page carries (form fields, JSON, links with query strings) are rewritten origin -> mirror on
//! the way out and mirror -> origin on the way in, e-mail addresses stay, uploads pass byte for
//! byte, and the origin gets a correct `Content-Length` for the bodies Ferry holds.
//!
//! Related: a Django admin edited through the mirror in Chromium in `browser`; a form post
//! through the US East node in `chain`; the request headers in `rewrite_headers`.

use std::time::Duration;

use bytes::Bytes;
use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::origin::Protocol;
use ferry_tests::{form, Client, Origin, Reply, Request};

use crate::support::{ferry, ferry_with};

/// Values an origin puts in a page and expects back, as it wrote them.
const VALUES: &[(&str, &str)] = &[
    ("website", "https://www.example.com/about"),
    ("email", "admin@example.com"),
    ("profile", "https://admin@example.com/"),
    (
        "bio",
        "Find me at www.example.com (or EXAMPLE.COM), not example.community.",
    ),
    ("json", "{\"home\":\"https:\\/\\/example.com\\/\"}"),
    ("next", "https%3A%2F%2Fwww.example.com%2Fadmin%2F"),
    ("cdn", "//static.example.com/app.js?v=1"),
];

/// The origin's form page: every value in an input (HTML-escaped), the bio in a textarea.
fn form_page() -> String {
    let mut page = String::from("<!doctype html><form method=post action=\"/save\">\n");
    for (name, value) in VALUES {
        let escaped = value.replace('&', "&amp;").replace('"', "&quot;");
        page.push_str(&format!("<input name=\"{name}\" value=\"{escaped}\">\n"));
    }
    page.push_str("</form>\n");
    page
}

/// The values as the page shows them (what a browser would post back).
fn shown_values(page: &str) -> Vec<(String, String)> {
    page.lines()
        .filter_map(|line| {
            let name = line.split("name=\"").nth(1)?.split('"').next()?;
            let value = line.split("value=\"").nth(1)?.rsplit_once("\">")?.0;
            let value = value.replace("&quot;", "\"").replace("&amp;", "&");
            Some((name.to_owned(), value))
        })
        .collect()
}

fn saved(origin: &Origin) -> ferry_tests::Recorded {
    origin
        .requests_to("/save")
        .pop()
        .expect("the origin got the post")
}

#[test]
fn a_form_shown_through_the_mirror_and_posted_back_reaches_the_origin_unchanged() {
    let origin = Origin::start();
    origin.route("/form", Reply::html(form_page()));
    origin.route("/save", Reply::ok("text/plain", "saved"));
    let envoy = ferry(&origin);
    for client in [
        Client::http1(envoy.listener_addr()),
        Client::h2c(envoy.listener_addr()),
    ] {
        let page = client.get("www.example.cn", "/form").text();
        let shown = shown_values(&page);
        assert_eq!(shown.len(), VALUES.len(), "{page}");
        // The page shows mirror names (e-mail addresses excepted).
        assert!(shown[0].1.contains("www.example.cn"), "{shown:?}");
        assert_eq!(shown[1].1, "admin@example.com");
        let fields: Vec<(&str, &str)> = shown
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body = form::encode(&fields);
        let response = client
            .send(
                &Request::new("POST", "www.example.cn", "/save")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
            )
            .expect("the post");
        assert_eq!(response.status, 200);
        let got = saved(&origin);
        let want: Vec<(String, String)> = VALUES
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(form::decode(&got.body), want, "{:?}", client.version());
        assert_eq!(
            got.header("content-length"),
            Some(got.body.len().to_string().as_str()),
            "the exact new length"
        );
        assert_eq!(got.header("transfer-encoding"), None);
    }
    assert_eq!(envoy.counter("ferry.request_bodies_rewritten"), Some(2));
}

#[test]
fn json_and_text_bodies_come_back_as_the_origin_wrote_them() {
    let origin = Origin::start();
    origin.route("/api", Reply::ok("application/json", "{}"));
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    let cases = [
        (
            "application/json",
            "{\"url\":\"https:\\/\\/www.example.cn\\/x\",\"mail\":\"ops@example.com\"}",
            "{\"url\":\"https:\\/\\/www.example.com\\/x\",\"mail\":\"ops@example.com\"}",
        ),
        (
            "application/vnd.api+json",
            "{\"links\":{\"self\":\"https://example.cn/items/1\"}}",
            "{\"links\":{\"self\":\"https://example.com/items/1\"}}",
        ),
        (
            "text/plain; charset=utf-8",
            "see example.cn, EXAMPLE.CN and example.community",
            "see example.com, EXAMPLE.COM and example.community",
        ),
        (
            "application/xml",
            "<a href=\"https://www.example.cn/\"/>",
            "<a href=\"https://www.example.com/\"/>",
        ),
    ];
    for (content_type, sent, want) in cases {
        client
            .send(
                &Request::new("PUT", "www.example.cn", "/api")
                    .header("content-type", content_type)
                    .body(sent),
            )
            .expect("the request");
        let got = origin.last_request().expect("seen");
        assert_eq!(String::from_utf8_lossy(&got.body), want, "{content_type}");
        assert_eq!(
            got.header("content-length"),
            Some(want.len().to_string().as_str())
        );
    }
}

/// A multipart upload: a text field naming the mirror and a binary file that contains mirror
/// names, delimiter look-alikes and every byte value. Returns the content type, the body and
/// the file.
fn upload() -> (String, Vec<u8>, Vec<u8>) {
    let mut file = b"%PDF-1.7 https://www.example.cn/ \r\n--x\r\n".to_vec();
    file.extend((0..=255u8).cycle().take(20_000));
    file.extend_from_slice(b"example.cn");
    let boundary = "----WebKitFormBoundary7MA4YWxk";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n\
             Notes for https://www.example.cn/docs\r\n--{boundary}\r\n\
             Content-Disposition: form-data; name=\"doc\"; filename=\"notes.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    (content_type, body, file)
}

/// Posts [`upload`] with `client` and checks what the origin received: the text field
/// rewritten, the file byte for byte, the exact new length.
fn check_upload(client: &Client, origin: &Origin, what: &str) {
    let (content_type, body, file) = upload();
    let response = client
        .send(
            &Request::new("POST", "www.example.cn", "/upload")
                .header("content-type", &content_type)
                .body(body.clone()),
        )
        .unwrap_or_else(|e| panic!("{what}: the upload: {e}"));
    assert_eq!(response.status, 200, "{what}");
    let got = origin.last_request().expect("seen");
    let text = "Notes for https://www.example.com/docs";
    let received = &got.body;
    assert!(
        received.windows(text.len()).any(|w| w == text.as_bytes()),
        "{what}: the text field is rewritten"
    );
    assert!(
        received.windows(file.len()).any(|w| w == &file[..]),
        "{what}: the file arrives byte for byte"
    );
    assert_eq!(
        received.len(),
        body.len() + 1,
        "{what}: one name one byte longer"
    );
    assert_eq!(
        got.header("content-length"),
        Some(received.len().to_string().as_str()),
        "{what}"
    );
}

#[test]
fn a_multipart_upload_keeps_its_file_byte_for_byte() {
    let origin = Origin::start();
    origin.route("/upload", Reply::ok("text/plain", "ok"));
    let envoy = ferry(&origin);
    check_upload(&Client::http1(envoy.listener_addr()), &origin, "ferry.yaml");
}

/// The same upload as a browser sends it to the US East node: over HTTP/2 through the relay,
/// with TLS on both sides, to an origin that speaks HTTP/2 as well as to one on HTTP/1.1.
#[test]
fn a_multipart_upload_through_the_us_east_node_over_http2() {
    for protocol in [Protocol::Auto, Protocol::Http1] {
        let chain = Chain::start(
            ChainOptions::default()
                .empty_origin()
                .origin_protocol(protocol),
        );
        chain
            .origin()
            .route("/upload", Reply::ok("text/plain", "ok"));
        let client = Client::https_h2(chain.relay_addr(), "www.example.cn", &chain.ca_path());
        check_upload(
            &client,
            chain.origin(),
            &format!("us-east.yaml, origin {protocol:?}"),
        );
        let seen = chain.origin().last_request().expect("seen");
        let want = if protocol == Protocol::Auto {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(seen.version, want, "the origin's protocol");
    }
}

/// An origin that refuses request bodies without a length (as some WSGI set-ups effectively
/// do: Django reads nothing from a body that has none).
fn strict_origin() -> Origin {
    let origin = Origin::start_with(ferry_tests::origin::Protocol::Http1);
    origin.route_fn("/save", |request| {
        if request.header("content-length").is_none() {
            Reply::ok("text/plain", "length required").with_status(411)
        } else {
            Reply::ok("text/plain", "saved")
        }
    });
    origin
}

#[test]
fn held_bodies_reach_an_origin_that_needs_a_length_and_large_ones_are_explicit() {
    let small = form::encode(&[("next", "https://www.example.cn/")]);
    let large = form::encode(&[("blob", &"https://www.example.cn/ ".repeat(5000))]);
    assert!(large.len() > 65536);

    // The shipped config: small bodies held and sent with their length, large ones passed as
    // they are (with theirs).
    let origin = strict_origin();
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    let post = |body: &str| {
        client
            .send(
                &Request::new("POST", "www.example.cn", "/save")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.to_owned()),
            )
            .expect("the post")
    };
    assert_eq!(post(&small).status, 200);
    assert_eq!(
        String::from_utf8_lossy(&saved(&origin).body),
        "next=https%3A%2F%2Fwww.example.com%2F"
    );
    assert_eq!(post(&large).status, 200);
    assert_eq!(
        saved(&origin).body,
        Bytes::from(large.clone()),
        "passed as sent"
    );
    assert_eq!(envoy.counter("ferry.request_bodies_passed_large"), Some(1));

    // "large": "stream": rewritten, without a length: this origin refuses it, visibly.
    let config = r#"{"domains": [{"origin": "example.com", "mirror": "example.cn",
                                  "subdomains": true}],
                     "request_bodies": {"hold_bytes": 65536, "large": "stream"}}"#;
    let origin = strict_origin();
    let envoy = ferry_with(&origin, config);
    let client = Client::http1(envoy.listener_addr());
    let response = client
        .send(
            &Request::new("POST", "www.example.cn", "/save")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(large.clone()),
        )
        .expect("a response");
    assert_eq!(response.status, 411);
    assert_eq!(saved(&origin).header("transfer-encoding"), Some("chunked"));
}

#[test]
fn a_large_request_body_streams_in_bounded_memory() {
    let config = r#"{"domains": [{"origin": "example.com", "mirror": "example.cn",
                                  "subdomains": true}],
                     "request_bodies": {"hold_bytes": 65536, "large": "stream"}}"#;
    let origin = Origin::start();
    origin.route_fn("/import", |request| {
        Reply::ok("text/plain", format!("{}", request.body.len()))
    });
    let envoy = ferry_with(&origin, config);
    let unit = "{\"u\":\"https://www.example.cn/item\",\"m\":\"a@example.cn\"}\n";
    let body = unit.repeat((8 << 20) / unit.len());
    let want = body.replace("www.example.cn", "www.example.com");
    let baseline = envoy.rss_kib().expect("Envoy's RSS");
    let response = Client::http1(envoy.listener_addr())
        .with_timeout(Duration::from_secs(60))
        .send(
            &Request::new("POST", "www.example.cn", "/import")
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .expect("the upload");
    assert_eq!(response.status, 200);
    let got = origin.last_request().expect("seen");
    assert!(got.body == want.as_bytes(), "{} bytes", got.body.len());
    let grown = envoy.rss_kib().unwrap_or(0).saturating_sub(baseline) / 1024;
    assert!(grown < 24, "Envoy grew by {grown} MiB for an 8 MiB body");
    assert_eq!(
        envoy.counter("ferry.request_body_bytes_in"),
        Some(body.len() as u64)
    );
}

#[test]
fn compressed_request_bodies_pass_untouched() {
    let origin = Origin::start();
    origin.route("/save", Reply::ok("text/plain", "ok"));
    let envoy = ferry(&origin);
    let body = b"\x1f\x8b not really gzip, example.cn".to_vec();
    Client::http1(envoy.listener_addr())
        .send(
            &Request::new("POST", "www.example.cn", "/save")
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(body.clone()),
        )
        .expect("the post");
    assert_eq!(saved(&origin).body, Bytes::from(body));
    assert_eq!(
        envoy.counter("ferry.request_bodies_passed_compressed"),
        Some(1)
    );
}

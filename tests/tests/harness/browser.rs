//! The browser driver against the plain-HTTP test origin (and one HTTPS server with a
//! self-signed certificate): what it records must be what the browser did, failures included,
//! and every wait must end.
//!
//! Each test launches its own headless Chromium with resolver rules that send made-up names
//! (`site.test`, `other.test`) to the origin's port and refuse every other name. A missing
//! Chromium fails the test with a message that says how to install it.
//!
//! Ferry through a browser (the whole chain, a Django admin) is `browser` in the `e2e` binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_tests::browser::{spki_sha256_base64, Browser, BrowserError, BrowserOptions};
use ferry_tests::{Origin, Reply};
use serde_json::json;

/// A 1x1 image, so `naturalWidth` tells whether it was decoded.
const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>"#;

/// A browser that reaches `origin` as `site.test` and `other.test` (any port) and nothing else.
fn browser_for(origin: &Origin) -> Browser {
    Browser::launch(
        BrowserOptions::new()
            .map_host("site.test", origin.addr())
            .map_host("other.test", origin.addr()),
    )
}

/// `(url, resource type, status)` of every request but the favicon's, sorted.
fn summary(page: &ferry_tests::browser::Page) -> Vec<(String, String, Option<u16>)> {
    let mut rows: Vec<_> = page
        .requests()
        .into_iter()
        .filter(|request| !request.url.ends_with("/favicon.ico"))
        .map(|request| (request.url, request.resource_type, request.status))
        .collect();
    rows.sort();
    rows
}

fn row(url: &str, kind: &str, status: u16) -> (String, String, Option<u16>) {
    (url.to_owned(), kind.to_owned(), Some(status))
}

#[test]
fn the_pin_of_a_fixed_key_is_what_openssl_prints() {
    // A P-256 public key; its pin from
    // `openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`.
    let spki_hex = "3059301306072a8648ce3d020106082a8648ce3d0301070342000440f69b48ee9a171578901f50\
                    eef15283f442bf9684f438ab2175e7e3356945e7b3ac200e7dced95347d931b00a06446ea560a3\
                    8976cc02d10afc45139a10b960";
    let spki: Vec<u8> = (0..spki_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&spki_hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(spki.len(), 91);
    assert_eq!(
        spki_sha256_base64(&spki),
        "Z6kgCuvaZmTZ1mr0j07eogibfjrqL46SW7UR4kUGikY="
    );
    // FIPS 180-2's "abc" vector, in base64.
    assert_eq!(
        spki_sha256_base64(b"abc"),
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    );
}

#[test]
fn a_two_page_site_is_recorded_and_its_cookie_goes_back_to_the_origin() {
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::html(
            "<!doctype html><link rel=stylesheet href=/style.css><script src=/app.js></script>\
             <img src=/logo.svg><a id=next href=/page2>next</a>",
        )
        .header("set-cookie", "session=abc123; Path=/; HttpOnly"),
    );
    origin.route("/style.css", Reply::ok("text/css", "body { color: #123 }"));
    origin.route(
        "/app.js",
        Reply::ok(
            "text/javascript",
            "document.documentElement.dataset.ran = 'yes';",
        ),
    );
    origin.route("/logo.svg", Reply::ok("image/svg+xml", SVG));
    origin.route("/favicon.ico", Reply::ok("image/svg+xml", SVG));
    origin.route("/page2", Reply::html("<!doctype html><h1>two</h1>"));
    let browser = browser_for(&origin);
    let page = browser.new_page().expect("new page");

    page.goto("http://site.test/").expect("goto");
    assert_eq!(
        summary(&page),
        [
            row("http://site.test/", "Document", 200),
            row("http://site.test/app.js", "Script", 200),
            row("http://site.test/logo.svg", "Image", 200),
            row("http://site.test/style.css", "Stylesheet", 200),
        ]
    );
    let origin_addr = origin.addr().to_string();
    for request in page.requests() {
        assert!(request.succeeded(), "{request:?}");
        assert_eq!(request.host(), Some("site.test"), "{request:?}");
        assert_eq!(request.remote_addr.as_deref(), Some(origin_addr.as_str()));
        assert_eq!(request.protocol.as_deref(), Some("http/1.1"));
        assert!(!request.from_cache, "{request:?}");
    }
    // The subresources did their job: the script ran, the style applied, the image decoded.
    let state = page
        .eval(
            "[document.documentElement.dataset.ran, getComputedStyle(document.body).color, \
              document.querySelector('img').naturalWidth]",
        )
        .expect("eval");
    assert_eq!(state, json!(["yes", "rgb(17, 34, 51)", 1]));

    let cookies = page.cookies().expect("cookies");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert_eq!(
        (
            cookie.name.as_str(),
            cookie.value.as_str(),
            cookie.domain.as_str()
        ),
        ("session", "abc123", "site.test")
    );
    assert!(cookie.http_only && !cookie.secure, "{cookie:?}");
    assert_eq!(origin.requests_to("/")[0].header("cookie"), None);
    let css = &origin.requests_to("/style.css")[0];
    assert_eq!(css.header("cookie"), Some("session=abc123"));
    assert_eq!(css.host(), Some("site.test"));

    page.clear();
    page.click_and_wait("#next").expect("click");
    assert_eq!(
        summary(&page),
        [row("http://site.test/page2", "Document", 200)]
    );
    let state = page
        .eval("[location.href, document.querySelector('h1').textContent]")
        .expect("eval");
    assert_eq!(state, json!(["http://site.test/page2", "two"]));
    let page2 = &origin.requests_to("/page2")[0];
    assert_eq!(page2.header("cookie"), Some("session=abc123"));
    assert_eq!(page2.header("referer"), Some("http://site.test/"));
    assert_eq!(page.console_errors(), []);
}

#[test]
fn failed_loads_integrity_failures_and_exceptions_are_reported() {
    let good_js = "window.good = true;";
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::html(format!(
            "<!doctype html>\
             <img id=far src=http://elsewhere.test/x.svg>\
             <link rel=stylesheet href=/missing.css>\
             <script src=/good.js integrity=\"sha256-{}\"></script>\
             <script src=/tampered.js \
               integrity=\"sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"></script>\
             <script>console.error('logged', 42); throw new Error('boom');</script>",
            // The same digest an SRI hash is: base64 of SHA-256 over the bytes.
            spki_sha256_base64(good_js.as_bytes())
        )),
    );
    origin.route("/good.js", Reply::ok("text/javascript", good_js));
    origin.route(
        "/tampered.js",
        Reply::ok("text/javascript", "window.tampered = true;"),
    );
    origin.route("/favicon.ico", Reply::ok("image/svg+xml", SVG));
    let browser = browser_for(&origin);
    let page = browser.new_page().expect("new page");
    page.goto("http://site.test/").expect("goto");

    let requests = page.requests();
    let find = |url: &str| {
        requests
            .iter()
            .find(|request| request.url == url)
            .unwrap_or_else(|| panic!("no request for {url} in {requests:#?}"))
    };
    let far = find("http://elsewhere.test/x.svg");
    assert_eq!(far.failed.as_deref(), Some("net::ERR_NAME_NOT_RESOLVED"));
    assert_eq!(far.status, None);
    // (Chromium also stops reading the body of a 404 stylesheet: `net::ERR_ABORTED`.)
    let missing = find("http://site.test/missing.css");
    assert_eq!(missing.status, Some(404));
    assert!(!missing.succeeded());
    assert!(find("http://site.test/good.js").succeeded());
    // The tampered script arrives intact as far as the network is concerned (200, not failed);
    // the integrity check that blocks it shows up in the console.
    assert_eq!(find("http://site.test/tampered.js").status, Some(200));
    let ran = page.eval("[window.good === true, window.tampered === true]");
    assert_eq!(ran.expect("eval"), json!([true, false]));

    let errors = page.console_errors();
    let has = |source: &str, needle: &str| {
        errors
            .iter()
            .any(|error| error.source == source && error.text.contains(needle))
    };
    assert!(
        has("security", "'integrity'") && has("security", "http://site.test/tampered.js"),
        "{errors:#?}"
    );
    assert!(!has("security", "good.js"), "{errors:#?}");
    assert!(has("network", "ERR_NAME_NOT_RESOLVED"), "{errors:#?}");
    assert!(has("network", "status of 404"), "{errors:#?}");
    assert!(has("console-api", "logged 42"), "{errors:#?}");
    assert!(has("exception", "Error: boom"), "{errors:#?}");
    assert_eq!(errors.len(), 5, "{errors:#?}");
}

#[test]
fn a_redirect_is_recorded_hop_by_hop() {
    let origin = Origin::start();
    origin.route("/old", Reply::redirect(302, "/newer"));
    origin.route("/newer", Reply::redirect(301, "http://other.test/final"));
    origin.route("/final", Reply::html("<!doctype html><p>final"));
    origin.route("/favicon.ico", Reply::ok("image/svg+xml", SVG));
    let browser = browser_for(&origin);
    let page = browser.new_page().expect("new page");
    page.goto("http://site.test/old").expect("goto");
    let hops: Vec<_> = page
        .requests()
        .into_iter()
        .filter(|request| request.resource_type == "Document")
        .map(|request| (request.url, request.status, request.redirected_to))
        .collect();
    let hop = |url: &str, status: u16, to: Option<&str>| {
        (url.to_owned(), Some(status), to.map(str::to_owned))
    };
    assert_eq!(
        hops,
        [
            hop("http://site.test/old", 302, Some("http://site.test/newer")),
            hop(
                "http://site.test/newer",
                301,
                Some("http://other.test/final")
            ),
            hop("http://other.test/final", 200, None),
        ]
    );
    assert_eq!(
        page.eval("location.href").expect("eval"),
        "http://other.test/final"
    );
}

#[test]
fn a_cross_site_iframe_and_a_worker_report_their_requests() {
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::html(
            "<!doctype html><iframe src=http://other.test/frame></iframe>\
             <script>new Worker('/worker.js')</script>",
        ),
    );
    origin.route(
        "/frame",
        Reply::html("<!doctype html><img src=/in-frame.svg><script>fetch('/api')</script>"),
    );
    origin.route("/in-frame.svg", Reply::ok("image/svg+xml", SVG));
    origin.route("/api", Reply::ok("application/json", "{}"));
    origin.route(
        "/worker.js",
        Reply::ok("text/javascript", "fetch('/from-worker')"),
    );
    origin.route("/from-worker", Reply::ok("text/plain", "ok"));
    origin.route("/favicon.ico", Reply::ok("image/svg+xml", SVG));
    let browser = browser_for(&origin);
    let page = browser.new_page().expect("new page");
    page.goto("http://site.test/").expect("goto");
    assert_eq!(
        summary(&page),
        [
            row("http://other.test/api", "Fetch", 200),
            row("http://other.test/frame", "Document", 200),
            row("http://other.test/in-frame.svg", "Image", 200),
            row("http://site.test/", "Document", 200),
            row("http://site.test/from-worker", "Fetch", 200),
            row("http://site.test/worker.js", "Script", 200),
        ]
    );
    assert_eq!(page.console_errors(), []);
}

#[test]
fn navigation_and_script_errors_are_errors() {
    let origin = Origin::start();
    origin.route("/", Reply::html("<!doctype html><p>home"));
    origin.route("/favicon.ico", Reply::ok("image/svg+xml", SVG));
    let browser = browser_for(&origin);
    let page = browser.new_page().expect("new page");

    // Names without a mapping, and addresses too, do not resolve.
    for url in ["http://example.com/", &format!("http://{}/", origin.addr())] {
        match page.goto(url) {
            Err(BrowserError::Navigation { error, .. }) => {
                assert_eq!(error, "net::ERR_NAME_NOT_RESOLVED", "{url}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(origin.requests(), []);

    page.goto("http://site.test/").expect("goto");
    page.clear();
    assert_eq!(page.eval("6 * 7").expect("eval"), 42);
    assert_eq!(
        page.eval("undefined").expect("eval"),
        serde_json::Value::Null
    );
    let resolved = page.eval("new Promise(done => setTimeout(() => done('later'), 50))");
    assert_eq!(resolved.expect("eval"), "later");
    match page.eval("null.x") {
        Err(BrowserError::Js(message)) => assert!(message.contains("TypeError"), "{message}"),
        other => panic!("{other:?}"),
    }
    // An exception in an evaluation is the caller's error, not the page's.
    assert_eq!(page.console_errors(), []);
    match page.click_and_wait("a.nowhere") {
        Err(BrowserError::NoElement(selector)) => assert_eq!(selector, "a.nowhere"),
        other => panic!("{other:?}"),
    }

    let pid = browser.pid();
    drop(page);
    drop(browser);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "chromium {pid} survived the drop"
    );
}

#[test]
fn a_load_or_a_request_that_never_ends_is_a_timeout_not_a_hang() {
    let origin = Origin::start();
    // The first chunk now, the second when the test is long over.
    let stalled = |content_type| {
        Reply::new(200)
            .header("content-type", content_type)
            .chunks(["<!doctype html><p>first chunk", "never"])
            .chunk_delay(Duration::from_secs(120))
    };
    origin.route("/stalled", stalled("text/html"));
    origin.route("/stream", stalled("text/plain"));
    origin.route(
        "/",
        Reply::html("<!doctype html><script>fetch('/stream').then(r => r.text())</script>"),
    );
    origin.route("/favicon.ico", Reply::ok("image/svg+xml", SVG));
    let timeout = Duration::from_secs(3);
    let browser = Browser::launch(
        BrowserOptions::new()
            .map_host("site.test", origin.addr())
            .timeout(timeout),
    );
    let page = browser.new_page().expect("new page");

    let started = Instant::now();
    match page.goto("http://site.test/stalled") {
        Err(BrowserError::Timeout { what, after }) => {
            assert_eq!(what, "the load event of http://site.test/stalled");
            assert_eq!(after, timeout);
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());

    let started = Instant::now();
    match page.goto("http://site.test/") {
        Err(BrowserError::NotIdle { pending, .. }) => {
            assert_eq!(pending, ["http://site.test/stream"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());
    // The stalled document was still loading when the next navigation replaced it.
    let stalled = page
        .requests()
        .into_iter()
        .find(|r| r.url.ends_with("/stalled"));
    let failed = stalled
        .and_then(|request| request.failed)
        .unwrap_or_default();
    assert!(failed.starts_with("abandoned"), "{failed:?}");
}

#[test]
fn a_missing_binary_says_how_to_install_chromium() {
    let options = BrowserOptions::new().binary("/nonexistent/chromium");
    match Browser::try_launch(options) {
        Err(BrowserError::NotFound(message)) => {
            assert!(message.contains("/nonexistent/chromium"), "{message}");
            assert!(message.contains("./run setup"), "{message}");
            assert!(message.contains("apt-get install chromium"), "{message}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("launched a browser from /nonexistent/chromium"),
    }
}

/// An HTTPS server for one name with a fresh self-signed certificate; every request gets `body`.
struct TlsSite {
    addr: std::net::SocketAddr,
    spki_pin: String,
    _runtime: tokio::runtime::Runtime,
}

impl TlsSite {
    fn start(name: &str, body: &'static str) -> Self {
        use rcgen::PublicKeyData;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;

        let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("rcgen");
        let spki_pin = spki_sha256_base64(&certified.signing_key.subject_public_key_info());
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).expect("listener")
        };
        runtime.spawn(async move {
            while let Ok((tcp, _peer)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused certificate ends the handshake: nothing to answer.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            addr,
            spki_pin,
            _runtime: runtime,
        }
    }
}

#[test]
fn a_pinned_public_key_is_trusted_and_no_other_certificate_is() {
    let site = TlsSite::start(
        "secure.test",
        "<!doctype html><title>pinned</title><link rel=icon href=data:,>",
    );
    let options = || BrowserOptions::new().map_host("secure.test:443", site.addr);

    let pinned = Browser::launch(options().accept_spki(&site.spki_pin));
    let page = pinned.new_page().expect("new page");
    page.goto("https://secure.test/")
        .expect("goto with the pin");
    let state = page.eval("[document.title, window.isSecureContext]");
    assert_eq!(state.expect("eval"), json!(["pinned", true]));
    let document = &page.requests()[0];
    assert_eq!(document.url, "https://secure.test/");
    assert_eq!(document.status, Some(200));
    assert_eq!(document.remote_addr, Some(site.addr.to_string()));
    // Only port 443 of the name is mapped.
    match page.goto("http://secure.test/") {
        Err(BrowserError::Navigation { error, .. }) => {
            assert_eq!(error, "net::ERR_NAME_NOT_RESOLVED");
        }
        other => panic!("{other:?}"),
    }

    let other_pin = spki_sha256_base64(b"another key");
    let unpinned = Browser::launch(options().accept_spki(&other_pin));
    let page = unpinned.new_page().expect("new page");
    match page.goto("https://secure.test/") {
        Err(BrowserError::Navigation { error, .. }) => {
            assert_eq!(error, "net::ERR_CERT_AUTHORITY_INVALID");
        }
        other => panic!("a certificate nobody pinned was accepted: {other:?}"),
    }
}

//! A real browser through the whole chain: headless Chromium -> ferry-relay -> Envoy running
//! `envoy/us-east.yaml` with the Ferry filter -> the TLS demo origin.
//!
//! Chromium resolves only the mirror domain (`example.cn` and its subdomains, port 443) to the
//! relay; every other name fails to resolve, so a single URL left on the origin domain shows up
//! as a failed request. It trusts the mirror certificate by its key pin, and nothing else. The
//! test loads the demo site's home page, follows a link, and checks what a visitor would:
//! every request went to a mirror host and succeeded, nothing was logged as an error (a
//! Subresource Integrity failure is only a console error), the SRI-protected script ran, the
//! cookie the origin set for its own domain came back to it through the mirror.
//!
//! The control case runs the same page with `"integrity": "keep"`: the rewritten script then
//! fails its hash and the browser refuses it, which proves the main test would notice.
//!
//! The browser driver's own tests (what it records is what Chromium did) are in the `harness`
//! binary (`browser`).

use ferry_tests::browser::{spki_sha256_base64, Browser, BrowserOptions, Page};
use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::envoy::node;
use ferry_tests::EnvoyConfig;

/// The browser for `chain`: only the mirror domain resolves, to the relay.
fn browser_for(chain: &Chain) -> Browser {
    let relay = chain.relay_addr();
    Browser::launch(
        BrowserOptions::new()
            .map_host("example.cn:443", relay)
            .map_host("*.example.cn:443", relay)
            .accept_spki(&spki_sha256_base64(chain.mirror_spki())),
    )
}

fn is_mirror_host(host: &str) -> bool {
    host == "example.cn" || host.ends_with(".example.cn")
}

/// Every request of `page` as `METHOD url -> status / failure`, for messages.
fn report(page: &Page) -> String {
    page.requests()
        .iter()
        .map(|r| {
            format!(
                "  {} {} -> {:?} {}",
                r.method,
                r.url,
                r.status,
                r.failed.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_browser_sees_only_the_mirror_and_everything_loads() {
    let chain = Chain::start(ChainOptions::default());
    let browser = browser_for(&chain);
    let page = browser.new_page().expect("a page");

    page.goto("https://www.example.cn/")
        .unwrap_or_else(|err| panic!("home page: {err}\n{}", report(&page)));
    // The script behind an integrity hash ran, and its URL was rewritten.
    let sri = page.eval("window.ferrySri").expect("eval");
    assert_eq!(
        sri.as_str(),
        Some("https://www.example.cn/static/sri.js"),
        "the SRI-protected script did not run\n{:?}",
        page.console_errors()
    );
    let home_links = page
        .eval("Array.from(document.links, (a) => a.href).join(' ')")
        .expect("eval");
    let home_links = home_links.as_str().expect("a string");
    assert!(
        home_links.contains("https://www.example.cn/about"),
        "{home_links}"
    );
    assert!(!home_links.contains("example.com "), "{home_links}");

    page.click_and_wait("a[href='https://www.example.cn/about']")
        .unwrap_or_else(|err| panic!("following the link: {err}\n{}", report(&page)));
    let title = page.eval("document.title").expect("eval");
    assert_eq!(title.as_str(), Some("About"));

    // Every request went to a mirror host and succeeded.
    let requests = page.requests();
    let all = report(&page);
    let paths: Vec<String> = requests.iter().map(|r| r.url.clone()).collect();
    for expected in [
        "https://www.example.cn/",
        "https://example.cn/static/site.css",
        "https://example.cn/static/app.js",
        "https://www.example.cn/static/sri.js",
        "https://www.example.cn/static/print.css",
        "https://img.example.cn/waves.png",
        "https://www.example.cn/api/products.json",
        "https://www.example.cn/about",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "no request for {expected}:\n{all}"
        );
    }
    for request in &requests {
        let host = request.host().unwrap_or("");
        assert!(
            is_mirror_host(host),
            "a request left the mirror domain: {request:?}\n{all}"
        );
        assert!(request.succeeded(), "{request:?} failed\n{all}");
    }
    let errors = page.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}\n{all}");

    // The origin set `session` for `.example.com`; the browser holds it for the mirror and
    // sent it back, so the origin saw it on the second page.
    let cookies = page.cookies().expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name == "session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session.domain, ".example.cn");
    let about = chain.origin().requests_to("/about");
    let sent = about
        .last()
        .and_then(|r| r.header("cookie"))
        .unwrap_or_else(|| panic!("the origin got no cookie with /about: {about:?}"));
    assert!(sent.contains("session=demo"), "{sent}");
    assert_eq!(
        about.last().and_then(|r| r.host()),
        Some("www.example.com"),
        "the origin is asked for its own host"
    );

    let removed = chain
        .envoy()
        .counter("ferry.integrity_removed")
        .unwrap_or(0);
    assert!(removed >= 1, "{}", chain.envoy().stats());
}

#[test]
fn control_keeping_integrity_makes_the_browser_refuse_the_rewritten_script() {
    let shipped = EnvoyConfig::load(&node::us_east())
        .unwrap_or_else(|err| panic!("{err}"))
        .plugin_config_json()
        .expect("us-east.yaml has a plugin configuration");
    let mut config: serde_json::Value =
        serde_json::from_str(&shipped).expect("the shipped plugin config is JSON");
    config["integrity"] = serde_json::json!("keep");
    let chain = Chain::start(ChainOptions::default().plugin_config(&config.to_string()));
    let browser = browser_for(&chain);
    let page = browser.new_page().expect("a page");
    page.goto("https://www.example.cn/")
        .unwrap_or_else(|err| panic!("home page: {err}\n{}", report(&page)));
    let ran = page.eval("window.ferrySri === undefined").expect("eval");
    assert_eq!(
        ran.as_bool(),
        Some(true),
        "the script must have been refused"
    );
    let errors = page.console_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.text.contains("integrity") && e.text.contains("sri.js")),
        "expected an integrity error for sri.js: {errors:#?}"
    );
}

/// A page of more than a megabyte with thousands of links (what used to be reset over HTTP/2):
/// the browser gets it over HTTP/2, whole, every link on the mirror.
#[test]
fn a_large_page_with_thousands_of_links_loads_whole_over_http2() {
    let chain = Chain::start(ChainOptions::default().empty_origin());
    let links = 6000;
    let mut html = String::from("<!doctype html><html><head><title>big</title></head><body>\n");
    for i in 0..links {
        html.push_str(&format!(
            "<p><a href=\"https://www.example.com/item/{i}\">item {i} of example.com</a> {}</p>\n",
            "lorem ipsum dolor ".repeat(10)
        ));
    }
    html.push_str("<p id=\"end\">the end</p></body></html>\n");
    assert!(html.len() > 1_500_000, "{} bytes", html.len());
    chain.origin().route("/big", ferry_tests::Reply::html(html));

    let browser = browser_for(&chain);
    let page = browser.new_page().expect("a page");
    page.goto("https://www.example.cn/big")
        .unwrap_or_else(|err| panic!("the big page: {err}\n{}", report(&page)));
    let document = page
        .requests()
        .into_iter()
        .find(|r| r.url == "https://www.example.cn/big")
        .expect("the document request");
    assert_eq!(document.protocol.as_deref(), Some("h2"), "{document:?}");
    assert!(document.succeeded(), "{document:?}");
    let count = page.eval("document.links.length").expect("eval");
    assert_eq!(count.as_u64(), Some(links));
    let on_mirror = page
        .eval(
            "Array.from(document.links).every((a, i) => \
             a.href === 'https://www.example.cn/item/' + i)",
        )
        .expect("eval");
    assert_eq!(on_mirror.as_bool(), Some(true), "a link left the mirror");
    let end = page
        .eval("document.getElementById('end') && document.getElementById('end').textContent")
        .expect("eval");
    assert_eq!(end.as_str(), Some("the end"), "the page was cut short");
    let text = page
        .eval("document.body.innerText.includes('example.com')")
        .expect("eval");
    assert_eq!(text.as_bool(), Some(false));
}

/// A real application nobody here wrote: Django's admin behind gunicorn (TLS, production
/// settings, `ALLOWED_HOSTS` its own host only, CSRF checked against the browser's `Origin`),
/// published as the mirror. Log in, open the superuser's form, save it: the database holds
/// exactly what it held, although the form showed mirror names (and e-mail addresses stay).
#[test]
fn a_django_admin_edit_through_the_mirror_changes_no_stored_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = ferry_tests::pki::Pki::new(dir.path()).expect("a CA");
    let leaf = pki
        .issue_as("django", &["localhost"])
        .expect("a certificate");
    let user = [
        "See https://www.example.com/me",
        "EXAMPLE.COM",
        "admin@example.com",
    ];
    let site = ferry_tests::gunicorn::DjangoSite::start("www.example.com", leaf, user);
    let chain = Chain::start(ChainOptions {
        origin: ferry_tests::chain::OriginKind::Remote {
            host: "localhost".into(),
            port: site.server().addr().port(),
            ca: pki.ca_path(),
            address: None,
        },
        ..ChainOptions::default()
    });
    let browser = browser_for(&chain);
    let page = browser.new_page().expect("a page");
    let step = |what: &str, result: Result<(), ferry_tests::browser::BrowserError>| {
        result.unwrap_or_else(|err| {
            panic!(
                "{what}: {err}\n{}\n--- gunicorn ---\n{}",
                report(&page),
                site.server().log()
            )
        })
    };

    step("the admin", page.goto("https://www.example.cn/admin/"));
    let location = page.eval("location.pathname").expect("eval");
    assert_eq!(
        location.as_str(),
        Some("/admin/login/"),
        "{}",
        report(&page)
    );
    page.eval(
        "document.getElementById('id_username').value = 'admin';\
         document.getElementById('id_password').value = 'ferry-pass-1'; true",
    )
    .expect("fill in the login form");
    step("logging in", page.click_and_wait("input[type=submit]"));
    let title = page.eval("document.title").expect("eval");
    assert!(
        title
            .as_str()
            .is_some_and(|t| t.contains("Site administration")),
        "not logged in: {title}\n{}\n{}",
        report(&page),
        site.server().log()
    );

    step(
        "the user's form",
        page.goto("https://www.example.cn/admin/auth/user/1/change/"),
    );
    let shown = page
        .eval(
            "['id_first_name', 'id_last_name', 'id_email']\
             .map((id) => document.getElementById(id).value).join('|')",
        )
        .expect("eval");
    assert_eq!(
        shown.as_str(),
        Some("See https://www.example.cn/me|EXAMPLE.CN|admin@example.com"),
        "the mirror shows mirror names (and the e-mail address as it is)"
    );
    step("saving", page.click_and_wait("input[name=_save]"));
    let path = page.eval("location.pathname").expect("eval");
    assert_eq!(
        path.as_str(),
        Some("/admin/auth/user/"),
        "the save did not succeed\n{}\n{}",
        report(&page),
        site.server().log()
    );
    let stored = site.stored_user();
    assert_eq!(stored, user.map(str::to_owned), "the database changed");

    let all = report(&page);
    for request in page.requests() {
        let host = request.host().unwrap_or("");
        assert!(is_mirror_host(host), "left the mirror: {request:?}\n{all}");
        // The site has no favicon: the origin's own 404, through the mirror.
        let favicon = request.url.ends_with("/favicon.ico") && request.status == Some(404);
        assert!(request.succeeded() || favicon, "{request:?} failed\n{all}");
    }
    let posts = site
        .server()
        .log()
        .lines()
        .filter(|line| line.contains("\"POST "))
        .count();
    assert_eq!(
        posts,
        2,
        "the login and the save reached Django\n{}",
        site.server().log()
    );
}

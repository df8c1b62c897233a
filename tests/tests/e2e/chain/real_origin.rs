//! End to end with an origin nobody here wrote: gunicorn with gthread workers serving a WSGI
//! site over TLS (a thread serves one connection at a time, as Django sites commonly run),
//! behind the whole chain (relay -> `envoy/us-east.yaml` -> origin).
//!
//! Envoy's connection pool opens a new upstream connection for each request it cannot place at
//! once; when an earlier connection frees up first, the request goes there and the new
//! connection is left idle without ever carrying a request. gthread hands every accepted
//! connection to a thread that waits for its first request, so each such connection holds a
//! thread, and with the shipped config's former 60 s idle timeout a page's requests hung
//! behind them until the route's 60 s timeout. The origin cluster lets go of a connection after
//! 1 s without a request, so a page loads in seconds (slower than directly: the origin's few
//! threads still wait on such connections for that second; a buffering proxy in front of
//! gunicorn, or more threads, is the origin-side cure).
//!
//! Part of `chain`. Django's admin behind gunicorn, in a browser, is in `browser`.

use std::time::{Duration, Instant};

use ferry_tests::chain::{Chain, ChainOptions, OriginKind};
use ferry_tests::gunicorn::{Gunicorn, GunicornOptions};
use ferry_tests::pki::Pki;
use ferry_tests::{Client, Request};

const ASSETS: usize = 30;

#[test]
fn page_loads_against_a_thread_per_connection_origin_never_hang() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path()).expect("a CA");
    let leaf = pki.issue_as("site", &["localhost"]).expect("a certificate");
    let mut options = GunicornOptions::wsgi_site(leaf, 4);
    options
        .env
        .push(("FERRY_SITE_ASSETS".into(), ASSETS.to_string()));
    let site = Gunicorn::start(&options);
    let chain = Chain::start(ChainOptions {
        origin: OriginKind::Remote {
            host: "localhost".into(),
            port: site.addr().port(),
            ca: pki.ca_path(),
            address: None,
        },
        ..ChainOptions::default()
    });
    let relay = chain.relay_addr();
    let ca = chain.ca_path();
    for load in 0..3 {
        let started = Instant::now();
        let page = Client::https(relay, "www.example.cn", &ca)
            .with_timeout(Duration::from_secs(15))
            .send(&Request::get("www.example.cn", "/"))
            .unwrap_or_else(|e| panic!("load {load}, the page: {e}\n{}", site.log()));
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(page.text().contains("https://www.example.cn/static/0.css"));
        // The stylesheets at once, as a browser fetches them.
        std::thread::scope(|scope| {
            for i in 0..ASSETS {
                let ca = &ca;
                let site = &site;
                scope.spawn(move || {
                    let path = format!("/static/{i}.css");
                    let response = Client::https(relay, "www.example.cn", ca)
                        .with_timeout(Duration::from_secs(15))
                        .send(&Request::get("www.example.cn", &path))
                        .unwrap_or_else(|e| panic!("load {load}, {path}: {e}\n{}", site.log()));
                    assert_eq!(response.status, 200, "load {load}, {path}");
                    assert!(response.text().contains("of https://www.example.cn/"));
                });
            }
        });
        eprintln!("load {load}: {:?}", started.elapsed());
        // A visitor reading the page before the next click.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

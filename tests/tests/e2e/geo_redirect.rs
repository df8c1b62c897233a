//! The geo redirect: a visitor from a listed country who asks for an origin host gets one 301
//! to the mirror host, the country taken from the visitor's address, never from a header the
//! visitor sent; the mirror host, the opt-out cookie and exempt paths are never redirected.
//! Here through the shipped node configs: `envoy/us-east.yaml` behind the relay (geoip), and
//! the redirect-only node `envoy/redirect.yaml` behind an L4 balancer, which proxies everyone
//! else to the origin untouched.
//!
//! In the submodules: `networks`, address mode (`redirect.networks`) with a China-sized list
//! made by `tools/rir-networks`; `geoip`, Envoy's geoip filter reading a country database
//! written by `ferry_tests::mmdb`. Related: the tools that make the list and the database in
//! `tools`; the database writer's own tests in the `harness` binary (`mmdb`).

mod geoip;
mod networks;

use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::envoy::node::{self, LocalFiles};
use ferry_tests::relay::{Relay, RelayOptions};
use ferry_tests::{Client, Envoy, EnvoyConfig, Origin, Reply, Request};

use crate::support::proxy_v1;

#[test]
fn the_country_comes_from_the_visitor_address_never_from_a_header() {
    let chain = Chain::start(ChainOptions::default());
    let visit = |ip: &str, host: &str, spoofed: Option<&str>| {
        let mut request = Request::get(host, "/about?from=test");
        if let Some(country) = spoofed {
            request = request.header("x-geo-country", country);
        }
        let client = chain.client_from(ip.parse().expect("an IP"), host);
        client
            .send(&request)
            .unwrap_or_else(|err| panic!("{ip}: {err}"))
    };

    // A visitor from China (1.0.1.0/24 CN) asking for the origin domain is sent to the mirror,
    // whatever country it claims.
    let china = visit("1.0.1.7", "www.example.com", Some("US"));
    assert_eq!(china.status, 301, "{}", china.text());
    assert_eq!(
        china.header("location"),
        Some("https://www.example.cn/about?from=test")
    );
    assert_eq!(china.header("cache-control"), Some("private, max-age=3600"));

    // A visitor from the United States (8.8.8.0/24) claiming China is served, and the origin
    // sees the country of the address.
    chain.origin().clear_requests();
    let us = visit("8.8.8.8", "www.example.com", Some("CN"));
    assert_eq!(us.status, 200, "{}", us.text());
    let seen = chain.origin().last_request().expect("the origin saw it");
    assert_eq!(seen.header_all("x-geo-country"), ["US"]);
    assert_eq!(seen.header("x-forwarded-for"), Some("8.8.8.8"));

    // An address in no known country (TEST-NET-3) claiming China: no country at all, so no
    // redirect, and the claim does not reach the origin.
    chain.origin().clear_requests();
    let unknown = visit("203.0.113.9", "www.example.com", Some("CN"));
    assert_eq!(unknown.status, 200, "{}", unknown.text());
    let seen = chain.origin().last_request().expect("the origin saw it");
    assert_eq!(seen.header_all("x-geo-country"), Vec::<&str>::new());

    // Visitors from China asking for the mirror are served, never redirected.
    let mirror = visit("1.0.1.7", "www.example.cn", None);
    assert_eq!(mirror.status, 200, "{}", mirror.text());

    // The opt-out cookie and the exempt paths keep a visitor from China on the origin domain.
    let client = chain.client_from("1.0.1.7".parse().expect("an IP"), "www.example.com");
    let stay = client
        .send(&Request::get("www.example.com", "/about").header("cookie", "ferry_stay=1"))
        .expect("opt-out request");
    assert_eq!(stay.status, 200, "{}", stay.text());
    let acme = client
        .send(&Request::get(
            "www.example.com",
            "/.well-known/acme-challenge/x",
        ))
        .expect("exempt request");
    assert_ne!(acme.status, 301, "exempt paths are never redirected");
}

#[test]
fn the_redirect_node_sends_china_to_the_mirror_and_proxies_everyone_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = LocalFiles::generate(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let upstream = files
        .pki
        .issue_as("upstream", &["example.com", "*.example.com"])
        .expect("the origin's certificate");
    let origin = Origin::start_tls(&upstream);
    let page = "<a href=\"https://www.example.com/about\">about</a>";
    origin.route("*", Reply::html(page));
    let config = EnvoyConfig::load(&node::redirect())
        .unwrap_or_else(|err| panic!("{err}"))
        .file(node::ORIGIN_CERT, &files.origin.cert_pem)
        .file(node::ORIGIN_KEY, &files.origin.key_pem)
        .relay_prefixes(&["127.0.0.0/8"])
        .geoip_db(&files.geoip_db)
        .origin(origin.addr())
        .origin_ca(files.pki.ca_path());
    let envoy = Envoy::start(&config);
    // The L4 balancer in front of the node, trusting the test's own PROXY headers.
    let balancer =
        Relay::start(&RelayOptions::new(envoy.listener("https")).accept_proxy_from("127.0.0.0/8"));
    let ca = files.pki.ca_path();
    let visit = |ip: &str, host: &str| {
        Client::https(balancer.addr(), "www.example.com", &ca)
            .with_preamble(proxy_v1(ip.parse().expect("an IP")))
            .send(&Request::get(host, "/products?id=7"))
            .unwrap_or_else(|err| panic!("{ip} {host}: {err}"))
    };

    let china = visit("1.0.1.7", "www.example.com");
    assert_eq!(china.status, 301, "{}", china.text());
    assert_eq!(
        china.header("location"),
        Some("https://www.example.cn/products?id=7")
    );
    assert!(
        origin.requests().is_empty(),
        "a redirect never reaches the origin"
    );

    let us = visit("8.8.8.8", "www.example.com");
    assert_eq!(us.status, 200, "{}", us.text());
    assert_eq!(us.text(), page, "proxied untouched");
    let seen = origin.last_request().expect("the origin saw it");
    assert_eq!(seen.host(), Some("www.example.com"));
    assert_eq!(seen.header("x-forwarded-for"), Some("8.8.8.8"));

    // Hosts that are neither the origin's nor the mirror's get nothing from the origin.
    let other = visit("8.8.8.8", "www.example.org");
    assert_eq!(other.status, 421, "{}", other.text());
    assert_eq!(origin.requests().len(), 1);
}

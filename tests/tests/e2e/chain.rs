//! The whole chain on loopback: visitor -> ferry-relay (PROXY v2) -> Envoy running
//! `envoy/us-east.yaml` (TLS, geoip, Ferry) -> a TLS origin.
//!
//! Pinned down: the mirror page comes back rewritten over TLS through the relay, over HTTP/1.1
//! and HTTP/2; Envoy accepts connections only from the relays' range (a PROXY header from
//! anywhere else gets nothing); the access log names the visitor and the relay; Envoy verifies
//! the origin's certificate; plain HTTP is redirected to HTTPS; the relay's health checks are
//! well-formed PROXY connections; `x-forwarded-for` is the visitor's address only; `Origin` and
//! `Referer` agree with the host the origin sees; responses with many headers pass.
//!
//! In the submodules: `relay`, the relay in front of the minimal config with Envoy's PROXY
//! listener filter; `real_origin`, gunicorn behind the chain; `long_link`, the chain split across
//! an emulated 60 ms link, where a new visitor's response comes two round trips after it
//! connects (root: network namespaces). Related: the country and the
//! redirect through the same chain in `geo_redirect`; the shipped configs validated in
//! `deploy`; the streaming matrix through the chain in `rewrite_bodies::streaming_matrix`; a
//! browser through it in `browser`.

mod long_link;
mod real_origin;
mod relay;

use std::time::Duration;

use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::client::ClientError;
use ferry_tests::{Client, Reply, Request};

use crate::support::proxy_v1;

/// `text` with the demo site's look-alike domains (`example.community`, `myexample.com`, ...)
/// and e-mail addresses (which keep their domain) blanked out: what is left must not mention
/// the origin domain.
fn without_decoys(chain: &Chain, text: &str) -> String {
    chain
        .site()
        .kept()
        .iter()
        .fold(text.to_owned(), |text, decoy| {
            text.replace(decoy, "<decoy>")
        })
}

#[test]
fn the_mirror_page_comes_back_rewritten_over_tls_through_the_relay() {
    let chain = Chain::start(ChainOptions::default());
    for client in [
        chain.client("www.example.cn"),
        Client::https_h2(chain.relay_addr(), "www.example.cn", &chain.ca_path()),
    ] {
        let response = client.get("www.example.cn", "/");
        assert_eq!(response.status, 200, "{}", response.text());
        let page = response.text();
        assert!(page.contains("https://www.example.cn/about"), "{page}");
        let rest = without_decoys(&chain, &page);
        assert!(
            !rest.contains("example.com"),
            "the origin domain is left: {rest}"
        );
        for decoy in chain.site().decoys() {
            assert!(
                page.contains(&decoy),
                "the look-alike {decoy} must stay: {page}"
            );
        }
        let seen = chain
            .origin()
            .last_request()
            .expect("the origin saw the request");
        assert_eq!(seen.host(), Some("www.example.com"));
        assert_eq!(
            seen.sni.as_deref(),
            Some("example.com"),
            "Envoy's SNI to the origin"
        );
    }
    // The origin domain is answered too, with its own certificate, and passes untouched.
    let response = chain.client("www.example.com").get("www.example.com", "/");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().contains("https://www.example.com/about"));
}

#[test]
fn only_connections_from_the_relays_are_accepted() {
    // The relays' range is 127.0.0.1 alone; 127.0.0.3 is "another host" on loopback.
    let chain = Chain::start(ChainOptions::default().relay_prefixes(&["127.0.0.1/32"]));
    let https = chain.envoy().listener("https");
    let ca = chain.ca_path();
    let stat = "listener.https.no_filter_chain_match";
    let china = "1.0.1.7".parse().expect("an IP");
    let before = chain.envoy().counter(stat).unwrap_or(0);

    // Anyone else gets nothing, even with a well-formed PROXY header claiming to be from China.
    let outsider = Client::https(https, "www.example.cn", &ca)
        .with_source("127.0.0.3".parse().expect("an IP"))
        .with_preamble(proxy_v1(china))
        .with_timeout(Duration::from_secs(10));
    let refused = outsider.send(&Request::get("www.example.cn", "/"));
    assert!(
        matches!(refused, Err(ClientError::Tls { .. })),
        "a connection from 127.0.0.3 must be closed before TLS: {refused:?}"
    );
    let after = chain.envoy().counter(stat).unwrap_or(0);
    assert_eq!(after, before + 1, "counted as matching no filter chain");

    // The same bytes from the relays' address are served...
    let insider = Client::https(https, "www.example.cn", &ca)
        .with_source("127.0.0.1".parse().expect("an IP"))
        .with_preamble(proxy_v1(china));
    assert_eq!(insider.get("www.example.cn", "/").status, 200);
    // ...and so is the relay, which connects from 127.0.0.1.
    assert_eq!(
        chain
            .client("www.example.cn")
            .get("www.example.cn", "/")
            .status,
        200
    );
    // Without a PROXY header, even the relays' address gets nothing.
    let bare = Client::https(https, "www.example.cn", &ca)
        .with_source("127.0.0.1".parse().expect("an IP"))
        .with_timeout(Duration::from_secs(10))
        .send(&Request::get("www.example.cn", "/"));
    assert!(bare.is_err(), "{bare:?}");
}

#[test]
fn the_access_log_names_the_visitor_and_the_relay() {
    let chain = Chain::start(ChainOptions::default());
    let client = chain.client_from("198.51.100.23".parse().expect("an IP"), "www.example.cn");
    let response = client
        .send(&Request::get("www.example.cn", "/about?log=1"))
        .expect("request");
    assert_eq!(response.status, 200);
    let line = chain
        .envoy()
        .wait_for_access_log("/about?log=1", Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("no access log line for the request:\n{log}"));
    let entry: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
    assert_eq!(
        entry["client"].as_str(),
        Some("198.51.100.23:40000"),
        "{line}"
    );
    let relay = entry["relay"].as_str().expect("relay address");
    assert!(relay.starts_with("127.0.0.1:"), "{line}");
    assert_eq!(entry["sni"].as_str(), Some("www.example.cn"), "{line}");
    assert_eq!(
        entry["country"].as_str(),
        Some("US"),
        "198.51.100.0/24 is US: {line}"
    );
    assert_eq!(entry["status"].as_u64(), Some(200), "{line}");
    let upstream = entry["upstream_host"].as_str().expect("upstream host");
    assert_eq!(upstream, chain.origin().addr().to_string(), "{line}");
}

#[test]
fn envoy_verifies_the_origin_certificate() {
    // The origin presents a certificate from the trusted CA, but for another name.
    let chain = Chain::start(ChainOptions::default().origin_cert_names(&["other.test"]));
    let response = chain.client("www.example.cn").get("www.example.cn", "/");
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        chain.origin().requests().is_empty(),
        "nothing reached the origin"
    );
    let failed = chain.envoy().counter("cluster.origin.ssl.fail_verify_san");
    assert!(failed.unwrap_or(0) >= 1, "{}", chain.envoy().stats());
}

#[test]
fn plain_http_is_redirected_to_https() {
    let chain = Chain::start(ChainOptions::default());
    let http = chain
        .http_addr()
        .expect("us-east.yaml has an http listener");
    let response = Client::http1(http).get("www.example.cn", "/about?x=1");
    assert_eq!(response.status, 301, "{}", response.text());
    assert_eq!(
        response.header("location"),
        Some("https://www.example.cn/about?x=1")
    );
}

/// The relay's health checks of Envoy send a PROXY v2 `LOCAL` header (as HAProxy's
/// `check-send-proxy` does), so Envoy's PROXY listener filter sees well-formed connections
/// rather than counting an error for each check.
#[test]
fn relay_health_checks_are_well_formed_proxy_connections() {
    let chain = Chain::start(ChainOptions::default());
    let envoy = chain.envoy();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    // No visitor connects: every PROXY header Envoy reads is a health check's. (Envoy does not
    // count every check: one that closes before Envoy has read from it leaves no trace.)
    while envoy
        .counter("proxy_proto.relay.versions.v2.found")
        .unwrap_or(0)
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no health check reached Envoy:\n{}",
            envoy.stats()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two more health intervals (2 s by default) of checks.
    std::thread::sleep(Duration::from_secs(4));
    for stat in [
        "proxy_proto.relay.not_found_disallowed",
        "proxy_proto.relay.versions.v2.error",
        "downstream_cx_proxy_proto_error",
    ] {
        assert_eq!(envoy.counter(stat), Some(0), "{stat}:\n{}", envoy.stats());
    }
}

/// The origin learns the visitor's address from `x-forwarded-for` and nothing else: a value
/// the visitor sent is replaced, so an origin that reads the first entry is not fooled.
#[test]
fn x_forwarded_for_is_the_visitor_address_only() {
    let chain = Chain::start(ChainOptions::default().empty_origin());
    chain.origin().route("*", Reply::html("ok"));
    for (host, sent) in [
        ("www.example.cn", None),
        ("www.example.cn", Some("6.6.6.6")),
        ("www.example.com", Some("6.6.6.6, 10.0.0.1")),
    ] {
        let mut request = Request::get(host, "/who");
        if let Some(sent) = sent {
            request = request.header("x-forwarded-for", sent);
        }
        let client = chain.client_from("8.8.8.8".parse().expect("an address"), host);
        let response = client.send(&request).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status, 200, "{host}");
        let seen = chain.origin().last_request().expect("the origin saw it");
        assert_eq!(
            seen.header_all("x-forwarded-for"),
            ["8.8.8.8"],
            "{host}, sent {sent:?}"
        );
    }
}

/// A visitor who reached the mirror on another port than the origin's (a test set-up, a
/// non-443 listener): the US East node strips the port from the host, and Ferry gives `Origin`
/// and `Referer` the same, so an origin that checks `Origin` against `Host` (Django's CSRF
/// check) sees them agree, and a form post gets through with its exact length.
#[test]
fn origin_and_referer_agree_with_the_host_the_origin_sees() {
    let chain = Chain::start(ChainOptions::default().empty_origin());
    chain.origin().route("*", Reply::html("ok"));
    let form = "next=https%3A%2F%2Fwww.example.cn%3A8443%2Fadmin%2F&email=a%40example.cn";
    for client in [
        chain.client("www.example.cn"),
        Client::https_h2(chain.relay_addr(), "www.example.cn", &chain.ca_path()),
    ] {
        let request = Request::new("POST", "www.example.cn:8443", "/admin/login/")
            .header("origin", "https://www.example.cn:8443")
            .header(
                "referer",
                "https://www.example.cn:8443/admin/login/?next=/admin/",
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        let response = client.send(&request).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status, 200, "{}", response.text());
        let seen = chain.origin().last_request().expect("the origin saw it");
        assert_eq!(seen.host(), Some("www.example.com"), "{seen:?}");
        assert_eq!(seen.header("origin"), Some("https://www.example.com"));
        assert_eq!(
            seen.header("referer"),
            Some("https://www.example.com/admin/login/?next=/admin/")
        );
        let expected = "next=https%3A%2F%2Fwww.example.com%3A8443%2Fadmin%2F&email=a%40example.cn";
        assert_eq!(seen.body, expected.as_bytes(), "{seen:?}");
        assert_eq!(
            seen.header("content-length"),
            Some(expected.len().to_string().as_str())
        );
    }
}

/// Real sites answer with many headers (a login that sets a hundred and fifty cookies): they
/// reach the visitor over HTTP/1.1 and HTTP/2, each cookie's `Domain` mapped.
#[test]
fn responses_with_many_headers_pass_over_both_protocols() {
    let chain = Chain::start(ChainOptions::default().empty_origin());
    let mut reply = Reply::html("ok");
    for i in 0..160 {
        reply = reply.header(
            "set-cookie",
            &format!(
                "c{i}=v{i}-{}; Domain=example.com; Path=/; Secure",
                "x".repeat(200)
            ),
        );
    }
    chain.origin().route("/login", reply);
    let (relay, ca) = (chain.relay_addr(), chain.ca_path());
    for client in [
        Client::https(relay, "www.example.cn", &ca),
        Client::https_h2(relay, "www.example.cn", &ca),
    ] {
        let response = client
            .send(&Request::get("www.example.cn", "/login"))
            .unwrap_or_else(|e| panic!("{:?}: {e}", client.version()));
        assert_eq!(response.status, 200, "{:?}", client.version());
        let cookies = response.header_all("set-cookie");
        assert_eq!(cookies.len(), 160, "{:?}", client.version());
        assert!(
            cookies.iter().all(|c| c.contains("Domain=example.cn;")),
            "{:?}",
            client.version()
        );
    }
}

/// Envoy restarts while the relay holds warm connections to it: they die with the old Envoy,
/// and no visitor gets one. Every visitor right after the restart is served in full.
#[test]
fn visitors_are_served_across_an_envoy_restart_with_warm_connections() {
    let mut chain = Chain::start(ChainOptions::default());
    let warm = format!(
        "ferry_relay_upstream_warm_idle{{listener=\"visitors\",upstream=\"{}\"}}",
        chain.envoy().listener("https")
    );
    chain.relay().wait_metric(&warm, |n| n >= 2);
    chain
        .restart_envoy()
        .expect("a second Envoy on the same ports");
    for i in 0..10 {
        let response = chain.client("www.example.cn").get("www.example.cn", "/");
        assert_eq!(response.status, 200, "visitor {i}");
        let body = String::from_utf8_lossy(&response.body);
        assert!(
            body.contains("</html>"),
            "visitor {i} got a cut page: {body}"
        );
    }
    let discarded = format!(
        "ferry_relay_upstream_warm_discarded_total{{listener=\"visitors\",upstream=\"{}\"}}",
        chain.envoy().listener("https")
    );
    let dead = chain.relay().metric(&discarded).unwrap_or(0);
    assert!(
        dead >= 1,
        "no warm connection was found dead after the restart"
    );
}

//! The shipped Envoy configs, and the whole chain on loopback: browser -> ferry-relay (PROXY v2)
//! -> Envoy running `envoy/us-east.yaml` (TLS, geoip, Ferry) -> a TLS origin.
//!
//! What is pinned down: every config validates with only its files replaced by local ones (and
//! names no file outside the documented set); the mirror page comes back rewritten over TLS
//! through the relay; Envoy accepts connections only from the relays' range (a PROXY header
//! from anywhere else gets nothing); the country comes from the visitor's address, never from a
//! header the visitor sent; the access log names the visitor and the relay; Envoy verifies the
//! origin's certificate; the redirect-only node (`envoy/redirect.yaml`) redirects visitors from
//! China and proxies everyone else. They need Envoy, the `.wasm` and `ferry-relay`, and fail
//! with how to get them.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::client::ClientError;
use ferry_tests::envoy::node::{self, LocalFiles};
use ferry_tests::relay::{Relay, RelayOptions};
use ferry_tests::{paths, Client, Envoy, EnvoyConfig, Origin, Reply, Request};

#[test]
fn every_shipped_envoy_config_validates_with_only_its_files_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = LocalFiles::generate(dir.path()).unwrap_or_else(|err| panic!("{err}"));
    let every_file: BTreeSet<&str> = node::FILES.iter().map(|(path, _)| *path).collect();
    let expected = |name: &str| -> BTreeSet<&str> {
        match name {
            "ferry.yaml" => BTreeSet::new(),
            "us-east.yaml" => every_file.clone(),
            "redirect.yaml" => [
                node::ORIGIN_CERT,
                node::ORIGIN_KEY,
                node::GEOIP_DB,
                node::WASM,
                node::SYSTEM_CA,
            ]
            .into(),
            other => panic!("envoy/{other} is new: say here which files it names"),
        }
    };
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(paths::envoy_dir()).expect("read envoy/") {
        let path = entry.expect("read envoy/").path();
        if !path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            continue;
        }
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read the config");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
        let named = node::file_paths(&doc);
        let named: BTreeSet<&str> = named.iter().map(String::as_str).collect();
        assert_eq!(named, expected(&name), "{name}: the files it names");
        // A crashed VM is reloaded for the next request, not left answering 503 (checked by
        // hand with a module that traps: FAIL_CLOSED kept every later request at 503).
        let plugin = find_mapping(&doc, "root_id", "ferry").expect("the Ferry wasm filter");
        assert_eq!(
            plugin.get("failure_policy").and_then(|v| v.as_str()),
            Some("FAIL_RELOAD"),
            "{name}: the Ferry filter's failure_policy"
        );

        let rendered = node::with_local_files(&path, &files).unwrap_or_else(|err| panic!("{err}"));
        let local = dir.path().join(&name);
        std::fs::write(&local, rendered).expect("write the config");
        if let Err(output) = Envoy::validate(&local) {
            panic!("{name} does not validate with local files:\n{output}");
        }
        checked.push(name);
    }
    checked.sort();
    assert_eq!(checked, ["ferry.yaml", "redirect.yaml", "us-east.yaml"]);

    // Validation loads the filter, which checks its plugin configuration: an unknown field fails.
    let shipped = std::fs::read_to_string(node::us_east()).expect("read us-east.yaml");
    let bad = shipped.replacen("\"redirect\":", "\"no_such_field\": 1, \"redirect\":", 1);
    assert_ne!(
        bad, shipped,
        "the plugin configuration has a redirect section"
    );
    let bad_path = dir.path().join("bad-source.yaml");
    std::fs::write(&bad_path, bad).expect("write the config");
    let rendered = node::with_local_files(&bad_path, &files).unwrap_or_else(|err| panic!("{err}"));
    let bad_path = dir.path().join("bad.yaml");
    std::fs::write(&bad_path, rendered).expect("write the config");
    let refused =
        Envoy::validate(&bad_path).expect_err("an unknown plugin field must not validate");
    assert!(refused.contains("no_such_field"), "{refused}");
}

/// The first mapping in `doc` (depth first) whose `key` is the string `value`.
fn find_mapping<'a>(
    doc: &'a serde_yaml::Value,
    key: &str,
    value: &str,
) -> Option<&'a serde_yaml::Mapping> {
    match doc {
        serde_yaml::Value::Mapping(map) => {
            if map.get(key).and_then(|v| v.as_str()) == Some(value) {
                return Some(map);
            }
            map.values().find_map(|v| find_mapping(v, key, value))
        }
        serde_yaml::Value::Sequence(items) => {
            items.iter().find_map(|v| find_mapping(v, key, value))
        }
        _ => None,
    }
}

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

/// A PROXY v1 header for a visitor at `ip`.
fn proxy_header(ip: &str) -> String {
    format!("PROXY TCP4 {ip} 127.0.0.1 40000 443\r\n")
}

#[test]
fn only_connections_from_the_relays_are_accepted() {
    // The relays' range is 127.0.0.1 alone; 127.0.0.3 is "another host" on loopback.
    let chain = Chain::start(ChainOptions::default().relay_prefixes(&["127.0.0.1/32"]));
    let https = chain.envoy().listener("https");
    let ca = chain.ca_path();
    let stat = "listener.https.no_filter_chain_match";
    let before = chain.envoy().counter(stat).unwrap_or(0);

    // Anyone else gets nothing, even with a well-formed PROXY header claiming to be from China.
    let outsider = Client::https(https, "www.example.cn", &ca)
        .with_source("127.0.0.3".parse().expect("an IP"))
        .with_preamble(proxy_header("1.0.1.7"))
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
        .with_preamble(proxy_header("1.0.1.7"));
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
            .with_preamble(proxy_header(ip))
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

//! Tests of the geo redirect decision: a table of requests, the response, configured status,
//! port, scheme and exempt paths, the opt-out cookie, hosts, networks, and hostile input that
//! must never produce a Location outside the mirror domain.

use std::net::IpAddr;

use super::*;
use crate::config::Config;

const DOMAINS: &str = r#""domains": [
    {"origin": "example.com", "mirror": "example.cn", "subdomains": true},
    {"origin": "examplecdn.net", "mirror": "cdn.example.cn"},
    {"origin": "shop.test", "mirror": "shop.example.org"}]"#;

fn config(redirect: &str) -> (RedirectConfig, HostMap) {
    let json = format!(r#"{{{DOMAINS}, "redirect": {redirect}}}"#);
    let config = Config::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
    let hosts = HostMap::new(&config.domains);
    (config.redirect.expect("redirect configured"), hosts)
}

fn header_config() -> (RedirectConfig, HostMap) {
    config(r#"{"countries": ["CN"], "opt_out_cookie": "ferry_stay"}"#)
}

fn get<'a>(authority: &'a str, path: &'a str, country: Option<&'a str>) -> RequestFacts<'a> {
    RequestFacts {
        method: b"GET",
        authority: authority.as_bytes(),
        path: path.as_bytes(),
        country: country.map(str::as_bytes),
        cookies: &[],
        fetch_mode: None,
    }
}

fn location(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::Redirect(r) => Some(&r.location),
        Decision::Stay(_) => None,
    }
}

#[test]
fn header_decisions() {
    let (c, hosts) = header_config();
    let no_source = || -> Option<IpAddr> { panic!("the address is not needed with a header") };
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Result<&'a str, Stay>,
    );
    let cases: &[Case] = &[
        // method, authority, path, country -> location or why not
        (
            "GET",
            "example.com",
            "/",
            Some("CN"),
            Ok("https://example.cn/"),
        ),
        (
            "HEAD",
            "example.com",
            "/a",
            Some("CN"),
            Ok("https://example.cn/a"),
        ),
        (
            "GET",
            "www.example.com",
            "/p?q=1&r=%2F#x",
            Some("cn"),
            Ok("https://www.example.cn/p?q=1&r=%2F#x"),
        ),
        (
            "GET",
            "WWW.Example.COM:443",
            "/x",
            Some(" CN "),
            Ok("https://www.example.cn/x"),
        ),
        (
            "GET",
            "example.com.",
            "//evil.test/x",
            Some("CN"),
            Ok("https://example.cn//evil.test/x"),
        ),
        (
            "GET",
            "examplecdn.net",
            "/lib.js",
            Some("CN"),
            Ok("https://cdn.example.cn/lib.js"),
        ),
        ("POST", "example.com", "/", Some("CN"), Err(Stay::Method)),
        ("OPTIONS", "example.com", "/", Some("CN"), Err(Stay::Method)),
        ("get", "example.com", "/", Some("CN"), Err(Stay::Method)),
        ("GET", "example.cn", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "www.example.cn", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "cdn.example.cn", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "a.examplecdn.net", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "evil.test", "/", Some("CN"), Err(Stay::Host)),
        (
            "GET",
            "example.com.evil.test",
            "/",
            Some("CN"),
            Err(Stay::Host),
        ),
        ("GET", "[::1]:443", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "..example.com", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "a..b.example.com", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "203.0.113.9", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "", "/", Some("CN"), Err(Stay::Host)),
        ("GET", "example.com", "*", Some("CN"), Err(Stay::Path)),
        (
            "GET",
            "example.com",
            "https://evil.test/",
            Some("CN"),
            Err(Stay::Path),
        ),
        ("GET", "example.com", "/a b", Some("CN"), Err(Stay::Path)),
        (
            "GET",
            "example.com",
            "/caf\u{e9}",
            Some("CN"),
            Err(Stay::Path),
        ),
        (
            "GET",
            "example.com",
            "/a\r\nSet-Cookie: x=1",
            Some("CN"),
            Err(Stay::Path),
        ),
        (
            "GET",
            "example.com",
            "/.well-known/acme-challenge/t",
            Some("CN"),
            Err(Stay::Exempt),
        ),
        (
            "GET",
            "example.com",
            "/",
            Some("US"),
            Err(Stay::OtherCountry),
        ),
        (
            "GET",
            "example.com",
            "/",
            Some("CNN"),
            Err(Stay::OtherCountry),
        ),
        ("GET", "example.com", "/", None, Err(Stay::UnknownCountry)),
        (
            "GET",
            "example.com",
            "/",
            Some(""),
            Err(Stay::UnknownCountry),
        ),
    ];
    for (method, authority, path, country, want) in cases {
        let request = RequestFacts {
            method: method.as_bytes(),
            ..get(authority, path, *country)
        };
        let decision = c.decide(&hosts, &request, no_source);
        let got = match &decision {
            Decision::Redirect(r) => Ok(r.location.as_str()),
            Decision::Stay(why) => Err(*why),
        };
        assert_eq!(got, *want, "{method} {authority}{path} from {country:?}");
    }
}

#[test]
fn the_response_is_private_and_links_the_location() {
    let (c, hosts) = header_config();
    let d = c.decide(
        &hosts,
        &get("example.com", "/a?b=<c>&d", Some("CN")),
        || None,
    );
    let Decision::Redirect(r) = d else {
        panic!("{d:?}")
    };
    assert_eq!(r.status, 301);
    assert_eq!(r.cache_control, "private, max-age=3600");
    assert_eq!(r.location, "https://example.cn/a?b=<c>&d");
    assert!(
        r.body
            .contains("href=\"https://example.cn/a?b=&lt;c&gt;&amp;d\""),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<c>"));
}

#[test]
fn configured_status_port_scheme_and_age() {
    let (c, hosts) = config(
        r#"{"countries": ["CN", "hk"], "status": 308, "port": 8443, "scheme": "http",
            "max_age": 0, "exempt_paths": ["/health", "/api/"]}"#,
    );
    let d = c.decide(&hosts, &get("example.com:10443", "/x", Some("HK")), || None);
    let Decision::Redirect(r) = d else {
        panic!("{d:?}")
    };
    assert_eq!(
        (r.status, r.location.as_str()),
        (308, "http://example.cn:8443/x")
    );
    assert_eq!(r.cache_control, "private, max-age=0");
    for path in ["/health", "/healthz", "/api/v1"] {
        let d = c.decide(&hosts, &get("example.com", path, Some("CN")), || None);
        assert_eq!(d, Decision::Stay(Stay::Exempt), "{path}");
    }
    // Replacing the exempt list drops the default.
    let d = c.decide(
        &hosts,
        &get("example.com", "/.well-known/x", Some("CN")),
        || None,
    );
    assert!(location(&d).is_some(), "{d:?}");
}

#[test]
fn opt_out_cookie() {
    let (c, hosts) = header_config();
    let cases: &[(&[&str], bool)] = &[
        (&["ferry_stay=1"], true),
        (&["a=1; ferry_stay=; b=2"], true),
        (&["a=1", "ferry_stay"], true),
        (&["ferry_stayed=1"], false),
        (&["x=ferry_stay"], false),
        (&["FERRY_STAY=1"], false),
        (&[], false),
    ];
    for (cookies, stays) in cases {
        let cookies: Vec<&[u8]> = cookies.iter().map(|c| c.as_bytes()).collect();
        let request = RequestFacts {
            cookies: &cookies,
            ..get("example.com", "/", Some("CN"))
        };
        let d = c.decide(&hosts, &request, || None);
        assert_eq!(
            d == Decision::Stay(Stay::OptOut),
            *stays,
            "{cookies:?}: {d:?}"
        );
    }
}

#[test]
fn explicit_hosts_limit_the_redirect() {
    let (c, hosts) = config(r#"{"countries": ["CN"], "hosts": ["www.example.com"]}"#);
    let d = c.decide(&hosts, &get("www.example.com", "/", Some("CN")), || None);
    assert_eq!(location(&d), Some("https://www.example.cn/"));
    for other in ["example.com", "shop.test", "a.www.example.com"] {
        let d = c.decide(&hosts, &get(other, "/", Some("CN")), || None);
        assert_eq!(d, Decision::Stay(Stay::Host), "{other}");
    }
}

#[test]
fn country_from_networks() {
    let (c, hosts) =
        config(r#"{"countries": ["CN"], "networks": {"CN": ["1.0.1.0/24", "240e::/20"]}}"#);
    assert_eq!(
        c.country_header, None,
        "with networks the header is not used unless named"
    );
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("1.0.1.7", None, true),
        ("::ffff:1.0.1.7", None, true),
        ("240e:1::5", None, true),
        ("8.8.8.8", None, false),
        // A client-sent header is ignored: only the address decides.
        ("8.8.8.8", Some("CN"), false),
        ("1.0.1.7", Some("US"), true),
    ];
    for (addr, header, redirected) in cases {
        let addr: IpAddr = addr.parse().unwrap();
        let d = c.decide(&hosts, &get("example.com", "/", *header), || Some(addr));
        assert_eq!(
            location(&d).is_some(),
            *redirected,
            "{addr} {header:?}: {d:?}"
        );
    }
    // No address (e.g. a pipe listener): unknown, never redirected.
    let d = c.decide(&hosts, &get("example.com", "/", None), || None);
    assert_eq!(d, Decision::Stay(Stay::UnknownCountry));
}

/// The one rule for networks (`ferry_net::cases`), through a filter configuration: a visitor
/// at `addr` is redirected exactly when the configured network contains it, and a refused
/// network is a configuration error naming the value and the reason.
#[test]
fn the_shared_network_rules_through_a_configuration() {
    for (network, addr, inside) in ferry_net::cases::CONTAINS {
        let (c, hosts) = config(&format!(
            r#"{{"countries": ["CN"], "networks": {{"CN": ["{network}"]}}}}"#
        ));
        let addr: IpAddr = addr.parse().unwrap();
        let d = c.decide(&hosts, &get("example.com", "/", None), || Some(addr));
        assert_eq!(
            location(&d).is_some(),
            *inside,
            "{network} contains {addr}: {d:?}"
        );
    }
    for (network, reason) in ferry_net::cases::REFUSED {
        if network.trim() != *network {
            // List items are trimmed (the text form splits at white space anyway).
            continue;
        }
        let json = format!(
            r#"{{{DOMAINS}, "redirect": {{"countries": ["CN"], "networks": {{"CN": [{}]}}}}}}"#,
            serde_json::Value::from(*network)
        );
        let message = Config::from_json(json.as_bytes())
            .expect_err(network)
            .to_string();
        assert!(
            message.contains(&format!("{network:?} is not valid: {reason}")),
            "{network:?}: {message}"
        );
    }
}

#[test]
fn header_first_then_networks() {
    let (c, hosts) = config(
        r#"{"countries": ["CN"], "country_header": "X-Country",
            "networks": {"CN": "1.0.1.0/24 1.0.2.0/23"}}"#,
    );
    assert_eq!(c.country_header.as_deref(), Some("x-country"));
    let cn: IpAddr = "1.0.2.1".parse().unwrap();
    let us: IpAddr = "8.8.8.8".parse().unwrap();
    let d = c.decide(&hosts, &get("example.com", "/", Some("US")), || Some(cn));
    assert_eq!(
        d,
        Decision::Stay(Stay::OtherCountry),
        "a present header wins"
    );
    let d = c.decide(&hosts, &get("example.com", "/", None), || Some(cn));
    assert!(location(&d).is_some(), "{d:?}");
    let d = c.decide(&hosts, &get("example.com", "/", None), || Some(us));
    assert_eq!(d, Decision::Stay(Stay::OtherCountry));
}

#[test]
fn the_address_is_only_asked_for_when_needed() {
    let (c, hosts) = config(r#"{"countries": ["CN"], "networks": {"CN": ["1.0.1.0/24"]}}"#);
    let asked = std::cell::Cell::new(0);
    let source = || {
        asked.set(asked.get() + 1);
        None
    };
    c.decide(&hosts, &get("example.cn", "/", None), source);
    c.decide(
        &hosts,
        &RequestFacts {
            method: b"POST",
            ..get("example.com", "/", None)
        },
        source,
    );
    assert_eq!(asked.get(), 0);
    c.decide(&hosts, &get("example.com", "/", None), source);
    assert_eq!(asked.get(), 1);
}

/// Whatever the request says, the Location starts with a configured scheme and mirror host.
#[test]
fn no_open_redirect() {
    let (c, hosts) = header_config();
    let authorities = [
        "example.com",
        "example.com@evil.test",
        "evil.test#.example.com",
        "evil.test/.example.com",
        "example.com:80@evil.test",
        "x.example.com",
        "evil.test\\.example.com",
        "a b.example.com",
        "example.com:",
        "example.com:99999999",
    ];
    let paths = [
        "/",
        "//evil.test",
        "/\\evil.test",
        "/@evil.test",
        "/%2F%2Fevil.test",
        "/?u=https://evil.test",
    ];
    for authority in authorities {
        for path in paths {
            let d = c.decide(&hosts, &get(authority, path, Some("CN")), || None);
            if let Some(loc) = location(&d) {
                let rest = loc.strip_prefix("https://").expect("https");
                let host = &rest[..rest.find('/').expect("a path")];
                assert!(
                    host == "example.cn" || host.ends_with(".example.cn"),
                    "{authority} {path} -> {loc}"
                );
                assert!(
                    host.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                    "{loc}"
                );
                assert!(rest[host.len()..].starts_with(path), "{loc}");
            }
        }
    }
}

/// Only page loads are redirected: a cross-origin font, fetch or script would fail its CORS
/// check on a redirect, so those go to the origin domain as they asked.
#[test]
fn only_navigations_are_redirected() {
    let (c, hosts) = header_config();
    let cases: &[(Option<&str>, bool)] = &[
        (None, true),
        (Some("navigate"), true),
        (Some("Navigate"), true),
        (Some("cors"), false),
        (Some("no-cors"), false),
        (Some("same-origin"), false),
        (Some("websocket"), false),
    ];
    for (mode, redirected) in cases {
        let request = RequestFacts {
            fetch_mode: mode.map(str::as_bytes),
            ..get("example.com", "/font.woff2", Some("CN"))
        };
        let d = c.decide(&hosts, &request, || None);
        assert_eq!(location(&d).is_some(), *redirected, "{mode:?}: {d:?}");
        if !redirected {
            assert_eq!(d, Decision::Stay(Stay::NotNavigation));
        }
    }
}

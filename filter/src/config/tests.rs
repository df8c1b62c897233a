//! Tests of the configuration: defaults, normalisation, and a table of bad documents whose
//! errors must name the field and the value.

use super::*;

fn err(json: &str) -> String {
    Config::from_json(json.as_bytes()).unwrap_err().to_string()
}

#[test]
fn issue_example_parses_with_defaults() {
    let c = Config::from_json(
        br#"{"domains": [
          {"origin": "example.com", "mirror": "example.cn", "subdomains": true},
          {"origin": "examplecdn.net", "mirror": "cdn.example.cn", "subdomains": true}]}"#,
    )
    .unwrap();
    assert_eq!(c.domains.len(), 2);
    assert_eq!(c.domains[1].mirror, "cdn.example.cn");
    assert!(c.identity_encoding);
    assert!(c.rewrites_content_type("text/html"));
    assert!(c.rewrites_content_type("image/svg+xml"));
    assert!(!c.rewrites_content_type("image/png"));
    assert_eq!(c.response_headers.len(), DEFAULT_RESPONSE_HEADERS.len());
    assert_eq!(c.decode_limits, DecodeLimits::default());
}

#[test]
fn content_type_rules() {
    let c = Config::from_json(br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}]}"#)
        .unwrap();
    for yes in [
        "text/html",
        "application/xhtml+xml",
        "application/x-javascript",
        "application/ecmascript",
        "text/json",
        "application/vnd.api+json",
        "application/problem+json",
        "application/rss+xml",
        "application/dash+xml",
        "text/event-stream",
        "application/vnd.apple.mpegurl",
    ] {
        assert!(c.rewrites_content_type(yes), "{yes}");
    }
    for no in [
        "image/png",
        "application/json-seq+zip",
        "application/+json",
        "text/json+x",
        "application/octet-stream",
        "font/woff2",
        "video/mp4",
    ] {
        assert!(!c.rewrites_content_type(no), "{no}");
    }
    let custom = Config::from_json(
        br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}],
             "content_types":["text/*","application/*+yaml"]}"#,
    )
    .unwrap();
    assert!(custom.rewrites_content_type("text/csv"));
    assert!(custom.rewrites_content_type("application/openapi+yaml"));
    assert!(!custom.rewrites_content_type("application/json"));
}

#[test]
fn decompression_limits() {
    let c = Config::from_json(
        br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}],
             "decompression":{"max_bytes":16777216}}"#,
    )
    .unwrap();
    assert_eq!(
        c.decode_limits,
        DecodeLimits {
            max_bytes: 16 << 20,
            max_ratio: DecodeLimits::default().max_ratio
        }
    );
}

#[test]
fn domains_are_normalised_to_lowercase() {
    let c = Config::from_json(br#"{"domains":[{"origin":"Example.COM","mirror":"EXAMPLE.cn"}]}"#)
        .unwrap();
    assert_eq!(c.domains[0].origin, "example.com");
    assert_eq!(c.domains[0].mirror, "example.cn");
    assert!(!c.domains[0].subdomains, "subdomains defaults to false");
}

#[test]
fn every_error_names_the_field_and_the_value() {
    let cases: &[(&str, &[&str])] = &[
        ("not json", &["(document)", "expected"]),
        ("{}", &["missing field `domains`"]),
        (r#"{"domains": []}"#, &["domains", "at least one"]),
        (
            r#"{"domains": [{"origin": "", "mirror": "example.cn"}]}"#,
            &["domains[0].origin", "\"\"", "empty"],
        ),
        (
            r#"{"domains": [{"origin": "exa mple.com", "mirror": "example.cn"}]}"#,
            &["domains[0].origin", "\"exa mple.com\""],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": "yes"}]}"#,
            &["domains[0].subdomains", "\"yes\"", "boolean"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomain": true}]}"#,
            &["domains[0]", "unknown field `subdomain`"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}], "typo": 1}"#,
            &["unknown field `typo`"],
        ),
        (
            r#"{"domains": [{"origin": "a.com", "mirror": "example.cn"},
                            {"origin": "b.com", "mirror": "example.cn"}]}"#,
            &["domains[1].mirror", "\"example.cn\"", "domains[0].mirror"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.com"}]}"#,
            &["domains[0].mirror", "\"example.com\"", "domains[0].origin"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "content_types": ["text/html", "html"]}"#,
            &["content_types[1]", "\"html\"", "type/subtype"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "content_types": []}"#,
            &["content_types", "empty"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "content_types": ["*/*+json"]}"#,
            &["content_types[0]", "\"*/*+json\"", "application/*+json"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "decompression": {"max_ratio": 2}}"#,
            &["decompression.max_ratio", "2", "10 to 1000000"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "decompression": {"max_bytes": 1}}"#,
            &["decompression.max_bytes", "1048576 to"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "decompression": {"max_size": 1}}"#,
            &["decompression", "unknown field `max_size`"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "response_headers": ["location", "Location"]}"#,
            &["response_headers[1]", "\"Location\"", "twice"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "response_headers": ["content-length"]}"#,
            &["response_headers[0]", "managed by the filter"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "identity_encoding": 1}"#,
            &["identity_encoding", "integer `1`", "boolean"],
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn"}],
                "integrity": "drop"}"#,
            &["integrity", "\"drop\"", "drop_same_site"],
        ),
    ];
    for (json, needles) in cases {
        let message = err(json);
        for needle in *needles {
            assert!(
                message.contains(needle),
                "error for {json} is {message:?}, which lacks {needle:?}"
            );
        }
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
}

#[test]
fn redirect_errors_name_the_field_and_the_value() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{}"#, &["redirect", "missing field `countries`"]),
        (
            r#"{"countries": []}"#,
            &["redirect.countries", "at least one"],
        ),
        (
            r#"{"countries": ["CN", "HK"], "networks": {"CN": ["1.0.1.0/24"]}}"#,
            &["redirect.networks.HK", "no networks", "never be redirected"],
        ),
        (
            r#"{"countries": ["China"]}"#,
            &["redirect.countries[0]", "\"China\"", "two-letter"],
        ),
        (
            r#"{"countries": ["CN", "cn"]}"#,
            &["redirect.countries[1]", "twice"],
        ),
        (
            r#"{"countries": ["CN"], "status": 302.5}"#,
            &["redirect.status"],
        ),
        (
            r#"{"countries": ["CN"], "status": 200}"#,
            &["redirect.status", "200", "301, 302"],
        ),
        (
            r#"{"countries": ["CN"], "max_age": 99999999}"#,
            &["redirect.max_age", "99999999", "year"],
        ),
        (
            r#"{"countries": ["CN"], "max_age": -1}"#,
            &["redirect.max_age", "-1"],
        ),
        (
            r#"{"countries": ["CN"], "country_header": "x geo"}"#,
            &["redirect.country_header", "\"x geo\""],
        ),
        (
            r#"{"countries": ["CN"], "exempt_paths": ["/ok", "health"]}"#,
            &["redirect.exempt_paths[1]", "\"health\"", "'/'"],
        ),
        (
            r#"{"countries": ["CN"], "opt_out_cookie": "a=b"}"#,
            &["redirect.opt_out_cookie", "\"a=b\""],
        ),
        (
            r#"{"countries": ["CN"], "hosts": []}"#,
            &["redirect.hosts", "empty"],
        ),
        (
            r#"{"countries": ["CN"], "hosts": ["example.cn"]}"#,
            &["redirect.hosts[0]", "\"example.cn\"", "mirror"],
        ),
        (
            r#"{"countries": ["CN"], "hosts": ["other.test"]}"#,
            &["redirect.hosts[0]", "\"other.test\"", "not an origin"],
        ),
        (
            r#"{"countries": ["CN"], "hosts": ["www.example.com"]}"#,
            &["redirect.hosts[0]", "not an origin"],
        ),
        (
            r#"{"countries": ["CN"], "scheme": "ftp"}"#,
            &["redirect.scheme", "\"ftp\""],
        ),
        (
            r#"{"countries": ["CN"], "port": 0}"#,
            &["redirect.port", "1 to 65535"],
        ),
        (
            r#"{"countries": ["CN"], "port": 70000}"#,
            &["redirect.port", "70000"],
        ),
        (
            r#"{"countries": ["CN"], "networks": {"CN": ["1.0.2.0/24"], "HK": ["1.0.1.0/24"]}}"#,
            &["redirect.networks.HK", "not in redirect.countries"],
        ),
        (
            r#"{"countries": ["CN"], "networks": {"CN": ["1.0.1.0/24", "1.0.2.1/23"]}}"#,
            &["redirect.networks.CN[1]", "\"1.0.2.1/23\"", "1.0.2.0/23"],
        ),
        (
            r#"{"countries": ["CN"], "networks": {"CN": "1.0.1.0/24  bogus"}}"#,
            &["redirect.networks.CN[1]", "\"bogus\""],
        ),
        (
            r#"{"countries": ["CN"], "networks": {"CN": []}}"#,
            &["redirect.networks", "no networks"],
        ),
        (
            r#"{"countries": ["CN"], "networks": {"CN": 5}}"#,
            &["redirect.networks"],
        ),
        (
            r#"{"countries": ["CN"], "country": "CN"}"#,
            &["redirect", "unknown field `country`"],
        ),
    ];
    for (redirect, needles) in cases {
        let json = format!(
            r#"{{"domains": [{{"origin": "example.com", "mirror": "example.cn"}}], "redirect": {redirect}}}"#
        );
        let message = err(&json);
        for needle in *needles {
            assert!(
                message.contains(needle),
                "error for {redirect} is {message:?}, which lacks {needle:?}"
            );
        }
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
}

#[test]
fn redirect_defaults() {
    let c = Config::from_json(
        br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}],
             "redirect": {"countries": ["cn"]}}"#,
    )
    .unwrap();
    let r = c.redirect.unwrap();
    assert_eq!(r.countries, ["CN"]);
    assert_eq!(r.country_header.as_deref(), Some(DEFAULT_COUNTRY_HEADER));
    assert_eq!((r.status, r.max_age), (301, 3600));
    assert_eq!(r.exempt_paths, ["/.well-known/"]);
    assert_eq!(
        (r.scheme, r.port, r.hosts, r.opt_out_cookie),
        ("https", None, None, None)
    );
    assert!(r.networks.is_none());
    assert_eq!(c.integrity, IntegrityPolicy::DropSameSite);
}

#[test]
fn content_type_families() {
    let c = Config::from_json(
        br#"{"domains":[{"origin":"example.com","mirror":"example.cn"}],
             "content_types":["text/*","application/json"]}"#,
    )
    .unwrap();
    assert!(c.rewrites_content_type("text/html"));
    assert!(c.rewrites_content_type("text/x-anything"));
    assert!(c.rewrites_content_type("application/json"));
    assert!(!c.rewrites_content_type("textual/html"));
    assert!(!c.rewrites_content_type("application/javascript"));
}

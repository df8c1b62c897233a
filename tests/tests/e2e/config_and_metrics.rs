//! What an operator sees of the filter: its counters on Envoy's admin `/stats` and on
//! `/stats/prometheus`, and plugin configurations Envoy refuses to start with, the field and
//! the value named in its log.
//!
//! Related: each feature's tests check the counters it moves; every shipped config validates
//! in `deploy`; the harness's own check that a refused configuration is reported is in the
//! `harness` binary.

use ferry_tests::{Client, Envoy, EnvoyConfig, Origin, Reply, Request};

use crate::support::ferry;

#[test]
fn metrics_show_on_admin_stats_and_prometheus() {
    let origin = Origin::start();
    let page = "https://example.com/ https://example.com/x";
    origin.route("/", Reply::html(page));
    origin.route("/gz", Reply::html(page).gzip());
    origin.route(
        "/lzw",
        Reply::html(page).header("content-encoding", "compress"),
    );
    origin.route("/part", Reply::html(page).with_status(206));
    let envoy = ferry(&origin);
    let client = Client::http1(envoy.listener_addr());
    client.get("example.cn", "/");
    client.get("example.cn", "/gz");
    client.get("example.cn", "/lzw");
    client.get("example.cn", "/part");
    client
        .send(&Request::get("example.cn", "/").header("range", "bytes=0-3"))
        .unwrap();
    client.get("other.org", "/");
    let want = [
        ("ferry.requests_mirror", 5),
        ("ferry.requests_other", 1),
        ("ferry.bodies_rewritten", 3),
        ("ferry.bodies_decoded", 1),
        ("ferry.bodies_passed_compressed", 1),
        ("ferry.bodies_passed_partial", 1),
        ("ferry.ranges_dropped", 1),
        ("ferry.body_bytes_in", 3 * page.len() as u64),
        ("ferry.body_bytes_out", 3 * (page.len() as u64 - 2)),
        ("ferry.body_matches", 6),
        ("ferry.host_errors", 0),
        ("ferry.bodies_reset_undecided_tail", 0),
        ("ferry.bodies_reset_bad_encoding", 0),
        ("ferry.bodies_reset_decode_limit", 0),
        ("ferry.bodies_reset_host_error", 0),
    ];
    for (name, value) in want {
        assert_eq!(envoy.counter(name), Some(value), "{name}");
    }
    let prometheus = envoy
        .admin_get("/stats/prometheus")
        .expect("admin /stats/prometheus")
        .text();
    assert!(
        prometheus.contains("ferry_body_matches{} 6"),
        "Prometheus output lacks ferry_body_matches:\n{prometheus}"
    );
}

#[test]
fn bad_plugin_configurations_are_refused_with_the_field_named() {
    let cases = [
        ("not json", "invalid configuration"),
        (r#"{"domains": []}"#, "domains: at least one"),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomain": true}]}"#,
            "unknown field `subdomain`",
        ),
        (
            r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": "yes"}]}"#,
            "domains[0].subdomains: invalid type: string \"yes\"",
        ),
        (
            r#"{"domains": [{"origin": "a.com", "mirror": "x.cn"}, {"origin": "b.com", "mirror": "x.cn"}]}"#,
            "domains[1].mirror: \"x.cn\" is also domains[0].mirror",
        ),
        (
            r#"{"domains": [{"origin": "exa mple.com", "mirror": "x.cn"}]}"#,
            "domains[0].origin: \"exa mple.com\" is not a valid domain name",
        ),
    ];
    for (json, needle) in cases {
        let config = EnvoyConfig::shipped()
            .plugin_config(json)
            .origin("127.0.0.1:9".parse().expect("an address"));
        let error = Envoy::try_start(&config)
            .err()
            .unwrap_or_else(|| panic!("Envoy accepted {json}"));
        assert!(
            error.log.contains(needle),
            "for {json}, the log lacks {needle:?}:\n{}",
            error.log
        );
    }
}

//! Envoy's geoip filter (libmaxminddb) reading a country database written by
//! `ferry_tests::mmdb`, with no Ferry filter: it sets `x-geo-country` from the client address
//! a PROXY header carries, and, for an address the database does not know, leaves a client's
//! own `x-geo-country` in place, which is why the shipped configs strip that header first.
//!
//! Part of `geo_redirect`. The writer's own tests, against the `maxminddb` crate, are in the
//! `harness` binary (`mmdb`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use ferry_tests::mmdb::CountryDb;
use ferry_tests::{Envoy, EnvoyConfig, Origin, Reply};

/// Envoy with the PROXY protocol listener filter, then `envoy.filters.http.geoip` (the maxmind
/// provider reading `db`, country into `x-geo-country`) and the router to the `origin` cluster.
/// The harness fills in the ports and the origin (the listener is `mirror`, the cluster
/// `origin`); no Ferry filter is involved. With `strip_client_header`, an early header mutation
/// removes any `x-geo-country` the client sent before any filter runs.
fn geoip_config(db: &Path, strip_client_header: bool) -> EnvoyConfig {
    // A JSON string is a valid YAML scalar for any path.
    let db = serde_json::to_string(&db.display().to_string()).expect("a string serialises");
    let strip = if strip_client_header {
        r#"
          early_header_mutation_extensions:
          - name: envoy.http.early_header_mutation.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation
              mutations:
              - remove: x-geo-country"#
    } else {
        ""
    };
    let yaml = format!(
        r#"
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
static_resources:
  listeners:
  - name: mirror
    address:
      socket_address: {{ address: 127.0.0.1, port_value: 0 }}
    listener_filters:
    - name: envoy.filters.listener.proxy_protocol
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: geo{strip}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: origin }}
          http_filters:
          - name: envoy.filters.http.geoip
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.geoip.v3.Geoip
              provider:
                name: envoy.geoip_providers.maxmind
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.geoip_providers.maxmind.v3.MaxMindConfig
                  country_db_path: {db}
                  common_provider_config:
                    geo_headers_to_add:
                      country: x-geo-country
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: STATIC
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: 1 }}
"#
    );
    EnvoyConfig::parse("the geoip test config", &yaml).unwrap_or_else(|err| panic!("{err}"))
}

/// Send `GET /` for example.com on a new connection that starts with `proxy_line` (plus
/// `extra` header lines); the raw response.
fn get_through_proxy_header(envoy: SocketAddr, proxy_line: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(envoy).expect("connect to Envoy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a timeout");
    let request = format!(
        "{proxy_line}\r\nGET / HTTP/1.1\r\nHost: example.com\r\n{extra}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response
}

/// A database of two countries in `dir`, and an origin for Envoy.
fn geoip_setup(dir: &Path) -> (std::path::PathBuf, Origin) {
    let path = dir.join("country.mmdb");
    CountryDb::from_text("1.0.1.0/24 CN\n8.8.8.0/24 US\n240e::/20 CN\n2600::/12 US\n")
        .unwrap_or_else(|err| panic!("{err}"))
        .write(&path)
        .expect("write the database");
    let origin = Origin::start();
    origin.route("/", Reply::ok("text/plain", "hello"));
    (path, origin)
}

/// Send each `(PROXY line, extra header lines, expected x-geo-country)` case through `envoy` and
/// check what the origin got.
fn assert_origin_sees(envoy: &Envoy, origin: &Origin, cases: &[(&str, &str, Option<&str>)]) {
    for (proxy_line, extra, expected) in cases {
        origin.clear_requests();
        let response = get_through_proxy_header(envoy.listener_addr(), proxy_line, extra);
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{proxy_line}: {response}\n{}",
            envoy.log()
        );
        let seen = origin.last_request().expect("the origin saw the request");
        assert_eq!(
            seen.header("x-geo-country"),
            *expected,
            "{proxy_line} {extra:?}: {:?}",
            seen.headers
        );
    }
}

#[test]
fn envoy_geoip_sets_the_country_of_the_address_in_the_proxy_header() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, origin) = geoip_setup(dir.path());
    let envoy = Envoy::start(&geoip_config(&path, true).origin(origin.addr()));
    assert_origin_sees(
        &envoy,
        &origin,
        &[
            ("PROXY TCP4 1.0.1.7 127.0.0.1 5000 80", "", Some("CN")),
            ("PROXY TCP4 8.8.8.8 127.0.0.1 5000 80", "", Some("US")),
            ("PROXY TCP4 203.0.113.7 127.0.0.1 5000 80", "", None),
            ("PROXY TCP6 240e::1 ::1 5000 80", "", Some("CN")),
            ("PROXY TCP6 2600:1f18::7 ::1 5000 80", "", Some("US")),
            ("PROXY TCP6 2001:db8::7 ::1 5000 80", "", None),
            // What the client claims never counts, whether its address is known or not.
            (
                "PROXY TCP4 8.8.8.8 127.0.0.1 5000 80",
                "x-geo-country: CN\r\n",
                Some("US"),
            ),
            (
                "PROXY TCP4 203.0.113.7 127.0.0.1 5000 80",
                "x-geo-country: CN\r\n",
                None,
            ),
        ],
    );
    // Every request was looked up; five addresses were in the database.
    assert_eq!(envoy.counter("maxmind.country_db.total"), Some(8));
    assert_eq!(envoy.counter("maxmind.country_db.hit"), Some(5));
}

/// Why a config must strip the header itself: for an address the database does not know, the
/// geoip filter sets nothing and leaves the client's own `x-geo-country` in place. If Envoy
/// starts removing it, this test fails and the early header mutation may go.
#[test]
fn envoy_geoip_alone_keeps_the_clients_header_for_an_unknown_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, origin) = geoip_setup(dir.path());
    let envoy = Envoy::start(&geoip_config(&path, false).origin(origin.addr()));
    assert_origin_sees(
        &envoy,
        &origin,
        &[
            ("PROXY TCP4 1.0.1.7 127.0.0.1 5000 80", "", Some("CN")),
            (
                "PROXY TCP4 8.8.8.8 127.0.0.1 5000 80",
                "x-geo-country: CN\r\n",
                Some("US"),
            ),
            (
                "PROXY TCP4 203.0.113.7 127.0.0.1 5000 80",
                "x-geo-country: CN\r\n",
                Some("CN"),
            ),
        ],
    );
}

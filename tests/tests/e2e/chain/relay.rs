//! End to end: client -> ferry-relay -> a real Envoy whose listener reads the PROXY header ->
//! the Ferry filter -> the origin. Envoy must see the client's address, not the relay's.
//!
//! The client poses as a trusted L4 balancer (the relay accepts PROXY headers from 127.0.0.0/8)
//! so that it can present a client address other than loopback: 203.0.113.7. The relay passes
//! it on in its own PROXY header (v1 and v2), and the origin must get it in X-Forwarded-For.
//!
//! Part of `chain`, which runs the relay in front of the US East node.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ferry_tests::relay::{ProxyProtocol, Relay, RelayOptions};
use ferry_tests::{Envoy, EnvoyConfig, Origin, Reply};

/// The shipped config with Envoy's PROXY protocol listener filter on the mirror listener.
fn envoy_reading_proxy_headers(origin: SocketAddr) -> EnvoyConfig {
    EnvoyConfig::shipped().origin(origin).with_proxy_protocol()
}

#[test]
fn envoy_sees_the_client_address_the_relay_carries() {
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::html("<a href=\"https://www.example.com/\">home</a>"),
    );
    let envoy = Envoy::start(&envoy_reading_proxy_headers(origin.addr()));
    for version in [ProxyProtocol::V1, ProxyProtocol::V2] {
        let relay = Relay::start(
            &RelayOptions::new(envoy.listener_addr())
                .proxy_protocol(version)
                .accept_proxy_from("127.0.0.0/8"),
        );
        let mut client = TcpStream::connect(relay.addr()).expect("connect to the relay");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a timeout");
        let request = "PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n\
                       GET / HTTP/1.1\r\nHost: www.example.cn\r\nConnection: close\r\n\r\n";
        client.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        client
            .read_to_string(&mut response)
            .expect("read the response");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{version:?}: {response}"
        );
        assert!(
            response.contains("https://www.example.cn/"),
            "{version:?}: the page went through Ferry: {response}"
        );
        let seen = origin.last_request().expect("the origin saw the request");
        assert_eq!(
            seen.header("x-forwarded-for"),
            Some("203.0.113.7"),
            "{version:?}: Envoy took the client address from the relay's PROXY header"
        );
        assert_eq!(seen.host(), Some("www.example.com"));
    }
}

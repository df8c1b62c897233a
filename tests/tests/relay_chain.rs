//! End to end: client -> ferry-relay -> a real Envoy whose listener reads the PROXY header ->
//! the Ferry filter -> the origin. Envoy must see the client's address, not the relay's.
//!
//! The client poses as a trusted L4 balancer (the relay accepts PROXY headers from 127.0.0.0/8)
//! so that it can present a client address other than loopback: 203.0.113.7. The relay passes
//! it on in its own PROXY header (v1 and v2), and the origin must get it in X-Forwarded-For.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::{paths, Envoy, EnvoyConfig, Origin, Reply};
use serde_yaml::Value;

/// The relay binary built by `cargo build` (`./run test` builds the whole workspace first).
fn relay_bin() -> std::path::PathBuf {
    let bin = paths::workspace_root().join("target/debug/ferry-relay");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p ferry-relay` (./run test builds it)",
        bin.display()
    );
    bin
}

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address")
}

fn start_relay(upstream: SocketAddr, version: &str) -> (Relay, SocketAddr) {
    let listen = free_port();
    let child = Command::new(relay_bin())
        .args(["--listen", &listen.to_string()])
        .args(["--upstream", &upstream.to_string()])
        .args(["--proxy-protocol", version])
        .args(["--accept-proxy-from", "127.0.0.0/8"])
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferry-relay");
    let relay = Relay(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    // A bare connect is enough to see it listen: the relay refuses it (no PROXY header within
    // the deadline) without forwarding anything.
    while TcpStream::connect(listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "ferry-relay did not listen on {listen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (relay, listen)
}

/// The shipped config with Envoy's PROXY protocol listener filter on the mirror listener.
fn envoy_reading_proxy_headers(origin: SocketAddr) -> EnvoyConfig {
    EnvoyConfig::shipped().origin(origin).edit(|doc| {
        let filter: Value = serde_yaml::from_str(
            r#"
name: envoy.filters.listener.proxy_protocol
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol
"#,
        )
        .expect("valid YAML");
        doc["static_resources"]["listeners"][0]["listener_filters"] = Value::Sequence(vec![filter]);
    })
}

#[test]
fn envoy_sees_the_client_address_the_relay_carries() {
    let origin = Origin::start();
    origin.route(
        "/",
        Reply::html("<a href=\"https://www.example.com/\">home</a>"),
    );
    let envoy = Envoy::start(&envoy_reading_proxy_headers(origin.addr()));
    for version in ["v1", "v2"] {
        let (_relay, listen) = start_relay(envoy.listener_addr(), version);
        let mut client = TcpStream::connect(listen).expect("connect to the relay");
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
            "{version}: {response}"
        );
        assert!(
            response.contains("https://www.example.cn/"),
            "{version}: the page went through Ferry: {response}"
        );
        let seen = origin.last_request().expect("the origin saw the request");
        assert_eq!(
            seen.header("x-forwarded-for"),
            Some("203.0.113.7"),
            "{version}: Envoy took the client address from the relay's PROXY header"
        );
        assert_eq!(seen.host(), Some("www.example.com"));
    }
}

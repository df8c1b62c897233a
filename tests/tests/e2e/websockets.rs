//! End to end: WebSockets. An upgrade through the shipped configs reaches the origin as an
//! HTTP/1.1 upgrade for the origin host (its `Origin` mapped, so the origin's own origin check
//! passes), and the messages go both ways untouched: Ferry leaves upgraded streams alone (it
//! cannot know where one message ends, and the origin wrote them for the page's script).

use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::{Client, Origin};

use crate::support::ferry;

const MESSAGES: [&str; 3] = [
    "hello",
    "{\"next\":\"https://www.example.com/x\"}",
    "a longer message: 0123456789abcdefghijklmnopqrstuvwxyz",
];

#[test]
fn websockets_pass_through_the_relay_and_the_us_east_node() {
    let chain = Chain::start(ChainOptions::default().empty_origin());
    chain.origin().websocket_echo("/ws");
    for host in ["www.example.cn", "www.example.com"] {
        let origin_header = format!("https://{host}");
        let got = chain
            .client(host)
            .websocket(host, "/ws", Some(&origin_header), &MESSAGES)
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(got.status, 101, "{host}");
        assert_eq!(got.received, MESSAGES, "{host}: echoed untouched");
    }
    let seen = chain.origin().requests_to("/ws");
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.host(), Some("www.example.com"));
        assert_eq!(request.header("origin"), Some("https://www.example.com"));
        assert_eq!(
            request.version, "HTTP/1.1",
            "WebSockets reach the origin over HTTP/1.1 (the origin_ws cluster)"
        );
    }
    // A plain request on the same route is not an upgrade: the origin says so.
    let plain = chain.client("www.example.cn").get("www.example.cn", "/ws");
    assert_eq!(plain.status, 400);
}

#[test]
fn websockets_pass_through_the_minimal_config() {
    let origin = Origin::start();
    origin.websocket_echo("/ws");
    let envoy = ferry(&origin);
    let got = Client::http1(envoy.listener_addr())
        .websocket(
            "www.example.cn",
            "/ws",
            Some("http://www.example.cn"),
            &MESSAGES,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.received, MESSAGES);
    let seen = origin.last_request().expect("the origin saw the upgrade");
    assert_eq!(seen.host(), Some("www.example.com"));
    assert_eq!(seen.header("origin"), Some("http://www.example.com"));
    assert_eq!(envoy.counter("ferry.bodies_rewritten"), Some(0));
}

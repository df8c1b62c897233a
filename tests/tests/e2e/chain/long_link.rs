//! The whole chain across an emulated long link (`ferry-link`, 60 ms of round trip): the relay
//! on the visitors' side, Envoy running `envoy/us-east.yaml` and the origin on the other. What
//! is asserted is how many times a new visitor's request crosses the link, with half a round
//! trip of margin: TLS 1.3 (one round trip) and the request (one), and no TCP handshake across
//! the link, which the relay's warm connections did before the visitor came.
//! (`./run bench-wan` measures the same at 200 ms against the seed's stack.)

use std::time::{Duration, Instant};

use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::link::{in_namespace, Link};

#[test]
fn a_new_visitor_gets_the_first_byte_two_round_trips_after_connecting() {
    let link = Link::start(Duration::from_millis(60), &[]);
    let rtt = link.rtt();
    let chain = Chain::start(ChainOptions::default().across(&link));
    // The warm connections cross the link once before any visitor comes.
    std::thread::sleep(rtt * 5);
    let mut times = Vec::new();
    for _ in 0..5 {
        // A new client each time: a fresh TCP connection and a full TLS handshake.
        let client = chain.client("www.example.cn");
        let (took, status) = in_namespace(link.cn(), move || {
            let start = Instant::now();
            let response = client.get("www.example.cn", "/robots.txt");
            (start.elapsed(), response.status)
        });
        assert!(status < 500, "status {status}");
        times.push(took);
        // Let the relay put back a warm connection (one round trip).
        std::thread::sleep(rtt * 3);
    }
    times.sort();
    let median = times[times.len() / 2];
    let rtts = median.as_secs_f64() / rtt.as_secs_f64();
    eprintln!("a new visitor's response after {median:?} = {rtts:.2} RTT (all: {times:?})");
    assert!(
        (1.5..2.5).contains(&rtts),
        "{median:?} = {rtts:.2} RTT; expected 2 (TLS 1.3, then the request)"
    );
}

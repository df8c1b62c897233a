//! Warm upstream connections (`warm`, `warm_max_idle`): opened ahead of visitors, silent until
//! handed over (the PROXY header goes out then), never handed over dead or stale, recycled
//! before the upstream would time them out, and worth one round trip across a long link
//! (measured over `ferry-link`, the emulated link, as a round-trip count with half a round trip
//! of margin).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_tests::link::{in_namespace, Link, US_ADDR};
use ferry_tests::relay::Relay;
use support::start;

/// Each upstream connection's accept time and first bytes.
type Firsts = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// An upstream that echoes, and remembers for each connection when it was accepted and the
/// first bytes it received. `close_first` connections are closed right after accept (as an
/// upstream that drops silent connections would).
struct Recorder {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    firsts: Firsts,
}

impl Recorder {
    fn start(listener: TcpListener, close_first: usize) -> Recorder {
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let firsts: Firsts = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (accepted.clone(), firsts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let at = Instant::now();
                let n = count.fetch_add(1, Ordering::SeqCst);
                if n < close_first {
                    drop(stream);
                    continue;
                }
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut first = true;
                    while let Ok(len) = stream.read(&mut buf) {
                        if len == 0 {
                            break;
                        }
                        if first {
                            log.lock().unwrap().push((at, buf[..len].to_vec()));
                            first = false;
                        }
                        if stream.write_all(&buf[..len]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Recorder {
            addr,
            accepted,
            firsts,
        }
    }

    fn loopback(close_first: usize) -> Recorder {
        Recorder::start(TcpListener::bind("127.0.0.1:0").unwrap(), close_first)
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `data` on a new connection to `addr` and reads its echo of `echo_len` bytes.
fn exchange(addr: SocketAddr, data: &[u8], echo_len: usize) -> std::io::Result<Vec<u8>> {
    let mut client = TcpStream::connect(addr)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    client.write_all(data)?;
    let mut echo = vec![0u8; echo_len];
    client.read_exact(&mut echo)?;
    Ok(echo)
}

fn warm_relay(upstream: SocketAddr, extra: &[&str]) -> Relay {
    let upstream = upstream.to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--health-interval",
        "1h",
    ];
    args.extend(extra);
    start(&args)
}

#[test]
fn a_visitor_gets_a_connection_opened_before_it_came_and_the_header_goes_out_then() {
    let upstream = Recorder::loopback(0);
    let relay = warm_relay(upstream.addr, &["--warm", "2", "--proxy-protocol", "v1"]);
    wait_until("two warm connections", || {
        upstream.accepted.load(Ordering::SeqCst) >= 2
    });
    std::thread::sleep(Duration::from_millis(200));
    // Health checks connect too, and say `PROXY UNKNOWN`: those are not warm connections.
    let visitors = || -> Vec<(Instant, Vec<u8>)> {
        let firsts = upstream.firsts.lock().unwrap();
        let check = b"PROXY UNKNOWN";
        firsts
            .iter()
            .filter(|(_, first)| !first.starts_with(check))
            .cloned()
            .collect()
    };
    assert!(
        visitors().is_empty(),
        "a warm connection sent something before a visitor came"
    );
    let arrived = Instant::now();
    let header = "PROXY TCP4 127.0.0.1 127.0.0.1 ";
    let mut client = TcpStream::connect(relay.addr()).unwrap();
    client.write_all(b"hello").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut echo = Vec::new();
    while !echo.ends_with(b"hello") {
        let mut buf = [0u8; 256];
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the echo");
        echo.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&echo);
    assert!(text.starts_with(header), "the upstream got {text:?}");
    let firsts = visitors();
    assert_eq!(firsts.len(), 1);
    assert!(
        firsts[0].0 < arrived,
        "the visitor's bytes came on a connection accepted after it arrived"
    );
    assert_eq!(
        relay.metric(&format!(
            "ferry_relay_upstream_warm_hits_total{{listener=\"default\",upstream=\"{}\"}}",
            upstream.addr
        )),
        Some(1)
    );
}

#[test]
fn dead_warm_connections_are_never_handed_to_a_visitor() {
    // The upstream closes the first six connections it accepts: all warm ones at first.
    let upstream = Recorder::loopback(6);
    let relay = warm_relay(upstream.addr, &["--warm", "3", "--proxy-protocol", "none"]);
    wait_until("the upstream closed six", || {
        upstream.accepted.load(Ordering::SeqCst) >= 6
    });
    for i in 0..20 {
        let data = format!("visitor {i:02}");
        let echo = exchange(relay.addr(), data.as_bytes(), data.len())
            .unwrap_or_else(|e| panic!("visitor {i}: {e}"));
        assert_eq!(echo, data.as_bytes());
    }
    let discarded = relay
        .metric(&format!(
            "ferry_relay_upstream_warm_discarded_total{{listener=\"default\",upstream=\"{}\"}}",
            upstream.addr
        ))
        .unwrap();
    assert!(discarded > 0, "no dead warm connection was found");
}

/// Warm connections live at most `warm_max_idle`: recycled while visitors keep coming, and no
/// visitor ever gets one that the recycling closed.
#[test]
fn warm_connections_are_recycled_and_none_is_closed_under_a_visitor() {
    let upstream = Recorder::loopback(0);
    let relay = warm_relay(
        upstream.addr,
        &[
            "--warm",
            "4",
            "--warm-max-idle",
            "200ms",
            "--proxy-protocol",
            "none",
        ],
    );
    let until = Instant::now() + Duration::from_secs(3);
    let mut served = 0;
    while Instant::now() < until {
        let echo = exchange(relay.addr(), b"ping", 4).expect("a visitor");
        assert_eq!(echo, b"ping");
        served += 1;
        std::thread::sleep(Duration::from_millis(35));
    }
    let recycled = relay
        .metric(&format!(
            "ferry_relay_upstream_warm_recycled_total{{listener=\"default\",upstream=\"{}\"}}",
            upstream.addr
        ))
        .unwrap();
    assert!(recycled > 4, "{recycled} recycled in 3 s at a 200 ms life");
    assert!(served > 20, "{served} visitors");
}

/// Over a 60 ms link: a visitor's first echoed byte comes one round trip after it connects
/// with a warm connection (the handshake was done before), two without.
#[test]
fn a_warm_connection_saves_a_round_trip_across_the_link() {
    let link = Link::start(Duration::from_millis(60), &[]);
    let rtt = link.rtt();
    let upstream = Recorder::start(
        in_namespace(link.us(), || TcpListener::bind((US_ADDR, 0)).unwrap()),
        0,
    );
    let relay_bin = env!("CARGO_BIN_EXE_ferry-relay");
    let run = |warm: &str| {
        let upstream = upstream.addr.to_string();
        let relay = Relay::start_args(
            Path::new("/usr/bin/env"),
            &[
                "ip",
                "netns",
                "exec",
                link.cn(),
                relay_bin,
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &upstream,
                "--proxy-protocol",
                "none",
                "--health-interval",
                "1h",
                "--warm",
                warm,
            ],
        );
        // Let the warm connections (if any) come up across the link.
        std::thread::sleep(rtt * 4);
        let addr = relay.addr();
        let mut times = Vec::new();
        for _ in 0..5 {
            let took = in_namespace(link.cn(), || {
                let start = Instant::now();
                let echo = exchange(addr, b"x", 1).expect("an exchange across the link");
                assert_eq!(echo, b"x");
                start.elapsed()
            });
            times.push(took);
            std::thread::sleep(rtt * 2);
        }
        times.sort();
        times[times.len() / 2]
    };
    let cold = run("0");
    let warm = run("2");
    let in_rtts = |d: Duration| d.as_secs_f64() / rtt.as_secs_f64();
    eprintln!(
        "first echoed byte at {:.2} RTT cold, {:.2} RTT warm",
        in_rtts(cold),
        in_rtts(warm)
    );
    assert!(
        (1.5..2.5).contains(&in_rtts(cold)),
        "without warm connections: {cold:?} = {:.2} RTT (expected 2)",
        in_rtts(cold)
    );
    assert!(
        (0.5..1.5).contains(&in_rtts(warm)),
        "with warm connections: {warm:?} = {:.2} RTT (expected 1)",
        in_rtts(warm)
    );
}

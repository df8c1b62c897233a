//! End to end: broken and hostile encoded bodies from the origin. Ferry decodes what an origin
//! compresses although asked for identity; a body that is corrupt, truncated, mislabelled or a
//! decompression bomb must end as a visible error for the visitor (a reset: a broken chunked
//! body over HTTP/1.1, RST_STREAM over HTTP/2), never as a clean 200 that is shorter or wrong,
//! and it is counted. A bomb costs Envoy bounded time and memory.
//!
//! Part of `rewrite_bodies`, which has the well-formed compressed bodies: decoded, or passed
//! untouched in a coding Ferry does not decode.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_tests::reply::encode_chunks;
use ferry_tests::{Client, Encoding, Origin, Reply, Request};

use crate::support::ferry;

fn page() -> String {
    "<a href=\"https://www.example.com/\">home</a>\n".repeat(2000)
}

/// The page as the origin would send it in `encoding`, written in 4 KiB chunks.
fn encoded(encoding: Encoding) -> Vec<u8> {
    let page = Bytes::from(page());
    let chunks: Vec<Bytes> = page.chunks(4096).map(Bytes::copy_from_slice).collect();
    encode_chunks(encoding, &chunks).concat()
}

/// A route answering `body` as it is, labelled `encoding`, in 1 KiB chunks.
fn raw(body: Vec<u8>, encoding: &str) -> Reply {
    let chunks: Vec<Bytes> = body.chunks(1024).map(Bytes::copy_from_slice).collect();
    Reply::html("")
        .chunks(chunks)
        .header("content-encoding", encoding)
        .chunk_delay(Duration::from_millis(1))
}

#[test]
fn corrupt_truncated_and_mislabelled_bodies_end_in_a_visible_error() {
    let origin = Origin::start();
    let mut routes = Vec::new();
    for encoding in Encoding::ALL {
        let good = encoded(encoding);
        let name = encoding.name();
        let mut corrupt = good.clone();
        let middle = corrupt.len() / 2;
        for byte in &mut corrupt[middle..middle + 8] {
            *byte ^= 0xa5;
        }
        let truncated = good[..good.len() * 2 / 3].to_vec();
        let cases = [
            ("corrupt", corrupt),
            ("truncated", truncated),
            ("mislabelled", page().into_bytes()),
        ];
        for (what, body) in cases {
            // brotli has no checksum: a flipped byte can decode to other text unnoticed.
            if what == "corrupt" && encoding == Encoding::Brotli {
                continue;
            }
            let path = format!("/{name}/{what}");
            origin.route(&path, raw(body, name));
            routes.push(path);
        }
    }
    let envoy = ferry(&origin);
    // In parallel: over HTTP/1.1 Envoy closes a reset connection after its delayed-close
    // timeout (1 s), which the client waits out.
    let addr = envoy.listener_addr();
    std::thread::scope(|scope| {
        for path in &routes {
            for client in [Client::http1(addr), Client::h2c(addr)] {
                scope.spawn(move || {
                    if let Ok(response) = client.send(&Request::get("www.example.cn", path)) {
                        panic!(
                            "{path} over {:?}: a complete {} of {} bytes instead of an error",
                            client.version(),
                            response.status,
                            response.body.len()
                        );
                    }
                });
            }
        }
    });
    let resets = envoy.counter("ferry.bodies_reset_bad_encoding");
    assert_eq!(resets, Some(2 * routes.len() as u64));
    let log = envoy.log();
    assert!(
        log.contains("reset: corrupt gzip data") && log.contains("truncated body"),
        "the log says why:\n{log}"
    );
}

/// A gzip stream of `members` members, each 16 MiB of zeros: 1 MiB on the wire decodes to a
/// GiB (concatenated members are one valid gzip body).
fn bomb(members: usize) -> Vec<u8> {
    let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    member
        .write_all(&vec![0u8; 16 << 20])
        .expect("gzip into a Vec");
    let member = member.finish().expect("gzip into a Vec");
    member.repeat(members)
}

#[test]
fn a_decompression_bomb_is_cut_short_in_bounded_time_and_memory() {
    let bomb = bomb(64);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let origin = Origin::start();
    let chunks: Vec<Bytes> = bomb.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
    origin.route(
        "/bomb",
        Reply::html("")
            .chunks(chunks)
            .header("content-encoding", "gzip"),
    );
    let envoy = ferry(&origin);
    let baseline = envoy.rss_kib().expect("Envoy's RSS");

    // One visitor: an error, fast.
    let started = Instant::now();
    let result =
        Client::http1(envoy.listener_addr()).send(&Request::get("www.example.cn", "/bomb"));
    let took = started.elapsed();
    assert!(result.is_err(), "a bomb must not end as a clean response");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Six visitors that never read: Envoy stops each bomb at the limit, whatever they do.
    let slow: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut s = TcpStream::connect(envoy.listener_addr()).expect("connect");
            s.write_all(b"GET /bomb HTTP/1.1\r\nHost: www.example.cn\r\n\r\n")
                .expect("send");
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while envoy.counter("ferry.bodies_reset_decode_limit") < Some(7) {
        assert!(Instant::now() < deadline, "the bombs were not stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak = envoy.rss_kib().expect("Envoy's RSS");
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("Envoy RSS: {baseline} KiB before, {peak} KiB with six stopped bombs");
    assert!(growth_mib < 128, "Envoy grew by {growth_mib} MiB");
    for mut s in slow {
        // Each got a 200 head and then a broken body, never a clean end.
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        assert!(
            !all.ends_with(b"0\r\n\r\n"),
            "a clean chunked end after a bomb"
        );
    }
    assert!(envoy.log().contains("decompression.max_ratio"));
}

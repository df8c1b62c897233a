//! End to end, the streaming matrix: nothing truncated, reset or changed on the way, whatever
//! the protocols, the codings, the chunking and the ending of a body.
//!
//! Every combination of: the shipped `envoy/ferry.yaml` and `envoy/us-east.yaml` (behind the
//! relay, TLS on both sides; only addresses and files changed), downstream HTTP/1.1 and HTTP/2,
//! upstream HTTP/1.1 and HTTP/2, the origin's coding (identity, gzip, deflate, br, zstd, sent
//! although Ferry asks for identity), with and without trailers, from an origin that writes
//! in random sizes (1 byte to 64 KiB) with random pauses, pages of 1 to 8 MB with a name every
//! ~200 bytes at random offsets. Every byte must equal what the page is with every name
//! rewritten (built alongside the page, see [`MirrorPage`]); a reset, a truncation or a stall
//! (the client's timeout) fails.
//!
//! Part of `rewrite_bodies`, which has the single cases (split names, codings, trailers).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use ferry_tests::body::{random_chunks, Rng};
use ferry_tests::chain::{Chain, ChainOptions};
use ferry_tests::origin::Protocol;
use ferry_tests::reply::encode_chunks;
use ferry_tests::{Client, Encoding, Envoy, EnvoyConfig, MirrorPage, Origin, Reply, Request};

use crate::support::ferry_with;

/// One route of the matrix.
struct Case {
    path: String,
    encoding: Option<Encoding>,
    trailers: bool,
    page: usize,
}

/// The pages (1, 2, 3.5 and 8 MB) and, per route, what the origin sends.
struct Matrix {
    pages: Vec<MirrorPage>,
    cases: Vec<Case>,
    replies: Vec<Reply>,
}

/// What the origin writes for one page in one coding: the chunks, and the pause before each.
type Written = (Vec<Bytes>, Vec<Duration>);

const SIZES: [usize; 4] = [1 << 20, 2 << 20, 7 << 19, 8 << 20];

fn matrix() -> Matrix {
    let pages: Vec<MirrorPage> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &len)| MirrorPage::random(100 + i as u64, len, 200))
        .collect();
    let mut rng = Rng(7);
    // The chunks of each page as the origin writes them, and compressed once per coding.
    let mut encoded: HashMap<(usize, Option<Encoding>), Written> = HashMap::new();
    let mut cases = Vec::new();
    let mut replies = Vec::new();
    let encodings = [None].into_iter().chain(Encoding::ALL.map(Some));
    for (i, encoding) in encodings.enumerate() {
        for trailers in [false, true] {
            let page = (2 * i + usize::from(trailers)) % pages.len();
            let (chunks, delays) = encoded
                .entry((page, encoding))
                .or_insert_with(|| {
                    let plain = random_chunks(&mut rng, &pages[page].origin, 64 * 1024);
                    let delays = plain
                        .iter()
                        .map(|_| match rng.below(10) {
                            0 => Duration::from_millis(1),
                            _ => Duration::ZERO,
                        })
                        .collect();
                    let chunks = match encoding {
                        Some(e) => encode_chunks(e, &plain),
                        None => plain,
                    };
                    (chunks, delays)
                })
                .clone();
            let name = encoding.map_or("identity", Encoding::name);
            let path = format!(
                "/{name}/{}/page.html",
                if trailers { "trailers" } else { "end" }
            );
            let mut reply = Reply::html("").chunks(chunks).chunk_delays(delays);
            if let Some(e) = encoding {
                reply = reply.header("content-encoding", e.name());
            }
            if trailers {
                reply = reply.trailer("x-origin-trailer", "done");
            }
            cases.push(Case {
                path,
                encoding,
                trailers,
                page,
            });
            replies.push(reply);
        }
    }
    Matrix {
        pages,
        cases,
        replies,
    }
}

impl Matrix {
    fn install(&self, origin: &Origin) {
        for (case, reply) in self.cases.iter().zip(&self.replies) {
            origin.route(&case.path, reply.clone());
        }
    }

    /// Fetches every route with `client` and checks every byte; `trailers_reach` says whether
    /// trailers must arrive (HTTP/2 at both ends).
    fn check(&self, client: &Client, label: &str, trailers_reach: bool) {
        for case in &self.cases {
            let what = format!(
                "{label}, {}, {} bytes",
                case.path,
                self.pages[case.page].origin.len()
            );
            let response = client
                .send(&Request::get("www.example.cn", &case.path))
                .unwrap_or_else(|e| panic!("{what}: {e} (reset, truncated or stalled)"));
            assert_eq!(response.status, 200, "{what}");
            assert_eq!(response.header("content-encoding"), None, "{what}");
            let want = &self.pages[case.page].mirror;
            if response.body != *want {
                let at = response
                    .body
                    .iter()
                    .zip(want.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(response.body.len().min(want.len()));
                panic!(
                    "{what}: {} bytes instead of {}, first difference at {at}: {:?}",
                    response.body.len(),
                    want.len(),
                    String::from_utf8_lossy(
                        &response.body[at.saturating_sub(40)..(at + 40).min(response.body.len())]
                    )
                );
            }
            if case.trailers && trailers_reach {
                assert_eq!(response.trailer("x-origin-trailer"), Some("done"), "{what}");
            }
        }
    }

    fn decoded(&self) -> u64 {
        self.cases.iter().filter(|c| c.encoding.is_some()).count() as u64
    }
}

/// No response was reset, and Ferry decoded every encoded one (`fetches` times).
fn check_counters(envoy: &Envoy, matrix: &Matrix, fetches: u64) {
    for name in [
        "undecided_tail",
        "bad_encoding",
        "decode_limit",
        "host_error",
    ] {
        assert_eq!(
            envoy.counter(&format!("ferry.bodies_reset_{name}")),
            Some(0),
            "{name}"
        );
    }
    assert_eq!(
        envoy.counter("ferry.bodies_decoded"),
        Some(matrix.decoded() * fetches)
    );
}

fn ferry_yaml(upstream: Protocol) {
    let matrix = matrix();
    let origin = Origin::start_with(upstream);
    matrix.install(&origin);
    let mut config = EnvoyConfig::shipped().origin(origin.addr());
    if upstream == Protocol::H2c {
        config = config.origin_http2();
    }
    let envoy = Envoy::start(&config);
    let h2_up = upstream == Protocol::H2c;
    matrix.check(
        &Client::http1(envoy.listener_addr()),
        "ferry.yaml h1 down",
        false,
    );
    matrix.check(
        &Client::h2c(envoy.listener_addr()),
        "ferry.yaml h2 down",
        h2_up,
    );
    check_counters(&envoy, &matrix, 2);
}

fn us_east_yaml(upstream: Protocol) {
    let matrix = matrix();
    let chain = Chain::start(
        ChainOptions::default()
            .empty_origin()
            .origin_protocol(upstream),
    );
    matrix.install(chain.origin());
    let (relay, ca) = (chain.relay_addr(), chain.ca_path());
    let h2_up = upstream == Protocol::Auto;
    let h1 = Client::https(relay, "www.example.cn", &ca);
    matrix.check(&h1, "us-east.yaml h1 down", false);
    let h2 = Client::https_h2(relay, "www.example.cn", &ca);
    matrix.check(&h2, "us-east.yaml h2 down", h2_up);
    check_counters(chain.envoy(), &matrix, 2);
}

#[test]
fn ferry_yaml_http1_origin() {
    ferry_yaml(Protocol::Http1);
}

#[test]
fn ferry_yaml_http2_origin() {
    ferry_yaml(Protocol::H2c);
}

#[test]
fn us_east_yaml_http1_origin() {
    us_east_yaml(Protocol::Http1);
}

#[test]
fn us_east_yaml_http2_origin() {
    us_east_yaml(Protocol::Auto);
}

/// `identity_encoding: false`: the origin is asked for the codings Ferry decodes as they stream
/// (not zstd), answers a 2 MB page in each, and a client that accepts gzip gets the rewritten
/// page compressed again by Envoy's compressor, over HTTP/1.1 and HTTP/2.
#[test]
fn compressed_origin_to_a_gzip_client() {
    use std::io::Read;
    let page = MirrorPage::random(300, 2 << 20, 200);
    let origin = Origin::start();
    let mut rng = Rng(11);
    let plain = random_chunks(&mut rng, &page.origin, 64 * 1024);
    for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Brotli] {
        let reply = Reply::html("")
            .chunks(encode_chunks(encoding, &plain))
            .header("content-encoding", encoding.name());
        origin.route(&format!("/{}", encoding.name()), reply);
    }
    let envoy = ferry_with(
        &origin,
        r#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": true}],
                "identity_encoding": false}"#,
    );
    for client in [
        Client::http1(envoy.listener_addr()),
        Client::h2c(envoy.listener_addr()),
    ] {
        for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Brotli] {
            let what = format!("{} from the origin", encoding.name());
            let request = Request::get("www.example.cn", &format!("/{}", encoding.name()))
                .header("accept-encoding", "gzip");
            let response = client
                .send(&request)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(response.status, 200, "{what}");
            let seen = origin.last_request().expect("the origin saw it");
            assert_eq!(seen.header("accept-encoding"), Some("gzip, deflate, br"));
            assert_eq!(response.header("content-encoding"), Some("gzip"), "{what}");
            let mut body = Vec::new();
            flate2::read::GzDecoder::new(&response.body[..])
                .read_to_end(&mut body)
                .unwrap_or_else(|e| panic!("{what}: the client's gzip: {e}"));
            assert!(body == page.mirror, "{what}: the page differs");
        }
    }
    assert_eq!(envoy.counter("ferry.bodies_decoded"), Some(6));
    assert_eq!(envoy.counter("ferry.bodies_reset_bad_encoding"), Some(0));
}

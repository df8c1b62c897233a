//! Tests of the end-to-end harness itself, not of Ferry's rewriting: Envoy without the filter
//! carries the demo site, trailers, gzip and large bodies unchanged; the origin's encoders
//! write real streams, flushed at every chunk; Envoy refuses a bad plugin configuration with a
//! log line from the filter naming the field; the TLS origin and client work together. (Every
//! shipped Envoy config is validated by `deploy` in the `e2e` binary.)
//!
//! They need the real Envoy, and some the built `.wasm`; when either is missing they fail with
//! a message that says how to get it.

use std::time::Duration;

use bytes::Bytes;
use ferry_filter::decode::{Coding, DecodeLimits, Decoder};
use ferry_tests::client::Version;
use ferry_tests::reply::encode_chunks;
use ferry_tests::site::{Site, PAGES};
use ferry_tests::{paths, Client, Encoding, Envoy, EnvoyConfig, Generator, Origin, Reply, Request};

/// A port nothing listens on: the `origin` cluster must point somewhere, but some tests send
/// no request.
fn unused_origin() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

#[test]
fn the_demo_site_passes_through_envoy_without_the_filter_unchanged() {
    let site = Site::default();
    let origin = site.start();
    let envoy = Envoy::start(&EnvoyConfig::shipped().without_ferry().origin(origin.addr()));
    let pages = site.pages();
    assert_eq!(pages.len(), PAGES.len());
    for version in [Version::Http1, Version::H2c] {
        let client = Client::new(envoy.listener_addr(), version);
        for (path, reply) in &pages {
            let response = client.get(&site.mirror_host(), path);
            let context = format!("{version:?} {path}");
            assert_eq!(response.status, reply.status(), "{context}");
            let expected = reply.body_bytes().expect("demo pages are not generated");
            assert_eq!(response.body, expected, "{context}");
            for name in ["set-cookie", "location", "link", "content-security-policy"] {
                let sent = reply.headers();
                let sent: Vec<&str> = sent
                    .iter()
                    .filter(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
                    .collect();
                assert_eq!(response.header_all(name), sent, "{context}: {name}");
            }
            let seen = origin.last_request().expect("the origin saw the request");
            assert_eq!(seen.path, *path, "{context}");
            assert_eq!(seen.host(), Some(site.mirror_host().as_str()), "{context}");
        }
    }
    if let Err(log) = envoy.wait_for_log("starting main dispatch loop", Duration::from_secs(5)) {
        panic!("Envoy's log is not readable or incomplete:\n{log}");
    }
    assert!(envoy.counter("http.ferry.downstream_rq_2xx").unwrap_or(0) >= 8);
}

#[test]
fn trailers_and_chunks_cross_envoy_over_http2_without_the_filter() {
    let origin = Origin::start();
    let chunks = ["first chunk, ", "second chunk, ", "third chunk"];
    origin.route(
        "/trailers",
        Reply::ok("text/plain", "")
            .chunks(chunks)
            .chunk_delay(Duration::from_millis(20))
            .trailer("x-checksum", "abc123"),
    );
    let config = EnvoyConfig::shipped()
        .without_ferry()
        .origin_http2()
        .origin(origin.addr());
    let envoy = Envoy::start(&config);
    let mut body = Vec::new();
    let response = Client::h2c(envoy.listener_addr())
        .stream(&Request::get("www.example.cn", "/trailers"), |chunk| {
            body.extend_from_slice(chunk)
        })
        .expect("the request succeeds");
    assert_eq!(response.status, 200);
    assert_eq!(body, chunks.concat().as_bytes());
    // The pause between chunks keeps them apart all the way through Envoy.
    assert_eq!(response.frames, chunks.len());
    assert_eq!(
        response.trailers,
        [("x-checksum".to_owned(), "abc123".to_owned())]
    );
    let seen = origin.last_request().expect("the origin saw the request");
    assert_eq!(seen.version, "HTTP/2.0");
    assert_eq!(seen.host(), Some("www.example.cn"));
}

#[test]
fn large_bodies_stream_through_envoy_without_the_filter() {
    const LEN: u64 = 8 * 1024 * 1024 + 13;
    let generator =
        Generator::repeat("0123456789 https://www.example.com/ abcdefghijklmnopqrstuvwxyz\n");
    let origin = Origin::start();
    origin.route(
        "/big",
        Reply::ok("text/plain", "").generated(generator.clone(), LEN, 16 * 1024),
    );
    let envoy = Envoy::start(&EnvoyConfig::shipped().without_ferry().origin(origin.addr()));
    let client = Client::http1(envoy.listener_addr());
    let streamed = client
        .stream(&Request::get("www.example.cn", "/big"), |_| {})
        .unwrap_or_else(|err| panic!("/big: {err}"));
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.digest, generator.digest(LEN));
    assert!(
        streamed.frames > 1,
        "/big came in {} frame(s)",
        streamed.frames
    );
}

/// The origin's encoders write real streams: decoded independently, each gives back the body,
/// chunk boundaries included (each chunk is flushed), whatever the chunking.
#[test]
fn the_origin_encodes_in_every_coding_with_a_flush_per_chunk() {
    let text = Generator::text(7, 200, " https://www.example.com/ ");
    let body = text.bytes(0, 300_000);
    let chunks: Vec<Bytes> = body.chunks(7919).map(Bytes::copy_from_slice).collect();
    for encoding in Encoding::ALL {
        let encoded = encode_chunks(encoding, &chunks);
        assert_eq!(encoded.len(), chunks.len(), "{encoding:?}");
        let wire: Vec<u8> = encoded.concat();
        let mut decoder = Decoder::new(
            match encoding {
                Encoding::Gzip => Coding::Gzip,
                Encoding::Deflate => Coding::Deflate,
                Encoding::Brotli => Coding::Brotli,
                Encoding::Zstd => Coding::Zstd,
            },
            DecodeLimits::default(),
        );
        let mut out = Vec::new();
        // Every prefix of whole chunks decodes to the same prefix of the body: flushed. (Ferry's
        // zstd decoder keeps the last window of output until the frame ends, so only the end is
        // checked there.)
        for (i, piece) in encoded.iter().enumerate() {
            decoder.push(piece, &mut out).expect("valid stream");
            let flushed = chunks[..=i].iter().map(Bytes::len).sum::<usize>();
            if encoding != Encoding::Zstd {
                assert_eq!(out.len(), flushed, "{encoding:?} after chunk {i}");
            }
        }
        decoder.finish(&mut out).expect("a complete stream");
        assert!(out == body, "{encoding:?}");
        assert!(wire.len() < body.len(), "{encoding:?} compresses");
    }
}

#[test]
fn a_bad_plugin_configuration_makes_envoy_refuse_to_start() {
    // Missing artifacts must fail with their own message, not as "Envoy refused the config".
    paths::envoy_bin();
    paths::wasm_path();
    let config = EnvoyConfig::shipped()
        .origin(unused_origin())
        .plugin_config(r#"{"domains": []}"#);
    let err = match Envoy::try_start(&config) {
        Ok(envoy) => panic!("Envoy started with an empty `domains`:\n{}", envoy.log()),
        Err(err) => err,
    };
    let from_filter = err
        .log
        .lines()
        .find(|line| line.contains("ferry:") && line.contains("domains"));
    assert!(
        from_filter.is_some(),
        "no log line from the filter names `domains`: {err}"
    );
}

#[test]
fn the_shipped_configuration_starts_with_the_filter() {
    let origin = Origin::start();
    let envoy = Envoy::start(&EnvoyConfig::shipped().origin(origin.addr()));
    assert_ne!(envoy.listener_addr().port(), 0);
    let stats = envoy
        .admin_get("/stats?filter=ferry")
        .expect("admin answers");
    assert_eq!(stats.status, 200);
}

#[test]
fn the_tls_origin_and_client_agree_on_names_protocols_and_trust() {
    use ferry_tests::client::ClientError;
    use ferry_tests::pki::Pki;

    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(&dir.path().join("ca")).expect("CA");
    let leaf = pki.issue(&["example.com", "*.example.com"]).expect("leaf");
    let origin = Origin::start_tls(&leaf);
    origin.route("/", Reply::html("<p>over TLS</p>"));

    for (client, version) in [
        (
            Client::https(origin.addr(), "www.example.com", &pki.ca_path()),
            "HTTP/1.1",
        ),
        (
            Client::https_h2(origin.addr(), "www.example.com", &pki.ca_path()),
            "HTTP/2.0",
        ),
    ] {
        let response = client.get("www.example.com", "/");
        assert_eq!(response.status, 200, "{version}: {}", response.text());
        assert_eq!(response.text(), "<p>over TLS</p>");
        let seen = origin.last_request().expect("recorded");
        assert_eq!(seen.version, version);
        assert_eq!(seen.sni.as_deref(), Some("www.example.com"));
        assert_eq!(seen.host(), Some("www.example.com"));
    }

    // A name the certificate does not carry, and a CA that did not issue it, are refused.
    let wrong_name = Client::https(origin.addr(), "example.cn", &pki.ca_path())
        .send(&Request::get("example.cn", "/"));
    assert!(
        matches!(wrong_name, Err(ClientError::Tls { .. })),
        "{wrong_name:?}"
    );
    let other = Pki::new(&dir.path().join("other")).expect("another CA");
    let untrusted = Client::https(origin.addr(), "example.com", &other.ca_path())
        .send(&Request::get("example.com", "/"));
    assert!(
        matches!(untrusted, Err(ClientError::Tls { .. })),
        "{untrusted:?}"
    );
    assert_eq!(
        origin.requests().len(),
        2,
        "refused handshakes record nothing"
    );
}

//! Native throughput of the body path on real pages: the ceiling for the filter's in-Envoy body
//! rewriting (which runs the same code compiled to wasm).
//!
//! `cargo run --release -p ferry-filter --example engine_bench -- [--coding gzip|deflate|br|zstd] PAGE.html ...`
//!
//! Each page is streamed through the driver of [`BodyStream`] (decoded first with `--coding`,
//! the page having been encoded once beforehand; then same-site `integrity` attributes dropped
//! and domains rewritten) in 16 KiB chunks of what the origin sends (a typical Envoy data
//! frame) for about a second; the figure is decoded megabytes (10^6 bytes) per second.

use std::io::Write;
use std::time::{Duration, Instant};

use ferry_filter::body::BodyRewriter;
use ferry_filter::config::Config;
use ferry_filter::decode::{Coding, DecodeLimits, Decoder};
use ferry_filter::stream::{BodyKind, BodyStream, Plan};

const CHUNK: usize = 16 * 1024;

fn encode(coding: Coding, data: &[u8]) -> std::io::Result<Vec<u8>> {
    Ok(match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data)?;
            e.finish()?
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data)?;
            e.finish()?
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            brotli::CompressorWriter::new(&mut out, 4096, 5, 22).write_all(data)?;
            out
        }
        Coding::Zstd => zstd::encode_all(data, 3)?,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut coding = None;
    if args.first().map(String::as_str) == Some("--coding") {
        let name = args
            .get(1)
            .ok_or("--coding needs gzip, deflate, br or zstd")?;
        coding = Some(match name.as_str() {
            "gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Brotli,
            "zstd" => Coding::Zstd,
            other => return Err(format!("unknown coding {other:?}").into()),
        });
        args.drain(..2);
    }
    if args.is_empty() {
        return Err("usage: engine_bench [--coding gzip|deflate|br|zstd] PAGE.html ...".into());
    }
    let config = Config::from_json(
        br#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": true}]}"#,
    )?;
    let pipeline = BodyRewriter::new(&config.domains, config.integrity)?;
    for page in args {
        let plain = std::fs::read(&page).map_err(|e| format!("{page}: {e}"))?;
        let wire = match coding {
            Some(c) => encode(c, &plain)?,
            None => plain.clone(),
        };
        let (mut rounds, mut matches, mut out_len) = (0u64, 0u64, 0usize);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) || rounds < 3 {
            let decoder = coding.map(|c| Decoder::new(c, DecodeLimits::default()));
            let mut stream = BodyStream::new(BodyKind::Html, decoder);
            out_len = 0;
            let chunks: Vec<&[u8]> = wire.chunks(CHUNK).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                match stream.on_chunk(&pipeline, chunk, i + 1 == chunks.len()) {
                    Plan::Keep => out_len += chunk.len(),
                    Plan::Replace(bytes) => out_len += bytes.len(),
                    Plan::Fail(f) => return Err(format!("{page}: {f}").into()),
                }
            }
            matches = stream.stats().matches;
            rounds += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let mb_per_s = (plain.len() as f64 * rounds as f64) / secs / 1e6;
        let label = coding.map_or("identity", Coding::name);
        println!(
            "engine {page} ({label}, {} bytes on the wire): {} bytes -> {out_len}, {matches} matches, \
             {mb_per_s:.0} MB/s ({} KiB chunks, {rounds} rounds)",
            wire.len(),
            plain.len(),
            CHUNK / 1024
        );
    }
    Ok(())
}

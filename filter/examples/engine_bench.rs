//! Native throughput of the rewrite engine on real pages: the ceiling for the filter's
//! in-Envoy body rewriting (which runs the same code compiled to wasm).
//!
//! `cargo run --release -p ferry-filter --example engine_bench -- PAGE.html [PAGE.html ...]`
//!
//! Each page is streamed through the HTML body pipeline ([`StreamBody`]: same-site `integrity`
//! attributes dropped, then domains rewritten) in 16 KiB chunks (a typical Envoy data frame)
//! for about a second; the figure is input megabytes (10^6 bytes) per second.

use std::time::{Duration, Instant};

use ferry_filter::body::{BodyRewriter, StreamBody};
use ferry_filter::config::Config;

const CHUNK: usize = 16 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pages: Vec<String> = std::env::args().skip(1).collect();
    if pages.is_empty() {
        return Err("usage: engine_bench PAGE.html [PAGE.html ...]".into());
    }
    let config = Config::from_json(
        br#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": true}]}"#,
    )?;
    let pipeline = BodyRewriter::new(&config)?;
    for page in pages {
        let body = std::fs::read(&page).map_err(|e| format!("{page}: {e}"))?;
        let mut out = Vec::with_capacity(body.len() + body.len() / 8);
        let (mut rounds, mut matches) = (0u64, 0u64);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) || rounds < 3 {
            out.clear();
            let mut stream = StreamBody::new(&pipeline, true);
            for chunk in body.chunks(CHUNK) {
                stream.push(chunk, &mut out);
            }
            stream.finish(&mut out);
            matches = stream.matches;
            rounds += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let mb_per_s = (body.len() as f64 * rounds as f64) / secs / 1e6;
        println!(
            "engine {page}: {} bytes, {matches} matches, {mb_per_s:.0} MB/s ({} KiB chunks, {rounds} rounds)",
            body.len(),
            CHUNK / 1024
        );
    }
    Ok(())
}
